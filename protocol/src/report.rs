//! What a child writes on its report pipe: [`ChildStarted`] just before the first guest
//! instruction (the confinement it applied, the stages so far: what a run killed at a limit is
//! still reported with), then [`ChildReport`] when it is done (how the guest's run ended, the
//! stage timings, the confinement). The child runs guest code: its supervisor
//! reads the pipe bounded by [`crate::max_frame_len`] and takes the report as hostile input
//! (a guest that took over the process may have written it).

use crate::payload::json_message;
use crate::{kind, FromConfined};
use serde::{Deserialize, Serialize};

/// A trap as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrapReport {
    /// The specification's wording, e.g. "integer divide by zero".
    pub kind: String,
    /// `name` (index) of the function, if known.
    pub function: Option<String>,
    /// Offset in the function's machine code.
    pub offset: Option<u32>,
    /// For an uncaught exception: its tag, `'name'` by the name its module exports it under,
    /// else its index there.
    #[serde(default)]
    pub tag: Option<String>,
}

/// How the guest's run ended, as the child saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ChildOutcome {
    /// Returned from `_start`, called `proc_exit`, or returned from `--invoke`.
    Exited {
        /// The exit code (`proc_exit`'s `u32`, whole).
        code: u32,
    },
    /// Trapped.
    Trapped(TrapReport),
    /// Wrote past the output limit.
    OutputLimit,
    /// Raised a signal with `proc_raise`.
    Raised {
        /// The signal, in WASI's numbering (its `signal` enum, not Linux's).
        signal: u8,
    },
    /// sandboxrun could not run it (invalid module, missing import, ...).
    Error {
        /// One line.
        message: String,
    },
}

/// Per-stage timings in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    /// Parse and validate.
    pub load: f64,
    /// Compile (or load from the cache).
    pub compile: f64,
    /// Resolve imports.
    pub link: f64,
    /// Instantiate (segments, start function).
    pub instantiate: f64,
    /// Run `_start` or the invoked export.
    pub execute: f64,
}

/// The confinement the child applied to itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// New namespaces, "user" first.
    pub namespaces: Vec<String>,
    /// The run's uid (its own for a caller that is not root, `run_as` for root).
    pub uid: u32,
    /// The run's gid.
    pub gid: u32,
    /// The root was replaced by an empty read-only tmpfs.
    pub empty_root: bool,
    /// Landlock: "abi N", "abi N (partial)" or "unsupported".
    pub landlock: String,
    /// Seccomp allowlist on.
    pub seccomp: bool,
    /// no_new_privs set.
    pub no_new_privs: bool,
    /// Capabilities left ("none").
    pub capabilities: String,
    /// The resource limits set (soft limit; the hard limit is the same except RLIMIT_CPU's,
    /// a second later).
    pub rlimits: std::collections::BTreeMap<String, u64>,
    /// "v2" when the run has its own cgroup v2 (memory.max, pids.max, peak memory), otherwise
    /// `"none: <why>"` (memory is then capped by RLIMIT_DATA and the engine, peak memory read
    /// from rusage).
    pub cgroup: String,
    /// The descriptors open when confinement began: stdio, the two pipes to the parent, WASI's
    /// duplicates of stdout and stderr, one per mount (and the stdin file). Nothing inherited
    /// from the caller.
    pub open_fds: Vec<i32>,
}

/// What the child sends the parent when it is done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildReport {
    /// How the run ended.
    pub outcome: ChildOutcome,
    /// Whether the child compiled the module (rather than loading the cached artifact).
    pub compiled: bool,
    /// Stage timings.
    pub stages: Stages,
    /// Bytes the guest wrote to stdout.
    pub stdout_bytes: u64,
    /// Bytes the guest wrote to stderr.
    pub stderr_bytes: u64,
    /// Whether a `memory.grow` within the module's own maximum was refused at the memory
    /// limit: a run that then fails ran out of memory.
    #[serde(default)]
    pub memory_grow_refused: bool,
    /// Wasm instructions the guest executed, when the run counted them (`limits.instructions`):
    /// exact at a normal end, at a trap and at the instruction budget.
    #[serde(default)]
    pub instructions: Option<u64>,
    /// What confinement the child applied, as facts (`None`: none, or it failed); the
    /// parent adds its own (the cgroup's reason, a shared network namespace) and words the
    /// report's [`Confinement`].
    pub confinement: Option<Applied>,
}

/// The confinement a child applied, as facts: what the report's [`Confinement`] is worded
/// from, beside what only the parent knows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The namespaces the child is in, by name ("user", "pid", "mount", "network", "ipc",
    /// "uts", "cgroup").
    pub namespaces: Vec<String>,
    /// The run's uid.
    pub uid: u32,
    /// The run's gid.
    pub gid: u32,
    /// The root was replaced by an empty read-only tmpfs.
    pub empty_root: bool,
    /// Landlock: "abi N", "abi N (partial)" or "unsupported".
    pub landlock: String,
    /// Seccomp allowlist on.
    pub seccomp: bool,
    /// no_new_privs set.
    pub no_new_privs: bool,
    /// Every capability dropped.
    pub capabilities_dropped: bool,
    /// The resource limits set (soft limits).
    pub rlimits: std::collections::BTreeMap<String, u64>,
    /// The child is in a cgroup of its own.
    pub in_cgroup: bool,
    /// The descriptors open when confinement began.
    pub open_fds: Vec<i32>,
}

json_message!(ChildReport, kind::CHILD_REPORT, (1 << 20) - crate::HEADER_LEN as u32);

impl FromConfined for ChildReport {}

/// What a child sends before it runs the first guest instruction (a start function runs at
/// instantiation): written before any guest code, so a guest cannot have shaped it, and what
/// the supervisor reports from when the run is killed before its [`ChildReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildStarted {
    /// Whether the child compiled the module.
    pub compiled: bool,
    /// The stages so far (load, compile, link).
    pub stages: Stages,
    /// What confinement the child applied (`None`: none).
    pub confinement: Option<Applied>,
}

json_message!(ChildStarted, kind::CHILD_STARTED, 64 << 10);

impl FromConfined for ChildStarted {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks;

    fn report(outcome: ChildOutcome) -> ChildReport {
        ChildReport {
            outcome,
            compiled: true,
            stages: Stages { load: 0.25, compile: 1.5, link: 0.0, instantiate: 0.125, execute: 3.0 },
            stdout_bytes: 12,
            stderr_bytes: 0,
            memory_grow_refused: false,
            instructions: Some(1234),
            confinement: None,
        }
    }

    #[test]
    fn child_report() {
        checks::all(report(ChildOutcome::Exited { code: u32::MAX }));
        checks::all(report(ChildOutcome::OutputLimit));
        checks::all(report(ChildOutcome::Raised { signal: 9 }));
        checks::all(report(ChildOutcome::Error { message: "invalid module".into() }));
        let mut full = report(ChildOutcome::Trapped(TrapReport {
            tag: Some("'e'".into()),
            kind: "integer divide by zero".into(),
            function: Some("div (3)".into()),
            offset: Some(0x2a),
        }));
        full.confinement = Some(Applied {
            namespaces: vec!["user".into(), "pid".into()],
            uid: 65534,
            gid: 65534,
            empty_root: true,
            landlock: "abi 6".into(),
            seccomp: true,
            no_new_privs: true,
            capabilities_dropped: true,
            rlimits: [("RLIMIT_CPU".to_string(), 3u64)].into_iter().collect(),
            in_cgroup: false,
            open_fds: vec![0, 1, 2],
        });
        checks::all(full);
    }

    #[test]
    fn child_started() {
        let stages = Stages { load: 0.25, compile: 1.5, link: 0.5, instantiate: 0.0, execute: 0.0 };
        checks::all(ChildStarted { compiled: false, stages: stages.clone(), confinement: None });
        let mut full = report(ChildOutcome::Exited { code: 0 });
        full.confinement = Some(Applied {
            namespaces: vec!["user".into()],
            uid: 1,
            gid: 2,
            empty_root: true,
            landlock: "abi 6".into(),
            seccomp: true,
            no_new_privs: true,
            capabilities_dropped: true,
            rlimits: Default::default(),
            in_cgroup: true,
            open_fds: vec![0, 1, 2, 3],
        });
        checks::all(ChildStarted { compiled: true, stages, confinement: full.confinement });
    }

    #[test]
    fn a_report_is_json_with_fixed_keys() {
        let frame = crate::encode(&report(ChildOutcome::Exited { code: 0 })).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&frame[crate::HEADER_LEN..]).unwrap();
        assert_eq!(json["outcome"]["outcome"], "exited");
    }
}
