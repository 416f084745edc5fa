//! Confinement of the current process, usable on its own: the runner builds a [`Confinement`]
//! (plain data) from its policy; this crate knows nothing of policies.
//!
//! The sequence the runner follows (`docs/confinement.md` repeats it with the threat model):
//!
//! - **Parent, before forking**: [`compile_filter`] (seccomp BPF, with [`PID_IN_NAMESPACE`]),
//!   and optionally [`Cgroup::create`] (memory.max, pids.max).
//! - **Parent**: [`spawn()`] — `clone(2)` into new namespaces (the run is pid 1 of its own),
//!   id maps written, child moved into the cgroup, then the child runs its function.
//! - **Child**: open everything the run needs by path (WASI's preopened directories, the stdin
//!   file), or receive it from the parent already open: after confinement no host path
//!   resolves. Then [`confine_with`] (or [`confine`], which compiles the filter itself), and
//!   only then touch untrusted input.
//! - Or in two halves: [`prepare`] (steps 0 to 3) before the run is known — a supervisor can
//!   start children ahead of time — then [`Prepared::finish`] (steps 4 to 7) with landlock
//!   rules on the run's open descriptors ([`landlock_rules::fd_rules`]).
//! - **Parent**: wait for the child; [`Child::termination`] names the system call of a seccomp
//!   death; read [`Cgroup::memory_peak`] and [`Cgroup::oom_kills`], then [`Cgroup::remove`].
//!
//! The steps, in the order [`confine_with`] applies them, each failing closed with an error
//! naming the step and the system call:
//!
//! 0. the descriptors left open are listed, through `/proc/self/fd` opened before step 2 and
//!    read after step 4 (the caller closes the inherited ones first with
//!    [`fds::close_inherited`]) — [`fds`];
//! 1. namespaces (created by [`spawn()`]; checked here) — [`namespaces`];
//! 2. an empty read-only root — [`root`];
//! 3. `no_new_privs`, not dumpable, securebits locked, every capability dropped — [`privileges`];
//! 4. landlock — [`landlock_rules`];
//! 5. rlimits — [`rlimits`];
//! 6. cgroup (placed by [`spawn()`]; reported here) — [`cgroup`];
//! 7. seccomp, last — [`seccomp`].

#![deny(missing_docs)]

pub mod applied;
pub mod cgroup;
pub mod config;
pub mod fds;
mod handshake;
pub mod landlock_rules;
pub mod mounts;
pub mod namespaces;
pub mod privileges;
pub mod rlimits;
pub mod root;
pub mod seccomp;
pub mod spawn;
mod sys;

pub use applied::{Applied, ConfineError};
pub use cgroup::{Cgroup, CgroupError, CgroupLimits, CgroupParent};
pub use config::{Access, Confinement, Namespaces, PathRule, Rlimits, RunAs};
pub use handshake::HandshakeError;
pub use landlock_rules::{FdRule, LandlockApplied};
pub use mounts::{MountError, Writable};
pub use rlimits::AppliedRlimit;
pub use seccomp::{compile_filter, Arch, Filter, Violation, ViolationSlot, PID_IN_NAMESPACE};
pub use spawn::{spawn, Child, SpawnError, Termination};

/// Confines the calling process, compiling the seccomp filter for itself first (see
/// [`confine_with`]).
///
/// # Errors
/// As for [`confine_with`]; also [`ConfineError::Seccomp`] if the architecture has no list.
pub fn confine(c: &Confinement) -> Result<Applied, ConfineError> {
    let arch = Arch::native().ok_or(seccomp::SeccompError::Mismatch {
        compiled: "no architecture".into(),
        actual: std::env::consts::ARCH.into(),
    })?;
    let filter = compile_filter(arch, Some(nix::unistd::getpid().as_raw()))?;
    confine_with(c, &filter)
}

/// Confines the calling process: steps 1 to 7 in order (see the crate documentation). From
/// here on, it reaches only the descriptors it already holds and the paths of `c.paths`
/// (through those descriptors), and makes only the system calls of the allowlist.
///
/// # Errors
/// [`ConfineError`] naming the step and system call that failed; the process must then not run
/// untrusted code (it may be partly confined).
pub fn confine_with(c: &Confinement, filter: &Filter) -> Result<Applied, ConfineError> {
    // Landlock's rule handles are opened now, while the host's paths still resolve: after
    // step 2 none does.
    let rules = landlock_rules::open_rules(&c.paths)?;
    prepare(c)?.finish(rules, c.require_landlock, &c.rlimits, filter)
}

/// A process confined up to the steps that depend on what it will run: namespaces checked, the
/// empty root in place, privileges dropped (steps 1 to 3). [`Prepared::finish`] applies the
/// rest — landlock on descriptors, rlimits, seccomp — once the run is known: a supervisor can
/// start and prepare a child ahead of time, then hand it a run's descriptors.
#[derive(Debug)]
pub struct Prepared {
    namespaces: Vec<&'static str>,
    empty_root: bool,
    /// Step 0's listing of the descriptors, read by `finish`.
    fds: fds::FdList,
}

/// Steps 1 to 3 of [`confine_with`] (see [`Prepared`]). Anything the run will reach by path
/// must be open before this; afterwards no host path resolves. The process must stay
/// single-threaded until [`Prepared::finish`].
///
/// # Errors
/// [`ConfineError`] naming the step and system call that failed.
pub fn prepare(c: &Confinement) -> Result<Prepared, ConfineError> {
    // Landlock and seccomp bind the calling thread and its future threads only. Counted while
    // /proc still resolves (before step 2).
    match sys::thread_count() {
        Ok(1) => {}
        Ok(n) => return Err(ConfineError::Threads(n)),
        Err(e) => return Err(ConfineError::ThreadCount(e)),
    }

    // 0. The descriptors the run keeps are listed when confinement ends, through /proc/self/fd
    //    opened now (before step 2 hides /proc).
    let fds = fds::FdList::open().map_err(ConfineError::Descriptors)?;

    // 1. Namespaces: entered by spawn (a pid namespace needs a new process); checked here.
    let namespaces = namespaces::check(&c.namespaces)?;

    // 2. The empty root. Needs CAP_SYS_ADMIN in our user namespace: before step 3.
    if c.empty_root {
        root::empty_root()?;
    }

    // 3. Privileges. no_new_privs before landlock and seccomp, which require it of a process
    //    without CAP_SYS_ADMIN; capabilities after the last step that needs them (2).
    privileges::drop_privileges()?;
    Ok(Prepared { namespaces, empty_root: c.empty_root, fds })
}

impl Prepared {
    /// The descriptors this holds until [`Prepared::finish`]: a caller closing descriptors
    /// in between must keep them.
    pub fn descriptors(&self) -> Vec<std::os::fd::RawFd> {
        vec![self.fds.fd()]
    }

    /// Steps 4 to 7: landlock with `rules` (required or best effort), `rlimits`, then
    /// seccomp; the descriptors open after landlock are the report's.
    ///
    /// # Errors
    /// [`ConfineError`] naming the step and system call that failed; the process must then not
    /// run untrusted code.
    pub fn finish(
        self,
        rules: landlock_rules::Rules,
        require_landlock: bool,
        rlimits: &Rlimits,
        filter: &Filter,
    ) -> Result<Applied, ConfineError> {
        let Prepared { namespaces, empty_root, fds: mut listing } = self;

        // 4. Landlock, enforced with the handles opened before step 2.
        let landlock = landlock_rules::enforce(rules, require_landlock)?;

        // 0. What the run keeps (the ruleset's descriptor is gone now): read through the
        //    handle step 0 opened, which is closed then.
        let open_fds = listing.list().map_err(ConfineError::Descriptors)?;
        drop(listing);

        // 5. Limits. Lowering needs no privilege; after the filesystem steps so RLIMIT_NOFILE
        //    cannot starve them; before seccomp, which refuses setrlimit.
        let rlimits = rlimits::apply(rlimits)?;

        // 6. The cgroup: the parent moved the child in before it ran anything; nothing to do
        //    here.
        let cgroup = namespaces::spawned().is_some_and(|s| s.cgroup);
        // Read while getuid is still allowed.
        let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());

        // 7. Seccomp, last: from here on only allowlisted system calls run (no prctl, no
        //    setrlimit, no landlock calls, no mount).
        seccomp::apply(filter)?;

        Ok(Applied {
            open_fds,
            namespaces,
            uid,
            gid,
            empty_root,
            no_new_privs: true,
            capabilities_dropped: true,
            landlock,
            rlimits,
            cgroup,
            seccomp: true,
        })
    }
}
