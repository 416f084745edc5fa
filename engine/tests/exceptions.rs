//! Exception handling on hand-written WAT: throwing and catching across functions and
//! `call_indirect`, rethrowing, exceptions reaching the host (named by their tag), host
//! errors not caught as exceptions, a million throws in constant memory and stack, exact instruction
//! counts across throws, the legacy encoding, and code that does not use exceptions compiled
//! as before.

mod common;

use common::{call, instantiate, trap_kind};
use engine::*;

/// Held by every test: the memory test measures the whole process.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn engine(bounds: BoundsStrategy) -> Engine {
    Engine::new(Config { bounds: Some(bounds), ..Config::default() }).expect("engine")
}

fn counting() -> Engine {
    Engine::new(Config { count_instructions: true, ..Config::default() }).expect("engine")
}

const ACROSS: &str = r#"
(module
  (tag $e (export "e") (param i32 i64))
  (tag $other (param f64))
  (type $v (func (param i32)))
  (table funcref (elem $middle))
  (func $thrower (param i32)
    (if (i32.eq (local.get 0) (i32.const 2)) (then (throw $other (f64.const 1.5))))
    (throw $e (local.get 0) (i64.const 40)))
  ;; A frame without handlers between the thrower and the catcher.
  (func $middle (param i32) (local i32)
    (local.set 1 (i32.const 99))
    (call $thrower (local.get 0))
    (unreachable))
  (func (export "indirect") (param i32) (result i64)
    (local $keep i64) (local $b i64)
    (local.set $keep (i64.const 2))
    (block $h (result i32 i64)
      (try_table (catch $e $h)
        (call_indirect (type $v) (local.get 0) (i32.const 0)))
      (return (i64.const -1)))
    ;; The payload, and a local set before the call survived the unwind.
    (local.set $b)
    (i64.add (i64.extend_i32_u) (local.get $b))
    (i64.add (local.get $keep)))
  ;; An exception no clause matches goes on to the outer handler, here in the caller.
  (func $inner (param i32) (result i32)
    (block $h (result i32 i64)
      (try_table (catch $e $h) (call $middle (local.get 0)))
      (return (i32.const 0)))
    (drop))
  (func (export "outer") (param i32) (result f64)
    (block $h (result f64)
      (try_table (catch $other $h) (drop (call $inner (local.get 0))))
      (f64.const 0))))
"#;

#[test]
fn throw_and_catch_across_functions_and_call_indirect() {
    let _serial = serial();
    for bounds in [BoundsStrategy::GuardPages, BoundsStrategy::Explicit] {
        let (mut store, i) = instantiate(&engine(bounds), ACROSS);
        assert_eq!(call(&mut store, i, "indirect", &[Val::I32(1)]).unwrap(), [Val::I64(43)]);
        assert_eq!(call(&mut store, i, "outer", &[Val::I32(2)]).unwrap(), [Val::F64(1.5f64.to_bits())]);
        // Caught by $inner: $outer's handler sees nothing.
        assert_eq!(call(&mut store, i, "outer", &[Val::I32(1)]).unwrap(), [Val::F64(0)]);
    }
}

const RETHROW: &str = r#"
(module
  (tag $e (param i32))
  (func $throw (param i32) (throw $e (local.get 0)))
  ;; Catches with the reference, then throws it again from another frame.
  (func $catch_and_rethrow (param i32)
    (block $h (result i32 exnref)
      (try_table (catch_ref $e $h) (call $throw (local.get 0)))
      (return))
    (throw_ref (call $pass)))
  (func $pass (param i32 exnref) (result exnref) (local.get 1))
  (func (export "rethrown") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (call $catch_and_rethrow (local.get 0)))
      (i32.const -1)))
  (func (export "null") (throw_ref (ref.null exn)))
  ;; A handler branching back to a loop: retry until the thrower gives up.
  (func $maybe (param i32) (if (local.get 0) (then (throw $e (local.get 0)))))
  (func (export "retry") (param i32) (result i32) (local $tries i32)
    (i32.const 0)
    (loop $again (param i32)
      (drop)
      (local.set $tries (i32.add (local.get $tries) (i32.const 1)))
      (try_table (catch $e $again) (call $maybe (i32.sub (local.get 0) (local.get $tries)))))
    (local.get $tries)))
"#;

#[test]
fn a_caught_exception_is_thrown_again_with_throw_ref() {
    let _serial = serial();
    let (mut store, i) = instantiate(&engine(BoundsStrategy::GuardPages), RETHROW);
    assert_eq!(call(&mut store, i, "rethrown", &[Val::I32(7)]).unwrap(), [Val::I32(7)]);
    assert_eq!(trap_kind(call(&mut store, i, "null", &[])), TrapKind::NullExceptionReference);
    assert_eq!(call(&mut store, i, "retry", &[Val::I32(3)]).unwrap(), [Val::I32(3)]);
}

const UNCAUGHT: &str = r#"
(module
  (tag $boom (export "boom") (param i32))
  (tag $quiet)
  (func (export "throw") (throw $boom (i32.const 1)))
  (func (export "quiet") (throw $quiet))
  (func (export "deep") (param i32)
    (if (local.get 0) (then (call 2 (i32.sub (local.get 0) (i32.const 1)))) (else (throw $quiet)))))
"#;

#[test]
fn an_uncaught_exception_reaches_the_host_named_by_its_tag() {
    let _serial = serial();
    let (mut store, i) = instantiate(&engine(BoundsStrategy::GuardPages), UNCAUGHT);
    let trap = match call(&mut store, i, "throw", &[]) {
        Err(CallError::Trap(t)) => t,
        other => panic!("expected an uncaught exception, got {other:?}"),
    };
    assert_eq!(trap.kind, TrapKind::UncaughtException);
    assert_eq!(trap.tag.as_deref(), Some("'boom'"));
    assert_eq!(trap.to_string(), "wasm trap: uncaught exception (tag 'boom')");
    // A tag not exported is named by its index.
    match call(&mut store, i, "deep", &[Val::I32(100)]) {
        Err(CallError::Trap(t)) => assert_eq!(t.tag.as_deref(), Some("1")),
        other => panic!("expected an uncaught exception, got {other:?}"),
    }
    // The store is usable afterwards.
    assert_eq!(trap_kind(call(&mut store, i, "quiet", &[])), TrapKind::UncaughtException);
}

#[test]
fn a_host_error_is_not_an_exception() {
    let _serial = serial();
    // A host function's error unwinds the wasm frames like a trap: no handler catches it.
    // (Host functions cannot call into wasm, so no exception ever crosses one.)
    let engine = engine(BoundsStrategy::GuardPages);
    let module = Module::new(
        &engine,
        br#"(module
          (import "m" "host" (func $host))
          (func (export "run") (result i32)
            (block $h (try_table (catch_all $h) (call $host)) (return (i32.const 0)))
            (i32.const 1)))"#,
    )
    .expect("compiles");
    let mut store = Store::new(&engine);
    let host = store.new_host_func(FuncType::new([], []), |_, _, _| Err("host failure".into()));
    let i = store.instantiate(&module, &[Extern::Func(host)]).expect("instantiates");
    match call(&mut store, i, "run", &[]) {
        Err(CallError::Host(e)) => assert_eq!(e.to_string(), "host failure"),
        other => panic!("expected the host's error, got {other:?}"),
    }
}

/// RSS of this process in bytes.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm.split_whitespace().nth(1).expect("rss").parse().expect("number");
    pages * 4096
}

const LOOP: &str = r#"
(module
  (tag $e (param i32))
  (func $throw (param i32) (throw $e (local.get 0)))
  (func (export "run") (param i32) (result i32) (local $sum i32)
    (loop $l
      (block $h (result i32)
        (try_table (catch $e $h) (call $throw (local.get 0)))
        (unreachable))
      (local.set $sum (i32.add (local.get $sum)))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (local.get $sum)))
"#;

#[test]
fn a_million_throws_run_in_constant_memory_and_stack() {
    let _serial = serial();
    let (mut store, i) = instantiate(&engine(BoundsStrategy::GuardPages), LOOP);
    // Warm up, then measure: a leak of even one exception object (32 bytes) or a stack slot per
    // throw would show as megabytes (or overflow the 1 MiB wasm stack).
    assert_eq!(call(&mut store, i, "run", &[Val::I32(1000)]).unwrap(), [Val::I32(500500)]);
    let before = resident();
    let n = 1_000_000i32;
    let sum = (i64::from(n) * i64::from(n + 1) / 2) as i32;
    assert_eq!(call(&mut store, i, "run", &[Val::I32(n)]).unwrap(), [Val::I32(sum)]);
    let grown = resident().saturating_sub(before);
    assert!(grown < 4 << 20, "resident memory grew by {grown} bytes over a million throws");
}

#[test]
fn instruction_counts_stay_exact_across_throws() {
    let _serial = serial();
    let engine = counting();
    let (mut store, i) = instantiate(&engine, LOOP);
    // Per iteration: block, try_table, local.get, call; in $throw: local.get, throw; then
    // local.get, i32.add, local.set, local.get, i32.const, i32.sub, local.tee, br_if = 14. Once:
    // the loop (its back edge goes to its header), its end, local.get and the function's end.
    for n in [1u64, 2, 10] {
        store.set_instruction_budget(1 << 40).unwrap();
        call(&mut store, i, "run", &[Val::I32(n as i32)]).unwrap();
        assert_eq!(store.instructions_used(), Some(14 * n + 4), "n = {n}");
    }
    // An uncaught exception keeps the count: i32.const, throw.
    let (mut store, i) = instantiate(&engine, UNCAUGHT);
    store.set_instruction_budget(1 << 40).unwrap();
    assert_eq!(trap_kind(call(&mut store, i, "throw", &[])), TrapKind::UncaughtException);
    assert_eq!(store.instructions_used(), Some(2));
}

const LEGACY: &str = r#"
(module
  (tag $e (param i32))
  (tag $f)
  (func $throw (param i32) (throw $e (local.get 0)))
  (func (export "catch") (param i32) (result i32)
    try (result i32)
      (call $throw (local.get 0))
      (i32.const 0)
    catch $f
      (i32.const -1)
    catch $e
      (i32.add (i32.const 1))
    end)
  (func (export "catch_all") (result i32)
    try (result i32)
      (throw $f)
    catch_all
      (i32.const 5)
    end)
  ;; rethrow from a catch body, caught by the outer try.
  (func (export "rethrow") (param i32) (result i32)
    try (result i32)
      try (result i32)
        (call $throw (local.get 0))
        (i32.const 0)
      catch $e
        drop
        rethrow 0
      end
    catch $e
      (i32.mul (i32.const 10))
    end)
  ;; delegate skips the middle try's catch_all and goes to the outer try.
  (func (export "delegate") (result i32)
    try (result i32)
      try (result i32)
        try
          (call $throw (i32.const 3))
        delegate 1
        (i32.const 0)
      catch_all
        (i32.const -1)
      end
    catch $e
    end)
  ;; delegate to the function's label: the caller gets it.
  (func $to_caller
    try
      (call $throw (i32.const 4))
    delegate 0)
  (func (export "delegate_out") (result i32)
    try (result i32)
      (call $to_caller)
      (i32.const 0)
    catch $e
    end)
  ;; A catch body nothing can reach, using a local.
  (func (export "never") (param i32) (result i32)
    try (result i32)
      (local.get 0)
    catch_all
      (local.get 0)
      (i32.const 1)
      i32.add
    end))
"#;

#[test]
fn the_legacy_encoding_runs_on_the_same_machinery() {
    let _serial = serial();
    for engine in [engine(BoundsStrategy::GuardPages), counting()] {
        let (mut store, i) = instantiate(&engine, LEGACY);
        assert_eq!(call(&mut store, i, "catch", &[Val::I32(41)]).unwrap(), [Val::I32(42)]);
        assert_eq!(call(&mut store, i, "catch_all", &[]).unwrap(), [Val::I32(5)]);
        assert_eq!(call(&mut store, i, "rethrow", &[Val::I32(4)]).unwrap(), [Val::I32(40)]);
        assert_eq!(call(&mut store, i, "delegate", &[]).unwrap(), [Val::I32(3)]);
        assert_eq!(call(&mut store, i, "delegate_out", &[]).unwrap(), [Val::I32(4)]);
        assert_eq!(call(&mut store, i, "never", &[Val::I32(6)]).unwrap(), [Val::I32(6)]);
    }
}

#[test]
fn code_without_exceptions_compiles_as_before() {
    let _serial = serial();
    // The same functions, once alone and once beside a tag and a function with a handler:
    // the artifact grows by the new function and the tag only (no frame pointers, no handler
    // tables for the others).
    let plain = r#"(module
      (func $f (export "f") (param i32) (result i32) (call $g (local.get 0)))
      (func $g (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))"#;
    let engine = engine(BoundsStrategy::GuardPages);
    let code = |wat: &str| {
        let (_, artifact) = Module::compile(&engine, &wat::parse_str(wat).unwrap()).unwrap();
        artifact.to_bytes()
    };
    let alone = code(plain);
    let beside = code(&plain.replace("(module", "(module (tag $t) (func $h (try_table (catch_all 0) (throw $t)))"));
    // The text starts at the artifact's first page boundary (its header is smaller) with $f,
    // then $g: both artifacts hold that code byte for byte ($f's call to $g is PC-relative
    // and they are laid out alike).
    let page = 4096;
    let f_and_g = &alone[page..page + 48];
    assert!(f_and_g.iter().any(|b| *b != 0), "the text is where expected");
    assert!(beside.windows(f_and_g.len()).any(|w| w == f_and_g), "the plain functions' code changed");
}

#[test]
fn a_tag_is_one_tag_wherever_it_is_imported() {
    let _serial = serial();
    let engine = engine(BoundsStrategy::GuardPages);
    let mut store = Store::new(&engine);
    let tag = store.new_tag(FuncType::new([ValType::I32], [])).expect("tag");
    assert!(store.new_tag(FuncType::new([], [ValType::I32])).is_err(), "a tag's type has no results");
    let thrower = Module::new(
        &engine,
        br#"(module (import "h" "t" (tag $t (param i32)))
             (func (export "throw") (param i32) (throw $t (local.get 0))))"#,
    )
    .expect("compiles");
    let a = store.instantiate(&thrower, &[Extern::Tag(tag)]).expect("instantiates");
    let throw = store.get_export(a, "throw").expect("export");
    // Another module catches it by the same import: the tag is the same.
    let catcher = Module::new(
        &engine,
        br#"(module (import "h" "t" (tag $t (param i32))) (import "a" "throw" (func $throw (param i32)))
             (tag $mine (param i32))
             (func (export "run") (param i32) (result i32)
               (block $h (result i32)
                 (try_table (catch $mine $h) (catch $t $h) (call $throw (local.get 0)))
                 (i32.const -1))))"#,
    )
    .expect("compiles");
    let b = store.instantiate(&catcher, &[Extern::Tag(tag), throw]).expect("instantiates");
    assert_eq!(call(&mut store, b, "run", &[Val::I32(9)]).unwrap(), [Val::I32(9)]);
    match call(&mut store, a, "throw", &[Val::I32(1)]) {
        Err(CallError::Trap(t)) => assert_eq!(t.tag.as_deref(), Some("host 0")),
        other => panic!("expected an uncaught exception, got {other:?}"),
    }
    // A tag of another type does not link.
    let other = store.new_tag(FuncType::new([ValType::I64], [])).expect("tag");
    assert!(store.instantiate(&thrower, &[Extern::Tag(other)]).is_err());
}

const KEPT: &str = r#"
(module
  (tag $e (param i32))
  (tag $wrap (param exnref))
  (global $saved (mut exnref) (ref.null exn))
  (table $t 1 exnref)
  (func $throw (param i32) (throw $e (local.get 0)))
  ;; Caught with its reference and thrown again (as C++ cleanups do).
  (func (export "rethrow_loop") (param i32) (result i32) (local $sum i32)
    (loop $l
      (block $outer (result i32)
        (try_table (catch $e $outer)
          (block $h (result exnref)
            (try_table (catch_all_ref $h) (call $throw (local.get 0)))
            (unreachable))
          (throw_ref))
        (unreachable))
      (local.set $sum (i32.add (local.get $sum)))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (local.get $sum))
  ;; Keeps caught exceptions in a global, a table and another exception's payload.
  (func $catch (param i32) (result exnref)
    (block $h (result exnref)
      (try_table (catch_all_ref $h) (call $throw (local.get 0)))
      (unreachable)))
  (func (export "save") (param i32)
    (global.set $saved (call $catch (local.get 0)))
    (table.set $t (i32.const 0) (call $catch (i32.add (local.get 0) (i32.const 1)))))
  (func (export "rethrow_saved") (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (throw_ref (global.get $saved)))
      (i32.const -1)))
  (func (export "rethrow_table") (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (throw_ref (table.get $t (i32.const 0))))
      (i32.const -1)))
  (func (export "get") (result exnref) (global.get $saved))
  (func (export "save_wrapped") (param i32)
    (block $h (result exnref exnref)
      (try_table (catch_ref $wrap $h) (throw $wrap (call $catch (local.get 0))))
      (unreachable))
    (global.set $saved)
    (drop))
  (func (export "rethrow_unwrapped") (result i32)
    (block $h (result i32)
      (try_table (catch $e $h)
        (block $w (result exnref)
          (try_table (catch $wrap $w) (throw_ref (global.get $saved)))
          (unreachable))
        (throw_ref))
      (i32.const -1)))
  (func (export "rethrow") (param exnref) (result i32)
    (block $h (result i32)
      (try_table (catch $e $h) (throw_ref (local.get 0)))
      (i32.const -1))))
"#;

#[test]
fn exceptions_kept_by_reference_live_as_long_as_something_holds_them() {
    let _serial = serial();
    let (mut store, i) = instantiate(&engine(BoundsStrategy::GuardPages), KEPT);
    assert_eq!(call(&mut store, i, "rethrow_loop", &[Val::I32(1000)]).unwrap(), [Val::I32(500500)]);
    // Exceptions caught by reference are kept until the host's call returns (a local may hold
    // them), then freed: a million of them over a hundred calls run in constant memory.
    let before = resident();
    for _ in 0..100 {
        assert_eq!(call(&mut store, i, "rethrow_loop", &[Val::I32(10_000)]).unwrap(), [Val::I32(50_005_000)]);
    }
    let grown = resident().saturating_sub(before);
    assert!(grown < 4 << 20, "resident memory grew by {grown} bytes over a million rethrows");

    // Kept across calls (each return to the host collects what nothing holds).
    call(&mut store, i, "save", &[Val::I32(5)]).unwrap();
    call(&mut store, i, "rethrow_loop", &[Val::I32(10)]).unwrap();
    assert_eq!(call(&mut store, i, "rethrow_saved", &[]).unwrap(), [Val::I32(5)]);
    assert_eq!(call(&mut store, i, "rethrow_table", &[]).unwrap(), [Val::I32(6)]);
    // One the host holds stays valid, even once the global lets go of it.
    let held = call(&mut store, i, "get", &[]).unwrap();
    call(&mut store, i, "save", &[Val::I32(7)]).unwrap();
    assert_eq!(call(&mut store, i, "rethrow", &held).unwrap(), [Val::I32(5)]);
    assert_eq!(trap_kind(call(&mut store, i, "rethrow", &[Val::ExnRef(None)])), TrapKind::NullExceptionReference);
    // One only another kept exception's payload refers to.
    call(&mut store, i, "save_wrapped", &[Val::I32(11)]).unwrap();
    call(&mut store, i, "rethrow_loop", &[Val::I32(10)]).unwrap();
    assert_eq!(call(&mut store, i, "rethrow_unwrapped", &[]).unwrap(), [Val::I32(11)]);
}

/// Exceptions caught by reference, or passing through cleanups that rethrow them (C++
/// destructors: `catch_all_ref` + `throw_ref`, the legacy `catch_all` + `rethrow`), in a call
/// that never returns to the host: the dead ones are collected during the call, so a million
/// throws run under a 2 MiB limit that about 18,000 live objects would fill.
const DROPPED: &str = r#"(module
  (memory 1)
  (tag $e (param i64 i64 i64 i64))
  (func (export "by_ref") (param $n i32)
    (loop $l
      (block $h (result exnref)
        (try_table (catch_all_ref $h)
          (throw $e (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4)))
        unreachable)
      drop
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func $cleanup_ref
    (block $h (result exnref)
      (try_table (catch_all_ref $h) (throw $e (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4)))
      (return))
    (throw_ref))
  (func (export "through_cleanups") (param $n i32)
    (loop $l
      (block $c (result i64 i64 i64 i64)
        (try_table (catch $e $c) (call $cleanup_ref))
        unreachable)
      drop drop drop drop
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func $cleanup_legacy
    try
      (throw $e (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4))
    catch_all
      rethrow 0
    end)
  (func (export "through_legacy_cleanups") (param $n i32)
    (loop $l
      try
        call $cleanup_legacy
      catch $e
        drop drop drop drop
      end
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))"#;

#[test]
fn dead_exceptions_are_collected_during_a_call_that_never_returns() {
    let _serial = serial();
    for bounds in [BoundsStrategy::GuardPages, BoundsStrategy::Explicit] {
        let engine = engine(bounds);
        let module = Module::new(&engine, DROPPED.as_bytes()).unwrap();
        let mut store = Store::new(&engine);
        store.set_memory_limit(2 << 20);
        let i = store.instantiate(&module, &[]).unwrap();
        for name in ["by_ref", "through_cleanups", "through_legacy_cleanups"] {
            call(&mut store, i, name, &[Val::I32(1_000_000)]).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(!store.memory_grow_refused());
    }
}

/// Exceptions that stay reachable are never collected: a chain of 50,000, each holding the
/// previous one in its payload and the newest in a local, built while junk exceptions are
/// thrown and collected around it (their memory reused), reads back intact — every link's
/// number, in order. A chain longer than the memory limit allows ends the call with
/// `ExceptionsOutOfMemory` (reported like a refused `memory.grow`); once the call is over,
/// the objects are freed and the next call works.
const CHAIN: &str = r#"(module
  (memory 1)
  (tag $link (param exnref i64))
  (tag $junk (param i64 i64 i64))
  (func (export "chain") (param $n i64) (result i64)
    (local $head exnref) (local $i i64) (local $sum i64) (local $expect i64)
    (loop $build
      ;; Junk, caught by reference and dropped: collectable at once.
      (block $j (result exnref)
        (try_table (catch_all_ref $j) (throw $junk (local.get $i) (local.get $i) (local.get $i)))
        unreachable)
      drop
      (block $h (result exnref)
        (try_table (catch_all_ref $h) (throw $link (local.get $head) (local.get $i)))
        unreachable)
      (local.set $head)
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $build (i64.lt_u (local.get $i) (local.get $n))))
    ;; Walk back: each link holds i, the one before i - 1.
    (local.set $expect (local.get $n))
    (loop $walk
      (local.set $expect (i64.sub (local.get $expect) (i64.const 1)))
      (block $c (result exnref i64)
        (try_table (catch $link $c) (throw_ref (local.get $head)))
        unreachable)
      (if (i64.ne (local.get $expect)) (then unreachable))
      (local.set $head)
      (local.set $sum (i64.add (local.get $sum) (i64.const 1)))
      (br_if $walk (i32.eqz (ref.is_null (local.get $head)))))
    (local.get $sum)))"#;

#[test]
fn reachable_exceptions_survive_collections_and_stop_at_the_memory_limit() {
    let _serial = serial();
    for bounds in [BoundsStrategy::GuardPages, BoundsStrategy::Explicit] {
        let engine = engine(bounds);
        let module = Module::new(&engine, CHAIN.as_bytes()).unwrap();
        let mut store = Store::new(&engine);
        store.set_memory_limit(16 << 20);
        let i = store.instantiate(&module, &[]).unwrap();
        assert_eq!(call(&mut store, i, "chain", &[Val::I64(50_000)]).unwrap(), [Val::I64(50_000)]);
        assert!(!store.memory_grow_refused());
        store.set_memory_limit(2 << 20);
        assert_eq!(trap_kind(call(&mut store, i, "chain", &[Val::I64(1_000_000)])), TrapKind::ExceptionsOutOfMemory);
        assert!(store.memory_grow_refused(), "the limit's refusal is reported like a refused memory.grow");
        // The objects were freed when the call returned: well under the limit again.
        assert_eq!(call(&mut store, i, "chain", &[Val::I64(10_000)]).unwrap(), [Val::I64(10_000)]);
    }
}
