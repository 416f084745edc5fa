//! The child's run sequence: load, compile, build WASI, link, instantiate, execute. It runs
//! inside the forked (and, later, confined) child and reports a [`ChildReport`].

pub mod oom;
pub mod wasi_link;


use crate::channels::code::{Cached, Receiver};
use crate::supervise::report::{ChildOutcome, ChildReport, Confinement, Stages, TrapReport};
use engine::{CallError, Config, Engine, LinkError, Linker, Module, Store, Trap, Val, ValType};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::rc::Rc;
use std::time::Instant;

/// What the child runs: plain data, the same whether the child was forked for the run or
/// prepared ahead of it and handed the run over a socket (serialized, the module beside).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSpec {
    /// The module's bytes (`.wasm` or `.wat`); sent beside the rest, not serialized.
    #[serde(skip)]
    pub module: Vec<u8>,
    /// The guest's argv: its name, the policy's arguments, the command line's.
    pub argv: Vec<String>,
    /// The guest's environment.
    pub env: Vec<(String, String)>,
    /// The policy's limits.
    pub limits: policy::Limits,
    /// The mounts, in preopen order (their directories are in [`RunFds::mounts`]).
    pub mounts: Vec<MountSpec>,
    /// Where stdin comes from.
    pub stdin: StdinSpec,
    /// `--invoke NAME VALUES...` instead of `_start`.
    pub invoke: Option<(String, Vec<String>)>,
    /// Stop after compiling (`sandboxrun compile`).
    pub compile_only: bool,
    /// Fail when the kernel has no landlock.
    pub require_landlock: bool,
    /// Whether root started the run (its identity is then the policy's `run_as`): error
    /// messages about permissions say so.
    pub started_by_root: bool,
}

/// A mount as the child sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountSpec {
    /// The guest path.
    pub guest: String,
    /// The host path, for messages only (the child reaches it through its descriptor).
    pub host: String,
    /// Read-write.
    pub writable: bool,
}

/// Where the guest's stdin comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdinSpec {
    /// End of file.
    Null,
    /// The process's stdin.
    Inherit,
    /// A file (its descriptor is [`RunFds::stdin`]).
    File,
}

/// The host files a run reaches, opened by the parent: the child, confined to an empty root,
/// can no longer name a host path.
#[derive(Debug, Default)]
pub struct RunFds {
    /// One directory per mount, in [`RunSpec::mounts`] order.
    pub mounts: Vec<OwnedFd>,
    /// The stdin file, for [`StdinSpec::File`].
    pub stdin: Option<OwnedFd>,
}

impl RunFds {
    /// Opens the mounts and the stdin file of `policy`.
    ///
    /// # Errors
    /// The one-line message of the first that cannot be opened.
    pub fn open(policy: &policy::Policy) -> Result<RunFds, String> {
        crate::plan::host_files::open_run_files(policy).map_err(|e| e.to_string())
    }

    /// The descriptors, in the order [`RunFds::from_list`] takes them back.
    pub fn list(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        self.mounts.iter().chain(&self.stdin).map(AsFd::as_fd).collect()
    }

    /// Takes back the descriptors of [`RunFds::list`] for `spec`.
    ///
    /// # Errors
    /// Their number does not match `spec`.
    pub fn from_list(spec: &RunSpec, mut fds: Vec<OwnedFd>) -> Result<RunFds, String> {
        let stdin = usize::from(spec.stdin == StdinSpec::File);
        if fds.len() != spec.mounts.len() + stdin {
            return Err(format!("expected {} descriptors for the run, got {}", spec.mounts.len() + stdin, fds.len()));
        }
        let stdin = if stdin == 1 { fds.pop() } else { None };
        Ok(RunFds { mounts: fds, stdin })
    }
}

impl RunSpec {
    /// The run of `module` under `policy`.
    pub fn new(
        policy: &policy::Policy,
        module: Vec<u8>,
        argv0: String,
        args: Vec<String>,
        invoke: Option<String>,
    ) -> RunSpec {
        let mut argv = vec![argv0];
        argv.extend(policy.args.iter().cloned());
        let invoke = invoke.map(|name| (name, args.clone()));
        if invoke.is_none() {
            argv.extend(args);
        }
        RunSpec {
            module,
            argv,
            env: policy.env.clone(),
            limits: policy.limits,
            mounts: policy
                .mounts
                .iter()
                .map(|m| MountSpec {
                    guest: m.guest.as_str().to_string(),
                    host: m.host.display().to_string(),
                    writable: m.mode == policy::Mode::Rw,
                })
                .collect(),
            stdin: match policy.stdin {
                policy::Stdin::Null => StdinSpec::Null,
                policy::Stdin::Inherit => StdinSpec::Inherit,
                policy::Stdin::File(_) => StdinSpec::File,
            },
            invoke,
            compile_only: false,
            require_landlock: policy.require_landlock,
            // SAFETY: geteuid has no preconditions.
            started_by_root: unsafe { libc::geteuid() } == 0,
        }
    }
}

/// How the child confines itself: steps 1 to 3 done (or failed) before the run was known,
/// the rest from its descriptors and limits.
pub struct Confine<'a> {
    /// The outcome of [`sandbox::prepare`].
    pub prepared: Result<sandbox::Prepared, String>,
    /// The seccomp filter, built by the parent.
    pub filter: &'a sandbox::Filter,
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

/// Runs the module and describes how it ended. `code`: the code cache through the supervisor
/// (`None`: no cache); `confine`: `None` runs unconfined (only for tests of this sequence).
pub fn run(spec: &RunSpec, fds: RunFds, mut code: Option<Receiver>, confine: Option<Confine>) -> ChildReport {
    let mut stages = Stages::default();
    let mut compiled = false;
    let ctx_cell: Rc<RefCell<Option<Rc<RefCell<wasi::WasiCtx>>>>> = Rc::default();
    let confinement = RefCell::new(None);
    let mut io = ChildIo { fds: Some(fds), code: code.take(), confine };
    let outcome = run_stages(spec, &mut io, &mut stages, &mut compiled, &ctx_cell, &confinement);
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

/// What a run's child holds of its supervisor: the run's files, the code channel, the report
/// pipe and the release pipe (whose other end the supervisor closes once it has answered).
pub struct ChildEnds {
    /// The run's files.
    pub fds: RunFds,
    /// The code cache, through the supervisor.
    pub code: Receiver,
    /// Where the report goes.
    pub report: OwnedFd,
    /// End of file on it: the child may exit.
    pub release: OwnedFd,
}

/// The child's whole life once its descriptors are in place, forked for the run or prepared
/// ahead of it: closes every other descriptor, confines itself (steps 1 to 3 first, unless
/// `prepared` already did them), runs, writes its report, and waits until the supervisor
/// releases it. Returns the exit status.
pub fn main(
    spec: &RunSpec,
    ends: ChildEnds,
    prepared: Option<Result<sandbox::Prepared, String>>,
    confinement: &sandbox::Confinement,
    filter: &sandbox::Filter,
) -> i32 {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let ChildEnds { fds, code, report, release } = ends;
    // Nothing inherited from the caller reaches the run but stdio, the report pipe, the code
    // channel and the run's own files.
    let mut keep = vec![0, 1, 2, report.as_raw_fd(), release.as_raw_fd()];
    keep.extend(code.fds());
    keep.extend(fds.list().iter().map(|f| f.as_raw_fd()));
    if let Some(Ok(p)) = &prepared {
        keep.extend(p.descriptors());
    }
    // SAFETY: the objects alive here own only the kept descriptors; the rest belong to the
    // parent's objects, which this process never uses or drops (it leaves by `_exit`).
    if let Err(e) = unsafe { sandbox::fds::close_inherited(&keep) } {
        crate::errln!("sandboxrun: error: failed to close inherited descriptors: {e}");
        return crate::supervise::report::EXIT_ERROR;
    }
    let prepared = prepared.unwrap_or_else(|| sandbox::prepare(confinement).map_err(|e| e.to_string()));
    let child_report = run(spec, fds, Some(code), Some(Confine { prepared, filter }));
    let _ = std::io::stdout().flush();
    let mut pipe = std::fs::File::from(report);
    // One frame (protocol::report); the supervisor bounds and checks it as hostile input. A
    // report too large for its frame (an error message of a megabyte) says so instead.
    let frame = protocol::encode(&child_report).or_else(|e| {
        protocol::encode(&ChildReport { outcome: error(format!("failed to send the report: {e}")), ..child_report })
    });
    if let Ok(frame) = frame {
        let _ = pipe.write_all(&frame);
    }
    drop(pipe);
    // The supervisor reads this process's CPU time and peak memory now, and answers without
    // waiting for its exit (which tears its memory and namespaces down), then releases it.
    let _ = std::io::Read::read(&mut std::fs::File::from(release), &mut [0u8; 1]);
    0
}

/// What the child holds besides the spec.
struct ChildIo<'a> {
    fds: Option<RunFds>,
    code: Option<Receiver>,
    confine: Option<Confine<'a>>,
}

/// Loads the cached artifact, or validates and compiles (sending the new artifact out).
fn module(
    engine: &Engine,
    code: &mut Option<Receiver>,
    wasm: &[u8],
    stages: &mut Stages,
    compiled: &mut bool,
) -> Result<Module, String> {
    // The supervisor has been looking the module up while this process confined itself. A
    // channel failure only costs the cache: compile.
    let cached = code.as_mut().map_or(Ok(Cached::NoCache), Receiver::receive).unwrap_or(Cached::NoCache);
    if let Cached::Hit(artifact) = &cached {
        let t = Instant::now();
        // SAFETY: the artifact is a cache hit: the supervisor found it under the key of these
        // exact module bytes and this engine's identity, in a cache only supervisors write
        // (and only with code a child compiled before any guest code ran); it arrives in a
        // sealed memfd, and its checksum was verified when read.
        if let Ok(m) = unsafe { Module::from_artifact(engine, wasm, artifact) } {
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
    if let Some(code) = code.as_mut() {
        // Sent before any guest code runs.
        code.send_back(&artifact.to_bytes());
    }
    // SAFETY: compiled just now from `wasm` (described by `info`) by this engine.
    let module = unsafe { Module::load(engine, info, &artifact) }.map_err(|e| e.to_string())?;
    stages.compile = ms(t);
    Ok(module)
}

fn run_stages(
    spec: &RunSpec,
    io: &mut ChildIo,
    stages: &mut Stages,
    compiled: &mut bool,
    ctx_out: &Rc<RefCell<Option<Rc<RefCell<wasi::WasiCtx>>>>>,
    confinement_out: &RefCell<Option<Confinement>>,
) -> ChildOutcome {
    let limits = &spec.limits;
    let fds = io.fds.take().unwrap_or_default();

    // Landlock's rules are made from the run's descriptors before WASI takes them.
    let rules = match &io.confine {
        Some(_) => match crate::plan::confinement::check_mount_access(spec, &fds).and_then(|()| {
            crate::plan::confinement::landlock_rules(spec, &fds).map_err(|e| format!("confinement failed: {e}"))
        }) {
            Ok(r) => Some(r),
            Err(e) => return error(e),
        },
        None => None,
    };

    let t = Instant::now();
    let ctx = match wasi_context(spec, fds) {
        Ok(c) => Rc::new(RefCell::new(c)),
        Err(e) => return error(e),
    };
    *ctx_out.borrow_mut() = Some(ctx.clone());
    stages.link = ms(t);

    if let (Some(confine), Some(rules)) = (io.confine.take(), rules) {
        let prepared = match confine.prepared {
            Ok(p) => p,
            Err(e) => return error(format!("confinement failed: {e}")),
        };
        let rlimits = crate::plan::confinement::rlimits(limits);
        match prepared.finish(rules, spec.require_landlock, &rlimits, confine.filter) {
            Ok(applied) => {
                let stack = applied.rlimits.iter().find(|r| r.resource == "RLIMIT_STACK").map(|r| r.soft);
                *confinement_out.borrow_mut() = Some(crate::plan::confinement::describe(&applied));
                if let Err(e) = crate::plan::confinement::check_stack(limits, stack) {
                    return error(e);
                }
            }
            Err(e) => return error(format!("confinement failed: {e}")),
        }
    } else if let Err(e) = crate::plan::confinement::check_stack(limits, None) {
        return error(e);
    }

    let engine = match Engine::new(Config { max_wasm_stack: limits.wasm_stack as usize, ..Config::default() }) {
        Ok(e) => e,
        Err(e) => return error(e),
    };

    let t = Instant::now();
    let wasm = match engine::module_info::wat_to_binary(&spec.module) {
        Ok(w) => w.into_owned(),
        Err(e) => return error(e),
    };
    stages.load = ms(t);
    let module = module(&engine, &mut io.code, &wasm, stages, compiled);
    // The code channel closes here, on every path (hit, miss, no cache, failure), before the
    // first guest instruction (a start function runs at instantiation): nothing a guest does
    // can reach the supervisor's cache.
    io.code = None;
    let module = match module {
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
    crate::child::wasi_link::define_wasi(&mut linker, &mut store, &module, &ctx);
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
fn wasi_context(spec: &RunSpec, fds: RunFds) -> Result<wasi::WasiCtx, String> {
    let limits = &spec.limits;
    let stdin = match (spec.stdin, fds.stdin) {
        (StdinSpec::Null, _) => wasi::Stdin::Null,
        (StdinSpec::Inherit, _) => wasi::Stdin::Inherit,
        (StdinSpec::File, Some(fd)) => wasi::Stdin::File(fd),
        (StdinSpec::File, None) => return Err("the stdin file was not passed to the run".into()),
    };
    let mut builder =
        wasi::WasiCtxBuilder::new().args(spec.argv.iter().cloned()).env(spec.env.iter().cloned()).stdin(stdin).limits(
            wasi::WasiLimits {
                open_files: limits.open_files,
                file_size: limits.file_size,
                disk_bytes: limits.disk,
                files_created: limits.files,
                output_bytes: limits.output,
            },
        );
    for (m, dir) in spec.mounts.iter().zip(fds.mounts) {
        builder = builder.preopen_dir(dir, m.guest.as_str(), m.writable);
    }
    // The seam of the test that shows the kernel's wall (each mount a detached mount of its
    // own) holds with WASI's own beneath-resolution off (`tests/host.rs`). In debug builds only
    // (the test suite's binary), never in a release binary, never from a policy.
    #[cfg(debug_assertions)]
    {
        let unchecked = std::env::var_os("SANDBOXRUN_TEST_UNCHECKED_PATHS").is_some();
        builder = builder.insecure_unchecked_paths_for_testing(unchecked);
    }
    builder.build().map_err(|e| e.to_string())
}

fn call_outcome(result: Result<(), CallError>) -> ChildOutcome {
    match result {
        Ok(()) => ChildOutcome::Exited { code: 0 },
        Err(CallError::Trap(t)) => ChildOutcome::Trapped(trap_report(&t)),
        Err(CallError::Host(e)) => match e.downcast_ref::<wasi::Exit>() {
            Some(wasi::Exit::Code(c)) => ChildOutcome::Exited { code: *c },
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
