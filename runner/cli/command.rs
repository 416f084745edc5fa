//! `sandboxrun [OPTIONS] app.wasm [ARGS...]` once parsed: the policy with the command line's
//! overrides, the run, the summary line and the report file; returns the exit status. The
//! same whether the binary runs it or a server's slot does for a client.

use crate::cli::RunCli;
use crate::server::hot::HotEntry;
use crate::supervise::report::{Report, EXIT_ERROR};
use crate::supervise::watch::Release;
use crate::supervise::{Ended, Run, Start};
use std::os::fd::OwnedFd;

/// How a command ended.
pub struct Finished {
    /// Its exit status.
    pub status: i32,
    /// The child, if it still waits to be released (see [`crate::supervise::watch::Release`]).
    pub release: Option<Release>,
    /// A module for a server to keep at hand ([`crate::supervise::Ended::hot`]).
    pub hot: Option<HotEntry>,
}

fn fail(message: impl std::fmt::Display) -> Finished {
    crate::errln!("sandboxrun: error: {message}");
    Finished { status: EXIT_ERROR, release: None, hot: None }
}

/// Runs the module of `cli`, its child started as `start` says (ended early if `cancel` hangs
/// up).
pub fn run(cli: RunCli, start: Start, cancel: Option<OwnedFd>) -> Finished {
    if cli.verbose {
        tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).init();
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let policy = match &cli.policy {
        Some(path) => policy::Policy::load(path),
        None => Ok(policy::Policy::default_policy()),
    };
    let mut policy = match policy {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    for d in &cli.dirs {
        if let Err(e) = policy.add_cli_mount(d, &cwd) {
            return fail(e);
        }
    }
    for e in &cli.env {
        if let Err(e) = policy.add_cli_env(e) {
            return fail(e);
        }
    }
    if let Some(spec) = &cli.stdin {
        if let Err(e) = policy.set_cli_stdin(spec, &cwd) {
            return fail(e);
        }
    }
    if let Some(spec) = &cli.instructions {
        if let Err(e) = policy.set_cli_instructions(spec) {
            return fail(e);
        }
    }
    if let Some(spec) = &cli.run_as {
        if let Err(e) = policy.set_cli_run_as(spec) {
            return fail(e);
        }
    }
    let args = match cli.guest_args() {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let path = cli.module();
    // A module a server keeps at hand is not hashed again.
    let known = |f: &protocol::slot::FileFingerprint| start.hot().and_then(|hot| hot.module_key(f));
    let module = match crate::plan::module_file::ModuleFile::open_known(path, known) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let argv0 = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let run = Run {
        cache: cli.cache.location(&policy.cache),
        policy,
        module,
        argv0,
        args,
        invoke: cli.invoke,
        compile_only: false,
        cancel,
    };
    let Ended { report, release, hot } = crate::supervise::run(run, start);
    log_stages(&report);
    if let Some(line) = report.verdict.summary() {
        crate::errln!("{line}");
    }
    if let Some(path) = &cli.report {
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = crate::plan::host_files::write_report(path, &(json + "\n")) {
            crate::errln!("sandboxrun: error: {e}");
        }
    }
    Finished { status: report.verdict.exit_status(), release, hot }
}

fn log_stages(report: &Report) {
    let s = &report.stages;
    for (stage, ms) in [
        ("load", s.load),
        ("compile", s.compile),
        ("link", s.link),
        ("instantiate", s.instantiate),
        ("execute", s.execute),
    ] {
        tracing::info!(stage, ms, "stage finished");
    }
    tracing::info!(
        cache = report.cache.as_str(),
        cpu_ms = report.cpu_time_ms,
        wall_ms = report.wall_time_ms,
        peak_memory_bytes = report.peak_memory_bytes,
        supervisor_peak_memory_bytes = crate::supervise::watch::own_peak_rss_bytes(),
        "run finished: {:?}",
        report.verdict.status
    );
}
