//! The verdict: how a run ended, all things considered — what the parent observed of the child
//! process (exit status, limits it enforced, cgroup counters) and what the child reported.
//! A pure function of those facts, so every branch is tested without running anything.

use crate::cli::output::escape;
use crate::supervise::report::{ChildOutcome, Reason, Status, TrapReport};
use crate::supervise::watch::{ChildExit, ExitStatus};
use policy::Limits;
use serde::Serialize;

/// The trap kind, as the child words it, of a run stopped by its instruction budget.
const INSTRUCTION_BUDGET_TRAP: &str = "instruction budget exhausted";

/// Exit status of a child whose allocation failed (at `RLIMIT_DATA`): see [`crate::child::oom`].
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
    /// The guest's exit code (all of it: WASI's exit codes are `u32`), or 128 + the signal for
    /// [`Status::Killed`].
    pub exit_code: Option<u32>,
    /// Which limit, which signal.
    pub reason: Option<Reason>,
    /// The signal (Linux's number), for [`Status::Killed`]; `None` when a guest raised a signal
    /// WASI does not define.
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
            exit_code: Some(128 + signal.unsigned_abs()),
            signal: Some(signal),
            reason: Some(reason),
            details: Some(details),
            ..Verdict::new(Status::Killed)
        }
    }
}

/// WASI preview1's signals (its `signal` enum), by number from 1, with Linux's number for each.
/// Not Linux's numbering: WASI has no `SIGSTKFLT`, so from `SIGCHLD` (WASI 16, Linux 17) on the
/// two differ by one; 0 (`none`) and anything past 30 are no signal.
const WASI_SIGNALS: [(&str, i32); 30] = [
    ("SIGHUP", libc::SIGHUP),
    ("SIGINT", libc::SIGINT),
    ("SIGQUIT", libc::SIGQUIT),
    ("SIGILL", libc::SIGILL),
    ("SIGTRAP", libc::SIGTRAP),
    ("SIGABRT", libc::SIGABRT),
    ("SIGBUS", libc::SIGBUS),
    ("SIGFPE", libc::SIGFPE),
    ("SIGKILL", libc::SIGKILL),
    ("SIGUSR1", libc::SIGUSR1),
    ("SIGSEGV", libc::SIGSEGV),
    ("SIGUSR2", libc::SIGUSR2),
    ("SIGPIPE", libc::SIGPIPE),
    ("SIGALRM", libc::SIGALRM),
    ("SIGTERM", libc::SIGTERM),
    ("SIGCHLD", libc::SIGCHLD),
    ("SIGCONT", libc::SIGCONT),
    ("SIGSTOP", libc::SIGSTOP),
    ("SIGTSTP", libc::SIGTSTP),
    ("SIGTTIN", libc::SIGTTIN),
    ("SIGTTOU", libc::SIGTTOU),
    ("SIGURG", libc::SIGURG),
    ("SIGXCPU", libc::SIGXCPU),
    ("SIGXFSZ", libc::SIGXFSZ),
    ("SIGVTALRM", libc::SIGVTALRM),
    ("SIGPROF", libc::SIGPROF),
    ("SIGWINCH", libc::SIGWINCH),
    ("SIGPOLL", libc::SIGPOLL),
    ("SIGPWR", libc::SIGPWR),
    ("SIGSYS", libc::SIGSYS),
];

/// The name and Linux number of WASI signal `signal`, if WASI defines it.
fn wasi_signal(signal: u8) -> Option<(&'static str, i32)> {
    WASI_SIGNALS.get(usize::from(signal).checked_sub(1)?).copied()
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
        // The child's text quotes the module (function names, import names): escaped here,
        // once, for the summary line and the report alike.
        (_, Some(ChildOutcome::Trapped(t))) => {
            let trap = TrapReport {
                kind: escape(&t.kind).into_owned(),
                function: t.function.as_deref().map(|f| escape(f).into_owned()),
                offset: t.offset,
                tag: t.tag.as_deref().map(|f| escape(f).into_owned()),
            };
            match limits.instructions {
                // The engine's budget trap, in a run that has a budget: the limit, with where.
                Some(budget) if trap.kind == INSTRUCTION_BUDGET_TRAP => Verdict {
                    trap: Some(trap),
                    ..Verdict::limit(
                        Status::InstructionLimit,
                        Reason::Instructions,
                        format!("instruction limit of {budget}"),
                    )
                },
                _ => Verdict { trap: Some(trap), ..Verdict::new(Status::Trapped) },
            }
        }
        (_, Some(ChildOutcome::OutputLimit)) => Verdict::limit(
            Status::OutputLimit,
            Reason::Output,
            format!("output limit of {}", policy::format_size(limits.output)),
        ),
        (_, Some(ChildOutcome::Raised { signal })) => match wasi_signal(signal) {
            Some((name, linux)) => {
                Verdict::killed(linux, Reason::GuestSignal, format!("the guest raised {name}, WASI signal {signal}"))
            }
            None => Verdict {
                reason: Some(Reason::GuestSignal),
                details: Some(format!("the guest raised signal {signal}, which WASI does not define")),
                ..Verdict::new(Status::Killed)
            },
        },
        (_, Some(ChildOutcome::Error { message })) => Verdict::error(escape(&message).into_owned()),
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
        assert_eq!(v.exit_code, Some(128 + libc::SIGSYS as u32));
        assert_eq!(v.details.as_deref(), Some("seccomp: system call ptrace denied"));

        let v = decide_plain(ExitStatus::Signaled(libc::SIGSEGV), None);
        assert_eq!((v.status, v.signal, v.reason), (Status::Killed, Some(libc::SIGSEGV), Some(Reason::Signal)));

        let v = decide_plain(ExitStatus::Exited(sandbox::spawn::PANIC_EXIT), None);
        assert_eq!(v.status, Status::Error);
        assert!(v.error.unwrap().contains("panicked"));
    }

    /// A guest's code beyond 255 never truncates to a status that reads as success or as
    /// another code; the report keeps it whole.
    #[test]
    fn exit_codes_beyond_255_end_as_1() {
        for code in [256u32, 512, 1 << 31, u32::MAX, 255 + 134] {
            let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Exited { code }));
            assert_eq!((v.status.clone(), v.exit_code, v.exit_status()), (Status::Exited, Some(code), 1), "{code}");
            let line = v.summary().expect("a line for an out-of-range code");
            assert!(line.contains(&code.to_string()) && !line.contains('\n'), "{line}");
        }
        let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Exited { code: 255 }));
        assert_eq!(v.exit_status(), 255);
    }

    /// A guest's own code that collides with a verdict's status gets one line saying so; an
    /// ordinary code gets none.
    #[test]
    fn reserved_exit_codes_say_they_are_the_guests() {
        for code in [2u32, 124, 125, 134, 137, 153, 159, 129, 255] {
            let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Exited { code }));
            assert_eq!(v.exit_status(), code as i32);
            assert_eq!(
                v.summary().as_deref(),
                Some(format!("sandboxrun: the guest exited with code {code} (its own code, not a verdict)").as_str())
            );
        }
        for code in [0u32, 1, 3, 42, 126, 127, 128] {
            let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Exited { code }));
            assert_eq!((v.exit_status(), v.summary()), (code as i32, None));
        }
    }

    /// WASI numbers its signals its own way: SIGABRT is 6 in both, but WASI's SIGCHLD (16) is
    /// Linux's 17 and WASI's SIGSYS (30) Linux's 31; 0 and anything past 30 are no signal.
    #[test]
    fn raised_signals_are_translated_from_wasi() {
        let raised = |signal| decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Raised { signal }));
        for (wasi, linux) in [(1u8, libc::SIGHUP), (6, libc::SIGABRT), (9, libc::SIGKILL), (15, libc::SIGTERM)] {
            let v = raised(wasi);
            assert_eq!(
                (v.status.clone(), v.signal, v.reason),
                (Status::Killed, Some(linux), Some(Reason::GuestSignal))
            );
            assert_eq!(v.exit_status(), 128 + linux);
        }
        let v = raised(16);
        assert_eq!((v.signal, v.exit_code), (Some(libc::SIGCHLD), Some(128 + 17)));
        let v = raised(30);
        assert_eq!((v.signal, v.exit_status()), (Some(libc::SIGSYS), 159));
        assert_eq!(v.details.as_deref(), Some("the guest raised SIGSYS, WASI signal 30"));
        assert_eq!(v.syscall, None, "not a seccomp kill");
        for signal in [0u8, 31, 255] {
            let v = raised(signal);
            assert_eq!(
                (v.status.clone(), v.reason, v.signal, v.exit_code),
                (Status::Killed, Some(Reason::GuestSignal), None, None)
            );
            assert_eq!(v.exit_status(), 1, "{signal}");
            assert!(v.summary().unwrap().contains(&format!("signal {signal}, which WASI does not define")));
        }
    }

    /// The engine's budget trap is the instruction limit, exit status 124, where the run had a
    /// budget; without one it is only a trap (no limit was asked for).
    #[test]
    fn the_budget_trap_is_the_instruction_limit() {
        assert_eq!(INSTRUCTION_BUDGET_TRAP, engine::TrapKind::InstructionBudget.to_string());
        let trapped = |kind: &str| {
            Some(ChildOutcome::Trapped(TrapReport {
                kind: kind.into(),
                function: Some("f (1)".into()),
                offset: Some(8),
                tag: None,
            }))
        };
        let limits = Limits { instructions: Some(1000), ..Limits::default() };
        let v = decide(&exit(ExitStatus::Exited(0)), trapped(INSTRUCTION_BUDGET_TRAP), &limits, &Observed::default());
        assert_eq!((v.status.clone(), v.reason), (Status::InstructionLimit, Some(Reason::Instructions)));
        assert_eq!((v.exit_status(), v.details.as_deref()), (124, Some("instruction limit of 1000")));
        assert_eq!(v.trap.as_ref().and_then(|t| t.function.as_deref()), Some("f (1)"));
        assert_eq!(v.summary().as_deref(), Some("sandboxrun: instruction limit (instruction limit of 1000)"));
        let v = decide(&exit(ExitStatus::Exited(0)), trapped("unreachable"), &limits, &Observed::default());
        assert_eq!((v.status.clone(), v.exit_status()), (Status::Trapped, 134));
        let v = decide_plain(ExitStatus::Exited(0), trapped(INSTRUCTION_BUDGET_TRAP));
        assert_eq!(v.status, Status::Trapped, "no budget was asked for");
        // Limits the parent saw still come first.
        let mut e = exit(ExitStatus::Exited(0));
        e.cpu_timeout = true;
        let v = decide(&e, trapped(INSTRUCTION_BUDGET_TRAP), &limits, &Observed::default());
        assert_eq!(v.reason, Some(Reason::CpuTime));
    }

    /// Names a module chose reach the summary line and the report escaped.
    #[test]
    fn module_text_is_escaped() {
        let trap = TrapReport {
            kind: "uncaught exception".into(),
            function: Some("f\n\u{1b}[31mred\u{7f}\u{9b} (3)".into()),
            offset: Some(4),
            tag: Some("'t\u{1b}[2J'".into()),
        };
        let v = decide_plain(ExitStatus::Exited(0), Some(ChildOutcome::Trapped(trap)));
        let function = v.trap.as_ref().unwrap().function.clone().unwrap();
        assert_eq!(function, "f\\n\\u{1b}[31mred\\u{7f}\\u{9b} (3)");
        assert_eq!(v.trap.as_ref().unwrap().tag.as_deref(), Some("'t\\u{1b}[2J'"));
        assert!(v.summary().unwrap().contains("(tag 't\\u{1b}[2J')"), "{:?}", v.summary());
        assert!(!v.summary().unwrap().chars().any(char::is_control));
        let v = decide_plain(
            ExitStatus::Exited(0),
            Some(ChildOutcome::Error { message: "unknown import env.a\nb\u{1b}c: expected func() -> ()".into() }),
        );
        assert_eq!(v.error.as_deref(), Some("unknown import env.a\\nb\\u{1b}c: expected func() -> ()"));
    }
}
