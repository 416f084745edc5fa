//! Shared by the plugin tests: the WAT plugins (compiled at test time with `wat`), and a tiny
//! runner — each test binary is a plain `main` that calls `run_if_child()` first (the library
//! re-executes it as the instance keeper), then runs its checks one by one.

#![allow(dead_code)]

use std::time::Instant;

/// The WASI imports every test plugin uses, and helpers: `$read_all` reads stdin to 1024..,
/// returning its length; `$write` writes (ptr, len) to stdout.
const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
"#;

const BODY: &str = r#"
  (memory (export "memory") 96)
  (global $counter (mut i32) (i32.const 0))
  (global $heap (mut i32) (i32.const 0x200000))
  ;; Reads stdin into 1024.. (at most 2 MiB); returns its length.
  (func $read_all (result i32) (local $n i32)
    (loop $l
      (i32.store (i32.const 0) (i32.add (i32.const 1024) (local.get $n)))
      (i32.store (i32.const 4) (i32.sub (i32.const 0x200000) (local.get $n)))
      (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
      (local.set $n (i32.add (local.get $n) (i32.load (i32.const 16))))
      (br_if $l (i32.ne (i32.load (i32.const 16)) (i32.const 0))))
    (local.get $n))
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 32) (local.get $ptr))
    (i32.store (i32.const 36) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40))))
  (func (export "echo") (call $write (i32.const 1024) (call $read_all)))
  (func (export "empty"))
  ;; The number of calls so far, as one byte: state kept between calls.
  (func (export "count")
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (i32.store8 (i32.const 100) (global.get $counter))
    (call $write (i32.const 100) (i32.const 1)))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "add64") (param i64 f64) (result i64 f64) (local.get 0) (local.get 1))
  (func (export "trap") unreachable)
  (func (export "spin") (loop $l (br $l)))
  ;; poll_oneoff on a one-hour clock.
  (func (export "sleep")
    (i64.store (i32.const 200) (i64.const 0))
    (i32.store8 (i32.const 208) (i32.const 0))
    (i32.store (i32.const 216) (i32.const 1))
    (i64.store (i32.const 224) (i64.const 3600000000000))
    (i64.store (i32.const 232) (i64.const 0))
    (i32.store16 (i32.const 240) (i32.const 0))
    (drop (call $poll (i32.const 200) (i32.const 300) (i32.const 1) (i32.const 400))))
  ;; Grows until refused, then traps (what a guest's allocator does).
  (func (export "grow")
    (loop $l
      (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
      (br $l)))
  (func (export "exit") (call $exit (i32.const 3)))
  ;; Writes 64 KiB chunks forever: the captured output grows past the process's memory.
  (func (export "flood")
    (loop $l (call $write (i32.const 0) (i32.const 0x10000)) (br $l)))
  ;; Pointer ABI: a bump allocator, and an in-place upper-casing of ASCII.
  (func (export "malloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "free") (param i32))
  (func (export "upper") (param $p i32) (param $n i32) (local $i i32) (local $c i32)
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
      (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
        (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l))))
"#;

/// The plain test plugin (no host functions).
pub fn plain() -> Vec<u8> {
    wat::parse_str(format!("(module {PRELUDE} {BODY})")).expect("valid WAT")
}

/// The same plugin with a `version` export answering `v` (for reloads).
pub fn versioned(v: u8) -> Vec<u8> {
    wat::parse_str(format!(
        "(module {PRELUDE} {BODY} (func (export \"version\") (i32.store8 (i32.const 101) (i32.const {v})) (call $write (i32.const 101) (i32.const 1))))"
    ))
    .expect("valid WAT")
}

/// A plugin importing host functions `host.kv` and `host.log`: `lookup` sends its stdin to
/// `kv` and writes the answer; `logged` logs its stdin and writes nothing.
pub fn with_host() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {PRELUDE}
          (import "host" "kv" (func $kv (param i32 i32 i32 i32) (result i32)))
          (import "host" "log" (func $log (param i32 i32 i32 i32) (result i32)))
          {BODY}
          (func (export "lookup") (local $n i32) (local $r i32)
            (local.set $n (call $read_all))
            (local.set $r (call $kv (i32.const 1024) (local.get $n) (i32.const 0x300000) (i32.const 0x100000)))
            (call $write (i32.const 0x300000) (local.get $r)))
          (func (export "logged")
            (drop (call $log (i32.const 1024) (call $read_all) (i32.const 0) (i32.const 0)))))"#
    ))
    .expect("valid WAT")
}

/// Runs named checks, printing one line each; exits 1 if any failed.
pub struct Checks {
    failed: Vec<String>,
}

impl Checks {
    /// A runner.
    pub fn new() -> Checks {
        Checks { failed: Vec::new() }
    }

    /// Runs one check (a panic fails it).
    pub fn run(&mut self, name: &str, f: impl FnOnce()) {
        let t = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(()) => println!("ok   {name} ({:.0} ms)", t.elapsed().as_secs_f64() * 1000.0),
            Err(_) => {
                println!("FAIL {name}");
                self.failed.push(name.to_string());
            }
        }
    }

    /// Exits with the verdict.
    pub fn finish(self) {
        if self.failed.is_empty() {
            println!("all passed");
        } else {
            println!("failed: {}", self.failed.join(", "));
            std::process::exit(1);
        }
    }
}
