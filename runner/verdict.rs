//! The verdict: how a run ended, all things considered — what the parent observed of the child
//! process (exit status, limits it enforced, cgroup counters) and what the child reported.
//! A pure function of those facts, so every branch is tested without running anything.

use crate::report::{ChildOutcome, Reason, Status, TrapReport};
use crate::supervisor::{ChildExit, ExitStatus};
use policy::Limits;
use serde::Serialize;

/// Exit status of a child whose allocation failed (at `RLIMIT_DATA`): see [`crate::oom`].
pub const CHILD_OUT_OF_MEMORY: i32 = 102;

/// What the parent knows besides the child's exit and report.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The system call a seccomp death was for, if the reporter named it.
    pub syscall: Option<String>,
    /// OOM kills the run's cgroup counted (0 without a cgroup).
    pub oom_kills: u64,
}

/// The verdict and its details (`--report` shows them at its top level).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// How the run ended.
    pub status: Status,
    /// The guest's exit code, or 128 + the signal for [`Status::Killed`].
    pub exit_code: Option<i32>,
    /// Which limit, which signal.
    pub reason: Option<Reason>,
    /// The signal, for [`Status::Killed`].
    pub signal: Option<i32>,
    /// The denied system call, for [`Reason::Seccomp`].
    pub syscall: Option<String>,
    /// One human line of details.
    pub details: Option<String>,
    /// The trap, for [`Status::Trapped`].
    pub trap: Option<TrapReport>,
    /// The error, for [`Status::Error`].
    pub error: Option<String>,
}

impl Verdict {
    /// sandboxrun could not run the module.
    pub fn error(message: String) -> Verdict {
        Verdict { error: Some(message), ..Verdict::new(Status::Error) }
    }

    fn new(status: Status) -> Verdict {
        Verdict {
            status,
            exit_code: None,
            reason: None,
            signal: None,
            syscall: None,
            details: None,
            trap: None,
            error: None,
        }
    }

    fn limit(status: Status, reason: Reason, details: String) -> Verdict {
        Verdict { reason: Some(reason), details: Some(details), ..Verdict::new(status) }
    }

    fn killed(signal: i32, reason: Reason, details: String) -> Verdict {
        Verdict {
            exit_code: Some(128 + signal),
            signal: Some(signal),
            reason: Some(reason),
            details: Some(details),
            ..Verdict::new(Status::Killed)
        }
    }
}

/// Decides the verdict. Limits the parent saw come first (a run killed at its deadline may
/// have reported nothing, or something partial), then the child's own report, then how the
/// process died.
pub fn decide(exit: &ChildExit, outcome: Option<ChildOutcome>, limits: &Limits, observed: &Observed) -> Verdict {
    if exit.cancelled {
        return Verdict::killed(libc::SIGKILL, Reason::Cancelled, "its client went away".into());
    }
    if exit.wall_timeout {
        let details = format!("wall time limit of {}", policy::format_duration(limits.wall_time));
        return Verdict::limit(Status::TimeLimit, Reason::WallTime, details);
    }
    // Killed by the supervisor at the limit, or by RLIMIT_CPU, or finished just past it.
    if exit.cpu_timeout || exit.cpu_time > limits.cpu_time {
        let details = format!("cpu time limit of {}", policy::format_duration(limits.cpu_time));
        return Verdict::limit(Status::TimeLimit, Reason::CpuTime, details);
    }
    let memory = || format!("memory limit of {}", policy::format_size(limits.memory));
    if observed.oom_kills > 0 {
        return Verdict::limit(Status::MemoryLimit, Reason::CgroupMemory, memory());
    }
    match (exit.status, outcome) {
        // Whatever it reported is not believed.
        (ExitStatus::Violated(what), _) => {
            Verdict::error(format!("the run's process broke its protocol: it sent more {what} than allowed"))
        }
        (_, Some(ChildOutcome::Exited { code })) => Verdict { exit_code: Some(code), ..Verdict::new(Status::Exited) },
        (_, Some(ChildOutcome::Trapped(t))) => Verdict { trap: Some(t), ..Verdict::new(Status::Trapped) },
        (_, Some(ChildOutcome::OutputLimit)) => Verdict::limit(
            Status::OutputLimit,
            Reason::Output,
            format!("output limit of {}", policy::format_size(limits.output)),
        ),
        (_, Some(ChildOutcome::Raised { signal })) => {
            Verdict::killed(i32::from(signal), Reason::GuestSignal, format!("guest raised signal {signal}"))
        }
        (_, Some(ChildOutcome::Error { message })) => Verdict::error(message),
        (ExitStatus::Exited(CHILD_OUT_OF_MEMORY), None) => {
            Verdict::limit(Status::MemoryLimit, Reason::NativeMemory, memory())
        }
        (ExitStatus::Signaled(libc::SIGSYS), None) => {
            let syscall = observed.syscall.clone().unwrap_or_else(|| "unknown".into());
            let details = format!("seccomp: system call {syscall} denied");
            Verdict { syscall: Some(syscall), ..Verdict::killed(libc::SIGSYS, Reason::Seccomp, details) }
        }
        (ExitStatus::Signaled(signal), None) => Verdict::killed(signal, Reason::Signal, format!("signal {signal}")),
        (ExitStatus::Exited(sandbox::spawn::PANIC_EXIT), None) => {
            Verdict { error: Some("internal error: the run's process panicked".into()), ..Verdict::new(Status::Error) }
        }
        (ExitStatus::Reported, None) => {
            Verdict::error("internal error: a run counted as reported sent no report".into())
        }
        (ExitStatus::Exited(code), None) => Verdict {
            error: Some(format!("the run ended without a report (exit status {code})")),
            ..Verdict::new(Status::Error)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn exit(status: ExitStatus) -> ChildExit {
        ChildExit {
            status,
            wall_timeout: false,
            cpu_timeout: false,
            cancelled: false,
            wall_time: Duration::from_millis(5),
            cpu_time: Duration::from_millis(3),
            peak_rss_bytes: 0,
        }
    }

    fn decide_plain(status: ExitStatus, outcome: Option<ChildOutcome>) -> Verdict {
        decide(&exit(status), outcome, &Limits::default(), &Observed::default())
    }

    #[test]
    fn the_childs_report_decides_a_normal_end() {
        let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Exited { code: 3 }));
        assert_eq!((v.status, v.exit_code), (Status::Exited, Some(3)));
        let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::OutputLimit));
        assert_eq!((v.status, v.reason), (Status::OutputLimit, Some(Reason::Output)));
        let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Raised { signal: 6 }));
        assert_eq!((v.status, v.exit_code, v.signal), (Status::Killed, Some(134), Some(6)));
        let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Error { message: "bad".into() }));
        assert_eq!((v.status, v.error.as_deref()), (Status::Error, Some("bad")));
    }

    #[test]
    fn limits_the_parent_saw_come_first() {
        let mut e = exit(ExitStatus::Signaled(libc::SIGKILL));
        e.wall_timeout = true;
        let v = decide(&e, None, &Limits::default(), &Observed::default());
        assert_eq!((v.status, v.reason), (Status::TimeLimit, Some(Reason::WallTime)));

        let mut e = exit(ExitStatus::Signaled(libc::SIGKILL));
        e.cpu_timeout = true;
        let v = decide(&e, None, &Limits::default(), &Observed::default());
        assert_eq!((v.status, v.reason), (Status::TimeLimit, Some(Reason::CpuTime)));

        // Finished normally, but past the CPU limit: still over it.
        let mut e = exit(ExitStatus::Exited(0));
        e.cpu_time = Duration::from_secs(11);
        let v = decide(&e, Some(ChildOutcome::Exited { code: 0 }), &Limits::default(), &Observed::default());
        assert_eq!(v.reason, Some(Reason::CpuTime));

        let observed = Observed { oom_kills: 1, ..Observed::default() };
        let v = decide(&exit(ExitStatus::Signaled(libc::SIGKILL)), None, &Limits::default(), &observed);
        assert_eq!((v.status, v.reason), (Status::MemoryLimit, Some(Reason::CgroupMemory)));
    }

    #[test]
    fn deaths_without_a_report() {
        let v = decide_plain(ExitStatus::Exited(CHILD_OUT_OF_MEMORY), None);
        assert_eq!((v.status, v.reason), (Status::MemoryLimit, Some(Reason::NativeMemory)));

        let observed = Observed { syscall: Some("ptrace".into()), ..Observed::default() };
        let v = decide(&exit(ExitStatus::Signaled(libc::SIGSYS)), None, &Limits::default(), &observed);
        assert_eq!((v.status, v.reason, v.syscall.as_deref()), (Status::Killed, Some(Reason::Seccomp), Some("ptrace")));
        assert_eq!(v.exit_code, Some(128 + libc::SIGSYS));
        assert_eq!(v.details.as_deref(), Some("seccomp: system call ptrace denied"));

        let v = decide_plain(ExitStatus::Signaled(libc::SIGSEGV), None);
        assert_eq!((v.status, v.signal, v.reason), (Status::Killed, Some(libc::SIGSEGV), Some(Reason::Signal)));

        let v = decide_plain(ExitStatus::Exited(sandbox::spawn::PANIC_EXIT), None);
        assert_eq!(v.status, Status::Error);
        assert!(v.error.unwrap().contains("panicked"));
    }
}
