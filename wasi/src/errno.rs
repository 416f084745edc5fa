//! WASI error numbers, and the mapping from host `errno` values.

use std::io;

/// A WASI `errno` (the same numbering in preview1 and the legacy snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
#[allow(missing_docs)]
pub enum Errno {
    Success = 0,
    TooBig = 1,
    Acces = 2,
    Again = 6,
    Badf = 8,
    Busy = 10,
    Dquot = 19,
    Exist = 20,
    Fault = 21,
    Fbig = 22,
    Ilseq = 25,
    Intr = 27,
    Inval = 28,
    Io = 29,
    Isdir = 31,
    Loop = 32,
    Mfile = 33,
    Mlink = 34,
    Nametoolong = 37,
    Nfile = 41,
    Noent = 44,
    Nomem = 48,
    Nospc = 51,
    Nosys = 52,
    Notdir = 54,
    Notempty = 55,
    Notsock = 57,
    Notsup = 58,
    Notty = 59,
    Overflow = 61,
    Perm = 63,
    Pipe = 64,
    Range = 68,
    Rofs = 69,
    Spipe = 70,
    Txtbsy = 74,
    Xdev = 75,
    Notcapable = 76,
}

impl Errno {
    /// Maps a host error. Escapes refused by `RESOLVE_BENEATH` (EXDEV) become `Notcapable`.
    pub fn from_io(e: &io::Error) -> Errno {
        match e.raw_os_error() {
            Some(libc::E2BIG) => Errno::TooBig,
            Some(libc::EACCES) => Errno::Acces,
            Some(libc::EAGAIN) => Errno::Again,
            Some(libc::EBADF) => Errno::Badf,
            Some(libc::EBUSY) => Errno::Busy,
            Some(libc::EDQUOT) => Errno::Dquot,
            Some(libc::EEXIST) => Errno::Exist,
            Some(libc::EFAULT) => Errno::Fault,
            Some(libc::EFBIG) => Errno::Fbig,
            Some(libc::EILSEQ) => Errno::Ilseq,
            Some(libc::EINTR) => Errno::Intr,
            Some(libc::EINVAL) => Errno::Inval,
            Some(libc::EISDIR) => Errno::Isdir,
            Some(libc::ELOOP) => Errno::Loop,
            Some(libc::EMFILE) => Errno::Mfile,
            Some(libc::EMLINK) => Errno::Mlink,
            Some(libc::ENAMETOOLONG) => Errno::Nametoolong,
            Some(libc::ENFILE) => Errno::Nfile,
            Some(libc::ENOENT) => Errno::Noent,
            Some(libc::ENOMEM) => Errno::Nomem,
            Some(libc::ENOSPC) => Errno::Nospc,
            Some(libc::ENOSYS) => Errno::Nosys,
            Some(libc::ENOTDIR) => Errno::Notdir,
            Some(libc::ENOTEMPTY) => Errno::Notempty,
            Some(libc::ENOTSOCK) => Errno::Notsock,
            Some(libc::EOPNOTSUPP) => Errno::Notsup,
            Some(libc::ENOTTY) => Errno::Notty,
            Some(libc::EOVERFLOW) => Errno::Overflow,
            Some(libc::EPERM) => Errno::Perm,
            Some(libc::EPIPE) => Errno::Pipe,
            Some(libc::ERANGE) => Errno::Range,
            Some(libc::EROFS) => Errno::Rofs,
            Some(libc::ESPIPE) => Errno::Spipe,
            Some(libc::ETXTBSY) => Errno::Txtbsy,
            Some(libc::EXDEV) => Errno::Notcapable,
            _ => Errno::Io,
        }
    }
}

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Self {
        Errno::from_io(&e)
    }
}

/// Result of a WASI operation.
pub type WasiResult<T> = Result<T, Errno>;
