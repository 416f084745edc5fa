//! `sandboxrun-worker`: `sandboxrun worker` and `sandboxrun submit` (`docs/scale-out.md`),
//! which `sandboxrun` executes when asked for them. A binary of their own, so that their
//! asynchronous NATS client (tokio, TLS) stays out of the binary every run starts: its code
//! and the pointers a static PIE relocates at each start cost the hot path (measured: 0.7 ms
//! a run when they were linked in). Every other command works here too (a worker's runs go
//! through `serve`, started from this binary).

use clap::Parser;
use sandboxrun::cli::{Tool, ToolCli};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = ToolCli::parse();
    let code = match cli.command {
        Tool::Worker(args) => sandboxrun::worker::command::run(&args),
        Tool::Submit(args) => sandboxrun::worker::submit::run(&args),
        command => sandboxrun::cli::tools::run(ToolCli { command }),
    };
    ExitCode::from(code as u8)
}
