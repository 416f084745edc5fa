//! Shared helpers: packages written into temporary directories, and a scripted executor.

#![allow(dead_code)]

use grade::{ExecError, Executor, Role, RunJob, RunOutcome, Stdin};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

static N: AtomicU64 = AtomicU64::new(0);

/// A temporary directory removed on drop.
pub struct Tmp(pub PathBuf);

impl Tmp {
    pub fn new() -> Tmp {
        let p = std::env::temp_dir().join(format!(
            "grade-test-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Tmp(p)
    }

    /// Writes `files` (relative path, content) under the directory.
    pub fn with(self, files: &[(&str, &str)]) -> Tmp {
        for (rel, content) in files {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        self
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The host path of a guest path, through the job's mounts.
pub fn host(job: &RunJob, guest: &str) -> PathBuf {
    for m in job.scratch.iter().chain(job.read_only.iter()) {
        if let Some(rest) = guest.strip_prefix(&m.guest) {
            return m.host.join(rest.trim_start_matches('/'));
        }
    }
    panic!("guest path {guest} is not mounted in {job:?}");
}

pub fn stdin_bytes(job: &RunJob) -> Vec<u8> {
    match &job.stdin {
        Stdin::File(p) => std::fs::read(p).unwrap(),
        Stdin::Bytes(b) => b.clone(),
        Stdin::Empty | Stdin::Peer => Vec::new(),
    }
}

type SubFn = dyn Fn(&str, &[u8]) -> RunOutcome + Sync;
type CheckFn = dyn Fn(&RunJob) -> Result<RunOutcome, ExecError> + Sync;
type InterFn = dyn Fn(&RunJob, &RunJob) -> (RunOutcome, RunOutcome) + Sync;

/// An executor whose submissions, checkers and interactive runs are closures.
pub struct Fake {
    /// (module file name, input bytes) → outcome.
    pub submission: Box<SubFn>,
    pub checker: Box<CheckFn>,
    pub interactive: Box<InterFn>,
    /// Every job run, in the order run.
    pub log: Mutex<Vec<RunJob>>,
}

impl Fake {
    pub fn new(submission: impl Fn(&str, &[u8]) -> RunOutcome + Sync + 'static) -> Fake {
        Fake {
            submission: Box::new(submission),
            checker: Box::new(|_| panic!("no checker expected")),
            interactive: Box::new(|_, _| panic!("no interactive run expected")),
            log: Mutex::new(Vec::new()),
        }
    }

    pub fn checker(mut self, f: impl Fn(&RunJob) -> Result<RunOutcome, ExecError> + Sync + 'static) -> Fake {
        self.checker = Box::new(f);
        self
    }

    pub fn interactive(mut self, f: impl Fn(&RunJob, &RunJob) -> (RunOutcome, RunOutcome) + Sync + 'static) -> Fake {
        self.interactive = Box::new(f);
        self
    }
}

impl Executor for Fake {
    fn run(&self, job: &RunJob) -> Result<RunOutcome, ExecError> {
        self.log.lock().unwrap().push(job.clone());
        match job.role {
            Role::Submission => {
                let name = job.module.file_name().unwrap().to_string_lossy().into_owned();
                let mut o = (self.submission)(&name, &stdin_bytes(job));
                o.module_sha256 = fake_sha(&name);
                Ok(o)
            }
            _ => (self.checker)(job),
        }
    }

    fn run_interactive(&self, s: &RunJob, i: &RunJob, _idle: Duration) -> Result<(RunOutcome, RunOutcome), ExecError> {
        self.log.lock().unwrap().push(s.clone());
        assert_eq!(s.stdin, Stdin::Peer);
        assert_eq!(i.stdin, Stdin::Peer);
        Ok((self.interactive)(s, i))
    }
}

pub fn sub(name: &str) -> grade::Submission {
    grade::Submission { name: name.into(), module: PathBuf::from(format!("/subs/{name}")) }
}

pub fn options(jobs: usize) -> grade::GradeOptions {
    grade::GradeOptions {
        jobs,
        engine_version: "sandboxrun 0.1.0".into(),
        policy_sha256: "p0".into(),
        ..Default::default()
    }
}

pub fn no_progress(_: &grade::Progress<'_>) {}

/// A batch problem whose tests are `(path under data/, input, answer)`.
pub fn package(yaml: &str, tests: &[(&str, &str, &str)], extra: &[(&str, &str)]) -> Tmp {
    let mut files: Vec<(String, String)> = vec![("problem.yaml".into(), yaml.into())];
    for (name, input, answer) in tests {
        files.push((format!("data/{name}.in"), input.to_string()));
        files.push((format!("data/{name}.ans"), answer.to_string()));
    }
    for (p, c) in extra {
        files.push((p.to_string(), c.to_string()));
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Tmp::new().with(&refs)
}

/// A 64-hex-digit stand-in for a module's SHA-256: the name's bytes in hex, padded with zeros.
pub fn fake_sha(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{:0<64}", &hex[..hex.len().min(64)])
}
