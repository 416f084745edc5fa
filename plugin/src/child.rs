//! The confined instance: a child the keeper started with `sandbox::spawn`. It confines itself
//! as a run's child does (descriptors, mounts opened as the run's identity, `prepare`, the
//! WASI context, `finish` with landlock on the mounts, rlimits, seccomp), compiles the module,
//! links WASI (stdin from each call's input, stdout captured) and the host functions, and
//! serves the call channel until the host closes it.
//!
//! After seccomp it can only `read` and `write` what it holds: the call socket, and the
//! shared window mapped before.

use crate::confine;
use crate::messages::{FromInstance, InstanceSpec, Payload, ToInstance, Val, INLINE_MAX};
use crate::spin::{self, Word};
use crate::sys::{self, Mapping};
use engine::{CallError, Engine, Extern, FuncType, Instance, Linker, Module, Store, ValType};
use std::cell::{Cell, RefCell};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

/// Exit status of an instance whose setup failed (it said why on the channel first).
pub const SETUP_FAILED: i32 = 125;

/// A host function failed on the host's side (its message travelled back).
#[derive(Debug, thiserror::Error)]
#[error("host function {name} failed: {message}")]
struct HostFnFailed {
    name: String,
    message: String,
}

/// The guest passed a host function memory it does not have.
#[derive(Debug, thiserror::Error)]
#[error("host function {0}: out of bounds memory access")]
struct GuestFault(String);

/// The channel, the window, and the current call's input.
struct Io {
    sock: RawFd,
    window: Mapping,
    /// The current call's stdin and how much of it was read.
    input: RefCell<(Vec<u8>, usize)>,
    buf: RefCell<Vec<u8>>,
    /// Watches the host's doorbell before blocking on the socket.
    spinner: RefCell<spin::Spinner>,
    /// Datagrams read from the host: its doorbell past this count means one is queued
    /// (`crate::spin`).
    received: Cell<u32>,
}

impl Io {
    fn send(&self, m: &FromInstance) {
        // A peer gone is noticed at the next read.
        if let Ok(frame) = protocol::encode(m) {
            if sys::write(self.sock, &frame).is_ok() {
                spin::ring(self.window.word(Word::Answer));
            }
        }
    }

    /// The next request; `None` when the host is gone or speaks nonsense.
    fn recv(&self) -> Option<ToInstance> {
        let mut spinner = self.spinner.borrow_mut();
        let rang = spinner.wait(self.window.word(Word::Request), self.received.get(), Duration::MAX);
        let blocked = (!rang).then(std::time::Instant::now);
        let mut buf = self.buf.borrow_mut();
        let n = sys::read(self.sock, &mut buf).ok().filter(|n| *n > 0)?;
        if let Some(t) = blocked {
            spinner.blocked(t.elapsed());
        }
        self.received.set(self.received.get().wrapping_add(1));
        protocol::decode_untrusted::<ToInstance>(&buf[..n]).ok()
    }

    /// Bytes to send: inline when small, else through the window (`None`: too large).
    fn payload(&self, bytes: Vec<u8>) -> Option<Payload> {
        if bytes.len() < INLINE_MAX {
            return Some(Payload::Inline(bytes));
        }
        (self.window.copy_in(&bytes)).then_some(Payload::Window(bytes.len() as u32))
    }

    /// Bytes received (`None`: a window length past the window).
    fn bytes(&self, p: Payload) -> Option<Vec<u8>> {
        match p {
            Payload::Inline(b) => Some(b),
            Payload::Window(len) => self.window.copy_out(len as usize),
        }
    }
}

/// The instance's life; returns its exit status. Runs in the child `sandbox::spawn` started,
/// which has taken the run's identity.
///
/// # Safety
/// The objects alive in the calling process must own only `sock`, `window` and stdio; every
/// other descriptor belongs to the keeper's objects, which this process never uses or drops.
pub unsafe fn main(spec: &InstanceSpec, module: &[u8], sock: RawFd, window: RawFd, filter: &sandbox::Filter) -> i32 {
    // SAFETY: the caller's contract.
    if let Err(e) = unsafe { sandbox::fds::close_inherited(&[0, 1, 2, sock, window]) } {
        let _ = sys::write(sock, &protocol::encode(&FromInstance::SetupFailed(e.to_string())).unwrap_or_default());
        return SETUP_FAILED;
    }
    // SAFETY: `window` is ours (kept above) and nothing else owns it.
    let window = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(window) };
    let setup = (|| {
        let mapping = Mapping::new(std::os::fd::AsRawFd::as_raw_fd(&window), spec.window as usize)
            .map_err(|e| format!("mapping the window: {e}"))?;
        drop(window);
        let io = Rc::new(Io {
            sock,
            window: mapping,
            input: RefCell::new((Vec::new(), 0)),
            buf: RefCell::new(vec![0; protocol::max_frame_len::<ToInstance>()]),
            spinner: RefCell::new(spin::Spinner::new(Duration::from_nanos(spec.spin_ns))),
            received: Cell::new(0),
        });
        let (engine, module, ctx) = confine_and_load(spec, module, filter)?;
        Ok::<_, String>((io, engine, module, ctx))
    })();
    let (io, engine, module, ctx) = match setup {
        Ok(s) => s,
        Err(message) => {
            let _ = sys::write(sock, &protocol::encode(&FromInstance::SetupFailed(message)).unwrap_or_default());
            return SETUP_FAILED;
        }
    };
    let mut inst = match Live::new(spec, &engine, &module, &ctx, &io) {
        Ok(i) => i,
        Err(message) => {
            io.send(&FromInstance::SetupFailed(message));
            return SETUP_FAILED;
        }
    };
    warm_up(&engine);
    io.send(&FromInstance::Ready(module.exports().into_iter().map(|(n, _)| n).collect()));
    serve(spec, &engine, &module, &ctx, &io, &mut inst)
}

/// Runs a call into a tiny module of its own, once, before saying Ready: the first call
/// into wasm touches code and data no setup step did (the call path, the trap handler's
/// per-thread state), a millisecond of page faults that would otherwise fall on the first
/// call of a restarted instance. The plugin's own module is not called: its state is the
/// host's.
fn warm_up(engine: &Engine) {
    let Ok(module) = Module::new(engine, b"(module (func (export \"f\")))") else { return };
    let mut store = Store::new(engine);
    if let Ok(instance) = store.instantiate(&module, &[]) {
        if let Some(f) = store.get_func(instance, "f") {
            let _ = store.call(f, &[]);
        }
    }
}

/// Opens the mounts (as the run's identity), confines (steps 1 to 7), builds the WASI
/// context, compiles the module.
fn confine_and_load(
    spec: &InstanceSpec,
    wasm: &[u8],
    filter: &sandbox::Filter,
) -> Result<(Engine, Module, Rc<RefCell<wasi::WasiCtx>>), String> {
    let c = confine::confinement(spec);
    let dirs: Vec<OwnedFd> = spec
        .mounts
        .iter()
        .map(|m| wasi::open_preopen(std::path::Path::new(&m.host), &m.guest).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // Landlock's handles on the mounts, opened while their paths resolve.
    let rules: Vec<sandbox::FdRule> = spec
        .mounts
        .iter()
        .zip(&dirs)
        .map(|(m, fd)| sandbox::FdRule {
            fd: fd.as_fd(),
            access: if m.writable { sandbox::Access::ReadWrite } else { sandbox::Access::ReadOnly },
        })
        .collect();
    let rules = sandbox::landlock_rules::fd_rules(&rules).map_err(|e| e.to_string())?;
    let prepared = sandbox::prepare(&c).map_err(|e| format!("confinement failed: {e}"))?;
    let mut builder = wasi::WasiCtxBuilder::new()
        .args(spec.args.iter().cloned())
        .env(spec.env.iter().cloned())
        .stdin(wasi::Stdin::Null)
        .output(wasi::Output::Capture, wasi::Output::Capture)
        .limits(wasi::WasiLimits {
            open_files: spec.open_files,
            file_size: spec.file_size,
            ..wasi::WasiLimits::default()
        });
    for (m, dir) in spec.mounts.iter().zip(dirs) {
        builder = builder.preopen_dir(dir, m.guest.as_str(), m.writable);
    }
    let ctx = builder.build().map_err(|e| e.to_string())?;
    // Seccomp is the last step: from here on, only what the allowlist names.
    prepared.finish(rules, c.require_landlock, &c.rlimits, filter).map_err(|e| format!("confinement failed: {e}"))?;
    let engine = Engine::new(confine::engine_config(spec)).map_err(|e| e.to_string())?;
    let module = Module::new(&engine, wasm).map_err(|e| format!("the module does not load: {e}"))?;
    Ok((engine, module, Rc::new(RefCell::new(ctx))))
}

/// A store with the module instantiated.
struct Live {
    store: Store,
    instance: Instance,
}

impl Live {
    fn new(
        spec: &InstanceSpec,
        engine: &Engine,
        module: &Module,
        ctx: &Rc<RefCell<wasi::WasiCtx>>,
        io: &Rc<Io>,
    ) -> Result<Live, String> {
        let mut store = Store::new(engine);
        store.set_memory_limit(spec.memory);
        let mut linker = Linker::new();
        for (import_module, name, ty) in module.imports() {
            if let Some(abi) = wasi::Abi::from_module_name(&import_module) {
                if let Some(func) = abi.lookup(&name) {
                    let f = wasi_func(&mut store, abi, func, ctx, io);
                    linker.define(&import_module, &name, Extern::Func(f));
                }
            } else if import_module == spec.host_module {
                let Some(index) = spec.host_fns.iter().position(|h| *h == name) else {
                    return Err(format!("the module imports {import_module}.{name}, which the host does not offer"));
                };
                let want = FuncType::new([ValType::I32; 4], [ValType::I32]);
                if ty != engine::ExternType::Func(want.clone()) {
                    return Err(format!("host function {import_module}.{name} must have type {want:?}, not {ty:?}"));
                }
                let f = host_func(&mut store, index as u32, name.clone(), want, io);
                linker.define(&import_module, &name, Extern::Func(f));
            }
        }
        let instance = linker.instantiate(&mut store, module).map_err(|e| e.to_string())?;
        Ok(Live { store, instance })
    }

    fn memory(&mut self) -> Option<&mut [u8]> {
        match self.store.get_export(self.instance, "memory")? {
            Extern::Memory(m) => Some(self.store.memory_data_mut(m)),
            _ => None,
        }
    }
}

/// One WASI import; `fd_read` of fd 0 reads the call's input.
fn wasi_func(
    store: &mut Store,
    abi: wasi::Abi,
    func: wasi::Func,
    ctx: &Rc<RefCell<wasi::WasiCtx>>,
    io: &Rc<Io>,
) -> engine::Func {
    let vt = |t: &wasi::ValType| match t {
        wasi::ValType::I32 => ValType::I32,
        wasi::ValType::I64 => ValType::I64,
    };
    let sig = func.sig();
    let ty =
        FuncType::new(sig.params.iter().map(vt).collect::<Vec<_>>(), sig.results.iter().map(vt).collect::<Vec<_>>());
    let is_fd_read = func == wasi::Abi::Preview1.lookup("fd_read").expect("fd_read exists")
        || Some(func) == wasi::Abi::Unstable.lookup("fd_read");
    let (ctx, io) = (ctx.clone(), io.clone());
    store.new_host_func(ty, move |caller, params, results| {
        let mut raw = [0u64; wasi::MAX_PARAMS];
        for (slot, v) in raw.iter_mut().zip(params) {
            *slot = match v {
                engine::Val::I32(x) => *x as u32 as u64,
                engine::Val::I64(x) => *x as u64,
                _ => 0,
            };
        }
        let mut empty = [];
        let memory = caller.memory().unwrap_or(&mut empty);
        let errno = if is_fd_read && raw[0] == 0 {
            read_input(&io, memory, raw[1] as u32, raw[2] as u32, raw[3] as u32)
        } else {
            wasi::call(&mut ctx.borrow_mut(), abi, func, memory, &raw[..params.len()])? as u16
        };
        if let Some(r) = results.first_mut() {
            *r = engine::Val::I32(i32::from(errno));
        }
        Ok(())
    })
}

/// `fd_read(0, iovs, iovs_len, nread)` from the call's input; returns the errno.
fn read_input(io: &Io, memory: &mut [u8], iovs: u32, iovs_len: u32, nread: u32) -> u16 {
    const FAULT: u16 = wasi::Errno::Fault as u16;
    let mut input = io.input.borrow_mut();
    let (data, pos) = &mut *input;
    let mut total: u32 = 0;
    for k in 0..iovs_len {
        let Some(at) = iovs.checked_add(k.saturating_mul(8)).map(|a| a as usize) else { return FAULT };
        let Some(entry) = memory.get(at..at.saturating_add(8)) else { return FAULT };
        let base = u32::from_le_bytes(entry[..4].try_into().expect("4 bytes")) as usize;
        let len = u32::from_le_bytes(entry[4..].try_into().expect("4 bytes")) as usize;
        let n = len.min(data.len() - *pos);
        let Some(dest) = memory.get_mut(base..base.saturating_add(n)) else { return FAULT };
        dest.copy_from_slice(&data[*pos..*pos + n]);
        *pos += n;
        total = total.saturating_add(n as u32);
        if n < len {
            break;
        }
    }
    match memory.get_mut(nread as usize..(nread as usize).saturating_add(4)) {
        Some(out) => {
            out.copy_from_slice(&total.to_le_bytes());
            0
        }
        None => FAULT,
    }
}

/// A host function: `(in_ptr, in_len, out_ptr, out_cap) -> len`. The bytes at `in_ptr` go to
/// the host; its answer is written at `out_ptr` if it fits `out_cap`; the answer's full length
/// is returned either way (saturated to `i32::MAX`).
fn host_func(store: &mut Store, index: u32, name: String, ty: FuncType, io: &Rc<Io>) -> engine::Func {
    let io = io.clone();
    store.new_host_func(ty, move |caller, params, results| {
        let arg = |i: usize| match params[i] {
            engine::Val::I32(x) => x as u32 as usize,
            _ => 0,
        };
        let (ip, il, op, oc) = (arg(0), arg(1), arg(2), arg(3));
        let fault = || -> engine::HostError { Box::new(GuestFault(name.clone())) };
        let memory = caller.memory().ok_or_else(fault)?;
        let input = memory.get(ip..ip.saturating_add(il)).ok_or_else(fault)?.to_vec();
        let input = io.payload(input).ok_or_else(fault)?;
        io.send(&FromInstance::HostCall { func: index, input });
        let answer = match io.recv() {
            Some(ToInstance::HostReturn(Ok(p))) => io.bytes(p),
            Some(ToInstance::HostReturn(Err(message))) => {
                return Err(Box::new(HostFnFailed { name: name.clone(), message }));
            }
            _ => None,
        };
        let Some(answer) = answer else {
            // The host is gone, or broke the protocol: nothing more to do here.
            // SAFETY: _exit has no preconditions.
            unsafe { libc::_exit(0) }
        };
        if answer.len() <= oc {
            memory.get_mut(op..op.saturating_add(answer.len())).ok_or_else(fault)?.copy_from_slice(&answer);
        }
        results[0] = engine::Val::I32(i32::try_from(answer.len()).unwrap_or(i32::MAX));
        Ok(())
    })
}

fn to_engine(v: Val) -> engine::Val {
    match v {
        Val::I32(x) => engine::Val::I32(x),
        Val::I64(x) => engine::Val::I64(x),
        Val::F32(x) => engine::Val::F32(x),
        Val::F64(x) => engine::Val::F64(x),
    }
}

fn from_engine(v: &engine::Val) -> Option<Val> {
    Some(match *v {
        engine::Val::I32(x) => Val::I32(x),
        engine::Val::I64(x) => Val::I64(x),
        engine::Val::F32(x) => Val::F32(x),
        engine::Val::F64(x) => Val::F64(x),
        _ => return None,
    })
}

/// How a call into the guest ended, when it did not return.
fn failure(e: CallError, store: &Store) -> FromInstance {
    match e {
        CallError::Trap(t) => FromInstance::Trapped {
            kind: t.kind.to_string(),
            function: t.function.map(|(_, n)| n),
            grow_refused: store.memory_grow_refused(),
        },
        CallError::Host(e) => {
            if let Some(exit) = e.downcast_ref::<wasi::Exit>() {
                match exit {
                    wasi::Exit::Code(c) => FromInstance::Exited(*c as i32),
                    wasi::Exit::OutputLimit => FromInstance::OutputLimit,
                    wasi::Exit::Signal(s) => FromInstance::Exited(128 + i32::from(*s)),
                }
            } else if let Some(h) = e.downcast_ref::<HostFnFailed>() {
                FromInstance::HostFailed { name: h.name.clone(), message: h.message.clone() }
            } else if let Some(GuestFault(name)) = e.downcast_ref::<GuestFault>() {
                FromInstance::Trapped {
                    kind: engine::TrapKind::MemoryOutOfBounds.to_string(),
                    function: Some(format!("{name} (host function)")),
                    grow_refused: false,
                }
            } else {
                FromInstance::Refused(e.to_string())
            }
        }
        other => FromInstance::Refused(other.to_string()),
    }
}

/// Answers requests until the host closes the channel.
fn serve(
    spec: &InstanceSpec,
    engine: &Engine,
    module: &Module,
    ctx: &Rc<RefCell<wasi::WasiCtx>>,
    io: &Rc<Io>,
    inst: &mut Live,
) -> i32 {
    let output_max = spec.output.min(spec.window) as usize;
    while let Some(request) = io.recv() {
        if spec.fresh_per_call && matches!(request, ToInstance::Call { .. } | ToInstance::Invoke { .. }) {
            match Live::new(spec, engine, module, ctx, io) {
                Ok(fresh) => *inst = fresh,
                Err(message) => {
                    io.send(&FromInstance::SetupFailed(message));
                    return SETUP_FAILED;
                }
            }
        }
        let answer = match request {
            ToInstance::Call { export, input } => {
                if spec.garbage_export.as_deref() == Some(export.as_str()) {
                    // The test seam: what a guest that took the process over could send.
                    let _ = sys::write(io.sock, b"\xA1\x41garbage");
                    continue;
                }
                if spec.false_ring_export.as_deref() == Some(export.as_str()) {
                    // The test seam: the doorbell says "answered" long before the answer.
                    for _ in 0..1000 {
                        spin::ring(io.window.word(Word::Answer));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let Some(input) = io.bytes(input) else { return 0 };
                *io.input.borrow_mut() = (input, 0);
                match inst.store.get_func(inst.instance, &export) {
                    None => FromInstance::Refused(format!("the module exports no function {export}")),
                    Some(f) => {
                        let result = inst.store.call(f, &[]);
                        let (out, _err) = ctx.borrow_mut().take_captured();
                        match result {
                            Err(e) => failure(e, &inst.store),
                            Ok(_) if out.len() > output_max => FromInstance::OutputLimit,
                            Ok(_) => io.payload(out).map_or(FromInstance::OutputLimit, FromInstance::Output),
                        }
                    }
                }
            }
            ToInstance::Invoke { export, args } => match inst.store.get_func(inst.instance, &export) {
                None => FromInstance::Refused(format!("the module exports no function {export}")),
                Some(f) => {
                    let args: Vec<engine::Val> = args.into_iter().map(to_engine).collect();
                    let result = inst.store.call(f, &args);
                    let _ = ctx.borrow_mut().take_captured();
                    match result {
                        Err(e) => failure(e, &inst.store),
                        Ok(values) => match values.iter().map(from_engine).collect::<Option<Vec<_>>>() {
                            Some(v) => FromInstance::Values(v),
                            None => FromInstance::Refused("a reference result cannot leave the instance".into()),
                        },
                    }
                }
            },
            ToInstance::ReadMemory { ptr, len } => {
                let (ptr, len) = (ptr as usize, len as usize);
                match inst.memory().and_then(|m| m.get(ptr..ptr.saturating_add(len))).map(<[u8]>::to_vec) {
                    None => FromInstance::Refused(format!("memory read of {len} bytes at {ptr} is out of bounds")),
                    Some(bytes) => io.payload(bytes).map_or_else(
                        || FromInstance::Refused("memory read larger than the window".into()),
                        FromInstance::Memory,
                    ),
                }
            }
            ToInstance::WriteMemory { ptr, data } => {
                let Some(data) = io.bytes(data) else { return 0 };
                let ptr = ptr as usize;
                match inst.memory().and_then(|m| m.get_mut(ptr..ptr.saturating_add(data.len()))) {
                    None => {
                        FromInstance::Refused(format!("memory write of {} bytes at {ptr} is out of bounds", data.len()))
                    }
                    Some(dest) => {
                        dest.copy_from_slice(&data);
                        FromInstance::Written
                    }
                }
            }
            // Only valid while a host function waits (handled there).
            ToInstance::HostReturn(_) => return 0,
        };
        let exited = matches!(answer, FromInstance::Exited(_));
        io.send(&answer);
        if exited {
            return 0;
        }
    }
    0
}
