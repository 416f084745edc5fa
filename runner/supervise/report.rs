//! The outcome of a run: what the child tells the parent, the verdict the parent decides,
//! the JSON report and the exit status.

use crate::supervise::verdict::Verdict;
use serde::{Deserialize, Serialize};

pub use protocol::report::{Applied, ChildOutcome, ChildReport, ChildStarted, Confinement, Stages, TrapReport};

/// Exit status when the guest trapped (Wasmtime's convention).
pub const EXIT_TRAP: i32 = 134;
/// Exit status when a time limit or the instruction budget was hit.
pub const EXIT_TIME_LIMIT: i32 = 124;
/// Exit status when sandboxrun itself could not run the module.
pub const EXIT_ERROR: i32 = 125;
/// Exit status when the memory limit was hit.
pub const EXIT_MEMORY_LIMIT: i32 = 137;
/// Exit status when the output limit was hit (128 + SIGXFSZ).
pub const EXIT_OUTPUT_LIMIT: i32 = 153;
/// Exit status when the guest ended with no status of its own to give: an exit code outside
/// 0..=255 (`proc_exit(256)`; Wasmtime's choice: never 0, as truncating would give), or a
/// signal WASI does not define. The report keeps the code.
pub const EXIT_GUEST_ABNORMAL: i32 = 1;

/// The verdict: how the run ended, all things considered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The guest exited.
    Exited,
    /// The guest trapped.
    Trapped,
    /// A time limit (cpu or wall) was hit.
    TimeLimit,
    /// The memory limit was hit.
    MemoryLimit,
    /// The output limit was hit.
    OutputLimit,
    /// The instruction budget (`limits.instructions`) was exhausted.
    InstructionLimit,
    /// The child was killed by a signal.
    Killed,
    /// sandboxrun could not run the module.
    Error,
}

/// Why a run was stopped or killed (the `reason` of the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The wall-clock limit: the supervisor killed the run.
    WallTime,
    /// The CPU-time limit: the supervisor killed the run, or it ended past the limit.
    CpuTime,
    /// A native allocation failed at the process's data limit (`RLIMIT_DATA`).
    NativeMemory,
    /// The run's cgroup hit `memory.max` and the kernel killed it.
    CgroupMemory,
    /// The output limit.
    Output,
    /// Seccomp killed the run for a denied system call.
    Seccomp,
    /// The guest raised a signal with `proc_raise`.
    GuestSignal,
    /// Another signal killed the run.
    Signal,
    /// The supervisor killed the run because its client went away (a run through a server).
    Cancelled,
    /// The instruction budget (`limits.instructions`): the engine stopped the run.
    Instructions,
}

/// How a run used the code cache (`"hit"`, `"miss"` or `"disabled"` in the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheUse {
    /// The compiled code came from the cache.
    Hit,
    /// The module was compiled (and stored, when the child sent the code back intact).
    Miss,
    /// No cache: `--no-cache`, or it could not be used (a warning said why).
    Disabled,
}

impl CacheUse {
    /// The name the report uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
            CacheUse::Disabled => "disabled",
        }
    }
}

/// The JSON report of `--report FILE`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The verdict: status, exit code, reason, signal, syscall, details, trap, error (flattened
    /// into the report's top level).
    #[serde(flatten)]
    pub verdict: Verdict,
    /// CPU time of the child.
    pub cpu_time_ms: u64,
    /// Wall time of the child.
    pub wall_time_ms: u64,
    /// Peak resident memory of the child.
    pub peak_memory_bytes: u64,
    /// Whether a `memory.grow` within the module's own maximum was refused at the memory
    /// limit (a run that then traps or fails ran out of memory).
    pub memory_grow_refused: bool,
    /// Bytes written to stdout.
    pub stdout_bytes: u64,
    /// Bytes written to stderr.
    pub stderr_bytes: u64,
    /// Wasm instructions executed, when the run counted them (`limits.instructions`; absent
    /// otherwise, and when the run was killed before it could report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<u64>,
    /// SHA-256 of the module file.
    pub module_sha256: String,
    /// How the run used the code cache.
    pub cache: CacheUse,
    /// Time spent compiling (0 on a cache hit).
    pub compile_ms: f64,
    /// Time spent loading cached code (0 on a miss).
    pub load_ms: f64,
    /// Per-stage timings in milliseconds.
    pub stages: Stages,
    /// The confinement applied to the run.
    pub confinement: Option<Confinement>,
}

impl Verdict {
    /// The process exit status for this verdict, in 0..=255; the report's `status` says which
    /// verdict it is.
    pub fn exit_status(&self) -> i32 {
        let guest = |code: Option<u32>| match code {
            None => EXIT_GUEST_ABNORMAL,
            Some(c) => u8::try_from(c).map_or(EXIT_GUEST_ABNORMAL, i32::from),
        };
        match self.status {
            Status::Exited => guest(Some(self.exit_code.unwrap_or(0))),
            Status::Trapped => EXIT_TRAP,
            Status::TimeLimit | Status::InstructionLimit => EXIT_TIME_LIMIT,
            Status::MemoryLimit => EXIT_MEMORY_LIMIT,
            Status::OutputLimit => EXIT_OUTPUT_LIMIT,
            Status::Killed => guest(self.exit_code),
            Status::Error => EXIT_ERROR,
        }
    }

    /// Whether a guest's own exit `code` reads like a status sandboxrun gives for a verdict or a
    /// failure: 2, 124, 125, or 128 + N.
    pub fn is_reserved(code: u32) -> bool {
        matches!(code, 2 | 124 | 125 | 129..=255)
    }

    /// The one line printed to stderr for verdicts other than a normal exit, and for an exit
    /// whose code is out of range or reads like a verdict ([`Verdict::is_reserved`]).
    pub fn summary(&self) -> Option<String> {
        match self.status {
            Status::Exited => match self.exit_code.unwrap_or(0) {
                code if code > 255 => Some(format!(
                    "sandboxrun: the guest exited with code {code}, beyond 255: exit status {EXIT_GUEST_ABNORMAL}"
                )),
                code if Verdict::is_reserved(code) => {
                    Some(format!("sandboxrun: the guest exited with code {code} (its own code, not a verdict)"))
                }
                _ => None,
            },
            Status::Trapped => {
                let t = self.trap.as_ref()?;
                let mut line = format!("sandboxrun: wasm trap: {}", t.kind);
                if let Some(tag) = &t.tag {
                    line += &format!(" (tag {tag})");
                }
                if let Some(f) = &t.function {
                    line += &format!(" in function {f}");
                }
                if let Some(o) = t.offset {
                    line += &format!(" at code offset {o:#x}");
                }
                Some(line)
            }
            Status::Error => Some(format!("sandboxrun: error: {}", self.error.as_deref().unwrap_or("unknown"))),
            _ => Some(format!(
                "sandboxrun: {}{}",
                serde_json::to_value(&self.status).ok()?.as_str()?.replace('_', " "),
                self.details.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
            )),
        }
    }
}

/// What a child wrote on its report pipe: a [`ChildStarted`] if it got as far as guest code,
/// then its [`ChildReport`] if it finished; each decoded as hostile input. Anything else in
/// the pipe — another order, a damaged frame, trailing bytes — gives `None` for what it spoils.
pub fn read_report_pipe(bytes: &[u8]) -> (Option<ChildStarted>, Option<ChildReport>) {
    let mut rest = bytes;
    let started = match bytes.get(1) {
        Some(&protocol::kind::CHILD_STARTED) => match protocol::read_untrusted::<ChildStarted>(&mut rest) {
            Ok(started) => Some(started),
            Err(_) => return (None, None),
        },
        _ => None,
    };
    (started, protocol::decode_untrusted::<ChildReport>(rest).ok())
}

/// The most a report pipe carries: a [`ChildStarted`] and a [`ChildReport`], each at its
/// frame's bound.
pub fn report_pipe_limit() -> usize {
    protocol::max_frame_len::<ChildStarted>() + protocol::max_frame_len::<ChildReport>()
}

#[cfg(test)]
mod tests {
    use super::{read_report_pipe, ChildOutcome, ChildReport, ChildStarted, Reason, Stages, Status};

    #[test]
    fn a_report_pipe_holds_a_start_then_a_report_or_either_alone() {
        let started = ChildStarted { compiled: true, stages: Stages::default(), confinement: None };
        let report = ChildReport {
            outcome: ChildOutcome::Exited { code: 7 },
            compiled: true,
            stages: Stages::default(),
            stdout_bytes: 0,
            stderr_bytes: 0,
            memory_grow_refused: false,
            instructions: Some(6003),
            confinement: None,
        };
        let (s, r) = (protocol::encode(&started).unwrap(), protocol::encode(&report).unwrap());
        assert_eq!(read_report_pipe(&[s.clone(), r.clone()].concat()), (Some(started.clone()), Some(report.clone())));
        assert_eq!(read_report_pipe(&s), (Some(started.clone()), None), "killed while running guest code");
        assert_eq!(read_report_pipe(&r), (None, Some(report.clone())), "ended before guest code");
        assert_eq!(read_report_pipe(&[r.clone(), s.clone()].concat()), (None, None), "out of order");
        assert_eq!(read_report_pipe(&[s.clone(), s.clone()].concat()), (Some(started.clone()), None));
        assert_eq!(read_report_pipe(&s[..s.len() - 1]), (None, None), "cut short");
        assert_eq!(read_report_pipe(&[s, r, vec![0]].concat()).1, None, "trailing bytes");
        assert_eq!(read_report_pipe(&[]), (None, None));
    }

    /// The grader (`grade`, which depends on no runner crate) reads reports by these names:
    /// every status and reason the runner writes must read back as the same name there. The
    /// matches are exhaustive, so a new variant fails to compile until it is listed here.
    #[test]
    fn the_graders_vocabulary_reads_every_status_and_reason() {
        let statuses = [
            Status::Exited,
            Status::Trapped,
            Status::TimeLimit,
            Status::MemoryLimit,
            Status::OutputLimit,
            Status::InstructionLimit,
            Status::Killed,
            Status::Error,
        ];
        for status in statuses {
            match status {
                Status::Exited
                | Status::Trapped
                | Status::TimeLimit
                | Status::MemoryLimit
                | Status::OutputLimit
                | Status::InstructionLimit
                | Status::Killed
                | Status::Error => {}
            }
            let ours = serde_json::to_value(&status).unwrap();
            let theirs: grade::RunStatus = serde_json::from_value(ours.clone()).unwrap();
            assert_eq!(serde_json::to_value(theirs).unwrap(), ours);
        }
        let reasons = [
            Reason::WallTime,
            Reason::CpuTime,
            Reason::NativeMemory,
            Reason::CgroupMemory,
            Reason::Output,
            Reason::Seccomp,
            Reason::GuestSignal,
            Reason::Signal,
            Reason::Cancelled,
            Reason::Instructions,
        ];
        for reason in reasons {
            match reason {
                Reason::WallTime
                | Reason::CpuTime
                | Reason::NativeMemory
                | Reason::CgroupMemory
                | Reason::Output
                | Reason::Seccomp
                | Reason::GuestSignal
                | Reason::Signal
                | Reason::Cancelled
                | Reason::Instructions => {}
            }
            let ours = serde_json::to_value(reason).unwrap();
            let theirs: grade::Reason = serde_json::from_value(ours.clone()).unwrap();
            assert_eq!(serde_json::to_value(theirs).unwrap(), ours);
        }
    }
}
