//! A run's confinement, from its policy: what the runner asks of the `sandbox` crate (the
//! namespaces and identity, then landlock rules on the run's descriptors and rlimits), the
//! check that the run's identity can use its mounts, and how the report shows what was
//! actually applied.

use crate::plan::spec::{RunFds, RunSpec};
use crate::supervise::report;
use policy::{Limits, Policy};
use std::os::fd::{AsFd, AsRawFd};

/// Private memory the process may use besides the guest's linear memories: the runtime, the
/// compiler's working set (about 150 MiB for a 2 MB module on two threads), WASI buffers.
pub const RUNTIME_ALLOWANCE: u64 = 384 << 20;

/// Descriptors the process needs besides the guest's open files: stdio, the pipes to the
/// parent, the compiler's and the runtime's own.
const RUNTIME_DESCRIPTORS: u64 = 64;

/// Threads the process may have: the compiler's pool (one per core) and the main thread, with
/// room for large machines. Guests cannot start threads.
const MAX_THREADS: u64 = 256;

/// What [`sandbox::spawn`] and [`sandbox::prepare`] need of a run of `policy`: every
/// namespace, an empty root, the policy's identity. The rest of the confinement depends on
/// the run's descriptors and limits, and is applied by the child ([`landlock_rules`],
/// [`rlimits`]).
pub fn for_policy(policy: &Policy) -> sandbox::Confinement {
    sandbox::Confinement {
        run_as: sandbox::RunAs { uid: policy.run_as.uid, gid: policy.run_as.gid },
        ..sandbox::Confinement::default()
    }
}

/// The rlimits of a run with these limits.
pub fn rlimits(limits: &Limits) -> sandbox::Rlimits {
    sandbox::Rlimits {
        // A backstop only: the supervisor stops the run at the exact CPU limit.
        cpu_seconds: Some(limits.cpu_time.as_secs_f64().ceil() as u64 + 1),
        data: Some(limits.memory.saturating_add(RUNTIME_ALLOWANCE)),
        file_size: Some(limits.file_size),
        // WASI enforces the guest's own limit with EMFILE; this bounds the process.
        open_files: Some(limits.open_files.saturating_add(RUNTIME_DESCRIPTORS)),
        processes: Some(MAX_THREADS),
        address_space: None,
        stack: Some(stack_needed(limits)),
    }
}

/// Stack the host's own frames need below the guest's deepest (WASI calls, the trap handler,
/// the runtime's entry).
const HOST_STACK: u64 = 1 << 20;

/// The largest stack a run may ask for: the kernel keeps at least 128 MiB between the stack
/// and the mappings below it.
pub const MAX_WASM_STACK: u64 = 64 << 20;

/// The main thread's stack a run with these limits needs: its guest's stack and the host's.
pub fn stack_needed(limits: &Limits) -> u64 {
    limits.wasm_stack.saturating_add(HOST_STACK)
}

/// Why the child cannot set up the run it was given (the run ends as an error).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// More stack than a run may have.
    #[error("limits.wasm_stack of {} is more than the {} a run may have", policy::format_size(*.asked), policy::format_size(MAX_WASM_STACK))]
    StackTooLarge {
        /// `limits.wasm_stack`.
        asked: u64,
    },
    /// The process's stack limit cannot hold the guest's stack.
    #[error(
        "limits.wasm_stack of {} needs a stack of {}, but the stack limit is {} (raise it with ulimit -s, or lower wasm_stack)",
        policy::format_size(*.asked), policy::format_size(*.needed), policy::format_size(*.limit)
    )]
    StackLimit {
        /// `limits.wasm_stack`.
        asked: u64,
        /// The stack the run needs.
        needed: u64,
        /// The soft `RLIMIT_STACK` it got.
        limit: u64,
    },
    /// The run's identity may not use a mount as the policy says.
    #[error("mount {guest}: '{host}' is not {what} by uid {uid} gid {gid}{fix}")]
    MountAccess {
        /// The guest path.
        guest: String,
        /// The host path.
        host: String,
        /// "readable" or "writable".
        what: &'static str,
        /// The run's uid.
        uid: u32,
        /// The run's gid.
        gid: u32,
        /// The fix, when root started the run.
        fix: &'static str,
    },
}

/// Checks, in the child, that the stack it was given (`stack`, the soft `RLIMIT_STACK` set,
/// `None` when unconfined) can hold what the policy allows the guest (`limits.wasm_stack`):
/// otherwise deep recursion would end in SIGSEGV instead of a stack-exhaustion trap.
pub fn check_stack(limits: &Limits, stack: Option<u64>) -> Result<(), SetupError> {
    if limits.wasm_stack > MAX_WASM_STACK {
        return Err(SetupError::StackTooLarge { asked: limits.wasm_stack });
    }
    let needed = stack_needed(limits);
    match stack {
        Some(limit) if limit < needed => Err(SetupError::StackLimit { asked: limits.wasm_stack, needed, limit }),
        _ => Ok(()),
    }
}

/// Landlock's rules for a run: its mounts (read-only or read-write) and its stdin file, by
/// their descriptors.
pub fn landlock_rules(spec: &RunSpec, fds: &RunFds) -> Result<sandbox::landlock_rules::Rules, sandbox::ConfineError> {
    let access = |writable| if writable { sandbox::Access::ReadWrite } else { sandbox::Access::ReadOnly };
    let rules: Vec<sandbox::FdRule> = spec
        .mounts
        .iter()
        .zip(&fds.mounts)
        .map(|(m, fd)| sandbox::FdRule { fd: fd.as_fd(), access: access(m.writable) })
        .chain(fds.stdin.iter().map(|fd| sandbox::FdRule { fd: fd.as_fd(), access: sandbox::Access::ReadOnly }))
        .collect();
    Ok(sandbox::landlock_rules::fd_rules(&rules)?)
}

/// The cgroup limits of a run of `policy` (used where cgroup v2 is available).
pub fn cgroup_limits(policy: &Policy) -> sandbox::CgroupLimits {
    sandbox::CgroupLimits {
        memory_max: Some(policy.limits.memory.saturating_add(RUNTIME_ALLOWANCE)),
        pids_max: Some(MAX_THREADS),
    }
}

/// Checks, in the child (which has taken the run's identity), that it may use every mount as
/// the policy says — read and search a read-only one, also write a read-write one: the parent
/// opened them, and the guest would otherwise meet EACCES on its first use, far from the cause.
/// (Only the directory itself is checked; the parent's identity reached it.)
pub fn check_mount_access(spec: &RunSpec, fds: &RunFds) -> Result<(), SetupError> {
    for (m, fd) in spec.mounts.iter().zip(&fds.mounts) {
        let (mode, what) =
            if m.writable { (libc::W_OK | libc::X_OK, "writable") } else { (libc::R_OK | libc::X_OK, "readable") };
        // `faccessat2` itself (nix has no call for it): `AT_EMPTY_PATH` on the descriptor,
        // `AT_EACCESS` for the effective identity.
        // SAFETY: an open descriptor, an empty NUL-terminated path and valid flags; the call
        // only reads them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_faccessat2,
                fd.as_raw_fd(),
                c"".as_ptr(),
                mode,
                libc::AT_EMPTY_PATH | libc::AT_EACCESS,
            )
        };
        if r != 0 {
            let fix = if spec.started_by_root {
                " (the identity of runs started by root: chown the directory to it, or set run_as in the policy)"
            } else {
                ""
            };
            return Err(SetupError::MountAccess {
                guest: m.guest.clone(),
                host: m.host.clone(),
                what,
                uid: nix::unistd::geteuid().as_raw(),
                gid: nix::unistd::getegid().as_raw(),
                fix,
            });
        }
    }
    Ok(())
}

/// What the child applied, as the facts it sends its supervisor.
pub fn applied(applied: &sandbox::Applied) -> report::Applied {
    report::Applied {
        namespaces: applied.namespaces.iter().map(|n| n.to_string()).collect(),
        uid: applied.uid,
        gid: applied.gid,
        empty_root: applied.empty_root,
        landlock: applied.landlock.to_string(),
        seccomp: applied.seccomp,
        no_new_privs: applied.no_new_privs,
        capabilities_dropped: applied.capabilities_dropped,
        rlimits: applied.rlimits.iter().map(|r| (r.resource.to_string(), r.soft)).collect(),
        in_cgroup: applied.cgroup,
        open_fds: applied.open_fds.clone(),
    }
}

/// The report's name for the network namespace a server's runs share.
pub const SHARED_NETWORK: &str = "network (shared, empty)";

/// The order the report lists namespaces in.
const NAMESPACE_ORDER: [&str; 7] = ["user", "pid", "mount", "network", "ipc", "uts", "cgroup"];

/// The report's confinement, worded from the child's facts and the supervisor's: why the run
/// has no cgroup (`cgroup`: `Err(why)` when the supervisor could not make one), and whether it
/// shares its server's empty network namespace.
pub fn report(applied: &report::Applied, cgroup: &Result<(), String>, shared_network: bool) -> report::Confinement {
    let namespaces = NAMESPACE_ORDER
        .iter()
        .filter_map(|name| match *name {
            "network" if shared_network => Some(SHARED_NETWORK.to_string()),
            name => applied.namespaces.iter().any(|n| n == name).then(|| name.to_string()),
        })
        .collect();
    let cgroup = match (applied.in_cgroup, cgroup) {
        (true, _) => "v2".to_string(),
        (false, Err(why)) => format!("none: {why}"),
        (false, Ok(())) => "none".to_string(),
    };
    report::Confinement {
        namespaces,
        uid: applied.uid,
        gid: applied.gid,
        empty_root: applied.empty_root,
        landlock: applied.landlock.clone(),
        seccomp: applied.seccomp,
        no_new_privs: applied.no_new_privs,
        capabilities: if applied.capabilities_dropped { "none" } else { "kept" }.into(),
        rlimits: applied.rlimits.clone(),
        cgroup,
        open_fds: applied.open_fds.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(namespaces: &[&str], in_cgroup: bool) -> report::Applied {
        report::Applied {
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            uid: 65534,
            gid: 65534,
            empty_root: true,
            landlock: "abi 6".into(),
            seccomp: true,
            no_new_privs: true,
            capabilities_dropped: true,
            rlimits: Default::default(),
            in_cgroup,
            open_fds: vec![0, 1, 2],
        }
    }

    #[test]
    fn the_report_is_worded_from_typed_facts() {
        let all = ["user", "pid", "mount", "network", "ipc", "uts", "cgroup"];
        let r = report(&facts(&all, true), &Ok(()), false);
        assert_eq!(r.namespaces, all);
        assert_eq!(r.cgroup, "v2");
        // A server's run: no network namespace of its own, the shared one in its place.
        let without: Vec<&str> = all.iter().copied().filter(|n| *n != "network").collect();
        let r = report(&facts(&without, false), &Err("no cgroup v2 here".into()), true);
        assert_eq!(r.namespaces, ["user", "pid", "mount", SHARED_NETWORK, "ipc", "uts", "cgroup"]);
        assert_eq!(r.cgroup, "none: no cgroup v2 here");
        assert_eq!(r.capabilities, "none");
    }
}
