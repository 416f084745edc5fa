//! The child's run sequence, one stage a method: confine (landlock rules from the run's
//! descriptors, the WASI context, then the rest of the confinement), load (the cached
//! artifact, or validate and compile and send it back, then close the code channel), execute
//! (link, instantiate, call). Each stage fails with a [`StageError`]; how the run ended is a
//! [`ChildOutcome`].

use super::{invoke, wasi_link};
use crate::channels::code::{Cached, Receiver};
use crate::plan::confinement as plan;
use crate::plan::module_file;
use crate::plan::spec::{engine_config, RunFds, RunSpec, StdinSpec};
use crate::supervise::report::{Applied, ChildOutcome, ChildReport, ChildStarted, Stages, TrapReport};
use engine::{CallError, Engine, LinkError, Linker, Module, Store, Trap};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// Why a stage failed (the run ends as an error: sandboxrun could not run it).
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// Confinement could not be completed.
    #[error("confinement failed: {0}")]
    Confine(String),
    /// A mount is not usable by the run's identity, or the stack cannot be had.
    #[error("{0}")]
    Setup(#[from] plan::SetupError),
    /// The stdin file was not passed to the run.
    #[error("the stdin file was not passed to the run")]
    NoStdin,
    /// The module was not passed to the run.
    #[error("the module was not passed to the run")]
    NoModule,
    /// The WASI context could not be built.
    #[error("{0}")]
    Wasi(#[from] wasi::BuildError),
    /// The engine could not be set up.
    #[error("{0}")]
    Engine(#[from] engine::compile::CompileError),
    /// The module did not load, validate or compile.
    #[error("{0}")]
    Module(String),
    /// Linking or instantiating failed (a missing import, say).
    #[error("{0}")]
    Link(Box<LinkError>),
    /// No `_start`, or a bad `--invoke`.
    #[error("{0}")]
    Invoke(String),
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
        tag: t.tag.clone(),
    }
}

/// A run of `spec` in this process, stage by stage, and what it learns on the way.
struct Pipeline<'a> {
    spec: &'a RunSpec,
    /// Where [`ChildStarted`] goes before the first guest instruction (the report pipe).
    announce: Option<&'a mut dyn std::io::Write>,
    stages: Stages,
    compiled: bool,
    applied: Option<Applied>,
    ctx: Option<Rc<RefCell<wasi::WasiCtx>>>,
    memory_grow_refused: bool,
    instructions: Option<u64>,
    /// The module's bytes, read when it must be compiled (not on a cache hit).
    wasm: Option<Vec<u8>>,
    /// On a cache hit, the module's descriptor, kept until the cached code has loaded (if it
    /// does not, the module is read and compiled).
    module_fd: Option<std::os::fd::OwnedFd>,
}

/// Runs the module and describes how it ended. `code`: the code cache through the supervisor
/// (`None`: no cache); `confine`: `None` runs unconfined (only for tests of this sequence);
/// `announce`: where a [`ChildStarted`] frame is written just before guest code runs.
pub fn run<'a>(
    spec: &'a RunSpec,
    fds: RunFds,
    code: Option<Receiver>,
    confine: Option<Confine>,
    announce: Option<&'a mut dyn std::io::Write>,
) -> ChildReport {
    let mut p = Pipeline {
        spec,
        announce,
        stages: Stages::default(),
        compiled: false,
        applied: None,
        ctx: None,
        memory_grow_refused: false,
        instructions: None,
        wasm: None,
        module_fd: None,
    };
    let outcome = p.all(fds, code, confine).unwrap_or_else(|e| ChildOutcome::Error { message: e.to_string() });
    let usage = p.ctx.as_ref().map(|c| c.borrow().usage()).unwrap_or_default();
    ChildReport {
        outcome,
        compiled: p.compiled,
        stages: p.stages,
        stdout_bytes: usage.stdout_bytes,
        stderr_bytes: usage.stderr_bytes,
        memory_grow_refused: p.memory_grow_refused,
        instructions: p.instructions,
        confinement: p.applied,
    }
}

impl Pipeline<'_> {
    fn all(
        &mut self,
        fds: RunFds,
        mut code: Option<Receiver>,
        confine: Option<Confine>,
    ) -> Result<ChildOutcome, StageError> {
        let cached = self.confine(fds, confine, &mut code)?;
        let config = engine_config(&self.spec.limits, self.spec.features.as_deref())
            .map_err(|e| StageError::Module(format!("policy features: {e}")))?;
        let engine = Engine::new(config)?;
        let module = self.load(&engine, code, cached)?;
        if self.spec.compile_only {
            return Ok(ChildOutcome::Exited { code: 0 });
        }
        self.execute(&engine, &module)
    }

    /// Landlock's rules from the run's descriptors (before WASI takes them), the WASI
    /// context, the code cache's answer (its file arrives on a socket: before the seccomp
    /// filter, which allows no `recvmsg`) and, unless it is a hit, the module's bytes (checked
    /// against the key the supervisor looked up), then the rest of the confinement; the stack
    /// the guest may use is checked against what the process got. The module's descriptor is
    /// closed before the confinement ends.
    fn confine(
        &mut self,
        mut fds: RunFds,
        confine: Option<Confine>,
        code: &mut Option<Receiver>,
    ) -> Result<Cached, StageError> {
        let spec = self.spec;
        let rules = match &confine {
            Some(_) => {
                plan::check_mount_access(spec, &fds)?;
                Some(plan::landlock_rules(spec, &fds).map_err(|e| StageError::Confine(e.to_string()))?)
            }
            None => None,
        };
        let module = fds.module.take();
        let t = Instant::now();
        self.ctx = Some(Rc::new(RefCell::new(wasi_context(spec, fds)?)));
        self.stages.link = ms(t);
        // The supervisor has been looking the module up meanwhile. A channel failure only
        // costs the cache: compile.
        let cached = code.as_mut().map_or(Ok(Cached::NoCache), Receiver::receive).unwrap_or(Cached::NoCache);
        let module = module.ok_or(StageError::NoModule)?;
        match cached {
            Cached::Hit { .. } => self.module_fd = Some(module),
            _ => self.read_module(module)?,
        }
        let stack = match (confine, rules) {
            (Some(confine), Some(rules)) => {
                let prepared = confine.prepared.map_err(StageError::Confine)?;
                let rlimits = plan::rlimits(&spec.limits);
                let applied = prepared
                    .finish(rules, spec.require_landlock, &rlimits, confine.filter)
                    .map_err(|e| StageError::Confine(e.to_string()))?;
                self.applied = Some(plan::applied(&applied));
                applied.rlimits.iter().find(|r| r.resource == "RLIMIT_STACK").map(|r| r.soft)
            }
            _ => None,
        };
        plan::check_stack(&spec.limits, stack)?;
        Ok(cached)
    }

    /// The module: the cached artifact, or validated and compiled (and sent back). The code
    /// channel closes here, on every path (hit, miss, no cache, failure), before the first
    /// guest instruction (a start function runs at instantiation): nothing a guest does can
    /// reach the supervisor's cache.
    fn load(&mut self, engine: &Engine, mut code: Option<Receiver>, cached: Cached) -> Result<Module, StageError> {
        let module = self.module(engine, &mut code, cached);
        drop(code);
        module
    }

    /// Reads the module's bytes, checked against the key the supervisor looked up.
    fn read_module(&mut self, fd: std::os::fd::OwnedFd) -> Result<(), StageError> {
        let t = Instant::now();
        let wasm = module_file::read_checked(fd, self.spec.module_len, &self.spec.module_key)
            .map_err(|e| StageError::Module(e.to_string()))?;
        self.wasm = Some(wasm);
        self.stages.load += ms(t);
        Ok(())
    }

    fn module(&mut self, engine: &Engine, code: &mut Option<Receiver>, cached: Cached) -> Result<Module, StageError> {
        if let Cached::Hit { artifact, file } = cached {
            let t = Instant::now();
            let source = engine::ImageSource { fd: file, offset: 0 };
            // SAFETY: the artifact is a cache hit: the supervisor found it under the key of
            // these exact module bytes and this engine's identity, in a cache only supervisors
            // write (and only with code a child compiled before any guest code ran); its size
            // and hash were checked when it was looked up. It arrives as the cache's file,
            // which holds exactly these bytes from offset 0 and is never written in place (the
            // cache renames new files into place and unlinks old ones): instances map its
            // memory image copy-on-write, and its bytes do not change while they live.
            if let Ok(m) = unsafe { Module::from_artifact_mapped(engine, &artifact, source) } {
                self.stages.compile = ms(t);
                self.module_fd = None;
                return Ok(m);
            }
            // A damaged artifact: compile afresh (the parent replaces the row).
            if let Some(fd) = self.module_fd.take() {
                self.read_module(fd)?;
            }
        }
        let failed = |e: &dyn std::fmt::Display| StageError::Module(e.to_string());
        let t = Instant::now();
        let bytes = self.wasm.take().ok_or(StageError::NoModule)?;
        let wasm = engine::module_info::wat_to_binary(&bytes).map_err(|e| failed(&e))?;
        let wasm = &wasm[..];
        engine.validate(wasm).map_err(|e| failed(&e))?;
        let info = engine::module_info::parse(wasm).map_err(|e| failed(&e))?;
        self.stages.load += ms(t);
        let t = Instant::now();
        let artifact = engine
            .compiler()
            .and_then(|c| c.compile_module(&info, wasm, engine.compile_threads()))
            .map_err(|e| failed(&e))?;
        self.compiled = true;
        if let Some(code) = code.as_mut() {
            // Sent before any guest code runs.
            code.send_back(&artifact.to_bytes());
        }
        // SAFETY: compiled just now from `wasm` (described by `info`) by this engine.
        let module = unsafe { Module::load(engine, info, &artifact) }.map_err(|e| failed(&e))?;
        self.stages.compile = ms(t);
        Ok(module)
    }

    /// Links WASI, instantiates (a start function runs then) and calls `_start` or the
    /// `--invoke` export.
    fn execute(&mut self, engine: &Engine, module: &Module) -> Result<ChildOutcome, StageError> {
        let spec = self.spec;
        let ctx = self.ctx.clone().expect("built by confine");
        let t = Instant::now();
        let mut store = Store::new(engine);
        store.set_memory_limit(spec.limits.memory);
        if let Some(budget) = spec.limits.instructions {
            store.set_instruction_budget(budget).map_err(|e| StageError::Invoke(e.to_string()))?;
        }
        self.instructions = store.instructions_used();
        let mut linker = Linker::new();
        wasi_link::define_wasi(&mut linker, &mut store, module, &ctx);
        self.stages.link += ms(t);
        self.announce_start();

        let t = Instant::now();
        let instance = match linker.instantiate(&mut store, module) {
            Ok(i) => i,
            Err(LinkError::Instantiate(engine::InstantiateError::Trap(trap))) => {
                self.stages.instantiate = ms(t);
                self.instructions = store.instructions_used();
                return Ok(ChildOutcome::Trapped(trap_report(&trap)));
            }
            Err(LinkError::Instantiate(engine::InstantiateError::Start(e))) => {
                self.instructions = store.instructions_used();
                return call_outcome(Err(e));
            }
            Err(e) => return Err(StageError::Link(Box::new(e))),
        };
        self.stages.instantiate = ms(t);

        let t = Instant::now();
        let outcome = match &spec.invoke {
            None => {
                let start = store.get_func(instance, "_start").ok_or_else(|| {
                    StageError::Invoke("module exports no _start function (use --invoke NAME)".into())
                })?;
                call_outcome(store.call(start, &[]).map(drop))
            }
            Some((name, values)) => {
                let (func, args) = invoke::prepare(&store, instance, name, values)?;
                match store.call(func, &args) {
                    Ok(results) => {
                        invoke::print_results(&results);
                        Ok(ChildOutcome::Exited { code: 0 })
                    }
                    Err(e) => call_outcome(Err(e)),
                }
            }
        };
        self.stages.execute = ms(t);
        self.memory_grow_refused = store.memory_grow_refused();
        self.instructions = store.instructions_used();
        outcome
    }
}

impl Pipeline<'_> {
    /// Tells the supervisor what it would otherwise learn only from the final report, before
    /// a guest could shape it: a run killed at a limit is reported with its confinement,
    /// its stages so far, and (on a miss) its compiled code stored.
    fn announce_start(&mut self) {
        let Some(out) = self.announce.take() else { return };
        let started =
            ChildStarted { compiled: self.compiled, stages: self.stages.clone(), confinement: self.applied.clone() };
        if let Ok(frame) = protocol::encode(&started) {
            let _ = out.write_all(&frame);
        }
    }
}

/// Builds the WASI context: arguments, environment, stdin, limits, one preopen per mount.
fn wasi_context(spec: &RunSpec, fds: RunFds) -> Result<wasi::WasiCtx, StageError> {
    let limits = &spec.limits;
    let stdin = match (spec.stdin, fds.stdin) {
        (StdinSpec::Null, _) => wasi::Stdin::Null,
        (StdinSpec::Inherit, _) => wasi::Stdin::Inherit,
        (StdinSpec::File, Some(fd)) => wasi::Stdin::File(fd),
        (StdinSpec::File, None) => return Err(StageError::NoStdin),
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
    Ok(builder.build()?)
}

/// How a call into the guest ended.
fn call_outcome(result: Result<(), CallError>) -> Result<ChildOutcome, StageError> {
    Ok(match result {
        Ok(()) => ChildOutcome::Exited { code: 0 },
        Err(CallError::Trap(t)) => ChildOutcome::Trapped(trap_report(&t)),
        Err(CallError::Host(e)) => match e.downcast_ref::<wasi::Exit>() {
            Some(wasi::Exit::Code(c)) => ChildOutcome::Exited { code: *c },
            Some(wasi::Exit::OutputLimit) => ChildOutcome::OutputLimit,
            Some(wasi::Exit::Signal(s)) => ChildOutcome::Raised { signal: *s },
            None => ChildOutcome::Error { message: e.to_string() },
        },
        Err(e) => ChildOutcome::Error { message: e.to_string() },
    })
}
