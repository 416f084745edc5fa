//! A run's child started before the run is known: in its namespaces, with its identity, its
//! empty root and no privileges ([`sandbox::prepare`]), waiting on a socket. A server keeps
//! a few ready (see [`crate::server`]) so a run pays only for what depends on it — landlock
//! on its descriptors, rlimits, seccomp — instead of creating namespaces and a root (about
//! 1 ms of kernel work) on its critical path.
//!
//! The handover: one message on the socket, a [`protocol::handover::Handover`] of the
//! [`RunSpec`], its descriptors the run's standard streams, report and release pipes, code
//! channel and files ([`RunFds`], the module's among them).

use crate::channels::code::Receiver;
use crate::child::{self, ChildEnds};
use crate::plan::spec::{RunFds, RunSpec};
use protocol::handover::Handover;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Descriptors of a handover before the run's files: stdin, stdout, stderr, the report pipe,
/// the release pipe and the two of the code channel.
const FIXED_FDS: usize = 7;

/// Why a child could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// No seccomp filter for this machine.
    #[error("no seccomp filter for this architecture")]
    NoFilter,
    /// The filter did not compile.
    #[error("{0}")]
    Filter(#[from] sandbox::seccomp::SeccompError),
    /// The socket pair to the child could not be made.
    #[error("socketpair: {0}")]
    Socket(std::io::Error),
    /// The child could not be spawned.
    #[error("{0}")]
    Spawn(#[from] sandbox::SpawnError),
}

/// A started, prepared child waiting for its run.
#[derive(Debug)]
pub struct PreparedChild {
    child: sandbox::Child,
    socket: UnixStream,
    confinement: sandbox::Confinement,
    /// The child's namespaces, kept open (see [`PreparedChild::hand_over`]).
    held: Vec<OwnedFd>,
}

impl PreparedChild {
    /// Starts a child confined as `confinement` says, up to what depends on the run.
    ///
    /// # Errors
    /// [`PrepareError`].
    ///
    /// # Safety
    /// As for [`sandbox::spawn()`]: the process must be single-threaded.
    pub unsafe fn start(confinement: sandbox::Confinement) -> Result<PreparedChild, PrepareError> {
        let arch = sandbox::Arch::native().ok_or(PrepareError::NoFilter)?;
        let filter = sandbox::compile_filter(arch, Some(sandbox::PID_IN_NAMESPACE))?;
        let (socket, child_end) = UnixStream::pair().map_err(PrepareError::Socket)?;
        // Asked before forking: the child inherits the answer instead of asking the CPU.

        // Asked before forking: the child inherits the answer (the CPU's feature words)
        // instead of asking the CPU.
        let _ = crate::plan::spec::engine_identity(&policy::Limits::default(), None);
        let child = || {
            crate::child::oom::mark_child();
            await_run(child_end, &confinement, &filter)
        };
        // SAFETY: the caller guarantees a single-threaded process.
        let child = unsafe { sandbox::spawn(&confinement, None, child) }?;
        // Opened now, while the child may still be inspected (it will make itself not
        // dumpable); a namespace the kernel lacks is skipped.
        let held = ["mnt", "net", "pid", "ipc", "uts", "cgroup", "user"]
            .iter()
            .filter_map(|ns| std::fs::File::open(format!("/proc/{}/ns/{ns}", child.pid())).ok())
            .map(OwnedFd::from)
            .collect();
        Ok(PreparedChild { child, socket, confinement, held })
    }

    /// The child's pid.
    pub fn pid(&self) -> libc::pid_t {
        self.child.pid()
    }

    /// Whether a run confined as `confinement` can use this child: same root and identity
    /// (what was applied before the run was known). The namespaces are the starter's choice
    /// (see [`PreparedChild::shares_network`]).
    pub fn fits(&self, confinement: &sandbox::Confinement) -> bool {
        let c = &self.confinement;
        (c.run_as, c.empty_root) == (confinement.run_as, confinement.empty_root)
    }

    /// Whether the child stays in its starter's network namespace instead of a new one.
    pub fn shares_network(&self) -> bool {
        !self.confinement.namespaces.network
    }

    /// Kills and reaps the child.
    pub fn discard(self) {
        // Our unreaped child: the pid cannot have been reused.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.pid()), nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Hands the run over: moves the child into `cgroup`, sends it `spec` and the descriptors
    /// (this process's standard streams included), and returns it for supervision, with its
    /// namespaces: while they are open the child's end does not tear them down (for a network
    /// namespace, half a millisecond of a kernel worker's time that would compete with the
    /// supervisor's last steps and the next run), so their holder decides when that happens.
    ///
    /// # Errors
    /// The one-line message of what failed; the child is killed.
    pub fn hand_over(
        mut self,
        spec: &RunSpec,
        ends: ChildEnds,
        cgroup: Option<&sandbox::Cgroup>,
    ) -> Result<(sandbox::Child, Vec<OwnedFd>), String> {
        let ChildEnds { fds, code, report, release } = ends;
        let sent = (|| {
            if let Some(cgroup) = cgroup {
                cgroup.add(self.child.pid()).map_err(|e| e.to_string())?;
            }
            let code = code.into_fds().map_err(|e| e.to_string())?;
            let frame = protocol::encode(&Handover { spec: spec.clone() }).map_err(|e| e.to_string())?;
            // SAFETY: this process's standard streams stay open while the message is sent.
            let stdio = [0, 1, 2].map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
            let mut passed: Vec<BorrowedFd> = stdio.to_vec();
            passed.push(report.as_fd());
            passed.push(release.as_fd());
            passed.extend(code.iter().map(AsFd::as_fd));
            passed.extend(fds.list());
            crate::channels::fds::send_frame(&mut self.socket, &frame, &passed)
                .map_err(|e| format!("handing the run over: {e}"))
        })();
        match sent {
            Ok(()) => Ok((self.child, self.held)),
            Err(e) => {
                self.discard();
                Err(e)
            }
        }
    }
}

/// The prepared child: keeps only stdio and the socket, prepares, waits for the run, takes
/// the run's standard streams as its own, and goes on as a forked child would.
fn await_run(mut socket: UnixStream, confinement: &sandbox::Confinement, filter: &sandbox::Filter) -> i32 {
    // SAFETY: first thing in the fresh child: the objects alive here own only stdio and the
    // socket; the rest belong to the parent's objects, never used or dropped here.
    let prepared = match unsafe { child::start_up(&[0, 1, 2, socket.as_raw_fd()], child::Start::Fresh, confinement) } {
        Ok(prepared) => prepared,
        Err(e) => {
            crate::errln!("sandboxrun: error: failed to close inherited descriptors: {e}");
            return crate::supervise::report::EXIT_ERROR;
        }
    };
    crate::server::warm_text::map_ahead();
    let (handover, fds) = match crate::channels::fds::recv::<Handover<RunSpec>>(&mut socket) {
        Ok(Some(message)) => message,
        // No run came: the supervisor discarded this child.
        Ok(None) => return 0,
        Err(e) => {
            crate::errln!("sandboxrun: error: receiving the run: {e}");
            return crate::supervise::report::EXIT_ERROR;
        }
    };
    drop(socket);
    match take_run(handover, fds) {
        Ok((spec, ends)) => child::main(&spec, ends, child::Start::Prepared(prepared), confinement, filter),
        Err(e) => {
            crate::errln!("sandboxrun: error: receiving the run: {e}");
            crate::supervise::report::EXIT_ERROR
        }
    }
}

/// Takes a handover: puts the run's standard streams in place of this process's.
fn take_run(handover: Handover<RunSpec>, fds: Vec<OwnedFd>) -> Result<(RunSpec, ChildEnds), String> {
    let Handover { spec } = handover;
    if fds.len() < FIXED_FDS {
        return Err(format!("{} descriptors, expected at least {FIXED_FDS}", fds.len()));
    }
    let mut fds = fds.into_iter();
    let (stdin, stdout, stderr) = (fds.next(), fds.next(), fds.next());
    let dup = |fd: Option<OwnedFd>, to: fn(OwnedFd) -> nix::Result<()>| to(fd.expect("counted"));
    dup(stdin, nix::unistd::dup2_stdin).map_err(|e| format!("dup2: {e}"))?;
    dup(stdout, nix::unistd::dup2_stdout).map_err(|e| format!("dup2: {e}"))?;
    dup(stderr, nix::unistd::dup2_stderr).map_err(|e| format!("dup2: {e}"))?;
    let report = fds.next().expect("counted");
    let release = fds.next().expect("counted");
    let code = Receiver::from_fds([0; 2].map(|_| fds.next().expect("counted")));
    let run_fds = RunFds::from_list(&spec, fds.collect()).map_err(|e| e.to_string())?;
    Ok((spec, ChildEnds { fds: run_fds, code, report, release }))
}
