//! Tables filled on first use trap and call exactly like tables filled at instantiation.
//!
//! The same module is built twice: its active element segments at constant offsets (the
//! engine then leaves the table to be filled from the module's image as elements are first
//! read) and at offsets read from imported globals holding the same numbers (the engine
//! applies the segments at instantiation). Random sequences of table operations — calls
//! through the table, reads, writes of nulls and functions, fill, copy, init, grow, out of
//! bounds included — must give both the same results and the same traps, at every step,
//! under both bounds strategies, from a fresh instance and through a second module that
//! imports the table.

mod common;

use common::call;
use engine::*;

/// The module; `{A}` and `{B}` are the offsets of its active segments.
const TEMPLATE: &str = r#"
(module
  (type $r (func (result i32)))
  (import "env" "two" (global $two i32))
  (import "env" "seven" (global $seven i32))
  (table $t (export "t") 12 20 funcref)
  (table $u 4 funcref)
  (func $f0 (result i32) (i32.const 100))
  (func $f1 (result i32) (i32.const 101))
  (func $f2 (result i32) (i32.const 102))
  (func $f3 (result i32) (i32.const 103))
  (func $f5 (result i32) (i32.const 105))
  (func $f6 (result i32) (i32.const 106))
  (func $f7 (result i32) (i32.const 107))
  (func $other (param i32) (result i32) (local.get 0))
  (elem (table $t) ({A}) func $f0 $f1 $f2 $f3 $other $f5 $f6)
  (elem (table $t) ({B}) funcref (ref.func $f7) (ref.null func))
  (elem (table $u) ({A}) func $f3 $f1)
  (elem $passive funcref (ref.func $f5) (ref.null func) (ref.func $f1))
  (func (export "call") (param i32) (result i32) (call_indirect $t (type $r) (local.get 0)))
  (func (export "is_null") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
  (func (export "set_null") (param i32) (table.set $t (local.get 0) (ref.null func)))
  (func (export "set_from") (param i32 i32) (table.set $t (local.get 0) (table.get $t (local.get 1))))
  (func (export "set_f2") (param i32) (table.set $t (local.get 0) (ref.func $f2)))
  (func (export "fill") (param i32 i32 i32) (table.fill $t (local.get 0) (table.get $t (local.get 1)) (local.get 2)))
  (func (export "copy") (param i32 i32 i32) (table.copy $t $t (local.get 0) (local.get 1) (local.get 2)))
  (func (export "copy_u") (param i32 i32 i32) (table.copy $t $u (local.get 0) (local.get 1) (local.get 2)))
  (func (export "init") (param i32 i32 i32) (table.init $t $passive (local.get 0) (local.get 1) (local.get 2)))
  (func (export "grow") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0)))
  (func (export "size") (result i32) (table.size $t))
)"#;

/// A second module calling through an imported table, and writing it.
const USER: &str = r#"
(module
  (type $r (func (result i32)))
  (import "m" "t" (table $t 12 funcref))
  (func (export "call") (param i32) (result i32) (call_indirect $t (type $r) (local.get 0)))
  (func (export "set_null") (param i32) (table.set $t (local.get 0) (ref.null func)))
)"#;

/// The module with segments at constant offsets (filled lazily) or read from globals (eagerly).
fn module(lazy: bool) -> String {
    let (a, b) = if lazy { ("i32.const 2", "i32.const 7") } else { ("global.get $two", "global.get $seven") };
    TEMPLATE.replace("{A}", a).replace("{B}", b)
}

/// The globals the eager module reads its offsets from (the lazy one imports them too).
fn offsets(store: &mut Store) -> [Extern; 2] {
    let ty = GlobalType { ty: ValType::I32, mutable: false };
    [2, 7].map(|v| Extern::Global(store.new_global(ty, Val::I32(v)).expect("global")))
}

/// One step of a sequence: an export and its arguments.
type Step = (&'static str, Vec<Val>);

/// Outcome of a step: the results, or the trap's kind.
fn outcome(r: Result<Vec<Val>, CallError>) -> Result<Vec<Val>, TrapKind> {
    r.map_err(|e| match e {
        CallError::Trap(t) => t.kind,
        other => panic!("not a trap: {other}"),
    })
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// An index, out of bounds now and then (the table grows to at most 20).
    fn index(&mut self) -> Val {
        Val::I32((self.next() % 24) as i32)
    }

    fn step(&mut self) -> Step {
        let small = |r: &mut Rng| Val::I32((r.next() % 5) as i32);
        match self.next() % 21 {
            0..=7 => ("call", vec![self.index()]),
            8..=9 => ("is_null", vec![self.index()]),
            10 => ("set_null", vec![self.index()]),
            11 => ("set_from", vec![self.index(), self.index()]),
            12 => ("set_f2", vec![self.index()]),
            13 => ("fill", vec![self.index(), self.index(), small(self)]),
            14 => ("copy", vec![self.index(), self.index(), small(self)]),
            15 => ("init", vec![self.index(), small(self), small(self)]),
            16 => ("grow", vec![small(self)]),
            17 => ("size", vec![]),
            18 => ("copy_u", vec![self.index(), Val::I32((self.next() % 5) as i32), small(self)]),
            _ => ("user_call", vec![self.index()]),
        }
    }
}

/// An instance of the module (lazy or eager) and one of [`USER`] importing its table.
struct Pair {
    store: Store,
    module: Instance,
    user: Instance,
}

impl Pair {
    fn new(engine: &Engine, lazy: bool) -> Pair {
        let module = Module::new(engine, module(lazy).as_bytes()).expect("module compiles");
        let user = Module::new(engine, USER.as_bytes()).expect("user compiles");
        let mut store = Store::new(engine);
        let imports = offsets(&mut store);
        let instance = store.instantiate(&module, &imports).expect("instantiates");
        let table = store.get_export(instance, "t").expect("table export");
        let user = store.instantiate(&user, &[table]).expect("user instantiates");
        Pair { store, module: instance, user }
    }

    fn run(&mut self, (name, args): &Step) -> Result<Vec<Val>, TrapKind> {
        let (instance, name) = match name.strip_prefix("user_") {
            Some(n) => (self.user, n),
            None => (self.module, *name),
        };
        outcome(call(&mut self.store, instance, name, args))
    }
}

fn compare_sequences(bounds: BoundsStrategy) {
    let engine = Engine::new(Config { bounds: Some(bounds), ..Config::default() }).expect("engine");
    let mut rng = Rng(0x5eed_1a2e_9c3b_7d41);
    let mut traps = std::collections::BTreeSet::new();
    let mut calls = 0;
    for sequence in 0..300 {
        let (mut lazy, mut eager) = (Pair::new(&engine, true), Pair::new(&engine, false));
        let steps: Vec<Step> = (0..1 + rng.next() % 30).map(|_| rng.step()).collect();
        for (n, step) in steps.iter().enumerate() {
            let (l, e) = (lazy.run(step), eager.run(step));
            assert_eq!(l, e, "sequence {sequence}, step {n} {step:?}; steps {steps:?}");
            match l {
                Err(kind) => {
                    traps.insert(format!("{kind:?}"));
                }
                Ok(_) if step.0.ends_with("call") => calls += 1,
                Ok(_) => {}
            }
        }
    }
    // The sequences reached what they are meant to compare.
    for kind in ["UninitializedElement", "UndefinedElement", "IndirectCallTypeMismatch", "TableOutOfBounds"] {
        assert!(traps.contains(kind), "no sequence trapped with {kind}: {traps:?}");
    }
    assert!(calls > 300, "only {calls} calls returned");
}

#[test]
fn lazy_tables_trap_and_call_exactly_like_eager_ones() {
    compare_sequences(BoundsStrategy::GuardPages);
}

#[test]
fn lazy_tables_trap_and_call_exactly_like_eager_ones_with_explicit_bounds() {
    compare_sequences(BoundsStrategy::Explicit);
}

/// Every first read of a lazy table: each element read once, in an order that is not the
/// table's, gives what the segments wrote (the second writing a null over `$f6`), nulls
/// where nothing was.
#[test]
fn first_reads_in_any_order_give_the_segments_contents() {
    let engine = Engine::new(Config::default()).expect("engine");
    let module = Module::new(&engine, module(true).as_bytes()).expect("module compiles");
    let mut store = Store::new(&engine);
    let imports = offsets(&mut store);
    let i = store.instantiate(&module, &imports).expect("instantiates");
    let expected: [Result<Vec<Val>, TrapKind>; 12] = [
        Err(TrapKind::UninitializedElement),
        Err(TrapKind::UninitializedElement),
        Ok(vec![Val::I32(100)]),
        Ok(vec![Val::I32(101)]),
        Ok(vec![Val::I32(102)]),
        Ok(vec![Val::I32(103)]),
        Err(TrapKind::IndirectCallTypeMismatch),
        Ok(vec![Val::I32(107)]),
        Err(TrapKind::UninitializedElement),
        Err(TrapKind::UninitializedElement),
        Err(TrapKind::UninitializedElement),
        Err(TrapKind::UninitializedElement),
    ];
    for index in [8, 0, 3, 11, 6, 2, 7, 5, 10, 1, 4, 9] {
        let got = outcome(call(&mut store, i, "call", &[Val::I32(index)]));
        assert_eq!(got, expected[index as usize], "element {index}");
    }
    assert_eq!(outcome(call(&mut store, i, "call", &[Val::I32(12)])), Err(TrapKind::UndefinedElement));
}
