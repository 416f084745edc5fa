//! Round-trip benchmark (not a test): an empty call, 1 KiB and 1 MiB echoes, a host-function
//! round trip, the restart after a timeout, a compute-bound call — beside an in-process call
//! of the same export with the engine directly, and (with `SANDBOXRUN=path/to/sandboxrun`)
//! one confined `sandboxrun` run per call.
//!
//! `cargo run --release -p plugin --example roundtrip` (`SPIN_US=0` to measure without spinning
//! before blocking, `SPIN_US=n` for another budget than the default; `QUICK=1` for the first
//! rows only).

use sandboxrun_plugin::{CallError, Plugin, Val};
use std::time::{Duration, Instant};

/// The plugin: also the Wasmtime column's (`bench/plugin-wasmtime`).
const WAT: &str = include_str!("roundtrip.wat");

/// Rounds of the compute-bound call.
const WORK: i32 = 200_000_000;

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn time(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..n / 10 {
        f();
    }
    stats(
        (0..n)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The spin budget: `SPIN_US`, else the library's default.
fn spin() -> Duration {
    std::env::var("SPIN_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(sandboxrun_plugin::spin::DEFAULT_SPIN, Duration::from_micros)
}

fn main() {
    sandboxrun_plugin::run_if_child();
    let wasm = wat::parse_str(WAT).expect("WAT");
    println!("spin budget: {:?}", spin());
    let plugin = Plugin::builder(wasm.clone())
        .spin(spin())
        .call_timeout(Duration::from_millis(50))
        .on_failure(sandboxrun_plugin::OnFailure::Restart { max_per_minute: 100_000 })
        .host_fn("log", |_| Ok(b"answer!!".to_vec()))
        .build()
        .expect("build");

    let (m, p99) = time(20_000, || drop(plugin.call("empty", b"").unwrap()));
    println!("empty call (stdin/stdout):  median {:7.1} µs  p99 {:7.1} µs", us(m), us(p99));
    let (m, p99) = time(20_000, || drop(plugin.invoke("empty", &[]).unwrap()));
    println!("empty invoke:               median {:7.1} µs  p99 {:7.1} µs", us(m), us(p99));
    let kib = vec![7u8; 1024];
    let (m, p99) = time(20_000, || assert_eq!(plugin.call("echo", &kib).unwrap().len(), 1024));
    println!("1 KiB echo:                 median {:7.1} µs  p99 {:7.1} µs", us(m), us(p99));
    let mib = vec![7u8; 1 << 20];
    let (m, p99) = time(500, || assert_eq!(plugin.call("echo", &mib).unwrap().len(), 1 << 20));
    println!(
        "1 MiB echo:                 median {:7.1} µs  p99 {:7.1} µs  = {:.2} GB/s each way ({:.2} GB/s in+out)",
        us(m),
        us(p99),
        (1 << 20) as f64 / m.as_secs_f64() / 1e9,
        2.0 * (1 << 20) as f64 / m.as_secs_f64() / 1e9
    );
    let n = 10_000;
    let patient =
        Plugin::builder(wasm.clone()).spin(spin()).host_fn("log", |_| Ok(b"answer!!".to_vec())).build().expect("build");
    let (m, _) = time(20, || drop(patient.invoke("ping", &[Val::I32(n)]).unwrap()));
    println!("host-function round trip:   median {:7.1} µs  (a call making {n} of them, divided)", us(m) / n as f64);
    if std::env::var_os("QUICK").is_some() {
        return;
    }
    // Feature `tokio` (on for examples): the async calls and an async host function.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().expect("runtime");
    let (m, p99) = time(20_000, || drop(rt.block_on(plugin.call_async("empty", b"")).unwrap()));
    println!("empty call_async:           median {:7.1} µs  p99 {:7.1} µs", us(m), us(p99));
    let asynchronous = Plugin::builder(wasm.clone())
        .spin(spin())
        .runtime(rt.handle().clone())
        .host_fn_async("log", |_| async { Ok(b"answer!!".to_vec()) })
        .build()
        .expect("build");
    let (m, _) = time(20, || drop(asynchronous.invoke("ping", &[Val::I32(n)]).unwrap()));
    println!("async host-fn round trip:   median {:7.1} µs  (a call making {n} of them, divided)", us(m) / n as f64);
    drop(asynchronous);
    let slow = Plugin::builder(wasm.clone())
        .spin(spin())
        .call_timeout(Duration::from_secs(30))
        .host_fn("log", |_| Ok(b"answer!!".to_vec()))
        .build()
        .expect("build");
    let (plugin_work, _) = time(10, || drop(slow.invoke("work", &[Val::I32(WORK)]).unwrap()));
    println!("compute-bound call:         median {:7.1} ms  ({WORK} xorshift rounds)", plugin_work.as_secs_f64() * 1e3);

    let mut kill = Vec::new();
    let mut restart = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        assert_eq!(plugin.call("spin", b""), Err(CallError::Timeout));
        kill.push(t.elapsed().saturating_sub(Duration::from_millis(50)));
        let t = Instant::now();
        plugin.call("empty", b"").unwrap();
        restart.push(t.elapsed());
        // Let the keeper start the next spare (and the kernel tear the killed instance's
        // namespaces down), as between failures spread in time.
        std::thread::sleep(Duration::from_millis(200));
    }
    let (km, _) = stats(kill);
    let (rm, rp99) = stats(restart);
    println!("timeout: returned           median {:7.1} µs after the deadline", us(km));
    println!("restart (next call, spare): median {:7.1} µs  p99 {:7.1} µs", us(rm), us(rp99));
    let mut cold = Vec::new();
    for _ in 0..20 {
        assert_eq!(plugin.call("spin", b""), Err(CallError::Timeout));
        let t = Instant::now();
        plugin.call("empty", b"").unwrap();
        cold.push(t.elapsed());
        assert_eq!(plugin.call("spin", b""), Err(CallError::Timeout));
        std::thread::sleep(Duration::from_millis(30));
    }
    let (cm, _) = stats(cold);
    println!("restart, two timeouts in a row: median {:7.1} µs", us(cm));
    // Three traps in a row (each fails in microseconds): the third instance was asked for
    // when the second was taken, a millisecond ago, and is still starting.
    let mut cold = Vec::new();
    for _ in 0..20 {
        for _ in 0..2 {
            assert!(matches!(plugin.call("trap", b""), Err(CallError::Trap { .. })));
        }
        let t = Instant::now();
        plugin.call("empty", b"").unwrap();
        cold.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (cm, p99) = stats(cold);
    println!("restart, cold (2 traps in a row): median {:7.1} µs  max {:7.1} µs", us(cm), us(p99));

    // In process, with the engine directly: the same export, no confinement, no channel.
    let engine = engine::Engine::new(engine::Config::default()).unwrap();
    let module = engine::Module::new(&engine, &wasm).unwrap();
    let mut store = engine::Store::new(&engine);
    let imports: Vec<engine::Extern> = module
        .imports()
        .into_iter()
        .map(|(_, _, ty)| match ty {
            engine::ExternType::Func(ft) => engine::Extern::Func(store.new_host_func(ft, |_, _, r| {
                if let Some(r) = r.first_mut() {
                    *r = engine::Val::I32(0);
                }
                Ok(())
            })),
            _ => unreachable!(),
        })
        .collect();
    let instance = store.instantiate(&module, &imports).unwrap();
    let empty = store.get_func(instance, "empty").unwrap();
    let (m, p99) = time(200_000, || drop(store.call(empty, &[]).unwrap()));
    println!("in process, engine directly: median {:7.3} µs  p99 {:7.3} µs (empty export)", us(m), us(p99));
    let ping = store.get_func(instance, "ping").unwrap();
    let (m, _) = time(20, || drop(store.call(ping, &[engine::Val::I32(n)]).unwrap()));
    println!("in process, host function:   median {:7.3} µs", us(m) / n as f64);
    let work = store.get_func(instance, "work").unwrap();
    let (local_work, _) = time(10, || drop(store.call(work, &[engine::Val::I32(WORK)]).unwrap()));
    println!(
        "in process, compute-bound:   median {:7.1} ms  (the plugin call: {:.3}×)",
        local_work.as_secs_f64() * 1e3,
        plugin_work.as_secs_f64() / local_work.as_secs_f64()
    );
    if let Some(sandboxrun) = std::env::var_os("SANDBOXRUN") {
        // The same empty export as one confined run a call (no host function to import).
        let file = std::env::temp_dir().join(format!("roundtrip-{}.wat", std::process::id()));
        std::fs::write(&file, "(module (func (export \"empty\")))").unwrap();
        let (m, p99) = time(50, || {
            let o = std::process::Command::new(&sandboxrun).args(["--invoke", "empty"]).arg(&file).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        });
        println!("one sandboxrun run a call:   median {:7.1} µs  p99 {:7.1} µs", us(m), us(p99));
        let _ = std::fs::remove_file(&file);
    }
    println!("{:?}", plugin.stats());
}
