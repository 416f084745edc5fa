//! `differential_wasmtime`: a wasm-smith module using the parts of WebAssembly 3.0 the engine
//! implements — exception handling (`try_table`, `throw`, `throw_ref`, `exnref`), tail calls,
//! several and 64-bit memories and tables, extended constant expressions — and SIMD with
//! relaxed SIMD, run in sandboxrun's engine and in Wasmtime (the oracle), must behave alike:
//! instantiation succeeds in both or fails in both, and every call returns the same values or
//! traps with the same class of trap (an exception no handler catches is one class on both
//! sides), leaving the same exported globals, memories and tables. Traces stop comparing at a
//! stack overflow, whose depth the engines rightly choose differently. Built only with the
//! oracle: under `cargo test` (a dev-dependency) and `cargo fuzz` (`cfg(fuzzing)`).
//!
//! What is normalised, and why:
//! - references are compared as null or not (their identities are each engine's own);
//! - a `v128` lane that is NaN in both traces may differ in payload (the spec leaves NaN
//!   payloads nondeterministic; wasm-smith canonicalises only the arithmetic results), as
//!   scalar NaNs already may in [`Value`]'s equality;
//! - relaxed SIMD runs with Wasmtime's `relaxed_simd_deterministic`, which picks what our
//!   engine always does (the non-relaxed counterparts, a fused `relaxed_madd`, both i8 dot
//!   operands signed).
//!
//! Typed function references are not generated: wasm-smith 0.263 makes them only together with
//! GC (`gc_enabled`), which the engine does not implement.

use crate::exec::{compare, engine, plan, run_ours, Outcome, State, Step, Trace, TrapClass, Ty, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use wasmtime::{Extern, Val, ValType};

/// What the campaign's modules used and did (the bounded test prints it): static counts of
/// instructions and memories, and the uncaught exceptions the traces show (a caught one leaves
/// no mark in a trace).
pub mod coverage {
    use std::sync::atomic::AtomicUsize;

    /// Modules compared.
    pub static MODULES: AtomicUsize = AtomicUsize::new(0);
    /// Modules with a `throw` or `throw_ref`.
    pub static THROWING: AtomicUsize = AtomicUsize::new(0);
    /// Modules with a `throw` or `throw_ref` and a `try_table` with a catch clause.
    pub static CATCHING: AtomicUsize = AtomicUsize::new(0);
    /// Modules in which some call (or the start function) ended in an uncaught exception.
    pub static UNCAUGHT_MODULES: AtomicUsize = AtomicUsize::new(0);
    /// Calls that ended in an uncaught exception (in both engines: traces that disagree fail).
    pub static UNCAUGHT_CALLS: AtomicUsize = AtomicUsize::new(0);
    /// Calls compared.
    pub static CALLS: AtomicUsize = AtomicUsize::new(0);
    /// Modules with `return_call` or `return_call_indirect`.
    pub static TAIL_CALLS: AtomicUsize = AtomicUsize::new(0);
    /// Modules with a SIMD instruction.
    pub static SIMD: AtomicUsize = AtomicUsize::new(0);
    /// Modules with more than one memory.
    pub static MULTI_MEMORY: AtomicUsize = AtomicUsize::new(0);
    /// Modules with a 64-bit memory.
    pub static MEMORY64: AtomicUsize = AtomicUsize::new(0);
    /// Modules whose instantiation failed in both engines (nothing called).
    pub static NOT_INSTANTIATED: AtomicUsize = AtomicUsize::new(0);
}

/// The wasm-smith configuration: [`crate::smith::config_3`] (tail calls, up to three memories,
/// 64-bit memories and tables, exceptions with in-module tags, SIMD and relaxed SIMD,
/// extended constant expressions, reference types; no imports, threads, GC or shared
/// memories): what this target needs of `config_3` is spelt out.
pub fn smith_config() -> wasm_smith::Config {
    wasm_smith::Config {
        exceptions_enabled: true,
        tail_call_enabled: true,
        memory64_enabled: true,
        simd_enabled: true,
        relaxed_simd_enabled: true,
        extended_const_enabled: true,
        reference_types_enabled: true,
        bulk_memory_enabled: true,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        gc_enabled: false,
        max_imports: 0,
        // At least two tags whenever the module has a function type without results (a tag's
        // type): with the default (none required) about 7% of the modules throw, with two 12%.
        min_tags: 2,
        ..crate::smith::config_3()
    }
}

/// The oracle: Wasmtime with the same features, compiling with Cranelift on the calling thread.
fn wasmtime_engine() -> &'static wasmtime::Engine {
    static ENGINE: OnceLock<wasmtime::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config
            .wasm_exceptions(true)
            .wasm_tail_call(true)
            .wasm_multi_memory(true)
            .wasm_memory64(true)
            .wasm_simd(true)
            .wasm_relaxed_simd(true)
            // The deterministic choice of every relaxed operator is the engine's (see the
            // module doc): without it, x86 `relaxed_*` lowerings differ on edge values.
            .relaxed_simd_deterministic(true)
            .wasm_extended_const(true)
            // Harmless while wasm-smith makes no typed references (see the module doc).
            .wasm_function_references(true)
            .wasm_reference_types(true)
            .wasm_bulk_memory(true)
            .wasm_gc(false)
            // Off (the default), as in the engine: NaN payloads are what the hardware makes, and
            // the traces compare NaNs by NaN-ness (see the module doc).
            .cranelift_nan_canonicalization(false);
        wasmtime::Engine::new(&config).expect("Wasmtime supports the configured features")
    })
}

fn ty(t: &ValType) -> Ty {
    match t {
        ValType::I32 => Ty::I32,
        ValType::I64 => Ty::I64,
        ValType::F32 => Ty::F32,
        ValType::F64 => Ty::F64,
        ValType::V128 => Ty::V128,
        ValType::Ref(_) => Ty::Ref,
    }
}

fn value(v: &Val) -> Value {
    match v {
        Val::I32(x) => Value::I32(*x),
        Val::I64(x) => Value::I64(*x),
        Val::F32(x) => Value::F32(*x),
        Val::F64(x) => Value::F64(*x),
        Val::V128(x) => Value::V128(x.as_u128()),
        Val::FuncRef(f) => Value::Ref(f.is_none()),
        Val::ExternRef(r) => Value::Ref(r.is_none()),
        Val::AnyRef(r) => Value::Ref(r.is_none()),
        Val::ExnRef(r) => Value::Ref(r.is_none()),
        Val::ContRef(r) => Value::Ref(r.is_none()),
    }
}

fn arg(v: &Value, t: &ValType) -> Val {
    match (*v, t) {
        (Value::I32(x), _) => Val::I32(x),
        (Value::I64(x), _) => Val::I64(x),
        (Value::F32(x), _) => Val::F32(x),
        (Value::F64(x), _) => Val::F64(x),
        (Value::V128(x), _) => Val::V128(x.into()),
        (Value::Ref(_), ValType::Ref(r)) => Val::null_ref(r.heap_type()),
        (Value::Ref(_), other) => unreachable!("a reference argument for a {other} parameter"),
    }
}

/// The outcome of a failed call or instantiation: a trap, an uncaught exception, or another
/// error. A pending exception is taken off the store, which is then as before the call.
fn outcome(store: &mut wasmtime::Store<Limits>, e: &wasmtime::Error) -> Outcome {
    use wasmtime::Trap as T;
    if e.is::<wasmtime::ThrownException>() {
        store.take_pending_exception();
        return Outcome::Trapped(TrapClass::UncaughtException, "ThrownException".into());
    }
    let Some(trap) = e.downcast_ref::<T>() else { return Outcome::Failed(format!("{e:?}")) };
    let class = match trap {
        T::UnreachableCodeReached => TrapClass::Unreachable,
        T::IntegerDivisionByZero => TrapClass::DivideByZero,
        T::IntegerOverflow => TrapClass::Overflow,
        T::BadConversionToInteger => TrapClass::BadConversion,
        T::MemoryOutOfBounds => TrapClass::MemoryOutOfBounds,
        T::TableOutOfBounds => TrapClass::TableOutOfBounds,
        T::IndirectCallToNull => TrapClass::IndirectNull,
        T::BadSignature => TrapClass::IndirectSignature,
        T::StackOverflow => TrapClass::StackOverflow,
        // `throw_ref` of null, `call_ref` of null, `ref.as_non_null` of null.
        T::NullReference => TrapClass::NullReference,
        _ => TrapClass::Other,
    };
    Outcome::Trapped(class, format!("{trap:?}"))
}

fn state(store: &mut wasmtime::Store<Limits>, instance: &wasmtime::Instance) -> State {
    let mut exports: Vec<(String, Extern)> =
        instance.exports(&mut *store).map(|e| (e.name().to_string(), e.into_extern())).collect();
    exports.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = State::default();
    for (name, e) in exports {
        match e {
            Extern::Global(g) => s.globals.push((name, value(&g.get(&mut *store)))),
            Extern::Memory(m) => {
                let data = m.data(&*store);
                s.memories.push((name, data.len(), crate::runner::hash(data)));
            }
            Extern::Table(t) => s.tables.push((name, t.size(&*store))),
            _ => {}
        }
    }
    s
}

/// The oracle's store limits, the engine's (`exec::run_ours`): all memories together at most
/// [`crate::exec::MEMORY_LIMIT`] bytes (Wasmtime's `StoreLimits` would cap each memory on its
/// own), each table at most `MAX_TABLE_ELEMENTS` elements. A refused growth gives -1, or fails
/// instantiation. Wasmtime's GC heap, where its exception objects live, grows through this
/// limiter too, as the engine counts its exception objects against its limit (the two heaps'
/// sizes differ: see [`target`] for an exception refused at the limit).
#[derive(Default)]
struct Limits {
    /// Bytes of all memories (and the GC heap) now.
    memory_bytes: usize,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        let total = (self.memory_bytes - current.min(self.memory_bytes)).saturating_add(desired);
        if total > crate::exec::MEMORY_LIMIT as usize {
            return Ok(false);
        }
        self.memory_bytes = total;
        Ok(true)
    }

    fn table_growing(&mut self, _: usize, desired: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= engine::store::MAX_TABLE_ELEMENTS as usize)
    }
}

/// Runs `wasm` in Wasmtime with the same plan as [`run_ours`], under the same memory and table
/// limits ([`Limits`]). Like the wasmi oracle it has no
/// fuel of its own: wasm-smith's fuel counter (`ensure_termination`) ends every module.
fn run_wasmtime(wasm: &[u8], seed: u64) -> Trace {
    let engine = wasmtime_engine();
    let module = wasmtime::Module::new(engine, wasm).expect("Wasmtime accepts a wasm-smith module");
    let mut store = wasmtime::Store::new(engine, Limits::default());
    store.limiter(|limits| limits);
    let instance = match wasmtime::Instance::new(&mut store, &module, &[]) {
        Ok(instance) => instance,
        Err(e) => return Trace { instantiated: Err(outcome(&mut store, &e)), steps: vec![] },
    };
    let funcs: Vec<(String, Vec<Ty>)> = module
        .exports()
        .filter_map(|e| Some((e.name().to_string(), e.ty().func()?.params().map(|t| ty(&t)).collect())))
        .collect();
    let mut trace = Trace { instantiated: Ok(state(&mut store, &instance)), steps: vec![] };
    for (name, args) in plan(funcs, seed) {
        let func = instance.get_func(&mut store, &name).expect("exported function");
        let ft = func.ty(&store);
        let params: Vec<Val> = args.iter().zip(ft.params()).map(|(a, t)| arg(a, &t)).collect();
        let mut results: Vec<Val> = ft.results().map(|_| Val::I32(0)).collect();
        let outcome = match func.call(&mut store, &params, &mut results) {
            Ok(()) => Outcome::Returned(results.iter().map(value).collect()),
            Err(e) => outcome(&mut store, &e),
        };
        let stop = outcome.is_stack_overflow();
        trace.steps.push(Step { name, args, outcome, state: state(&mut store, &instance) });
        if stop {
            break;
        }
    }
    trace
}

/// Whether two vectors are equal lane by lane, two NaN lanes counting as equal, under the
/// `f32x4` or the `f64x2` view.
fn v128_equal_modulo_nan(a: u128, b: u128) -> bool {
    let f32_lanes = (0..4).all(|i| {
        let (x, y) = ((a >> (32 * i)) as u32, (b >> (32 * i)) as u32);
        x == y || (f32::from_bits(x).is_nan() && f32::from_bits(y).is_nan())
    });
    let f64_lanes = (0..2).all(|i| {
        let (x, y) = ((a >> (64 * i)) as u64, (b >> (64 * i)) as u64);
        x == y || (f64::from_bits(x).is_nan() && f64::from_bits(y).is_nan())
    });
    f32_lanes || f64_lanes
}

/// Gives `theirs` the vectors of `ours` wherever the two differ only in NaN payloads.
fn align_vectors(ours: &[Value], theirs: &mut [Value]) {
    for (o, t) in ours.iter().zip(theirs) {
        if let (Value::V128(a), Value::V128(b)) = (*o, *t) {
            if v128_equal_modulo_nan(a, b) {
                *t = *o;
            }
        }
    }
}

fn align_state(ours: &State, theirs: &mut State) {
    for (o, t) in ours.globals.iter().zip(&mut theirs.globals) {
        align_vectors(std::slice::from_ref(&o.1), std::slice::from_mut(&mut t.1));
    }
}

/// Normalises `theirs` towards `ours` where the spec lets engines differ (see the module doc).
fn normalise(ours: &Trace, theirs: &mut Trace) {
    if let (Ok(o), Ok(t)) = (&ours.instantiated, &mut theirs.instantiated) {
        align_state(o, t);
    }
    for (o, t) in ours.steps.iter().zip(&mut theirs.steps) {
        if let (Outcome::Returned(a), Outcome::Returned(b)) = (&o.outcome, &mut t.outcome) {
            align_vectors(a, b);
        }
        align_state(&o.state, &mut t.state);
    }
}

/// Counts what of WebAssembly 3.0 and SIMD `wasm` uses into [`coverage`].
fn count_feature_use(wasm: &[u8]) {
    use wasmparser::{Operator as O, Payload};
    let (mut throws, mut catches, mut tail_calls, mut simd) = (false, false, false, false);
    let (mut memories, mut memory64) = (0, false);
    for payload in wasmparser::Parser::new(0).parse_all(wasm).flatten() {
        match payload {
            Payload::MemorySection(reader) => {
                for memory in reader.into_iter().flatten() {
                    memories += 1;
                    memory64 |= memory.memory64;
                }
            }
            Payload::CodeSectionEntry(body) => {
                let Ok(mut ops) = body.get_operators_reader() else { continue };
                while let Ok(op) = ops.read() {
                    match op {
                        O::Throw { .. } | O::ThrowRef => throws = true,
                        O::TryTable { try_table } if !try_table.catches.is_empty() => catches = true,
                        O::ReturnCall { .. } | O::ReturnCallIndirect { .. } => tail_calls = true,
                        _ if !simd => {
                            let name = format!("{op:?}");
                            simd = ["V128", "I8x16", "I16x8", "I32x4", "I64x2", "F32x4", "F64x2"]
                                .iter()
                                .any(|shape| name.starts_with(shape));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let add = |c: &AtomicUsize, yes: bool| c.fetch_add(usize::from(yes), Ordering::Relaxed);
    add(&coverage::THROWING, throws);
    add(&coverage::CATCHING, throws && catches);
    add(&coverage::TAIL_CALLS, tail_calls);
    add(&coverage::SIMD, simd);
    add(&coverage::MULTI_MEMORY, memories > 1);
    add(&coverage::MEMORY64, memory64);
}

fn count_outcomes(trace: &Trace) {
    let uncaught = |o: &Outcome| matches!(o, Outcome::Trapped(TrapClass::UncaughtException, _));
    let calls = trace.steps.iter().filter(|s| uncaught(&s.outcome)).count();
    let at_start = matches!(&trace.instantiated, Err(o) if uncaught(o));
    coverage::MODULES.fetch_add(1, Ordering::Relaxed);
    coverage::NOT_INSTANTIATED.fetch_add(usize::from(trace.instantiated.is_err()), Ordering::Relaxed);
    coverage::CALLS.fetch_add(trace.steps.len(), Ordering::Relaxed);
    coverage::UNCAUGHT_CALLS.fetch_add(calls, Ordering::Relaxed);
    coverage::UNCAUGHT_MODULES.fetch_add(usize::from(calls > 0 || at_start), Ordering::Relaxed);
}

/// The target.
pub fn target(data: &[u8]) {
    let Some(wasm) = crate::smith::module_with(smith_config(), data) else { return };
    let seed = crate::runner::hash(&wasm);
    let module = match engine::Module::new(engine(None), &wasm) {
        Ok(module) => module,
        Err(e) => panic!("a valid wasm-smith module failed to compile: {e}"),
    };
    let mut ours = run_ours(&module, seed);
    let mut oracle = run_wasmtime(&wasm, seed);
    // An exception object refused at the memory limit is the embedder's limit, not the spec's,
    // and the engines' exception objects differ in size: compare only the calls before.
    let refused = |o: &Outcome| match o {
        Outcome::Trapped(_, name) => name == "ExceptionsOutOfMemory",
        Outcome::Failed(message) => message.contains("GC heap out of memory"),
        Outcome::Returned(_) => false,
    };
    if matches!(&ours.instantiated, Err(o) if refused(o)) || matches!(&oracle.instantiated, Err(o) if refused(o)) {
        return;
    }
    let at = ours.steps.iter().zip(&oracle.steps).position(|(a, b)| refused(&a.outcome) || refused(&b.outcome));
    if let Some(at) = at {
        ours.steps.truncate(at);
        oracle.steps.truncate(at);
    }
    normalise(&ours, &mut oracle);
    if let Err(diff) = compare(&ours, &oracle, false) {
        panic!("sandboxrun vs Wasmtime: {diff}");
    }
    count_feature_use(&wasm);
    count_outcomes(&ours);
}

/// Inputs for the bounded test: random wasm-smith choices, or mutated corpus entries.
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    super::internal_differential::generate(rng, corpus)
}

/// The campaign's exception coverage, one line.
pub fn coverage_summary() -> String {
    let get = |c: &AtomicUsize| c.load(Ordering::Relaxed);
    format!(
        "{} modules compared ({} failed to instantiate, {} calls): {} throw, {} throw and catch (try_table with a catch \
         clause); {} ended a call in an uncaught exception ({} calls); {} tail calls, {} SIMD, {} several \
         memories, {} a 64-bit memory",
        get(&coverage::MODULES),
        get(&coverage::NOT_INSTANTIATED),
        get(&coverage::CALLS),
        get(&coverage::THROWING),
        get(&coverage::CATCHING),
        get(&coverage::UNCAUGHT_MODULES),
        get(&coverage::UNCAUGHT_CALLS),
        get(&coverage::TAIL_CALLS),
        get(&coverage::SIMD),
        get(&coverage::MULTI_MEMORY),
        get(&coverage::MEMORY64),
    )
}

#[cfg(test)]
mod tests {
    use super::v128_equal_modulo_nan;
    use crate::exec::{Outcome, TrapClass, Value};

    /// The harness maps each exception outcome alike on both sides: a caught exception's
    /// payload, an exnref result, an uncaught exception, `throw_ref` of null, and an exception
    /// thrown by the start function.
    #[test]
    fn exception_outcomes_are_classed_alike() {
        let wasm = wat::parse_str(
            r#"(module
                (tag $t (param i32))
                (global (export "g") (mut i32) (i32.const 0))
                (func (export "a_caught") (result i32)
                  (block $h (result i32)
                    (try_table (catch $t $h) (throw $t (i32.const 42)))
                    (i32.const 0)))
                (func (export "b_exnref") (result exnref)
                  (block $h (result exnref)
                    (try_table (catch_all_ref $h) (throw $t (i32.const 1)))
                    (ref.null exn)))
                (func (export "c_uncaught") (global.set 0 (i32.const 5)) (throw $t (i32.const 7)))
                (func (export "d_null") (throw_ref (ref.null exn))))"#,
        )
        .unwrap();
        let module = engine::Module::new(crate::exec::engine(None), &wasm).unwrap();
        let ours = crate::exec::run_ours(&module, 1);
        let theirs = super::run_wasmtime(&wasm, 1);
        crate::exec::compare(&ours, &theirs, false).unwrap();
        let outcomes: Vec<&Outcome> = theirs.steps.iter().step_by(2).map(|s| &s.outcome).collect();
        assert_eq!(outcomes[0], &Outcome::Returned(vec![Value::I32(42)]));
        assert_eq!(outcomes[1], &Outcome::Returned(vec![Value::Ref(false)]));
        assert!(matches!(outcomes[2], Outcome::Trapped(TrapClass::UncaughtException, _)));
        assert!(matches!(outcomes[3], Outcome::Trapped(TrapClass::NullReference, _)));
        assert_eq!(theirs.steps[4].state.globals[0].1, Value::I32(5));

        let start = wat::parse_str("(module (tag $t) (func $s (throw $t)) (start $s))").unwrap();
        let module = engine::Module::new(crate::exec::engine(None), &start).unwrap();
        let uncaught =
            |t: &crate::exec::Trace| matches!(t.instantiated, Err(Outcome::Trapped(TrapClass::UncaughtException, _)));
        assert!(uncaught(&crate::exec::run_ours(&module, 1)));
        assert!(uncaught(&super::run_wasmtime(&start, 1)));
    }

    #[test]
    fn fuzz_differential_wasmtime() {
        crate::runner::run(&crate::runner::Campaign {
            name: "differential_wasmtime",
            target: super::target,
            generate: super::generate,
            seconds: 10.0,
        });
        println!("fuzz differential_wasmtime: {}", super::coverage_summary());
    }

    /// Wasmtime's deterministic relaxed SIMD gives the engine's results on the values where
    /// the choices differ (unfused madd, x86 swizzle and conversions, unsigned dot operand).
    #[test]
    fn relaxed_simd_is_deterministic_alike() {
        let wasm = wat::parse_str(
            r#"(module
                (func (export "madd") (result v128)
                  (f32x4.relaxed_madd (v128.const f32x4 0x1.000002p+0 1 1 1)
                    (v128.const f32x4 0x1.000002p+0 1 1 1) (v128.const f32x4 -0x1.000004p+0 0 0 0)))
                (func (export "nmadd") (result v128)
                  (f64x2.relaxed_nmadd (v128.const f64x2 0x1.0000000000001p+0 1)
                    (v128.const f64x2 0x1.0000000000001p+0 1) (v128.const f64x2 0x1.0000000000002p+0 0)))
                (func (export "swizzle") (result v128)
                  (i8x16.relaxed_swizzle (v128.const i8x16 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
                    (v128.const i8x16 0 16 17 127 128 200 255 15 1 2 3 4 5 6 7 8)))
                (func (export "trunc") (result v128)
                  (i32x4.relaxed_trunc_f32x4_s (v128.const f32x4 nan 3e9 -3e9 -1.5)))
                (func (export "trunc_u") (result v128)
                  (i32x4.relaxed_trunc_f64x2_u_zero (v128.const f64x2 -1 nan)))
                (func (export "dot") (result v128)
                  (i16x8.relaxed_dot_i8x16_i7x16_s (v128.const i8x16 -128 -128 127 127 -1 -1 0 0 1 2 3 4 5 6 7 8)
                    (v128.const i8x16 -128 -128 -128 -128 -1 255 0 0 1 2 3 4 5 6 7 8)))
                (func (export "dot_add") (result v128)
                  (i32x4.relaxed_dot_i8x16_i7x16_add_s (v128.const i8x16 -128 -128 -128 -128 127 127 127 127 0 0 0 0 1 1 1 1)
                    (v128.const i8x16 -128 -128 -128 -128 -128 -128 -128 -128 0 0 0 0 -1 -1 -1 -1)
                    (v128.const i32x4 0x7fffffff 1 2 3)))
                (func (export "laneselect") (result v128)
                  (i32x4.relaxed_laneselect (v128.const i32x4 -1 -1 -1 -1) (v128.const i32x4 0 0 0 0)
                    (v128.const i32x4 0x80000000 0x7fffffff 0x0000ffff 0)))
                (func (export "min") (result v128)
                  (f32x4.relaxed_min (v128.const f32x4 -0 0 nan 1) (v128.const f32x4 0 -0 1 nan)))
                (func (export "max") (result v128)
                  (f64x2.relaxed_max (v128.const f64x2 -0 nan) (v128.const f64x2 0 1)))
                (func (export "q15") (result v128)
                  (i16x8.relaxed_q15mulr_s (v128.const i16x8 -32768 -32768 1 2 3 4 5 6)
                    (v128.const i16x8 -32768 32767 1 2 3 4 5 6))))"#,
        )
        .unwrap();
        let module = engine::Module::new(crate::exec::engine(None), &wasm).unwrap();
        let ours = crate::exec::run_ours(&module, 1);
        let theirs = super::run_wasmtime(&wasm, 1);
        assert_eq!(ours.steps.len(), 22);
        // Bitwise, NaN lanes included: both engines make the same NaNs here.
        for (a, b) in ours.steps.iter().zip(&theirs.steps) {
            assert_eq!(a.outcome, b.outcome, "{}", a.name);
            if let (Outcome::Returned(a), Outcome::Returned(b)) = (&a.outcome, &b.outcome) {
                assert!(matches!((a[0], b[0]), (Value::V128(x), Value::V128(y)) if x == y));
            }
        }
    }

    #[test]
    fn vectors_compare_modulo_nan_payloads() {
        let quiet = 0x7fc0_0000u128;
        let other = 0x7fc0_0001u128;
        assert!(v128_equal_modulo_nan(quiet, other));
        assert!(v128_equal_modulo_nan(0x7ff8_0000_0000_0000, 0x7ff8_0000_0000_0001));
        assert!(!v128_equal_modulo_nan(quiet, 0x3f80_0000));
        assert!(!v128_equal_modulo_nan(1 << 100, 0));
    }
}
