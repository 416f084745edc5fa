//! Engine behaviour on hand-written WAT: control flow, memory growth against the embedder's
//! limit, every trap kind, recovery after traps, host functions, both bounds strategies and
//! the artifact round trip.

mod common;

use common::{call, instantiate, trap_kind};
use engine::*;

fn engine(bounds: BoundsStrategy) -> Engine {
    Engine::new(Config { bounds: Some(bounds), ..Config::default() }).expect("engine")
}

const CONTROL: &str = r#"
(module
  (func (export "multi") (param i32) (result i32 i64)
    (block (result i32 i64) (local.get 0) (i64.const 7)))
  (func (export "swap") (param i32 i32) (result i32 i32)
    (local.get 1) (local.get 0)
    (block (param i32 i32) (result i32 i32)))
  (func (export "loop_sum") (param i32) (result i32) (local i32)
    (loop $l (param) (result)
      (local.set 1 (i32.add (local.get 1) (local.get 0)))
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (local.get 0)))
    (local.get 1))
  (func (export "table") (param i32) (result i32)
    (block $c (result i32)
      (block $b (result i32)
        (block $a (result i32)
          (i32.const 100)
          (br_table $a $b $c (local.get 0)))
        (i32.add (i32.const 1)) (return))
      (i32.add (i32.const 2)) (return))
    (i32.add (i32.const 3)))
  (func (export "dead") (param i32) (result i32)
    (block (result i32)
      (br 0 (local.get 0))
      (i32.add) (unreachable) (block (loop (if (i32.const 0) (then) (else)))) (drop)))
  (func (export "after_return") (result i32)
    (return (i32.const 5))
    (i64.const 1) (drop) (i32.add))
  (func (export "if_params") (param i32) (result i32)
    (i32.const 10)
    (if (param i32) (result i32) (local.get 0)
      (then (i32.const 1) (i32.add))
      (else (i32.const 2) (i32.sub))))
  (func $fac (export "fac") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 1))
      (else (i64.mul (local.get 0) (call $fac (i64.sub (local.get 0) (i64.const 1)))))))
)"#;

#[test]
fn control_flow() {
    let engine = engine(BoundsStrategy::GuardPages);
    let (mut store, i) = instantiate(&engine, CONTROL);
    assert_eq!(call(&mut store, i, "multi", &[Val::I32(3)]).unwrap(), vec![Val::I32(3), Val::I64(7)]);
    assert_eq!(call(&mut store, i, "swap", &[Val::I32(1), Val::I32(2)]).unwrap(), vec![Val::I32(2), Val::I32(1)]);
    assert_eq!(call(&mut store, i, "loop_sum", &[Val::I32(100)]).unwrap(), vec![Val::I32(5050)]);
    for (arg, want) in [(0, 101), (1, 102), (2, 103), (7, 103), (-1, 103)] {
        assert_eq!(call(&mut store, i, "table", &[Val::I32(arg)]).unwrap(), vec![Val::I32(want)], "br_table {arg}");
    }
    assert_eq!(call(&mut store, i, "dead", &[Val::I32(9)]).unwrap(), vec![Val::I32(9)]);
    assert_eq!(call(&mut store, i, "after_return", &[]).unwrap(), vec![Val::I32(5)]);
    assert_eq!(call(&mut store, i, "if_params", &[Val::I32(1)]).unwrap(), vec![Val::I32(11)]);
    assert_eq!(call(&mut store, i, "if_params", &[Val::I32(0)]).unwrap(), vec![Val::I32(8)]);
    assert_eq!(call(&mut store, i, "fac", &[Val::I64(20)]).unwrap(), vec![Val::I64(2432902008176640000)]);
}

const MEMORY: &str = r#"
(module
  (memory (export "mem") 1 100)
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "size") (result i32) (memory.size))
  (func (export "load") (param i32) (result i32) (i32.load (local.get 0)))
  (func (export "store") (param i32 i32) (i32.store (local.get 0) (local.get 1)))
  (func (export "load_far") (param i32) (result i32) (i32.load offset=0xfffffff0 (local.get 0)))
)"#;

fn memory_growth(bounds: BoundsStrategy) {
    let engine = engine(bounds);
    let module = Module::new(&engine, MEMORY.as_bytes()).unwrap();
    let mut store = Store::new(&engine);
    store.set_memory_limit(4 << 16); // four pages
    let i = store.instantiate(&module, &[]).unwrap();
    assert_eq!(call(&mut store, i, "size", &[]).unwrap(), vec![Val::I32(1)]);
    assert_eq!(call(&mut store, i, "grow", &[Val::I32(2)]).unwrap(), vec![Val::I32(1)]);
    assert_eq!(call(&mut store, i, "grow", &[Val::I32(1)]).unwrap(), vec![Val::I32(3)]);
    // At the embedder's limit: growing fails with -1 and the size stays.
    assert_eq!(call(&mut store, i, "grow", &[Val::I32(1)]).unwrap(), vec![Val::I32(-1)]);
    assert_eq!(call(&mut store, i, "size", &[]).unwrap(), vec![Val::I32(4)]);
    let last = (4 << 16) - 4;
    call(&mut store, i, "store", &[Val::I32(last), Val::I32(42)]).unwrap();
    assert_eq!(call(&mut store, i, "load", &[Val::I32(last)]).unwrap(), vec![Val::I32(42)]);
    assert_eq!(trap_kind(call(&mut store, i, "load", &[Val::I32(last + 1)])), TrapKind::MemoryOutOfBounds);
    assert_eq!(trap_kind(call(&mut store, i, "load", &[Val::I32(-1)])), TrapKind::MemoryOutOfBounds);
    assert_eq!(trap_kind(call(&mut store, i, "load_far", &[Val::I32(0x100)])), TrapKind::MemoryOutOfBounds);
    // The instance is still usable after the traps.
    assert_eq!(call(&mut store, i, "load", &[Val::I32(last)]).unwrap(), vec![Val::I32(42)]);
}

#[test]
fn memory_growth_with_guard_pages() {
    memory_growth(BoundsStrategy::GuardPages);
}

#[test]
fn memory_growth_with_explicit_checks() {
    memory_growth(BoundsStrategy::Explicit);
}

const TRAPS: &str = r#"
(module
  (type $v (func))
  (type $i (func (result i32)))
  (table 3 funcref)
  (elem (i32.const 0) $nop)
  (func $nop)
  (func (export "unreachable") (unreachable))
  (func (export "div0") (result i32) (i32.div_s (i32.const 1) (i32.const 0)))
  (func (export "overflow") (result i32) (i32.div_s (i32.const 0x80000000) (i32.const -1)))
  (func (export "nan") (result i32) (i32.trunc_f32_s (f32.const nan)))
  (func (export "too_big") (result i32) (i32.trunc_f64_s (f64.const 1e100)))
  (func (export "mismatch") (result i32) (call_indirect (type $i) (i32.const 0)))
  (func (export "null") (call_indirect (type $v) (i32.const 1)))
  (func (export "undefined") (call_indirect (type $v) (i32.const 5)))
  (func (export "table_oob") (drop (table.get (i32.const 7))))
  (func (export "memory_oob") (memory.fill (i32.const 0) (i32.const 0) (i32.const 70000)))
  (memory 1)
  (func $rec (export "recurse") (param i64) (result i64)
    (i64.add (i64.const 1) (call $rec (local.get 0))))
  (func (export "ok") (result i32) (i32.const 1))
)"#;

#[test]
fn every_trap_kind_then_recovery() {
    let engine = engine(BoundsStrategy::GuardPages);
    let (mut store, i) = instantiate(&engine, TRAPS);
    let cases = [
        ("unreachable", TrapKind::Unreachable),
        ("div0", TrapKind::IntegerDivideByZero),
        ("overflow", TrapKind::IntegerOverflow),
        ("nan", TrapKind::InvalidConversionToInteger),
        ("too_big", TrapKind::IntegerOverflow),
        ("mismatch", TrapKind::IndirectCallTypeMismatch),
        ("null", TrapKind::UninitializedElement),
        ("undefined", TrapKind::UndefinedElement),
        ("table_oob", TrapKind::TableOutOfBounds),
        ("memory_oob", TrapKind::MemoryOutOfBounds),
    ];
    for (name, kind) in cases {
        assert_eq!(trap_kind(call(&mut store, i, name, &[])), kind, "{name}");
        assert_eq!(call(&mut store, i, "ok", &[]).unwrap(), vec![Val::I32(1)], "usable after {name}");
    }
    match call(&mut store, i, "recurse", &[Val::I64(0)]) {
        Err(CallError::Trap(t)) => {
            assert_eq!(t.kind, TrapKind::StackOverflow);
            assert_eq!(t.function.as_ref().map(|f| f.1.as_str()), Some("rec"), "named by the name section");
        }
        other => panic!("expected stack overflow, got {other:?}"),
    }
    assert_eq!(call(&mut store, i, "ok", &[]).unwrap(), vec![Val::I32(1)]);
}

#[test]
fn trap_reports_function_and_offset() {
    let engine = engine(BoundsStrategy::GuardPages);
    let (mut store, i) = instantiate(&engine, r#"(module (func $boom (export "boom") (unreachable)))"#);
    match call(&mut store, i, "boom", &[]) {
        Err(CallError::Trap(t)) => {
            assert_eq!(t.kind, TrapKind::Unreachable);
            assert_eq!(t.function, Some((0, "boom".to_string())));
            assert!(t.offset.is_some());
            assert!(t.to_string().contains("unreachable"), "{t}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[derive(Debug)]
struct Exit(i32);
impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}
impl std::error::Error for Exit {}

#[test]
fn host_functions_see_memory_and_unwind_with_errors() {
    let engine = engine(BoundsStrategy::GuardPages);
    let module = Module::new(
        &engine,
        br#"(module
          (import "host" "sum" (func $sum (param i32 i32) (result i32)))
          (import "host" "exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "\01\02\03\04")
          (func (export "run") (result i32) (call $sum (i32.const 16) (i32.const 4)))
          (func (export "quit") (result i32) (call $exit (i32.const 42)) (i32.const 0)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine);
    let sum =
        store.new_host_func(FuncType::new([ValType::I32, ValType::I32], [ValType::I32]), |caller, args, results| {
            let (Val::I32(ptr), Val::I32(len)) = (args[0], args[1]) else { unreachable!() };
            let mem = caller.memory().expect("caller has memory");
            results[0] = Val::I32(mem[ptr as usize..(ptr + len) as usize].iter().map(|b| i32::from(*b)).sum());
            Ok(())
        });
    let exit = store.new_host_func(FuncType::new([ValType::I32], []), |_, args, _| {
        let Val::I32(code) = args[0] else { unreachable!() };
        Err(Box::new(Exit(code)))
    });
    let mut linker = Linker::new();
    linker.define("host", "sum", Extern::Func(sum)).define("host", "exit", Extern::Func(exit));
    let i = linker.instantiate(&mut store, &module).unwrap();
    assert_eq!(call(&mut store, i, "run", &[]).unwrap(), vec![Val::I32(10)]);
    match call(&mut store, i, "quit", &[]) {
        Err(CallError::Host(e)) => assert_eq!(e.downcast_ref::<Exit>().map(|e| e.0), Some(42)),
        other => panic!("expected the host error, got {other:?}"),
    }
    assert_eq!(call(&mut store, i, "run", &[]).unwrap(), vec![Val::I32(10)]);
}

#[test]
fn missing_import_names_module_field_and_type() {
    let engine = engine(BoundsStrategy::GuardPages);
    let module = Module::new(
        &engine,
        br#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine);
    let err = Linker::new().instantiate(&mut store, &module).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown import wasi_snapshot_preview1.fd_write: expected func(i32, i32, i32, i32) -> (i32)"
    );
}

#[test]
fn artifact_round_trip_runs_the_same() {
    let guarded = engine(BoundsStrategy::GuardPages);
    let explicit = engine(BoundsStrategy::Explicit);
    let engine = guarded;
    let wasm = wat::parse_str(CONTROL).unwrap();
    let (_, artifact) = Module::compile(&engine, &wasm).unwrap();
    let bytes = artifact.to_bytes();
    // SAFETY: `bytes` is the artifact compiled from `wasm` just above by this engine.
    let module = unsafe { Module::from_artifact(&engine, &wasm, &bytes) }.unwrap();
    let mut store = Store::new(&engine);
    let i = store.instantiate(&module, &[]).unwrap();
    assert_eq!(call(&mut store, i, "fac", &[Val::I64(10)]).unwrap(), vec![Val::I64(3628800)]);
    // A damaged artifact is an error, not a crash.
    let mut damaged = bytes.clone();
    damaged.truncate(bytes.len() - 3);
    // SAFETY: damaged bytes of that artifact: the checks refuse them before any code maps.
    assert!(unsafe { Module::from_artifact(&engine, &wasm, &damaged) }.is_err());
    // Code that relies on guard pages never runs against memories without them.
    // SAFETY: the same artifact, for another engine: refused by its identity before mapping.
    let err = unsafe { Module::from_artifact(&explicit, &wasm, &bytes) }.err().expect("bounds strategy mismatch");
    assert!(err.to_string().contains("engine identity"), "{err}");
}

#[test]
fn unsupported_features_are_rejected_with_offset() {
    let engine = engine(BoundsStrategy::GuardPages);
    let err = Module::new(&engine, br#"(module (memory i64 0x1_0000_0000))"#).err().expect("2^32 pages rejected");
    assert!(matches!(err, ModuleError::Load(engine::module_info::LoadError::Unsupported { .. })), "{err}");
    let err = Module::new(&engine, br#"(module (memory 1 1 shared))"#).err().expect("threads rejected");
    assert!(err.to_string().contains("threads") && err.to_string().contains("offset"), "{err}");
    let err = Module::new(&engine, b"\0asm\x01\0\0\0\x01").err().expect("truncated rejected");
    assert!(err.to_string().contains("offset"), "{err}");
}

const TAIL_CALLS: &str = r#"
(module
  (import "host" "add" (func $add (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (type $t (func (param i64) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $even $odd)
  ;; count(n, acc): acc + n, by n tail calls
  (func $count (export "count") (param i64 i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (local.get 1))
      (else (return_call $count (i64.sub (local.get 0) (i64.const 1)) (i64.add (local.get 1) (i64.const 1))))))
  ;; the same recursion without tail calls: its stack grows with n
  (func $deep (export "deep") (param i64) (result i64)
    (if (result i64) (i64.eqz (local.get 0))
      (then (i64.const 0))
      (else (i64.add (i64.const 1) (call $deep (i64.sub (local.get 0) (i64.const 1)))))))
  ;; mutual recursion through the table
  (func $even (export "even") (type $t)
    (if (result i32) (i64.eqz (local.get 0))
      (then (i32.const 1))
      (else (return_call_indirect (type $t) (i64.sub (local.get 0) (i64.const 1)) (i32.const 1)))))
  (func $odd (type $t)
    (if (result i32) (i64.eqz (local.get 0))
      (then (i32.const 0))
      (else (return_call_indirect (type $t) (i64.sub (local.get 0) (i64.const 1)) (i32.const 0)))))
  ;; into a host function, and through a null element
  (func (export "to_host") (param i32) (result i32) (return_call $add (local.get 0) (i32.const 1)))
  (func (export "to_null") (result i32) (return_call_indirect (type $t) (i64.const 0) (i32.const 5))))
"#;

/// Tail calls (`return_call`, `return_call_indirect`) run in constant stack — ten million
/// deep where a plain recursion of a tenth of that overflows — through tables, into host
/// functions, and trap like calls; with both bounds strategies, from an artifact too, and
/// with instruction counting (the same count whatever the stack).
#[test]
fn tail_calls_run_in_constant_stack_through_tables_and_into_host_functions() {
    for (bounds, count_instructions) in
        [(BoundsStrategy::GuardPages, false), (BoundsStrategy::Explicit, false), (BoundsStrategy::GuardPages, true)]
    {
        let config =
            Config { bounds: Some(bounds), max_wasm_stack: 256 << 10, count_instructions, ..Config::default() };
        let engine = Engine::new(config).expect("engine");
        let wasm = wat::parse_str(TAIL_CALLS).unwrap();
        let (_, artifact) = Module::compile(&engine, &wasm).expect("compiles");
        // SAFETY: compiled just above by this engine.
        let module = unsafe { Module::from_artifact_bytes(&engine, &artifact.to_bytes()) }.expect("loads");
        let mut store = Store::new(&engine);
        let add =
            store.new_host_func(FuncType::new([ValType::I32, ValType::I32], [ValType::I32]), |_, args, results| {
                let (Val::I32(a), Val::I32(b)) = (args[0], args[1]) else { unreachable!() };
                results[0] = Val::I32(a + b);
                Ok(())
            });
        let mut linker = Linker::new();
        linker.define("host", "add", Extern::Func(add));
        let i = linker.instantiate(&mut store, &module).unwrap();
        let what = format!("{bounds:?}, counting {count_instructions}");
        let r = call(&mut store, i, "count", &[Val::I64(10_000_000), Val::I64(5)]);
        assert_eq!(r.unwrap(), vec![Val::I64(10_000_005)], "{what}");
        if count_instructions {
            // Exactly: ten instructions an iteration (the `return_call` among them), ten
            // million times, and the last call's six (`local.get`, `i64.eqz`, `if`,
            // `local.get`, the two `end`s).
            assert_eq!(store.instructions_used(), Some(10 * 10_000_000 + 6), "{what}");
        }
        assert_eq!(trap_kind(call(&mut store, i, "deep", &[Val::I64(1_000_000)])), TrapKind::StackOverflow, "{what}");
        assert_eq!(call(&mut store, i, "even", &[Val::I64(1_000_001)]).unwrap(), vec![Val::I32(0)], "{what}");
        assert_eq!(call(&mut store, i, "even", &[Val::I64(1_000_000)]).unwrap(), vec![Val::I32(1)], "{what}");
        assert_eq!(call(&mut store, i, "to_host", &[Val::I32(41)]).unwrap(), vec![Val::I32(42)], "{what}");
        assert_eq!(trap_kind(call(&mut store, i, "to_null", &[])), TrapKind::UndefinedElement, "{what}");
        // The store is still usable after the traps.
        assert_eq!(call(&mut store, i, "count", &[Val::I64(3), Val::I64(0)]).unwrap(), vec![Val::I64(3)], "{what}");
    }
}

/// Code mapped from the artifact's file where the kernel allows it, copied where it refuses (a
/// cache on a `noexec` mount; here a descriptor the kernel will not map): the module runs the
/// same either way.
#[test]
fn code_the_kernel_will_not_map_from_the_file_is_copied() {
    use std::io::Write;
    let engine = engine(BoundsStrategy::GuardPages);
    let wasm = wat::parse_str(CONTROL).unwrap();
    let (_, artifact) = Module::compile(&engine, &wasm).unwrap();
    let bytes = artifact.to_bytes();
    assert!(artifact.image().is_none(), "no memory image: only the code is mapped");
    let path = std::env::temp_dir().join(format!("sandboxrun-code-fallback-{}", std::process::id()));
    std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
    for readable in [true, false] {
        // Write-only: mmap refuses it (EACCES), as it refuses PROT_EXEC on a noexec mount.
        let file = std::fs::File::options().read(readable).write(!readable).open(&path).unwrap();
        let source = ImageSource { fd: file.into(), offset: 0 };
        // SAFETY: compiled just above by this engine; the file holds exactly these bytes and
        // nothing writes it while the module lives.
        let module = unsafe { Module::from_artifact_mapped(&engine, &bytes, source) }.expect("loads either way");
        let mut store = Store::new(&engine);
        let i = store.instantiate(&module, &[]).unwrap();
        let r = call(&mut store, i, "swap", &[Val::I32(1), Val::I32(2)]).unwrap();
        assert_eq!(r, vec![Val::I32(2), Val::I32(1)], "readable {readable}");
        // Mapped from the file (it is listed among the process's mappings), or copied.
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert_eq!(maps.contains(path.to_str().unwrap()), readable, "readable {readable}");
    }
    let _ = std::fs::remove_file(path);
}

const TWO_MEMORIES: &str = r#"
(module
  (memory $small 1 1)
  (memory $big (export "big") 2)
  (data (memory $big) (i32.const 65536) "big")
  (func (export "load_small") (param i32) (result i32) (i32.load8_u $small (local.get 0)))
  (func (export "load_big") (param i32) (result i32) (i32.load8_u $big (local.get 0)))
  (func (export "store_small") (param i32 i32) (i32.store8 $small (local.get 0) (local.get 1)))
  ;; big[dst..dst+len] -> small[src..]
  (func (export "copy_to_small") (param i32 i32 i32) (memory.copy $small $big (local.get 0) (local.get 1) (local.get 2)))
  (func (export "grow_small") (param i32) (result i32) (memory.grow $small (local.get 0)))
  (func (export "grow_big") (param i32) (result i32) (memory.grow $big (local.get 0)))
  (func (export "sizes") (result i32 i32) (memory.size $small) (memory.size $big)))
"#;

/// Two memories (multi-memory): each access is checked against its own memory (an address
/// valid in the larger one traps in the smaller), `memory.copy` between them, data segments
/// into the second, and the store's memory limit bounds both together; with both bounds
/// strategies, from an artifact.
#[test]
fn two_memories_are_two_sandboxes_under_one_limit() {
    for bounds in [BoundsStrategy::GuardPages, BoundsStrategy::Explicit] {
        let engine = engine(bounds);
        let wasm = wat::parse_str(TWO_MEMORIES).unwrap();
        let (_, artifact) = Module::compile(&engine, &wasm).unwrap();
        // SAFETY: compiled just above by this engine.
        let module = unsafe { Module::from_artifact_bytes(&engine, &artifact.to_bytes()) }.unwrap();
        let mut store = Store::new(&engine);
        store.set_memory_limit(5 << 16);
        let i = store.instantiate(&module, &[]).unwrap();
        let at = |x: i32| [Val::I32(x)];
        assert_eq!(call(&mut store, i, "load_big", &at(65536)).unwrap(), vec![Val::I32(i32::from(b'b'))]);
        assert_eq!(trap_kind(call(&mut store, i, "load_small", &at(65536))), TrapKind::MemoryOutOfBounds);
        assert_eq!(call(&mut store, i, "load_small", &at(65535)).unwrap(), vec![Val::I32(0)]);
        call(&mut store, i, "copy_to_small", &[Val::I32(10), Val::I32(65536), Val::I32(3)]).unwrap();
        assert_eq!(call(&mut store, i, "load_small", &at(12)).unwrap(), vec![Val::I32(i32::from(b'g'))]);
        let copy_out = [Val::I32(65535), Val::I32(65536), Val::I32(2)];
        assert_eq!(trap_kind(call(&mut store, i, "copy_to_small", &copy_out)), TrapKind::MemoryOutOfBounds);
        call(&mut store, i, "store_small", &[Val::I32(0), Val::I32(7)]).unwrap();
        assert_eq!(call(&mut store, i, "load_big", &at(0)).unwrap(), vec![Val::I32(0)], "the memories are apart");
        // The small one is at its declared maximum; the big one may grow by two pages, then
        // the limit (five pages for both) refuses.
        assert_eq!(call(&mut store, i, "grow_small", &at(1)).unwrap(), vec![Val::I32(-1)]);
        assert_eq!(call(&mut store, i, "grow_big", &at(2)).unwrap(), vec![Val::I32(2)]);
        assert_eq!(call(&mut store, i, "grow_big", &at(1)).unwrap(), vec![Val::I32(-1)]);
        assert!(store.memory_grow_refused(), "the refusal is the limit's");
        assert_eq!(call(&mut store, i, "sizes", &[]).unwrap(), vec![Val::I32(1), Val::I32(4)]);
        assert_eq!(call(&mut store, i, "load_big", &at(4 * 65536 - 1)).unwrap(), vec![Val::I32(0)]);
        assert_eq!(trap_kind(call(&mut store, i, "load_big", &at(4 * 65536))), TrapKind::MemoryOutOfBounds);
    }
}

/// Host functions see the memory a module exports as `memory` (WASI's convention), even when
/// it is not memory 0.
#[test]
fn host_functions_see_the_exported_memory_among_several() {
    let engine = engine(BoundsStrategy::GuardPages);
    let module = Module::new(
        &engine,
        br#"(module
          (import "host" "first_byte" (func $first (result i32)))
          (memory 1)
          (memory $shared (export "memory") 1)
          (data (memory $shared) (i32.const 0) "x")
          (func (export "run") (result i32) (call $first)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine);
    let ty = FuncType { params: vec![].into(), results: vec![ValType::I32].into() };
    let first = store.new_host_func(ty, |caller, _, results| {
        results[0] = Val::I32(i32::from(caller.memory().map_or(0, |m| m[0])));
        Ok(())
    });
    let i = store.instantiate(&module, &[Extern::Func(first)]).unwrap();
    assert_eq!(call(&mut store, i, "run", &[]).unwrap(), vec![Val::I32(i32::from(b'x'))]);
}

const MEMORY64: &str = r#"
(module
  (memory $m i64 1 3)
  (data (i64.const 65530) "sixty4")
  (func (export "load") (param i64) (result i32) (i32.load8_u (local.get 0)))
  (func (export "load_at_offset") (param i64) (result i32) (i32.load8_u offset=0xffff_ffff_ffff_fff0 (local.get 0)))
  (func (export "load32") (param i64) (result i32) (i32.load (local.get 0)))
  (func (export "store") (param i64 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "size") (result i64) (memory.size))
  (func (export "grow") (param i64) (result i64) (memory.grow (local.get 0)))
  (func (export "fill") (param i64 i32 i64) (memory.fill (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy") (param i64 i64 i64) (memory.copy (local.get 0) (local.get 1) (local.get 2))))
"#;

/// A 64-bit memory (memory64): addresses are unsigned 64-bit and checked in full — an
/// address past 4 GiB is out of bounds rather than wrapped, an offset that carries past 2^64
/// traps, an access straddling the end traps — sizes are i64, growth past the maximum or by
/// more than any memory can hold is -1; with both bounds strategies (guard pages: the
/// reservation past 4 GiB), from an artifact.
#[test]
fn a_64_bit_memory_checks_every_address_in_64_bits() {
    for bounds in [BoundsStrategy::GuardPages, BoundsStrategy::Explicit] {
        let engine = engine(bounds);
        let (mut store, i) = instantiate(&engine, MEMORY64);
        let at = |x: i64| [Val::I64(x)];
        let byte = |b: u8| vec![Val::I32(i32::from(b))];
        assert_eq!(call(&mut store, i, "load", &at(65530)).unwrap(), byte(b's'));
        assert_eq!(call(&mut store, i, "size", &[]).unwrap(), vec![Val::I64(1)]);
        // Under guard pages, addresses below 2^32 fault in the reservation and the rest are
        // refused by one comparison: both edges of that comparison are here.
        for oob in [65536, (1 << 32) - 1, 1 << 32, (1 << 32) + 65530, -1, i64::MIN] {
            assert_eq!(trap_kind(call(&mut store, i, "load", &at(oob))), TrapKind::MemoryOutOfBounds, "{oob:#x}");
        }
        assert_eq!(trap_kind(call(&mut store, i, "load32", &at(65533))), TrapKind::MemoryOutOfBounds, "straddling");
        // offset + index carries past 2^64: out of bounds, not a small address.
        assert_eq!(trap_kind(call(&mut store, i, "load_at_offset", &at(0x20))), TrapKind::MemoryOutOfBounds);
        assert_eq!(trap_kind(call(&mut store, i, "load_at_offset", &at(0x10))), TrapKind::MemoryOutOfBounds);
        assert_eq!(call(&mut store, i, "grow", &at(1 << 33)).unwrap(), vec![Val::I64(-1)]);
        assert_eq!(call(&mut store, i, "grow", &at(3)).unwrap(), vec![Val::I64(-1)], "past the maximum");
        assert_eq!(call(&mut store, i, "grow", &at(2)).unwrap(), vec![Val::I64(1)]);
        assert_eq!(call(&mut store, i, "size", &[]).unwrap(), vec![Val::I64(3)]);
        call(&mut store, i, "fill", &[Val::I64(3 * 65536 - 2), Val::I32(9), Val::I64(2)]).unwrap();
        assert_eq!(call(&mut store, i, "load", &at(3 * 65536 - 1)).unwrap(), byte(9));
        let fill_past = [Val::I64(3 * 65536 - 2), Val::I32(9), Val::I64(3)];
        assert_eq!(trap_kind(call(&mut store, i, "fill", &fill_past)), TrapKind::MemoryOutOfBounds);
        let huge = [Val::I64(0), Val::I64(65530), Val::I64(-1)];
        assert_eq!(trap_kind(call(&mut store, i, "copy", &huge)), TrapKind::MemoryOutOfBounds);
        call(&mut store, i, "copy", &[Val::I64(2 * 65536), Val::I64(65530), Val::I64(6)]).unwrap();
        assert_eq!(call(&mut store, i, "load", &at(2 * 65536 + 5)).unwrap(), byte(b'4'));
    }
}

const TABLE64: &str = r#"
(module
  (type $r (func (result i32)))
  (table $t i64 4 6 funcref)
  (func $a (result i32) (i32.const 7))
  (func $b (result i32) (i32.const 8))
  (elem (table $t) (i64.const 1) func $a $b)
  (func (export "call") (param i64) (result i32) (call_indirect $t (type $r) (local.get 0)))
  (func (export "is_null") (param i64) (result i32) (ref.is_null (table.get $t (local.get 0))))
  (func (export "copy_b") (param i64) (table.set $t (local.get 0) (table.get $t (i64.const 2))))
  (func (export "size") (result i64) (table.size $t))
  (func (export "grow") (param i64) (result i64) (table.grow $t (ref.null func) (local.get 0)))
  (func (export "fill_a") (param i64 i64) (table.fill $t (local.get 0) (table.get $t (i64.const 1)) (local.get 1))))
"#;

/// A 64-bit table (memory64's tables): indices are unsigned 64-bit and checked in full (an
/// index past 2^32 is out of bounds, not wrapped), sizes are i64, growth past the maximum or
/// by more than any table can hold is -1; with both bounds strategies, from an artifact.
#[test]
fn a_64_bit_table_checks_every_index_in_64_bits() {
    for bounds in [BoundsStrategy::GuardPages, BoundsStrategy::Explicit] {
        let engine = engine(bounds);
        let (mut store, i) = instantiate(&engine, TABLE64);
        let at = |x: i64| [Val::I64(x)];
        assert_eq!(call(&mut store, i, "call", &at(2)).unwrap(), vec![Val::I32(8)]);
        assert_eq!(trap_kind(call(&mut store, i, "call", &at(0))), TrapKind::UninitializedElement);
        for oob in [4, 1 << 32, (1 << 32) + 1, -1] {
            assert_eq!(trap_kind(call(&mut store, i, "call", &at(oob))), TrapKind::UndefinedElement, "{oob:#x}");
            assert_eq!(trap_kind(call(&mut store, i, "is_null", &at(oob))), TrapKind::TableOutOfBounds, "{oob:#x}");
        }
        call(&mut store, i, "copy_b", &at(3)).unwrap();
        assert_eq!(call(&mut store, i, "call", &at(3)).unwrap(), vec![Val::I32(8)]);
        assert_eq!(call(&mut store, i, "grow", &at(1 << 32)).unwrap(), vec![Val::I64(-1)]);
        assert_eq!(call(&mut store, i, "grow", &at(3)).unwrap(), vec![Val::I64(-1)], "past the maximum");
        assert_eq!(call(&mut store, i, "grow", &at(2)).unwrap(), vec![Val::I64(4)]);
        assert_eq!(call(&mut store, i, "size", &[]).unwrap(), vec![Val::I64(6)]);
        call(&mut store, i, "fill_a", &[Val::I64(4), Val::I64(2)]).unwrap();
        assert_eq!(call(&mut store, i, "call", &at(5)).unwrap(), vec![Val::I32(7)]);
        let fill_past = [Val::I64(5), Val::I64(2)];
        assert_eq!(trap_kind(call(&mut store, i, "fill_a", &fill_past)), TrapKind::TableOutOfBounds);
        let fill_huge = [Val::I64(0), Val::I64(-1)];
        assert_eq!(trap_kind(call(&mut store, i, "fill_a", &fill_huge)), TrapKind::TableOutOfBounds);
    }
}

/// A table whose initial size is past the store's limit is refused at instantiation (it was
/// allocated whole: a module could abort the embedding process), 32- and 64-bit alike.
#[test]
fn a_table_past_the_limit_is_refused_not_allocated() {
    let engine = engine(BoundsStrategy::GuardPages);
    for wat in [
        "(module (table 4000000000 funcref))",
        "(module (table i64 4000000000 funcref))",
        // With a constant segment: no table image is built at load either.
        "(module (table 4000000000 funcref) (func) (elem (i32.const 3999999999) func 0))",
    ] {
        let module = Module::new(&engine, wat.as_bytes()).unwrap();
        let mut store = Store::new(&engine);
        let err = store.instantiate(&module, &[]).expect_err("refused");
        assert!(matches!(err, InstantiateError::TableTooLarge { min: 4_000_000_000, .. }), "{err}");
    }
    let ty = TableType { element: ValType::FUNCREF, limits: Limits { min: 4_000_000_000, max: None }, table64: false };
    assert!(Store::new(&engine).new_table(ty, Val::FuncRef(None)).is_err());
}
