//! The pool: 8 threads calling a pool of 2; `Overloaded` beyond the queue bound; a reload
//! under load fails no call in flight; the host survives its plugins' deaths under load.

mod common;

use common::Checks;
use sandboxrun_plugin::{CallError, OnFailure, Plugin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() {
    sandboxrun_plugin::run_if_child();
    let mut c = Checks::new();
    c.run("8 threads calling a pool of 2", || {
        let p = Arc::new(Plugin::builder(common::plain()).instances(2).build().unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let input = format!("thread {t} call {i}");
                        assert_eq!(p.call("echo", input.as_bytes()).unwrap(), input.as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = p.stats();
        assert_eq!(s.calls, 1600);
        assert!(s.instances.iter().all(|i| i.calls > 100), "both instances served: {s:?}");
        assert!(s.failures.is_empty(), "{s:?}");
    });
    c.run("Overloaded beyond the queue bound", || {
        let p = Arc::new(
            Plugin::builder(common::plain())
                .instances(1)
                .queue(1)
                .call_timeout(Duration::from_millis(500))
                .build()
                .unwrap(),
        );
        // One call holds the instance (spinning until its timeout), one waits, the rest are
        // turned away at once.
        let busy = {
            let p = p.clone();
            std::thread::spawn(move || p.call("spin", b""))
        };
        std::thread::sleep(Duration::from_millis(50));
        let waiter = {
            let p = p.clone();
            std::thread::spawn(move || p.call("echo", b"waited"))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(p.call("echo", b"x"), Err(CallError::Overloaded));
        assert_eq!(busy.join().unwrap(), Err(CallError::Timeout));
        // The waiter's own deadline may have passed while it waited.
        let w = waiter.join().unwrap();
        assert!(matches!(&w, Ok(v) if v == b"waited") || w == Err(CallError::Overloaded), "{w:?}");
        assert!(p.stats().failures.get("overloaded").copied().unwrap_or(0) >= 1);
    });
    c.run("reload under load: no call fails, the new module takes over", || {
        let p = Arc::new(Plugin::builder(common::versioned(1)).instances(2).build().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let seen_new = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (p, stop, seen_new) = (p.clone(), stop.clone(), seen_new.clone());
                std::thread::spawn(move || {
                    let mut calls = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let v = p.call("version", b"").expect("no call fails during a reload");
                        assert!(v == [1] || v == [2], "{v:?}");
                        if v == [2] {
                            seen_new.fetch_add(1, Ordering::Relaxed);
                        }
                        assert_eq!(p.call("echo", b"e").unwrap(), b"e");
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        p.reload(&common::versioned(2)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let calls: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(calls > 100, "{calls}");
        assert!(seen_new.load(Ordering::Relaxed) > 10);
        assert_eq!(p.call("version", b"").unwrap(), [2]);
        assert!(p.stats().failures.is_empty(), "{:?}", p.stats());
        // A module that does not link: refused, the old one stays.
        let bad = wat::parse_str(r#"(module (import "host" "missing" (func)))"#).unwrap();
        let e = p.reload(&bad).unwrap_err().to_string();
        assert!(e.contains("host.missing"), "{e}");
        assert_eq!(p.call("version", b"").unwrap(), [2]);
    });
    c.run("failures under load never reach the host", || {
        let p = Arc::new(
            Plugin::builder(common::plain())
                .instances(2)
                .call_timeout(Duration::from_millis(100))
                .on_failure(OnFailure::Restart { max_per_minute: 1000 })
                .build()
                .unwrap(),
        );
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        match (t + i) % 4 {
                            0 => {
                                let r = p.call("trap", b"");
                                assert!(matches!(r, Err(CallError::Trap { .. } | CallError::Overloaded)), "{r:?}");
                            }
                            1 => {
                                let r = p.call("spin", b"");
                                assert!(matches!(r, Err(CallError::Timeout | CallError::Overloaded)), "{r:?}");
                            }
                            _ => {
                                let r = p.call("echo", b"fine");
                                assert!(
                                    matches!(&r, Ok(v) if v == b"fine") || r == Err(CallError::Overloaded),
                                    "{r:?}"
                                );
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(p.call("echo", b"still here").unwrap(), b"still here");
        println!("     {:?}", p.stats());
    });
    c.finish();
}
