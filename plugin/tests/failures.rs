//! Every failure kind reaches the host as a `CallError`, never more: a trap, an infinite loop,
//! a sleep, a host function that never answers in time, memory.grow past the limit, native
//! allocation past it, the CPU limit (over the instance's life, and per call), garbage on the
//! channel, a doorbell rung falsely, an exit; restarts (and the state they lose),
//! `OnFailure::Fail`, the restart budget, a panicking host function.

mod common;

use common::Checks;
use sandboxrun_plugin::{CallError, OnFailure, Plugin};
use std::time::{Duration, Instant};

fn policy(yaml: &str) -> policy::Policy {
    policy::Policy::parse(&format!("version: 1\n{yaml}"), std::path::Path::new("/"), "test.yaml").expect("policy")
}

fn main() {
    sandboxrun_plugin::run_if_child();
    let mut c = Checks::new();
    let plugin = Plugin::builder(common::plain()).call_timeout(Duration::from_millis(300)).build().expect("build");
    c.run("trap: kind and function; the next call gets a fresh instance", || {
        assert_eq!(plugin.call("count", b"").unwrap(), [1]);
        assert_eq!(plugin.call("count", b"").unwrap(), [2]);
        let got = plugin.call("trap", b"");
        assert!(matches!(&got, Err(CallError::Trap { kind, .. }) if kind == "unreachable"), "{got:?}");
        assert_eq!(plugin.call("count", b"").unwrap(), [1], "state lost: a fresh instance");
    });
    c.run("infinite loop: timeout, killed at once", || {
        let t = Instant::now();
        assert_eq!(plugin.call("spin", b""), Err(CallError::Timeout));
        assert!(t.elapsed() < Duration::from_millis(600), "{:?}", t.elapsed());
        assert_eq!(plugin.call("echo", b"after").unwrap(), b"after");
    });
    c.run("sleep forever (poll_oneoff): timeout", || {
        let t = Instant::now();
        assert_eq!(plugin.call("sleep", b""), Err(CallError::Timeout));
        assert!(t.elapsed() < Duration::from_millis(600), "{:?}", t.elapsed());
        assert_eq!(plugin.call("echo", b"x").unwrap(), b"x");
    });
    c.run("memory.grow past the limit: MemoryLimit", || {
        let p = Plugin::builder(common::plain()).policy(policy("limits:\n  memory: 16MiB\n")).build().unwrap();
        assert_eq!(p.call("grow", b""), Err(CallError::MemoryLimit));
        assert_eq!(p.call("echo", b"y").unwrap(), b"y");
    });
    c.run("native allocation past the limit (captured output): MemoryLimit", || {
        let p = Plugin::builder(common::plain())
            .policy(policy("limits:\n  memory: 16MiB\n  output: 4GiB\n"))
            .call_timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let got = p.call("flood", b"");
        assert_eq!(got, Err(CallError::MemoryLimit));
        assert_eq!(p.call("echo", b"z").unwrap(), b"z");
    });
    c.run("output limit: OutputLimit, instance kept", || {
        let p = Plugin::builder(common::plain()).policy(policy("limits:\n  output: 1KiB\n")).build().unwrap();
        assert_eq!(p.call("echo", &[0u8; 2048]), Err(CallError::OutputLimit));
        assert_eq!(p.call("echo", b"small").unwrap(), b"small");
    });
    c.run("CPU limit over the instance's life: CpuLimit", || {
        let p = Plugin::builder(common::plain())
            .policy(policy("limits:\n  cpu_time: 1s\n"))
            .call_timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let t = Instant::now();
        assert_eq!(p.call("spin", b""), Err(CallError::CpuLimit));
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
        assert_eq!(p.call("echo", b"again").unwrap(), b"again");
    });
    c.run("per-call CPU limit: a spinning call is CpuLimit at about the limit; a fresh instance follows", || {
        let p = Plugin::builder(common::plain())
            .call_timeout(Duration::from_secs(10))
            .call_cpu_limit(Duration::from_millis(300))
            .build()
            .unwrap();
        assert_eq!(p.call("count", b"").unwrap(), [1]);
        let pid = p.stats().instances[0].pid.unwrap();
        let t = Instant::now();
        assert_eq!(p.call("spin", b""), Err(CallError::CpuLimit));
        let took = t.elapsed();
        // At least the CPU limit (CPU time cannot run ahead of the wall clock on one thread),
        // and far below the wall timeout.
        assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(1500), "{took:?}");
        println!("     CpuLimit (300 ms of CPU) returned after {took:?}");
        let gone = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            std::fs::metadata(format!("/proc/{pid}")).is_err()
        });
        assert!(gone, "the instance outlived its CPU budget");
        assert_eq!(p.call("count", b"").unwrap(), [1], "a fresh instance (state lost)");
        // Many short calls each get the whole budget: the limit is per call, not per life.
        for _ in 0..20 {
            assert_eq!(p.call("echo", &[1u8; 4096]).unwrap().len(), 4096);
        }
        assert_eq!(p.stats().failures.get("cpu_limit"), Some(&1));
    });
    c.run("per-call CPU limit: sleeping past it is no CpuLimit (wall timeout instead)", || {
        let p = Plugin::builder(common::plain())
            .call_timeout(Duration::from_millis(400))
            .call_cpu_limit(Duration::from_millis(50))
            .build()
            .unwrap();
        let t = Instant::now();
        assert_eq!(p.call("sleep", b""), Err(CallError::Timeout));
        assert!(t.elapsed() >= Duration::from_millis(395), "{:?}", t.elapsed());
        assert_eq!(p.call("echo", b"awake").unwrap(), b"awake");
    });
    c.run("garbage on the channel: Protocol, instance replaced", || {
        let p = Plugin::builder(common::plain()).test_garbage_export("count").build().unwrap();
        let got = p.call("count", b"");
        assert!(matches!(got, Err(CallError::Protocol(_))), "{got:?}");
        assert_eq!(p.call("echo", b"ok").unwrap(), b"ok");
        assert_eq!(p.stats().restarts, 1);
    });
    c.run("a doorbell rung falsely: the host reads only what the socket holds, by the deadline", || {
        let p = Plugin::builder(common::plain())
            .test_false_ring_export("echo")
            .call_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        for i in 0..5 {
            let input = format!("call {i}");
            let t = Instant::now();
            assert_eq!(p.call("echo", input.as_bytes()).unwrap(), input.as_bytes());
            assert!(t.elapsed() >= Duration::from_millis(20), "{:?}", t.elapsed());
            // The words are off by thousands now: the honest calls still work.
            assert_eq!(p.call("count", b"").unwrap(), [i + 1]);
        }
        assert_eq!(
            p.call("sleep", b""),
            Err(CallError::Timeout),
            "a false ring cannot hold the host past the deadline"
        );
        assert!(!p.stats().failures.contains_key("protocol"));
    });
    c.run("proc_exit: Crashed with the status", || {
        let got = plugin.call("exit", b"");
        assert!(matches!(&got, Err(CallError::Crashed { verdict }) if verdict.contains("status 3")), "{got:?}");
        assert_eq!(plugin.call("echo", b"e").unwrap(), b"e");
    });
    c.run("a host function that never answers in time: Timeout; the child dies at the deadline", || {
        let p = Plugin::builder(common::with_host())
            .call_timeout(Duration::from_millis(200))
            .host_fn("kv", |_| {
                std::thread::sleep(Duration::from_millis(800));
                Ok(b"late".to_vec())
            })
            .host_fn("log", |_| Ok(Vec::new()))
            .build()
            .unwrap();
        let pid = p.stats().instances[0].pid.unwrap();
        let checker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(450));
            // Killed by the watchdog at 200 ms, reaped by the keeper: gone.
            std::fs::metadata(format!("/proc/{pid}")).is_err()
        });
        assert_eq!(p.call("lookup", b"k"), Err(CallError::Timeout));
        assert!(checker.join().unwrap(), "the instance outlived its deadline");
        assert_eq!(p.call("count", b"").unwrap(), [1]);
    });
    c.run("a host function that panics: the host's error, the host survives", || {
        let p = Plugin::builder(common::with_host())
            .host_fn("kv", |_| panic!("the host's own bug"))
            .host_fn("log", |_| Ok(Vec::new()))
            .build()
            .unwrap();
        let got = p.call("lookup", b"k");
        assert!(
            matches!(&got, Err(CallError::HostFunction { name, message }) if name == "kv" && message.contains("the host's own bug")),
            "{got:?}"
        );
        assert_eq!(p.call("echo", b"alive").unwrap(), b"alive");
    });
    c.run("OnFailure::Fail: the slot stays dead", || {
        let p = Plugin::builder(common::plain()).on_failure(OnFailure::Fail).build().unwrap();
        assert!(matches!(p.call("trap", b""), Err(CallError::Trap { .. })));
        assert!(matches!(p.call("echo", b""), Err(CallError::Unavailable(_))));
    });
    c.run("restart budget: past max_per_minute, Unavailable", || {
        let p = Plugin::builder(common::plain()).on_failure(OnFailure::Restart { max_per_minute: 2 }).build().unwrap();
        for _ in 0..3 {
            assert!(matches!(p.call("trap", b""), Err(CallError::Trap { .. })));
        }
        assert!(matches!(p.call("echo", b""), Err(CallError::Unavailable(_))));
    });
    c.run("stats: calls, failures by kind, restarts, CPU and peak memory", || {
        let s = plugin.stats();
        assert!(s.calls >= 10, "{s:?}");
        assert_eq!(s.failures.get("trap"), Some(&1), "{s:?}");
        assert_eq!(s.failures.get("timeout"), Some(&2), "{s:?}");
        assert!(s.restarts >= 4, "{s:?}");
        let i = &s.instances[0];
        assert!(i.cpu > Duration::from_millis(100), "{s:?}");
        assert!(i.peak_memory > 1 << 20, "{s:?}");
        println!("     {s:?}");
    });
    c.finish();
}
