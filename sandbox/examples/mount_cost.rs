//! What the second wall costs a run: `sandbox::mounts::detach` (a detached clone of a
//! directory, its attributes set) timed over many calls, for a read-only and a read-write
//! mount, as the caller is (root: in the host's mount namespace; otherwise in one of its own,
//! whose one-time set-up is timed too).
//!
//! `cargo run --release -p sandbox --example mount_cost [DIR]`

use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| std::env::temp_dir().display().to_string());
    let t = Instant::now();
    sandbox::mounts::own_mount_namespace().expect("a mount namespace of its own");
    println!(
        "own mount namespace (unprivileged callers only, once a process): {:.3} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let dir = OwnedFd::from(std::fs::File::open(&dir).expect("open DIR"));
    for writable in [sandbox::Writable::No, sandbox::Writable::Yes] {
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            let tree = sandbox::mounts::detach(dir.as_fd(), writable, None).expect("detach");
            drop(tree);
        }
        println!(
            "detach {writable:?}: {:.1} µs per mount (mean of {n}, the clone's release included)",
            t.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
