//! Spinning briefly before blocking, on both ends of the call channel.
//!
//! A call blocks twice: the host waiting for the answer, the instance waiting for the next
//! request. On an idle VM each block puts a vCPU to sleep, and waking it costs 30–40 µs —
//! more than the whole call. So after each side posts a datagram it rings a *doorbell*: it
//! bumps its own sequence word in the shared window's control area (past the payload bytes).
//! The side waiting for that datagram first watches the word for a bounded time (the `spin`
//! budget, default [`DEFAULT_SPIN`]) and only then blocks on the socket as before; once the
//! word moved, the datagram is already queued and the read returns at once.
//!
//! The words are a hint and nothing more: the socket stays the only channel, read with the
//! call's deadline. A hostile instance that writes the words at will makes the host stop
//! spinning early or spin its full budget, never read anything else or wait longer.
//!
//! CPU cost: at most `spin` per wait — for the host, on calls that take longer than `spin`;
//! for the instance, after each answer when no next request follows within `spin` (the
//! instance's spin counts as its CPU time).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The default spin budget on each side.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// The longest spin budget the builder accepts.
pub const MAX_SPIN: Duration = Duration::from_millis(1);

/// Bytes of the control area after the payload bytes: one cache line per word.
pub const CONTROL_LEN: u64 = 128;

/// A doorbell word in the control area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// Bumped by the host after each datagram it sends.
    Request,
    /// Bumped by the instance after each datagram it sends.
    Answer,
}

impl Word {
    /// Its offset in the control area.
    pub(crate) fn offset(self) -> usize {
        match self {
            Word::Request => 0,
            Word::Answer => 64,
        }
    }
}

/// The offset of the control area in a window of `payload` bytes (cache-line aligned).
pub fn control_offset(payload: u64) -> u64 {
    payload.next_multiple_of(64)
}

/// The size of the memfd behind a window of `payload` bytes: the payload, then the control
/// area.
pub fn mapped_len(payload: u64) -> u64 {
    control_offset(payload) + CONTROL_LEN
}

/// Rings a doorbell: the datagram just sent is queued.
pub fn ring(word: &AtomicU32) {
    word.fetch_add(1, Ordering::Release);
}

/// The doorbell's current value, to wait for a change from.
pub fn snapshot(word: &AtomicU32) -> u32 {
    word.load(Ordering::Acquire)
}

/// Watches `word` until it differs from `seen` or `budget` passes; whether it moved.
pub fn wait(word: &AtomicU32, seen: u32, budget: Duration) -> bool {
    if budget.is_zero() {
        return false;
    }
    let start = Instant::now();
    loop {
        // Reading the clock costs more than a look at the word: look 64 times per read.
        for _ in 0..64 {
            if word.load(Ordering::Acquire) != seen {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() >= budget {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_ends_the_wait_and_the_budget_bounds_it() {
        let w = AtomicU32::new(7);
        let seen = snapshot(&w);
        let t = Instant::now();
        assert!(!wait(&w, seen, Duration::from_micros(200)));
        assert!(t.elapsed() >= Duration::from_micros(200));
        ring(&w);
        assert!(wait(&w, seen, Duration::from_secs(10)));
        assert!(!wait(&w, snapshot(&w), Duration::ZERO));
        assert_eq!(mapped_len(1), 64 + CONTROL_LEN);
        assert_eq!(control_offset(128), 128);
    }
}
