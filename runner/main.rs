//! The `sandboxrun` binary. Exit statuses: the guest's exit code (1 for one beyond 255); 134
//! trap; 124 time limit; 125 sandboxrun could not run the module; 137 memory limit; 153 output
//! limit; 128+N killed by signal N (or the guest raised it). Its own prints go through
//! [`sandboxrun::cli::output`]: they never change the exit status.

use clap::Parser;
use sandboxrun::cli::{CacheCommand, PolicyCommand, RunCli, Tool, ToolCli, SUBCOMMANDS};
use sandboxrun::supervise::report::EXIT_ERROR;
use sandboxrun::{errln, out, outln};
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: sandboxrun::child::oom::ExitOnOom = sandboxrun::child::oom::ExitOnOom;

fn main() -> ExitCode {
    let first = std::env::args().nth(1).unwrap_or_default();
    let code = if SUBCOMMANDS.contains(&first.as_str()) { tool(ToolCli::parse()) } else { run(RunCli::parse()) };
    ExitCode::from(code as u8)
}

fn fail(message: impl std::fmt::Display) -> i32 {
    errln!("sandboxrun: error: {message}");
    EXIT_ERROR
}

fn tool(cli: ToolCli) -> i32 {
    match cli.command {
        Tool::Policy(PolicyCommand::Check { file }) => {
            // The policy itself, then its host files as a run would open them.
            match policy::Policy::load(&file)
                .map_err(|e| e.to_string())
                .and_then(|p| sandboxrun::plan::host_files::check(&p).map(|()| p).map_err(|e| e.to_string()))
            {
                Ok(p) => {
                    out!("{}", p.to_yaml());
                    0
                }
                Err(e) => fail(e),
            }
        }
        Tool::Inspect(args) => match std::fs::read(&args.module) {
            Ok(bytes) => match sandboxrun::cli::inspect::inspect(&bytes) {
                Ok(text) => {
                    out!("{text}");
                    0
                }
                // The error may quote the module's own names.
                Err(e) => {
                    fail(format!("{}: {}", args.module.display(), sandboxrun::cli::output::escape(&e.to_string())))
                }
            },
            Err(e) => fail(format!("failed to read {}: {e}", args.module.display())),
        },
        Tool::Compile(args) => {
            let policy = match &args.policy {
                Some(path) => policy::Policy::load(path),
                None => Ok(policy::Policy::default_policy()),
            };
            let policy = match policy {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            let Some(cache) = args.cache.location(&policy.cache) else {
                return fail("compile needs a code cache (remove --no-cache)");
            };
            let module = match std::fs::read(&args.module) {
                Ok(m) => m,
                Err(e) => return fail(format!("failed to read {}: {e}", args.module.display())),
            };
            let path = cache.0.clone();
            let run = sandboxrun::supervise::Run {
                policy,
                module,
                argv0: String::new(),
                args: Vec::new(),
                invoke: None,
                cache: Some(cache),
                compile_only: true,
                cancel: None,
            };
            let (report, release) = sandboxrun::supervise::run(run, sandboxrun::supervise::Start::Spawn);
            if let Some(release) = release {
                release.reap();
            }
            if report.verdict.exit_status() != 0 {
                if let Some(line) = report.verdict.summary() {
                    errln!("{line}");
                }
                return report.verdict.exit_status();
            }
            match report.cache {
                sandboxrun::supervise::report::CacheUse::Hit => {
                    outln!("{}: already in {}", args.module.display(), path.display())
                }
                _ => {
                    outln!("{}: compiled in {:.1} ms into {}", args.module.display(), report.compile_ms, path.display())
                }
            }
            0
        }
        Tool::Serve(args) => match sandboxrun::server::serve(&args.socket, usize::from(args.pool)) {
            Ok(()) => 0,
            Err(e) => fail(e),
        },
        Tool::Cache { location, command } => {
            let Some((path, max)) = location.location(&policy::CachePolicy::default()) else {
                return fail("no code cache location (set --cache or SANDBOXRUN_CACHE)");
            };
            let cache = match cache::CodeCache::open(&path, max) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let result = match command {
                CacheCommand::Stats => cache.stats().map(|s| {
                    outln!("path: {}\nentries: {}\nbytes: {}\nstores: {}", path.display(), s.entries, s.bytes, s.stores)
                }),
                CacheCommand::Clear => cache.clear().map(|()| outln!("cleared {}", path.display())),
                CacheCommand::Gc => cache.gc().map(|n| outln!("removed {n} entries from {}", path.display())),
            };
            match result {
                Ok(()) => 0,
                Err(e) => fail(e),
            }
        }
    }
}

fn run(cli: RunCli) -> i32 {
    match &cli.server {
        Some(socket) => sandboxrun::server::client::forward(socket, std::env::args_os().collect()),
        None => {
            let (status, release) = sandboxrun::cli::command::run(cli, sandboxrun::supervise::Start::Spawn, None);
            // Everything is said; the child is reaped before this process ends (else it is
            // left to whoever adopts orphans, and `time`/`wait4` of sandboxrun miss its usage).
            if let Some(release) = release {
                release.reap();
            }
            status
        }
    }
}
