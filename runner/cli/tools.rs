//! The commands other than a run: `policy check`, `inspect`, `compile`, `serve`, `cache`.
//! Each returns its exit status; errors are one line.

use super::{CacheCommand, CompileArgs, PolicyCommand, Tool, ToolCli};
use crate::supervise::report::{CacheUse, EXIT_ERROR};
use crate::{errln, out, outln};

/// Runs a command other than a run; returns its exit status.
pub fn run(cli: ToolCli) -> i32 {
    match cli.command {
        Tool::Policy(PolicyCommand::Check { file }) => policy_check(&file),
        Tool::Inspect(args) => inspect(&args.module),
        Tool::Compile(args) => compile(&args),
        Tool::Serve(args) => {
            let mut identity = policy::Policy::default_policy();
            if let Some(spec) = &args.run_as {
                if let Err(e) = identity.set_cli_run_as(spec) {
                    return fail(e);
                }
            }
            match crate::server::serve(&args.socket, usize::from(args.pool), identity.run_as) {
                Ok(()) => 0,
                Err(e) => fail(e),
            }
        }
        Tool::Cache { location, command } => cache(&location, &command),
        Tool::Grade(args) => crate::grading::run(&args),
        // A binary of their own (runner/worker_main.rs): their NATS client stays out of this one.
        Tool::Worker(_) | Tool::Submit(_) => exec_worker(),
        Tool::Call(args) => super::call::run(&args),
    }
}

/// Replaces this process with `sandboxrun-worker` (beside this binary) and the same
/// arguments; returns only if that fails.
fn exec_worker() -> i32 {
    use std::os::unix::process::CommandExt;
    let Ok(me) = std::env::current_exe() else { return fail("cannot find this binary") };
    let worker = me.with_file_name("sandboxrun-worker");
    if me.file_name() == worker.file_name() {
        return fail("sandboxrun-worker handles worker and submit itself");
    }
    let e = std::process::Command::new(&worker).args(std::env::args_os().skip(1)).exec();
    fail(format!("{}: {e} (install it beside sandboxrun: cargo install --path .)", worker.display()))
}

fn fail(message: impl std::fmt::Display) -> i32 {
    errln!("sandboxrun: error: {message}");
    EXIT_ERROR
}

/// The policy itself, then its host files as a run would open them.
fn policy_check(file: &std::path::Path) -> i32 {
    let checked = policy::Policy::load(file)
        .map_err(|e| e.to_string())
        .and_then(|p| crate::plan::host_files::check(&p).map(|()| p).map_err(|e| e.to_string()));
    match checked {
        Ok(p) => {
            out!("{}", p.to_yaml());
            0
        }
        Err(e) => fail(e),
    }
}

fn inspect(module: &std::path::Path) -> i32 {
    match std::fs::read(module) {
        Ok(bytes) => match super::inspect::inspect(&bytes) {
            Ok(text) => {
                out!("{text}");
                0
            }
            // The error may quote the module's own names.
            Err(e) => fail(format!("{}: {}", module.display(), super::output::escape(&e.to_string()))),
        },
        Err(e) => fail(format!("failed to read {}: {e}", module.display())),
    }
}

/// Compiles into the code cache, through a confined child like a run's (compiling is parsing
/// hostile input).
fn compile(args: &CompileArgs) -> i32 {
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
    let module = match crate::plan::module_file::ModuleFile::open(&args.module) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let path = cache.0.clone();
    let report = crate::supervise::compile(policy, module, cache);
    if report.verdict.exit_status() != 0 {
        if let Some(line) = report.verdict.summary() {
            errln!("{line}");
        }
        return report.verdict.exit_status();
    }
    match report.cache {
        CacheUse::Hit => outln!("{}: already in {}", args.module.display(), path.display()),
        _ => outln!("{}: compiled in {:.1} ms into {}", args.module.display(), report.compile_ms, path.display()),
    }
    0
}

fn cache(location: &super::CacheArgs, command: &CacheCommand) -> i32 {
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
