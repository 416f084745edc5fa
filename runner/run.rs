//! The parent's side of `sandboxrun app.wasm`: prepare, fork the child that runs the
//! module, supervise it, and turn what happened into a report and an exit status.

use crate::child::{self, RunSpec};
use crate::report::{ChildOutcome, ChildReport, Report, Status};
use crate::supervisor::{self, ExitStatus};
use engine::cache::{CacheKey, CodeCache};
use engine::{Config, Engine};
use policy::Policy;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Instant;

/// Everything the parent needs to run a module.
pub struct Run {
    /// The policy, overrides applied.
    pub policy: Policy,
    /// The module file's bytes.
    pub module: Vec<u8>,
    /// argv[0].
    pub argv0: String,
    /// Guest arguments from the command line.
    pub args: Vec<String>,
    /// `--invoke`.
    pub invoke: Option<String>,
    /// The code cache file and its size bound; `None`: disabled.
    pub cache: Option<(PathBuf, u64)>,
    /// Only compile (and cache), do not run.
    pub compile_only: bool,
}

/// The cache as this run uses it. The database is closed while the child runs, so the
/// child never holds a descriptor that could write to it.
struct Cache {
    path: PathBuf,
    max: u64,
    key: CacheKey,
}

/// Opens the cache and looks the module up. Any cache failure is one warning line and the
/// run continues without the cache.
fn lookup(run: &Run, sha: &[u8; 32]) -> (Option<Cache>, Option<Vec<u8>>) {
    let Some((path, max)) = &run.cache else { return (None, None) };
    let opened = Engine::new(Config::default())
        .map_err(|e| e.to_string())
        .and_then(|engine| Ok((CodeCache::open(path, *max).map_err(|e| e.to_string())?, engine)));
    let (cache, engine) = match opened {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sandboxrun: warning: {e}; running without the code cache");
            return (None, None);
        }
    };
    let key = CacheKey::new(sha, &engine.compiler().fingerprint());
    match cache.get(&key) {
        Ok(artifact) => (Some(Cache { path: path.clone(), max: *max, key }), artifact),
        Err(e) => {
            eprintln!("sandboxrun: warning: {e}; running without the code cache");
            (None, None)
        }
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array of two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel returned two new descriptors, now owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Runs the module in a forked child and reports.
pub fn run(run: Run) -> Report {
    let digest: [u8; 32] = Sha256::digest(&run.module).into();
    let sha = digest.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let (cache, cached) = lookup(&run, &digest);
    let cache_status = match (&cache, &cached) {
        (None, _) => "disabled",
        (Some(_), Some(_)) => "hit",
        (Some(_), None) => "miss",
    };
    let base = |status, error: Option<String>| Report {
        status,
        exit_code: None,
        details: None,
        trap: None,
        error,
        cpu_time_ms: 0,
        wall_time_ms: 0,
        peak_memory_bytes: 0,
        stdout_bytes: 0,
        stderr_bytes: 0,
        module_sha256: sha.clone(),
        cache: cache_status.to_string(),
        compile_ms: 0.0,
        load_ms: 0.0,
        stages: Default::default(),
        confinement: None,
    };
    let (pipes, artifact_pipes) = match (pipe(), pipe()) {
        (Ok(p), Ok(a)) => (p, a),
        (Err(e), _) | (_, Err(e)) => return base(Status::Error, Some(format!("failed to create a pipe: {e}"))),
    };
    let (read_end, write_end) = pipes;
    let (artifact_read, artifact_write) = artifact_pipes;
    let wants_artifact = cache.is_some();
    let limits = run.policy.limits;
    // Built once, before forking; applied by the child as its last confinement step.
    let filters = match sandbox::compile_filters() {
        Ok(f) => f,
        Err(e) => return base(Status::Error, Some(e.to_string())),
    };
    let started = Instant::now();
    let child = || {
        let invoke = run.invoke.clone().map(|name| (name, run.args.clone()));
        let extra_args = if invoke.is_some() { Vec::new() } else { run.args.clone() };
        let report = child::run(RunSpec {
            module: &run.module,
            argv0: run.argv0.clone(),
            extra_args,
            policy: &run.policy,
            invoke,
            artifact: cached.as_deref(),
            artifact_out: wants_artifact.then(|| std::fs::File::from(artifact_write)),
            compile_only: run.compile_only,
            filters: Some(&filters),
        });
        let _ = std::io::stdout().flush();
        let mut pipe = std::fs::File::from(write_end);
        let _ = pipe.write_all(&serde_json::to_vec(&report).unwrap_or_default());
        0
    };
    // SAFETY: the CLI is single-threaded here (compilation threads start in the child).
    let pid = match unsafe { sandbox::spawn::spawn(true, child) } {
        Ok(pid) => pid,
        Err(e) => return base(Status::Error, Some(format!("failed to fork: {e}"))),
    };
    let mut pipes = [(read_end, Vec::new()), (artifact_read, Vec::new())];
    let exit = match supervisor::wait(pid, started, limits.wall_time, &mut pipes) {
        Ok(e) => e,
        Err(e) => return base(Status::Error, Some(format!("failed to wait for the run: {e}"))),
    };
    let [(_, message), (_, artifact)] = pipes;
    let child_report: Option<ChildReport> = serde_json::from_slice(&message).ok();
    let compiled = child_report.as_ref().is_some_and(|c| c.compiled);
    if let (Some(c), true) = (&cache, compiled && !artifact.is_empty()) {
        // Only well-formed artifacts are stored; the child cannot write the cache itself.
        if engine::artifact::Artifact::from_bytes(&artifact).is_ok() {
            if let Err(e) = CodeCache::open(&c.path, c.max).and_then(|cache| cache.put(&c.key, &artifact)) {
                eprintln!("sandboxrun: warning: {e}; the compiled code was not cached");
            }
        }
    }

    let mut report = base(Status::Error, None);
    report.cpu_time_ms = exit.cpu_time.as_millis() as u64;
    report.wall_time_ms = exit.wall_time.as_millis() as u64;
    report.peak_memory_bytes = exit.peak_rss_bytes;
    if let Some(c) = &child_report {
        report.stages = c.stages.clone();
        report.confinement = c.confinement.clone();
        if c.compiled {
            report.compile_ms = c.stages.compile;
            if report.cache == "hit" {
                report.cache = "miss".into(); // the cached artifact was damaged
            }
        } else {
            report.load_ms = c.stages.compile;
        }
        report.stdout_bytes = c.stdout_bytes;
        report.stderr_bytes = c.stderr_bytes;
    }
    let cpu_exceeded = exit.cpu_time >= limits.cpu_time || exit.status == ExitStatus::Signaled(libc::SIGXCPU);
    match (exit.status, child_report.map(|c| c.outcome)) {
        _ if exit.wall_timeout => {
            report.status = Status::TimeLimit;
            report.details = Some(format!("wall time limit of {}", policy::format_duration(limits.wall_time)));
        }
        // SIGXCPU comes only from the CPU rlimit; SIGKILL from its hard limit a second later.
        (ExitStatus::Signaled(libc::SIGXCPU), None) | (ExitStatus::Signaled(libc::SIGKILL), None) if cpu_exceeded => {
            report.status = Status::TimeLimit;
            report.details = Some(format!("cpu time limit of {}", policy::format_duration(limits.cpu_time)));
        }
        (_, Some(ChildOutcome::Exited { code })) => {
            report.status = Status::Exited;
            report.exit_code = Some(code);
        }
        (_, Some(ChildOutcome::Trapped(t))) => {
            report.status = Status::Trapped;
            report.trap = Some(t);
        }
        (_, Some(ChildOutcome::OutputLimit)) => {
            report.status = Status::OutputLimit;
            report.details = Some(format!("output limit of {}", policy::format_size(limits.output)));
        }
        (_, Some(ChildOutcome::Raised { signal })) => {
            report.status = Status::Killed;
            report.exit_code = Some(128 + i32::from(signal));
            report.details = Some(format!("guest raised signal {signal}"));
        }
        (_, Some(ChildOutcome::Error { message })) => report.error = Some(message),
        (ExitStatus::Signaled(libc::SIGSYS), None) => {
            report.status = Status::Killed;
            report.exit_code = Some(128 + libc::SIGSYS);
            report.details = Some("reason: seccomp (a forbidden system call)".into());
        }
        (ExitStatus::Signaled(sig), None) => {
            report.status = Status::Killed;
            report.exit_code = Some(128 + sig);
            report.details = Some(format!("signal {sig}"));
        }
        (ExitStatus::Exited(code), None) => {
            report.error = Some(format!("the run ended without a report (exit status {code})"));
        }
    }
    report
}
