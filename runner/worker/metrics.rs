//! The worker's counters, as Prometheus text on `--metrics ADDR` (`GET /metrics`, or any
//! path: there is one page). Plain atomics; the page is rendered on each request.

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a job did not end in an answer, or ended in one that is not a run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A judge-side failure: NAKed, to be retried.
    Judge,
    /// Refused: a missing or wrong reference, a bad policy or package.
    Refused,
    /// Given up after the delivery bound: reported as a judge error.
    Terminated,
    /// Not a job at all: terminated without an answer.
    Malformed,
    /// The queue failed (pull, ack, publish).
    Transport,
}

const FAILURES: [(Failure, &str); 5] = [
    (Failure::Judge, "judge"),
    (Failure::Refused, "refused"),
    (Failure::Terminated, "terminated"),
    (Failure::Malformed, "malformed"),
    (Failure::Transport, "transport"),
];

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    runs_done: AtomicU64,
    grades_done: AtomicU64,
    replayed: AtomicU64,
    failures: [AtomicU64; 5],
    queue_lag: AtomicU64,
    in_flight: AtomicU64,
}

impl Metrics {
    /// A job answered (`grade`: a grade job, else a run job).
    pub fn done(&self, grade: bool) {
        let counter = if grade { &self.grades_done } else { &self.runs_done };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A redelivered job answered from its stored result, not run again.
    pub fn replayed(&self) {
        self.replayed.fetch_add(1, Ordering::Relaxed);
    }

    /// A failure of `kind`.
    pub fn failed(&self, kind: Failure) {
        if let Some(i) = FAILURES.iter().position(|(k, _)| *k == kind) {
            self.failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The jobs waiting, as the last delivery said.
    pub fn set_queue_lag(&self, pending: u64) {
        self.queue_lag.store(pending, Ordering::Relaxed);
    }

    /// One more (`true`) or one less job in flight.
    pub fn in_flight(&self, more: bool) {
        if more {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        } else {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut text = String::new();
        text.push_str("# HELP sandboxrun_worker_jobs_done_total Jobs answered, by kind.\n");
        text.push_str("# TYPE sandboxrun_worker_jobs_done_total counter\n");
        text.push_str(&format!("sandboxrun_worker_jobs_done_total{{kind=\"run\"}} {}\n", get(&self.runs_done)));
        text.push_str(&format!("sandboxrun_worker_jobs_done_total{{kind=\"grade\"}} {}\n", get(&self.grades_done)));
        text.push_str(
            "# HELP sandboxrun_worker_jobs_replayed_total Redelivered jobs answered from their stored result.\n",
        );
        text.push_str("# TYPE sandboxrun_worker_jobs_replayed_total counter\n");
        text.push_str(&format!("sandboxrun_worker_jobs_replayed_total {}\n", get(&self.replayed)));
        text.push_str("# HELP sandboxrun_worker_failures_total Failures, by kind.\n");
        text.push_str("# TYPE sandboxrun_worker_failures_total counter\n");
        for (i, (_, name)) in FAILURES.iter().enumerate() {
            text.push_str(&format!("sandboxrun_worker_failures_total{{kind=\"{name}\"}} {}\n", get(&self.failures[i])));
        }
        text.push_str("# HELP sandboxrun_worker_queue_lag Jobs waiting in the queue at the last delivery.\n");
        text.push_str("# TYPE sandboxrun_worker_queue_lag gauge\n");
        text.push_str(&format!("sandboxrun_worker_queue_lag {}\n", get(&self.queue_lag)));
        text.push_str("# HELP sandboxrun_worker_jobs_in_flight Jobs this worker is running.\n");
        text.push_str("# TYPE sandboxrun_worker_jobs_in_flight gauge\n");
        text.push_str(&format!("sandboxrun_worker_jobs_in_flight {}\n", get(&self.in_flight)));
        text
    }
}

/// Serves [`Metrics::render`] over HTTP/1.0 on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // The request itself does not matter (one page); read its head, bounded.
            let mut head = [0u8; 4096];
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), socket.read(&mut head)).await;
            let body = metrics.render();
            let response = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_counts_by_kind() {
        let m = Metrics::default();
        m.done(false);
        m.done(true);
        m.failed(Failure::Refused);
        m.set_queue_lag(7);
        let text = m.render();
        assert!(text.contains("sandboxrun_worker_jobs_done_total{kind=\"run\"} 1\n"), "{text}");
        assert!(text.contains("sandboxrun_worker_failures_total{kind=\"refused\"} 1\n"), "{text}");
        assert!(text.contains("sandboxrun_worker_failures_total{kind=\"judge\"} 0\n"), "{text}");
        assert!(text.contains("sandboxrun_worker_queue_lag 7\n"), "{text}");
    }
}
