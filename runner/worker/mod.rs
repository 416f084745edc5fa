//! `sandboxrun worker` and `sandboxrun submit` (`docs/scale-out.md`): jobs — runs and
//! gradings — pulled from a queue by workers on many machines, each run through the same
//! machinery as the command line (a local `sandboxrun serve`), each result published under
//! the job's id, exactly once in effect.
//!
//! - [`transport`]: the queue and the blob store behind two small traits.
//! - [`nats`]: both on NATS JetStream (a work-queue stream, a durable pull consumer, an
//!   object store, a KV bucket of results).
//! - [`job`]: what a job and a result are (JSON).
//! - [`blobs`]: the worker's on-disk copy of the store, checked by hash.
//! - [`execute`]: a job's runs through the worker's server.
//! - [`daemon`]: the loop — pull, run, publish, ack; NAK, in-progress, term; shutdown.
//! - [`metrics`]: the counters as Prometheus text.
//! - [`command`] and [`submit`]: the two commands.

pub mod blobs;
pub mod command;
pub mod daemon;
pub mod execute;
pub mod job;
pub mod metrics;
pub mod nats;
pub mod submit;
pub mod transport;
