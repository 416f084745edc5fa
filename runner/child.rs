//! The child's run sequence: load, compile, build WASI, link, instantiate, execute. It runs
//! inside the forked (and, later, confined) child and reports a [`ChildReport`].

use crate::code_channel::{Cached, Receiver};
use crate::report::{ChildOutcome, ChildReport, Confinement, Stages, TrapReport};
use engine::{CallError, Config, Engine, LinkError, Linker, Module, Store, Trap, Val, ValType};
use policy::{Mode, Policy};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// What to run.
pub struct RunSpec<'a> {
    /// The module's bytes (`.wasm` or `.wat`).
    pub module: &'a [u8],
    /// argv[0] for the guest.
    pub argv0: String,
    /// Guest arguments after the policy's.
    pub extra_args: Vec<String>,
    /// The validated policy.
    pub policy: &'a Policy,
    /// `--invoke NAME VALUES...` instead of `_start`.
    pub invoke: Option<(String, Vec<String>)>,
    /// The code cache, through the supervisor; `None`: no cache.
    pub code: Option<Receiver>,
    /// Stop after compiling (`sandboxrun compile`).
    pub compile_only: bool,
    /// The confinement and its seccomp filter, both built by the parent before forking;
    /// `None` runs unconfined (only for tests of this sequence).
    pub confine: Option<(&'a sandbox::Confinement, &'a sandbox::Filter)>,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn trap_report(t: &Trap) -> TrapReport {
    TrapReport {
        kind: t.kind.to_string(),
        function: t.function.as_ref().map(|(i, n)| format!("{n} ({i})")),
        offset: t.offset,
    }
}

fn error(message: impl ToString) -> ChildOutcome {
    ChildOutcome::Error { message: message.to_string() }
}

/// Runs the module and describes how it ended.
pub fn run(mut spec: RunSpec) -> ChildReport {
    let mut stages = Stages::default();
    let mut compiled = false;
    let ctx_cell: Rc<RefCell<Option<Rc<RefCell<wasi::WasiCtx>>>>> = Rc::default();
    let confinement = RefCell::new(None);
    let outcome = run_stages(&mut spec, &mut stages, &mut compiled, &ctx_cell, &confinement);
    let usage = ctx_cell.borrow().as_ref().map(|c| c.borrow().usage()).unwrap_or_default();
    ChildReport {
        outcome,
        compiled,
        stages,
        stdout_bytes: usage.stdout_bytes,
        stderr_bytes: usage.stderr_bytes,
        confinement: confinement.into_inner(),
    }
}

/// Loads the cached artifact, or validates and compiles (sending the new artifact out).
fn module(
    engine: &Engine,
    spec: &mut RunSpec,
    wasm: &[u8],
    stages: &mut Stages,
    compiled: &mut bool,
) -> Result<Module, String> {
    // The supervisor has been looking the module up while this process confined itself. A
    // channel failure only costs the cache: compile.
    let cached = spec.code.as_mut().map_or(Ok(Cached::NoCache), Receiver::receive).unwrap_or(Cached::NoCache);
    if let Cached::Hit(artifact) = &cached {
        let t = Instant::now();
        // The cache key covers these exact bytes and this compiler: no re-validation needed.
        if let Ok(m) = Module::from_artifact(engine, wasm, artifact) {
            stages.compile = ms(t);
            return Ok(m);
        }
        // A damaged artifact: compile afresh (the parent replaces the row).
    }
    let t = Instant::now();
    engine::module_info::validate(wasm).map_err(|e| e.to_string())?;
    let info = engine::module_info::parse(wasm).map_err(|e| e.to_string())?;
    stages.load = ms(t);
    let t = Instant::now();
    let artifact = engine
        .compiler()
        .and_then(|c| c.compile_module(&info, wasm, engine.compile_threads()))
        .map_err(|e| e.to_string())?;
    *compiled = true;
    if let Some(code) = spec.code.as_mut() {
        // Sent before any guest code runs.
        code.send_back(&artifact.to_bytes());
    }
    let module = Module::load(engine, info, &artifact).map_err(|e| e.to_string())?;
    stages.compile = ms(t);
    Ok(module)
}

fn run_stages(
    spec: &mut RunSpec,
    stages: &mut Stages,
    compiled: &mut bool,
    ctx_out: &Rc<RefCell<Option<Rc<RefCell<wasi::WasiCtx>>>>>,
    confinement_out: &RefCell<Option<Confinement>>,
) -> ChildOutcome {
    let policy: &Policy = spec.policy;
    let limits = &policy.limits;

    // WASI opens the mounts and the stdin file by path: before confinement, after which only
    // these already-open descriptors reach the filesystem.
    let t = Instant::now();
    let ctx = match wasi_context(spec) {
        Ok(c) => Rc::new(RefCell::new(c)),
        Err(e) => return error(e),
    };
    *ctx_out.borrow_mut() = Some(ctx.clone());
    stages.link = ms(t);

    if let Some((confinement, filter)) = spec.confine {
        if let Err(e) = crate::confinement::check_rw_mounts(policy) {
            return error(e);
        }
        match sandbox::confine_with(confinement, filter) {
            Ok(applied) => *confinement_out.borrow_mut() = Some(crate::confinement::describe(&applied)),
            Err(e) => return error(format!("confinement failed: {e}")),
        }
    }

    let engine = match Engine::new(Config { max_wasm_stack: limits.wasm_stack as usize, ..Config::default() }) {
        Ok(e) => e,
        Err(e) => return error(e),
    };

    let t = Instant::now();
    let wasm = match engine::module_info::wat_to_binary(spec.module) {
        Ok(w) => w.into_owned(),
        Err(e) => return error(e),
    };
    stages.load = ms(t);
    let module = match module(&engine, spec, &wasm, stages, compiled) {
        Ok(m) => m,
        Err(e) => return error(e),
    };
    if spec.compile_only {
        return ChildOutcome::Exited { code: 0 };
    }

    let t = Instant::now();
    let mut store = Store::new(&engine);
    store.set_memory_limit(limits.memory);
    let mut linker = Linker::new();
    crate::wasi_link::define_wasi(&mut linker, &mut store, &module, &ctx);
    stages.link += ms(t);

    let t = Instant::now();
    let instance = match linker.instantiate(&mut store, &module) {
        Ok(i) => i,
        Err(LinkError::Instantiate(engine::InstantiateError::Trap(trap))) => {
            stages.instantiate = ms(t);
            return ChildOutcome::Trapped(trap_report(&trap));
        }
        Err(LinkError::Instantiate(engine::InstantiateError::Start(e))) => return call_outcome(Err(e)),
        Err(e) => return error(e),
    };
    stages.instantiate = ms(t);

    let t = Instant::now();
    let outcome = match &spec.invoke {
        None => match store.get_func(instance, "_start") {
            Some(f) => call_outcome(store.call(f, &[]).map(drop)),
            None => error("module exports no _start function (use --invoke NAME)"),
        },
        Some((name, values)) => invoke(&mut store, instance, name, values),
    };
    stages.execute = ms(t);
    outcome
}

/// Builds the WASI context: arguments, environment, stdin, limits, one preopen per mount.
fn wasi_context(spec: &RunSpec) -> Result<wasi::WasiCtx, wasi::BuildError> {
    let policy = spec.policy;
    let limits = &policy.limits;
    let mut args = vec![spec.argv0.clone()];
    args.extend(policy.args.iter().cloned());
    args.extend(spec.extra_args.iter().cloned());
    let mut builder = wasi::WasiCtxBuilder::new()
        .args(args)
        .env(policy.env.iter().cloned())
        .stdin(match &policy.stdin {
            policy::Stdin::Null => wasi::Stdin::Null,
            policy::Stdin::Inherit => wasi::Stdin::Inherit,
            policy::Stdin::File(p) => wasi::Stdin::File(p.clone()),
        })
        .limits(wasi::WasiLimits {
            open_files: limits.open_files,
            file_size: limits.file_size,
            disk_bytes: limits.disk,
            files_created: limits.files,
            output_bytes: limits.output,
        });
    for m in &policy.mounts {
        builder = builder.preopen(&m.host, m.guest.as_str(), m.mode == Mode::Rw);
    }
    builder.build()
}

fn call_outcome(result: Result<(), CallError>) -> ChildOutcome {
    match result {
        Ok(()) => ChildOutcome::Exited { code: 0 },
        Err(CallError::Trap(t)) => ChildOutcome::Trapped(trap_report(&t)),
        Err(CallError::Host(e)) => match e.downcast_ref::<wasi::Exit>() {
            Some(wasi::Exit::Code(c)) => ChildOutcome::Exited { code: *c as i32 },
            Some(wasi::Exit::OutputLimit) => ChildOutcome::OutputLimit,
            Some(wasi::Exit::Signal(s)) => ChildOutcome::Raised { signal: *s },
            None => error(e),
        },
        Err(e) => error(e),
    }
}

fn parse_value(text: &str, ty: ValType) -> Result<Val, String> {
    let bad = || format!("'{text}' is not a valid {ty}");
    Ok(match ty {
        ValType::I32 => {
            Val::I32(text.parse::<i32>().or_else(|_| text.parse::<u32>().map(|u| u as i32)).map_err(|_| bad())?)
        }
        ValType::I64 => {
            Val::I64(text.parse::<i64>().or_else(|_| text.parse::<u64>().map(|u| u as i64)).map_err(|_| bad())?)
        }
        ValType::F32 => Val::F32(text.parse::<f32>().map_err(|_| bad())?.to_bits()),
        ValType::F64 => Val::F64(text.parse::<f64>().map_err(|_| bad())?.to_bits()),
        _ => return Err(format!("cannot pass a {ty} from the command line")),
    })
}

fn format_value(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::FuncRef(f) => if f.is_some() { "funcref" } else { "null" }.to_string(),
        Val::ExternRef(r) => if r.is_some() { "externref" } else { "null" }.to_string(),
    }
}

fn invoke(store: &mut Store, instance: engine::Instance, name: &str, values: &[String]) -> ChildOutcome {
    let Some(func) = store.get_func(instance, name) else {
        return error(format!("module exports no function named '{name}'"));
    };
    let ty = store.func_type(func);
    if values.len() != ty.params.len() {
        return error(format!("'{name}' takes {} arguments ({ty}), got {}", ty.params.len(), values.len()));
    }
    let args = match values.iter().zip(ty.params.iter()).map(|(v, t)| parse_value(v, *t)).collect::<Result<Vec<_>, _>>()
    {
        Ok(a) => a,
        Err(e) => return error(e),
    };
    match store.call(func, &args) {
        Ok(results) => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for r in &results {
                let _ = writeln!(out, "{}", format_value(r));
            }
            let _ = out.flush();
            ChildOutcome::Exited { code: 0 }
        }
        Err(e) => call_outcome(Err(e)),
    }
}
