//! Starting a run's child: the pipes and the code channel, the run's files, its cgroup, and
//! the child itself — forked into new namespaces, or a prepared child handed the run.
//! Everything the child needs from the parent is made here, before the fork or the handover.

use super::cache::OpenCache;
use super::{Ahead, Run, Start};
use crate::channels::code::{self, Sender};
use crate::child;
use crate::plan::confinement;
use crate::plan::host_files::HostFileError;
use crate::plan::spec::{self, RunFds, RunSpec};
use crate::server::prepared::PreparedChild;
use std::os::fd::OwnedFd;

/// Why a run could not start (the run ends as an error: sandboxrun could not run it).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A pipe could not be made.
    #[error("failed to create a pipe: {0}")]
    Pipe(std::io::Error),
    /// The code channel could not be made.
    #[error("failed to create the code channel: {0}")]
    CodeChannel(std::io::Error),
    /// The module's descriptor could not be duplicated for the child.
    #[error("failed to pass the module to the run: {0}")]
    Module(std::io::Error),
    /// A host file of the run was refused.
    #[error("{0}")]
    Files(#[from] HostFileError),
    /// No seccomp filter for this machine.
    #[error("{0}")]
    Seccomp(String),
    /// The child could not be started, or the run not handed over.
    #[error("failed to start the run: {0}")]
    Start(String),
}

/// A started run: its child and the supervisor's ends of everything between them.
pub struct Launched {
    /// The child.
    pub child: sandbox::Child,
    /// The supervisor's end of the code channel.
    pub code: Sender,
    /// The read end of the report pipe.
    pub report_pipe: OwnedFd,
    /// The write end of the release pipe (closed: the child may exit).
    pub release: OwnedFd,
    /// The run's cgroup, or why it has none.
    pub cgroup: Result<sandbox::Cgroup, String>,
    /// Whether the run shares its server's empty network namespace.
    pub shared_network: bool,
    /// A prepared child's namespaces, kept open past its end.
    pub namespaces: Vec<OwnedFd>,
    /// The code cache a server's slot opened ahead.
    pub open_cache: Option<OpenCache>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), LaunchError> {
    // Close-on-exec, like every descriptor made here.
    std::io::pipe().map(|(r, w)| (OwnedFd::from(r), OwnedFd::from(w))).map_err(LaunchError::Pipe)
}

/// Makes what the child needs and starts it (see the module's documentation); the child gets
/// a descriptor of `run.module`.
pub fn launch(run: &Run, start: Start) -> Result<Launched, LaunchError> {
    let (report_read, report_write) = pipe()?;
    // The child waits on it after reporting, until the supervisor has answered.
    let (release_read, release_write) = pipe()?;
    let (code, code_receiver) = code::channel().map_err(LaunchError::CodeChannel)?;
    // Built before forking: the child only applies them.
    let confinement = confinement::for_policy(&run.policy);
    // The child, confined to an empty root, reaches the host only through these.
    let fds = RunFds::open(&run.policy, run.module.descriptor().map_err(LaunchError::Module)?)?;
    let (prepared, open_cache, cgroups) = match start {
        Start::Spawn => (None, None, None),
        Start::Prepared(ahead) => {
            let Ahead { child, cache, cgroups, .. } = *ahead;
            (Some(child), cache, Some(cgroups))
        }
    };
    let cgroup = make_cgroup(&run.policy, cgroups);
    let mut spec = RunSpec::new(&run.policy, &run.module, run.argv0.clone(), run.args.clone(), run.invoke.clone());
    spec.compile_only = run.compile_only;
    // A prepared child made for another identity cannot serve: one is spawned for the run.
    let prepared = match prepared {
        Some(unfit) if !unfit.fits(&confinement) => {
            unfit.discard();
            None
        }
        fit => fit,
    };
    let shared_network = prepared.as_ref().is_some_and(PreparedChild::shares_network);
    // What the child holds of this process; the parent's copies close once it has them (else
    // it would never see end of file on the pipes the child writes).
    let ends = child::ChildEnds { fds, code: code_receiver, report: report_write, release: release_read };
    let cgroup_ref = cgroup.as_ref().ok();
    let (child, namespaces) = match prepared {
        Some(prepared) => prepared.hand_over(&spec, ends, cgroup_ref).map_err(LaunchError::Start)?,
        None => (spawn(&spec, ends, &confinement, cgroup_ref)?, Vec::new()),
    };
    Ok(Launched {
        child,
        code,
        report_pipe: report_read,
        release: release_write,
        cgroup,
        shared_network,
        namespaces,
        open_cache,
    })
}

/// The run's cgroup, under the parent a slot made ready, or found now.
fn make_cgroup(
    policy: &policy::Policy,
    parent: Option<Result<sandbox::CgroupParent, String>>,
) -> Result<sandbox::Cgroup, String> {
    let name = format!("sandboxrun-{}", std::process::id());
    let limits = confinement::cgroup_limits(policy);
    match parent {
        None => sandbox::Cgroup::create(&name, &limits).map_err(|e| e.to_string()),
        Some(Ok(parent)) => parent.create(&name, &limits).map_err(|e| e.to_string()),
        Some(Err(reason)) => Err(reason),
    }
}

/// Forks the run's child into new namespaces.
fn spawn(
    spec: &RunSpec,
    ends: child::ChildEnds,
    confinement: &sandbox::Confinement,
    cgroup: Option<&sandbox::Cgroup>,
) -> Result<sandbox::Child, LaunchError> {
    let arch = sandbox::Arch::native()
        .ok_or_else(|| LaunchError::Seccomp("no seccomp filter for this architecture".into()))?;
    let filter = sandbox::compile_filter(arch, Some(sandbox::PID_IN_NAMESPACE))
        .map_err(|e| LaunchError::Seccomp(e.to_string()))?;
    // The code the child's engine will generate (same configuration, same machine). Asked
    // before forking: the child inherits the answer instead of asking the CPU.
    let _ = spec::engine_identity(&spec.limits, spec.features.as_deref());
    let child = || {
        crate::child::oom::mark_child();
        child::main(spec, ends, child::Start::Fresh, confinement, &filter)
    };
    // SAFETY: the supervisor is single-threaded here (its cache-store thread starts after the
    // child; compilation threads start in the child).
    unsafe { sandbox::spawn(confinement, cgroup, child) }.map_err(|e| LaunchError::Start(e.to_string()))
}
