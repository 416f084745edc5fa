//! Command-line interface.

pub mod call;
pub mod command;
pub mod inspect;
pub mod output;
pub mod tools;

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// `sandboxrun [-p policy.yaml] [OPTIONS] app.wasm [ARGS...]`: run a module. Options come
/// before MODULE; everything after it is the guest's, passed on verbatim, like `wasmtime run`.
#[derive(Parser, Debug)]
#[command(
    name = "sandboxrun",
    version,
    about = "Run untrusted WebAssembly (WASI preview1) under a YAML policy",
    override_usage = "sandboxrun [OPTIONS] MODULE [ARGS]...",
    after_help = "Everything after MODULE belongs to the guest, verbatim (`sandboxrun -p p.yaml app.wasm -p x` passes\n`-p x` to app.wasm); with --invoke NAME, the export's arguments.\n\nOther commands:\n  sandboxrun policy check FILE     validate a policy, print the effective one\n  sandboxrun inspect MODULE        imports, exports, memories, tables\n  sandboxrun compile MODULE        compile into the code cache without running\n  sandboxrun cache stats|clear|gc  code cache maintenance\n  sandboxrun serve --socket PATH   serve runs for --server clients\n  sandboxrun worker --nats URL     answer jobs from a NATS JetStream queue\n  sandboxrun submit --nats URL     enqueue a run or a grading for the workers\n\nExit status: the guest's exit code (1 for one beyond 255); 134 trap; 124 time or instruction limit; 125\nsandboxrun could not run it; 137 memory limit; 153 output limit; 128+N killed by signal N (159: seccomp), or\nthe guest raised it; 2 wrong command line. The report's status says which; a guest code that\nreads like one of these gets a line on stderr saying it is the guest's own."
)]
pub struct RunCli {
    /// The policy (YAML); without it: no mounts, empty environment, default limits.
    #[arg(short = 'p', long = "policy", value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// Mount a host directory: HOST::GUEST[:ro|:rw] (read-only by default).
    #[arg(long = "dir", value_name = "HOST::GUEST[:ro|:rw]")]
    pub dirs: Vec<String>,
    /// Set a guest environment variable.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// The identity of the run when sandboxrun is started by root (overrides the policy's
    /// `run_as`; default 65534): give concurrent runs distinct uids to keep them apart.
    #[arg(long = "run-as", value_name = "UID[:GID]")]
    pub run_as: Option<String>,
    /// The guest's stdin: this process's (`inherit`, the default unless the policy says
    /// otherwise), none (`null`), or a file.
    #[arg(long = "stdin", value_name = "inherit|null|FILE")]
    pub stdin: Option<String>,
    /// The deterministic instruction budget: wasm instructions the run may execute before it
    /// ends with `instruction_limit` (overrides the policy's `limits.instructions`).
    #[arg(long = "instructions", value_name = "N")]
    pub instructions: Option<String>,
    /// Call this export instead of `_start` and print its results; the ARGS are its arguments.
    #[arg(long = "invoke", value_name = "NAME")]
    pub invoke: Option<String>,
    /// Write a JSON report of the run to this file.
    #[arg(long = "report", value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Run through the server listening on this socket (`sandboxrun serve`): the same run,
    /// confined the same way, with its namespaces and empty root prepared before it was asked.
    #[arg(long = "server", value_name = "SOCKET")]
    pub server: Option<PathBuf>,
    /// Log each pipeline stage with its duration to stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Where the code cache is.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The module (`.wasm` or `.wat`), then the guest's arguments (after the policy's `args`):
    /// everything after MODULE is the guest's, options and `--` included.
    #[arg(value_name = "MODULE [ARGS]", required = true, trailing_var_arg = true)]
    pub command: Vec<OsString>,
}

/// [`RunCli::command`] split: the module and the guest's arguments.
impl RunCli {
    /// The module to run (the first word of [`RunCli::command`]).
    pub fn module(&self) -> &Path {
        // clap requires at least one value.
        self.command.first().map(Path::new).unwrap_or(Path::new(""))
    }

    /// The guest's arguments: everything after MODULE, verbatim.
    ///
    /// # Errors
    /// An argument is not UTF-8 (WASI's arguments are strings here); the error says which.
    pub fn guest_args(&self) -> Result<Vec<String>, NotUtf8> {
        self.command.iter().skip(1).map(|a| a.to_str().map(str::to_owned).ok_or_else(|| NotUtf8(a.clone()))).collect()
    }
}

/// A guest argument that is not UTF-8.
#[derive(Debug, thiserror::Error)]
#[error("guest argument {0:?} is not UTF-8")]
pub struct NotUtf8(pub OsString);

/// The environment variables sandboxrun reads: the code cache's location (the guest's
/// environment is the policy's alone). A client passes them to the server.
pub const ENVIRONMENT: &[&str] = &["SANDBOXRUN_CACHE", "XDG_CACHE_HOME", "HOME"];

/// Where the code cache is.
#[derive(Args, Debug, Clone, Default)]
pub struct CacheArgs {
    /// The code cache file (default: $SANDBOXRUN_CACHE, the policy's cache.path, or
    /// $XDG_CACHE_HOME/sandboxrun/code-cache.sqlite).
    #[arg(long = "cache", value_name = "PATH")]
    pub cache: Option<PathBuf>,
    /// Do not use the code cache.
    #[arg(long = "no-cache", conflicts_with = "cache")]
    pub no_cache: bool,
}

impl CacheArgs {
    /// The cache file and bound, by precedence: `--no-cache`, `--cache`, `SANDBOXRUN_CACHE`,
    /// the policy, the XDG default; `None` when disabled or no location can be found.
    pub fn location(&self, policy: &policy::CachePolicy) -> Option<(PathBuf, u64)> {
        if self.no_cache {
            return None;
        }
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let path = self
            .cache
            .clone()
            .or_else(|| env("SANDBOXRUN_CACHE"))
            .or_else(|| policy.path.clone())
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("sandboxrun/code-cache.sqlite")))
            .or_else(|| env("HOME").map(|d| d.join(".cache/sandboxrun/code-cache.sqlite")))?;
        Some((path, policy.max_size))
    }
}

/// `sandboxrun policy|inspect|compile|cache ...`.
#[derive(Parser, Debug)]
#[command(name = "sandboxrun", version)]
pub struct ToolCli {
    /// What to do.
    #[command(subcommand)]
    pub command: Tool,
}

/// Subcommands other than running.
#[derive(Subcommand, Debug)]
pub enum Tool {
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Print a module's imports, exports, memories and tables.
    Inspect(InspectArgs),
    /// Compile a module into the code cache without running it.
    Compile(CompileArgs),
    /// Serve runs for `sandboxrun --server SOCKET ...` clients of the same user, each child
    /// started and prepared before its run is asked for.
    Serve(ServeArgs),
    /// Judge submissions against a problem package's tests (ICPC/Kattis 2023-07 layout, or a
    /// DMOJ `init.yml` folder): verdicts, groups and points, as a table, JSON, JUnit,
    /// Gradescope or an HTML page.
    Grade(GradeArgs),
    /// Pull run and grade jobs from a NATS JetStream work queue and answer them
    /// (`docs/scale-out.md`); stops gracefully on SIGTERM.
    Worker(WorkerArgs),
    /// Upload a run or a grading, enqueue it for the workers, and with --wait print its result.
    Submit(SubmitArgs),
    /// Call one export of a module as a plugin: stdin in, stdout out.
    Call(call::CallArgs),
    /// Code cache maintenance.
    Cache {
        /// Where the code cache is.
        #[command(flatten)]
        location: CacheArgs,
        /// What to do.
        #[command(subcommand)]
        command: CacheCommand,
    },
}

/// `sandboxrun compile app.wasm`.
#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The policy (for its limits and cache settings).
    #[arg(short = 'p', long = "policy", value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// Where the code cache is.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// The module.
    pub module: PathBuf,
}

/// `sandboxrun grade PROBLEM SUBMISSION.wasm...`.
#[derive(Args, Debug)]
pub struct GradeArgs {
    /// The problem package (a folder with `problem.yaml`, or with a DMOJ `init.yml`).
    pub problem: PathBuf,
    /// The submissions (`.wasm`); several give a summary matrix.
    #[arg(required = true)]
    pub submissions: Vec<PathBuf>,
    /// Tests run at once (default: the cores).
    #[arg(long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// How the result is written: table, json, junit, gradescope or html.
    #[arg(long = "format", value_name = "FORMAT", default_value = "table")]
    pub format: String,
    /// Write the result to this file instead of stdout.
    #[arg(long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// A policy whose mounts, environment and arguments the submissions' runs get (limits are
    /// the problem's).
    #[arg(long = "policy", value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// Keep each test's files (output, feedback, reports) under this folder.
    #[arg(long = "keep", value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// The deterministic instruction budget of each submission run (overrides the policy's
    /// `limits.instructions`): a run past it is TLE, the same on any machine under any load.
    #[arg(long = "instructions", value_name = "N")]
    pub instructions: Option<String>,
    /// Where the code cache is.
    #[command(flatten)]
    pub cache: CacheArgs,
}

/// `sandboxrun serve --socket PATH`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The Unix socket to listen on (created with mode 0600; a stale one is replaced).
    #[arg(long = "socket", value_name = "PATH")]
    pub socket: PathBuf,
    /// Children kept prepared: runs in flight beyond it wait for a child to be prepared.
    #[arg(long = "pool", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub pool: u16,
    /// The identity the prepared children take (root only; default 65534): runs whose policy
    /// says this `run_as` use them (others get a child started for them).
    #[arg(long = "run-as", value_name = "UID[:GID]")]
    pub run_as: Option<String>,
}

/// A duration in seconds (`30`, `0.5`).
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{text:?}: expected seconds, e.g. 30 or 0.5"))
}

/// A JetStream stream name: `[A-Za-z0-9_-]`.
fn stream_name(text: &str) -> Result<String, String> {
    match !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
    {
        true => Ok(text.to_string()),
        false => Err(format!("{text:?}: expected 1 to 32 of [A-Za-z0-9_-]")),
    }
}

/// `sandboxrun worker --nats nats://127.0.0.1:4222 --jobs 4 --metrics 127.0.0.1:9464`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The NATS server (JetStream enabled).
    #[arg(long = "nats", value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// The work-queue stream (created if missing, on `<name in lowercase>.jobs.*`), with its
    /// object store `NAME_blobs` and KV bucket `NAME_results`.
    #[arg(long = "stream", value_name = "NAME", default_value = "SANDBOXRUN", value_parser = stream_name)]
    pub stream: String,
    /// Jobs run at once, and children the worker's server keeps prepared (default: the cores).
    #[arg(long = "jobs", value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// This worker's identity in results (default: HOST:PID).
    #[arg(long = "name", value_name = "NAME")]
    pub name: Option<String>,
    /// Where fetched blobs, unpacked problems and the code cache are kept (default:
    /// $TMPDIR/sandboxrun-worker-UID; searchable by the runs' identity).
    #[arg(long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`GET /metrics`), e.g. 127.0.0.1:9464.
    #[arg(long = "metrics", value_name = "ADDR")]
    pub metrics: Option<String>,
    /// The consumer's ack deadline when the worker creates it: a job whose worker sends no
    /// in-progress ack for this long is delivered again.
    #[arg(long = "ack-wait", value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub ack_wait: std::time::Duration,
    /// The consumer's delivery bound when the worker creates it: the delivery numbered this is
    /// not run but reported as a judge error (at least 2).
    #[arg(long = "max-deliver", value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..))]
    pub max_deliver: u16,
    /// How long a job that failed judge-side waits before it is delivered again.
    #[arg(long = "nak-delay", value_name = "SECONDS", default_value = "5", value_parser = seconds)]
    pub nak_delay: std::time::Duration,
    /// On SIGTERM, how long jobs in flight may take to finish before they are handed back.
    #[arg(long = "grace", value_name = "SECONDS", default_value = "30", value_parser = seconds)]
    pub grace: std::time::Duration,
}

/// `sandboxrun submit --nats URL --wait --grade examples/grading/sum ac.wasm`, or
/// `sandboxrun submit --nats URL --wait -p policy.yaml --run hello.wasm a b`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The NATS server.
    #[arg(long = "nats", value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// The work-queue stream (as the workers' `--stream`).
    #[arg(long = "stream", value_name = "NAME", default_value = "SANDBOXRUN", value_parser = stream_name)]
    pub stream: String,
    /// The run's policy (no mounts, stdin file, cache file or run_as: workers refuse them).
    #[arg(short = 'p', long = "policy", value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// The run's stdin (sent with the job).
    #[arg(long = "stdin", value_name = "FILE")]
    pub stdin: Option<PathBuf>,
    /// Wait for the result, print it, and exit as the run or the grading would have.
    #[arg(long = "wait")]
    pub wait: bool,
    /// How long --wait waits.
    #[arg(long = "timeout", value_name = "SECONDS", default_value = "600", value_parser = seconds)]
    pub timeout: std::time::Duration,
    /// A grade job: the problem folder (sent as a tar) and the submission.
    #[arg(long = "grade", num_args = 2, value_names = ["PROBLEM_DIR", "SUBMISSION"], conflicts_with = "run", required_unless_present = "run")]
    pub grade: Option<Vec<PathBuf>>,
    /// With `--grade`: the deterministic instruction budget of each submission run (as
    /// `sandboxrun grade --instructions N`).
    #[arg(long = "instructions", value_name = "N", requires = "grade")]
    pub instructions: Option<String>,
    /// A run job: the module, then the guest's arguments — everything after it is the
    /// guest's, so put --run last.
    #[arg(long = "run", num_args = 1.., value_name = "MODULE [ARGS]", allow_hyphen_values = true)]
    pub run: Option<Vec<OsString>>,
}

/// `sandboxrun cache ...`.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Entries, bytes and artifacts stored (hits are not counted: each run's report says).
    Stats,
    /// Remove every entry.
    Clear,
    /// Remove damaged entries, enforce the size bound, compact the file.
    Gc,
}

/// `sandboxrun policy ...`.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy and print the effective policy (defaults filled in).
    Check {
        /// The policy file.
        file: PathBuf,
    },
}

/// `sandboxrun inspect app.wasm`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The module.
    pub module: PathBuf,
}

/// Names of subcommands; anything else as the first argument is a module to run.
pub const SUBCOMMANDS: &[&str] =
    &["policy", "inspect", "compile", "serve", "grade", "call", "worker", "submit", "cache", "help"];
