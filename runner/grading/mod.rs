//! `sandboxrun grade PROBLEM SUBMISSION...`: the `grade` crate judges, sandboxrun runs. The
//! runs go through a server this command starts ([`local_server`]) from `--jobs` worker
//! threads ([`executor`]); the result is written in the chosen format to stdout or
//! `--output` (a new file renamed into place).
//!
//! Exit status: 0 when every test of every submission is accepted, 1 when a verdict is
//! anything else, 125 when grading itself failed (a bad package, a judge error on a test:
//! the result still says which), 2 for a wrong command line.

pub mod executor;
pub mod local_server;

use crate::cli::GradeArgs;
use crate::supervise::report::EXIT_ERROR;
use crate::{errln, out};
use grade::{Format, GradeOptions, Submission, Verdict};
use std::path::{Path, PathBuf};

/// The first uid of the ranges boxes take (as isolate's 60000 + box id).
const BOX_UIDS: u32 = 60000;
const _: () = assert!(BOX_UIDS + BOX_RANGES * 2 * MAX_BOXES <= 65534, "boxes must never take nobody's uid");

/// The most boxes one grading keeps (twice its workers, up to this).
const MAX_BOXES: u32 = 16;

/// How many ranges of `2 × MAX_BOXES` uids there are: all of them below 65534, `nobody`, the
/// identity every other run takes by default (and 65535, `(uid16_t)-1`).
const BOX_RANGES: u32 = 128;

fn fail(message: impl std::fmt::Display) -> i32 {
    errln!("sandboxrun: error: {message}");
    EXIT_ERROR
}

/// Loads a package: `problem.yaml` (ICPC/Kattis), else `init.yml` (DMOJ).
pub(crate) fn load(problem: &Path) -> Result<grade::Problem, grade::PackageError> {
    if problem.join("init.yml").is_file() && !problem.join("problem.yaml").is_file() {
        grade::load_dmoj(problem)
    } else {
        grade::load_problem(problem)
    }
}

/// A scratch folder for one grading (removed at the end unless it is `--keep`'s).
struct Work {
    dir: PathBuf,
    keep: bool,
}

impl Work {
    fn new(keep: Option<&Path>) -> std::io::Result<Work> {
        use std::os::unix::fs::PermissionsExt;
        let (dir, keep) = match keep {
            Some(dir) => (dir.to_path_buf(), true),
            None => (std::env::temp_dir().join(format!("sandboxrun-grade-{}", std::process::id())), false),
        };
        // Searchable by the runs' identity (their stdin files and mounts are below).
        for d in [dir.clone(), dir.join("scratch"), dir.join("runs")] {
            std::fs::create_dir_all(&d)?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        }
        Ok(Work { dir, keep })
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs `sandboxrun grade`; returns its exit status.
pub fn run(args: &GradeArgs) -> i32 {
    let Some(format) = Format::from_name(&args.format) else {
        return fail(format!("--format {}: expected table, json, junit, gradescope or html", args.format));
    };
    // Absolute: the runs start in folders of their own.
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let problem = match load(&absolute(&args.problem)) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let (mut policy, policy_sha256) = match &args.policy {
        Some(path) => match (policy::Policy::load(path), std::fs::read(path)) {
            (Ok(p), Ok(bytes)) => {
                (p, hex(&sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(bytes))))
            }
            (Err(e), _) => return fail(e),
            (_, Err(e)) => return fail(format!("failed to read {}: {e}", path.display())),
        },
        None => (policy::Policy::default_policy(), String::new()),
    };
    if let Some(spec) = &args.instructions {
        if let Err(e) = policy.set_cli_instructions(spec) {
            return fail(e);
        }
    }
    if let Some((path, _)) = args.cache.location(&policy.cache) {
        // The server's runs use this cache (a server reads the location from its environment).
        std::env::set_var("SANDBOXRUN_CACHE", path);
    } else {
        // `--no-cache`: the server's runs must not use one either.
        std::env::set_var("SANDBOXRUN_CACHE", "/dev/null/no-cache");
    }
    let jobs = args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let work = match Work::new(args.keep.as_deref()) {
        Ok(w) => w,
        Err(e) => return fail(format!("the grading folder: {e}")),
    };
    // Compiled now, each once: a test's CPU time is then the program's, never the compiler's
    // (every run loads the cached code).
    let cache = args.cache.location(&policy.cache);
    precompile_all(&submissions_paths(&args.submissions, &absolute), &policy, cache.as_ref());
    precompile_all(&problem_modules(&problem), &policy::Policy::default_policy(), cache.as_ref());
    let servers = if nix::unistd::geteuid().is_root() {
        // Distinct identities for runs in flight (isolate's box ids); by process id, so that
        // two gradings at once pick different ranges.
        let first_uid = BOX_UIDS + (std::process::id() % BOX_RANGES) * 2 * MAX_BOXES;
        match executor::Boxes::start(&work.dir, 2 * jobs.min(MAX_BOXES as usize), first_uid, 2) {
            Ok(boxes) => executor::Servers::Boxes(boxes),
            Err(e) => return fail(format!("failed to start the grading servers: {e}")),
        }
    } else {
        match local_server::LocalServer::start(&work.dir, jobs) {
            Ok(server) => executor::Servers::Shared(server.into()),
            Err(e) => return fail(format!("failed to start the grading server: {e}")),
        }
    };
    let budget = policy.limits.instructions;
    let executor = executor::ServerExecutor::new(servers, work.dir.join("runs"), policy);
    let submissions: Vec<Submission> = args
        .submissions
        .iter()
        .map(|m| Submission {
            name: m.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            module: absolute(m),
        })
        .collect();
    let mut options = options(jobs, policy_sha256, work.dir.join("scratch"));
    options.instruction_budget = budget;
    let bar = progress_bar();
    let progress = |p: &grade::Progress<'_>| {
        if let Some(bar) = &bar {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(format!("{} {} {:?}", p.submission, p.test, p.verdict));
        }
    };
    let result = grade::grade(&problem, &submissions, &executor, &options, &progress);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let result = match result {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let text = grade::render(&result, format);
    match &args.output {
        Some(path) => {
            if let Err(e) = executor::write_output(path, &text) {
                return fail(e);
            }
        }
        None => out!("{text}"),
    }
    exit_status(&result)
}

/// The grading options of `sandboxrun grade` (and of the worker's grade jobs).
pub(crate) fn options(jobs: usize, policy_sha256: String, scratch: PathBuf) -> GradeOptions {
    GradeOptions {
        jobs,
        engine_version: concat!("sandboxrun ", env!("CARGO_PKG_VERSION")).into(),
        policy_sha256,
        scratch_root: Some(scratch),
        ..GradeOptions::default()
    }
}

/// Compiles each module into the code cache now, once, as runs under `policy` will use it (its
/// stack size and whether it counts instructions shape the code): a test's CPU time is then
/// the program's, never the compiler's. A module that fails to compile gets a warning (its runs
/// compile it, and fail as they must).
pub(crate) fn precompile_all(modules: &[PathBuf], policy: &policy::Policy, cache: Option<&(PathBuf, u64)>) {
    if let Some(cache) = cache {
        for module in modules {
            if let Err(e) = precompile(module, policy, cache.clone()) {
                errln!("sandboxrun: warning: {}: {e}; its runs compile it", module.display());
            }
        }
    }
}

fn submissions_paths(submissions: &[PathBuf], absolute: &dyn Fn(&Path) -> PathBuf) -> Vec<PathBuf> {
    submissions.iter().map(|m| absolute(m)).collect()
}

/// The problem's own modules: its custom checkers, its interactor.
pub(crate) fn problem_modules(problem: &grade::Problem) -> Vec<PathBuf> {
    let mut modules: Vec<PathBuf> = problem
        .groups
        .iter()
        .filter_map(|g| match &g.checker {
            grade::Checker::Custom { module, .. } => Some(module.clone()),
            grade::Checker::Builtin(_) => None,
        })
        .collect();
    if let grade::ProblemKind::Interactive { interactor, .. } = &problem.kind {
        modules.push(interactor.clone());
    }
    modules.sort();
    modules.dedup();
    modules
}

/// Compiles `module` into the code cache (`sandboxrun compile`'s path: a confined child).
fn precompile(module: &Path, policy: &policy::Policy, cache: (PathBuf, u64)) -> Result<(), String> {
    let module = crate::plan::module_file::ModuleFile::open(module).map_err(|e| e.to_string())?;
    let report = crate::supervise::compile(policy.clone(), module, cache);
    match report.verdict.exit_status() {
        0 => Ok(()),
        _ => Err(report.verdict.summary().unwrap_or_default()),
    }
}

/// 0 if every test was accepted, 125 if a judge error happened, 1 otherwise.
pub(crate) fn exit_status(result: &grade::GradeResult) -> i32 {
    let verdicts = || result.submissions.iter().flat_map(|s| s.tests.iter().map(|t| t.verdict));
    if verdicts().any(|v| v == Verdict::IE) {
        EXIT_ERROR
    } else if verdicts().all(|v| v == Verdict::AC) {
        0
    } else {
        1
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    Some(bar)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
