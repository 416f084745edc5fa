//! The child: a run's process, forked for it or prepared ahead of it by a server. Its life
//! ([`main`]): start up (keep only its own descriptors, take its namespaces' confinement —
//! [`start_up`], the one place both kinds of child do it), run the module ([`stages`]), write
//! its report, and wait until the supervisor releases it.

pub mod invoke;
pub mod oom;
pub mod stages;
pub mod wasi_link;

use crate::channels::code::Receiver;
use crate::plan::spec::{RunFds, RunSpec};
use crate::supervise::report::{ChildOutcome, ChildReport, EXIT_ERROR};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

pub use stages::{run, Confine};

/// What a run's child holds of its supervisor: the run's files, the code channel, the report
/// pipe and the release pipe (whose other end the supervisor closes once it has answered).
pub struct ChildEnds {
    /// The run's files.
    pub fds: RunFds,
    /// The code cache, through the supervisor.
    pub code: Receiver,
    /// Where the report goes.
    pub report: OwnedFd,
    /// End of file on it: the child may exit.
    pub release: OwnedFd,
}

impl ChildEnds {
    /// The descriptors the child keeps: stdio, the report and release pipes, the code channel
    /// and the run's files.
    fn keep(&self) -> Vec<RawFd> {
        let mut keep = vec![0, 1, 2, self.report.as_raw_fd(), self.release.as_raw_fd()];
        keep.extend(self.code.fds());
        keep.extend(self.fds.list().iter().map(|f| f.as_raw_fd()));
        keep
    }
}

/// How far a child got before its run was known.
pub enum Start {
    /// Forked for the run: nothing done yet.
    Fresh,
    /// Prepared ahead ([`crate::server::prepared`]): steps 1 to 3 done (or failed).
    Prepared(Result<sandbox::Prepared, String>),
}

/// A child's start-up, the one sequence of both kinds: nothing inherited from the caller
/// reaches the run but `keep` (and what preparing opened), then steps 1 to 3 of the
/// confinement ([`sandbox::prepare`]) unless a prepared child did them before its run came.
///
/// # Errors
/// Closing the inherited descriptors failed: the child must end.
///
/// # Safety
/// The objects alive in the calling process must own only the descriptors in `keep` (and the
/// prepared confinement's); the rest belong to the parent's objects, which this process never
/// uses or drops (it leaves by `_exit`).
pub unsafe fn start_up(
    keep: &[RawFd],
    start: Start,
    confinement: &sandbox::Confinement,
) -> Result<Result<sandbox::Prepared, String>, std::io::Error> {
    let mut keep = keep.to_vec();
    if let Start::Prepared(Ok(p)) = &start {
        keep.extend(p.descriptors());
    }
    // SAFETY: the caller's contract.
    unsafe { sandbox::fds::close_inherited(&keep) }?;
    Ok(match start {
        Start::Prepared(prepared) => prepared,
        Start::Fresh => sandbox::prepare(confinement).map_err(|e| e.to_string()),
    })
}

/// The child's whole life once its descriptors are in place, forked for the run or prepared
/// ahead of it: starts up, runs, writes its report, and waits until the supervisor releases
/// it. Returns the exit status.
pub fn main(
    spec: &RunSpec,
    ends: ChildEnds,
    start: Start,
    confinement: &sandbox::Confinement,
    filter: &sandbox::Filter,
) -> i32 {
    // SAFETY: the objects alive here own only what `ends.keep()` lists (and the prepared
    // confinement's descriptors); the rest belong to the parent's objects.
    let prepared = match unsafe { start_up(&ends.keep(), start, confinement) } {
        Ok(prepared) => prepared,
        Err(e) => {
            crate::errln!("sandboxrun: error: failed to close inherited descriptors: {e}");
            return EXIT_ERROR;
        }
    };
    let ChildEnds { fds, code, report, release } = ends;
    let mut report = std::fs::File::from(report);
    let child_report = run(spec, fds, Some(code), Some(Confine { prepared, filter }), Some(&mut report));
    send_report(report, child_report);
    // The supervisor reads this process's CPU time and peak memory now, and answers without
    // waiting for its exit (which tears its memory and namespaces down), then releases it.
    let _ = std::io::Read::read(&mut std::fs::File::from(release), &mut [0u8; 1]);
    0
}

/// Writes the report (after the [`crate::supervise::report::ChildStarted`] frame, if the run
/// got that far), one frame (`protocol::report`; the supervisor bounds and checks it as
/// hostile input), and closes the pipe. A report too large for its frame (an error message of
/// a megabyte) says so instead.
fn send_report(mut pipe: std::fs::File, report: ChildReport) {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let frame = protocol::encode(&report).or_else(|e| {
        let outcome = ChildOutcome::Error { message: format!("failed to send the report: {e}") };
        protocol::encode(&ChildReport { outcome, ..report })
    });
    if let Ok(frame) = frame {
        let _ = pipe.write_all(&frame);
    }
}
