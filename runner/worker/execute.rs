//! A job's work, through the same machinery as the command line: each run is sent to this
//! worker's own `sandboxrun serve` ([`LocalServer`]) with `crate::server::client::send`, like
//! `sandboxrun --server`; a grade job is `sandboxrun grade`'s judging (the `grade` crate with
//! a [`ServerExecutor`] on the same server). Blocking: the worker calls it off its runtime.
//!
//! What can go wrong is sorted in two: the job's fault (refused: a policy that names host
//! files, a package that is no package) is an answer; the judge's (the server failed, a
//! grading with a judge error on a test) is [`Attempt::JudgeSide`], retried later and never
//! reported as the submission's verdict until the delivery bound says stop.

use super::blobs::public_dir;
use super::job::{GradeWork, JobKind, JobResult, Outcome, RunWork, EXIT_NOT_RUN, STREAM_CAPTURE};
use crate::grading::executor::{ServerExecutor, Servers};
use crate::grading::local_server::LocalServer;
use base64::Engine as _;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What trying a job gave.
#[derive(Debug)]
pub enum Attempt {
    /// An answer to publish (done or refused).
    Answer(Answer),
    /// The judge failed: retry later (why).
    JudgeSide(String),
}

/// A job's answer, before the worker adds the job's id, its identity and the attempt.
#[derive(Debug, Default)]
pub struct Answer {
    /// Done or refused.
    pub refused: Option<String>,
    /// The exit status the command line would have had.
    pub exit_status: i32,
    /// A run's report.
    pub report: Option<serde_json::Value>,
    /// A grading's JSON.
    pub grade: Option<serde_json::Value>,
    /// A run's stdout.
    pub stdout: Option<Vec<u8>>,
    /// A run's stderr.
    pub stderr: Option<Vec<u8>>,
}

impl Answer {
    /// A refusal: the job is not run.
    pub fn refused(why: impl std::fmt::Display) -> Answer {
        Answer { refused: Some(why.to_string()), exit_status: EXIT_NOT_RUN, ..Answer::default() }
    }

    /// The result to publish.
    pub fn into_result(self, job_id: &str, worker: &str, kind: JobKind, attempt: u64) -> JobResult {
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
        JobResult {
            job_id: job_id.into(),
            worker: worker.into(),
            kind,
            outcome: if self.refused.is_some() { Outcome::Refused } else { Outcome::Done },
            exit_status: self.exit_status,
            attempt,
            report: self.report,
            grade: self.grade,
            stdout_base64: self.stdout.map(b64),
            stderr_base64: self.stderr.map(b64),
            error: self.refused,
        }
    }
}

/// A test seam, `SANDBOXRUN_WORKER_FAULT=SHA256[:abort]`: a job whose module or submission
/// has this hash fails judge-side (or, with `:abort`, kills the worker) each time it is tried.
/// Read once at start; unset in production.
#[derive(Clone, Debug)]
pub struct Fault {
    /// The hash that triggers it.
    pub sha256: String,
    /// Abort the worker instead of failing the attempt.
    pub abort: bool,
}

impl Fault {
    /// The seam from the environment, if set.
    pub fn from_env() -> Option<Fault> {
        let spec = std::env::var("SANDBOXRUN_WORKER_FAULT").ok().filter(|s| !s.is_empty())?;
        let (sha256, abort) = match spec.strip_suffix(":abort") {
            Some(sha) => (sha.to_string(), true),
            None => (spec, false),
        };
        Some(Fault { sha256, abort })
    }
}

/// Runs jobs through one local server.
pub struct JobRunner {
    server: Arc<LocalServer>,
    work: PathBuf,
    jobs: usize,
    cache: Option<(PathBuf, u64)>,
    next: AtomicU64,
    fault: Option<Fault>,
}

impl JobRunner {
    /// A runner whose runs go through `server`, their files under `work`; grade jobs run
    /// `jobs` tests at once and precompile into `cache`.
    pub fn new(
        server: LocalServer,
        work: PathBuf,
        jobs: usize,
        cache: Option<(PathBuf, u64)>,
        fault: Option<Fault>,
    ) -> JobRunner {
        JobRunner { server: Arc::new(server), work, jobs, cache, next: AtomicU64::new(0), fault }
    }

    /// A fresh folder for one job, searchable by the runs' identity; removed when dropped.
    fn job_dir(&self) -> Result<JobDir, String> {
        let dir = self.work.join(format!("job-{}", self.next.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        public_dir(&dir).map_err(|e| format!("the job's folder {}: {e}", dir.display()))?;
        Ok(JobDir(dir))
    }

    fn injected(&self, sha256: &str) -> Option<Attempt> {
        let fault = self.fault.as_ref().filter(|f| f.sha256 == sha256)?;
        if fault.abort {
            crate::errln!("sandboxrun: worker: SANDBOXRUN_WORKER_FAULT: aborting on {sha256}");
            std::process::abort();
        }
        Some(Attempt::JudgeSide(format!("injected judge-side fault on {sha256} (SANDBOXRUN_WORKER_FAULT)")))
    }

    /// Runs a run job whose module is the file `module`.
    pub fn run(&self, work: &RunWork, module: &Path) -> Attempt {
        if let Some(a) = self.injected(&work.module) {
            return a;
        }
        let dir = match self.job_dir() {
            Ok(d) => d,
            Err(e) => return Attempt::JudgeSide(e),
        };
        let policy = match job_policy(work.policy.as_deref(), &dir.0) {
            Ok(p) => p,
            Err(why) => return Attempt::Answer(Answer::refused(why)),
        };
        let stdin = match base64::engine::general_purpose::STANDARD.decode(&work.stdin_base64) {
            Ok(s) => s,
            Err(e) => return Attempt::Answer(Answer::refused(format!("stdin_base64: {e}"))),
        };
        match self.run_in(&dir.0, work, module, &policy, &stdin) {
            Ok(answer) => Attempt::Answer(answer),
            Err(e) => Attempt::JudgeSide(e),
        }
    }

    fn run_in(
        &self,
        dir: &Path,
        work: &RunWork,
        module: &Path,
        policy: &policy::Policy,
        stdin: &[u8],
    ) -> Result<Answer, String> {
        let file = |name: &str| dir.join(name);
        // In a folder of its own: its name is the job's, and must not meet the job's files.
        let named = place(module, &dir.join("module"), &work.name)?;
        write_public(&file("policy.yaml"), policy.to_yaml().as_bytes())?;
        write_public(&file("stdin"), stdin)?;
        let mut argv: Vec<OsString> = vec!["sandboxrun".into(), "-p".into(), file("policy.yaml").into()];
        argv.extend(["--report".into(), file("report.json").into(), "--stdin".into(), file("stdin").into()]);
        argv.push(named.into());
        argv.extend(work.args.iter().map(OsString::from));
        let cwd = File::open(dir).map_err(|e| format!("the job's folder: {e}"))?;
        let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
        let stdout = File::create(file("stdout")).map_err(|e| format!("the job's stdout: {e}"))?;
        let stderr = File::create(file("stderr")).map_err(|e| format!("the job's stderr: {e}"))?;
        let status = crate::server::client::send(
            self.server.socket(),
            argv,
            cwd.as_fd(),
            [null.as_fd(), stdout.as_fd(), stderr.as_fd()],
        )
        .and_then(|pending| pending.wait())
        .map_err(|e| format!("the worker's server: {e}"))?;
        // No report: sandboxrun refused the run before it started (its stderr says why).
        let report = std::fs::read(file("report.json")).ok().and_then(|r| serde_json::from_slice(&r).ok());
        Ok(Answer {
            refused: None,
            exit_status: status,
            report,
            grade: None,
            stdout: Some(head(&file("stdout"), STREAM_CAPTURE)),
            stderr: Some(head(&file("stderr"), STREAM_CAPTURE)),
        })
    }

    /// Grades the submission at `submission` against the package unpacked at `problem`.
    pub fn grade(&self, work: &GradeWork, problem: &Path, submission: &Path) -> Attempt {
        if let Some(a) = self.injected(&work.submission) {
            return a;
        }
        let dir = match self.job_dir() {
            Ok(d) => d,
            Err(e) => return Attempt::JudgeSide(e),
        };
        let package = match crate::grading::load(problem) {
            Ok(p) => p,
            Err(e) => return Attempt::Answer(Answer::refused(format!("problem package {}: {e}", work.problem))),
        };
        let module = match place(submission, &dir.0.join("submission"), &work.name) {
            Ok(m) => m,
            Err(e) => return Attempt::JudgeSide(e),
        };
        if let Err(e) = public_dir(&dir.0.join("runs")).and_then(|()| public_dir(&dir.0.join("scratch"))) {
            return Attempt::JudgeSide(format!("the job's folder: {e}"));
        }
        // The job is untrusted: a budget out of range is refused, not clamped.
        let budget = match work.instructions {
            Some(n) if !(1..=policy::MAX_INSTRUCTIONS).contains(&n) => {
                let why = format!("instructions {n}: must be between 1 and {}", policy::MAX_INSTRUCTIONS);
                return Attempt::Answer(Answer::refused(why));
            }
            n => n,
        };
        let defaults = policy::Policy::default_policy();
        // Submissions compiled as their runs use them (counting when there is a budget).
        let mut counting = defaults.clone();
        counting.limits.instructions = budget;
        crate::grading::precompile_all(std::slice::from_ref(&module), &counting, self.cache.as_ref());
        crate::grading::precompile_all(&crate::grading::problem_modules(&package), &defaults, self.cache.as_ref());
        let executor = ServerExecutor::new(
            Servers::Shared(self.server.clone()),
            dir.0.join("runs"),
            policy::Policy::default_policy(),
        );
        let submissions = [grade::Submission { name: work.name.clone(), module }];
        let mut options = crate::grading::options(self.jobs, String::new(), dir.0.join("scratch"));
        options.instruction_budget = budget;
        let result = match grade::grade(&package, &submissions, &executor, &options, &|_| {}) {
            Ok(r) => r,
            Err(e) => return Attempt::JudgeSide(e.to_string()),
        };
        let exit_status = crate::grading::exit_status(&result);
        if exit_status == EXIT_NOT_RUN {
            // A judge error on a test: the judge's, not the submission's.
            return Attempt::JudgeSide("a judge error (IE) on a test".into());
        }
        let json = grade::render(&result, grade::Format::Json);
        match serde_json::from_str(&json) {
            Ok(grade) => Attempt::Answer(Answer { exit_status, grade: Some(grade), ..Answer::default() }),
            Err(e) => Attempt::JudgeSide(format!("the grading's JSON: {e}")),
        }
    }
}

/// A job's folder, removed when the job is done.
struct JobDir(PathBuf);

impl Drop for JobDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The policy a job asked for, checked: nothing in it may name the worker's files (mounts, a
/// stdin file, a cache file) or choose the runs' identity.
///
/// # Errors
/// Why the job is refused.
pub fn job_policy(text: Option<&str>, dir: &Path) -> Result<policy::Policy, String> {
    let Some(text) = text else { return Ok(policy::Policy::default_policy()) };
    let mut policy = policy::Policy::parse(text, dir, "policy.yaml").map_err(|e| format!("the job's policy: {e}"))?;
    if !policy.mounts.is_empty() {
        return Err("the job's policy has mounts: a worker's files are not the job's to name".into());
    }
    if matches!(policy.stdin, policy::Stdin::File(_)) {
        return Err("the job's policy reads stdin from a file: send the bytes with the job instead".into());
    }
    if policy.cache.path.is_some() {
        return Err("the job's policy names a cache file: the worker keeps its own".into());
    }
    let defaults = policy::Policy::default_policy();
    if (policy.run_as.uid, policy.run_as.gid) != (defaults.run_as.uid, defaults.run_as.gid) {
        return Err("the job's policy sets run_as: the worker chooses the runs' identity".into());
    }
    policy.stdin = policy::Stdin::Null;
    Ok(policy)
}

/// `blob` as `folder/name` (a new folder): a hard link, or a copy across filesystems.
fn place(blob: &Path, folder: &Path, name: &str) -> Result<PathBuf, String> {
    let path = folder.join(name);
    public_dir(folder)
        .and_then(|()| std::fs::hard_link(blob, &path).or_else(|_| std::fs::copy(blob, &path).map(drop)))
        .map_err(|e| format!("the module's copy {}: {e}", path.display()))?;
    Ok(path)
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The first `max` bytes of a file.
fn head(path: &Path, max: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(max).read_to_end(&mut bytes);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jobs_policy_may_not_name_the_workers_files_or_identity() {
        let dir = Path::new("/tmp");
        assert!(job_policy(None, dir).is_ok());
        let limits = job_policy(Some("version: 1\nlimits: {cpu_time: 2s}\n"), dir).unwrap();
        assert_eq!(limits.limits.cpu_time, std::time::Duration::from_secs(2));
        for (text, says) in [
            ("version: 1\nmounts: [{host: /etc, guest: /etc}]\n", "has mounts"),
            ("version: 1\nstdin: /dev/null\n", "reads stdin from a file"),
            ("version: 1\nrun_as: {uid: 1000, gid: 1000}\n", "sets run_as"),
            ("limits: {}\n", "the job's policy: "),
        ] {
            let e = job_policy(Some(text), dir).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
