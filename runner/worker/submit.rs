//! `sandboxrun submit --nats URL (--grade PROBLEM SUBMISSION | [-p POLICY] --run MODULE
//! [ARGS]...) [--wait]`: uploads the job's inputs to the store (once: an object already there
//! is kept), enqueues the job, and with `--wait` waits for its result, prints it (the result
//! JSON) and exits as the run or the grading would have; without it, prints the job's id.

use super::blobs::tar_folder;
use super::job::{GradeWork, Job, JobResult, RunWork, Work};
use super::nats::{connect, QueueSettings};
use super::transport::{JobQueue, Store, TransportError};
use crate::cli::SubmitArgs;
use crate::supervise::report::EXIT_ERROR;
use crate::{errln, outln};
use base64::Engine as _;
use std::path::Path;

/// Why a submission failed before its job was enqueued, or while waiting.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A local file could not be read.
    #[error("failed to read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The queue failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The result is not a result.
    #[error("an unreadable result: {0}")]
    Result(String),
    /// Neither `--run` nor `--grade`.
    #[error("nothing to submit: give --run MODULE or --grade PROBLEM SUBMISSION")]
    Nothing,
    /// `--instructions` is not a budget.
    #[error("--instructions {given}: {why}")]
    Instructions {
        /// What was given.
        given: String,
        /// Why it is refused.
        why: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, SubmitError> {
    std::fs::read(path).map_err(|e| SubmitError::Read { path: path.display().to_string(), message: e.to_string() })
}

/// A file name the worker accepts: `[A-Za-z0-9._-]`, other characters as `_`.
fn file_name(path: &Path) -> String {
    let name: String = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' })
        .collect();
    match name.trim_start_matches('.') {
        "" => "module.wasm".into(),
        n => n.chars().take(100).collect(),
    }
}

/// A fresh job id: the time in nanoseconds, this process, a counter.
fn job_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{now:x}-{:x}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Uploads what `args` names and builds its job.
async fn build<S: Store>(args: &SubmitArgs, store: &S, reply_prefix: &str) -> Result<Job, SubmitError> {
    let id = job_id();
    let reply = format!("{reply_prefix}{id}");
    let work = if let Some([problem, submission]) = args.grade.as_deref() {
        let tar = tar_folder(Path::new(problem))
            .map_err(|e| SubmitError::Read { path: problem.display().to_string(), message: e.to_string() })?;
        let instructions = match &args.instructions {
            Some(n) => {
                Some(policy::parse_instructions(n).map_err(|why| SubmitError::Instructions { given: n.clone(), why })?)
            }
            None => None,
        };
        Work::Grade(GradeWork {
            problem: store.put(tar).await?,
            submission: store.put(read(submission)?).await?,
            name: file_name(submission),
            instructions,
        })
    } else if let Some(command) = args.run.as_deref().filter(|c| !c.is_empty()) {
        let module = Path::new(&command[0]);
        let policy = match &args.policy {
            Some(p) => Some(String::from_utf8_lossy(&read(p)?).into_owned()),
            None => None,
        };
        let stdin = match &args.stdin {
            Some(p) => base64::engine::general_purpose::STANDARD.encode(read(p)?),
            None => String::new(),
        };
        Work::Run(RunWork {
            module: store.put(read(module)?).await?,
            name: file_name(module),
            policy,
            args: command[1..].iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            stdin_base64: stdin,
        })
    } else {
        return Err(SubmitError::Nothing);
    };
    Ok(Job { id, reply, work })
}

/// Runs `sandboxrun submit`; returns its exit status.
pub fn run(args: &SubmitArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            errln!("sandboxrun: error: the runtime: {e}");
            return EXIT_ERROR;
        }
    };
    runtime.block_on(async {
        match submit(args).await {
            Ok(status) => status,
            Err(e) => {
                errln!("sandboxrun: error: {e}");
                EXIT_ERROR
            }
        }
    })
}

async fn submit(args: &SubmitArgs) -> Result<i32, SubmitError> {
    let settings =
        QueueSettings { stream: args.stream.clone(), ack_wait: std::time::Duration::from_secs(30), max_deliver: 5 };
    let (queue, store) = connect(&args.nats, &settings, false).await?;
    let job = build(args, &store, &queue.results_prefix()).await?;
    let kind = match job.work {
        Work::Run(_) => "run",
        Work::Grade(_) => "grade",
    };
    let bytes = serde_json::to_vec(&job).map_err(|e| SubmitError::Result(e.to_string()))?;
    queue.enqueue(kind, &job.id, &bytes).await?;
    if !args.wait {
        outln!("{}", job.id);
        return Ok(0);
    }
    let result = queue.wait_result(&job.id, args.timeout).await?;
    let parsed: JobResult = serde_json::from_slice(&result).map_err(|e| SubmitError::Result(e.to_string()))?;
    outln!("{}", serde_json::to_string_pretty(&parsed).unwrap_or_default());
    Ok(parsed.exit_status)
}
