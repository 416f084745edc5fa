//! Feature `tokio`: async host functions (awaiting, timing out while awaiting, panicking,
//! nested with the depth cap) and the async calls (8 concurrent callers on a pool of 2; the
//! caller's worker thread is not blocked); no runtime is a clear build error.

mod common;

use common::Checks;
use sandboxrun_plugin::{BuildError, CallError, Plugin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Sets its flag when dropped (proves a future was dropped).
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().expect("runtime")
}

fn main() {
    sandboxrun_plugin::run_if_child();
    let rt = runtime();
    let mut c = Checks::new();
    c.run("an async host function awaits a sleep and answers bytes (sync and async calls)", || {
        let p = Plugin::builder(common::with_host())
            .runtime(rt.handle().clone())
            .host_fn_async("kv", |key: Vec<u8>| async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok([b"slept for ", &key[..]].concat())
            })
            .host_fn("log", |_| Ok(Vec::new()))
            .build()
            .unwrap();
        let t = Instant::now();
        assert_eq!(p.call("lookup", b"k").unwrap(), b"slept for k");
        assert!(t.elapsed() >= Duration::from_millis(30), "{:?}", t.elapsed());
        assert_eq!(rt.block_on(p.call_async("lookup", b"async")).unwrap(), b"slept for async");
        let big = vec![b'b'; 100 << 10];
        assert_eq!(rt.block_on(p.call_async("lookup", &big)).unwrap().len(), 10 + big.len());
        assert_eq!(p.stats().failures.len(), 0, "{:?}", p.stats());
    });
    c.run("a timeout while awaiting: Timeout at the deadline, instance killed, future dropped", || {
        let dropped = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (d, f) = (dropped.clone(), finished.clone());
        let p = Plugin::builder(common::with_host())
            .runtime(rt.handle().clone())
            .call_timeout(Duration::from_millis(200))
            .host_fn_async("kv", move |_| {
                let (guard, finished) = (DropFlag(d.clone()), f.clone());
                async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    finished.store(true, Ordering::SeqCst);
                    Ok(b"late".to_vec())
                }
            })
            .host_fn("log", |_| Ok(Vec::new()))
            .build()
            .unwrap();
        assert_eq!(p.call("count", b"").unwrap(), [1]);
        let pid = p.stats().instances[0].pid.unwrap();
        let t = Instant::now();
        assert_eq!(rt.block_on(p.call_async("lookup", b"k")), Err(CallError::Timeout));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(195) && took < Duration::from_millis(400), "{took:?}");
        assert!(dropped.load(Ordering::SeqCst), "the host future was not dropped at the deadline");
        // Killed at once (reaped by the keeper within a moment).
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            std::fs::metadata(format!("/proc/{pid}")).is_err()
        });
        assert!(gone, "the instance outlived its deadline");
        assert_eq!(p.call("count", b"").unwrap(), [1], "a fresh instance (state lost)");
        std::thread::sleep(Duration::from_millis(2100).saturating_sub(t.elapsed()));
        assert!(!finished.load(Ordering::SeqCst), "the future ran on after its deadline");
        assert_eq!(p.stats().failures.get("timeout"), Some(&1));
    });
    c.run("8 concurrent async callers on a pool of 2 (with an async host function)", || {
        let served = Arc::new(AtomicU64::new(0));
        let s = served.clone();
        let p = Arc::new(
            Plugin::builder(common::with_host())
                .runtime(rt.handle().clone())
                .instances(2)
                .host_fn_async("kv", move |key: Vec<u8>| {
                    let s = s.clone();
                    async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        s.fetch_add(1, Ordering::Relaxed);
                        Ok(key.to_ascii_uppercase())
                    }
                })
                .host_fn("log", |_| Ok(Vec::new()))
                .build()
                .unwrap(),
        );
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let p = p.clone();
                rt.spawn(async move {
                    for i in 0..50 {
                        let input = format!("task {t} call {i}");
                        assert_eq!(p.call_async("echo", input.as_bytes()).await.unwrap(), input.as_bytes());
                        let got = p.call_async("lookup", input.as_bytes()).await.unwrap();
                        assert_eq!(got, input.to_ascii_uppercase().as_bytes());
                    }
                })
            })
            .collect();
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        let s = p.stats();
        assert_eq!(s.calls, 800, "{s:?}");
        assert_eq!(served.load(Ordering::Relaxed), 400);
        assert!(s.instances.iter().all(|i| i.calls > 50), "both instances served: {s:?}");
        assert!(s.failures.is_empty(), "{s:?}");
    });
    c.run("a panicking async host function: the host's error, the host survives", || {
        let p = Plugin::builder(common::with_host())
            .runtime(rt.handle().clone())
            .host_fn_async("kv", |key: Vec<u8>| async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if key == b"boom" {
                    panic!("the host's own async bug");
                }
                Ok(key)
            })
            .host_fn_async("log", |_| async { Ok(Vec::new()) })
            .build()
            .unwrap();
        let got = rt.block_on(p.call_async("lookup", b"boom"));
        assert!(
            matches!(&got, Err(CallError::HostFunction { name, message })
                if name == "kv" && message.contains("the host's own async bug")),
            "{got:?}"
        );
        assert_eq!(p.call("lookup", b"fine").unwrap(), b"fine");
        assert_eq!(rt.block_on(p.call_async("lookup", b"again")).unwrap(), b"again");
    });
    c.run("async host functions: nested async calls, capped in depth", || {
        let me: Arc<OnceLock<Plugin>> = Arc::new(OnceLock::new());
        let m = me.clone();
        let p = Plugin::builder(common::with_host())
            .runtime(rt.handle().clone())
            .instances(3)
            .max_depth(2)
            .host_fn_async("kv", move |key: Vec<u8>| {
                let m = m.clone();
                async move {
                    let inner = m.get().unwrap().call_async("lookup", &key).await;
                    Ok(match inner {
                        Ok(v) => [b"[", &v[..], b"]"].concat(),
                        Err(e) => format!("<{}>", e.kind()).into_bytes(),
                    })
                }
            })
            .host_fn("log", |_| Ok(Vec::new()))
            .build()
            .unwrap();
        me.set(p).unwrap();
        let out = rt.block_on(me.get().unwrap().call_async("lookup", b"k")).unwrap();
        assert_eq!(out, b"[<too_deep>]");
        // The same from a sync caller.
        assert_eq!(me.get().unwrap().call("lookup", b"k").unwrap(), b"[<too_deep>]");
    });
    c.run("call_async does not block the caller's worker (current-thread runtime)", || {
        let single = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let p = Arc::new(Plugin::builder(common::plain()).call_timeout(Duration::from_millis(300)).build().unwrap());
        let ticks = Arc::new(AtomicU64::new(0));
        let t2 = ticks.clone();
        let got = single.block_on(async move {
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    t2.fetch_add(1, Ordering::Relaxed);
                }
            });
            let got = p.call_async("spin", b"").await;
            ticker.abort();
            got
        });
        assert_eq!(got, Err(CallError::Timeout));
        assert!(ticks.load(Ordering::Relaxed) >= 10, "the worker was blocked: {} ticks", ticks.load(Ordering::Relaxed));
    });
    c.run("async host functions without a runtime: a clear build error", || {
        let got = Plugin::builder(common::with_host())
            .host_fn_async("kv", |k: Vec<u8>| async move { Ok(k) })
            .host_fn("log", |_| Ok(Vec::new()))
            .build();
        assert!(matches!(got, Err(BuildError::NoRuntime)), "{got:?}");
        // Within a runtime, the current one is taken.
        let p = rt.block_on(
            Plugin::builder(common::with_host())
                .host_fn_async("kv", |k: Vec<u8>| async move { Ok(k) })
                .host_fn("log", |_| Ok(Vec::new()))
                .build_async(),
        );
        assert_eq!(p.unwrap().call("lookup", b"current").unwrap(), b"current");
    });
    c.finish();
}
