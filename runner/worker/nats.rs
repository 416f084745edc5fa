//! [`JobQueue`] and [`Store`] on NATS JetStream (`async-nats`).
//!
//! - Jobs: a work-queue stream `NAME` on `<prefix>.jobs.*` (`prefix`: the name in lowercase),
//!   read through one durable pull consumer `workers` with explicit acks, an ack deadline
//!   (`ack_wait`) and a delivery bound (`max_deliver`). Both are created when missing; an
//!   existing consumer keeps its settings (they are read back, and the worker follows them).
//! - Acknowledgements: the JetStream ack protocol on the message's reply subject — `+ACK`
//!   (confirmed by the server), `-NAK {"delay":ns}`, `+WPI` (in progress), `+TERM`.
//! - Results: published on the job's subject (below `<prefix>.results.`), and first put in
//!   the KV bucket `NAME_results` under the job's id: that is what makes a redelivered job
//!   answered, not run again, and what `submit --wait` watches.
//! - Blobs: the object store `NAME_blobs`, one object per sha256.

use super::transport::{Delivery, JobQueue, Store, TransportError};
use async_nats::jetstream::{self, consumer::pull, kv, object_store, stream};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The largest blob read from the store.
pub const MAX_BLOB: u64 = 512 << 20;

/// The durable consumer's name.
pub const CONSUMER: &str = "workers";

/// How a queue is set up when it is created here.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// The stream's name (`[A-Za-z0-9_-]`).
    pub stream: String,
    /// The consumer's ack deadline.
    pub ack_wait: Duration,
    /// The consumer's delivery bound (at least 2).
    pub max_deliver: u64,
}

/// A connection to a NATS server with JetStream.
pub struct NatsQueue {
    client: async_nats::Client,
    js: jetstream::Context,
    /// The pull consumer (a worker's; `None` for a submitter).
    consumer: Option<jetstream::consumer::Consumer<pull::Config>>,
    results: kv::Store,
    prefix: String,
    ack_wait: Duration,
    max_deliver: u64,
}

/// The blob store of a [`NatsQueue`]'s stream.
pub struct NatsStore {
    objects: object_store::ObjectStore,
}

fn setup(what: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Setup { what: what.into(), message: e.to_string() }
}

/// Connects to `url` and makes sure the stream, its buckets and (for a worker) its consumer
/// exist; returns the queue and its blob store.
///
/// # Errors
/// No server, no JetStream, or a stream, bucket or consumer that cannot be created.
pub async fn connect(
    url: &str,
    settings: &QueueSettings,
    worker: bool,
) -> Result<(NatsQueue, NatsStore), TransportError> {
    let client = async_nats::ConnectOptions::new()
        .name(if worker { "sandboxrun worker" } else { "sandboxrun submit" })
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| TransportError::Connect { url: url.into(), message: e.to_string() })?;
    let js = jetstream::new(client.clone());
    let name = &settings.stream;
    let prefix = name.to_lowercase();
    let stream = js
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![format!("{prefix}.jobs.*")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| setup(&format!("stream {name}"), e))?;
    let (mut ack_wait, mut max_deliver) = (settings.ack_wait, settings.max_deliver);
    let consumer = if worker {
        let mut consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                CONSUMER,
                pull::Config {
                    durable_name: Some(CONSUMER.into()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait,
                    max_deliver: i64::try_from(max_deliver).unwrap_or(i64::MAX),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| setup(&format!("consumer {CONSUMER} of {name}"), e))?;
        let info = consumer.info().await.map_err(|e| setup(&format!("consumer {CONSUMER} of {name}"), e))?;
        ack_wait = info.config.ack_wait;
        max_deliver = u64::try_from(info.config.max_deliver).unwrap_or(0);
        if max_deliver < 2 {
            return Err(setup(
                &format!("consumer {CONSUMER} of {name}"),
                format!("its max_deliver is {max_deliver}: the worker needs at least 2 (one run, one report)"),
            ));
        }
        Some(consumer)
    } else {
        None
    };
    let bucket = format!("{name}_results");
    // The bucket's stream as `create_key_value` would make it (which first asks for the
    // account's limits in a form servers before 2.10 do not answer).
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| setup(&format!("bucket {bucket}"), e))?;
    let results = js.get_key_value(&bucket).await.map_err(|e| setup(&format!("bucket {bucket}"), e))?;
    let bucket = format!("{name}_blobs");
    let objects = match js.get_object_store(&bucket).await {
        Ok(o) => o,
        Err(_) => js
            .create_object_store(object_store::Config { bucket: bucket.clone(), ..Default::default() })
            .await
            .map_err(|e| setup(&format!("object store {bucket}"), e))?,
    };
    let queue = NatsQueue { client, js, consumer, results, prefix, ack_wait, max_deliver };
    Ok((queue, NatsStore { objects }))
}

impl NatsQueue {
    async fn reply(&self, delivery: &Delivery, body: String, action: &str) -> Result<(), TransportError> {
        self.client.publish(delivery.token.clone(), body.into()).await.map_err(|e| TransportError::io(action, e))?;
        self.client.flush().await.map_err(|e| TransportError::io(action, e))
    }
}

impl JobQueue for NatsQueue {
    async fn pull(&self, wait: Duration) -> Result<Option<Delivery>, TransportError> {
        let Some(consumer) = &self.consumer else {
            return Err(TransportError::io("pull a job", "not a worker's connection"));
        };
        let mut batch = consumer
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| TransportError::io("pull a job", e))?;
        let Some(message) = batch.next().await else { return Ok(None) };
        let message = message.map_err(|e| TransportError::io("pull a job", e))?;
        let info = message.info().map_err(|e| TransportError::io("read a job's delivery", e))?;
        let (attempt, pending) = (u64::try_from(info.delivered).unwrap_or(1), info.pending);
        let token = message.reply.as_ref().map(|r| r.to_string()).unwrap_or_default();
        Ok(Some(Delivery { payload: message.payload.to_vec(), attempt, pending, token }))
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), TransportError> {
        // Confirmed: the server answers an ack sent as a request once it has recorded it.
        let ask = self.client.request(delivery.token.clone(), "+ACK".into());
        match tokio::time::timeout(Duration::from_secs(5), ask).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(TransportError::io("ack a job", e)),
            Err(_) => Err(TransportError::io("ack a job", "no confirmation within 5 s")),
        }
    }

    async fn nak(&self, delivery: &Delivery, delay: Duration) -> Result<(), TransportError> {
        let body = if delay.is_zero() { "-NAK".into() } else { format!("-NAK {{\"delay\":{}}}", delay.as_nanos()) };
        self.reply(delivery, body, "nak a job").await
    }

    async fn in_progress(&self, delivery: &Delivery) -> Result<(), TransportError> {
        self.reply(delivery, "+WPI".into(), "mark a job in progress").await
    }

    async fn term(&self, delivery: &Delivery) -> Result<(), TransportError> {
        self.reply(delivery, "+TERM".into(), "terminate a job").await
    }

    async fn publish_result(&self, subject: &str, job_id: &str, result: &[u8]) -> Result<(), TransportError> {
        self.results
            .put(job_id, result.to_vec().into())
            .await
            .map_err(|e| TransportError::io(format!("store the result of {job_id}"), e))?;
        self.client
            .publish(subject.to_string(), result.to_vec().into())
            .await
            .map_err(|e| TransportError::io(format!("publish to {subject}"), e))?;
        self.client.flush().await.map_err(|e| TransportError::io(format!("publish to {subject}"), e))
    }

    async fn stored_result(&self, job_id: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match self.results.get(job_id).await {
            Ok(v) => Ok(v.map(|b| b.to_vec())),
            Err(e) => Err(TransportError::io(format!("read the result of {job_id}"), e)),
        }
    }

    async fn enqueue(&self, kind: &str, job_id: &str, job: &[u8]) -> Result<(), TransportError> {
        let subject = format!("{}.jobs.{kind}", self.prefix);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, job_id);
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, job.to_vec().into())
            .await
            .map_err(|e| TransportError::io(format!("enqueue on {subject}"), e))?;
        ack.await.map_err(|e| TransportError::io(format!("enqueue on {subject}"), e))?;
        Ok(())
    }

    async fn wait_result(&self, job_id: &str, timeout: Duration) -> Result<Vec<u8>, TransportError> {
        let wait = async {
            let mut watch = self
                .results
                .watch_with_history(job_id)
                .await
                .map_err(|e| TransportError::io(format!("watch the result of {job_id}"), e))?;
            while let Some(entry) = watch.next().await {
                let entry = entry.map_err(|e| TransportError::io(format!("watch the result of {job_id}"), e))?;
                if entry.operation == kv::Operation::Put {
                    return Ok(entry.value.to_vec());
                }
            }
            Err(TransportError::io(format!("watch the result of {job_id}"), "the watch ended"))
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(TransportError::Timeout { job_id: job_id.into(), seconds: timeout.as_secs() }))
    }

    fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    fn max_deliver(&self) -> u64 {
        self.max_deliver
    }

    fn results_prefix(&self) -> String {
        format!("{}.results.", self.prefix)
    }
}

impl Store for NatsStore {
    async fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let action = || format!("get object {sha256}");
        let object = match self.objects.get(sha256).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TransportError::io(action(), e)),
        };
        let mut bytes = Vec::new();
        object.take(MAX_BLOB).read_to_end(&mut bytes).await.map_err(|e| TransportError::io(action(), e))?;
        Ok(Some(bytes))
    }

    async fn put(&self, bytes: Vec<u8>) -> Result<String, TransportError> {
        let sha256 = super::job::sha256_hex(&bytes);
        if self.objects.info(&sha256).await.is_ok() {
            return Ok(sha256);
        }
        self.objects
            .put(sha256.as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| TransportError::io(format!("put object {sha256}"), e))?;
        Ok(sha256)
    }
}
