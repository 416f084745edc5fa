//! Step 5, resource limits: the kernel's backstops behind the supervisor's own accounting.
//!
//! Memory: each linear memory reserves 6 GiB of address space as `PROT_NONE` (`MAP_NORESERVE`)
//! and `memory.grow` makes a prefix of it accessible with `mprotect`. `RLIMIT_AS` counts the
//! reservations, so any value small enough to matter breaks instantiation: it is left alone.
//! `RLIMIT_DATA` counts private writable mappings only — heap, allocator arenas, thread stacks,
//! and each part of a reservation the moment `mprotect` makes it writable (that `mprotect`
//! fails with ENOMEM past the limit) — so it bounds the anonymous memory a run can use. Shared
//! mappings, which it would not count, are refused by seccomp. It does not count page cache or
//! kernel memory: only a cgroup's `memory.max` (step 6) does.
//!
//! Signals: the run is pid 1 of its pid namespace, and the kernel does not apply the default
//! action of a signal sent to a namespace's init (only of forced ones: SIGKILL, SIGSTOP,
//! faults, seccomp's SIGSYS). So SIGXCPU at the soft CPU limit does nothing to a spawned run:
//! the hard limit, a second later, sends SIGKILL, and the supervisor names the verdict by
//! comparing the run's CPU time to the limit (a process that is not a namespace's init dies of
//! SIGXCPU at the soft limit). SIGXFSZ is ignored explicitly, pid 1 or not: a write past the
//! file size limit fails with EFBIG, which WASI passes on to the guest.

use crate::config::Rlimits;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{SigHandler, Signal};
use std::io;

/// Why a limit could not be set.
#[derive(Debug, thiserror::Error)]
#[error("rlimits: {call}({resource}): {source}")]
pub struct RlimitError {
    /// `getrlimit` or `setrlimit`.
    pub call: &'static str,
    /// The limit.
    pub resource: &'static str,
    /// The error.
    pub source: io::Error,
}

/// A limit as set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppliedRlimit {
    /// The resource, `"RLIMIT_CPU"` etc.
    pub resource: &'static str,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

fn set(resource: Resource, name: &'static str, soft: u64, hard: u64) -> Result<AppliedRlimit, RlimitError> {
    let fail = |call| move |e| RlimitError { call, resource: name, source: crate::sys::io(e) };
    // Never above the inherited hard limit: raising it needs CAP_SYS_RESOURCE, and lowering
    // a requested value is stricter, never laxer.
    let (_, current_hard) = getrlimit(resource).map_err(fail("getrlimit"))?;
    let (soft, hard) = (soft.min(current_hard), hard.min(current_hard));
    setrlimit(resource, soft, hard).map_err(fail("setrlimit"))?;
    Ok(AppliedRlimit { resource: name, soft, hard })
}

/// Sets the limits, and no core dumps or locked memory. Returns what was set.
pub fn apply(limits: &Rlimits) -> Result<Vec<AppliedRlimit>, RlimitError> {
    let mut applied = vec![
        set(Resource::RLIMIT_CORE, "RLIMIT_CORE", 0, 0)?,
        // Nothing to lock: mlock, io_uring and bpf are all refused by seccomp anyway.
        set(Resource::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK", 0, 0)?,
    ];
    if let Some(s) = limits.cpu_seconds {
        // SIGXCPU at the soft limit (ignored by a namespace's init), SIGKILL a second later.
        applied.push(set(Resource::RLIMIT_CPU, "RLIMIT_CPU", s, s.saturating_add(1))?);
    }
    if limits.file_size.is_some() {
        // A write past the limit fails with EFBIG instead of raising SIGXFSZ.
        // SAFETY: SIG_IGN installs no handler.
        unsafe { nix::sys::signal::signal(Signal::SIGXFSZ, SigHandler::SigIgn) }.map_err(|e| RlimitError {
            call: "rt_sigaction",
            resource: "SIGXFSZ",
            source: crate::sys::io(e),
        })?;
    }
    let plain = [
        (limits.data, Resource::RLIMIT_DATA, "RLIMIT_DATA"),
        (limits.address_space, Resource::RLIMIT_AS, "RLIMIT_AS"),
        (limits.file_size, Resource::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        (limits.open_files, Resource::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        (limits.processes, Resource::RLIMIT_NPROC, "RLIMIT_NPROC"),
        (limits.stack, Resource::RLIMIT_STACK, "RLIMIT_STACK"),
    ];
    for (value, resource, name) in plain {
        if let Some(v) = value {
            applied.push(set(resource, name, v, v)?);
        }
    }
    Ok(applied)
}
