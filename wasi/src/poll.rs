//! `poll_oneoff`. Descriptor subscriptions (files and stdio, always ready) are reported at
//! once; otherwise the call sleeps until the earliest clock deadline and reports every clock
//! subscription due by then.
//!
//! Guest numbers: deadlines saturate (a timeout near 2^64 ns sleeps for centuries instead of
//! wrapping to "now"), and the subscriptions are read from guest memory twice rather than
//! copied, so the host allocates nothing in proportion to their count.

use crate::abi::Abi;
use crate::ctx::WasiCtx;
use crate::errno::{Errno, WasiResult};
use crate::funcs::clock_id;
use crate::memory::GuestMemory;
use crate::sys;

/// Size of an event record.
const EVENT_SIZE: u32 = 32;
/// `subclockflags::subscription_clock_abstime`.
const ABSTIME: u16 = 1;

/// One subscription as the guest wrote it.
enum Sub {
    /// A clock: its host clock id, timeout (ns) and whether the timeout is absolute.
    Clock { id: libc::clockid_t, timeout: u64, absolute: bool },
    /// `fd_read` (tag 1) or `fd_write` (tag 2) on descriptor `fd`.
    Fd { tag: u8, fd: u32 },
}

/// The monotonic deadline, in ns, of a clock subscription made at monotonic time `start`:
/// `start + timeout` for a relative one; for an absolute one, `start` plus what is left
/// until `timeout` on its clock, which reads `clock_now`. Saturating: never earlier than
/// either term.
pub(crate) fn deadline(start: u64, timeout: u64, absolute_clock_now: Option<u64>) -> u64 {
    match absolute_clock_now {
        None => start.saturating_add(timeout),
        Some(now) => start.saturating_add(timeout.saturating_sub(now)),
    }
}

/// Reads subscription `i` of the array at `subs`: its userdata and what it waits for.
fn read_sub(m: &GuestMemory, abi: Abi, subs: u32, i: u32) -> WasiResult<(u64, Sub)> {
    let s = i.checked_mul(abi.subscription_size()).and_then(|o| subs.checked_add(o)).ok_or(Errno::Fault)?;
    let at = |offset: u32| s.checked_add(offset).ok_or(Errno::Fault);
    let userdata = m.read_u64(s)?;
    let sub = match m.slice(at(8)?, 1)?[0] {
        0 => {
            // Clock: preview1 (id u32 @16, timeout @24, flags u16 @40);
            // snapshot 0 (identifier u64 @16, id u32 @24, timeout @32, flags @48).
            let (id, timeout, flags) = match abi {
                Abi::Preview1 => (m.read_u32(at(16)?)?, m.read_u64(at(24)?)?, m.read_u16(at(40)?)?),
                Abi::Unstable => (m.read_u32(at(24)?)?, m.read_u64(at(32)?)?, m.read_u16(at(48)?)?),
            };
            Sub::Clock { id: clock_id(id)?, timeout, absolute: flags & ABSTIME != 0 }
        }
        tag @ (1 | 2) => Sub::Fd { tag, fd: m.read_u32(at(16)?)? },
        _ => return Err(Errno::Inval),
    };
    Ok((userdata, sub))
}

/// The monotonic deadline of a clock subscription made at `start`.
fn clock_deadline(start: u64, id: libc::clockid_t, timeout: u64, absolute: bool) -> WasiResult<u64> {
    let now = if absolute { Some(sys::clock(id, false)?) } else { None };
    Ok(deadline(start, timeout, now))
}

/// Writes event number `n`.
fn write_event(m: &mut GuestMemory, events: u32, n: u32, userdata: u64, error: Errno, tag: u8) -> WasiResult<()> {
    let mut event = [0u8; EVENT_SIZE as usize];
    event[0..8].copy_from_slice(&userdata.to_le_bytes());
    event[8..10].copy_from_slice(&(error as u16).to_le_bytes());
    event[10] = tag;
    let at = n.checked_mul(EVENT_SIZE).and_then(|o| events.checked_add(o)).ok_or(Errno::Fault)?;
    m.write(at, &event)
}

/// `poll_oneoff(subs, events, count, out)`.
pub(crate) fn poll_oneoff(
    ctx: &WasiCtx,
    abi: Abi,
    m: &mut GuestMemory,
    subs: u32,
    events: u32,
    count: u32,
    out: u32,
) -> WasiResult<()> {
    if count == 0 {
        return Err(Errno::Inval);
    }
    m.slice(subs, count.checked_mul(abi.subscription_size()).ok_or(Errno::Fault)?)?;
    m.slice(events, count.checked_mul(EVENT_SIZE).ok_or(Errno::Fault)?)?;
    let start = sys::clock(libc::CLOCK_MONOTONIC, false)?;
    // First pass: validate everything, find whether a descriptor is ready and the earliest
    // clock deadline.
    let mut any_fd = false;
    let mut earliest: Option<(u64, u32)> = None;
    for i in 0..count {
        match read_sub(m, abi, subs, i)?.1 {
            Sub::Fd { .. } => any_fd = true,
            Sub::Clock { id, timeout, absolute } => {
                let d = clock_deadline(start, id, timeout, absolute)?;
                if earliest.is_none_or(|(e, _)| d < e) {
                    earliest = Some((d, i));
                }
            }
        }
    }
    if !any_fd {
        if let Some((deadline, _)) = earliest {
            let wait = deadline.saturating_sub(sys::clock(libc::CLOCK_MONOTONIC, false)?);
            std::thread::sleep(std::time::Duration::from_nanos(wait));
        }
    }
    // Second pass: report the ready descriptors, or else the clocks due by now (the
    // earliest always, whatever the clocks did meanwhile).
    let now = sys::clock(libc::CLOCK_MONOTONIC, false)?;
    let mut n = 0;
    for i in 0..count {
        let (userdata, sub) = read_sub(m, abi, subs, i)?;
        match sub {
            Sub::Fd { tag, fd } if any_fd => {
                let error = ctx.entry_with(fd, crate::rights::POLL_FD_READWRITE).err().unwrap_or(Errno::Success);
                write_event(m, events, n, userdata, error, tag)?;
            }
            Sub::Clock { id, timeout, absolute } if !any_fd => {
                let due = earliest.is_some_and(|(_, e)| e == i) || clock_deadline(start, id, timeout, absolute)? <= now;
                if !due {
                    continue;
                }
                write_event(m, events, n, userdata, Errno::Success, 0)?;
            }
            _ => continue,
        }
        n += 1;
    }
    m.write_u32(out, n)
}

#[cfg(test)]
mod tests {
    use super::deadline;

    #[test]
    fn deadlines_saturate() {
        assert_eq!(deadline(5, 10, None), 15);
        assert_eq!(deadline(5, u64::MAX, None), u64::MAX, "relative: no wrap to the past");
        assert_eq!(deadline(u64::MAX - 1, 2, None), u64::MAX);
        assert_eq!(deadline(5, 100, Some(40)), 65, "absolute: 60 ns left on its clock");
        assert_eq!(deadline(5, 100, Some(400)), 5, "absolute, already past: now");
        assert_eq!(deadline(5, u64::MAX, Some(1)), u64::MAX);
        assert_eq!(deadline(u64::MAX, u64::MAX, Some(0)), u64::MAX);
    }
}
