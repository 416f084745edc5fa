//! sandboxrun's grading core: load a problem package (Kattis/ICPC 2023-07, or a DMOJ
//! `init.yml` directory), run submissions on its tests through an [`Executor`] the runner
//! provides, check their output (built-in comparisons, or ICPC / testlib checkers), decide
//! verdicts, apply groups, batches, dependencies and points, and write the result as a table,
//! JSON, JUnit XML, Gradescope JSON or one HTML page.
//!
//! This crate starts no process: everything that runs a module goes through [`Executor`].
//! `docs/grading.md` is the reference.

#![deny(missing_docs)]

mod checker;
mod dmoj;
mod error;
mod exec;
mod flow;
mod format;
mod package;
mod result;
mod scratch;
mod verdict;
mod yaml;

pub use checker::{decode, CheckResult, Checker, Compare, CompareMode, Convention, FloatTolerance, MESSAGE_MAX};
pub use dmoj::load_dmoj;
pub use error::{ExecError, GradeError, PackageError};
pub use exec::{Executor, Mount, Reason, Role, RunJob, RunLimits, RunOutcome, RunStatus, Stdin, Trap};
pub use flow::{grade, GradeOptions, Progress, Submission, GUEST_DATA, GUEST_FEEDBACK, GUEST_JUDGE, GUEST_SCRATCH};
pub use format::{render, Format};
pub use package::{
    compare_from_flags, load_problem, package_sha256, Aggregation, Group, OnReject, Problem, ProblemKind,
    ProblemLimits, TestCase, DEFAULT_MEMORY_MIB, DEFAULT_OUTPUT_MIB, DEFAULT_TIME_LIMIT_MS, DEFAULT_VALIDATION_TIME_MS,
};
pub use result::{GradeResult, GroupRecord, ProblemGroup, ProblemInfo, SubmissionResult, TestRecord, SCHEMA_VERSION};
pub use verdict::{classify, decide_interactive, Judged, Verdict};
