//! Thin wrappers over the host syscalls WASI needs; each turns -1/errno into `io::Error`.
//! Every other module calls the host only through here.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_int(r: libc::c_int) -> io::Result<libc::c_int> {
    cvt(r as libc::c_long).map(|r| r as libc::c_int)
}

/// A path component or relative path as a C string (`EINVAL` for interior NULs).
pub fn cstr(path: &str) -> io::Result<CString> {
    CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_BENEATH: u64 = 0x08;

/// `openat2(dir, path, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: opens a path
/// that cannot leave `dir` (through `..`, absolute paths or symlinks of any kind).
pub fn open_beneath(dir: BorrowedFd, path: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 { u64::from(mode) } else { 0 },
        resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: valid pointers to a NUL-terminated path and an open_how of the given size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                size_of::<OpenHow>(),
            )
        };
        match cvt(r) {
            // SAFETY: the kernel returned a new descriptor, now owned here.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) || e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `fstat`.
pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: all-zero is a valid stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out-pointer.
    cvt_int(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `read`.
pub fn read(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long).map(|n| n as usize)
}

/// `pread`.
pub fn pread(fd: BorrowedFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    cvt(unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset as i64) } as libc::c_long)
        .map(|n| n as usize)
}

/// `write`.
pub fn write(fd: BorrowedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    cvt(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) } as libc::c_long).map(|n| n as usize)
}

/// `pwrite`.
pub fn pwrite(fd: BorrowedFd, buf: &[u8], offset: u64) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    cvt(unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), offset as i64) } as libc::c_long)
        .map(|n| n as usize)
}

/// `lseek`.
pub fn lseek(fd: BorrowedFd, offset: i64, whence: i32) -> io::Result<u64> {
    // SAFETY: plain syscall on a valid descriptor.
    cvt(unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) } as libc::c_long).map(|n| n as u64)
}

/// `ftruncate`.
pub fn ftruncate(fd: BorrowedFd, len: u64) -> io::Result<()> {
    let len = i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    // SAFETY: plain syscall on a valid descriptor.
    cvt_int(unsafe { libc::ftruncate(fd.as_raw_fd(), len) }).map(drop)
}

/// `posix_fallocate` (returns the error number instead of setting errno).
pub fn fallocate(fd: BorrowedFd, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    match unsafe { libc::posix_fallocate(fd.as_raw_fd(), offset as i64, len as i64) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// `fsync` or `fdatasync`.
pub fn sync(fd: BorrowedFd, data_only: bool) -> io::Result<()> {
    // SAFETY: plain syscalls on a valid descriptor.
    cvt_int(unsafe {
        if data_only {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })
    .map(drop)
}

/// `fcntl(F_GETFL)` / `fcntl(F_SETFL)`.
pub fn status_flags(fd: BorrowedFd, set: Option<i32>) -> io::Result<i32> {
    // SAFETY: plain fcntl on a valid descriptor.
    unsafe {
        match set {
            None => cvt_int(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL)),
            Some(flags) => cvt_int(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags)),
        }
    }
}

/// `futimens`-style timestamps: `None` leaves a time unchanged, `Some(None)` sets it to now.
pub fn set_times(fd: BorrowedFd, name: Option<&str>, times: [Option<Option<u64>>; 2], follow: bool) -> io::Result<()> {
    let spec = |t: Option<Option<u64>>| match t {
        None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        Some(None) => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        Some(Some(ns)) => libc::timespec { tv_sec: (ns / 1_000_000_000) as i64, tv_nsec: (ns % 1_000_000_000) as i64 },
    };
    let ts = [spec(times[0]), spec(times[1])];
    match name {
        // SAFETY: valid descriptor and two timespecs.
        None => cvt_int(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) }).map(drop),
        Some(name) => {
            let name = cstr(name)?;
            let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
            // SAFETY: valid descriptor, path and timespecs.
            cvt_int(unsafe { libc::utimensat(fd.as_raw_fd(), name.as_ptr(), ts.as_ptr(), flags) }).map(drop)
        }
    }
}

/// `mkdirat`.
pub fn mkdir_at(dir: BorrowedFd, name: &str) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: valid descriptor and path.
    cvt_int(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o777) }).map(drop)
}

/// `unlinkat` (with `AT_REMOVEDIR` for directories).
pub fn unlink_at(dir: BorrowedFd, name: &str, is_dir: bool) -> io::Result<()> {
    let name = cstr(name)?;
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: valid descriptor and path.
    cvt_int(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// `renameat`.
pub fn rename_at(from_dir: BorrowedFd, from: &str, to_dir: BorrowedFd, to: &str) -> io::Result<()> {
    let (from, to) = (cstr(from)?, cstr(to)?);
    // SAFETY: valid descriptors and paths.
    cvt_int(unsafe { libc::renameat(from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr()) }).map(drop)
}

/// `linkat` (never following a final symlink).
pub fn link_at(from_dir: BorrowedFd, from: &str, to_dir: BorrowedFd, to: &str) -> io::Result<()> {
    let (from, to) = (cstr(from)?, cstr(to)?);
    // SAFETY: valid descriptors and paths.
    cvt_int(unsafe { libc::linkat(from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr(), 0) }).map(drop)
}

/// `symlinkat`.
pub fn symlink_at(target: &str, dir: BorrowedFd, name: &str) -> io::Result<()> {
    let (target, name) = (cstr(target)?, cstr(name)?);
    // SAFETY: valid descriptor and paths.
    cvt_int(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `readlinkat`.
pub fn readlink_at(dir: BorrowedFd, name: &str) -> io::Result<Vec<u8>> {
    let name = cstr(name)?;
    let mut buf = vec![0u8; 4096];
    // SAFETY: valid descriptor, path and buffer.
    let n =
        cvt(unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
            as libc::c_long)?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// One directory entry.
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// `DT_*` type.
    pub d_type: u8,
    /// Name bytes.
    pub name: Vec<u8>,
}

/// Every entry of the directory `dir` (read through a fresh descriptor, so the caller's
/// offset is untouched), in the kernel's order.
pub fn read_dir(dir: BorrowedFd) -> io::Result<Vec<DirEntry>> {
    let fd = open_beneath(dir, ".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 32 << 10];
    loop {
        // SAFETY: valid descriptor and buffer.
        let n = cvt(unsafe { libc::syscall(libc::SYS_getdents64, fd.as_raw_fd(), buf.as_mut_ptr(), buf.len()) })?;
        if n == 0 {
            break;
        }
        let mut at = 0usize;
        while at < n as usize {
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
            let ino = u64::from_ne_bytes(buf[at..at + 8].try_into().expect("8"));
            let reclen = u16::from_ne_bytes(buf[at + 16..at + 18].try_into().expect("2")) as usize;
            let d_type = buf[at + 18];
            let name_bytes = &buf[at + 19..at + reclen];
            let len = name_bytes.iter().position(|b| *b == 0).unwrap_or(name_bytes.len());
            entries.push(DirEntry { ino, d_type, name: name_bytes[..len].to_vec() });
            at += reclen;
        }
    }
    Ok(entries)
}

/// `dup3(fd, to, O_CLOEXEC)`-free duplicate of a descriptor.
pub fn dup(fd: BorrowedFd) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// `getrandom` filling all of `buf`.
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: the remaining part of `buf` is valid for writes.
        let n = unsafe { libc::getrandom(buf[done..].as_mut_ptr().cast(), buf.len() - done, 0) };
        match cvt(n as libc::c_long) {
            Ok(n) => done += n as usize,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `clock_gettime` / `clock_getres` in nanoseconds.
pub fn clock(id: libc::clockid_t, resolution: bool) -> io::Result<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    cvt_int(unsafe {
        if resolution {
            libc::clock_getres(id, &mut ts)
        } else {
            libc::clock_gettime(id, &mut ts)
        }
    })?;
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}
