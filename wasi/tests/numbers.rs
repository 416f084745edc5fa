//! Issue #13, guest numbers: every number a guest passes is checked or saturated before
//! arithmetic. Timeouts near 2^64 ns sleep (practically) forever instead of wrapping to "now";
//! pointers near 2^32 are `EFAULT`, never a wrapped address.

mod common;

use common::*;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;
use wasi::{Errno, WasiCtxBuilder};

const SUBS: u32 = 8192;
const EVENTS: u32 = 16384;

/// A preview1 clock subscription (monotonic clock) with the given timeout and flags.
fn clock_subscription(g: &mut Guest, at: u32, userdata: u64, timeout: u64, flags: u16) {
    let mut sub = [0u8; 48];
    sub[0..8].copy_from_slice(&userdata.to_le_bytes());
    sub[8] = 0; // clock
    sub[16..20].copy_from_slice(&1u32.to_le_bytes()); // CLOCK_MONOTONIC
    sub[24..32].copy_from_slice(&timeout.to_le_bytes());
    sub[40..42].copy_from_slice(&flags.to_le_bytes());
    g.put(at, &sub);
}

/// Starts `poll_oneoff` on one clock subscription on its own thread; true if it is still
/// sleeping 200 ms later (the thread is then left behind, asleep).
fn still_sleeping_after_200ms(timeout: u64, flags: u16) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut g = Guest::new(WasiCtxBuilder::new());
        clock_subscription(&mut g, SUBS, 7, timeout, flags);
        let e = g.errno("poll_oneoff", &[SUBS as u64, EVENTS as u64, 1, OUT as u64]);
        let _ = tx.send(e);
    });
    // A panic (an overflow in a debug build) disconnects the channel: that is no sleep.
    matches!(rx.recv_timeout(Duration::from_millis(200)), Err(RecvTimeoutError::Timeout))
}

#[test]
fn huge_relative_timeouts_sleep() {
    for timeout in [u64::MAX, u64::MAX - 1, 1 << 63] {
        assert!(still_sleeping_after_200ms(timeout, 0), "relative {timeout}");
    }
}

#[test]
fn huge_absolute_timeouts_sleep() {
    for timeout in [u64::MAX, 1 << 63] {
        assert!(still_sleeping_after_200ms(timeout, 1), "absolute {timeout}");
    }
}

#[test]
fn short_and_past_timeouts_fire() {
    let mut g = Guest::new(WasiCtxBuilder::new());
    clock_subscription(&mut g, SUBS, 1, 20_000_000, 0);
    clock_subscription(&mut g, SUBS + 48, 2, 20_000_000, 0);
    clock_subscription(&mut g, SUBS + 96, 3, u64::MAX, 0);
    let start = std::time::Instant::now();
    assert_eq!(g.errno("poll_oneoff", &[SUBS as u64, EVENTS as u64, 3, OUT as u64]), 0);
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(g.u32(OUT), 2, "the two earliest fire together");
    assert_eq!((g.u64(EVENTS), g.u64(EVENTS + 32)), (1, 2));
    // An absolute deadline already past fires at once.
    clock_subscription(&mut g, SUBS, 4, 1, 1);
    assert_eq!(g.errno("poll_oneoff", &[SUBS as u64, EVENTS as u64, 1, OUT as u64]), 0);
    assert_eq!((g.u32(OUT), g.u64(EVENTS)), (1, 4));
}

#[test]
fn pointers_near_the_top_of_the_address_space_are_efault() {
    let mut g = Guest::new(WasiCtxBuilder::new().args(["a", "b"]).preopen(temp_dir("numbers"), "/d", false));
    let top = u64::from(u32::MAX);
    for p in [top, top - 3, top - 7] {
        assert_eq!(g.errno("args_get", &[p, BUF as u64]), Errno::Fault as u64);
        assert_eq!(g.errno("args_get", &[OUT as u64, p]), Errno::Fault as u64);
        assert_eq!(g.errno("fd_prestat_get", &[3, p]), Errno::Fault as u64);
        assert_eq!(g.errno("fd_write", &[1, p, 1, OUT as u64]), Errno::Fault as u64);
        assert_eq!(g.errno("fd_write", &[1, IOV as u64, 1, p]), Errno::Fault as u64);
        assert_eq!(g.errno("poll_oneoff", &[p, EVENTS as u64, 1, OUT as u64]), Errno::Fault as u64);
        assert_eq!(g.errno("poll_oneoff", &[SUBS as u64, p, 1, OUT as u64]), Errno::Fault as u64);
        assert_eq!(g.errno("fd_readdir", &[3, p, 100, 0, OUT as u64]), Errno::Fault as u64);
    }
    assert_eq!(
        g.errno("poll_oneoff", &[SUBS as u64, EVENTS as u64, u64::from(u32::MAX), OUT as u64]),
        Errno::Fault as u64
    );
}

#[test]
fn offsets_past_i64_are_refused() {
    let dir = temp_dir("numbers-offsets");
    std::fs::write(dir.join("f"), "0123456789").unwrap();
    let mut g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/rw", true));
    let (e, fd) = g.open(3, "f", 0, READ | WRITE, 0);
    assert_eq!(e, 0);
    g.put(IOV, &BUF.to_le_bytes());
    g.put(IOV + 4, &4u32.to_le_bytes());
    for offset in [u64::MAX, 1 << 63] {
        let e = g.errno("fd_pread", &[fd as u64, IOV as u64, 1, offset, OUT as u64]);
        assert_eq!(e, Errno::Inval as u64, "pread at {offset}");
        let e = g.errno("fd_pwrite", &[fd as u64, IOV as u64, 1, offset, OUT as u64]);
        assert_eq!(e, Errno::Inval as u64, "pwrite at {offset}");
        assert_eq!(g.errno("fd_allocate", &[fd as u64, offset, 1]), Errno::Fbig as u64, "allocate at {offset}");
    }
    assert_eq!(g.ctx.usage().disk_bytes, 0, "nothing counted for refused calls");
    assert_eq!(g.errno("fd_readdir", &[3, BUF as u64, 100, u64::MAX, OUT as u64]), 0);
    assert_eq!(g.u32(OUT), 0, "a cookie past the end lists nothing");
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"0123456789");
}
