//! Confinement of the current process, usable on its own.
//!
//! The sequence (the runner follows it; `docs/confinement.md` repeats it):
//!
//! 1. Before forking: build the seccomp filters ([`seccomp::compile_filters`]).
//! 2. [`spawn::spawn`]: fork into new user, pid, mount, network, IPC, UTS and cgroup
//!    namespaces; the child is pid 1 of its pid namespace and dies with its parent.
//! 3. In the child, open everything the run needs by path (mount directories, the stdin
//!    file): after step 4 nothing else can be opened.
//! 4. [`confine`]: rlimits, `no_new_privs`, landlock, capabilities dropped, seccomp — each
//!    step failing closed with an error naming the system call.

pub mod filesystem;
pub mod privileges;
pub mod rlimits;
pub mod root;
pub mod seccomp;
pub mod spawn;

use std::path::PathBuf;

pub use filesystem::LandlockStatus;
pub use rlimits::Rlimits;
pub use seccomp::{compile_filters, Filters};

/// What to confine the process to.
#[derive(Clone, Debug, Default)]
pub struct Confinement {
    /// Paths the process may still reach: `(path, writable)`.
    pub paths: Vec<(PathBuf, bool)>,
    /// Whether a kernel without landlock is an error.
    pub require_landlock: bool,
    /// Resource limits.
    pub rlimits: Rlimits,
    /// Replace the root with an empty tmpfs (needs the namespaces `spawn` creates).
    pub empty_root: bool,
}

/// What was actually applied (for the run report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Landlock's enforcement.
    pub landlock: LandlockStatus,
    /// Whether seccomp is on.
    pub seccomp: bool,
}

/// Why confinement failed (the run must not go on).
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// A resource limit.
    #[error(transparent)]
    Rlimit(#[from] rlimits::RlimitError),
    /// no_new_privs, securebits or capabilities.
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    /// Landlock.
    #[error(transparent)]
    Landlock(#[from] filesystem::LandlockError),
    /// The empty root.
    #[error(transparent)]
    Root(#[from] root::RootError),
    /// Seccomp.
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
}

/// Confines the calling process (see the crate documentation for where this fits).
pub fn confine(c: &Confinement, filters: &Filters) -> Result<Applied, ConfineError> {
    // Limits first: lowering them needs no privilege, and later steps cannot undo them.
    rlimits::apply(&c.rlimits)?;
    // no_new_privs before landlock and seccomp, which require it when unprivileged.
    privileges::no_new_privs()?;
    // Landlock's rules open their paths: while the host's paths still resolve.
    let prepared = filesystem::prepare(&c.paths)?;
    // The empty root: needs CAP_SYS_ADMIN (in our user namespace), so before dropping
    // capabilities; after it no host path can be named at all.
    if c.empty_root {
        root::empty_root()?;
    }
    let landlock = filesystem::restrict(prepared, c.require_landlock)?;
    // Capabilities after landlock (which needs none) and before seccomp (capset is not on the
    // allowlist).
    privileges::drop_capabilities()?;
    // Seccomp last: from here on only allowlisted system calls work.
    seccomp::apply(filters)?;
    Ok(Applied { landlock, seccomp: true })
}
