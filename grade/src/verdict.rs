//! Verdicts, and the one mapping from a run's outcome to a verdict (batch and interactive).

use crate::checker::CheckResult;
use crate::exec::{Reason, RunOutcome, RunStatus};
use serde::{Deserialize, Serialize};

/// A test's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Accepted.
    AC,
    /// Wrong answer.
    WA,
    /// Presentation error: accepted by the whitespace-insensitive compare but not the exact one.
    PE,
    /// Time limit exceeded: CPU time, or the instruction budget.
    TLE,
    /// Idleness limit exceeded: the wall-clock limit, or an interactive run where both sides waited.
    ILE,
    /// Memory limit exceeded.
    MLE,
    /// Output limit exceeded.
    OLE,
    /// Runtime error: non-zero exit, trap, signal.
    RTE,
    /// Security violation: a system call denied by seccomp.
    SV,
    /// Internal error: the judge, the checker or the package is at fault.
    IE,
    /// Skipped: a group it depends on failed, or an earlier test of its batch failed.
    SK,
}

impl Verdict {
    /// Every verdict, in the order used by summaries.
    pub const ALL: [Verdict; 11] = [
        Verdict::AC,
        Verdict::WA,
        Verdict::PE,
        Verdict::TLE,
        Verdict::ILE,
        Verdict::MLE,
        Verdict::OLE,
        Verdict::RTE,
        Verdict::SV,
        Verdict::IE,
        Verdict::SK,
    ];

    /// The short code, e.g. "TLE".
    pub fn code(self) -> &'static str {
        match self {
            Verdict::AC => "AC",
            Verdict::WA => "WA",
            Verdict::PE => "PE",
            Verdict::TLE => "TLE",
            Verdict::ILE => "ILE",
            Verdict::MLE => "MLE",
            Verdict::OLE => "OLE",
            Verdict::RTE => "RTE",
            Verdict::SV => "SV",
            Verdict::IE => "IE",
            Verdict::SK => "SK",
        }
    }

    /// The long name, e.g. "time limit exceeded".
    pub fn name(self) -> &'static str {
        match self {
            Verdict::AC => "accepted",
            Verdict::WA => "wrong answer",
            Verdict::PE => "presentation error",
            Verdict::TLE => "time limit exceeded",
            Verdict::ILE => "idleness limit exceeded",
            Verdict::MLE => "memory limit exceeded",
            Verdict::OLE => "output limit exceeded",
            Verdict::RTE => "runtime error",
            Verdict::SV => "security violation",
            Verdict::IE => "internal error",
            Verdict::SK => "skipped",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A verdict with the judge's one-line explanation.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, for the judge (empty for a plain AC).
    pub message: String,
}

impl Judged {
    pub(crate) fn new(verdict: Verdict, message: impl Into<String>) -> Judged {
        Judged { verdict, message: message.into() }
    }
}

/// TLE for a run stopped by its instruction budget, with the count when the runner gave it.
fn instructions_exhausted(o: &RunOutcome) -> Judged {
    let n = o.instructions.map(|n| format!(" after {n} instructions")).unwrap_or_default();
    Judged::new(Verdict::TLE, format!("instruction budget exhausted{n}"))
}

/// Maps a submission's outcome to a verdict, or `None` when it ran cleanly (exit 0 within the
/// limits) and its output goes to the checker. `cpu_limit_ms` catches a run that ended past the
/// CPU limit without the runner stopping it.
///
/// The rules, in order:
/// 1. `error` → IE (sandboxrun could not run the module).
/// 2. `memory_grow_refused`, then a trap or a non-zero exit → MLE ("memory.grow refused at the
///    limit, then ...").
/// 3. `instruction_limit` (or `time_limit` with reason `instructions`) → TLE ("instruction
///    budget exhausted after N instructions"); `time_limit`: `wall_time` or `idle` → ILE,
///    otherwise TLE.
/// 4. `memory_limit` → MLE; `output_limit` → OLE.
/// 5. `killed`: reason `seccomp` → SV naming the syscall; `cancelled` → IE; `output` → OLE;
///    `cgroup_memory`/`native_memory` → MLE; else RTE naming the signal.
/// 6. `trapped` → RTE naming the trap kind (and function, offset).
/// 7. `exited` non-zero → RTE with the code; exit 0 past the CPU limit → TLE; exit 0 → `None`.
pub fn classify(outcome: &RunOutcome, cpu_limit_ms: u64) -> Option<Judged> {
    let o = outcome;
    if o.memory_grow_refused {
        let then = match o.status {
            RunStatus::Trapped => Some(format!("then trapped: {}", trap_text(o))),
            RunStatus::Exited if o.exit_code != Some(0) => {
                Some(format!("then exited with code {}", o.exit_code.unwrap_or(0)))
            }
            _ => None,
        };
        if let Some(then) = then {
            return Some(Judged::new(Verdict::MLE, format!("memory.grow refused at the memory limit, {then}")));
        }
    }
    match o.status {
        RunStatus::Error => {
            let e = clean(o.error.as_deref().unwrap_or("unknown error"), 200);
            Some(Judged::new(Verdict::IE, format!("sandboxrun could not run the module: {e}")))
        }
        RunStatus::InstructionLimit => Some(instructions_exhausted(o)),
        RunStatus::TimeLimit => Some(match o.reason {
            Some(Reason::Instructions) => instructions_exhausted(o),
            Some(Reason::WallTime) => {
                Judged::new(Verdict::ILE, format!("wall-clock limit hit after {} ms", o.wall_time_ms))
            }
            Some(Reason::Idle) => Judged::new(Verdict::ILE, "no progress: both sides waited for input"),
            _ => Judged::new(Verdict::TLE, format!("cpu time limit hit after {} ms", o.cpu_time_ms)),
        }),
        RunStatus::MemoryLimit => {
            let why = match o.reason {
                Some(Reason::CgroupMemory) => "the cgroup's memory.max",
                Some(Reason::NativeMemory) => "a native allocation at the data limit",
                _ => "the memory limit",
            };
            Some(Judged::new(Verdict::MLE, format!("stopped by {why}")))
        }
        RunStatus::OutputLimit => Some(Judged::new(
            Verdict::OLE,
            format!("wrote past the output limit ({} bytes)", o.stdout_bytes + o.stderr_bytes),
        )),
        RunStatus::Killed => Some(match o.reason {
            Some(Reason::Seccomp) => {
                let s = o.syscall.as_deref().unwrap_or("unknown");
                Judged::new(Verdict::SV, format!("system call '{}' denied by seccomp", clean(s, 64)))
            }
            Some(Reason::Cancelled) => Judged::new(Verdict::IE, "the run was cancelled"),
            Some(Reason::Output) => Judged::new(Verdict::OLE, "killed at the output limit"),
            Some(Reason::CgroupMemory | Reason::NativeMemory) => {
                Judged::new(Verdict::MLE, "killed at the memory limit")
            }
            Some(Reason::GuestSignal) => Judged::new(Verdict::RTE, format!("raised signal {}", signal_text(o))),
            _ => Judged::new(Verdict::RTE, format!("killed by signal {}", signal_text(o))),
        }),
        RunStatus::Trapped => Some(Judged::new(Verdict::RTE, format!("trapped: {}", trap_text(o)))),
        RunStatus::Exited => match o.exit_code.unwrap_or(0) {
            0 if o.cpu_time_ms > cpu_limit_ms => {
                Some(Judged::new(Verdict::TLE, format!("cpu time {} ms over the limit", o.cpu_time_ms)))
            }
            0 => None,
            code => Some(Judged::new(Verdict::RTE, format!("exited with code {code}"))),
        },
    }
}

fn trap_text(o: &RunOutcome) -> String {
    match &o.trap {
        None => "unknown trap".into(),
        Some(t) => {
            let mut s = clean(&t.kind, 80);
            if let Some(f) = &t.function {
                s.push_str(&format!(" in {}", clean(f, 80)));
            }
            if let Some(off) = t.offset {
                s.push_str(&format!(" at offset {off:#x}"));
            }
            s
        }
    }
}

fn signal_text(o: &RunOutcome) -> String {
    o.signal.map_or_else(|| "unknown".into(), |s| s.to_string())
}

/// Keeps a guest-chosen string to one printable line of at most `max` characters.
pub(crate) fn clean(s: &str, max: usize) -> String {
    let mut out: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

/// Decides an interactive test from the submission's outcome, the interactor's outcome and
/// what the interactor's exit meant (`interactor`: its decoded verdict, an IE when its exit was
/// not a verdict). The rules, in order:
/// 1. either side stopped for `idle` (or both hit the wall clock) → ILE: both waited.
/// 2. the submission's own limits and violations (TLE, ILE, MLE, OLE, SV, IE from `error`)
///    → that verdict, whatever the interactor said.
/// 3. the interactor's verdict is IE (crashed, timed out, odd exit) → IE.
/// 4. the interactor rejected → its verdict stands (WA/PE), even if the submission then died
///    (it quit early, or the interactor closed the pipe on it).
/// 5. the interactor accepted but the submission trapped, exited non-zero or was killed → RTE.
/// 6. otherwise the interactor's verdict (AC, with its score).
pub fn decide_interactive(
    sub: &RunOutcome,
    inter: &RunOutcome,
    interactor: CheckResult,
    cpu_limit_ms: u64,
) -> (Judged, f64) {
    let idle = |o: &RunOutcome| o.reason == Some(Reason::Idle);
    let wall = |o: &RunOutcome| o.status == RunStatus::TimeLimit && o.reason == Some(Reason::WallTime);
    if idle(sub) || idle(inter) || (wall(sub) && wall(inter)) {
        return (
            Judged::new(Verdict::ILE, "no progress: the submission and the interactor both waited for input"),
            0.0,
        );
    }
    let own = classify(sub, cpu_limit_ms);
    if let Some(j) = &own {
        if !matches!(j.verdict, Verdict::RTE) {
            return (j.clone(), 0.0);
        }
    }
    if interactor.judged.verdict == Verdict::IE {
        return (interactor.judged, 0.0);
    }
    if interactor.judged.verdict != Verdict::AC {
        return (interactor.judged, 0.0);
    }
    if let Some(j) = own {
        return (Judged::new(Verdict::RTE, format!("{} (the interactor had accepted)", j.message)), 0.0);
    }
    (interactor.judged, interactor.fraction)
}
