//! Step 2, the filesystem view: the root becomes a fresh, empty, read-only tmpfs in the run's
//! own mount namespace, so no host path — no `/proc`, `/dev`, `/etc`, not even the allowed
//! directories — can be named any more.
//!
//! The design: WASI resolves every guest path beneath a preopened directory descriptor, and the
//! runner opens those (and the stdin file, and anything else it needs) before confinement.
//! Descriptors survive the root change; landlock (step 4) still checks every lookup made
//! through them. There is nothing to bind-mount, no `/dev/null` or `/dev/urandom` to provide
//! (the runtime uses `getrandom(2)`), and nothing of the host to hide: the simplest view that is
//! also the smallest.

use nix::mount::{MntFlags, MsFlags};
use std::io;

/// Why the root could not be replaced.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// The process has no private mount namespace: changing the root would change the host's.
    #[error(
        "empty root: this process has no private mount namespace (start it with sandbox::spawn, mount namespace on)"
    )]
    NoMountNamespace,
    /// A system call failed.
    #[error("empty root: {call}: {source}")]
    Call {
        /// The system call and its target.
        call: &'static str,
        /// The error.
        source: io::Error,
    },
}

/// Where the new root is mounted before it becomes the root (any existing directory would do).
const STAGING: &str = "/tmp";

/// Replaces the root with an empty read-only tmpfs. Needs the private mount namespace and the
/// capabilities `spawn` gives the child in its user namespace.
pub fn empty_root() -> Result<(), RootError> {
    if !crate::namespaces::spawned().is_some_and(|s| s.namespaces.mount) {
        return Err(RootError::NoMountNamespace);
    }
    let fail = |call| move |e| RootError::Call { call, source: crate::sys::io(e) };
    // Nothing done below may propagate to the host's mounts.
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(fail("mount('/', MS_REC|MS_PRIVATE)"))?;
    // The new root: a tiny tmpfs, never executable, no devices, no setuid.
    nix::mount::mount(
        Some("tmpfs"),
        STAGING,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=16k,nr_inodes=16,mode=0555"),
    )
    .map_err(fail("mount(tmpfs, '/tmp')"))?;
    nix::unistd::chdir(STAGING).map_err(fail("chdir('/tmp')"))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves the
    // tmpfs as the only filesystem, with no directory for the old root to be created first.
    nix::unistd::pivot_root(".", ".").map_err(fail("pivot_root('.', '.')"))?;
    nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(fail("umount2(old root, MNT_DETACH)"))?;
    nix::unistd::chdir("/").map_err(fail("chdir('/')"))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_BIND
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(fail("mount('/', MS_REMOUNT|MS_RDONLY)"))?;
    Ok(())
}
