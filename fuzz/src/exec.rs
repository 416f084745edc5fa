//! Running a module and recording what each export does: the traces the differential
//! targets compare. A [`Trace`] is engine-neutral; [`run_ours`] makes one with sandboxrun's
//! engine (the differential target makes one with wasmi).
//!
//! Every exported function is called, in name order, first with zero arguments and then with
//! arguments derived from the module's hash ([`plan`]); after each call the trace records
//! the results or trap and the state of every exported global, memory and table.

use engine::{BoundsStrategy, Config, Engine, Extern, ExternType, Module, ModuleError, Store, TrapKind, Val};
use std::sync::OnceLock;

/// The most a memory may grow to (`memory.grow` beyond gives -1), in both engines: an
/// unbounded memory could grow to 4 GiB, and the traces hash every memory after every call.
pub const MEMORY_LIMIT: u64 = 16 << 16;

/// A value, with references reduced to null or not (their identities are engine-private).
#[derive(Clone, Copy, Debug)]
pub enum Value {
    /// `i32`.
    I32(i32),
    /// `i64`.
    I64(i64),
    /// `f32` bits.
    F32(u32),
    /// `f64` bits.
    F64(u64),
    /// `v128` bits (lane 0 lowest).
    V128(u128),
    /// A reference: `true` when null.
    Ref(bool),
}

impl PartialEq for Value {
    /// Bitwise, except that any two NaNs of a type are equal (the spec lets NaN payloads
    /// differ where wasm-smith's canonicalisation does not reach).
    fn eq(&self, other: &Value) -> bool {
        match (*self, *other) {
            (Value::I32(a), Value::I32(b)) => a == b,
            (Value::I64(a), Value::I64(b)) => a == b,
            (Value::F32(a), Value::F32(b)) => a == b || (f32::from_bits(a).is_nan() && f32::from_bits(b).is_nan()),
            (Value::F64(a), Value::F64(b)) => a == b || (f64::from_bits(a).is_nan() && f64::from_bits(b).is_nan()),
            // Bitwise: `differential_wasmtime` lets NaN lanes differ by normalising its traces.
            (Value::V128(a), Value::V128(b)) => a == b,
            (Value::Ref(a), Value::Ref(b)) => a == b,
            _ => false,
        }
    }
}

/// A parameter type, engine-neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `v128`.
    V128,
    /// `funcref` or `externref` (always passed null).
    Ref,
}

/// A trap, in classes both engines can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapClass {
    /// `unreachable` (including wasm-smith's out-of-fuel trap).
    Unreachable,
    /// Integer division by zero.
    DivideByZero,
    /// Integer overflow.
    Overflow,
    /// Float-to-int conversion of NaN.
    BadConversion,
    /// Memory access out of bounds.
    MemoryOutOfBounds,
    /// Table access (or `call_indirect` index) out of bounds.
    TableOutOfBounds,
    /// `call_indirect` to a null entry.
    IndirectNull,
    /// `call_indirect` signature mismatch.
    IndirectSignature,
    /// Call stack exhausted: limits differ between engines, so a trace stops comparing here.
    StackOverflow,
    /// `call_ref` of null, `ref.as_non_null` of null (typed function references), or
    /// `throw_ref` of null (Wasmtime names all three alike).
    NullReference,
    /// An exception no handler caught reached the host.
    UncaughtException,
    /// Anything else.
    Other,
}

impl From<TrapKind> for TrapClass {
    fn from(kind: TrapKind) -> TrapClass {
        match kind {
            TrapKind::Unreachable => TrapClass::Unreachable,
            TrapKind::IntegerDivideByZero => TrapClass::DivideByZero,
            TrapKind::IntegerOverflow => TrapClass::Overflow,
            TrapKind::InvalidConversionToInteger => TrapClass::BadConversion,
            TrapKind::MemoryOutOfBounds => TrapClass::MemoryOutOfBounds,
            TrapKind::IndirectCallTypeMismatch => TrapClass::IndirectSignature,
            TrapKind::UninitializedElement => TrapClass::IndirectNull,
            TrapKind::UndefinedElement | TrapKind::TableOutOfBounds => TrapClass::TableOutOfBounds,
            TrapKind::StackOverflow => TrapClass::StackOverflow,
            TrapKind::NullFunctionReference | TrapKind::NullReference | TrapKind::NullExceptionReference => {
                TrapClass::NullReference
            }
            TrapKind::UncaughtException => TrapClass::UncaughtException,
            TrapKind::InstructionBudget | TrapKind::ExceptionsOutOfMemory => TrapClass::Other,
        }
    }
}

/// What a call did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// It returned these values.
    Returned(Vec<Value>),
    /// It trapped: the class, and the engine's own name for the trap.
    Trapped(TrapClass, String),
    /// It failed some other way (the engine's message).
    Failed(String),
}

impl Outcome {
    /// Whether this ran out of stack (after which engines may rightly disagree).
    pub fn is_stack_overflow(&self) -> bool {
        matches!(self, Outcome::Trapped(TrapClass::StackOverflow, _))
    }
}

/// The exported state after a call: `(name, value)` for globals, `(name, length, hash)` for
/// memories, `(name, size)` for tables; each in name order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    /// Exported globals.
    pub globals: Vec<(String, Value)>,
    /// Exported memories.
    pub memories: Vec<(String, usize, u64)>,
    /// Exported tables.
    pub tables: Vec<(String, u64)>,
}

/// One call and its effects.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The export called.
    pub name: String,
    /// Its arguments.
    pub args: Vec<Value>,
    /// What it did.
    pub outcome: Outcome,
    /// The exported state afterwards.
    pub state: State,
}

/// What a module did: instantiation (with the state after it), then every call.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// `Err` if instantiation failed (a segment out of bounds, a trapping start function).
    pub instantiated: Result<State, Outcome>,
    /// The calls made.
    pub steps: Vec<Step>,
}

/// The calls to make: for each exported function (by name), zero arguments, then arguments
/// derived from `seed`.
pub fn plan(mut funcs: Vec<(String, Vec<Ty>)>, seed: u64) -> Vec<(String, Vec<Value>)> {
    funcs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut rng = crate::runner::Rng::new(seed);
    let mut calls = Vec::new();
    for (name, params) in &funcs {
        let zero = params.iter().map(|t| derive(*t, None)).collect();
        calls.push((name.clone(), zero));
        let derived = params.iter().map(|t| derive(*t, Some(&mut rng))).collect();
        calls.push((name.clone(), derived));
    }
    calls
}

/// Zero, or an interesting or random value of type `ty`.
fn derive(ty: Ty, rng: Option<&mut crate::runner::Rng>) -> Value {
    let Some(rng) = rng else {
        return match ty {
            Ty::I32 => Value::I32(0),
            Ty::I64 => Value::I64(0),
            Ty::F32 => Value::F32(0),
            Ty::F64 => Value::F64(0),
            Ty::V128 => Value::V128(0),
            Ty::Ref => Value::Ref(true),
        };
    };
    let r = rng.next_u64();
    let pick = rng.below(8);
    match ty {
        Ty::I32 => Value::I32([0, 1, -1, i32::MIN, i32::MAX, 65536, r as i32, r as i32 & 0xffff][pick]),
        Ty::I64 => Value::I64([0, 1, -1, i64::MIN, i64::MAX, 1 << 32, r as i64, r as i64 & 0xffff][pick]),
        Ty::F32 => Value::F32(
            [0.0f32, -0.0, 1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 2147483648.0, r as u32 as f32][pick]
                .to_bits(),
        ),
        Ty::F64 => Value::F64(
            [0.0f64, -0.0, 1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 9.3e18, (r >> 11) as f64][pick].to_bits(),
        ),
        Ty::V128 => {
            // Lanes of every width at their edges: sign bits, all ones, f32 NaN / ±0 / 1 / inf.
            let random = u128::from(r) << 64 | u128::from(r.rotate_left(29));
            let edges = 0x7fc0_0000_8000_0000_3f80_0000_ff80_0000;
            Value::V128(
                [0, u128::MAX, 1, 0x8080_8080_8000_8000_8000_0000_8000_0000, edges, random, !random, r.into()][pick],
            )
        }
        Ty::Ref => Value::Ref(true),
    }
}

/// Compares two traces up to the first stack overflow in either; `strict` also compares
/// the engines' own trap names and the outcome of a failed instantiation (only meaningful
/// between two runs of the same engine). Returns a description of the first difference.
pub fn compare(a: &Trace, b: &Trace, strict: bool) -> Result<(), String> {
    match (&a.instantiated, &b.instantiated) {
        (Ok(sa), Ok(sb)) if sa != sb => return Err(format!("state after instantiation: {sa:?} vs {sb:?}")),
        (Ok(_), Ok(_)) => {}
        (Err(ea), Err(eb)) if strict && ea != eb => {
            if !(ea.is_stack_overflow() || eb.is_stack_overflow()) {
                return Err(format!("instantiation failed differently: {ea:?} vs {eb:?}"));
            }
        }
        (Err(_), Err(_)) => {}
        (ia, ib) => {
            let bad = |i: &Result<State, Outcome>| matches!(i, Err(o) if o.is_stack_overflow());
            if !(bad(ia) || bad(ib)) {
                return Err(format!("instantiation: {ia:?} vs {ib:?}"));
            }
        }
    }
    for (i, (sa, sb)) in a.steps.iter().zip(&b.steps).enumerate() {
        if sa.outcome.is_stack_overflow() || sb.outcome.is_stack_overflow() {
            return Ok(());
        }
        let same_outcome = match (&sa.outcome, &sb.outcome) {
            (Outcome::Trapped(ca, na), Outcome::Trapped(cb, nb)) => ca == cb && (!strict || na == nb),
            (oa, ob) => oa == ob,
        };
        if !same_outcome || sa.state != sb.state || sa.name != sb.name || sa.args != sb.args {
            return Err(format!("call {i}:\n  {sa:?}\nvs\n  {sb:?}"));
        }
    }
    if a.steps.len() != b.steps.len() {
        return Err(format!("{} calls vs {}", a.steps.len(), b.steps.len()));
    }
    Ok(())
}

/// An engine with bounds strategy `bounds` (or the default), compiling on the calling
/// thread; one per process and strategy.
pub fn engine(bounds: Option<BoundsStrategy>) -> &'static Engine {
    static ENGINES: [OnceLock<Engine>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let slot = match bounds {
        None => 0,
        Some(BoundsStrategy::GuardPages) => 1,
        Some(BoundsStrategy::Explicit) => 2,
    };
    ENGINES[slot].get_or_init(|| {
        Engine::new(Config { bounds, compile_threads: Some(1), ..Config::default() }).expect("x86-64 host")
    })
}

/// Loads `wasm`'s module from `artifact`, bytes that [`engine::artifact::Artifact::to_bytes`]
/// made from `Module::compile(engine, wasm)` in this process.
///
/// # Errors
/// The engine refused the artifact.
pub fn load_own_artifact(engine: &Engine, wasm: &[u8], artifact: &[u8]) -> Result<Module, ModuleError> {
    // SAFETY: every caller passes bytes this engine compiled from this very `wasm` a moment
    // ago, in this process, so the code is the engine's own, for this module and this
    // engine's identity.
    unsafe { Module::from_artifact(engine, wasm, artifact) }
}

/// Loads possibly corrupt artifact bytes, to check that loading refuses them without
/// panicking; the module is dropped at once, never instantiated nor called.
///
/// # Errors
/// The engine refused the artifact.
pub fn load_corrupt_artifact_never_run(engine: &Engine, wasm: &[u8], artifact: &[u8]) -> Result<(), ModuleError> {
    // SAFETY: the bytes may be corrupt, which breaks the contract's promise about the
    // *code*; but this function drops the module without instantiating it or calling anything,
    // so no byte of that code ever runs. Loading only checks the format, copies the code,
    // patches its relocations (each checked to lie inside its function) and maps it: that is
    // the part under test.
    unsafe { Module::from_artifact(engine, wasm, artifact) }.map(drop)
}

fn ty(t: engine::ValType) -> Ty {
    match t {
        engine::ValType::I32 => Ty::I32,
        engine::ValType::I64 => Ty::I64,
        engine::ValType::F32 => Ty::F32,
        engine::ValType::F64 => Ty::F64,
        engine::ValType::V128 => Ty::V128,
        _ => Ty::Ref,
    }
}

fn value(v: Val) -> Value {
    match v {
        Val::I32(x) => Value::I32(x),
        Val::I64(x) => Value::I64(x),
        Val::F32(x) => Value::F32(x),
        Val::F64(x) => Value::F64(x),
        Val::FuncRef(f) => Value::Ref(f.is_none()),
        Val::ExternRef(r) => Value::Ref(r.is_none()),
        Val::ExnRef(r) => Value::Ref(r.is_none()),
        Val::V128(x) => Value::V128(x),
    }
}

fn arg(v: &Value, t: engine::ValType) -> Val {
    match (*v, t) {
        (Value::I32(x), _) => Val::I32(x),
        (Value::I64(x), _) => Val::I64(x),
        (Value::F32(x), _) => Val::F32(x),
        (Value::F64(x), _) => Val::F64(x),
        (Value::V128(x), _) => Val::V128(x),
        (Value::Ref(_), engine::ValType::EXTERNREF) => Val::ExternRef(None),
        (Value::Ref(_), engine::ValType::EXNREF) => Val::ExnRef(None),
        (Value::Ref(_), _) => Val::FuncRef(None),
    }
}

fn trapped(kind: TrapKind) -> Outcome {
    Outcome::Trapped(kind.into(), format!("{kind:?}"))
}

/// The exported state of `instance`.
fn state(store: &Store, instance: engine::Instance) -> State {
    let mut names = store.export_names(instance);
    names.sort();
    let mut s = State::default();
    for name in names {
        match store.get_export(instance, &name) {
            Some(Extern::Global(g)) => s.globals.push((name, value(store.global_get(g)))),
            Some(Extern::Memory(m)) => {
                let data = store.memory_data(m);
                s.memories.push((name, data.len(), crate::runner::hash(data)));
            }
            Some(Extern::Table(t)) => s.tables.push((name, u64::from(store.table_type(t).limits.min))),
            _ => {}
        }
    }
    s
}

/// Instantiates `module` in a fresh store and runs the [`plan`] for seed `seed`.
pub fn run_ours(module: &Module, seed: u64) -> Trace {
    let mut store = Store::new(module.engine());
    store.set_memory_limit(MEMORY_LIMIT);
    let instance = match store.instantiate(module, &[]) {
        Ok(instance) => instance,
        Err(engine::InstantiateError::Trap(trap)) => {
            return Trace { instantiated: Err(trapped(trap.kind)), steps: vec![] }
        }
        Err(e) => return Trace { instantiated: Err(Outcome::Failed(e.to_string())), steps: vec![] },
    };
    let funcs: Vec<(String, Vec<Ty>)> = module
        .exports()
        .into_iter()
        .filter_map(|(name, t)| match t {
            ExternType::Func(f) => Some((name, f.params.iter().map(|p| ty(*p)).collect())),
            _ => None,
        })
        .collect();
    let mut trace = Trace { instantiated: Ok(state(&store, instance)), steps: vec![] };
    for (name, args) in plan(funcs, seed) {
        let func = store.get_func(instance, &name).expect("exported function");
        let ft = store.func_type(func);
        let vals: Vec<Val> = args.iter().zip(ft.params.iter()).map(|(a, t)| arg(a, *t)).collect();
        let outcome = match store.call(func, &vals) {
            Ok(results) => Outcome::Returned(results.into_iter().map(value).collect()),
            Err(engine::CallError::Trap(trap)) => trapped(trap.kind),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        let stop = outcome.is_stack_overflow();
        trace.steps.push(Step { name, args, outcome, state: state(&store, instance) });
        if stop {
            break;
        }
    }
    trace
}
