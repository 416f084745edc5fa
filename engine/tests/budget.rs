//! The instruction count and budget (`Config::count_instructions`): exact counts of known
//! code at normal returns, at every kind of trap and at the budget's own trap, under both
//! bounds strategies; the same count every time; host calls counted as one; control flow that
//! cannot escape the checks; and nothing counted when counting is off.

mod common;

use common::{call, instantiate, trap_kind};
use engine::*;

fn counting(bounds: BoundsStrategy) -> Engine {
    Engine::new(Config { bounds: Some(bounds), count_instructions: true, ..Config::default() }).expect("engine")
}

const BOTH: [BoundsStrategy; 2] = [BoundsStrategy::GuardPages, BoundsStrategy::Explicit];

/// `loop` (1), then per iteration `local.get, i32.const, i32.sub, local.set, local.get,
/// br_if` (6), then the loop's `end` (1) and the function's (1): 6k + 3 for k iterations.
const COUNTDOWN: &str = r#"
(module
  (func (export "countdown") (param i32)
    (loop $l
      (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
      (br_if $l (local.get 0)))))
"#;

#[test]
fn a_loop_of_k_iterations_counts_6k_plus_3() {
    for bounds in BOTH {
        let engine = counting(bounds);
        for k in [1u64, 2, 10, 1000, 123_457] {
            let (mut store, i) = instantiate(&engine, COUNTDOWN);
            assert_eq!(store.instructions_used(), Some(0));
            call(&mut store, i, "countdown", &[Val::I32(k as i32)]).unwrap();
            assert_eq!(store.instructions_used(), Some(6 * k + 3), "{bounds:?} k={k}");
        }
    }
}

/// Typed references: `loop` (1); per iteration `local.get, ref.func, call_ref` (3), the
/// callee's `local.get, i32.const, i32.sub, end` (4), `local.set` (1), then `ref.null,
/// ref.func, local.get, select, br_on_null` (5), taken back to the loop while the counter is
/// not zero; after the last, `drop`, the loop's `end`, `local.get` and the function's `end`
/// (4): 13k + 5 for k iterations.
const TYPED_LOOP: &str = r#"
(module
  (type $f (func (param i32) (result i32)))
  (func $dec (type $f) (i32.sub (local.get 0) (i32.const 1)))
  (elem declare func $dec)
  (func (export "run") (param i32) (result i32)
    (loop $l
      (local.set 0 (call_ref $f (local.get 0) (ref.func $dec)))
      (br_on_null $l (select (result (ref null $f)) (ref.null $f) (ref.func $dec) (local.get 0)))
      (drop))
    (local.get 0)))
"#;

#[test]
fn typed_reference_branches_and_calls_count_exactly() {
    for bounds in BOTH {
        let engine = counting(bounds);
        for k in [1u64, 2, 1000] {
            let (mut store, i) = instantiate(&engine, TYPED_LOOP);
            assert_eq!(call(&mut store, i, "run", &[Val::I32(k as i32)]).unwrap(), [Val::I32(0)]);
            assert_eq!(store.instructions_used(), Some(13 * k + 5), "{bounds:?} k={k}");
        }
    }
}

#[test]
fn the_budget_traps_at_the_first_check_past_it_with_the_exact_count() {
    let engine = counting(BoundsStrategy::GuardPages);
    let k = 1000u64;
    for budget in [1u64, 5, 6, 7, 100, 1000, 6 * k - 7] {
        let (mut store, i) = instantiate(&engine, COUNTDOWN);
        store.set_instruction_budget(budget).unwrap();
        let r = call(&mut store, i, "countdown", &[Val::I32(k as i32)]);
        assert_eq!(trap_kind(r), TrapKind::InstructionBudget, "budget {budget}");
        // Checked at each loop header: 1 + 6i after i iterations; the first past the budget.
        let iterations = (budget - 1) / 6 + 1;
        assert_eq!(store.instructions_used(), Some(1 + 6 * iterations), "budget {budget}");
    }
}

#[test]
fn a_run_completes_exactly_when_its_count_fits_the_budget() {
    let engine = counting(BoundsStrategy::GuardPages);
    let need = 6 * 50 + 3;
    let (mut store, i) = instantiate(&engine, COUNTDOWN);
    store.set_instruction_budget(need).unwrap();
    call(&mut store, i, "countdown", &[Val::I32(50)]).unwrap();
    assert_eq!(store.instructions_used(), Some(need));
    // One fewer: the last stretch (the loop's and the function's `end`) passes no check inside
    // wasm, so the check when the call returns catches it.
    let (mut store, i) = instantiate(&engine, COUNTDOWN);
    store.set_instruction_budget(need - 1).unwrap();
    let r = call(&mut store, i, "countdown", &[Val::I32(50)]);
    assert_eq!(trap_kind(r), TrapKind::InstructionBudget);
    assert_eq!(store.instructions_used(), Some(need));
}

#[test]
fn the_same_count_every_time() {
    let engine = counting(BoundsStrategy::GuardPages);
    let runs: Vec<_> = (0..5)
        .map(|_| {
            let (mut store, i) = instantiate(&engine, COUNTDOWN);
            store.set_instruction_budget(77_777).unwrap();
            let kind = trap_kind(call(&mut store, i, "countdown", &[Val::I32(1_000_000)]));
            (kind, store.instructions_used())
        })
        .collect();
    assert!(runs.iter().all(|r| *r == runs[0]), "{runs:?}");
    assert_eq!(runs[0], (TrapKind::InstructionBudget, Some(77_779)));
}

const TRAPS: &str = r#"
(module
  (memory 1)
  (table 1 funcref)
  (type $v (func))
  (func $boom (nop) (unreachable))
  ;; 3 nops, unreachable: 4
  (func (export "unreachable") (nop) (nop) (nop) (unreachable))
  ;; nop, call, then $boom's nop and unreachable: 4
  (func (export "nested") (nop) (call $boom))
  ;; i32.const, i32.load: 2 (a guard-page fault, or an explicit check)
  (func (export "oob") (drop (i32.load (i32.const -4))))
  ;; i32.const, i32.const, i32.div_s: 3
  (func (export "div") (drop (i32.div_s (i32.const 1) (i32.const 0))))
  ;; f32.const, i32.trunc_f32_s: 2
  (func (export "trunc") (drop (i32.trunc_f32_s (f32.const nan))))
  ;; i32.const, call_indirect: 2 (null entry)
  (func (export "indirect") (call_indirect (type $v) (i32.const 0)))
  ;; ref.null, call_ref: 2 (null); ref.null, ref.as_non_null: 2
  (type $r (func))
  (func (export "call_null") (call_ref $r (ref.null $r)))
  (func (export "as_non_null") (drop (ref.as_non_null (ref.null $r))))
  ;; loop (1); per iteration local.get, i32.const, i32.add, local.set, local.get, i32.load,
  ;; drop, br (8); the 16th load (at 64 KiB) is out of bounds, 6 instructions into its
  ;; iteration: 1 + 15 * 8 + 6, the trap in the middle of a straight-line run
  (func (export "walk") (local i32)
    (loop $l
      (local.set 0 (i32.add (local.get 0) (i32.const 4096)))
      (drop (i32.load (local.get 0)))
      (br $l)))
  ;; local.get, i32.const, i32.add, drop (4), then i32.const, i32.load, drop 10 times, then
  ;; unreachable
  (func (export "after_loads") (local i32)
    (drop (i32.add (local.get 0) (i32.const 1)))
    (drop (i32.load (i32.const 0))) (drop (i32.load (i32.const 0))) (drop (i32.load (i32.const 0)))
    (drop (i32.load (i32.const 0))) (drop (i32.load (i32.const 0))) (drop (i32.load (i32.const 0)))
    (drop (i32.load (i32.const 0))) (drop (i32.load (i32.const 0))) (drop (i32.load (i32.const 0)))
    (drop (i32.load (i32.const 0)))
    (unreachable)))
"#;

#[test]
fn the_count_at_any_trap_includes_the_trapping_instruction() {
    // Each drop also counts, but comes after the trapping instruction.
    let cases = [
        ("unreachable", TrapKind::Unreachable, 4),
        ("nested", TrapKind::Unreachable, 4),
        ("oob", TrapKind::MemoryOutOfBounds, 2),
        ("div", TrapKind::IntegerDivideByZero, 3),
        ("trunc", TrapKind::InvalidConversionToInteger, 2),
        ("indirect", TrapKind::UninitializedElement, 2),
        ("call_null", TrapKind::NullFunctionReference, 2),
        ("as_non_null", TrapKind::NullReference, 2),
        ("after_loads", TrapKind::Unreachable, 4 + 10 * 3 + 1),
        ("walk", TrapKind::MemoryOutOfBounds, 1 + 15 * 8 + 6),
    ];
    for bounds in BOTH {
        let engine = counting(bounds);
        for (name, kind, count) in cases {
            let (mut store, i) = instantiate(&engine, TRAPS);
            assert_eq!(trap_kind(call(&mut store, i, name, &[])), kind, "{name}");
            assert_eq!(store.instructions_used(), Some(count), "{name} {bounds:?}");
        }
    }
}

#[test]
fn counts_add_up_across_calls_and_traps_in_one_store() {
    let engine = counting(BoundsStrategy::GuardPages);
    let (mut store, i) = instantiate(&engine, TRAPS);
    trap_kind(call(&mut store, i, "unreachable", &[]));
    trap_kind(call(&mut store, i, "oob", &[]));
    assert_eq!(store.instructions_used(), Some(4 + 2));
    store.set_instruction_budget(10).unwrap();
    assert_eq!(store.instructions_used(), Some(0), "a new budget starts the count again");
}

/// Per level with n > 0: local.get, if, local.get, i32.const, i32.sub, call, the `if`'s end,
/// the function's end (8); the last level: local.get, if (false: straight past its `end`),
/// the function's end (3). So 8n + 3.
const RECURSION: &str = r#"
(module
  (type $t (func (param i32)))
  (table 1 funcref)
  (elem (i32.const 0) $r)
  (func $r (export "direct") (param i32)
    (if (local.get 0) (then (call $r (i32.sub (local.get 0) (i32.const 1))))))
  (func (export "forever_indirect") (call_indirect (type $v) (i32.const 0)))
  (type $v (func))
  (func $self (export "forever_direct") (call $self))
  (func (export "forever_br_table") (loop $l (br_table $l $l (i32.const 0))))
  (func (export "forever_empty_loop") (loop $l (br $l))))
"#;

#[test]
fn recursion_counts_every_level() {
    let engine = counting(BoundsStrategy::GuardPages);
    for n in [0u64, 1, 7, 1000] {
        let (mut store, i) = instantiate(&engine, RECURSION);
        call(&mut store, i, "direct", &[Val::I32(n as i32)]).unwrap();
        assert_eq!(store.instructions_used(), Some(8 * n + 3), "n={n}");
    }
}

#[test]
fn no_control_flow_escapes_the_budget() {
    let engine = counting(BoundsStrategy::GuardPages);
    for name in ["forever_direct", "forever_br_table", "forever_empty_loop"] {
        let (mut store, i) = instantiate(&engine, RECURSION);
        store.set_instruction_budget(10_000).unwrap();
        assert_eq!(trap_kind(call(&mut store, i, name, &[])), TrapKind::InstructionBudget, "{name}");
        let used = store.instructions_used().unwrap();
        assert!((10_001..10_010).contains(&used), "{name}: {used}");
    }
    // call_indirect of a function that does nothing but recurse through the table: its type
    // does not match ($v vs $t), so it traps; through a matching entry the direct case holds.
    let (mut store, i) = instantiate(&engine, RECURSION);
    assert_eq!(trap_kind(call(&mut store, i, "forever_indirect", &[])), TrapKind::IndirectCallTypeMismatch);
    assert_eq!(store.instructions_used(), Some(2));
}

#[test]
fn indirect_recursion_is_stopped_by_the_budget() {
    let engine = counting(BoundsStrategy::GuardPages);
    let wat = r#"(module (type $v (func)) (table 1 funcref) (elem (i32.const 0) $f)
        (func $f (export "f") (call_indirect (type $v) (i32.const 0))))"#;
    let (mut store, i) = instantiate(&engine, wat);
    store.set_instruction_budget(1000).unwrap();
    assert_eq!(trap_kind(call(&mut store, i, "f", &[])), TrapKind::InstructionBudget);
    // 2 per level, checked at each entry: the first entry past 1000.
    assert_eq!(store.instructions_used(), Some(1002));
}

#[test]
fn a_host_call_is_one_instruction_and_is_checked() {
    let engine = counting(BoundsStrategy::GuardPages);
    let module = Module::new(
        &engine,
        br#"(module
          (import "host" "f" (func $f (param i32) (result i32)))
          (func (export "run") (param i32) (result i32)
            (call $f (call $f (call $f (local.get 0))))))"#,
    )
    .unwrap();
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let run = |budget: Option<u64>| {
        let mut store = Store::new(&engine);
        if let Some(b) = budget {
            store.set_instruction_budget(b).unwrap();
        }
        let seen = calls.clone();
        let f = store.new_host_func(FuncType::new([ValType::I32], [ValType::I32]), move |_, args, results| {
            seen.set(seen.get() + 1);
            let Val::I32(x) = args[0] else { unreachable!() };
            results[0] = Val::I32(x * 2);
            Ok(())
        });
        let mut linker = Linker::new();
        linker.define("host", "f", Extern::Func(f));
        let i = linker.instantiate(&mut store, &module).unwrap();
        let r = call(&mut store, i, "run", &[Val::I32(3)]);
        (r, store.instructions_used())
    };
    // local.get, 3 calls, end.
    let (r, used) = run(None);
    assert_eq!(r.unwrap(), vec![Val::I32(24)]);
    assert_eq!((used, calls.get()), (Some(5), 3));
    // With a budget of 2, the second host call is past it: refused before the host runs.
    calls.set(0);
    let (r, used) = run(Some(2));
    assert_eq!(trap_kind(r), TrapKind::InstructionBudget);
    assert_eq!((used, calls.get()), (Some(3), 1));
}

#[test]
fn a_host_error_keeps_the_count() {
    let engine = counting(BoundsStrategy::GuardPages);
    let module = Module::new(
        &engine,
        br#"(module (import "host" "exit" (func $exit))
          (func (export "run") (nop) (nop) (call $exit) (unreachable)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine);
    let exit = store.new_host_func(FuncType::new([], []), |_, _, _| Err("exit".into()));
    let mut linker = Linker::new();
    linker.define("host", "exit", Extern::Func(exit));
    let i = linker.instantiate(&mut store, &module).unwrap();
    assert!(matches!(call(&mut store, i, "run", &[]), Err(CallError::Host(_))));
    assert_eq!(store.instructions_used(), Some(3));
}

#[test]
fn without_counting_nothing_is_counted_and_no_budget_is_taken() {
    let engine = Engine::new(Config::default()).unwrap();
    let (mut store, i) = instantiate(&engine, COUNTDOWN);
    assert_eq!(store.set_instruction_budget(10), Err(BudgetError::NotCounting));
    call(&mut store, i, "countdown", &[Val::I32(100)]).unwrap();
    assert_eq!(store.instructions_used(), None);
}

#[test]
fn counting_is_part_of_the_identity_and_artifacts_do_not_cross() {
    let plain = Engine::new(Config { bounds: Some(BoundsStrategy::GuardPages), ..Config::default() }).unwrap();
    let counting = counting(BoundsStrategy::GuardPages);
    assert_ne!(plain.identity(), counting.identity());
    assert_eq!(counting.identity(), Engine::cache_identity(counting.config()));
    assert_eq!(plain.identity(), Engine::cache_identity(plain.config()));
    let wasm = wat::parse_str(COUNTDOWN).unwrap();
    let (_, from_plain) = Module::compile(&plain, &wasm).unwrap();
    let (_, from_counting) = Module::compile(&counting, &wasm).unwrap();
    // SAFETY: the artifacts are well formed (made just above); the identity check refuses them.
    unsafe {
        assert!(Module::from_artifact_bytes(&counting, &from_plain.to_bytes()).is_err());
        assert!(Module::from_artifact_bytes(&plain, &from_counting.to_bytes()).is_err());
    }
}

#[test]
fn budgets_are_bounded() {
    let engine = counting(BoundsStrategy::GuardPages);
    let mut store = Store::new(&engine);
    assert_eq!(
        store.set_instruction_budget(MAX_INSTRUCTION_BUDGET + 1),
        Err(BudgetError::TooLarge(MAX_INSTRUCTION_BUDGET + 1))
    );
    store.set_instruction_budget(MAX_INSTRUCTION_BUDGET).unwrap();
}
