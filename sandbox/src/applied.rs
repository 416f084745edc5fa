//! What [`crate::confine`] actually applied, for the run report, and why it failed.

use crate::landlock_rules::{LandlockApplied, LandlockError};
use crate::namespaces::NamespaceError;
use crate::privileges::PrivilegeError;
use crate::rlimits::{AppliedRlimit, RlimitError};
use crate::root::RootError;
use crate::seccomp::SeccompError;

/// What was applied, step by step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Step 0: the descriptors open once landlock is enforced, ascending: everything the run
    /// can still reach of the host goes through one of them.
    pub open_fds: Vec<std::os::fd::RawFd>,
    /// Step 1: the namespaces the process is in (`"user"` first; empty if [`crate::spawn()`] did
    /// not start it).
    pub namespaces: Vec<&'static str>,
    /// Step 1: the run's uid, the same inside its user namespace and outside.
    pub uid: u32,
    /// Step 1: the run's gid.
    pub gid: u32,
    /// Step 2: whether the root was replaced by an empty read-only tmpfs.
    pub empty_root: bool,
    /// Step 3: `no_new_privs` is set.
    pub no_new_privs: bool,
    /// Step 3: every capability set is empty and the securebits locked.
    pub capabilities_dropped: bool,
    /// Step 4: landlock.
    pub landlock: LandlockApplied,
    /// Step 5: the resource limits set.
    pub rlimits: Vec<AppliedRlimit>,
    /// Step 6: whether the parent moved the run into a cgroup.
    pub cgroup: bool,
    /// Step 7: the seccomp filter is installed.
    pub seccomp: bool,
}

/// Why confinement failed: the run must not go on. Each step has its variant; each message
/// names the step and the system call.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// Landlock and seccomp apply to the calling thread and those it starts later: threads
    /// started before would escape.
    #[error("confine must run before any thread starts: this process has {0} threads")]
    Threads(usize),
    /// The thread count could not be read.
    #[error("confine: failed to count threads in /proc/self/status: {0}")]
    ThreadCount(std::io::Error),
    /// Step 0: `/proc/self/fd` could not be opened or read.
    #[error("confine: failed to list /proc/self/fd: {0}")]
    Descriptors(std::io::Error),
    /// Step 1.
    #[error(transparent)]
    Namespaces(#[from] NamespaceError),
    /// Step 2.
    #[error(transparent)]
    Root(#[from] RootError),
    /// Step 3.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// Step 4 (also its rule handles, opened before step 2).
    #[error(transparent)]
    Landlock(#[from] LandlockError),
    /// Step 5.
    #[error(transparent)]
    Rlimit(#[from] RlimitError),
    /// Step 7 (also compiling the filter, first of all).
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
}
