//! The host's API: [`PluginBuilder`], [`Plugin`] (a pool of instance slots shared by every
//! thread), [`Session`] (one instance held for a sequence of requests), statistics, and the
//! watchdog that kills an instance whose call passes its deadline while a host function runs.

use crate::error::{BuildError, CallError};
use crate::instance::Slot;
use crate::messages::{Ended, FromInstance, InstanceSpec, ToInstance, Val};
use crate::sys;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A host function: the guest's bytes in, the answer's bytes out (or the host's error). It
/// runs in the host process, on the thread that made the call.
pub type HostFn = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// A host function as the pool keeps it: run on the calling thread, or (feature `tokio`) a
/// future run on the plugin's runtime.
#[derive(Clone)]
pub(crate) enum HostImpl {
    /// [`PluginBuilder::host_fn`].
    Sync(HostFn),
    /// `PluginBuilder::host_fn_async`.
    #[cfg(feature = "tokio")]
    Async(crate::asynchronous::AsyncHostFn),
}

/// What happens after an instance fails (trap, timeout, crash, limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// The next call gets a fresh instance (its state is lost), at most this many times per
    /// minute per slot; beyond, calls on the slot fail with [`CallError::Unavailable`] until
    /// the minute has passed.
    Restart {
        /// Restarts allowed per minute and slot.
        max_per_minute: u32,
    },
    /// The slot stays dead: later calls on it fail with [`CallError::Unavailable`].
    Fail,
}

/// Builds a [`Plugin`]; see [`Plugin::builder`].
pub struct PluginBuilder {
    module: Vec<u8>,
    policy: policy::Policy,
    call_timeout: Duration,
    instances: usize,
    queue: usize,
    on_failure: OnFailure,
    host_module: String,
    pub(crate) host_fns: Vec<(String, HostImpl)>,
    fresh_per_call: bool,
    max_depth: u32,
    max_payload: u64,
    garbage_export: Option<String>,
    false_ring_export: Option<String>,
    spin: Duration,
    call_cpu_limit: Option<Duration>,
    /// The runtime async host functions run on (`None`: the one current at `build`).
    #[cfg(feature = "tokio")]
    pub(crate) runtime: Option<tokio::runtime::Handle>,
}

impl PluginBuilder {
    /// The policy: limits, mounts, arguments, environment, identity (default: the runner's
    /// default policy — no mounts, default limits).
    pub fn policy(mut self, policy: policy::Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The longest a call may take, host functions included (default 5 s). Past it the
    /// instance is killed at once and the call fails with [`CallError::Timeout`].
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Instances in the pool, each its own confined process (default 1).
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = n;
        self
    }

    /// Calls that may wait for a busy pool before [`CallError::Overloaded`] (default 64).
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n;
        self
    }

    /// What happens after a failure (default `Restart { max_per_minute: 60 }`).
    pub fn on_failure(mut self, on_failure: OnFailure) -> Self {
        self.on_failure = on_failure;
        self
    }

    /// Offers a host function the plugin imports as `host.NAME` (see [`Self::host_module`]).
    pub fn host_fn(mut self, name: &str, f: impl Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync + 'static) -> Self {
        self.host_fns.push((name.to_string(), HostImpl::Sync(Arc::new(f))));
        self
    }

    /// The import module host functions come from (default `"host"`).
    pub fn host_module(mut self, name: &str) -> Self {
        self.host_module = name.to_string();
        self
    }

    /// A new store and instance for every call (no state between calls; the process stays).
    pub fn fresh_per_call(mut self, fresh: bool) -> Self {
        self.fresh_per_call = fresh;
        self
    }

    /// How deep host functions may call the plugin again (default 4).
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.max_depth = depth;
        self
    }

    /// The largest payload a call carries either way (default 16 MiB): the size of each
    /// instance's shared window.
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The CPU time one call may use (default: no per-call limit). Past it the instance is
    /// killed at once and the call fails with [`CallError::CpuLimit`]; time it spends
    /// blocked (sleeping, waiting on a host function) does not count. The host enforces it
    /// by reading the instance's CPU clock (see [`crate::cpu`]). `limits.cpu_time` in the
    /// policy stays the CPU an instance may use over its whole life.
    pub fn call_cpu_limit(mut self, limit: Duration) -> Self {
        self.call_cpu_limit = Some(limit);
        self
    }

    /// How long each end of the channel watches for the other's datagram before blocking
    /// (default 50 µs, at most 1 ms; zero: never spin). On an idle machine a blocked side's
    /// CPU sleeps, and waking it costs more than a whole call; spinning keeps back-to-back
    /// calls at a few µs. Cost: up to this much CPU per wait — the host's on calls longer
    /// than it, the instance's after each answer not followed by a request within it. See
    /// `crate::spin`.
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = spin.min(crate::spin::MAX_SPIN);
        self
    }

    /// Test seam: calling `export` makes the instance ring its answer doorbell falsely (1000
    /// times, 20 ms before it answers).
    #[doc(hidden)]
    pub fn test_false_ring_export(mut self, export: &str) -> Self {
        self.false_ring_export = Some(export.to_string());
        self
    }

    /// Test seam: calling `export` makes the instance send garbage instead of an answer.
    #[doc(hidden)]
    pub fn test_garbage_export(mut self, export: &str) -> Self {
        self.garbage_export = Some(export.to_string());
        self
    }

    /// Starts the pool: one keeper per instance, and waits for every first instance to be
    /// ready (the module compiled and instantiated in its confined process).
    ///
    /// # Errors
    /// [`BuildError`]: the keeper cannot start, or the module does not compile or link.
    pub fn build(self) -> Result<Plugin, BuildError> {
        if self.instances == 0 {
            return Err(BuildError::Config("instances(0): a plugin needs at least one instance".into()));
        }
        if let Some(n) = self.policy.limits.instructions {
            // Refused rather than ignored: a plugin's instances do not count instructions yet.
            return Err(BuildError::Config(format!("limits.instructions ({n}): plugins do not count instructions")));
        }
        if self.policy.features.is_some() {
            // Refused rather than ignored: a plugin's instances accept every implemented feature.
            return Err(BuildError::Config("features: plugins accept every implemented feature".into()));
        }
        let mut spec = crate::confine::spec_from_policy(&self.policy);
        spec.host_module = self.host_module;
        spec.host_fns = self.host_fns.iter().map(|(n, _)| n.clone()).collect();
        spec.fresh_per_call = self.fresh_per_call;
        spec.window = self.max_payload.max(crate::messages::INLINE_MAX as u64);
        spec.garbage_export = self.garbage_export;
        spec.false_ring_export = self.false_ring_export;
        spec.spin_ns = self.spin.as_nanos() as u64;
        #[cfg(feature = "tokio")]
        let runtime = crate::asynchronous::runtime_for(&self.host_fns, self.runtime)?;
        let module = sys::sealed_memfd(c"sandboxrun-plugin-module", &self.module)
            .map_err(|e| BuildError::Keeper(format!("memfd: {e}")))?;
        let shared = Arc::new(Shared {
            spec,
            call_timeout: self.call_timeout,
            spin: self.spin,
            call_cpu_limit: self.call_cpu_limit,
            queue: self.queue,
            on_failure: self.on_failure,
            host_fns: self.host_fns,
            max_depth: self.max_depth,
            module: Mutex::new((0, Arc::new(module))),
            slots: (0..self.instances).map(|i| Mutex::new(Slot::new(i))).collect(),
            pool: Mutex::new(Pool { free: (0..self.instances).rev().collect(), waiting: 0 }),
            freed: Condvar::new(),
            counters: Counters::default(),
            per_slot: (0..self.instances).map(|_| SlotCounters::default()).collect(),
            watchdog: Watchdog::default(),
            #[cfg(feature = "tokio")]
            runtime,
        });
        for slot in &shared.slots {
            let mut slot = lock(slot);
            slot.ensure_live(&shared).map_err(|e| BuildError::Instance(e.to_string()))?;
            slot.keep_spare();
        }
        Ok(Plugin { shared })
    }
}

/// Which slots are free, and how many calls wait.
struct Pool {
    free: Vec<usize>,
    waiting: usize,
}

/// Plugin-wide counters.
#[derive(Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    pub(crate) restarts: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
}

/// A slot's usage: its live child's pid, and what its ended children used.
#[derive(Default)]
struct SlotCounters {
    pid: AtomicI32,
    calls: AtomicU64,
    ended_cpu_ns: AtomicU64,
    peak: AtomicU64,
}

/// What every thread shares.
pub(crate) struct Shared {
    pub(crate) spec: InstanceSpec,
    call_timeout: Duration,
    /// How long the host watches the instance's doorbell before blocking.
    pub(crate) spin: Duration,
    /// The CPU time one call may use.
    pub(crate) call_cpu_limit: Option<Duration>,
    queue: usize,
    pub(crate) on_failure: OnFailure,
    host_fns: Vec<(String, HostImpl)>,
    max_depth: u32,
    /// The module's generation and sealed memfd.
    module: Mutex<(u64, Arc<OwnedFd>)>,
    slots: Vec<Mutex<Slot>>,
    pool: Mutex<Pool>,
    freed: Condvar,
    pub(crate) counters: Counters,
    per_slot: Vec<SlotCounters>,
    watchdog: Watchdog,
    /// Where async host functions run.
    #[cfg(feature = "tokio")]
    pub(crate) runtime: Option<tokio::runtime::Handle>,
}

/// Locks, ignoring poisoning (a panicking host function never leaves a slot inconsistent:
/// host functions run outside the slot's state changes).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// Host functions running on this thread (each may call the plugin again).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// How deep in host functions the current code runs: this thread's sync host functions, or
/// (feature `tokio`) the async host function whose task this is.
pub(crate) fn depth() -> u32 {
    let d = DEPTH.with(Cell::get);
    #[cfg(feature = "tokio")]
    let d = d.max(crate::asynchronous::task_depth());
    d
}

/// Runs `f` on this thread at nesting depth `d` (a call made for an async caller, on a
/// blocking thread, keeps its caller's depth).
pub(crate) fn with_depth<R>(d: u32, f: impl FnOnce() -> R) -> R {
    let before = DEPTH.with(|c| c.replace(d));
    let r = f();
    DEPTH.with(|c| c.set(before));
    r
}

/// The message of a panic's payload.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

impl Shared {
    pub(crate) fn module(&self) -> (u64, Arc<OwnedFd>) {
        let m = lock(&self.module);
        (m.0, m.1.clone())
    }

    pub(crate) fn set_pid(&self, slot: usize, pid: Option<i32>) {
        self.per_slot[slot].pid.store(pid.unwrap_or(0), Ordering::Relaxed);
    }

    pub(crate) fn child_ended(&self, slot: usize, e: &Ended) {
        let c = &self.per_slot[slot];
        c.ended_cpu_ns.fetch_add(e.cpu_ns, Ordering::Relaxed);
        c.peak.fetch_max(e.peak, Ordering::Relaxed);
    }

    /// Names how a child ended that was not asked to.
    pub(crate) fn verdict(&self, e: &Ended) -> CallError {
        let rlimit_data = self.spec.memory.saturating_add(crate::confine::RUNTIME_ALLOWANCE);
        if e.oom_killed {
            return CallError::MemoryLimit;
        }
        if let Some(s) = e.signal {
            if s == libc::SIGKILL && e.cpu_ns >= self.spec.cpu_seconds.saturating_mul(1_000_000_000) {
                return CallError::CpuLimit;
            }
            if let Some(call) = &e.seccomp {
                return CallError::Crashed { verdict: format!("bad system call ({call})") };
            }
            // A failed allocation aborts (SIGABRT, or SIGSEGV for a pid namespace's init):
            // with most of RLIMIT_DATA in use, that was the memory limit.
            if matches!(s, libc::SIGABRT | libc::SIGSEGV | libc::SIGBUS) && e.peak >= rlimit_data / 2 {
                return CallError::MemoryLimit;
            }
            return CallError::Crashed { verdict: format!("killed by signal {s}") };
        }
        CallError::Crashed { verdict: format!("exited with status {}", e.exit.unwrap_or(-1)) }
    }

    /// Takes a free slot, waiting (bounded by the queue and `deadline`).
    fn acquire(&self, deadline: Instant) -> Result<usize, CallError> {
        let nested = depth() > 0;
        let mut pool = lock(&self.pool);
        loop {
            if let Some(i) = pool.free.pop() {
                return Ok(i);
            }
            // A nested call never waits: the slot it needs may be its caller's.
            if nested || pool.waiting >= self.queue {
                return Err(CallError::Overloaded);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CallError::Overloaded);
            }
            pool.waiting += 1;
            pool = self.freed.wait_timeout(pool, left).unwrap_or_else(|p| p.into_inner()).0;
            pool.waiting -= 1;
        }
    }

    fn release(&self, i: usize) {
        lock(&self.pool).free.push(i);
        self.freed.notify_one();
    }

    /// Runs `f` on a live instance of a free slot.
    pub(crate) fn with_slot<R>(&self, f: impl FnOnce(&mut SlotRef) -> Result<R, CallError>) -> Result<R, CallError> {
        if depth() >= self.max_depth {
            return Err(self.count(CallError::TooDeep { depth: self.max_depth }));
        }
        let deadline = Instant::now() + self.call_timeout;
        let i = self.acquire(deadline).map_err(|e| self.count(e))?;
        let result = {
            let mut slot = lock(&self.slots[i]);
            let result = match slot.ensure_live(self) {
                Ok(()) => f(&mut SlotRef { shared: self, slot: &mut slot }),
                Err(e) => Err(e),
            };
            slot.keep_spare();
            result
        };
        self.release(i);
        result
    }

    fn count(&self, e: CallError) -> CallError {
        *lock(&self.counters.failures).entry(e.kind()).or_default() += 1;
        e
    }

    /// One request on `slot`, counted.
    fn request(&self, slot: &mut Slot, req: &ToInstance) -> Result<FromInstance, CallError> {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        self.per_slot[slot.index].calls.fetch_add(1, Ordering::Relaxed);
        let deadline = Instant::now() + self.call_timeout;
        if slot.live.is_none() {
            slot.ensure_live(self).map_err(|e| self.count(e))?;
        }
        slot.start_cpu_budget(self);
        let answer = slot.exchange(self, req, deadline).and_then(|a| self.answer(slot, a));
        answer.map_err(|e| {
            if e.replaces_instance() {
                slot.kill(self);
            }
            if e.replaces_instance() && self.on_failure == OnFailure::Fail {
                slot_dead(slot, &e);
            }
            self.count(e)
        })
    }

    /// Turns the failures an instance reports into errors.
    fn answer(&self, _slot: &mut Slot, a: FromInstance) -> Result<FromInstance, CallError> {
        match a {
            FromInstance::Trapped { grow_refused: true, .. } => Err(CallError::MemoryLimit),
            FromInstance::Trapped { kind, function, .. } => Err(CallError::Trap { kind, function }),
            FromInstance::Exited(code) => {
                Err(CallError::Crashed { verdict: format!("the guest exited with status {code}") })
            }
            FromInstance::HostFailed { name, message } => Err(CallError::HostFunction { name, message }),
            FromInstance::Refused(m) => Err(CallError::Refused(m)),
            FromInstance::OutputLimit => Err(CallError::OutputLimit),
            FromInstance::Ready(_) | FromInstance::SetupFailed(_) | FromInstance::HostCall { .. } => {
                Err(CallError::Protocol("an answer out of turn".into()))
            }
            ok => Ok(ok),
        }
    }

    /// Runs host function `func` for the instance of `slot`: on this thread, with the
    /// watchdog armed so that the instance dies at `deadline` even while the function runs.
    /// `Err` only for a call that must end (timeout, protocol); the function's own failure
    /// (error or panic) is `Ok(Err(message))`, sent back to the guest.
    pub(crate) fn run_host_fn(
        &self,
        slot: &mut Slot,
        func: u32,
        input: &[u8],
        deadline: Instant,
    ) -> Result<Result<Vec<u8>, String>, CallError> {
        let Some((name, f)) = self.host_fns.get(func as usize) else {
            return Err(CallError::Protocol(format!("host function {func} does not exist")));
        };
        #[cfg(feature = "tokio")]
        let f = match f {
            HostImpl::Sync(f) => f,
            HostImpl::Async(f) => return crate::asynchronous::run_host_fn(self, slot, name, f, input, deadline),
        };
        #[cfg(not(feature = "tokio"))]
        let (HostImpl::Sync(f), _) = (f, name);
        let pidfd = slot.live.as_ref().map(|l| l.pidfd.clone()).ok_or(CallError::Timeout)?;
        let ticket = self.watchdog.arm(deadline, pidfd);
        let result = with_depth(depth() + 1, || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(input))));
        self.watchdog.disarm(ticket);
        if Instant::now() >= deadline {
            slot.kill(self);
            return Err(CallError::Timeout);
        }
        Ok(match result {
            Ok(r) => r.map_err(|e| format!("{name}: {e}")),
            Err(panic) => Err(format!("panicked: {}", panic_message(&*panic))),
        })
    }
}

fn slot_dead(slot: &mut Slot, e: &CallError) {
    slot.set_dead(format!("the instance failed ({e}) and the plugin does not restart"));
}

/// A slot held for a request.
pub(crate) struct SlotRef<'a> {
    shared: &'a Shared,
    slot: &'a mut Slot,
}

impl SlotRef<'_> {
    pub(crate) fn call(&mut self, export: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        if self.slot.live.is_none() {
            self.slot.ensure_live(self.shared).map_err(|e| self.shared.count(e))?;
        }
        let input = self.slot.payload(input.to_vec()).map_err(|e| self.shared.count(e))?;
        match self.shared.request(self.slot, &ToInstance::Call { export: export.into(), input })? {
            FromInstance::Output(p) => self.slot.bytes(p).map_err(|e| self.fail(e)),
            other => Err(self.fail(CallError::Protocol(format!("unexpected answer {other:?}")))),
        }
    }

    pub(crate) fn invoke(&mut self, export: &str, args: &[Val]) -> Result<Vec<Val>, CallError> {
        match self.shared.request(self.slot, &ToInstance::Invoke { export: export.into(), args: args.to_vec() })? {
            FromInstance::Values(v) => Ok(v),
            other => Err(self.fail(CallError::Protocol(format!("unexpected answer {other:?}")))),
        }
    }

    fn read_memory(&mut self, ptr: u32, len: u32) -> Result<Vec<u8>, CallError> {
        match self.shared.request(self.slot, &ToInstance::ReadMemory { ptr, len })? {
            FromInstance::Memory(p) => match self.slot.bytes(p) {
                Ok(b) if b.len() == len as usize => Ok(b),
                Ok(_) => Err(self.fail(CallError::Protocol("a memory read of the wrong length".into()))),
                Err(e) => Err(self.fail(e)),
            },
            other => Err(self.fail(CallError::Protocol(format!("unexpected answer {other:?}")))),
        }
    }

    fn write_memory(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), CallError> {
        if self.slot.live.is_none() {
            self.slot.ensure_live(self.shared).map_err(|e| self.shared.count(e))?;
        }
        let data = self.slot.payload(bytes.to_vec()).map_err(|e| self.shared.count(e))?;
        match self.shared.request(self.slot, &ToInstance::WriteMemory { ptr, data })? {
            FromInstance::Written => Ok(()),
            other => Err(self.fail(CallError::Protocol(format!("unexpected answer {other:?}")))),
        }
    }

    /// A protocol failure found after the exchange: the instance is replaced.
    fn fail(&mut self, e: CallError) -> CallError {
        if e.replaces_instance() {
            self.slot.kill(self.shared);
        }
        self.shared.count(e)
    }
}

/// A plugin: a pool of confined instances of one module. `&Plugin` may be used from any
/// thread; each call takes a free instance (waiting, within the queue bound and the call
/// timeout, when all are busy).
pub struct Plugin {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("instances", &self.shared.slots.len()).finish()
    }
}

impl Plugin {
    /// A builder for a plugin of `module` (`.wasm` or `.wat` bytes; compiled only inside the
    /// confined instances).
    pub fn builder(module: impl Into<Vec<u8>>) -> PluginBuilder {
        PluginBuilder {
            module: module.into(),
            policy: policy::Policy::default_policy(),
            call_timeout: Duration::from_secs(5),
            instances: 1,
            queue: 64,
            on_failure: OnFailure::Restart { max_per_minute: 60 },
            host_module: "host".into(),
            host_fns: Vec::new(),
            fresh_per_call: false,
            max_depth: 4,
            max_payload: 16 << 20,
            garbage_export: None,
            false_ring_export: None,
            spin: crate::spin::DEFAULT_SPIN,
            call_cpu_limit: None,
            #[cfg(feature = "tokio")]
            runtime: None,
        }
    }

    /// Runs `export` (a function without parameters, `_start`-like) with `input` as its
    /// stdin; returns what it wrote to stdout. The instance keeps its state between calls
    /// (unless built with `fresh_per_call`).
    ///
    /// # Errors
    /// [`CallError`]; the instance is replaced when the kind says so.
    pub fn call(&self, export: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.shared.with_slot(|s| s.call(export, input))
    }

    /// Calls `export` with `args`; returns its results.
    ///
    /// # Errors
    /// [`CallError`].
    pub fn invoke(&self, export: &str, args: &[Val]) -> Result<Vec<Val>, CallError> {
        self.shared.with_slot(|s| s.invoke(export, args))
    }

    /// Reads `len` bytes of an instance's memory at `ptr` (meaningful with one instance, or
    /// within a [`Plugin::session`]).
    ///
    /// # Errors
    /// [`CallError::Refused`] out of bounds, or as [`Plugin::call`].
    pub fn read_memory(&self, ptr: u32, len: u32) -> Result<Vec<u8>, CallError> {
        self.shared.with_slot(|s| s.read_memory(ptr, len))
    }

    /// Writes `bytes` into an instance's memory at `ptr` (see [`Plugin::read_memory`]).
    ///
    /// # Errors
    /// As [`Plugin::read_memory`].
    pub fn write_memory(&self, ptr: u32, bytes: &[u8]) -> Result<(), CallError> {
        self.shared.with_slot(|s| s.write_memory(ptr, bytes))
    }

    /// Holds one instance for a sequence of requests (`malloc`, `write_memory`, `render`,
    /// `read_memory`, `free` on the same instance).
    ///
    /// # Errors
    /// No instance could be had ([`CallError::Overloaded`], [`CallError::Unavailable`]).
    pub fn session<R>(&self, f: impl FnOnce(&mut Session<'_, '_>) -> R) -> Result<R, CallError> {
        self.shared.with_slot(|s| Ok(f(&mut Session { inner: s })))
    }

    /// Replaces the module. Calls in flight finish on the old one (a slot busy with one is
    /// waited for, never failed); the first slot then starts an instance of the new module
    /// — if that fails, the old module stays and the error is returned — and every idle slot
    /// switches at once; a busy one switches before its next call. Instances' state is lost.
    ///
    /// # Errors
    /// [`BuildError::Instance`]: the new module does not compile, link or start (the old one
    /// stays); [`BuildError::Keeper`]: its memfd could not be made.
    pub fn reload(&self, module: &[u8]) -> Result<(), BuildError> {
        let fd = sys::sealed_memfd(c"sandboxrun-plugin-module", module)
            .map_err(|e| BuildError::Keeper(format!("memfd: {e}")))?;
        let s = &self.shared;
        let old = {
            let mut m = lock(&s.module);
            let old = m.clone();
            *m = (m.0 + 1, Arc::new(fd));
            old
        };
        let first = lock(&s.slots[0]).ensure_live(s);
        if let Err(e) = first {
            // Back to the old module (under a new generation: every keeper reloads it).
            let mut m = lock(&s.module);
            *m = (m.0 + 1, old.1);
            drop(m);
            let _ = lock(&s.slots[0]).ensure_live(s);
            return Err(BuildError::Instance(e.to_string()));
        }
        lock(&s.slots[0]).keep_spare();
        for slot in &s.slots[1..] {
            if let Ok(mut slot) = slot.try_lock() {
                let _ = slot.ensure_live(s);
                slot.keep_spare();
            }
        }
        Ok(())
    }

    /// Counters: calls, failures by kind, restarts; CPU time and peak memory per instance
    /// slot (its ended children's and its live one's, read from `/proc`).
    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        let instances = s
            .per_slot
            .iter()
            .map(|c| {
                let pid = c.pid.load(Ordering::Relaxed);
                let (cpu_ns, peak) = if pid > 0 { proc_usage(pid) } else { (0, 0) };
                InstanceStats {
                    pid: (pid > 0).then_some(pid),
                    calls: c.calls.load(Ordering::Relaxed),
                    cpu: Duration::from_nanos(c.ended_cpu_ns.load(Ordering::Relaxed) + cpu_ns),
                    peak_memory: c.peak.load(Ordering::Relaxed).max(peak),
                }
            })
            .collect();
        Stats {
            calls: s.counters.calls.load(Ordering::Relaxed),
            failures: lock(&s.counters.failures).clone(),
            restarts: s.counters.restarts.load(Ordering::Relaxed),
            instances,
        }
    }
}

/// One instance held by [`Plugin::session`].
pub struct Session<'a, 'b> {
    inner: &'a mut SlotRef<'b>,
}

impl Session<'_, '_> {
    /// As [`Plugin::call`], on this session's instance.
    ///
    /// # Errors
    /// As [`Plugin::call`].
    pub fn call(&mut self, export: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        self.inner.call(export, input)
    }

    /// As [`Plugin::invoke`].
    ///
    /// # Errors
    /// As [`Plugin::invoke`].
    pub fn invoke(&mut self, export: &str, args: &[Val]) -> Result<Vec<Val>, CallError> {
        self.inner.invoke(export, args)
    }

    /// As [`Plugin::read_memory`].
    ///
    /// # Errors
    /// As [`Plugin::read_memory`].
    pub fn read_memory(&mut self, ptr: u32, len: u32) -> Result<Vec<u8>, CallError> {
        self.inner.read_memory(ptr, len)
    }

    /// As [`Plugin::write_memory`].
    ///
    /// # Errors
    /// As [`Plugin::write_memory`].
    pub fn write_memory(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), CallError> {
        self.inner.write_memory(ptr, bytes)
    }
}

/// What [`Plugin::stats`] reports.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Requests sent to instances.
    pub calls: u64,
    /// Failures by [`CallError::kind`].
    pub failures: BTreeMap<&'static str, u64>,
    /// Instances started after the first of their slot.
    pub restarts: u64,
    /// Per slot.
    pub instances: Vec<InstanceStats>,
}

/// One slot's usage.
#[derive(Clone, Debug, Default)]
pub struct InstanceStats {
    /// The live instance's pid.
    pub pid: Option<i32>,
    /// Requests it served.
    pub calls: u64,
    /// CPU time of all its instances.
    pub cpu: Duration,
    /// The largest peak memory of its instances, bytes.
    pub peak_memory: u64,
}

/// CPU nanoseconds and peak resident bytes of a live process, from `/proc`.
fn proc_usage(pid: i32) -> (u64, u64) {
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // SAFETY: sysconf reads a constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let peak = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok()))?
        })
        .unwrap_or(0);
    (cpu * 1_000_000_000 / tick, peak * 1024)
}

/// Kills instances whose call deadline passes while a host function runs on the caller's
/// thread (the caller itself is busy in the function, so it cannot).
#[derive(Default)]
struct Watchdog {
    state: Arc<(Mutex<WatchState>, Condvar)>,
}

#[derive(Default)]
struct WatchState {
    next: u64,
    armed: BTreeMap<u64, (Instant, Arc<OwnedFd>)>,
    thread: bool,
    /// When the thread wakes next: an earlier deadline must wake it, a later one need not.
    wakes_at: Option<Instant>,
}

impl Watchdog {
    fn arm(&self, deadline: Instant, pidfd: Arc<OwnedFd>) -> u64 {
        let (m, cv) = &*self.state;
        let mut s = lock(m);
        s.next += 1;
        let ticket = s.next;
        s.armed.insert(ticket, (deadline, pidfd));
        if !s.thread {
            s.thread = true;
            let state = Arc::downgrade(&self.state);
            std::thread::Builder::new()
                .name("plugin-watchdog".into())
                .spawn(move || watch(state))
                .expect("spawning the watchdog thread");
        }
        // Waking the thread costs two context switches on every host call: only when it
        // would sleep past this deadline.
        if s.wakes_at.is_none_or(|w| deadline < w) {
            s.wakes_at = Some(deadline);
            cv.notify_one();
        }
        ticket
    }

    fn disarm(&self, ticket: u64) {
        lock(&self.state.0).armed.remove(&ticket);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.state.1.notify_all();
    }
}

/// The watchdog thread: ends when the plugin is dropped.
fn watch(state: std::sync::Weak<(Mutex<WatchState>, Condvar)>) {
    loop {
        let Some(state) = state.upgrade() else { return };
        let (m, cv) = &*state;
        let mut s = lock(m);
        let now = Instant::now();
        s.armed.retain(|_, (deadline, pidfd)| {
            if *deadline <= now {
                sys::pidfd_kill(pidfd.as_raw_fd());
                false
            } else {
                true
            }
        });
        let next = s.armed.values().map(|(d, _)| *d).min();
        let wait = next.map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now));
        s.wakes_at = Some(now + wait);
        let _ = cv.wait_timeout(s, wait);
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    /// A policy's instruction budget is refused, not silently ignored.
    #[test]
    fn an_instruction_budget_is_refused() {
        let policy =
            policy::Policy::parse("version: 1\nlimits: {instructions: 1000}\n", std::path::Path::new("/"), "p")
                .expect("policy");
        let err = Plugin::builder(b"(module)".to_vec()).policy(policy).build().expect_err("refused");
        assert_eq!(err.to_string(), "limits.instructions (1000): plugins do not count instructions");
    }

    /// So is a policy's list of features.
    #[test]
    fn a_feature_list_is_refused() {
        let policy = policy::Policy::parse("version: 1\nfeatures: [bulk-memory]\n", std::path::Path::new("/"), "p")
            .expect("policy");
        let err = Plugin::builder(b"(module)".to_vec()).policy(policy).build().expect_err("refused");
        assert_eq!(err.to_string(), "features: plugins accept every implemented feature");
    }
}
