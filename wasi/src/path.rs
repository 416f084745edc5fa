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
//! A trailing slash on the last component acts as in Wasmtime, whose `cap-std` opens that
//! component as a directory and acts on `.` inside it (`via_parent/open_parent.rs`):
//! `path_unlink_file("dir/")` is `EISDIR`, `"file/"` `ENOTDIR`; `path_link` and
//! `path_symlink` to `"missing/"` are `ENOENT`, to `"file/"` `ENOTDIR`, to `"dir/"` `EEXIST`;
//! `path_link` from `"dir/"` is `EPERM`; `path_rename` from `"file/"` is `ENOTDIR` while a
//! trailing slash on its target is ignored; `path_create_directory("d/")` creates `d`;
//! `path_open` leaves it to the kernel (`"file/"` `ENOTDIR`, `"dir/"` opens). One deliberate
//! difference: `path_remove_directory("dir/")` removes `dir`, as Linux's `rmdir` does
//! (Wasmtime's `unlinkat(dir, ".", AT_REMOVEDIR)` fails `EINVAL`; its own test suite leaves
//! this case open).
//!
//! A path is at most [`MAX_PATH_LEN`] bytes, refused before it is read or copied.
//! [`Resolve::Unchecked`] turns the wall off for one test (see
//! `WasiCtxBuilder::insecure_unchecked_paths_for_testing`).

use crate::ctx::{FdEntry, Kind, WasiCtx};
use crate::errno::{Errno, WasiResult};
use crate::funcs::{
    set_times, FDFLAGS_APPEND, FDFLAGS_DSYNC, FDFLAGS_NONBLOCK, FDFLAGS_RSYNC, FDFLAGS_SYNC, FDFLAGS_SYNCS,
    LOOKUP_SYMLINK_FOLLOW, OFLAGS_CREAT, OFLAGS_DIRECTORY, OFLAGS_EXCL, OFLAGS_TRUNC,
};
use crate::memory::GuestMemory;
use crate::rights::*;
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

/// What a trailing slash makes of `p`'s last component: that component opened as a
/// directory (beneath the mount). Its errors are the call's (`ENOENT`, `ENOTDIR`, ...).
fn as_dir(p: &Parent, resolve: Resolve) -> WasiResult<OwnedFd> {
    Ok(resolve.open(p.dir.as_fd(), &p.name, libc::O_PATH | libc::O_DIRECTORY, 0)?)
}

/// The directory `fd`, holding `rights`, in a writable mount.
fn writable_dir(ctx: &WasiCtx, fd: u32, rights: u64) -> WasiResult<&FdEntry> {
    let dir = ctx.dir_with(fd, rights)?;
    if !dir.writable {
        return Err(Errno::Rofs);
    }
    Ok(dir)
}

/// `path_create_directory`.
pub(crate) fn path_create_directory(ctx: &mut WasiCtx, m: &GuestMemory, fd: u32, ptr: u32, len: u32) -> WasiResult<()> {
    let dir = writable_dir(ctx, fd, PATH_CREATE_DIRECTORY)?;
    let p = parent(dir, guest_path(m, ptr, len, ctx.resolve)?, ctx.resolve)?;
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
    let dir = ctx.dir_with(fd, PATH_FILESTAT_GET)?;
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
    let dir = writable_dir(ctx, fd, PATH_FILESTAT_SET_TIMES)?;
    let target = open_path(ctx, dir, guest_path(m, ptr, len, ctx.resolve)?, flags & LOOKUP_SYMLINK_FOLLOW != 0)?;
    set_times(true, target.as_fd(), atim, mtim, fst)
}

/// The rights `path_link` needs of its source and target directories.
const LINK_RIGHTS: [u64; 2] = [PATH_LINK_SOURCE, PATH_LINK_TARGET];
/// The rights `path_rename` needs of its source and target directories.
const RENAME_RIGHTS: [u64; 2] = [PATH_RENAME_SOURCE, PATH_RENAME_TARGET];

/// The parents of a two-path operation's source and target, each `[fd, ptr, len]` in guest
/// memory, in writable directories holding `rights` (source's, target's).
fn source_and_target(
    ctx: &WasiCtx,
    m: &GuestMemory,
    source: [u32; 3],
    target: [u32; 3],
    rights: [u64; 2],
) -> WasiResult<(Parent, Parent)> {
    let old_dir = writable_dir(ctx, source[0], rights[0])?;
    let new_dir = writable_dir(ctx, target[0], rights[1])?;
    let from = parent(old_dir, guest_path(m, source[1], source[2], ctx.resolve)?, ctx.resolve)?;
    let to = parent(new_dir, guest_path(m, target[1], target[2], ctx.resolve)?, ctx.resolve)?;
    Ok((from, to))
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
    let (from, to) = source_and_target(ctx, m, [old_fd, old_ptr, old_len], [new_fd, new_ptr, new_len], LINK_RIGHTS)?;
    if old_flags & LOOKUP_SYMLINK_FOLLOW != 0 {
        return Err(Errno::Inval);
    }
    // Trailing slashes (module docs): a directory cannot be linked, nor a link made over one.
    if from.trailing_slash {
        as_dir(&from, ctx.resolve)?;
        return Err(Errno::Perm);
    }
    if to.trailing_slash {
        as_dir(&to, ctx.resolve)?;
        return Err(Errno::Exist);
    }
    ctx.count_created()?;
    Ok(sys::link_at(from.dir.as_fd(), &from.name, to.dir.as_fd(), &to.name)?)
}

/// Host flags that open a directory: read-only, whatever rights were asked.
fn dir_flags(lookup: u32) -> i32 {
    let nofollow = if lookup & LOOKUP_SYMLINK_FOLLOW == 0 { libc::O_NOFOLLOW } else { 0 };
    libc::O_RDONLY | libc::O_DIRECTORY | nofollow
}

/// Host `open` flags for `path_open`'s arguments (`rights_base` already cut to what the
/// directory lets the new descriptor have), and whether the open writes.
fn open_flags(lookup: u32, oflags: u32, rights_base: u64, fdflags: u16) -> (i32, bool) {
    if oflags & OFLAGS_DIRECTORY != 0 {
        return (dir_flags(lookup), false);
    }
    let write = rights_base & (FD_WRITE | FD_ALLOCATE | FD_FILESTAT_SET_SIZE) != 0
        || fdflags & FDFLAGS_APPEND != 0
        || oflags & OFLAGS_TRUNC != 0;
    let read = rights_base & (FD_READ | FD_READDIR) != 0 || !write;
    let mut flags = match (read, write) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    for (bit, host) in [(FDFLAGS_SYNC, libc::O_SYNC), (FDFLAGS_DSYNC, libc::O_DSYNC), (FDFLAGS_RSYNC, libc::O_RSYNC)] {
        if fdflags & bit != 0 {
            flags |= host;
        }
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

/// `path_open`. Rights first: `PATH_OPEN`, plus `PATH_CREATE_FILE` to create and
/// `PATH_FILESTAT_SET_SIZE` to truncate. `O_CREAT | O_EXCL` on an existing path is `EEXIST`.
/// A directory is opened read-only whatever rights are asked (the spec lets an open drop the
/// rights that do not apply to what it opened), so `path_open(".")` with the preopen's own
/// rights works; Wasmtime instead fails a directory asked with `FD_WRITE` with `EISDIR`.
/// The synchronized-I/O fdflags go to the host (`O_SYNC`, `O_DSYNC`, `O_RSYNC`) and are
/// reported by `fd_fdstat_get` (Wasmtime refuses them with `ENOTSUP`).
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
    let creates = oflags & OFLAGS_CREAT != 0;
    let exclusive = creates && oflags & OFLAGS_EXCL != 0;
    let truncates = oflags & OFLAGS_TRUNC != 0;
    if oflags & OFLAGS_DIRECTORY != 0 && oflags & (OFLAGS_CREAT | OFLAGS_EXCL | OFLAGS_TRUNC) != 0 {
        return Err(Errno::Inval); // as Wasmtime (filesystem.rs, open_at)
    }
    let mut needed = PATH_OPEN;
    if creates {
        needed |= PATH_CREATE_FILE;
    }
    if truncates {
        needed |= PATH_FILESTAT_SET_SIZE;
    }
    let dir = ctx.dir_with(fd, needed)?;
    let path = guest_path(m, ptr, len, ctx.resolve)?.to_string();
    let inheriting = dir.rights_inheriting;
    let (base, inherited) = (rights_base & inheriting & ALL_RIGHTS, rights_inheriting & inheriting & ALL_RIGHTS);
    let (flags, write) = open_flags(lookup, oflags, base, fdflags);
    let writable = dir.writable;
    if !writable && (creates || truncates) {
        return Err(Errno::Rofs);
    }
    let new_fd = ctx.next_fd()?;
    let dir_fd = dir.fd()?.try_clone_to_owned()?;
    let resolve = ctx.resolve;
    let open = |flags: i32| resolve.open(dir_fd.as_fd(), &path, flags, 0o666);
    let is_errno = |e: &io::Error, errno: i32| e.raw_os_error() == Some(errno);
    let host = if write && !writable {
        // A read-only mount opens nothing for writing, but a directory opens read-only.
        open(dir_flags(lookup)).map_err(|_| Errno::Rofs)?
    } else if exclusive {
        ctx.count_created()?;
        open(flags | libc::O_CREAT | libc::O_EXCL).inspect_err(|_| ctx.uncount_created())?
    } else if creates {
        match open(flags) {
            Err(e) if is_errno(&e, libc::ENOENT) => {
                // Creating: count it against the quota first.
                ctx.count_created()?;
                open(flags | libc::O_CREAT | libc::O_EXCL).inspect_err(|_| ctx.uncount_created())?
            }
            other => other?,
        }
    } else {
        match open(flags) {
            // A directory asked with write rights: opened read-only, the rights dropped.
            Err(e) if is_errno(&e, libc::EISDIR) && write && !truncates => open(dir_flags(lookup))?,
            other => other?,
        }
    };
    if truncates {
        ctx.shrinks += 1; // the file may be open through other entries, their sizes now stale
    }
    let st = sys::fstat(host.as_fd())?;
    let (kind, base) = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        (Kind::Dir { preopen: None }, base & DIR_RIGHTS)
    } else {
        (Kind::File, base)
    };
    let mut entry = FdEntry::new(kind, Some(host), writable, base, inherited);
    entry.sync_flags = fdflags & FDFLAGS_SYNCS;
    ctx.install(new_fd, entry);
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
    let p = parent(ctx.dir_with(fd, PATH_READLINK)?, guest_path(m, ptr, len, ctx.resolve)?, ctx.resolve)?;
    let target = sys::readlink_at(p.dir.as_fd(), &p.name)?;
    let n = target.len().min(buf_len as usize);
    m.write(buf, &target[..n])?;
    m.write_u32(out, n as u32)
}

/// `path_remove_directory` (`is_dir`) and `path_unlink_file` (trailing slashes: module docs).
pub(crate) fn path_remove(ctx: &WasiCtx, m: &GuestMemory, fd: u32, ptr: u32, len: u32, is_dir: bool) -> WasiResult<()> {
    let right = if is_dir { PATH_REMOVE_DIRECTORY } else { PATH_UNLINK_FILE };
    let p = parent(writable_dir(ctx, fd, right)?, guest_path(m, ptr, len, ctx.resolve)?, ctx.resolve)?;
    if p.trailing_slash && !is_dir {
        as_dir(&p, ctx.resolve)?;
        return Err(Errno::Isdir);
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
    let (from, to) = source_and_target(ctx, m, [old_fd, old_ptr, old_len], [new_fd, new_ptr, new_len], RENAME_RIGHTS)?;
    // A trailing slash on the source asks for a directory (the kernel's `rename("f/", ..)`
    // checks the entry itself, never a symlink's target); on the target it is ignored.
    if from.trailing_slash && sys::lstat_at(from.dir.as_fd(), &from.name)?.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(Errno::Notdir);
    }
    Ok(sys::rename_at(from.dir.as_fd(), &from.name, to.dir.as_fd(), &to.name)?)
}

/// `path_symlink`. The target is stored as given (bounded like a path): it is only ever
/// followed by lookups that resolve beneath a mount. An absolute target is refused with
/// `EPERM`, as Wasmtime does (`cap-std`'s `symlink` calls it an escape attempt).
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
    let dir = writable_dir(ctx, fd, PATH_SYMLINK)?;
    if target.starts_with('/') && ctx.resolve == Resolve::Beneath {
        return Err(Errno::Perm);
    }
    let p = parent(dir, guest_path(m, ptr, len, ctx.resolve)?, ctx.resolve)?;
    if p.trailing_slash {
        as_dir(&p, ctx.resolve)?;
        return Err(Errno::Exist);
    }
    ctx.count_created()?;
    Ok(sys::symlink_at(target, p.dir.as_fd(), &p.name)?)
}
