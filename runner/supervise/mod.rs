//! The parent's side of a run: make what the child needs, start it (or hand the run to a
//! prepared child), answer it from the code cache, watch it, and turn what happened into a
//! report. In order: [`launch`] (pipes, files, cgroup, the child), [`cache`] (lookup, answer,
//! store), [`watch`] (the wait, the limits), [`verdict`] and [`report`].

pub mod cache;
mod launch;
mod module_sha;
pub mod report;
pub mod verdict;
pub mod watch;

use crate::plan::confinement;
use crate::plan::module_file::ModuleFile;
use crate::plan::spec;
use crate::server::hot::{HotEntry, HotSet};
use crate::server::prepared::PreparedChild;
use launch::Launched;
use policy::Policy;
use report::{CacheUse, ChildReport, ChildStarted, Report};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Instant;
use verdict::Verdict;
use watch::Release;

pub use cache::OpenCache;
pub use launch::LaunchError;

/// Everything the parent needs to run a module.
pub struct Run {
    /// The policy, overrides applied.
    pub policy: Policy,
    /// The module, open and hashed.
    pub module: ModuleFile,
    /// The guest's `argv[0]`.
    pub argv0: String,
    /// Guest arguments from the command line.
    pub args: Vec<String>,
    /// `--invoke`.
    pub invoke: Option<String>,
    /// The code cache file and its size bound; `None`: disabled.
    pub cache: Option<(PathBuf, u64)>,
    /// Only compile (and cache), do not run.
    pub compile_only: bool,
    /// A socket whose hangup ends the run (a server's client gone; see [`watch::Watch`]).
    pub cancel: Option<OwnedFd>,
}

/// How the run's child comes to be.
pub enum Start {
    /// Forked into new namespaces for this run.
    Spawn,
    /// Started and prepared before the run was known, by a server's slot (see
    /// [`crate::server`]); spawned afresh instead if it does not fit the run's policy.
    Prepared(Box<Ahead>),
}

/// What a server's slot made ready before its run was known.
pub struct Ahead {
    /// The child, prepared.
    pub child: PreparedChild,
    /// The code cache at the default location, open.
    pub cache: Option<OpenCache>,
    /// Where the run's cgroup goes, made ready for a policy's limits, or why it has none.
    pub cgroups: Result<sandbox::CgroupParent, String>,
    /// The modules the server keeps at hand.
    pub hot: HotSet,
}

impl Start {
    /// The modules at hand (none for a spawned child).
    pub fn hot(&self) -> Option<&HotSet> {
        match self {
            Start::Spawn => None,
            Start::Prepared(ahead) => Some(&ahead.hot),
        }
    }
}

/// How a run ended, for its caller.
pub struct Ended {
    /// The report.
    pub report: Report,
    /// The child, if it still waits after reporting: [`Release::reap`] it once the report is
    /// out.
    pub release: Option<Release>,
    /// The module and its artifact, if the run found them in the code cache and the module
    /// file had settled: for a server to keep at hand.
    pub hot: Option<HotEntry>,
}

/// The report of a run that went no further than `verdict`.
fn bare_report(verdict: Verdict, module_sha256: String, cache: CacheUse) -> Report {
    Report {
        verdict,
        cpu_time_ms: 0,
        wall_time_ms: 0,
        peak_memory_bytes: 0,
        memory_grow_refused: false,
        stdout_bytes: 0,
        stderr_bytes: 0,
        instructions: None,
        module_sha256,
        cache,
        compile_ms: 0.0,
        load_ms: 0.0,
        stages: Default::default(),
        confinement: None,
    }
}

/// Runs the module in a child and reports.
///
/// Order: everything the child needs from the parent is made before the fork, or before the
/// handover to a prepared child (the pipes, the run's files and module, the confinement, the
/// seccomp filter, the cgroup, the code channel); then, while the child confines itself, the
/// parent looks the module up in the code cache (by the content key [`ModuleFile::open`]
/// computed), and answers through the code channel; then it supervises, computing the
/// module's SHA-256 for the report meanwhile, and answers once the child has reported (see
/// [`watch::wait`]).
///
/// A server's modules at hand spare a known module's hashing and lookup ([`HotSet`]); a run
/// that found its module in the cache says so in [`Ended::hot`].
pub fn run(run: Run, start: Start) -> Ended {
    let limits = run.policy.limits;
    let code_limit = cache::artifact_limit(usize::try_from(run.module.len()).unwrap_or(usize::MAX));
    // The cache key's identity is that of the one engine configuration the child compiles
    // with.
    let identity = match spec::engine_identity(&limits, run.policy.features.as_deref()) {
        Ok(identity) => identity,
        Err(e) => {
            let verdict = Verdict::error(format!("policy features: {e}"));
            return Ended {
                report: bare_report(verdict, run.module.sha256_hex(), CacheUse::Disabled),
                release: None,
                hot: None,
            };
        }
    };
    let key = *run.module.key();
    let at_hand = match (start.hot(), &run.cache) {
        (Some(hot), Some((path, _))) => {
            use std::os::unix::ffi::OsStrExt;
            hot.artifact(path.as_os_str().as_bytes(), &::cache::CacheKey::new(&key, &identity).0)
        }
        _ => None,
    };
    if at_hand.is_some() {
        tracing::info!("module and compiled code at hand: neither hashed nor looked up");
    }
    let launched = match launch::launch(&run, start) {
        Ok(l) => l,
        // A run that never starts: its report still names the module.
        Err(e) => {
            let verdict = Verdict::error(e.to_string());
            let report = bare_report(verdict, run.module.sha256_hex(), CacheUse::Disabled);
            return Ended { report, release: None, hot: None };
        }
    };
    let Launched { child, mut code, report_pipe, release, cgroup, shared_network, namespaces, open_cache } = launched;
    // While the child confines itself.
    let (db, cache_use, found) = cache::look_up_and_answer(&mut code, &run.cache, open_cache, &key, &identity, at_hand);
    let cache_key = db.as_ref().map(|c| c.key);
    // The report's SHA-256: stored with a hit's artifact, or computed on the other core while
    // the child runs (forking is over; a thread is safe now).
    let settled = run.module.settled_fingerprint();
    let known_sha = found.as_ref().and_then(|f| f.module_sha256.clone());
    let sha256 = module_sha::ModuleSha::start(known_sha, run.module);
    let returned = code.returned();
    // The wall clock starts once the child has all it needs of the supervisor: waiting for
    // the cache (another process may hold its lock) is not the run's time.
    let started = Instant::now();
    // The report is a few kilobytes in practice; its frames' bounds (1 MiB and 64 KiB) are the
    // most a guest that took over its process can make the supervisor hold: more is a
    // protocol violation.
    let mut pipes = vec![watch::Inbound::new(report_pipe, report::report_pipe_limit(), "report")];
    let (back, beside) = cache::store_in_background(db, cache_use, returned, code_limit, &identity, &sha256);
    if let Some(returned) = beside {
        pipes.push(watch::Inbound::new(returned, code_limit, "compiled code"));
    }
    let reported = |report: &[u8]| report::read_report_pipe(report).1.is_some();
    let watch = watch::Watch {
        started,
        wall_limit: limits.wall_time,
        cpu_limit: limits.cpu_time,
        cancel: run.cancel.as_ref().map(AsFd::as_fd),
    };
    let (exit, release) = match watch::wait(child.pid(), &watch, &mut pipes, &reported, release) {
        Ok(waited) => waited,
        Err(e) => {
            let verdict = Verdict::error(format!("failed to wait for the run: {e}"));
            return Ended { report: bare_report(verdict, sha256.get(), cache_use), release: None, hot: None };
        }
    };
    let release = release.map(|mut r| {
        r.keep(namespaces);
        r
    });
    let (child_started, child_report) = report::read_report_pipe(&pipes[0].bytes);
    // Known before guest code ran (a run then killed at a limit stores its code too), and so
    // not the guest's to claim.
    let compiled = match (&child_started, &child_report) {
        (Some(s), _) => s.compiled,
        (None, c) => c.as_ref().is_some_and(|c| c.compiled),
    };
    cache::finish(back, cache_use, compiled, pipes.get(1).map(|p| &p.bytes[..]), &identity, &sha256);
    let observed = verdict::Observed { syscall: child.violation().map(|v| v.to_string()), ..Default::default() };
    let facts = Facts { exit, observed, cgroup, shared_network, cache_use, sha: sha256.get() };
    let report = report_of(facts, child_started.as_ref(), child_report.as_ref(), &limits);
    // A module found in the cache (and loaded: the child did not compile) whose file had
    // settled: a server keeps it at hand.
    let hot = match (report.cache, found, settled, cache_key, &run.cache) {
        (CacheUse::Hit, Some(found), Some(fingerprint), Some(cache_key), Some((path, _))) if !compiled => {
            use std::os::unix::ffi::OsStrExt;
            Some(HotEntry {
                module: protocol::slot::HotModule {
                    fingerprint,
                    module_key: key,
                    cache_path: path.as_os_str().as_bytes().to_vec(),
                    cache_key: cache_key.0,
                    artifact_len: found.len,
                    module_sha256: report.module_sha256.clone(),
                },
                artifact: found.file.into(),
            })
        }
        _ => None,
    };
    Ended { report, release, hot }
}

/// Compiles `module` into the code cache at `cache`, in a confined child as a run would (the
/// compiler parses hostile input), and reaps the child; `sandboxrun compile`'s path.
pub fn compile(policy: Policy, module: ModuleFile, cache: (PathBuf, u64)) -> Report {
    let run = Run {
        policy,
        module,
        argv0: String::new(),
        args: Vec::new(),
        invoke: None,
        cache: Some(cache),
        compile_only: true,
        cancel: None,
    };
    let Ended { report, release, .. } = self::run(run, Start::Spawn);
    if let Some(release) = release {
        release.reap();
    }
    report
}

/// What the supervisor knows of a run once it is over, besides the child's own report.
struct Facts {
    exit: watch::ChildExit,
    observed: verdict::Observed,
    cgroup: Result<sandbox::Cgroup, String>,
    shared_network: bool,
    cache_use: CacheUse,
    sha: String,
}

/// The report: the verdict from the supervisor's facts and the child's report, the usage,
/// and the confinement worded from the child's facts and the supervisor's (from its
/// [`ChildStarted`] when it was killed before its report).
fn report_of(
    facts: Facts,
    started: Option<&ChildStarted>,
    child: Option<&ChildReport>,
    limits: &policy::Limits,
) -> Report {
    let Facts { exit, mut observed, cgroup, shared_network, cache_use, sha } = facts;
    let mut peak_memory_bytes = exit.peak_rss_bytes;
    let cgroup_status = match cgroup {
        Ok(cgroup) => {
            if let Ok(Some(peak)) = cgroup.memory_peak() {
                peak_memory_bytes = peak;
            }
            observed.oom_kills = cgroup.oom_kills().ok().flatten().unwrap_or(0);
            if let Err(e) = cgroup.remove() {
                crate::errln!("sandboxrun: warning: {e}");
            }
            Ok(())
        }
        Err(why) => Err(why),
    };
    let outcome = child.map(|c| c.outcome.clone());
    let mut report = bare_report(verdict::decide(&exit, outcome, limits, &observed), sha, cache_use);
    report.cpu_time_ms = exit.cpu_time.as_millis() as u64;
    report.wall_time_ms = exit.wall_time.as_millis() as u64;
    report.peak_memory_bytes = peak_memory_bytes;
    // The confinement and whether it compiled come from what the child said before guest code
    // ran, when it got that far (a guest that took over its process could write the final
    // report); the stages from the final report, which has them all.
    let known = match (child, started) {
        (Some(c), Some(s)) => Some((&c.stages, &s.confinement, s.compiled)),
        (Some(c), None) => Some((&c.stages, &c.confinement, c.compiled)),
        (None, Some(s)) => Some((&s.stages, &s.confinement, s.compiled)),
        (None, None) => None,
    };
    if let Some((stages, applied, compiled)) = known {
        report.stages = stages.clone();
        report.confinement = applied.as_ref().map(|a| confinement::report(a, &cgroup_status, shared_network));
        if compiled {
            report.compile_ms = stages.compile;
            if report.cache == CacheUse::Hit {
                report.cache = CacheUse::Miss; // the cached artifact was damaged
            }
        } else {
            report.load_ms = stages.compile;
        }
    }
    if let Some(c) = child {
        report.stdout_bytes = c.stdout_bytes;
        report.stderr_bytes = c.stderr_bytes;
        report.memory_grow_refused = c.memory_grow_refused;
        // Only a run that counted has a count to report.
        report.instructions = c.instructions.filter(|_| limits.instructions.is_some());
    }
    report
}

#[cfg(test)]
mod tests {
    use super::report::{Applied, ChildOutcome, Stages};
    use super::*;
    use std::time::Duration;

    fn applied(uid: u32) -> Applied {
        Applied {
            namespaces: vec!["user".into()],
            uid,
            gid: uid,
            empty_root: true,
            landlock: "abi 6".into(),
            seccomp: true,
            no_new_privs: true,
            capabilities_dropped: true,
            rlimits: Default::default(),
            in_cgroup: false,
            open_fds: vec![0, 1, 2],
        }
    }

    fn facts(wall_timeout: bool) -> Facts {
        let status = if wall_timeout { watch::ExitStatus::Signaled(9) } else { watch::ExitStatus::Reported };
        Facts {
            exit: watch::ChildExit {
                status,
                wall_timeout,
                cpu_timeout: false,
                cancelled: false,
                wall_time: Duration::from_millis(5),
                cpu_time: Duration::from_millis(1),
                peak_rss_bytes: 1 << 20,
            },
            observed: Default::default(),
            cgroup: Err("none here".into()),
            shared_network: false,
            cache_use: CacheUse::Miss,
            sha: String::new(),
        }
    }

    /// A guest that took over its process may write any final report: the confinement it
    /// claims and whether it says it compiled never outrank what the child said before the
    /// first guest instruction; the final report's stages and counts are still used.
    #[test]
    fn what_the_child_said_before_guest_code_outranks_a_forged_report() {
        let started = ChildStarted {
            compiled: false,
            stages: Stages { load: 0.5, ..Stages::default() },
            confinement: Some(applied(65534)),
        };
        let forged = ChildReport {
            outcome: ChildOutcome::Exited { code: 0 },
            compiled: true,
            stages: Stages { load: 0.5, compile: 9.0, execute: 1.0, ..Stages::default() },
            stdout_bytes: 3,
            stderr_bytes: 0,
            memory_grow_refused: false,
            instructions: None,
            confinement: Some(applied(0)),
        };
        let limits = policy::Limits::default();
        let r = report_of(facts(false), Some(&started), Some(&forged), &limits);
        assert_eq!(r.confinement.as_ref().map(|c| c.uid), Some(65534));
        assert_eq!((r.compile_ms, r.load_ms), (0.0, 9.0), "not compiled, as said before guest code");
        assert_eq!((r.stages.execute, r.stdout_bytes), (1.0, 3));
        // Killed before its report: what it said first is all there is.
        let r = report_of(facts(true), Some(&started), None, &limits);
        assert_eq!(r.confinement.as_ref().map(|c| c.uid), Some(65534));
        assert_eq!(r.stages.load, 0.5);
        // Ended before guest code: the final report alone.
        let r = report_of(facts(false), None, Some(&forged), &limits);
        assert_eq!(r.confinement.as_ref().map(|c| c.uid), Some(0));
    }
}
