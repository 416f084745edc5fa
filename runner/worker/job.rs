//! What travels on the queue: a [`Job`] (a run or a grading, its inputs referenced by sha256 in
//! the store) and its [`JobResult`] (the run's `--report` JSON or grading's `--format json`,
//! with the job's id and the worker's identity). Both are JSON; every field a submitter
//! controls is checked here before the worker acts on it.

use serde::{Deserialize, Serialize};

/// One job, as enqueued by `sandboxrun submit` (or any client that writes this JSON).
// (No `deny_unknown_fields` here: serde cannot combine it with the flattened `work`; the
// work's own fields are checked.)
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Job {
    /// Unique per job (`[A-Za-z0-9_-]`, at most 64): results carry it, and a job whose result
    /// is already stored is answered from the store instead of being run again.
    pub id: String,
    /// The subject its result is published on (below the stream's `<prefix>.results.`).
    pub reply: String,
    /// What to do.
    #[serde(flatten)]
    pub work: Work,
}

/// A job's work.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Work {
    /// `sandboxrun [-p POLICY] MODULE ARGS... < STDIN`.
    Run(RunWork),
    /// `sandboxrun grade PROBLEM SUBMISSION --format json`.
    Grade(GradeWork),
}

/// A run job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RunWork {
    /// The module's sha256 (lowercase hex) in the store.
    pub module: String,
    /// The module's file name (its `argv[0]`; `.wat` for text): `[A-Za-z0-9._-]`.
    #[serde(default = "default_module_name")]
    pub name: String,
    /// The policy's YAML text; none: the default policy. Mounts, a stdin file and a cache
    /// path are refused (they would name the worker's files).
    #[serde(default)]
    pub policy: Option<String>,
    /// The guest's arguments (after the policy's).
    #[serde(default)]
    pub args: Vec<String>,
    /// The guest's stdin, base64.
    #[serde(default)]
    pub stdin_base64: String,
}

/// A grade job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GradeWork {
    /// The problem package's sha256: a tar of its folder.
    pub problem: String,
    /// The submission's sha256 (a `.wasm`).
    pub submission: String,
    /// The submission's name in the result.
    #[serde(default = "default_module_name")]
    pub name: String,
    /// The instruction budget of each submission run (`None`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<u64>,
}

fn default_module_name() -> String {
    "module.wasm".into()
}

/// Which kind of job a result answers.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A run job.
    Run,
    /// A grade job.
    Grade,
}

/// How a job ended.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It ran: the report (or grading) says how the guest did.
    Done,
    /// It was not run: a reference that is missing or whose bytes have another hash, a bad
    /// policy, a bad name. The submitter's to fix.
    Refused,
    /// The judge failed it each time it was tried (or its workers died): never the
    /// submission's fault.
    JudgeError,
}

/// A job's result, published on the job's `reply` subject (and stored under its id).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct JobResult {
    /// The job's id.
    pub job_id: String,
    /// The worker that answered (`--name`, default `host:pid`).
    pub worker: String,
    /// The job's kind.
    pub kind: JobKind,
    /// How it ended.
    pub outcome: Outcome,
    /// The exit status `sandboxrun` (run) or `sandboxrun grade` would have had; 125 for a
    /// refused job or a judge error.
    pub exit_status: i32,
    /// Which delivery of the job this was (1 the first time).
    pub attempt: u64,
    /// A run's report: the `--report` JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    /// A grading's result: `grade --format json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grade: Option<serde_json::Value>,
    /// A run's stdout, base64 (at most [`STREAM_CAPTURE`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    /// A run's stderr, base64 (at most [`STREAM_CAPTURE`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
    /// Why a job was refused or failed judge-side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How much of a run's stdout and stderr a result carries (a NATS message holds 1 MiB).
pub const STREAM_CAPTURE: u64 = 256 * 1024;

/// The exit status of a refused job or a judge error (`sandboxrun` could not run it).
pub const EXIT_NOT_RUN: i32 = 125;

/// A job that cannot be acted on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    /// Not a job's JSON.
    #[error("not a job: {0}")]
    Malformed(String),
    /// A field out of its alphabet.
    #[error("invalid {field} {value:?}: {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value (escaped when printed).
        value: String,
        /// What it must be.
        expected: &'static str,
    },
}

impl Job {
    /// Parses a job's JSON and checks its fields; `results_prefix` is what `reply` must start
    /// with (`<prefix>.results.`).
    ///
    /// # Errors
    /// Not a job, or a field out of its alphabet ([`JobError`]).
    pub fn parse(bytes: &[u8], results_prefix: &str) -> Result<Job, JobError> {
        let job: Job = serde_json::from_slice(bytes).map_err(|e| JobError::Malformed(e.to_string()))?;
        job.check(results_prefix)?;
        Ok(job)
    }

    /// Checks the fields a submitter controls.
    ///
    /// # Errors
    /// The first field out of its alphabet.
    pub fn check(&self, results_prefix: &str) -> Result<(), JobError> {
        let invalid = |field, value: &str, expected| Err(JobError::Invalid { field, value: value.into(), expected });
        let token = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token(&self.id) {
            return invalid("id", &self.id, "1 to 64 of [A-Za-z0-9_-]");
        }
        let rest = self.reply.strip_prefix(results_prefix).unwrap_or("");
        if rest.is_empty() || !rest.split('.').all(token) {
            return invalid("reply", &self.reply, "a subject below the stream's results prefix, without wildcards");
        }
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 100
                && !s.starts_with('.')
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        let (refs, name): (Vec<&str>, &str) = match &self.work {
            Work::Run(r) => (vec![&r.module], &r.name),
            Work::Grade(g) => (vec![&g.problem, &g.submission], &g.name),
        };
        for r in refs {
            if !is_sha256(r) {
                return invalid("reference", r, "a sha256 in lowercase hex");
            }
        }
        if !name_ok(name) {
            return invalid("name", name, "a file name of [A-Za-z0-9._-] not starting with '.'");
        }
        Ok(())
    }

    /// Its kind.
    pub fn kind(&self) -> JobKind {
        match self.work {
            Work::Run(_) => JobKind::Run,
            Work::Grade(_) => JobKind::Grade,
        }
    }
}

/// Whether `text` is a sha256 in lowercase hex.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_job(id: &str, reply: &str) -> Job {
        Job {
            id: id.into(),
            reply: reply.into(),
            work: Work::Run(RunWork {
                module: sha256_hex(b"x"),
                name: "hello.wat".into(),
                policy: None,
                args: vec![],
                stdin_base64: String::new(),
            }),
        }
    }

    #[test]
    fn a_job_round_trips_and_its_fields_are_checked() {
        let job = run_job("abc", "s.results.abc");
        let json = serde_json::to_vec(&job).unwrap();
        assert!(String::from_utf8_lossy(&json).contains("\"kind\":\"run\""));
        assert_eq!(Job::parse(&json, "s.results.").unwrap(), job);
        let bad = serde_json::to_vec(&run_job("a.b", "s.results.x")).unwrap();
        assert!(matches!(Job::parse(&bad, "s.results."), Err(JobError::Invalid { field: "id", .. })));
        for reply in ["$JS.API.STREAM.DELETE.X", "s.results.>", "s.results.", "s.results.a..b"] {
            let bad = serde_json::to_vec(&run_job("a", reply)).unwrap();
            assert!(matches!(Job::parse(&bad, "s.results."), Err(JobError::Invalid { field: "reply", .. })), "{reply}");
        }
        assert!(matches!(Job::parse(b"{}", "s.results."), Err(JobError::Malformed(_))));
    }
}
