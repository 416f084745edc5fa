//! Command-line interface.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `sandboxrun [-p policy.yaml] [OPTIONS] app.wasm [ARGS...]`: run a module.
#[derive(Parser, Debug)]
#[command(name = "sandboxrun", version, about = "Run untrusted WebAssembly (WASI preview1) under a YAML policy")]
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
    /// Call this export instead of `_start` and print its results; the ARGS are its arguments.
    #[arg(long = "invoke", value_name = "NAME")]
    pub invoke: Option<String>,
    /// Write a JSON report of the run to this file.
    #[arg(long = "report", value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Log each pipeline stage with its duration to stderr.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// The module (`.wasm` or `.wat`).
    pub module: PathBuf,
    /// Arguments for the guest (appended to the policy's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `sandboxrun policy|inspect ...`.
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
pub const SUBCOMMANDS: &[&str] = &["policy", "inspect", "help"];
