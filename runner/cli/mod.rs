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
    after_help = "Everything after MODULE belongs to the guest, verbatim (`sandboxrun -p p.yaml app.wasm -p x` passes\n`-p x` to app.wasm); with --invoke NAME, the export's arguments.\n\nOther commands:\n  sandboxrun policy check FILE     validate a policy, print the effective one\n  sandboxrun inspect MODULE        imports, exports, memories, tables\n  sandboxrun compile MODULE        compile into the code cache without running\n  sandboxrun cache stats|clear|gc  code cache maintenance\n  sandboxrun serve --socket PATH   serve runs for --server clients\n\nExit status: the guest's exit code (1 for one beyond 255); 134 trap; 124 time limit; 125 sandboxrun\ncould not run it; 137 memory limit; 153 output limit; 128+N killed by signal N (159: seccomp), or\nthe guest raised it; 2 wrong command line. The report's status says which; a guest code that\nreads like one of these gets a line on stderr saying it is the guest's own."
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
pub const SUBCOMMANDS: &[&str] = &["policy", "inspect", "compile", "serve", "grade", "call", "cache", "help"];
