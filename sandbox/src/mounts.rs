//! The second wall around a run's directories: each reaches the run as a mount of its own.
//!
//! A descriptor of a host directory is a door into the whole host tree: `..` at its top walks
//! up, and a symlink resolved by the kernel on the run's behalf can point anywhere. WASI's
//! path resolution (`RESOLVE_BENEATH`) is the first wall; this is the second, held by the
//! kernel alone: [`detach`] clones the directory into a detached mount
//! (`open_tree(OPEN_TREE_CLONE)`) whose root *is* that directory. A detached mount has no
//! parent, so `..` at its root stays there; an absolute symlink resolves against the run's
//! own (empty) root; and `mount_setattr` makes it `nosuid`, `nodev`, `noexec`, and read-only
//! at the VFS for a read-only mount (writes fail with `EROFS`, whatever a bug above lets by).
//!
//! Cloning needs `CAP_SYS_ADMIN` over the caller's mount namespace, and a directory in that
//! namespace. Root has it in the host's. A caller that is not root first takes a user and
//! mount namespace of its own ([`own_mount_namespace`]), where it is mapped to itself: it
//! opens files with exactly its own rights, and may clone trees of its private copy of the
//! mount table.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a directory could not be made a mount of its own.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// `open_tree`, `mount_setattr` or `unshare` failed.
    #[error("{call}: {source}")]
    Call {
        /// The system call.
        call: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The process's own user and mount namespace could not be set up.
    #[error("a mount namespace of its own: writing {file}: {source}")]
    IdMap {
        /// The `/proc/self` file.
        file: &'static str,
        /// The error.
        source: io::Error,
    },
}

fn call(name: &'static str) -> impl Fn(io::Error) -> MountError {
    move |source| MountError::Call { call: name, source }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MS_PRIVATE: u64 = 1 << 18;

/// `struct mount_attr` (version 0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Whether a run's directory may be written through its mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writable {
    /// Read-only at the VFS.
    No,
    /// Read-write.
    Yes,
}

/// A detached clone of the tree at `dir` (its submounts included), `nosuid,nodev,noexec`,
/// read-only unless `writable`; the returned descriptor is its root. The clone belongs to no
/// mount namespace: it lives as long as a descriptor of it or of a file in it. With `idmap`
/// (a user namespace from [`owner_mapping`]), the clone is an idmapped mount: ids on disk are
/// seen, and files created are written, through that namespace's mapping.
///
/// # Errors
/// [`MountError::Call`]: the caller may not clone mounts here (not root, and not in a mount
/// namespace of its own: see [`own_mount_namespace`]), `dir` is not in its mount namespace,
/// or (`mount_setattr`) the filesystem cannot be idmapped.
pub fn detach(dir: BorrowedFd, writable: Writable, idmap: Option<BorrowedFd>) -> Result<OwnedFd, MountError> {
    let flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE;
    // SAFETY: a valid descriptor, an empty NUL-terminated path and flags; the kernel returns a
    // new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, dir.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(call("open_tree")(io::Error::last_os_error()));
    }
    // SAFETY: a new descriptor, owned from here on.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    if writable == Writable::No {
        set |= MOUNT_ATTR_RDONLY;
    }
    if idmap.is_some() {
        set |= MOUNT_ATTR_IDMAP;
    }
    let userns_fd = idmap.map_or(0, |fd| fd.as_raw_fd() as u64);
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: MS_PRIVATE, userns_fd };
    let flags = libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE;
    // SAFETY: a valid descriptor, an empty path, and a mount_attr of the size passed, which
    // the kernel only reads.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(call("mount_setattr")(io::Error::last_os_error()));
    }
    Ok(tree)
}

/// A user namespace that maps `owner` (a uid and gid on disk) to `run` (the identity a run
/// takes), and nothing else: with it, [`detach`] makes an idmapped mount on which `owner`'s
/// files are the run's, and files the run creates are `owner`'s on disk. For a root caller
/// whose read-write directory belongs to someone else than the run's identity (no chown).
///
/// # Safety
/// Forks (a child that only waits and exits): call it from a single-threaded process, as for
/// `fork`.
///
/// # Errors
/// [`MountError`]: the namespace could not be made (the caller is not root, say).
pub unsafe fn owner_mapping(owner: (u32, u32), run: (u32, u32)) -> Result<OwnedFd, MountError> {
    let (wait_read, wait_write) = std::io::pipe().map_err(call("pipe2"))?;
    // SAFETY: the caller guarantees a single-threaded process; the child makes only
    // async-signal-safe calls (close, read, _exit).
    let pid = unsafe { crate::sys::clone_fork(libc::CLONE_NEWUSER) }.map_err(call("clone(CLONE_NEWUSER)"))?;
    if pid == 0 {
        // SAFETY: in the child: closes its copy of the write end, waits for the parent to
        // close its own (end of file), and leaves without running any destructor.
        unsafe {
            libc::close(wait_write.as_raw_fd());
            let mut byte = 0u8;
            libc::read(wait_read.as_raw_fd(), (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(wait_read);
    let made = (|| {
        let write = |file: &str, text: String| {
            std::fs::write(format!("/proc/{pid}/{file}"), text)
                .map_err(|source| MountError::Call { call: "write id map", source })
        };
        write("uid_map", format!("{} {} 1\n", owner.0, run.0))?;
        write("gid_map", format!("{} {} 1\n", owner.1, run.1))?;
        std::fs::File::open(format!("/proc/{pid}/ns/user")).map(OwnedFd::from).map_err(call("open ns/user"))
    })();
    drop(wait_write);
    // SAFETY: waiting for our own child, which exits at once now.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    made
}

static OWN_NAMESPACE: AtomicBool = AtomicBool::new(false);

/// Moves this process into a user and mount namespace of its own, in which it is mapped to
/// its own uid and gid (so files see the same identity, with no privilege over them), and may
/// therefore [`detach`] trees of its private copy of the mount table. Does nothing for root
/// (it may clone trees where it is), or when done before. The working directory moves to the
/// copy of its mount.
///
/// # Errors
/// [`MountError`]: user namespaces are not available to this process, or it has threads.
pub fn own_mount_namespace() -> Result<(), MountError> {
    if nix::unistd::geteuid().is_root() || OWN_NAMESPACE.load(Ordering::Relaxed) {
        return Ok(());
    }
    let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| call("unshare(CLONE_NEWUSER|CLONE_NEWNS)")(crate::sys::io(e)))?;
    let write = |file: &'static str, text: String| {
        std::fs::write(file, text).map_err(|source| MountError::IdMap { file, source })
    };
    write("/proc/self/setgroups", "deny\n".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1\n"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1\n"))?;
    OWN_NAMESPACE.store(true, Ordering::Relaxed);
    Ok(())
}

/// The mount options of the mount `fd` is on, as `statvfs`'s flags (`ST_RDONLY`, `ST_NOSUID`,
/// `ST_NODEV`, `ST_NOEXEC`).
pub fn mount_flags(fd: BorrowedFd) -> io::Result<u64> {
    // SAFETY: all-zero is a valid statvfs buffer.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and out-pointer.
    if unsafe { libc::fstatvfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_flag as u64)
}
