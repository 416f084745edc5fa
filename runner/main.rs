//! The `sandboxrun` binary. Exit statuses: the guest's exit code (1 for one beyond 255); 134
//! trap; 124 time limit; 125 sandboxrun could not run the module; 137 memory limit; 153 output
//! limit; 128+N killed by signal N (or the guest raised it). Its own prints go through
//! [`sandboxrun::cli::output`]: they never change the exit status.

use clap::Parser;
use sandboxrun::cli::{RunCli, ToolCli, SUBCOMMANDS};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: sandboxrun::child::oom::ExitOnOom = sandboxrun::child::oom::ExitOnOom;

fn main() -> ExitCode {
    sandboxrun_plugin::run_if_child();
    let first = std::env::args().nth(1).unwrap_or_default();
    let code = if SUBCOMMANDS.contains(&first.as_str()) {
        sandboxrun::cli::tools::run(ToolCli::parse())
    } else {
        run(RunCli::parse())
    };
    ExitCode::from(code as u8)
}

fn run(cli: RunCli) -> i32 {
    match &cli.server {
        Some(socket) => sandboxrun::server::client::forward(socket, std::env::args_os().collect()),
        None => {
            let finished = sandboxrun::cli::command::run(cli, sandboxrun::supervise::Start::Spawn, None);
            // Everything is said; the child is reaped before this process ends (else it is
            // left to whoever adopts orphans, and `time`/`wait4` of sandboxrun miss its usage).
            if let Some(release) = finished.release {
                release.reap();
            }
            finished.status
        }
    }
}
