//! Preview1 rights: the bits, what each kind of descriptor starts with, and the check every
//! call makes.
//!
//! The standard (`wasi_snapshot_preview1.witx`) gives each descriptor base rights (what it
//! may do) and inheriting rights (what descriptors opened through it may get). A call lacking
//! a right fails `ENOTCAPABLE`; `fd_fdstat_set_rights` can only drop rights; `path_open` gives
//! the new descriptor the rights asked for that its directory's inheriting rights allow, less
//! those that do not apply to what was opened (a directory has no `FD_SEEK`, `FD_WRITE`, ...).
//!
//! Each call checks its right after the descriptor's kind (so `fd_write` on stdin is still
//! `EBADF`) and before it touches the file system (so a missing right reveals nothing about
//! the path). Wasmtime's current preview1 (`crates/wasi/src/p1.rs`) no longer enforces rights
//! and refuses `fd_fdstat_set_rights` with `ENOTSUP`; sandboxrun follows the standard here, as
//! Wasmtime did until 2022 (the `FileCaps`/`DirCaps` checks of `wasi-common`). The rights a
//! descriptor starts with are Wasmtime's where it reports them (stdio, preopens), widened only
//! by the rights that keep working in Wasmtime because it does not check them.

use crate::errno::{Errno, WasiResult};

pub(crate) const FD_DATASYNC: u64 = 1 << 0;
pub(crate) const FD_READ: u64 = 1 << 1;
pub(crate) const FD_SEEK: u64 = 1 << 2;
pub(crate) const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
pub(crate) const FD_SYNC: u64 = 1 << 4;
pub(crate) const FD_TELL: u64 = 1 << 5;
pub(crate) const FD_WRITE: u64 = 1 << 6;
pub(crate) const FD_ADVISE: u64 = 1 << 7;
pub(crate) const FD_ALLOCATE: u64 = 1 << 8;
pub(crate) const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
pub(crate) const PATH_CREATE_FILE: u64 = 1 << 10;
pub(crate) const PATH_LINK_SOURCE: u64 = 1 << 11;
pub(crate) const PATH_LINK_TARGET: u64 = 1 << 12;
pub(crate) const PATH_OPEN: u64 = 1 << 13;
pub(crate) const FD_READDIR: u64 = 1 << 14;
pub(crate) const PATH_READLINK: u64 = 1 << 15;
pub(crate) const PATH_RENAME_SOURCE: u64 = 1 << 16;
pub(crate) const PATH_RENAME_TARGET: u64 = 1 << 17;
pub(crate) const PATH_FILESTAT_GET: u64 = 1 << 18;
pub(crate) const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
pub(crate) const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
pub(crate) const FD_FILESTAT_GET: u64 = 1 << 21;
pub(crate) const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
pub(crate) const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
pub(crate) const PATH_SYMLINK: u64 = 1 << 24;
pub(crate) const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
pub(crate) const PATH_UNLINK_FILE: u64 = 1 << 26;
pub(crate) const POLL_FD_READWRITE: u64 = 1 << 27;

/// Every right preview1 defines (bits 0..=29): the inheriting rights of a preopen.
pub const ALL_RIGHTS: u64 = (1 << 30) - 1;

/// The rights that apply to a directory: the base rights of a preopen, and the most a
/// directory opened with `path_open` gets. Wasmtime's preopen set, plus what its unchecked
/// calls let a directory do anyway (`fd_sync`, `fd_fdstat_set_flags`, `poll_oneoff`,
/// truncating opens) and `FD_READ` (wasi-libc's `fcntl(F_GETFL)` reads it as "opened for
/// reading"). No `FD_SEEK`, `FD_TELL`, `FD_WRITE`, `FD_ALLOCATE` or `FD_FILESTAT_SET_SIZE`.
pub(crate) const DIR_RIGHTS: u64 = PATH_CREATE_DIRECTORY
    | PATH_CREATE_FILE
    | PATH_LINK_SOURCE
    | PATH_LINK_TARGET
    | PATH_OPEN
    | FD_READDIR
    | PATH_READLINK
    | PATH_RENAME_SOURCE
    | PATH_RENAME_TARGET
    | PATH_SYMLINK
    | PATH_REMOVE_DIRECTORY
    | PATH_UNLINK_FILE
    | PATH_FILESTAT_GET
    | PATH_FILESTAT_SET_SIZE
    | PATH_FILESTAT_SET_TIMES
    | FD_FILESTAT_GET
    | FD_FILESTAT_SET_TIMES
    | FD_READ
    | FD_SYNC
    | FD_DATASYNC
    | FD_FDSTAT_SET_FLAGS
    | POLL_FD_READWRITE;

/// Standard input: Wasmtime's `FD_READ`, plus `fstat` and polling (which Wasmtime serves
/// without checking). Never a write right or `FD_FILESTAT_SET_TIMES`: a host file given as
/// stdin is not the guest's to change.
pub(crate) const STDIN_RIGHTS: u64 = FD_READ | FD_FILESTAT_GET | POLL_FD_READWRITE;

/// Standard output and error: Wasmtime's `FD_WRITE`, plus `fstat` and polling.
pub(crate) const STDOUT_RIGHTS: u64 = FD_WRITE | FD_FILESTAT_GET | POLL_FD_READWRITE;

/// `Ok` if `held` includes every right in `needed`, else `ENOTCAPABLE`.
pub(crate) fn require(held: u64, needed: u64) -> WasiResult<()> {
    if needed & !held == 0 {
        Ok(())
    } else {
        Err(Errno::Notcapable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_cannot_seek_or_write() {
        for right in [FD_SEEK, FD_TELL, FD_WRITE, FD_ALLOCATE, FD_FILESTAT_SET_SIZE] {
            assert_eq!(DIR_RIGHTS & right, 0);
        }
        assert_eq!(DIR_RIGHTS & !ALL_RIGHTS, 0);
        assert_eq!(STDIN_RIGHTS & (FD_WRITE | FD_FILESTAT_SET_TIMES | FD_FILESTAT_SET_SIZE), 0);
        assert_eq!(require(FD_READ | FD_SEEK, FD_READ), Ok(()));
        assert_eq!(require(FD_READ, FD_READ | FD_SEEK), Err(Errno::Notcapable));
    }
}
