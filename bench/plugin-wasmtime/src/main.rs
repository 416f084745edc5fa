//! The Wasmtime column of `plugin/examples/roundtrip.rs`: the same module's `empty` export
//! and its compute-bound `work` export, called in-process by Wasmtime (the WASI and host
//! imports are stubs: these two exports never call them).
//!
//! `cargo run --release` (in this folder)

use std::time::{Duration, Instant};
use wasmtime::{Engine, Instance, Linker, Module, Store};

/// Rounds of the compute-bound call, as in the round-trip benchmark.
const WORK: i32 = 200_000_000;

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn main() -> wasmtime::Result<()> {
    let engine = Engine::default();
    let module = Module::new(&engine, include_str!("../../../plugin/examples/roundtrip.wat"))?;
    let mut linker = Linker::new(&engine);
    for (module, name) in [("wasi_snapshot_preview1", "fd_read"), ("wasi_snapshot_preview1", "fd_write"), ("host", "log")] {
        linker.func_wrap(module, name, |_: i32, _: i32, _: i32, _: i32| -> i32 { 0 })?;
    }
    let mut store = Store::new(&engine, ());
    let instance: Instance = linker.instantiate(&mut store, &module)?;
    let empty = instance.get_typed_func::<(), ()>(&mut store, "empty")?;
    let work = instance.get_typed_func::<i32, i32>(&mut store, "work")?;
    for _ in 0..10_000 {
        empty.call(&mut store, ())?;
    }
    let calls: Vec<Duration> = (0..100_000)
        .map(|_| {
            let t = Instant::now();
            empty.call(&mut store, ()).expect("call");
            t.elapsed()
        })
        .collect();
    let (median, p99) = stats(calls);
    println!("wasmtime in-process empty call: median {median:?}, p99 {p99:?}");
    let rounds: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(work.call(&mut store, WORK).expect("call"));
            t.elapsed()
        })
        .collect();
    let (median, _) = stats(rounds);
    println!("wasmtime in-process compute-bound call ({WORK} rounds): median {median:?}");
    Ok(())
}
