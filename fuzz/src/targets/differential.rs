//! `differential`: a wasm-smith module run in sandboxrun's engine and in wasmi (the oracle)
//! must behave alike: instantiation succeeds in both or fails in both, and every call
//! returns the same values or traps with the same class of trap, leaving the same exported
//! globals, memories and tables. Traces stop comparing at a stack overflow, whose depth the
//! engines rightly choose differently. Built only with the oracle: under `cargo test`
//! (a dev-dependency) and `cargo fuzz` (`cfg(fuzzing)`).

use crate::exec::{compare, engine, plan, run_ours, Outcome, State, Step, Trace, TrapClass, Ty, Value};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use wasmi::{Extern, Val};

/// Inputs the oracle itself panicked on (wasmi 2.0.0's translator trips a debug assertion,
/// "a register operand already exists on the stack", on some valid modules): they are not
/// compared, only counted, and the bounded test prints the count.
pub static ORACLE_PANICS: AtomicUsize = AtomicUsize::new(0);

fn ty(t: &wasmi::ValType) -> Ty {
    match t {
        wasmi::ValType::I32 => Ty::I32,
        wasmi::ValType::I64 => Ty::I64,
        wasmi::ValType::F32 => Ty::F32,
        wasmi::ValType::F64 => Ty::F64,
        _ => Ty::Ref,
    }
}

fn value(v: &Val) -> Value {
    match v {
        Val::I32(x) => Value::I32(*x),
        Val::I64(x) => Value::I64(*x),
        Val::F32(x) => Value::F32(x.to_bits()),
        Val::F64(x) => Value::F64(x.to_bits()),
        Val::FuncRef(f) => Value::Ref(f.is_null()),
        Val::ExternRef(r) => Value::Ref(r.is_null()),
        other => panic!("unexpected value from wasmi: {other:?}"),
    }
}

fn arg(v: &Value, t: &wasmi::ValType) -> Val {
    match *v {
        Value::I32(x) => Val::I32(x),
        Value::I64(x) => Val::I64(x),
        Value::F32(x) => Val::F32(wasmi::F32::from_bits(x)),
        Value::F64(x) => Val::F64(wasmi::F64::from_bits(x)),
        Value::Ref(_) => Val::default_for_ty(*t),
        Value::V128(_) => unreachable!("the modules compared with wasmi use no SIMD (smith::config)"),
    }
}

fn outcome(e: &wasmi::Error) -> Outcome {
    use wasmi::TrapCode as T;
    let Some(code) = e.as_trap_code() else { return Outcome::Failed(e.to_string()) };
    let class = match code {
        T::UnreachableCodeReached => TrapClass::Unreachable,
        T::IntegerDivisionByZero => TrapClass::DivideByZero,
        T::IntegerOverflow => TrapClass::Overflow,
        T::BadConversionToInteger => TrapClass::BadConversion,
        T::MemoryOutOfBounds => TrapClass::MemoryOutOfBounds,
        T::TableOutOfBounds => TrapClass::TableOutOfBounds,
        T::IndirectCallToNull => TrapClass::IndirectNull,
        T::BadSignature => TrapClass::IndirectSignature,
        T::StackOverflow => TrapClass::StackOverflow,
        _ => TrapClass::Other,
    };
    Outcome::Trapped(class, format!("{code:?}"))
}

fn state(store: &wasmi::Store<wasmi::StoreLimits>, instance: &wasmi::Instance) -> State {
    let mut exports: Vec<(String, Extern)> =
        instance.exports(store).map(|e| (e.name().to_string(), e.into_extern())).collect();
    exports.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = State::default();
    for (name, e) in exports {
        match e {
            Extern::Global(g) => s.globals.push((name, value(&g.get(store)))),
            Extern::Memory(m) => {
                let data = m.data(store);
                s.memories.push((name, data.len(), crate::runner::hash(data)));
            }
            Extern::Table(t) => s.tables.push((name, t.size(store))),
            Extern::Func(_) => {}
        }
    }
    s
}

/// Runs `wasm` in wasmi with the same plan as [`run_ours`].
fn run_wasmi(wasm: &[u8], seed: u64) -> Trace {
    let engine = wasmi::Engine::default();
    let module = wasmi::Module::new(&engine, wasm).expect("wasmi accepts a wasm-smith module");
    let limits = wasmi::StoreLimitsBuilder::new()
        .memory_size(crate::exec::MEMORY_LIMIT as usize)
        .table_elements(engine::store::MAX_TABLE_ELEMENTS as usize)
        .build();
    let mut store = wasmi::Store::new(&engine, limits);
    store.limiter(|limits| limits);
    let linker = wasmi::Linker::<wasmi::StoreLimits>::new(&engine);
    let instance = match linker.instantiate_and_start(&mut store, &module) {
        Ok(instance) => instance,
        Err(e) => return Trace { instantiated: Err(outcome(&e)), steps: vec![] },
    };
    let funcs: Vec<(String, Vec<Ty>)> = instance
        .exports(&store)
        .filter_map(|e| {
            let name = e.name().to_string();
            let f = e.into_func()?;
            Some((name, f.ty(&store).params().iter().map(ty).collect()))
        })
        .collect();
    let mut trace = Trace { instantiated: Ok(state(&store, &instance)), steps: vec![] };
    for (name, args) in plan(funcs, seed) {
        let func = instance.get_func(&store, &name).expect("exported function");
        let ft = func.ty(&store);
        let params: Vec<Val> = args.iter().zip(ft.params()).map(|(a, t)| arg(a, t)).collect();
        let mut results: Vec<Val> = ft.results().iter().map(|t| Val::default_for_ty(*t)).collect();
        let outcome = match func.call(&mut store, &params, &mut results) {
            Ok(()) => Outcome::Returned(results.iter().map(value).collect()),
            Err(e) => outcome(&e),
        };
        let stop = outcome.is_stack_overflow();
        trace.steps.push(Step { name, args, outcome, state: state(&store, &instance) });
        if stop {
            break;
        }
    }
    trace
}

/// Keeps the oracle's own panics (caught and counted) off stderr; every other panic still
/// goes to the hook there was (the test harness's, or libFuzzer's, which aborts).
fn quiet_oracle_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.location().is_some_and(|l| l.file().contains("/wasmi-")) {
                previous(info);
            }
        }));
    });
}

/// The target.
pub fn target(data: &[u8]) {
    let Some(wasm) = crate::smith::module(data) else { return };
    let seed = crate::runner::hash(&wasm);
    let module = match engine::Module::new(engine(None), &wasm) {
        Ok(module) => module,
        Err(e) => panic!("a valid wasm-smith module failed to compile: {e}"),
    };
    let ours = run_ours(&module, seed);
    quiet_oracle_panics();
    let Ok(oracle) = catch_unwind(AssertUnwindSafe(|| run_wasmi(&wasm, seed))) else {
        ORACLE_PANICS.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if let Err(diff) = compare(&ours, &oracle, false) {
        panic!("sandboxrun vs wasmi: {diff}");
    }
}

/// Inputs for the bounded test: random wasm-smith choices, or mutated corpus entries.
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    super::internal_differential::generate(rng, corpus)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_differential() {
        crate::runner::run(&crate::runner::Campaign {
            name: "differential",
            target: super::target,
            generate: super::generate,
            seconds: 15.0,
        });
        let panics = super::ORACLE_PANICS.load(std::sync::atomic::Ordering::Relaxed);
        println!("fuzz differential: wasmi panicked on {panics} inputs (not compared; a wasmi bug)");
    }
}
