//! The worker's loop: pull a job when a slot is free, fetch its inputs, run it off the
//! runtime while in-progress acks keep its delivery alive, publish its result, and only then
//! ack it. Exactly once in effect:
//!
//! - a result is stored under the job's id before the job is acked, and a redelivered job
//!   whose result is stored is answered from the store, not run again;
//! - a worker that dies mid-job stops sending in-progress acks: the job is delivered again
//!   after the ack deadline, to whichever worker pulls;
//! - a judge-side failure is NAKed with a delay, never reported as the submission's fault;
//! - the delivery numbered `max_deliver` (the last the queue makes) is not run: it is
//!   reported as a judge error and terminated.
//!
//! On SIGTERM or SIGINT the loop stops pulling, lets the jobs in flight finish for the grace
//! period, NAKs those still running, and returns.

use super::blobs::{BlobCache, FetchError};
use super::execute::{Answer, Attempt, JobRunner};
use super::job::{Job, JobResult, Outcome, Work, EXIT_NOT_RUN};
use super::metrics::{Failure, Metrics};
use super::transport::{Delivery, JobQueue, Store};
use crate::errln;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// What the loop needs, shared by the jobs in flight.
pub struct Context<Q, S> {
    /// The queue.
    pub queue: Q,
    /// The blob store.
    pub store: S,
    /// Its copy on this machine.
    pub blobs: BlobCache,
    /// The runs.
    pub runner: JobRunner,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// This worker's identity in results.
    pub name: String,
    /// How long a NAKed job waits before it is delivered again.
    pub nak_delay: Duration,
}

/// Runs the loop with `jobs` jobs at once until `shutdown` turns true, then waits up to
/// `grace` for the jobs in flight (NAKing those still running).
pub async fn work<Q: JobQueue, S: Store>(
    ctx: Arc<Context<Q, S>>,
    jobs: usize,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let slots = Arc::new(Semaphore::new(jobs.max(1)));
    let (abandon, abandoned) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            _ = shutdown.changed() => break,
        };
        let Ok(permit) = permit else { break };
        if *shutdown.borrow() {
            break;
        }
        // Not cancelled on shutdown: a pull in flight may still hand over a job, NAKed below.
        match ctx.queue.pull(Duration::from_secs(1)).await {
            Ok(Some(delivery)) if *shutdown.borrow() => {
                let _ = ctx.queue.nak(&delivery, Duration::ZERO).await;
                break;
            }
            Ok(Some(delivery)) => {
                let (ctx, abandoned) = (ctx.clone(), abandoned.clone());
                tasks.spawn(async move {
                    ctx.metrics.in_flight(true);
                    handle(&ctx, delivery, abandoned).await;
                    ctx.metrics.in_flight(false);
                    drop(permit);
                });
            }
            // Nothing came within the wait: nothing is waiting.
            Ok(None) => ctx.metrics.set_queue_lag(0),
            Err(e) => {
                errln!("sandboxrun: worker: {e}");
                ctx.metrics.failed(Failure::Transport);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        while tasks.try_join_next().is_some() {}
    }
    if !tasks.is_empty() {
        errln!("sandboxrun: worker: stopping: {} job(s) in flight, {} s to finish", tasks.len(), grace.as_secs());
    }
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = tasks.join_next() => if next.is_none() { break },
            () = &mut deadline => {
                let _ = abandon.send(true);
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
}

/// One delivery, from its bytes to its ack (or NAK, or term).
async fn handle<Q: JobQueue, S: Store>(
    ctx: &Arc<Context<Q, S>>,
    delivery: Delivery,
    mut abandoned: watch::Receiver<bool>,
) {
    let (queue, metrics) = (&ctx.queue, &ctx.metrics);
    metrics.set_queue_lag(delivery.pending);
    let job = match Job::parse(&delivery.payload, &queue.results_prefix()) {
        Ok(j) => j,
        Err(e) => {
            // No trustworthy subject to answer on: dropped, and said so here.
            errln!("sandboxrun: worker: a job dropped: {}", crate::cli::output::escape(&e.to_string()));
            metrics.failed(Failure::Malformed);
            let _ = queue.term(&delivery).await;
            return;
        }
    };
    match queue.stored_result(&job.id).await {
        Ok(Some(stored)) => {
            // An earlier attempt answered; its worker died before its ack.
            if publish_and_ack(ctx, &delivery, &job, &stored).await {
                metrics.replayed();
            }
            return;
        }
        Ok(None) => {}
        Err(e) => return retry(ctx, &delivery, &e.to_string()).await,
    }
    if delivery.attempt >= queue.max_deliver() {
        let why = format!(
            "given up after {} attempt(s): each failed judge-side or its worker died",
            delivery.attempt.saturating_sub(1)
        );
        errln!("sandboxrun: worker: job {}: {why}", job.id);
        let result = JobResult {
            job_id: job.id.clone(),
            worker: ctx.name.clone(),
            kind: job.kind(),
            outcome: Outcome::JudgeError,
            exit_status: EXIT_NOT_RUN,
            attempt: delivery.attempt,
            report: None,
            grade: None,
            stdout_base64: None,
            stderr_base64: None,
            error: Some(why),
        };
        let bytes = serde_json::to_vec(&result).unwrap_or_default();
        match queue.publish_result(&job.reply, &job.id, &bytes).await {
            Ok(()) => {
                metrics.failed(Failure::Terminated);
                let _ = queue.term(&delivery).await;
            }
            Err(e) => retry(ctx, &delivery, &e.to_string()).await,
        }
        return;
    }
    let attempt = attempt(ctx, &job);
    tokio::pin!(attempt);
    let period = (queue.ack_wait() / 3).max(Duration::from_millis(100));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let attempt = loop {
        tokio::select! {
            a = &mut attempt => break Some(a),
            _ = beat.tick() => {
                if let Err(e) = queue.in_progress(&delivery).await {
                    errln!("sandboxrun: worker: job {}: {e}", job.id);
                }
            }
            Ok(()) = abandoned.changed() => break None,
        }
    };
    match attempt {
        None => {
            errln!("sandboxrun: worker: job {}: still running at shutdown: handed back", job.id);
            let _ = queue.nak(&delivery, Duration::ZERO).await;
        }
        Some(Attempt::JudgeSide(why)) => {
            metrics.failed(Failure::Judge);
            retry(ctx, &delivery, &format!("job {}: {why}", job.id)).await;
        }
        Some(Attempt::Answer(answer)) => {
            let result = answer.into_result(&job.id, &ctx.name, job.kind(), delivery.attempt);
            if result.outcome == Outcome::Refused {
                metrics.failed(Failure::Refused);
            }
            let bytes = serde_json::to_vec(&result).unwrap_or_default();
            if publish_and_ack(ctx, &delivery, &job, &bytes).await && result.outcome == Outcome::Done {
                metrics.done(matches!(job.work, Work::Grade(_)));
            }
        }
    }
}

/// A judge-side failure: said here, and the job delivered again after the NAK delay.
async fn retry<Q: JobQueue, S: Store>(ctx: &Context<Q, S>, delivery: &Delivery, why: &str) {
    errln!("sandboxrun: worker: {why} (attempt {}; retried in {:?})", delivery.attempt, ctx.nak_delay);
    if let Err(e) = ctx.queue.nak(delivery, ctx.nak_delay).await {
        errln!("sandboxrun: worker: {e}");
        ctx.metrics.failed(Failure::Transport);
    }
}

/// Publishes `result`, then acks: `false` if it could not be published (the job is NAKed).
async fn publish_and_ack<Q: JobQueue, S: Store>(
    ctx: &Context<Q, S>,
    delivery: &Delivery,
    job: &Job,
    result: &[u8],
) -> bool {
    if let Err(e) = ctx.queue.publish_result(&job.reply, &job.id, result).await {
        ctx.metrics.failed(Failure::Transport);
        retry(ctx, delivery, &format!("job {}: {e}", job.id)).await;
        return false;
    }
    if let Err(e) = ctx.queue.ack(delivery).await {
        // Its result is stored: a redelivery answers from it.
        errln!("sandboxrun: worker: job {}: {e}", job.id);
        ctx.metrics.failed(Failure::Transport);
    }
    true
}

/// Fetches a job's inputs and runs it off the runtime.
async fn attempt<Q: JobQueue, S: Store>(ctx: &Arc<Context<Q, S>>, job: &Job) -> Attempt {
    let fetch = |sha: String| async move {
        ctx.blobs.fetch(&ctx.store, &sha).await.map_err(|e| match e {
            e if e.is_judge_side() => Attempt::JudgeSide(e.to_string()),
            e => Attempt::Answer(Answer::refused(e)),
        })
    };
    match &job.work {
        Work::Run(work) => {
            let module = match fetch(work.module.clone()).await {
                Ok(m) => m,
                Err(a) => return a,
            };
            let work = work.clone();
            blocking(ctx, move |c| c.runner.run(&work, &module)).await
        }
        Work::Grade(work) => {
            let (tar, submission) = match (fetch(work.problem.clone()).await, fetch(work.submission.clone()).await) {
                (Ok(t), Ok(s)) => (t, s),
                (Err(a), _) | (_, Err(a)) => return a,
            };
            let work = work.clone();
            blocking(ctx, move |c| match c.blobs.unpack(&tar, &work.problem) {
                Ok(problem) => c.runner.grade(&work, &problem, &submission),
                Err(e @ FetchError::Package { .. }) => Attempt::Answer(Answer::refused(e)),
                Err(e) => Attempt::JudgeSide(e.to_string()),
            })
            .await
        }
    }
}

/// Runs `f` on a blocking thread with the context.
async fn blocking<Q: JobQueue, S: Store>(
    ctx: &Arc<Context<Q, S>>,
    f: impl FnOnce(&Context<Q, S>) -> Attempt + Send + 'static,
) -> Attempt {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || f(&ctx))
        .await
        .unwrap_or_else(|e| Attempt::JudgeSide(format!("the job's thread: {e}")))
}
