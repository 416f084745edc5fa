//! The contract with the runner: a job to run ([`RunJob`]), what came of it ([`RunOutcome`]),
//! and the [`Executor`] trait the runner implements. This crate never starts a process itself.

use crate::error::ExecError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Runs WebAssembly modules for the grader. The runner implements it (one confined child per
/// job); tests implement it with scripted outcomes.
///
/// The grader calls it from several worker threads at once (`jobs`), hence `Sync`.
pub trait Executor: Sync {
    /// Runs one module to completion.
    ///
    /// # Errors
    /// [`ExecError`] when the job could not be run at all (sandboxrun's own failure, exit 125
    /// territory). A guest that traps, exceeds a limit or exits non-zero is an `Ok` outcome.
    fn run(&self, job: &RunJob) -> Result<RunOutcome, ExecError>;

    /// Runs a submission and an interactor together: the submission's stdout is the
    /// interactor's stdin and the interactor's stdout is the submission's stdin (both jobs say
    /// [`Stdin::Peer`]). When neither has consumed or produced a byte and neither has used CPU for
    /// `idle_limit`, both are killed with [`Reason::Idle`]. Returns (submission, interactor).
    ///
    /// # Errors
    /// As [`Executor::run`].
    fn run_interactive(
        &self,
        submission: &RunJob,
        interactor: &RunJob,
        idle_limit: Duration,
    ) -> Result<(RunOutcome, RunOutcome), ExecError>;
}

/// What a job is for; the runner may use it for labels and logs only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A contestant's program.
    Submission,
    /// An output validator (checker).
    Checker,
    /// An interactor.
    Interactor,
    /// An input validator.
    InputValidator,
}

/// Where a job's standard input comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stdin {
    /// Empty (end of file at once).
    Empty,
    /// A host file, opened read-only by the runner.
    File(PathBuf),
    /// These bytes.
    Bytes(Vec<u8>),
    /// The other program's stdout (only in [`Executor::run_interactive`]).
    Peer,
}

/// A host directory visible to the guest at `guest` (a WASI preopen).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The host directory (absolute, created by the grader).
    pub host: PathBuf,
    /// The guest path, e.g. `/judge`.
    pub guest: String,
}

/// The limits a job runs under. Zero never means "unlimited": the grader always sets all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    /// CPU time, in milliseconds.
    pub cpu_ms: u64,
    /// Wall-clock time, in milliseconds.
    pub wall_ms: u64,
    /// Memory (linear memory plus the engine's), in bytes.
    pub memory_bytes: u64,
    /// Bytes written to stdout and stderr together.
    pub output_bytes: u64,
    /// An instruction budget (engine fuel), when the problem asks for deterministic timing.
    pub instructions: Option<u64>,
}

/// One program to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunJob {
    /// What the job is for.
    pub role: Role,
    /// The `.wasm` module on the host.
    pub module: PathBuf,
    /// The guest's arguments after `argv[0]` (guest paths, flags).
    pub args: Vec<String>,
    /// Standard input.
    pub stdin: Stdin,
    /// A fresh, empty directory the guest may write, mounted read-write (the grader creates it
    /// before the run and removes it after).
    pub scratch: Option<Mount>,
    /// Directories mounted read-only.
    pub read_only: Vec<Mount>,
    /// Limits.
    pub limits: RunLimits,
    /// At most this many bytes of stdout are captured into [`RunOutcome::stdout`] (the rest is
    /// counted in `stdout_bytes` only). For a submission it is the output limit: the checker
    /// needs all of it.
    pub capture_stdout: u64,
    /// At most this many bytes of stderr are captured into [`RunOutcome::stderr_head`].
    pub capture_stderr: u64,
}

/// The `status` of a runner report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The guest exited (returned from `_start` or called `proc_exit`).
    Exited,
    /// The guest trapped.
    Trapped,
    /// A time limit (CPU, wall, idle or instructions: see [`Reason`]).
    TimeLimit,
    /// The memory limit.
    MemoryLimit,
    /// The output limit.
    OutputLimit,
    /// The instruction budget ([`RunLimits::instructions`]; reason `instructions`).
    InstructionLimit,
    /// Killed by a signal (seccomp, the guest's `proc_raise`, another).
    Killed,
    /// sandboxrun could not run the module (invalid module, missing import, ...).
    Error,
}

/// The `reason` of a runner report, plus two the grader needs (`idle`, `instructions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The wall-clock limit.
    WallTime,
    /// The CPU-time limit.
    CpuTime,
    /// A native allocation failed at the data limit.
    NativeMemory,
    /// The cgroup's memory.max.
    CgroupMemory,
    /// The output limit.
    Output,
    /// Seccomp denied a system call.
    Seccomp,
    /// The guest raised a signal.
    GuestSignal,
    /// Another signal.
    Signal,
    /// The run was cancelled.
    Cancelled,
    /// Interactive runs: neither side made progress for the idle limit.
    Idle,
    /// The instruction budget ran out.
    Instructions,
}

/// A trap as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trap {
    /// The specification's wording, e.g. "integer divide by zero".
    pub kind: String,
    /// `name` (index) of the function, if known.
    pub function: Option<String>,
    /// Offset in the function's machine code.
    pub offset: Option<u32>,
}

/// What came of a [`RunJob`]: the runner's report fields plus captured output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// How the run ended.
    pub status: RunStatus,
    /// Why it was stopped, when it was.
    pub reason: Option<Reason>,
    /// The exit code (`proc_exit`'s `u32`), when it exited.
    pub exit_code: Option<u32>,
    /// The signal (Linux numbering), when killed.
    pub signal: Option<i32>,
    /// The denied system call, when seccomp killed it.
    pub syscall: Option<String>,
    /// The trap, when it trapped.
    pub trap: Option<Trap>,
    /// sandboxrun's one-line error, when status is `error`.
    pub error: Option<String>,
    /// CPU time used.
    pub cpu_time_ms: u64,
    /// Wall time used.
    pub wall_time_ms: u64,
    /// Peak memory.
    pub peak_memory_bytes: u64,
    /// Bytes written to stdout.
    pub stdout_bytes: u64,
    /// Bytes written to stderr.
    pub stderr_bytes: u64,
    /// Instructions executed, when the engine counted them.
    pub instructions: Option<u64>,
    /// `memory.grow` was refused at the memory limit at least once during the run.
    pub memory_grow_refused: bool,
    /// SHA-256 of the module, lowercase hex.
    pub module_sha256: String,
    /// The first [`RunJob::capture_stdout`] bytes of stdout.
    pub stdout: Vec<u8>,
    /// The first [`RunJob::capture_stderr`] bytes of stderr.
    pub stderr_head: Vec<u8>,
}

impl RunOutcome {
    /// A clean exit with `code` and the given stdout; every other field zero or empty. A
    /// starting point for executors (and tests) that fill in the rest.
    pub fn exited(code: u32, stdout: impl Into<Vec<u8>>) -> RunOutcome {
        let stdout = stdout.into();
        RunOutcome {
            status: RunStatus::Exited,
            reason: None,
            exit_code: Some(code),
            signal: None,
            syscall: None,
            trap: None,
            error: None,
            cpu_time_ms: 0,
            wall_time_ms: 0,
            peak_memory_bytes: 0,
            stdout_bytes: stdout.len() as u64,
            stderr_bytes: 0,
            instructions: None,
            memory_grow_refused: false,
            module_sha256: String::new(),
            stdout,
            stderr_head: Vec::new(),
        }
    }
}
