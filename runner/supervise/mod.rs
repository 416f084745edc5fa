//! The parent's side of `sandboxrun app.wasm`: prepare, fork the child that runs the
//! module, supervise it, and turn what happened into a report and an exit status.

pub mod report;
pub mod verdict;
pub mod watch;


use crate::child::{self, RunFds, RunSpec};
use crate::plan::confinement;
use crate::server::prepared::PreparedChild;
use crate::supervise::report::{CacheUse, ChildReport, Report};
use watch::Release;
use verdict::Verdict;
use cache::{CacheKey, CodeCache};
use engine::{Config, Engine};
use policy::Policy;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Everything the parent needs to run a module.
pub struct Run {
    /// The policy, overrides applied.
    pub policy: Policy,
    /// The module file's bytes.
    pub module: Vec<u8>,
    /// argv[0].
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
}

/// A code cache opened before the run was known; used if the run's cache is the same file.
pub struct OpenCache {
    db: CodeCache,
    location: (PathBuf, u64),
    file: (u64, u64),
}

impl OpenCache {
    /// Opens the cache at `location` if its file exists (a run creates a missing one).
    pub fn open(location: (PathBuf, u64)) -> Option<OpenCache> {
        let file = file_identity(&location.0)?;
        let db = CodeCache::open(&location.0, location.1).ok()?;
        Some(OpenCache { db, location, file })
    }

    /// The open cache, if `location` names it and its file was not replaced since.
    fn take_for(this: Option<OpenCache>, location: &(PathBuf, u64)) -> Option<CodeCache> {
        this.filter(|c| c.location == *location && file_identity(&location.0) == Some(c.file)).map(|c| c.db)
    }
}

/// A file's device and inode.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The cache as this run uses it. The parent alone opens the database, after the fork: the
/// child never holds a descriptor of it.
struct Cache {
    db: CodeCache,
    key: CacheKey,
}

/// The report's name for the network namespace a server's runs share.
pub const SHARED_NETWORK: &str = "network (shared, empty)";

/// How long recording a hit may wait for another process's write: it happens while the run
/// is under way, and must not delay the supervisor.
const TOUCH_PATIENCE: Duration = Duration::from_millis(20);

/// How long a lookup may wait for another process's write (`sandboxrun cache gc`, a store):
/// past it the run compiles without the cache.
const LOOKUP_PATIENCE: Duration = Duration::from_millis(500);

/// Opens the cache and looks the module up. Any cache failure is one warning line and the
/// run continues without the cache.
fn lookup(
    location: &Option<(PathBuf, u64)>,
    open: Option<OpenCache>,
    sha: &[u8; 32],
    identity: &str,
) -> (Option<Cache>, Option<Vec<u8>>) {
    let Some(location) = location else { return (None, None) };
    let warn = |e: &dyn std::fmt::Display| crate::errln!("sandboxrun: warning: {e}; running without the code cache");
    let db = match OpenCache::take_for(open, location)
        .map_or_else(|| CodeCache::open_within(&location.0, location.1, LOOKUP_PATIENCE), Ok)
    {
        Ok(db) => db,
        Err(e) => {
            warn(&e);
            return (None, None);
        }
    };
    let key = CacheKey::new(sha, identity);
    match db.get_within(&key, LOOKUP_PATIENCE) {
        Ok(artifact) => (Some(Cache { db, key }), artifact),
        Err(e) => {
            warn(&e);
            (None, None)
        }
    }
}

/// Stores code the child compiled and sent back: only a well-formed artifact of this engine's
/// identity (the child cannot write the cache itself). A failure costs only the cache entry.
fn store(cache: &Cache, identity: &str, artifact: &[u8]) {
    let fits = engine::artifact::Artifact::from_bytes(artifact).is_ok_and(|a| a.identity() == identity);
    if !fits {
        return;
    }
    if let Err(e) = cache.db.put(&cache.key, artifact) {
        crate::errln!("sandboxrun: warning: {e}; the compiled code was not cached");
    }
}

/// The most compiled code a child may send back for a module of `module_len` bytes: far above
/// what the compiler makes (two to four times the module), far below the host's memory.
fn artifact_limit(module_len: usize) -> usize {
    module_len.saturating_mul(16).max(64 << 20)
}

/// Whether code sent back is stored: only when it was asked for. On a miss the child sends it
/// and closes the pipe before any guest code runs. On a hit it closes the pipe unused, also
/// before any guest code — unless the cached artifact failed to load and it compiled afresh
/// (`compiled`), which replaces the damaged row.
fn wanted_back(cache: CacheUse, compiled: bool) -> bool {
    match cache {
        CacheUse::Miss => true,
        CacheUse::Hit => compiled,
        CacheUse::Disabled => false,
    }
}

/// Answers the child on the code channel; a failure only costs the cache.
fn answer(sender: &mut crate::channels::code::Sender, answer: crate::channels::code::Answer<'_>) {
    match sender.answer(answer) {
        // A broken pipe: the child ended before asking (its report says why).
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        // The child reads end of file and compiles.
        Err(e) => crate::errln!("sandboxrun: warning: failed to pass the cached code to the run: {e}"),
    }
}

fn hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the module in a forked child and reports.
///
/// Order: everything the child needs from the parent is made before the fork, or before the
/// handover to a prepared child (the pipes, the run's files, the confinement, the seccomp
/// filter, the cgroup, the code channel); then, while the child confines itself, the parent
/// hashes the module and looks it up in the code cache, and answers through the code channel;
/// then it supervises, and answers once the child has reported (see [`watch::wait`]).
///
/// Returns the report, and the child if it still waits after reporting: drop it to let it
/// end (a process about to exit need not wait for that), or [`Release::reap`] it.
pub fn run(run: Run, start: Start) -> (Report, Option<Release>) {
    let mut release = None;
    let report = supervise(run, start, &mut release);
    (report, release)
}

fn supervise(run: Run, start: Start, release_out: &mut Option<Release>) -> Report {
    let base = |verdict, module_sha256: String, cache: CacheUse| Report {
        verdict,
        cpu_time_ms: 0,
        wall_time_ms: 0,
        peak_memory_bytes: 0,
        stdout_bytes: 0,
        stderr_bytes: 0,
        module_sha256,
        cache,
        compile_ms: 0.0,
        load_ms: 0.0,
        stages: Default::default(),
        confinement: None,
    };
    // A run that never starts: its report still names the module.
    let failed = |module: &[u8], message: String| {
        let digest: [u8; 32] = Sha256::digest(module).into();
        base(Verdict::error(message), hex(&digest), CacheUse::Disabled)
    };
    // The report pipe (close-on-exec, like every descriptor made here).
    let (read_end, write_end) = match std::io::pipe() {
        Ok((r, w)) => (OwnedFd::from(r), OwnedFd::from(w)),
        Err(e) => return failed(&run.module, format!("failed to create a pipe: {e}")),
    };
    // The child waits on it after reporting, until the supervisor has answered.
    let (release_read, release_write) = match std::io::pipe() {
        Ok((r, w)) => (OwnedFd::from(r), OwnedFd::from(w)),
        Err(e) => return failed(&run.module, format!("failed to create a pipe: {e}")),
    };
    let (mut code_sender, code_receiver) = match crate::channels::code::channel() {
        Ok(c) => c,
        Err(e) => return failed(&run.module, format!("failed to create the code channel: {e}")),
    };
    let limits = run.policy.limits;
    // Built before forking: the child only applies them.
    let confinement = confinement::for_policy(&run.policy);
    // The child, confined to an empty root, reaches the host only through these.
    let fds = match RunFds::open(&run.policy) {
        Ok(f) => f,
        Err(e) => return failed(&run.module, e),
    };
    let (prepared, open_cache, cgroups) = match start {
        Start::Spawn => (None, None, None),
        Start::Prepared(ahead) => {
            let Ahead { child, cache, cgroups } = *ahead;
            (Some(child), cache, Some(cgroups))
        }
    };
    let cgroup_name = format!("sandboxrun-{}", std::process::id());
    let cgroup_limits = confinement::cgroup_limits(&run.policy);
    let cgroup = match cgroups {
        None => sandbox::Cgroup::create(&cgroup_name, &cgroup_limits).map_err(|e| e.to_string()),
        Some(Ok(parent)) => parent.create(&cgroup_name, &cgroup_limits).map_err(|e| e.to_string()),
        Some(Err(reason)) => Err(reason),
    };
    let (cgroup, cgroup_status) = match cgroup {
        Ok(c) => (Some(c), "v2".to_string()),
        Err(e) => (None, format!("none: {e}")),
    };
    let mut spec = RunSpec::new(&run.policy, run.module, run.argv0, run.args, run.invoke);
    spec.compile_only = run.compile_only;
    // A prepared child made for another identity cannot serve: one is spawned for the run.
    let prepared = match prepared {
        Some(unfit) if !unfit.fits(&confinement) => {
            unfit.discard();
            None
        }
        fit => fit,
    };
    let shared_network = prepared.as_ref().is_some_and(PreparedChild::shares_network);
    // The namespaces of a prepared child, kept open past its end (see `hand_over`).
    let mut namespaces = Vec::new();
    // What the child holds of this process; the parent's copies close once it has them (else
    // it would never see end of file on the pipes the child writes).
    let ends = child::ChildEnds { fds, code: code_receiver, report: write_end, release: release_read };
    let spawned = match prepared {
        Some(prepared) => prepared.hand_over(&spec, ends, cgroup.as_ref()).map(|(child, held)| {
            namespaces = held;
            child
        }),
        None => {
            let Some(arch) = sandbox::Arch::native() else {
                return failed(&spec.module, "no seccomp filter for this architecture".into());
            };
            let filter = match sandbox::compile_filter(arch, Some(sandbox::PID_IN_NAMESPACE)) {
                Ok(f) => f,
                Err(e) => return failed(&spec.module, e.to_string()),
            };
            // The code the child's engine will generate (same configuration, same machine).
            // Asked before forking: the child inherits the answer instead of asking the CPU.
            Engine::cache_identity(&Config::default());
            let child = || {
                crate::child::oom::mark_child();
                child::main(&spec, ends, None, &confinement, &filter)
            };
            // SAFETY: the CLI is single-threaded here (compilation threads start in the child).
            unsafe { sandbox::spawn(&confinement, cgroup.as_ref(), child) }.map_err(|e| e.to_string())
        }
    };
    let spawned = match spawned {
        Ok(c) => c,
        Err(e) => return failed(&spec.module, format!("failed to start the run: {e}")),
    };
    let module = &spec.module;
    let identity = Engine::cache_identity(&Config::default());

    // While the child confines itself.
    let digest: [u8; 32] = Sha256::digest(module).into();
    let sha = hex(&digest);
    // No database yet: certainly a miss. The child compiles while the parent creates it
    // (2 ms, with its syncs), instead of waiting for that.
    let fresh = run.cache.as_ref().is_some_and(|(path, _)| !path.exists());
    if fresh {
        answer(&mut code_sender, crate::channels::code::Answer::Miss);
    }
    let (cache, cached) = lookup(&run.cache, open_cache, &digest, &identity);
    let (cache_status, found) = match (&cache, &cached) {
        (None, _) => (CacheUse::Disabled, crate::channels::code::Answer::NoCache),
        (Some(_), Some(artifact)) => (CacheUse::Hit, crate::channels::code::Answer::Hit(artifact)),
        (Some(_), None) => (CacheUse::Miss, crate::channels::code::Answer::Miss),
    };
    if !fresh {
        answer(&mut code_sender, found);
    }
    drop(cached);
    if let (Some(c), CacheUse::Hit) = (&cache, cache_status) {
        // While the run starts: the bookkeeping of a hit is off its critical path.
        c.db.touch(&c.key, TOUCH_PATIENCE);
    }
    let returned = code_sender.returned();
    // The wall clock starts once the child has all it needs of the supervisor: waiting for
    // the cache (another process may hold its lock) is not the run's time.
    let started = Instant::now();
    let code_limit = artifact_limit(module.len());
    // The report is a few kilobytes in practice; its frame's bound (1 MiB) is the most a guest
    // that took over its process can make the supervisor hold: more is a protocol violation.
    let mut pipes = vec![watch::Inbound::for_message::<ChildReport>(read_end, "report")];
    let mut store_after = None;
    let mut storing = None;
    match cache {
        Some(c) if cache_status == CacheUse::Miss => {
            // The child sends the code it compiled, and closes the pipe, before any guest
            // code runs: a second thread stores it (a store syncs the disk, 1-2 ms) while the
            // run goes on, instead of after it. The thread reads a duplicate of the pipe: if
            // it cannot start, the pipe is still drained beside the report (a child writing
            // to a closed pipe would get SIGPIPE), only the cache entry is lost.
            let identity = identity.clone();
            let spawned = returned.try_clone().and_then(|thread_end| {
                std::thread::Builder::new().name("cache-store".into()).spawn(move || {
                    let mut artifact = Vec::new();
                    let limit = code_limit as u64 + 1;
                    let read = File::from(thread_end).take(limit).read_to_end(&mut artifact);
                    if read.is_ok() && artifact.len() <= code_limit {
                        store(&c, &identity, &artifact);
                    }
                })
            });
            match spawned {
                Ok(handle) => storing = Some(handle),
                Err(e) => {
                    crate::errln!("sandboxrun: warning: {e}; the compiled code will not be cached");
                    pipes.push(watch::Inbound::new(returned, code_limit, "compiled code"));
                }
            }
        }
        // After a hit, code comes back only if the cached artifact was damaged (rare): read
        // beside the report, stored after the run if the report says so.
        c => {
            pipes.push(watch::Inbound::new(returned, code_limit, "compiled code"));
            store_after = c;
        }
    }
    let reported = |report: &[u8]| protocol::decode_untrusted::<ChildReport>(report).is_ok();
    let watch = watch::Watch {
        started,
        wall_limit: limits.wall_time,
        cpu_limit: limits.cpu_time,
        cancel: run.cancel.as_ref().map(AsFd::as_fd),
    };
    let waited = watch::wait(spawned.pid(), &watch, &mut pipes, &reported, release_write);
    let exit = match waited {
        Ok((exit, release)) => {
            *release_out = release.map(|mut r| {
                r.keep(std::mem::take(&mut namespaces));
                r
            });
            exit
        }
        Err(e) => return base(Verdict::error(format!("failed to wait for the run: {e}")), sha, cache_status),
    };

    let child_report = protocol::decode_untrusted::<ChildReport>(&pipes[0].bytes).ok();
    let compiled = child_report.as_ref().is_some_and(|c| c.compiled);
    if let (Some(c), Some(back)) = (&store_after, pipes.get(1)) {
        if wanted_back(cache_status, compiled) {
            store(c, &identity, &back.bytes);
        }
    }
    if let Some(handle) = storing {
        let _ = handle.join();
    }

    let mut observed =
        verdict::Observed { syscall: spawned.violation().map(|v| v.to_string()), ..verdict::Observed::default() };
    let mut peak_memory_bytes = exit.peak_rss_bytes;
    if let Some(cgroup) = cgroup {
        if let Ok(Some(peak)) = cgroup.memory_peak() {
            peak_memory_bytes = peak;
        }
        observed.oom_kills = cgroup.oom_kills().ok().flatten().unwrap_or(0);
        if let Err(e) = cgroup.remove() {
            crate::errln!("sandboxrun: warning: {e}");
        }
    }
    let outcome = child_report.as_ref().map(|c| c.outcome.clone());
    let mut report = base(verdict::decide(&exit, outcome, &limits, &observed), sha, cache_status);
    report.cpu_time_ms = exit.cpu_time.as_millis() as u64;
    report.wall_time_ms = exit.wall_time.as_millis() as u64;
    report.peak_memory_bytes = peak_memory_bytes;
    if let Some(c) = &child_report {
        report.stages = c.stages.clone();
        report.confinement = c.confinement.clone();
        if let Some(conf) = report.confinement.as_mut() {
            if conf.cgroup == "none" {
                conf.cgroup = cgroup_status;
            }
            if shared_network {
                // Where a network namespace of its own would be listed.
                let at = conf.namespaces.iter().position(|n| n == "ipc").unwrap_or(conf.namespaces.len());
                conf.namespaces.insert(at, SHARED_NETWORK.into());
            }
        }
        if c.compiled {
            report.compile_ms = c.stages.compile;
            if report.cache == CacheUse::Hit {
                report.cache = CacheUse::Miss; // the cached artifact was damaged
            }
        } else {
            report.load_ms = c.stages.compile;
        }
        report.stdout_bytes = c.stdout_bytes;
        report.stderr_bytes = c.stderr_bytes;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_sent_back_is_stored_only_where_it_was_asked_for() {
        assert!(wanted_back(CacheUse::Miss, true));
        // A hit's child closes the pipe unused before any guest code: whatever arrives is not
        // the compiler's (a guest that took over its process), unless it compiled afresh.
        assert!(!wanted_back(CacheUse::Hit, false));
        assert!(wanted_back(CacheUse::Hit, true));
        assert!(!wanted_back(CacheUse::Disabled, true));
    }

    #[test]
    fn the_artifact_bound_is_generous_and_finite() {
        assert_eq!(artifact_limit(0), 64 << 20);
        assert_eq!(artifact_limit(10 << 20), 160 << 20);
        assert_eq!(artifact_limit(usize::MAX), usize::MAX);
    }
}
