//! The parent's side of `sandboxrun app.wasm`: prepare, fork the child that runs the
//! module, supervise it, and turn what happened into a report and an exit status.

use crate::child::{self, RunSpec};
use crate::report::{ChildOutcome, ChildReport, Report, Status};
use crate::supervisor::{self, ExitStatus};
use policy::Policy;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
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

/// Sets the child's CPU-time backstop: SIGXCPU at the limit, SIGKILL a second later.
fn limit_cpu(seconds: u64) {
    let limit = libc::rlimit { rlim_cur: seconds, rlim_max: seconds + 1 };
    // SAFETY: valid rlimit for our own process.
    unsafe { libc::setrlimit(libc::RLIMIT_CPU, &limit) };
}

/// Runs the module in a forked child and reports.
pub fn run(run: Run) -> Report {
    let sha = format!("{:x}", Sha256::digest(&run.module));
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
        stages: Default::default(),
    };
    let (read_end, write_end) = match pipe() {
        Ok(p) => p,
        Err(e) => return base(Status::Error, Some(format!("failed to create a pipe: {e}"))),
    };
    let limits = run.policy.limits;
    let started = Instant::now();
    let child = || {
        limit_cpu(limits.cpu_time.as_secs_f64().ceil() as u64);
        let invoke = run.invoke.clone().map(|name| (name, run.args.clone()));
        let extra_args = if invoke.is_some() { Vec::new() } else { run.args.clone() };
        let report = child::run(RunSpec {
            module: &run.module,
            argv0: run.argv0.clone(),
            extra_args,
            policy: &run.policy,
            invoke,
        });
        let _ = std::io::stdout().flush();
        let mut pipe = std::fs::File::from(write_end);
        let _ = pipe.write_all(&serde_json::to_vec(&report).unwrap_or_default());
        0
    };
    // SAFETY: the CLI is single-threaded here (compilation threads start in the child).
    let pid = match unsafe { supervisor::fork(child) } {
        Ok(pid) => pid,
        Err(e) => return base(Status::Error, Some(format!("failed to fork: {e}"))),
    };
    let exit = match supervisor::wait(pid, started, limits.wall_time) {
        Ok(e) => e,
        Err(e) => return base(Status::Error, Some(format!("failed to wait for the run: {e}"))),
    };
    let mut message = Vec::new();
    let _ = std::fs::File::from(read_end).read_to_end(&mut message);
    let child_report: Option<ChildReport> = serde_json::from_slice(&message).ok();

    let mut report = base(Status::Error, None);
    report.cpu_time_ms = exit.cpu_time.as_millis() as u64;
    report.wall_time_ms = exit.wall_time.as_millis() as u64;
    report.peak_memory_bytes = exit.peak_rss_bytes;
    if let Some(c) = &child_report {
        report.stages = c.stages.clone();
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
