//! The `path_*` functions, and how guest paths resolve: WASI's first wall.
//!
//! Every path is resolved beneath the directory descriptor the guest names (a preopen or a
//! directory opened from one) with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`:
//! - a call that follows a final symlink opens the *whole* path that way (`O_PATH`) and acts
//!   on the descriptor it gets (`path_open`, `path_filestat_get`, `path_filestat_set_times`);
//! - a call that acts on a final component without following it opens the *parent* that
//!   way and passes the kernel a plain name — no `/`, never `..` — relative to it
//!   (`path_create_directory`, `path_unlink_file`, `path_remove_directory`, `path_rename`,
//!   `path_link`, `path_symlink`, `path_readlink`), so no lookup the kernel makes on its own
//!   can leave the mount.
//!
//! A path is at most [`MAX_PATH_LEN`] bytes, refused before it is read or copied.
//! [`Resolve::Unchecked`] turns the wall off for one test (see
//! `WasiCtxBuilder::insecure_unchecked_paths_for_testing`).

use crate::ctx::{FdEntry, Kind, WasiCtx, ALL_RIGHTS};
use crate::errno::{Errno, WasiResult};
use crate::funcs::{
    set_times, FDFLAGS_APPEND, FDFLAGS_NONBLOCK, LOOKUP_SYMLINK_FOLLOW, OFLAGS_CREAT, OFLAGS_DIRECTORY, OFLAGS_EXCL,
    OFLAGS_TRUNC, RIGHT_FD_ALLOCATE, RIGHT_FD_FILESTAT_SET_SIZE, RIGHT_FD_READ, RIGHT_FD_READDIR, RIGHT_FD_WRITE,
};
use crate::memory::GuestMemory;
use crate::sys;
use crate::Abi;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// The longest path (or symlink target) a guest may pass, in bytes: Linux's `PATH_MAX`.
/// Longer ones are `ENAMETOOLONG` before a byte of them is read, so a guest cannot make
/// the host copy hundreds of MiB of path.
pub(crate) const MAX_PATH_LEN: u32 = 4096;

/// How guest paths resolve against a directory descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Resolve {
    /// Beneath the descriptor (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`);
    /// absolute paths and final `..` components are refused up front.
    #[default]
    Beneath,
    /// Plain `openat` and `*at` calls relative to the descriptor, following `..`, absolute
    /// paths and symlinks as a naive implementation would. Test seam only: it lets a test
    /// show that the kernel's own wall (each mount its own detached mount) stops escapes.
    Unchecked,
}

impl Resolve {
    /// Opens `path` relative to `dir` this way.
    fn open(self, dir: BorrowedFd, path: &str, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        match self {
            Resolve::Beneath => sys::open_beneath(dir, path, flags, mode),
            Resolve::Unchecked => sys::open_unchecked(dir, path, flags, mode),
        }
    }
}

/// Reads a guest path: at most [`MAX_PATH_LEN`] bytes (checked before reading), UTF-8,
/// without NULs, not empty and (beneath a mount) relative.
fn guest_path<'a>(m: &'a GuestMemory, ptr: u32, len: u32, resolve: Resolve) -> WasiResult<&'a str> {
    if len > MAX_PATH_LEN {
        return Err(Errno::Nametoolong);
    }
    let path = m.str(ptr, len)?;
    if path.contains('\0') {
        return Err(Errno::Ilseq);
    }
    if path.starts_with('/') && resolve == Resolve::Beneath {
        return Err(Errno::Notcapable);
    }
    if path.is_empty() {
        return Err(Errno::Noent);
    }
    Ok(path)
}

/// A path split into the directory that holds its last component (opened beneath the
/// guest's directory descriptor) and that component, a plain name.
struct Parent {
    dir: OwnedFd,
    name: String,
    trailing_slash: bool,
}

/// Splits `path` (from [`guest_path`]) and opens its parent directory.
fn parent(dir: &FdEntry, path: &str, resolve: Resolve) -> WasiResult<Parent> {
    let trimmed = path.trim_end_matches('/');
    let trailing_slash = trimmed.len() != path.len();
    if trimmed.is_empty() {
        return Err(Errno::Notcapable);
    }
    let (parent, name) = match trimmed.rfind('/') {
        Some(0) => ("/", &trimmed[1..]), // absolute: only with Resolve::Unchecked
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (".", trimmed),
    };
    debug_assert!(!name.is_empty() && !name.contains('/'));
    if resolve == Resolve::Beneath && (name == "." || name == "..") {
        return Err(if name == ".." { Errno::Notcapable } else { Errno::Inval });
    }
    let dir = resolve.open(dir.fd()?, parent, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    Ok(Parent { dir, name: name.to_string(), trailing_slash })
}

/// Opens the whole of `path` as `O_PATH`, following a final symlink (beneath the mount) or
/// not (then a symlink itself is opened).
fn open_path(ctx: &WasiCtx, dir: &FdEntry, path: &str, follow: bool) -> WasiResult<OwnedFd> {
    let flags = if follow { libc::O_PATH } else { libc::O_PATH | libc::O_NOFOLLOW };
    Ok(ctx.resolve.open(dir.fd()?, path, flags, 0)?)
}

fn writable_dir(ctx: &WasiCtx, fd: u32) -> WasiResult<&FdEntry> {
    let dir = ctx.dir(fd)?;
    if !dir.writable {
        return Err(Errno::Rofs);
    }
    Ok(dir)
}

/// `path_create_directory`.
pub(crate) fn path_create_directory(ctx: &mut WasiCtx, m: &GuestMemory, fd: u32, ptr: u32, len: u32) -> WasiResult<()> {
    let p = parent(writable_dir(ctx, fd)?, guest_path(m, ptr, len, ctx.resolve)?, ctx.resolve)?;
    ctx.count_created()?;
    Ok(sys::mkdir_at(p.dir.as_fd(), &p.name)?)
}

/// `path_filestat_get`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn path_filestat_get(
    ctx: &WasiCtx,
    abi: Abi,
    m: &mut GuestMemory,
    fd: u32,
    flags: u32,
    ptr: u32,
    len: u32,
    out: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let f = open_path(ctx, dir, guest_path(m, ptr, len, ctx.resolve)?, flags & LOOKUP_SYMLINK_FOLLOW != 0)?;
    let st = sys::fstat(f.as_fd())?;
    m.write(out, &abi.filestat(&st))
}

/// `path_filestat_set_times`: the target is opened first (beneath the mount, following a
/// final symlink only if asked) and its times set through that descriptor. Never
/// `utimensat(parent, name, ..)` with following: the kernel would follow a symlink `name`
/// wherever it points.
#[allow(clippy::too_many_arguments)]
pub(crate) fn path_filestat_set_times(
    ctx: &WasiCtx,
    m: &GuestMemory,
    fd: u32,
    flags: u32,
    ptr: u32,
    len: u32,
    atim: u64,
    mtim: u64,
    fst: u32,
) -> WasiResult<()> {
    let dir = writable_dir(ctx, fd)?;
    let target = open_path(ctx, dir, guest_path(m, ptr, len, ctx.resolve)?, flags & LOOKUP_SYMLINK_FOLLOW != 0)?;
    set_times(true, target.as_fd(), atim, mtim, fst)
}

/// `path_link`. Following a final symlink of the source (`LOOKUP_SYMLINK_FOLLOW`) is
/// `EINVAL`, as in Wasmtime: linking the target would need `linkat(AT_EMPTY_PATH)`, which
/// needs privileges. Without it the kernel links the symlink itself, never its target.
#[allow(clippy::too_many_arguments)]
pub(crate) fn path_link(
    ctx: &mut WasiCtx,
    m: &GuestMemory,
    old_fd: u32,
    old_flags: u32,
    old_ptr: u32,
    old_len: u32,
    new_fd: u32,
    new_ptr: u32,
    new_len: u32,
) -> WasiResult<()> {
    let from = parent(writable_dir(ctx, old_fd)?, guest_path(m, old_ptr, old_len, ctx.resolve)?, ctx.resolve)?;
    let to = parent(writable_dir(ctx, new_fd)?, guest_path(m, new_ptr, new_len, ctx.resolve)?, ctx.resolve)?;
    if old_flags & LOOKUP_SYMLINK_FOLLOW != 0 {
        return Err(Errno::Inval);
    }
    if from.trailing_slash || to.trailing_slash {
        return Err(Errno::Notdir);
    }
    ctx.count_created()?;
    Ok(sys::link_at(from.dir.as_fd(), &from.name, to.dir.as_fd(), &to.name)?)
}

/// Host `open` flags for `path_open`'s arguments, and whether the open writes.
fn open_flags(lookup: u32, oflags: u32, rights_base: u64, fdflags: u16) -> (i32, bool) {
    let write = rights_base & (RIGHT_FD_WRITE | RIGHT_FD_ALLOCATE | RIGHT_FD_FILESTAT_SET_SIZE) != 0
        || fdflags & FDFLAGS_APPEND != 0
        || oflags & OFLAGS_TRUNC != 0;
    let read = rights_base & (RIGHT_FD_READ | RIGHT_FD_READDIR) != 0 || !write;
    let mut flags = match (read, write) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    if oflags & OFLAGS_DIRECTORY != 0 {
        flags = libc::O_RDONLY | libc::O_DIRECTORY;
    }
    if oflags & OFLAGS_TRUNC != 0 {
        flags |= libc::O_TRUNC;
    }
    if fdflags & FDFLAGS_APPEND != 0 {
        flags |= libc::O_APPEND;
    }
    if fdflags & FDFLAGS_NONBLOCK != 0 {
        flags |= libc::O_NONBLOCK;
    }
    if lookup & LOOKUP_SYMLINK_FOLLOW == 0 {
        flags |= libc::O_NOFOLLOW;
    }
    (flags, write)
}

/// `path_open`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn path_open(
    ctx: &mut WasiCtx,
    m: &mut GuestMemory,
    fd: u32,
    lookup: u32,
    ptr: u32,
    len: u32,
    oflags: u32,
    rights_base: u64,
    rights_inheriting: u64,
    fdflags: u16,
    out: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let path = guest_path(m, ptr, len, ctx.resolve)?.to_string();
    let (flags, write) = open_flags(lookup, oflags, rights_base, fdflags);
    let creates = oflags & OFLAGS_CREAT != 0;
    if (write || creates) && !dir.writable {
        return Err(Errno::Rofs);
    }
    let writable = dir.writable;
    let inheriting = dir.rights_inheriting;
    let new_fd = ctx.next_fd()?;
    let dir_fd = ctx.dir(fd)?.fd()?.try_clone_to_owned()?;
    let resolve = ctx.resolve;
    let host = if creates {
        // With `excl` only a new file will do: never open an existing one first.
        let existing = if oflags & OFLAGS_EXCL != 0 {
            Err(io::Error::from_raw_os_error(libc::ENOENT))
        } else {
            resolve.open(dir_fd.as_fd(), &path, flags, 0)
        };
        match existing {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                // Creating: count it against the quota first.
                ctx.count_created()?;
                resolve.open(dir_fd.as_fd(), &path, flags | libc::O_CREAT | libc::O_EXCL, 0o666)?
            }
            other => other?,
        }
    } else {
        resolve.open(dir_fd.as_fd(), &path, flags, 0)?
    };
    if oflags & OFLAGS_TRUNC != 0 {
        ctx.shrinks += 1; // the file may be open through other entries, their sizes now stale
    }
    let st = sys::fstat(host.as_fd())?;
    let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR { Kind::Dir { preopen: None } } else { Kind::File };
    ctx.fds.insert(
        new_fd,
        FdEntry::new(
            kind,
            Some(host),
            writable,
            rights_base & inheriting & ALL_RIGHTS,
            rights_inheriting & inheriting & ALL_RIGHTS,
        ),
    );
    m.write_u32(out, new_fd)
}

/// `path_readlink`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn path_readlink(
    ctx: &WasiCtx,
    m: &mut GuestMemory,
    fd: u32,
    ptr: u32,
    len: u32,
    buf: u32,
    buf_len: u32,
    out: u32,
) -> WasiResult<()> {
    let p = parent(ctx.dir(fd)?, guest_path(m, ptr, len, ctx.resolve)?, ctx.resolve)?;
    let target = sys::readlink_at(p.dir.as_fd(), &p.name)?;
    let n = target.len().min(buf_len as usize);
    m.write(buf, &target[..n])?;
    m.write_u32(out, n as u32)
}

/// `path_remove_directory` (`is_dir`) and `path_unlink_file`.
pub(crate) fn path_remove(ctx: &WasiCtx, m: &GuestMemory, fd: u32, ptr: u32, len: u32, is_dir: bool) -> WasiResult<()> {
    let p = parent(writable_dir(ctx, fd)?, guest_path(m, ptr, len, ctx.resolve)?, ctx.resolve)?;
    if p.trailing_slash && !is_dir {
        return Err(Errno::Notdir);
    }
    Ok(sys::unlink_at(p.dir.as_fd(), &p.name, is_dir)?)
}

/// `path_rename`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn path_rename(
    ctx: &WasiCtx,
    m: &GuestMemory,
    old_fd: u32,
    old_ptr: u32,
    old_len: u32,
    new_fd: u32,
    new_ptr: u32,
    new_len: u32,
) -> WasiResult<()> {
    let from = parent(writable_dir(ctx, old_fd)?, guest_path(m, old_ptr, old_len, ctx.resolve)?, ctx.resolve)?;
    let to = parent(writable_dir(ctx, new_fd)?, guest_path(m, new_ptr, new_len, ctx.resolve)?, ctx.resolve)?;
    Ok(sys::rename_at(from.dir.as_fd(), &from.name, to.dir.as_fd(), &to.name)?)
}

/// `path_symlink`. The target is stored as given (bounded like a path): it is only ever
/// followed by lookups that resolve beneath a mount.
pub(crate) fn path_symlink(
    ctx: &mut WasiCtx,
    m: &GuestMemory,
    old_ptr: u32,
    old_len: u32,
    fd: u32,
    ptr: u32,
    len: u32,
) -> WasiResult<()> {
    if old_len > MAX_PATH_LEN {
        return Err(Errno::Nametoolong);
    }
    let target = m.str(old_ptr, old_len)?;
    let p = parent(writable_dir(ctx, fd)?, guest_path(m, ptr, len, ctx.resolve)?, ctx.resolve)?;
    if p.trailing_slash {
        return Err(Errno::Noent);
    }
    ctx.count_created()?;
    Ok(sys::symlink_at(target, p.dir.as_fd(), &p.name)?)
}
