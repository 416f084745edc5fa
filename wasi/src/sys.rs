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

/// How many times [`open_beneath`] tries an `openat2` that fails with `EAGAIN` or `EINTR`
/// before it gives up. The kernel returns `EAGAIN` when a rename or mount elsewhere raced
/// with a `RESOLVE_BENEATH` walk; a guest renaming in a loop must not make the host spin.
pub const OPENAT2_ATTEMPTS: u32 = 8;

/// Runs `attempt` until it returns something other than `EAGAIN`/`EINTR`, at most `max`
/// times in all; past that, the last error is returned (`EAGAIN` for a lost race).
pub fn retry_bounded<T>(max: u32, mut attempt: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 1;
    loop {
        match attempt() {
            Err(e) if is_transient(&e) && tries < max => tries += 1,
            other => return other,
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

/// `openat2(dir, path, flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: opens a path
/// that cannot leave `dir` (through `..`, absolute paths or symlinks of any kind).
///
/// # Errors
/// The kernel's; `EXDEV` for an escape; `EAGAIN` after [`OPENAT2_ATTEMPTS`] lost races.
pub fn open_beneath(dir: BorrowedFd, path: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        // The kernel refuses a mode without O_CREAT or O_TMPFILE (whose bits include
        // O_DIRECTORY's, so test all of them).
        mode: if flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE {
            u64::from(mode)
        } else {
            0
        },
        resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    retry_bounded(OPENAT2_ATTEMPTS, || {
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
        // SAFETY: the kernel returned a new descriptor, now owned here.
        cvt(r).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    })
}

/// Plain `openat(dir, path, flags, mode)`, following `..`, absolute paths and symlinks
/// wherever they lead. Only for the test seam that turns WASI's own resolution off
/// (`WasiCtxBuilder::insecure_unchecked_paths_for_testing`).
pub fn open_unchecked(dir: BorrowedFd, path: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: valid descriptor and NUL-terminated path.
    let fd = cvt_int(unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags | libc::O_CLOEXEC, mode) })?;
    // SAFETY: the kernel returned a new descriptor, now owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat`.
pub fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: all-zero is a valid stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and out-pointer.
    cvt_int(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the entry itself, never a symlink's target.
pub fn lstat_at(dir: BorrowedFd, name: &str) -> io::Result<libc::stat> {
    let name = cstr(name)?;
    // SAFETY: all-zero is a valid stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, NUL-terminated path and out-pointer.
    cvt_int(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// `read`.
pub fn read(fd: BorrowedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    cvt(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long).map(|n| n as usize)
}

/// A file offset as an `off_t` (`EINVAL` past `i64::MAX`, as the kernel says of negative ones).
pub fn off_t(offset: u64) -> io::Result<i64> {
    i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `pread`.
pub fn pread(fd: BorrowedFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let offset = off_t(offset)?;
    // SAFETY: `buf` is valid for writes of its length.
    cvt(unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) } as libc::c_long)
        .map(|n| n as usize)
}

/// `write`.
pub fn write(fd: BorrowedFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length.
    cvt(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) } as libc::c_long).map(|n| n as usize)
}

/// `pwrite`.
pub fn pwrite(fd: BorrowedFd, buf: &[u8], offset: u64) -> io::Result<usize> {
    let offset = off_t(offset)?;
    // SAFETY: `buf` is valid for reads of its length.
    cvt(unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), offset) } as libc::c_long)
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
    let (offset, len) = (off_t(offset)?, off_t(len)?);
    // SAFETY: plain syscall on a valid descriptor.
    match unsafe { libc::posix_fallocate(fd.as_raw_fd(), offset, len) } {
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

/// A WASI timestamp in nanoseconds as a `timespec` (every `u64` fits: 2^64 ns is about
/// 1.8e10 s, far inside `i64`).
fn timespec(ns: u64) -> libc::timespec {
    const NS: u64 = 1_000_000_000;
    libc::timespec { tv_sec: (ns / NS) as i64, tv_nsec: (ns % NS) as i64 }
}

/// Sets the timestamps of what `fd` refers to — an open file, or an `O_PATH` descriptor
/// (a symlink itself, when opened with `O_NOFOLLOW`) — with
/// `utimensat(fd, "", times, AT_EMPTY_PATH)` (Linux 5.8 and later), so nothing is looked up
/// by name. `None` leaves a time unchanged, `Some(None)` sets it to now.
pub fn set_times(fd: BorrowedFd, times: [Option<Option<u64>>; 2]) -> io::Result<()> {
    let spec = |t: Option<Option<u64>>| match t {
        None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        Some(None) => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        Some(Some(ns)) => timespec(ns),
    };
    let ts = [spec(times[0]), spec(times[1])];
    // SAFETY: valid descriptor, an empty NUL-terminated path and two timespecs.
    cvt_int(unsafe { libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), ts.as_ptr(), libc::AT_EMPTY_PATH) }).map(drop)
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
    nanoseconds(&ts).ok_or_else(|| io::Error::from_raw_os_error(libc::EOVERFLOW))
}

/// A `timespec` in nanoseconds; `None` if negative or past `u64::MAX` ns (year 2554).
fn nanoseconds(ts: &libc::timespec) -> Option<u64> {
    u64::try_from(ts.tv_sec).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::try_from(ts.tv_nsec).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn again() -> io::Error {
        io::Error::from_raw_os_error(libc::EAGAIN)
    }

    #[test]
    fn openat2_retries_are_bounded() {
        let mut calls = 0;
        let r: io::Result<()> = retry_bounded(OPENAT2_ATTEMPTS, || {
            calls += 1;
            Err(again())
        });
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EAGAIN), "the race is reported as EAGAIN");
        assert_eq!(calls, OPENAT2_ATTEMPTS);
        let mut calls = 0;
        let r = retry_bounded(OPENAT2_ATTEMPTS, || {
            calls += 1;
            if calls < 3 {
                Err(io::Error::from_raw_os_error(if calls == 1 { libc::EINTR } else { libc::EAGAIN }))
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3, "a race lost twice, then won");
        let mut calls = 0;
        let r: io::Result<()> = retry_bounded(OPENAT2_ATTEMPTS, || {
            calls += 1;
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        });
        assert_eq!((r.unwrap_err().raw_os_error(), calls), (Some(libc::ENOENT), 1), "other errors: no retry");
    }

    #[test]
    fn time_conversions_do_not_overflow() {
        assert_eq!(nanoseconds(&libc::timespec { tv_sec: 1, tv_nsec: 5 }), Some(1_000_000_005));
        assert_eq!(nanoseconds(&libc::timespec { tv_sec: i64::MAX, tv_nsec: 0 }), None);
        assert_eq!(nanoseconds(&libc::timespec { tv_sec: -1, tv_nsec: 0 }), None);
        assert_eq!(nanoseconds(&libc::timespec { tv_sec: 18_446_744_073, tv_nsec: 999_999_999 }), None);
        let ts = timespec(u64::MAX);
        assert_eq!((ts.tv_sec, ts.tv_nsec), (18_446_744_073, 709_551_615));
        assert_eq!(nanoseconds(&ts), Some(u64::MAX));
    }
}
