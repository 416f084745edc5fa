//! An example host: loads `greeter.wat` (compiled here with `wat`; a C plugin built with
//! wasi-sdk works the same), offers it two host functions — `log` and a key-value lookup
//! `kv_get` — calls it, then shows a timeout and the restart that follows (the instance's
//! state is lost).
//!
//! `cargo run -p plugin --example plugins`

use sandboxrun_plugin::{CallError, OnFailure, Plugin};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn main() {
    // First thing, before any thread: the library starts this executable again as its
    // instance keeper, and there this call never returns.
    sandboxrun_plugin::run_if_child();

    let wasm = wat::parse_str(include_str!("greeter.wat")).expect("greeter.wat");
    let store: HashMap<&[u8], &[u8]> = [(&b"ada"[..], &b"Hello"[..]), (b"grace", b"Good evening")].into();
    let plugin = Plugin::builder(wasm)
        .call_timeout(Duration::from_millis(100))
        .on_failure(OnFailure::Restart { max_per_minute: 10 })
        .host_fn("log", |line| {
            println!("  [host log, pid {}] {}", std::process::id(), String::from_utf8_lossy(line));
            Ok(Vec::new())
        })
        .host_fn("kv_get", move |key| Ok(store.get(key).copied().unwrap_or(b"Hi").to_vec()))
        .build()
        .unwrap_or_else(|e| panic!("the plugin did not start: {e}"));

    for name in ["ada", "grace", "linus"] {
        let out = plugin.call("greet", name.as_bytes()).expect("greet");
        println!("greet({name}) = {}", String::from_utf8_lossy(&out));
    }
    println!("visits: {}", String::from_utf8_lossy(&plugin.call("visits", b"").unwrap()));
    println!("visits: {}", String::from_utf8_lossy(&plugin.call("visits", b"").unwrap()));

    let t = Instant::now();
    match plugin.call("hang", b"") {
        Err(CallError::Timeout) => println!("hang: timed out after {:?}; the instance was killed", t.elapsed()),
        other => panic!("expected a timeout, got {other:?}"),
    }
    let t = Instant::now();
    let visits = plugin.call("visits", b"").unwrap();
    println!(
        "visits: {} (a fresh instance: the count restarted; this call took {:?}, restart included)",
        String::from_utf8_lossy(&visits),
        t.elapsed()
    );
    println!("{:?}", plugin.stats());
}
