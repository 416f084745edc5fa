//! The grading core's [`grade::Executor`], on sandboxrun's own machinery: each job is a run
//! through a server this process started (`sandboxrun serve`: its children prepared ahead,
//! each run confined as any other), asked from a worker thread with the job's own files as
//! its standard streams — no process is forked or executed per job here.
//!
//! A job's files live in a directory of its own: its policy (the job's limits, and for
//! submissions the `--policy` the grader gave), its stdin (bytes written to a file), its
//! stdout and stderr (read back up to what the job captures), its report. As root, the run's
//! identity (`run_as`) opens the stdin file and the read-only mounts: they must be readable
//! by it (65534 by default); scratch directories of another owner are idmapped to it.

use super::local_server::LocalServer;
use crate::plan::host_files;
use grade::{ExecError, Reason, Role, RunJob, RunLimits, RunOutcome, RunStatus, Stdin, Trap};
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where the jobs' runs go.
pub enum Servers {
    /// One server (this executor's, or shared with others): every run takes its identity.
    Shared(Arc<LocalServer>),
    /// As root: boxes, each an identity of its own with a server whose children take it; a
    /// job leases one for its run, so concurrent runs never share a uid (isolate's box ids).
    Boxes(Boxes),
}

impl Servers {
    /// The server a run goes to: the shared one, or a free box (waiting for one).
    fn lease(&self) -> Lease<'_> {
        match self {
            Servers::Shared(server) => Lease::Shared(server),
            Servers::Boxes(boxes) => boxes.lease(),
        }
    }
}

/// Runs jobs through local servers.
pub struct ServerExecutor {
    servers: Servers,
    /// Where the jobs' directories go.
    work: PathBuf,
    /// The policy submissions run under (`--policy`): its mounts, environment and arguments;
    /// its limits are the problem's.
    submission_policy: policy::Policy,
    next: AtomicU64,
}

impl ServerExecutor {
    /// An executor whose jobs run through `servers`, their files under `work`.
    pub fn new(servers: Servers, work: PathBuf, submission_policy: policy::Policy) -> ServerExecutor {
        ServerExecutor { servers, work, submission_policy, next: AtomicU64::new(0) }
    }

    /// A fresh directory for one job, searchable by the run's identity.
    fn job_dir(&self) -> Result<PathBuf, ExecError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.work.join(format!("job-{n}"));
        std::fs::create_dir_all(&dir).map_err(|e| exec_error("the job's directory", &e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| exec_error("the job's directory", &e))?;
        Ok(dir)
    }

    /// The command line of `job`, its files in `dir`.
    fn argv(
        &self,
        job: &RunJob,
        dir: &Path,
        stdin: &str,
        run_as: Option<policy::RunAs>,
    ) -> Result<Vec<OsString>, ExecError> {
        let mut policy = if job.role == Role::Submission {
            self.submission_policy.clone()
        } else {
            policy::Policy::default_policy()
        };
        policy.limits = limits(&job.limits, &policy.limits);
        if let Some(run_as) = run_as {
            policy.run_as = run_as;
        }
        let policy_file = dir.join("policy.yaml");
        write_file(&policy_file, policy.to_yaml().as_bytes())?;
        let mut argv: Vec<OsString> = vec!["sandboxrun".into(), "-p".into(), policy_file.into()];
        argv.extend(["--report".into(), dir.join("report.json").into_os_string()]);
        for m in &job.read_only {
            argv.extend(["--dir".into(), format!("{}::{}:ro", m.host.display(), m.guest).into()]);
        }
        if let Some(m) = &job.scratch {
            argv.extend(["--dir".into(), format!("{}::{}:rw", m.host.display(), m.guest).into()]);
        }
        argv.extend(["--stdin".into(), stdin.into()]);
        argv.push(job.module.clone().into_os_string());
        argv.extend(job.args.iter().map(OsString::from));
        Ok(argv)
    }

    /// Sends `job` with `stdin` as its stdin (`"null"`, `"inherit"` or a file) and its
    /// streams in `dir`; returns the run to wait for.
    fn send(
        &self,
        job: &RunJob,
        dir: &Path,
        stdin: &str,
        stdin_fd: std::os::fd::BorrowedFd,
        stdout_fd: Option<std::os::fd::BorrowedFd>,
        lease: &Lease<'_>,
    ) -> Result<crate::server::client::Pending, ExecError> {
        let argv = self.argv(job, dir, stdin, lease.run_as())?;
        let server = lease.socket();
        let cwd = File::open(dir).map_err(|e| exec_error("the job's directory", &e))?;
        let stdout = create(&dir.join("stdout"))?;
        let stderr = create(&dir.join("stderr"))?;
        let stdio = [stdin_fd, stdout_fd.unwrap_or(stdout.as_fd()), stderr.as_fd()];
        crate::server::client::send(server, argv, cwd.as_fd(), stdio).map_err(|e| exec_error("the server", &e))
    }
}

fn exec_error(what: &str, e: &dyn std::fmt::Display) -> ExecError {
    ExecError { module: PathBuf::new(), message: format!("{what}: {e}") }
}

fn create(path: &Path) -> Result<File, ExecError> {
    File::create(path).map_err(|e| exec_error("a job's file", &e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExecError> {
    std::fs::write(path, bytes)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)))
        .map_err(|e| exec_error("a job's file", &e))
}

/// A job's limits as a policy's, the rest from `base`.
fn limits(job: &RunLimits, base: &policy::Limits) -> policy::Limits {
    policy::Limits {
        cpu_time: Duration::from_millis(job.cpu_ms.max(1)),
        wall_time: Duration::from_millis(job.wall_ms.max(1)),
        memory: job.memory_bytes.max(1 << 16),
        output: job.output_bytes.max(1),
        instructions: job.instructions.map(|n| n.clamp(1, policy::MAX_INSTRUCTIONS)).or(base.instructions),
        ..*base
    }
}

/// The first `max` bytes of a file.
fn head(path: &Path, max: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(max).read_to_end(&mut bytes);
    }
    bytes
}

/// The job's outcome, from its report (and its exit status when the report is missing) and
/// its streams.
fn outcome(job: &RunJob, dir: &Path, status: i32) -> Result<RunOutcome, ExecError> {
    let report = std::fs::read(dir.join("report.json")).map_err(|_| {
        let said = String::from_utf8_lossy(&head(&dir.join("stderr"), 512)).trim().to_string();
        ExecError { module: job.module.clone(), message: format!("no report (exit status {status}): {said}") }
    })?;
    let r: serde_json::Value = serde_json::from_slice(&report)
        .map_err(|e| ExecError { module: job.module.clone(), message: format!("an unreadable report: {e}") })?;
    let text = |k: &str| r[k].as_str().map(str::to_string);
    let number = |k: &str| r[k].as_u64().unwrap_or(0);
    let status: RunStatus = serde_json::from_value(r["status"].clone()).unwrap_or(RunStatus::Error);
    let reason: Option<Reason> = serde_json::from_value(r["reason"].clone()).ok();
    let trap = r["trap"].as_object().map(|t| Trap {
        kind: t.get("kind").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
        function: t.get("function").and_then(|v| v.as_str()).map(str::to_string),
        offset: t.get("offset").and_then(|v| v.as_u64()).map(|o| o as u32),
    });
    Ok(RunOutcome {
        status,
        reason,
        exit_code: r["exit_code"].as_u64().map(|c| c as u32),
        signal: r["signal"].as_i64().map(|s| s as i32),
        syscall: text("syscall"),
        trap,
        error: text("error"),
        cpu_time_ms: number("cpu_time_ms"),
        wall_time_ms: number("wall_time_ms"),
        peak_memory_bytes: number("peak_memory_bytes"),
        stdout_bytes: number("stdout_bytes"),
        stderr_bytes: number("stderr_bytes"),
        instructions: r["instructions"].as_u64(),
        memory_grow_refused: r["memory_grow_refused"].as_bool().unwrap_or(false),
        module_sha256: text("module_sha256").unwrap_or_default(),
        stdout: head(&dir.join("stdout"), job.capture_stdout),
        stderr_head: head(&dir.join("stderr"), job.capture_stderr),
    })
}

/// The stdin of a job: its spec on the command line, and the descriptor passed as stdin.
fn stdin_of(job: &RunJob, dir: &Path) -> Result<(String, OwnedFd), ExecError> {
    let null = || File::open("/dev/null").map(OwnedFd::from).map_err(|e| exec_error("/dev/null", &e));
    Ok(match &job.stdin {
        Stdin::Empty => ("null".into(), null()?),
        Stdin::File(path) => (path.display().to_string(), null()?),
        Stdin::Bytes(bytes) => {
            let path = dir.join("stdin");
            write_file(&path, bytes)?;
            (path.display().to_string(), null()?)
        }
        Stdin::Peer => return Err(exec_error("a job", &"a peer stdin outside an interactive run")),
    })
}

/// A pipe whose buffer holds 1 MiB, so that a talkative side cannot fill it while its peer is
/// busy writing too.
fn big_pipe() -> Result<(OwnedFd, OwnedFd), ExecError> {
    let (r, w) = std::io::pipe().map_err(|e| exec_error("a pipe", &e))?;
    let (r, w) = (OwnedFd::from(r), OwnedFd::from(w));
    let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    Ok((r, w))
}

impl grade::Executor for ServerExecutor {
    fn run(&self, job: &RunJob) -> Result<RunOutcome, ExecError> {
        let dir = self.job_dir()?;
        let (stdin, stdin_fd) = stdin_of(job, &dir)?;
        let lease = self.servers.lease();
        let status = self
            .send(job, &dir, &stdin, stdin_fd.as_fd(), None, &lease)?
            .wait()
            .map_err(|e| ExecError { module: job.module.clone(), message: e.to_string() })?;
        outcome(job, &dir, status)
    }

    fn run_interactive(
        &self,
        submission: &RunJob,
        interactor: &RunJob,
        _idle_limit: Duration,
    ) -> Result<(RunOutcome, RunOutcome), ExecError> {
        // Each side's stdout is the other's stdin. A side that waits forever is ended at its
        // wall-clock limit (the idle limit is not watched apart).
        let (to_interactor_read, to_interactor_write) = big_pipe()?;
        let (to_submission_read, to_submission_write) = big_pipe()?;
        let (sub_dir, int_dir) = (self.job_dir()?, self.job_dir()?);
        let (sub_box, int_box) = (self.servers.lease(), self.servers.lease());
        let sub = self.send(
            submission,
            &sub_dir,
            "inherit",
            to_submission_read.as_fd(),
            Some(to_interactor_write.as_fd()),
            &sub_box,
        )?;
        let int = self.send(
            interactor,
            &int_dir,
            "inherit",
            to_interactor_read.as_fd(),
            Some(to_submission_write.as_fd()),
            &int_box,
        )?;
        // The runs hold their own copies: each sees end of file once the other side is done.
        drop((to_interactor_read, to_interactor_write, to_submission_read, to_submission_write));
        let wait = |pending: crate::server::client::Pending, job: &RunJob| {
            pending.wait().map_err(|e| ExecError { module: job.module.clone(), message: e.to_string() })
        };
        let (sub_status, int_status) = (wait(sub, submission)?, wait(int, interactor)?);
        Ok((outcome(submission, &sub_dir, sub_status)?, outcome(interactor, &int_dir, int_status)?))
    }
}

/// Writes `text` to `path` as a report is written: a new file renamed into place.
pub fn write_output(path: &Path, text: &str) -> Result<(), host_files::HostFileError> {
    host_files::write_report(path, text)
}

/// Boxes (isolate's word): identities of their own for concurrent runs, each with a server
/// whose prepared children take it. A job leases a free box for its run and gives it back
/// after, so no two runs in flight share a uid. There are twice as many boxes as workers (an
/// interactive test holds two).
pub struct Boxes {
    boxes: Vec<(policy::RunAs, LocalServer)>,
    free: std::sync::Mutex<Vec<usize>>,
    returned: std::sync::Condvar,
}

impl Boxes {
    /// Boxes for `count` runs in flight: uids `first_uid..first_uid + count` (gid = uid), each
    /// with a server of `pool` prepared children on `dir/box-N.sock`.
    ///
    /// # Errors
    /// A server could not be started.
    pub fn start(dir: &Path, count: usize, first_uid: u32, pool: usize) -> std::io::Result<Boxes> {
        let mut boxes = Vec::with_capacity(count);
        for i in 0..count {
            let id = policy::RunAs { uid: first_uid + i as u32, gid: first_uid + i as u32 };
            boxes.push((id, LocalServer::start_as(dir, &format!("box-{i}"), pool, Some(id))?));
        }
        Ok(Boxes {
            free: std::sync::Mutex::new((0..count).rev().collect()),
            returned: std::sync::Condvar::new(),
            boxes,
        })
    }

    /// A free box, waiting for one if every box is in use.
    fn lease(&self) -> Lease<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(index) = free.pop() {
                return Lease::Box { boxes: self, index };
            }
            free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The server a run uses: the shared one, or a box in use (given back when dropped).
enum Lease<'a> {
    Shared(&'a LocalServer),
    Box { boxes: &'a Boxes, index: usize },
}

impl Lease<'_> {
    /// The identity the run takes: the box's, or the shared server's (the policy's own).
    fn run_as(&self) -> Option<policy::RunAs> {
        match self {
            Lease::Shared(_) => None,
            Lease::Box { boxes, index } => Some(boxes.boxes[*index].0),
        }
    }

    fn socket(&self) -> &Path {
        match self {
            Lease::Shared(server) => server.socket(),
            Lease::Box { boxes, index } => boxes.boxes[*index].1.socket(),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Lease::Box { boxes, index } = self {
            boxes.free.lock().unwrap_or_else(|e| e.into_inner()).push(*index);
            boxes.returned.notify_one();
        }
    }
}
