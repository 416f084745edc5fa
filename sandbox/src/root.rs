//! An empty filesystem view: the process's root becomes a fresh, empty tmpfs in its own mount
//! namespace, so no host path (no `/proc`, no `/dev`, no `/etc`) can even be named. What the
//! run needs was opened before, as descriptors.

use std::ffi::CString;
use std::io;

/// Why the root could not be replaced.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct RootError {
    /// The system call that failed.
    pub call: &'static str,
    /// The error.
    pub source: io::Error,
}

fn check(call: &'static str, r: libc::c_int) -> Result<(), RootError> {
    if r != 0 {
        return Err(RootError { call, source: io::Error::last_os_error() });
    }
    Ok(())
}

/// Replaces the root with an empty read-only tmpfs. Requires a private mount namespace and
/// CAP_SYS_ADMIN in its user namespace (both given by `spawn`).
pub fn empty_root() -> Result<(), RootError> {
    let c = |s: &str| CString::new(s).expect("no NUL");
    let (root, tmpfs, new) = (c("/"), c("tmpfs"), c("/tmp"));
    // SAFETY: plain system calls with valid NUL-terminated strings; they only change this
    // process's private mount namespace.
    unsafe {
        // Nothing we do may propagate back to the host's mounts.
        check(
            "mount(MS_PRIVATE)",
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
        )?;
        // The new root: a small tmpfs mounted over /tmp (which exists on every system we run on).
        let opts = c("size=16k,mode=0555");
        check(
            "mount(tmpfs)",
            libc::mount(
                tmpfs.as_ptr(),
                new.as_ptr(),
                tmpfs.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                opts.as_ptr().cast(),
            ),
        )?;
        check("chdir", libc::chdir(new.as_ptr()))?;
        // pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
        // the tmpfs as the only filesystem (no directory for the old root is needed, so no
        // inode is created: our uid has no mapping in the new user namespace).
        let dot = c(".");
        check("pivot_root", libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as libc::c_int)?;
        check("umount2(old root)", libc::umount2(dot.as_ptr(), libc::MNT_DETACH))?;
        check("chdir", libc::chdir(root.as_ptr()))?;
        // Read-only from now on.
        check(
            "mount(remount ro)",
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
                std::ptr::null(),
            ),
        )?;
    }
    Ok(())
}
