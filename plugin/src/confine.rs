//! An instance's confinement, from its spec (made from the policy): the same choices as a run
//! of the runner (`runner/plan/confinement.rs`: every namespace, an empty root, the policy's
//! identity, rlimits from the limits, a cgroup where usable). Kept small and separate so the
//! two can later share one place.

use crate::messages::InstanceSpec;
use std::time::Duration;

/// Private memory an instance may use besides its guest's linear memory: the runtime, the
/// compiler, WASI buffers, the captured output (as the runner's `RUNTIME_ALLOWANCE`).
pub const RUNTIME_ALLOWANCE: u64 = 384 << 20;

/// Threads an instance may have (the compiler's, the main thread).
const MAX_THREADS: u64 = 256;

/// Descriptors besides the guest's open files.
const RUNTIME_DESCRIPTORS: u64 = 64;

/// Stack below the guest's deepest frame (host functions, the trap handler).
const HOST_STACK: u64 = 1 << 20;

/// The spec of an instance of `policy`, with the library's own settings.
pub fn spec_from_policy(policy: &policy::Policy) -> InstanceSpec {
    let l = &policy.limits;
    InstanceSpec {
        args: policy.args.clone(),
        env: policy.env.clone(),
        mounts: policy
            .mounts
            .iter()
            .map(|m| crate::messages::MountSpec {
                host: m.host.to_string_lossy().into_owned(),
                guest: m.guest.as_str().to_string(),
                writable: m.mode == policy::Mode::Rw,
            })
            .collect(),
        memory: l.memory,
        cpu_seconds: cpu_seconds(l.cpu_time),
        wasm_stack: l.wasm_stack,
        output: l.output,
        file_size: l.file_size,
        open_files: l.open_files,
        require_landlock: policy.require_landlock,
        run_as: (policy.run_as.uid, policy.run_as.gid),
        host_module: "host".into(),
        host_fns: Vec::new(),
        fresh_per_call: false,
        window: 16 << 20,
        spin_ns: crate::spin::DEFAULT_SPIN.as_nanos() as u64,
        garbage_export: None,
        false_ring_export: None,
    }
}

fn cpu_seconds(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// What `sandbox::spawn` and `sandbox::prepare` need: every namespace, an empty root, the
/// policy's identity.
pub fn confinement(spec: &InstanceSpec) -> sandbox::Confinement {
    sandbox::Confinement {
        run_as: sandbox::RunAs { uid: spec.run_as.0, gid: spec.run_as.1 },
        require_landlock: spec.require_landlock,
        rlimits: rlimits(spec),
        ..sandbox::Confinement::default()
    }
}

/// The rlimits of an instance: `RLIMIT_CPU` is the CPU the instance may use over its whole
/// life (soft = hard: SIGKILL when reached); `RLIMIT_DATA` its memory and the runtime's.
pub fn rlimits(spec: &InstanceSpec) -> sandbox::Rlimits {
    sandbox::Rlimits {
        cpu_seconds: Some(spec.cpu_seconds),
        data: Some(spec.memory.saturating_add(RUNTIME_ALLOWANCE)),
        file_size: Some(spec.file_size),
        open_files: Some(spec.open_files.saturating_add(RUNTIME_DESCRIPTORS)),
        processes: Some(MAX_THREADS),
        address_space: None,
        stack: Some(spec.wasm_stack.saturating_add(HOST_STACK)),
    }
}

/// The cgroup limits of an instance.
pub fn cgroup_limits(spec: &InstanceSpec) -> sandbox::CgroupLimits {
    sandbox::CgroupLimits {
        memory_max: Some(spec.memory.saturating_add(RUNTIME_ALLOWANCE)),
        pids_max: Some(MAX_THREADS),
    }
}

/// The engine's settings for an instance.
pub fn engine_config(spec: &InstanceSpec) -> engine::Config {
    engine::Config { max_wasm_stack: spec.wasm_stack as usize, compile_threads: Some(1), ..engine::Config::default() }
}
