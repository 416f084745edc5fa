//! The host files the supervisor touches for a run — the mounts' directories, the stdin file,
//! the report — opened so that nothing an earlier guest left behind lends it the
//! supervisor's rights.
//!
//! Graders chain stages through folders: one run's rw mount is the next run's input. A guest
//! may leave a symlink where a later stage expects a file or a folder (`out/result.txt ->
//! /etc/shadow`, `out/data -> /`). So:
//! - a path the policy names is opened without following a final symlink (`O_NOFOLLOW`): the
//!   policy names a directory or file, not whatever a link there points to;
//! - when root starts the run, the opening is done with the run's identity (this thread's
//!   filesystem uid and gid, no supplementary groups): the run reaches only what its own
//!   identity could;
//! - a stdin file must be a regular file or a character device (a FIFO left behind would
//!   block the supervisor), opened without blocking;
//! - a mount's directory must not be, or be below, `/proc`, `/sys` or `/dev`, wherever the
//!   path came from, and `/` may be mounted read-only only: checked on the directory opened,
//!   walking its real ancestors;
//! - each mount becomes a detached mount of its own (`sandbox::mounts`, the second wall);
//! - the report is written to a new file beside its target and renamed into place: a symlink
//!   at the target is replaced, never followed.

use crate::plan::spec::RunFds;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a run's host file was refused.
#[derive(Debug, thiserror::Error)]
pub enum HostFileError {
    /// The path cannot be opened.
    #[error("{what} '{path}': {reason}")]
    Open {
        /// "mount directory", "stdin file".
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
    /// A directory the run may not mount.
    #[error("mount '{path}': {reason}")]
    Forbidden {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// The second wall could not be built.
    #[error("mount '{path}': cannot make it a mount of its own: {source}")]
    Detach {
        /// The path.
        path: PathBuf,
        /// The error.
        source: sandbox::MountError,
    },
    /// The report could not be written.
    #[error("failed to write report {path}: {source}")]
    Report {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// Opens the mounts and the stdin file of `policy` as its run may reach them.
///
/// # Errors
/// The first that is refused, in one line.
pub fn open_run_files(policy: &policy::Policy) -> Result<RunFds, HostFileError> {
    if !policy.mounts.is_empty() {
        // Before anything is opened: files opened afterwards are in the namespace where this
        // process may clone them.
        sandbox::mounts::own_mount_namespace()
            .map_err(|source| HostFileError::Detach { path: policy.mounts[0].host.clone(), source })?;
    }
    let identity = (policy.run_as.uid, policy.run_as.gid);
    let mut mounts = Vec::with_capacity(policy.mounts.len());
    for m in &policy.mounts {
        let writable = m.mode == policy::Mode::Rw;
        let dir = as_run_identity(identity, || open_directory(&m.host))?;
        check_mountable(&dir, &m.host, writable)?;
        let wall = if writable { sandbox::Writable::Yes } else { sandbox::Writable::No };
        let idmap = if writable { owner_mapping(&dir, identity) } else { None };
        let idmapped =
            idmap.as_ref().and_then(|userns| sandbox::mounts::detach(dir.as_fd(), wall, Some(userns.as_fd())).ok());
        let tree = match idmapped {
            Some(tree) => tree,
            // No idmapping wanted, or the filesystem has none: the child's access check says
            // whether the run's identity can write it.
            None => sandbox::mounts::detach(dir.as_fd(), wall, None)
                .map_err(|source| HostFileError::Detach { path: m.host.clone(), source })?,
        };
        mounts.push(tree);
    }
    let stdin = match &policy.stdin {
        policy::Stdin::File(path) => Some(as_run_identity(identity, || open_stdin(path))?),
        _ => None,
    };
    Ok(RunFds { mounts, stdin, module: None })
}

/// For a root caller's rw mount whose directory belongs to someone else than the run's
/// identity: a user namespace mapping the directory's owner to the run's identity, for an
/// idmapped mount (the run then writes as the owner, and what it creates belongs to the owner
/// on the host; no chown). `None` when not root, when the run owns it already, or when the
/// namespace cannot be made.
fn owner_mapping(dir: &File, run: (u32, u32)) -> Option<OwnedFd> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let meta = dir.metadata().ok()?;
    if meta.uid() == run.0 && meta.gid() == run.1 {
        return None;
    }
    // SAFETY: the supervisor opens a run's files before it starts any thread (the cache-store
    // thread comes after the child is spawned), directly or in a server's slot.
    unsafe { sandbox::mounts::owner_mapping((meta.uid(), meta.gid()), run) }.ok()
}

/// Checks that the run's files can be opened as a run would open them (`sandboxrun policy
/// check`): every mount's directory, the stdin file.
///
/// # Errors
/// The first that is refused, in one line.
pub fn check(policy: &policy::Policy) -> Result<(), HostFileError> {
    let identity = (policy.run_as.uid, policy.run_as.gid);
    for m in &policy.mounts {
        let dir = as_run_identity(identity, || open_directory(&m.host))?;
        check_mountable(&dir, &m.host, m.mode == policy::Mode::Rw)?;
    }
    if let policy::Stdin::File(path) = &policy.stdin {
        as_run_identity(identity, || open_stdin(path))?;
    }
    Ok(())
}

fn open_error(what: &'static str, path: &Path, e: &io::Error) -> HostFileError {
    // `O_NOFOLLOW` with `O_DIRECTORY` says ENOTDIR of a symlink.
    let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let reason = match e.raw_os_error() {
        Some(libc::ELOOP | libc::ENOTDIR) if symlink => "is a symbolic link (name the target itself)".to_string(),
        Some(libc::ENOENT) => "does not exist".to_string(),
        Some(libc::ENOTDIR) => "is not a directory".to_string(),
        Some(libc::EACCES) => match FsIdentity::current() {
            Some((uid, gid)) => format!(
                "is not readable by uid {uid} gid {gid}, the identity of runs started by root, which opens them as it (chown it, or set run_as in the policy)"
            ),
            None => e.to_string(),
        },
        _ => e.to_string(),
    };
    HostFileError::Open { what, path: path.to_path_buf(), reason }
}

fn open_directory(path: &Path) -> Result<File, HostFileError> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| open_error("mount directory", path, &e))
}

fn open_stdin(path: &Path) -> Result<OwnedFd, HostFileError> {
    let refused = |reason: String| HostFileError::Open { what: "stdin file", path: path.to_path_buf(), reason };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| open_error("stdin file", path, &e))?;
    let kind = file.metadata().map_err(|e| refused(e.to_string()))?.mode() & libc::S_IFMT;
    if kind != libc::S_IFREG && kind != libc::S_IFCHR {
        return Err(refused("is not a regular file".into()));
    }
    // Reads block again, as the guest expects.
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()))
        .map_err(|e| refused(format!("fcntl: {e}")))?;
    Ok(file.into())
}

/// Runs `open` with this thread's file accesses checked as `identity`, with no supplementary
/// groups, when this process is root; as itself otherwise.
fn as_run_identity<T>(
    identity: (u32, u32),
    open: impl FnOnce() -> Result<T, HostFileError>,
) -> Result<T, HostFileError> {
    if !nix::unistd::geteuid().is_root() {
        return open();
    }
    let _guard = FsIdentity::enter(identity.0, identity.1);
    open()
}

/// While alive, this thread's filesystem identity is another (root only): `setfsuid`,
/// `setfsgid` and `setgroups` as raw system calls act on the calling thread alone, and
/// leaving uid 0 for the filesystem clears the capabilities that bypass permissions
/// (`CAP_DAC_OVERRIDE` and the like) until it is restored.
struct FsIdentity {
    groups: Vec<libc::gid_t>,
}

impl FsIdentity {
    /// This thread's filesystem uid and gid while another than the process's own.
    fn current() -> Option<(u32, u32)> {
        // SAFETY: -1 is an invalid id: the calls change nothing and return the current ones.
        let (uid, gid) = unsafe { (libc::syscall(libc::SYS_setfsuid, -1), libc::syscall(libc::SYS_setfsgid, -1)) };
        let (uid, gid) = (uid as u32, gid as u32);
        (uid != nix::unistd::geteuid().as_raw()).then_some((uid, gid))
    }

    fn enter(uid: u32, gid: u32) -> FsIdentity {
        let groups = nix::unistd::getgroups().map(|g| g.iter().map(|g| g.as_raw()).collect()).unwrap_or_default();
        // SAFETY: an empty group list; the raw call changes this thread's groups only.
        unsafe { libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) };
        // SAFETY: integer arguments; these change this thread's filesystem ids only.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, gid);
            libc::syscall(libc::SYS_setfsuid, uid);
        }
        FsIdentity { groups }
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        // SAFETY: integer arguments, then a valid array of `groups.len()` gids: this thread's
        // identity back to root's.
        unsafe {
            libc::syscall(libc::SYS_setfsuid, 0);
            libc::syscall(libc::SYS_setfsgid, 0);
            libc::syscall(libc::SYS_setgroups, self.groups.len(), self.groups.as_ptr());
        }
    }
}

/// Refuses a directory that is, or is below, `/proc`, `/sys` or `/dev`, and `/` unless
/// read-only: by the directory opened and its real ancestors (`..` up to the root), not by
/// its path, which symlinks could disguise.
fn check_mountable(dir: &File, path: &Path, writable: bool) -> Result<(), HostFileError> {
    let identity = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let kernel: Vec<_> =
        ["/proc", "/sys", "/dev"].iter().filter_map(|p| std::fs::metadata(p).ok().map(|m| identity(&m))).collect();
    let root = std::fs::metadata("/").map(|m| identity(&m)).ok();
    let forbidden = |reason| HostFileError::Forbidden { path: path.to_path_buf(), reason };
    let unreadable =
        |e: io::Error| HostFileError::Open { what: "mount directory", path: path.to_path_buf(), reason: e.to_string() };
    let mut here = dir.try_clone().map_err(unreadable)?;
    let mut current = identity(&here.metadata().map_err(unreadable)?);
    if Some(current) == root && writable {
        return Err(forbidden("the host's root may only be mounted read-only"));
    }
    loop {
        if kernel.contains(&current) {
            return Err(forbidden("/proc, /sys and /dev (and what is below them) cannot be mounted"));
        }
        let parent = nix::fcntl::openat(
            &here,
            "..",
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| unreadable(io::Error::from(e)))?;
        let up = identity(&parent.metadata().map_err(unreadable)?);
        if up == current {
            return Ok(());
        }
        (here, current) = (parent, up);
    }
}

/// Writes a report: into a new file beside `path`, renamed over it (a symlink at `path` is
/// replaced, not followed; a reader never sees half a report).
///
/// # Errors
/// [`HostFileError::Report`].
pub fn write_report(path: &Path, text: &str) -> Result<(), HostFileError> {
    let fail = |source| HostFileError::Report { path: path.to_path_buf(), source };
    let name = path.file_name().ok_or_else(|| fail(io::Error::from_raw_os_error(libc::EISDIR)))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = dir.join(temp_name);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    let renamed = written.and_then(|()| std::fs::rename(&temp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    renamed.map_err(fail)
}
