//! A run's confinement, from its policy: what the runner asks of the `sandbox` crate, the
//! check that the run's identity can use its rw mounts, and how the report shows what was
//! actually applied.

use crate::report;
use policy::{Mode, Policy};

/// Private memory the process may use besides the guest's linear memories: the runtime, the
/// compiler's working set (about 150 MiB for a 2 MB module on two threads), WASI buffers.
pub const RUNTIME_ALLOWANCE: u64 = 384 << 20;

/// Descriptors the process needs besides the guest's open files: stdio, the pipes to the
/// parent, the compiler's and the runtime's own.
const RUNTIME_DESCRIPTORS: u64 = 64;

/// Threads the process may have: the compiler's pool (one per core) and the main thread, with
/// room for large machines. Guests cannot start threads.
const MAX_THREADS: u64 = 256;

/// The confinement of a run of `policy`: every namespace, an empty root, landlock rules for
/// the mounts (and the stdin file), limits derived from the policy's.
pub fn for_policy(policy: &Policy) -> sandbox::Confinement {
    let limits = &policy.limits;
    let mut paths: Vec<sandbox::PathRule> = policy
        .mounts
        .iter()
        .map(|m| match m.mode {
            Mode::Rw => sandbox::PathRule::read_write(&m.host),
            Mode::Ro => sandbox::PathRule::read_only(&m.host),
        })
        .collect();
    if let policy::Stdin::File(p) = &policy.stdin {
        paths.push(sandbox::PathRule::read_only(p));
    }
    sandbox::Confinement {
        run_as: sandbox::RunAs { uid: policy.run_as.uid, gid: policy.run_as.gid },
        paths,
        require_landlock: policy.require_landlock,
        rlimits: sandbox::Rlimits {
            // A backstop only: the supervisor stops the run at the exact CPU limit.
            cpu_seconds: Some(limits.cpu_time.as_secs_f64().ceil() as u64 + 1),
            data: Some(limits.memory.saturating_add(RUNTIME_ALLOWANCE)),
            file_size: Some(limits.file_size),
            // WASI enforces the guest's own limit with EMFILE; this bounds the process.
            open_files: Some(limits.open_files.saturating_add(RUNTIME_DESCRIPTORS)),
            processes: Some(MAX_THREADS),
            address_space: None,
        },
        ..sandbox::Confinement::default()
    }
}

/// The cgroup limits of a run of `policy` (used where cgroup v2 is available).
pub fn cgroup_limits(policy: &Policy) -> sandbox::CgroupLimits {
    sandbox::CgroupLimits {
        memory_max: Some(policy.limits.memory.saturating_add(RUNTIME_ALLOWANCE)),
        pids_max: Some(MAX_THREADS),
    }
}

/// Checks, in the child (which has taken the run's identity), that every rw mount is
/// writable: otherwise the guest would meet EACCES on its first write, far from the cause.
pub fn check_rw_mounts(policy: &Policy) -> Result<(), String> {
    for m in policy.mounts.iter().filter(|m| m.mode == Mode::Rw) {
        let Ok(path) = std::ffi::CString::new(m.host.as_os_str().as_encoded_bytes()) else {
            return Err(format!("mount {}: host path contains a NUL byte", m.guest));
        };
        // SAFETY: a valid NUL-terminated path; access only reads it.
        if unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            // SAFETY: getuid and getgid have no preconditions.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            let fix = if uid == policy.run_as.uid {
                " (the identity of runs started by root: chown the directory to it, or set run_as in the policy)"
            } else {
                ""
            };
            return Err(format!(
                "mount {}: '{}' is not writable by uid {uid} gid {gid}{fix}",
                m.guest,
                m.host.display()
            ));
        }
    }
    Ok(())
}

/// How the report shows what was applied.
/// The cgroup is "v2" or "none" (the parent adds why).
pub fn describe(applied: &sandbox::Applied) -> report::Confinement {
    report::Confinement {
        namespaces: applied.namespaces.iter().map(|n| n.to_string()).collect(),
        uid: applied.uid,
        gid: applied.gid,
        empty_root: applied.empty_root,
        landlock: applied.landlock.to_string(),
        seccomp: applied.seccomp,
        no_new_privs: applied.no_new_privs,
        capabilities: if applied.capabilities_dropped { "none" } else { "kept" }.into(),
        rlimits: applied.rlimits.iter().map(|r| (r.resource.to_string(), r.soft)).collect(),
        cgroup: if applied.cgroup { "v2" } else { "none" }.into(),
        open_fds: applied.open_fds.clone(),
    }
}
