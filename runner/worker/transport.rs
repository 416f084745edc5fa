//! The worker's transport behind two small traits: [`JobQueue`] (jobs in, results out, and
//! the acknowledgements that make redelivery work) and [`Store`] (blobs by sha256). The
//! worker ([`super::daemon`]) and `sandboxrun submit` ([`super::submit`]) know only these;
//! NATS JetStream is [`super::nats`], and another queue (Redis Streams: `XREADGROUP`,
//! `XACK`, `XCLAIM` after an idle time, a hash for results) would be another implementation.

use std::future::Future;
use std::time::Duration;

/// One job handed to this worker: its bytes, and what the queue says about it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The job's JSON.
    pub payload: Vec<u8>,
    /// Which delivery this is: 1 the first time, more after a NAK or a missed ack deadline.
    pub attempt: u64,
    /// Jobs waiting behind it (the queue lag).
    pub pending: u64,
    /// The queue's handle for acknowledging it (NATS: the message's reply subject).
    pub token: String,
}

/// The queue failed (never a job's own fault).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The server could not be reached.
    #[error("failed to connect to {url}: {message}")]
    Connect {
        /// The server.
        url: String,
        /// Why.
        message: String,
    },
    /// A stream, consumer or bucket could not be created or found.
    #[error("failed to set up {what}: {message}")]
    Setup {
        /// Which.
        what: String,
        /// Why.
        message: String,
    },
    /// Pulling, acknowledging, publishing or storing failed.
    #[error("failed to {action}: {message}")]
    Io {
        /// What was being done.
        action: String,
        /// Why.
        message: String,
    },
    /// No result came in time.
    #[error("no result for job {job_id} within {seconds} s")]
    Timeout {
        /// The job.
        job_id: String,
        /// How long it waited.
        seconds: u64,
    },
}

impl TransportError {
    /// A failure while doing `action`.
    pub fn io(action: impl Into<String>, e: impl std::fmt::Display) -> TransportError {
        TransportError::Io { action: action.into(), message: e.to_string() }
    }
}

/// A work queue with explicit acknowledgements: a job pulled and neither acked nor termed is
/// delivered again after the queue's ack deadline, up to its delivery bound.
pub trait JobQueue: Send + Sync + 'static {
    /// Waits up to `wait` for the next job; `None` if none came.
    fn pull(&self, wait: Duration) -> impl Future<Output = Result<Option<Delivery>, TransportError>> + Send;
    /// Done with it: never delivered again.
    fn ack(&self, delivery: &Delivery) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Not done: deliver it again after `delay` (to any worker).
    fn nak(&self, delivery: &Delivery, delay: Duration) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Still working on it: the ack deadline starts over.
    fn in_progress(&self, delivery: &Delivery) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Never deliver it again (nor count it done).
    fn term(&self, delivery: &Delivery) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Publishes a job's result on `subject` and stores it under `job_id` (durably: once this
    /// returns, [`JobQueue::stored_result`] finds it).
    fn publish_result(
        &self,
        subject: &str,
        job_id: &str,
        result: &[u8],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// The result stored for `job_id`, if any.
    fn stored_result(&self, job_id: &str) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send;
    /// Enqueues a job of `kind` (`run`, `grade`) under `job_id` (a second enqueue of the same
    /// id within the queue's duplicate window is dropped).
    fn enqueue(&self, kind: &str, job_id: &str, job: &[u8]) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Waits up to `timeout` for the result stored under `job_id`.
    fn wait_result(
        &self,
        job_id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;
    /// The ack deadline: in-progress acks go out at a third of it.
    fn ack_wait(&self) -> Duration;
    /// The delivery bound: the delivery numbered this is not run but reported as a judge error.
    fn max_deliver(&self) -> u64;
    /// The subject prefix results must be published below (`<prefix>.results.`).
    fn results_prefix(&self) -> String;
}

/// Blobs (modules, problem packages, submissions) by their sha256.
pub trait Store: Send + Sync + 'static {
    /// The bytes stored under `sha256`, unchecked (the caller verifies them); `None` if there
    /// are none.
    fn get(&self, sha256: &str) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send;
    /// Stores `bytes` under their sha256 (once: an existing object is kept) and returns it.
    fn put(&self, bytes: Vec<u8>) -> impl Future<Output = Result<String, TransportError>> + Send;
}
