//! `sandboxrun worker --nats URL [--stream NAME] [--jobs N] ...`: sets up what the loop
//! ([`super::daemon`]) needs — the code cache and the blob cache on disk, a local server with
//! `--jobs` prepared children, the queue, the metrics page, the signal handlers — on a tokio
//! runtime of its own, and runs it until SIGTERM or SIGINT.
//!
//! Exit status: 0 after a graceful stop, 125 when the worker could not start.

use super::blobs::{public_dir, BlobCache};
use super::daemon::{work, Context};
use super::execute::{Fault, JobRunner};
use super::metrics::{serve, Metrics};
use super::nats::{connect, QueueSettings};
use crate::cli::WorkerArgs;
use crate::errln;
use crate::grading::local_server::LocalServer;
use crate::supervise::report::EXIT_ERROR;
use std::path::PathBuf;
use std::sync::Arc;

fn fail(message: impl std::fmt::Display) -> i32 {
    errln!("sandboxrun: error: {message}");
    EXIT_ERROR
}

/// The default folder of the worker's caches: below the temporary folder, searchable by the
/// runs' identity (a problem's files are mounted into its runs).
pub fn default_cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sandboxrun-worker-{}", nix::unistd::geteuid()))
}

/// This machine's name and this process's id.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}:{}", host.trim(), std::process::id())
}

/// Runs `sandboxrun worker`; returns its exit status.
pub fn run(args: &WorkerArgs) -> i32 {
    let jobs = args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let dir = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let blobs = match BlobCache::new(&dir) {
        Ok(b) => b,
        Err(e) => return fail(format!("the worker's cache {}: {e}", dir.display())),
    };
    if std::env::var_os("SANDBOXRUN_CACHE").is_none_or(|v| v.is_empty()) {
        // The local server's runs read the code cache's location from the environment.
        std::env::set_var("SANDBOXRUN_CACHE", dir.join("code-cache.sqlite"));
    }
    let cache = crate::cli::CacheArgs::default().location(&policy::CachePolicy::default());
    let work_dir = dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work_dir);
    if let Err(e) = public_dir(&work_dir) {
        return fail(format!("the worker's folder {}: {e}", work_dir.display()));
    }
    let server = match LocalServer::start(&work_dir, jobs) {
        Ok(s) => s,
        Err(e) => return fail(format!("failed to start the worker's server: {e}")),
    };
    let runner = JobRunner::new(server, work_dir.clone(), jobs, cache, Fault::from_env());
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("the worker's runtime: {e}")),
    };
    let status = runtime.block_on(async {
        let settings = QueueSettings {
            stream: args.stream.clone(),
            ack_wait: args.ack_wait,
            max_deliver: u64::from(args.max_deliver),
        };
        let (queue, store) = match connect(&args.nats, &settings, true).await {
            Ok(q) => q,
            Err(e) => return fail(e),
        };
        let metrics = Arc::new(Metrics::default());
        if let Some(addr) = &args.metrics {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => drop(tokio::spawn(serve(listener, metrics.clone()))),
                Err(e) => return fail(format!("--metrics {addr}: {e}")),
            }
        }
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let signals = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .and_then(|t| Ok((t, tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?)));
        let (mut term, mut int) = match signals {
            Ok(s) => s,
            Err(e) => return fail(format!("the worker's signal handlers: {e}")),
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stop.send(true);
        });
        let name = args.name.clone().unwrap_or_else(default_name);
        errln!(
            "sandboxrun: worker {name}: {jobs} job(s) at once from {} on {} (ack wait {:?}, max deliver {})",
            args.stream,
            args.nats,
            queue_ack_wait(&queue),
            queue_max_deliver(&queue)
        );
        let ctx = Arc::new(Context { queue, store, blobs, runner, metrics, name, nak_delay: args.nak_delay });
        work(ctx, jobs, shutdown, args.grace).await;
        0
    });
    // Runs abandoned at shutdown still hold blocking threads: they end with the server.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    let _ = std::fs::remove_dir_all(&work_dir);
    status
}

fn queue_ack_wait(q: &super::nats::NatsQueue) -> std::time::Duration {
    super::transport::JobQueue::ack_wait(q)
}

fn queue_max_deliver(q: &super::nats::NatsQueue) -> u64 {
    super::transport::JobQueue::max_deliver(q)
}
