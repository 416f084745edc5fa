//! The records a grading run produces: per test, per group, per submission, and the whole run.
//! Their serde form is the `json` output (`grade/schema/result.schema.json`).

use crate::exec::{RunLimits, RunStatus, Trap};
use crate::verdict::Verdict;
use serde::{Deserialize, Serialize};

/// The version of the JSON result's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// One test of one submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestRecord {
    /// The test's id, e.g. `secret/group1/01`.
    pub id: String,
    /// Its group's name.
    pub group: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The fraction of the test's points earned (0..=1; 0 unless AC).
    pub fraction: f64,
    /// Points this test earned on its own: set in `sum` groups and one-test groups; `None` where
    /// the group's points belong to the batch as a whole.
    pub points: Option<f64>,
    /// How the submission's run ended (`None`: it did not run, SK or IE before the run).
    pub status: Option<RunStatus>,
    /// CPU time.
    pub cpu_ms: u64,
    /// Wall time.
    pub wall_ms: u64,
    /// Peak memory.
    pub peak_memory_bytes: u64,
    /// Instructions executed, when counted.
    pub instructions: Option<u64>,
    /// Exit code.
    pub exit_code: Option<u32>,
    /// Signal that killed it.
    pub signal: Option<i32>,
    /// System call seccomp denied.
    pub syscall: Option<String>,
    /// The trap.
    pub trap: Option<Trap>,
    /// The first bytes of stdout (lossy UTF-8).
    pub stdout_head: String,
    /// The first bytes of stderr (lossy UTF-8).
    pub stderr_head: String,
    /// The checker's message for the contestant (ICPC `teammessage.txt`).
    pub contestant_message: Option<String>,
    /// The judge's message: why this verdict.
    pub judge_message: String,
    /// The limits the submission ran under.
    pub limits: RunLimits,
}

/// One group of one submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The group's name.
    pub name: String,
    /// The first verdict other than AC among its tests, or AC.
    pub verdict: Verdict,
    /// The points it is worth (`None`: not scored).
    pub max_points: Option<f64>,
    /// The points earned.
    pub points: f64,
    /// Number of tests.
    pub tests: usize,
}

/// One submission's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubmissionResult {
    /// The submission's name.
    pub name: String,
    /// The module path as given.
    pub module: String,
    /// SHA-256 of the module as the executor reported it (empty if it never ran).
    pub module_sha256: String,
    /// The first verdict other than AC and SK in test order, or AC.
    pub verdict: Verdict,
    /// Points earned.
    pub score: f64,
    /// Points possible.
    pub max_score: f64,
    /// The largest CPU time of any test.
    pub max_cpu_ms: u64,
    /// The largest peak memory of any test.
    pub max_peak_memory_bytes: u64,
    /// Per group, in order.
    pub groups: Vec<GroupRecord>,
    /// Per test, in order.
    pub tests: Vec<TestRecord>,
}

/// A group as the problem defines it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProblemGroup {
    /// Its name.
    pub name: String,
    /// Points (`None`: not scored).
    pub points: Option<f64>,
    /// `min` or `sum`.
    pub aggregation: String,
    /// `break` or `continue`.
    pub on_reject: String,
    /// Names of the groups it depends on.
    pub depends_on: Vec<String>,
    /// Its test ids.
    pub tests: Vec<String>,
}

/// The problem as graded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProblemInfo {
    /// Name.
    pub name: String,
    /// `batch` or `interactive`.
    pub kind: String,
    /// SHA-256 over the package files.
    pub sha256: String,
    /// CPU time limit per test.
    pub time_limit_ms: u64,
    /// Wall-clock limit per test.
    pub wall_limit_ms: u64,
    /// Memory limit.
    pub memory_bytes: u64,
    /// Output limit.
    pub output_bytes: u64,
    /// Points possible.
    pub max_score: f64,
    /// Groups in order.
    pub groups: Vec<ProblemGroup>,
}

/// A whole grading run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradeResult {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The engine's version string, as passed in.
    pub engine_version: String,
    /// SHA-256 of the policy, as passed in.
    pub policy_sha256: String,
    /// SHA-256 of the checker or interactor module, as the executor reported it.
    pub checker_sha256: Option<String>,
    /// The problem.
    pub problem: ProblemInfo,
    /// Per submission, in the order given.
    pub submissions: Vec<SubmissionResult>,
}
