//! Writes the committed seed corpus (`corpus/NAME`): run it again with
//! `cargo test -p fuzz --lib -- --ignored write_seed_corpus` after changing a target's input
//! format. Found crashes are added by hand, named `regression-*`, and are never rewritten.

use crate::runner::Rng;
use std::path::PathBuf;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "rewrites fuzz/corpus: run by hand"]
fn write_seed_corpus() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut rng = Rng::new(14);
    // wasm-smith choices that make modules (differential, internal_differential,
    // differential_wasmtime, compile).
    let mut made = 0;
    while made < 8 {
        let len = 256 + rng.below(4096);
        let choices = rng.bytes(len);
        let Some(wasm) = crate::smith::module(&choices) else { continue };
        write("differential", &format!("seed-{made}"), &choices);
        write("internal_differential", &format!("seed-{made}"), &choices);
        write("differential_wasmtime", &format!("seed-{made}"), &choices);
        write("compile", &format!("smith-{made}.wasm"), &wasm);
        made += 1;
    }
    let hello = std::fs::read(root.join("examples/hello.wat")).unwrap();
    write("compile", "hello.wat", &hello);
    write("compile", "hello.wasm", &engine::module_info::wat_to_binary(&hello).unwrap());
    // Artifacts of real modules (their identity goes stale; the target patches it in).
    let engine = crate::exec::engine(None);
    for (i, wasm) in [engine::module_info::wat_to_binary(&hello).unwrap().into_owned()].iter().enumerate() {
        let (_, artifact) = engine::Module::compile(engine, wasm).unwrap();
        write("artifact", &format!("hello-{i}"), &artifact.to_bytes());
    }
    for i in 0..4 {
        let mut edits = vec![i as u8];
        edits.extend(rng.bytes(16));
        write("artifact", &format!("edits-{i}"), &edits);
    }
    // Policies.
    for (name, path) in [("grader.yaml", "examples/grader/policy.yaml"), ("bench.yaml", "bench/policy.yaml")] {
        write("policy", name, &std::fs::read(root.join(path)).unwrap());
    }
    write("policy", "empty.yaml", b"");
    write("policy", "minimal.yaml", b"version: 1\n");
    write("policy", "bad-mount.yaml", b"version: 1\nmounts:\n  - {host: /tmp, guest: relative, mode: rw}\n");
    write("policy", "tabs-and-anchors.yaml", b"version: 1\nenv: &e {A: b}\nargs: [*e, \"\\t\"]\n");
    // Path operation sequences (encoding: see `Choices` in targets/wasi_paths.rs; names by
    // index in `NAMES`: f0 d1 n4 m5 up6 esc7 abs8 .. 12 secret15 r16 x18 rup19).
    let sequences: &[(&str, &[u8])] = &[
        ("open-esc-write", &[0, 0, 0, 7, 0, 0, 2, 1, 10, 2, 0, 0, 0]),
        ("symlink-abs-then-creat-trunc", &[1, 0, 0, 4, 0, 2, 0, 5, 4, 18, 0, 0, 0, 0, 5, 4, 18, 0, 9, 2, 1]),
        ("rename-up", &[4, 0, 0, 6, 0, 0, 0, 5, 0]),
        ("link-esc", &[3, 0, 0, 7, 0, 0, 0, 5, 0, 0]),
        ("dir-fd-then-dotdot", &[0, 0, 0, 1, 0, 2, 0, 0, 1, 2, 0, 12, 0, 0, 2, 0, 12, 0, 2, 1]),
        ("set-times-abs", &[9, 0, 0, 8, 0, 1]),
        ("read-only-mutations", &[1, 1, 0, 4, 0, 5, 1, 0, 16, 0, 0, 1, 5, 19, 15, 0, 0, 2, 1]),
    ];
    for (name, bytes) in sequences {
        write("wasi_paths", name, bytes);
    }
    for i in 0..6 {
        write("wasi_paths", &format!("random-{i}"), &rng.bytes(64));
    }
}
