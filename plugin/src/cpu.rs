//! The per-call CPU budget (`PluginBuilder::call_cpu_limit`): the host reads the instance's
//! process CPU clock (`clock_getcpuclockid`, every thread's time) when a call starts, and
//! while it waits for the answer it looks again no later than the instance could have spent
//! what is left; once spent, the instance is killed at once ([`crate::CallError::CpuLimit`]).
//! Time the instance spends blocked — sleeping, waiting on a host function — costs nothing.
//!
//! `limits.cpu_time` (RLIMIT_CPU) stays the bound over the instance's whole life.

use crate::sys;
use std::time::{Duration, Instant};

/// The soonest the host looks again (a budget nearly spent is not polled in a busy loop).
const CHECK_MIN: Duration = Duration::from_micros(200);

/// The latest the host looks again: an instance with several threads spends its budget
/// faster than the wall clock runs.
const CHECK_MAX: Duration = Duration::from_millis(10);

/// A call's CPU budget.
#[derive(Debug)]
pub(crate) struct CpuBudget {
    clock: libc::clockid_t,
    /// The instance's CPU time when the call started.
    start: Duration,
    limit: Duration,
}

impl CpuBudget {
    /// A budget of `limit` from now, on the process CPU clock `clock`; `None` if the clock
    /// cannot be read (the instance is gone: the call fails on the channel instead).
    pub(crate) fn start(clock: libc::clockid_t, limit: Duration) -> Option<CpuBudget> {
        Some(CpuBudget { clock, start: sys::clock_time(clock).ok()?, limit })
    }

    /// The CPU time left (zero: spent); `None` if the clock cannot be read.
    pub(crate) fn left(&self) -> Option<Duration> {
        let used = sys::clock_time(self.clock).ok()?.saturating_sub(self.start);
        Some(self.limit.saturating_sub(used))
    }

    /// When to look again, with `left` unspent: not before the instance could spend it on
    /// one thread, bounded by [`CHECK_MIN`] and [`CHECK_MAX`].
    pub(crate) fn next_check(left: Duration) -> Instant {
        Instant::now() + left.clamp(CHECK_MIN, CHECK_MAX)
    }
}
