//! What a run is, for its child: plain data ([`RunSpec`]), the same whether the child was
//! forked for the run or prepared ahead of it and handed the run (serialized), and the host
//! files it reaches ([`RunFds`], the module among them); and the one engine configuration both
//! the supervisor (for the code cache's key) and the child (to compile and run) derive.

use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, OwnedFd};

/// What the child runs: plain data, the same whether the child was forked for the run or
/// prepared ahead of it and handed the run over a socket (serialized).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSpec {
    /// The module's length (its bytes are read from [`RunFds::module`] when compiling).
    pub module_len: u64,
    /// The module's content key, which the bytes read must match
    /// ([`crate::plan::module_file::read_checked`]).
    pub module_key: [u8; 32],
    /// The guest's argv: its name, the policy's arguments, the command line's.
    pub argv: Vec<String>,
    /// The guest's environment.
    pub env: Vec<(String, String)>,
    /// The policy's limits.
    pub limits: policy::Limits,
    /// The mounts, in preopen order (their directories are in [`RunFds::mounts`]).
    pub mounts: Vec<MountSpec>,
    /// Where stdin comes from.
    pub stdin: StdinSpec,
    /// `--invoke NAME VALUES...` instead of `_start`.
    pub invoke: Option<(String, Vec<String>)>,
    /// Stop after compiling (`sandboxrun compile`).
    pub compile_only: bool,
    /// Fail when the kernel has no landlock.
    pub require_landlock: bool,
    /// Whether root started the run (its identity is then the policy's `run_as`): error
    /// messages about permissions say so.
    pub started_by_root: bool,
    /// The policy's WebAssembly features (`None`: every one implemented).
    pub features: Option<Vec<String>>,
}

/// A mount as the child sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountSpec {
    /// The guest path.
    pub guest: String,
    /// The host path, for messages only (the child reaches it through its descriptor).
    pub host: String,
    /// Read-write.
    pub writable: bool,
}

/// Where the guest's stdin comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdinSpec {
    /// End of file.
    Null,
    /// The process's stdin.
    Inherit,
    /// A file (its descriptor is [`RunFds::stdin`]).
    File,
}

/// The host files a run reaches, opened by the parent: the child, confined to an empty root,
/// can no longer name a host path.
#[derive(Debug, Default)]
pub struct RunFds {
    /// One directory per mount, in [`RunSpec::mounts`] order.
    pub mounts: Vec<OwnedFd>,
    /// The stdin file, for [`StdinSpec::File`].
    pub stdin: Option<OwnedFd>,
    /// The module (`.wasm` or `.wat`), open for reading; taken by the child as it starts.
    pub module: Option<OwnedFd>,
}

impl RunFds {
    /// Opens the mounts and the stdin file of `policy` ([`crate::plan::host_files`]), and
    /// takes `module`.
    ///
    /// # Errors
    /// The first that is refused.
    pub fn open(policy: &policy::Policy, module: OwnedFd) -> Result<RunFds, crate::plan::host_files::HostFileError> {
        let mut fds = crate::plan::host_files::open_run_files(policy)?;
        fds.module = Some(module);
        Ok(fds)
    }

    /// The descriptors, in the order [`RunFds::from_list`] takes them back.
    pub fn list(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.mounts.iter().chain(&self.stdin).chain(&self.module).map(AsFd::as_fd).collect()
    }

    /// Takes back the descriptors of [`RunFds::list`] for `spec` (the module's among them).
    ///
    /// # Errors
    /// Their number does not match `spec`.
    pub fn from_list(spec: &RunSpec, mut fds: Vec<OwnedFd>) -> Result<RunFds, DescriptorCount> {
        let stdin = usize::from(spec.stdin == StdinSpec::File);
        let expected = spec.mounts.len() + stdin + 1;
        if fds.len() != expected {
            return Err(DescriptorCount { expected, got: fds.len() });
        }
        let module = fds.pop();
        let stdin = if stdin == 1 { fds.pop() } else { None };
        Ok(RunFds { mounts: fds, stdin, module })
    }
}

impl RunSpec {
    /// The run of `module` under `policy`.
    pub fn new(
        policy: &policy::Policy,
        module: &crate::plan::module_file::ModuleFile,
        argv0: String,
        args: Vec<String>,
        invoke: Option<String>,
    ) -> RunSpec {
        let mut argv = vec![argv0];
        argv.extend(policy.args.iter().cloned());
        let invoke = invoke.map(|name| (name, args.clone()));
        if invoke.is_none() {
            argv.extend(args);
        }
        RunSpec {
            module_len: module.len(),
            module_key: *module.key(),
            argv,
            env: policy.env.clone(),
            limits: policy.limits,
            mounts: policy
                .mounts
                .iter()
                .map(|m| MountSpec {
                    guest: m.guest.as_str().to_string(),
                    host: m.host.display().to_string(),
                    writable: m.mode == policy::Mode::Rw,
                })
                .collect(),
            stdin: match policy.stdin {
                policy::Stdin::Null => StdinSpec::Null,
                policy::Stdin::Inherit => StdinSpec::Inherit,
                policy::Stdin::File(_) => StdinSpec::File,
            },
            invoke,
            compile_only: false,
            require_landlock: policy.require_landlock,
            started_by_root: nix::unistd::geteuid().is_root(),
            features: policy.features.clone(),
        }
    }
}

/// A handover carried another number of the run's descriptors than its spec names.
#[derive(Debug, thiserror::Error)]
#[error("expected {expected} descriptors for the run, got {got}")]
pub struct DescriptorCount {
    /// What the spec names.
    pub expected: usize,
    /// What came.
    pub got: usize,
}

/// The engine configuration of a run with these limits and features (the policy's): the one
/// both the supervisor (whose code-cache key is this configuration's identity) and the child
/// (which compiles and runs with it) use. A budget (`limits.instructions`) makes the code
/// count instructions; `features` (`None`: all implemented) restricts what modules may use.
///
/// # Errors
/// A feature name unknown, or of a feature not implemented.
pub fn engine_config(
    limits: &policy::Limits,
    features: Option<&[String]>,
) -> Result<engine::Config, engine::features::FeatureError> {
    Ok(engine::Config {
        max_wasm_stack: limits.wasm_stack as usize,
        count_instructions: limits.instructions.is_some(),
        features: features.map(engine::features::Features::only).transpose()?.unwrap_or_default(),
        ..engine::Config::default()
    })
}

/// The identity of the code [`engine_config`] generates on this machine: the code cache's key
/// part. Asked in the supervisor before forking, so the child inherits the answer instead of
/// asking the CPU again.
///
/// # Errors
/// As [`engine_config`].
pub fn engine_identity(
    limits: &policy::Limits,
    features: Option<&[String]>,
) -> Result<String, engine::features::FeatureError> {
    Ok(engine::Engine::cache_identity(&engine_config(limits, features)?))
}
