//! Spinning briefly before blocking, on both ends of the call channel.
//!
//! A call blocks twice: the host waiting for the answer, the instance waiting for the next
//! request. On an idle VM each block puts a vCPU to sleep, and waking it costs 30–40 µs —
//! more than the whole call. So after each side posts a datagram it rings a *doorbell*: it
//! bumps its own count word in the shared window's control area (past the payload bytes),
//! which thus counts the datagrams it sent. The side waiting for a datagram first watches
//! that word for a bounded time (the `spin` budget, default [`DEFAULT_SPIN`]) until it
//! differs from the number of datagrams it has read, and only then blocks on the socket as
//! before; once the word moved on, the datagram is already queued and the read returns at
//! once. (Counts, not snapshots: a ring that comes late for an earlier datagram cannot end
//! a later wait early.)
//!
//! The wait looks at the word in a tight loop (with the CPU's pause hint; measured on this
//! VM, yielding between looks instead cost 10 µs a call). After a spin that found nothing, a
//! [`Spinner`] skips the next waits (1, 2, 4, … up to [`MAX_SKIP`]) and learns from the
//! blocking reads it does instead: one that took half the budget or more (a sleeping CPU
//! woken, or a long call) ends the back-off; one that was quicker means both CPUs are awake
//! — other work keeps them busy, so blocking costs a few µs and spinning gains nothing but
//! contention (two spinning ends and a third task on two cores, the other end preempted) —
//! and the spinner keeps skipping until a blocking read is slow again. So calls longer than
//! the budget, an instance the host calls rarely, and a busy machine do not pay the budget
//! on every wait.
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

/// The most waits a [`Spinner`] skips after failed spins.
pub const MAX_SKIP: u32 = 16;

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

/// Watches `word` until it differs from `seen` (the datagrams read so far) or `budget`
/// passes; whether it moved.
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

/// One end's spinning, with its back-off after failed spins.
#[derive(Debug)]
pub struct Spinner {
    budget: Duration,
    /// Waits still to skip.
    skip: u32,
    /// Waits skipped after the last failure.
    backoff: u32,
    /// Whether the last wait was skipped.
    skipped: bool,
}

impl Spinner {
    /// A spinner with `budget` per wait (zero: never spins).
    pub fn new(budget: Duration) -> Spinner {
        Spinner { budget: budget.min(MAX_SPIN), skip: 0, backoff: 0, skipped: false }
    }

    /// Spins on `word` until it differs from `seen`, for at most the budget (and `cap`),
    /// unless backing off; whether it moved.
    pub fn wait(&mut self, word: &AtomicU32, seen: u32, cap: Duration) -> bool {
        self.skipped = false;
        if self.budget.is_zero() {
            return false;
        }
        if self.skip > 0 {
            self.skip -= 1;
            self.skipped = true;
            return false;
        }
        if wait(word, seen, self.budget.min(cap)) {
            self.backoff = 0;
            return true;
        }
        self.backoff = (self.backoff * 2).clamp(1, MAX_SKIP);
        self.skip = self.backoff;
        false
    }

    /// After a wait that did not spin found its datagram by blocking for `blocked`: a slow
    /// read (half the budget or more: a sleeping CPU woken, or a long wait) ends the
    /// back-off; a quick one (the CPUs are awake, the machine busy) keeps skipping.
    pub fn blocked(&mut self, blocked: Duration) {
        if !self.skipped {
            return;
        }
        if blocked >= self.budget / 2 {
            self.skip = 0;
            self.backoff = 0;
        } else {
            self.skip = self.skip.max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_ends_the_wait_and_the_budget_bounds_it() {
        let w = AtomicU32::new(7);
        let seen = 7;
        let t = Instant::now();
        assert!(!wait(&w, seen, Duration::from_micros(200)));
        assert!(t.elapsed() >= Duration::from_micros(200));
        ring(&w);
        assert!(wait(&w, seen, Duration::from_secs(10)));
        assert!(!wait(&w, 8, Duration::ZERO));
        assert_eq!(mapped_len(1), 64 + CONTROL_LEN);
        // A failed spin skips the next wait; quick blocking reads (a busy machine) keep it
        // skipping; a slow one (a CPU woken) ends the back-off.
        let mut s = Spinner::new(Duration::from_micros(100));
        assert!(!s.wait(&w, 8, Duration::MAX));
        for _ in 0..20 {
            let t = Instant::now();
            assert!(!s.wait(&w, 7, Duration::MAX), "skipped although the word moved");
            assert!(t.elapsed() < Duration::from_micros(100));
            s.blocked(Duration::from_micros(10));
        }
        assert!(!s.wait(&w, 7, Duration::MAX));
        s.blocked(Duration::from_micros(70));
        assert!(s.wait(&w, 7, Duration::MAX), "spins again");
        assert_eq!(control_offset(128), 128);
    }
}
