//! Feature `tokio`: async host functions ([`PluginBuilder::host_fn_async`]) and an async
//! calling API ([`Plugin::call_async`], [`Plugin::invoke_async`], [`PluginBuilder::build_async`]).
//!
//! - An async host function's future runs in a tokio runtime's context — the builder's
//!   [`PluginBuilder::runtime`], else the one current at `build` — polled by the thread
//!   serving the call, which parks between wake-ups until the call's deadline: its timers,
//!   I/O and `tokio::spawn` work as in a task (driven by the runtime's threads), and the
//!   answer costs no hand-over to a worker thread (measured: a spawned task and a channel
//!   cost 95 µs a round trip on an idle VM). At the deadline the thread kills the instance at
//!   once, drops the future and returns [`CallError::Timeout`]: unlike a sync host function,
//!   an async one cannot hold the caller past the deadline. A panic in the future is caught
//!   and fails the call with [`CallError::HostFunction`]. (A runtime whose only thread is
//!   the one making a sync call cannot drive the future's timers: from async code, use
//!   [`Plugin::call_async`].)
//! - The async calls run the call itself on tokio's blocking pool (`spawn_blocking`): the
//!   caller's worker thread never blocks, and a call's cost grows by one hand-over between
//!   threads. Dropping their future does not cancel the call: it finishes in the background,
//!   within the call timeout.
//! - Nested calls keep their depth across tasks and threads (a task-local set for each host
//!   future, carried into the blocking thread), so `max_depth` holds for any mix of sync and
//!   async host functions and callers.

use crate::error::{BuildError, CallError};
use crate::instance::Slot;
use crate::messages::Val;
use crate::plugin::{depth, panic_message, with_depth, HostImpl, Plugin, PluginBuilder, Shared};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

/// The future an async host function returns, boxed.
pub type HostFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// An async host function: the guest's bytes in (owned), a future of the answer's bytes (or
/// the host's error) out.
pub type AsyncHostFn = Arc<dyn Fn(Vec<u8>) -> HostFuture + Send + Sync>;

tokio::task_local! {
    /// The nesting depth of the async host function this task runs.
    static TASK_DEPTH: u32;
}

/// The depth of the async host function whose task is running here (0 outside one).
pub(crate) fn task_depth() -> u32 {
    TASK_DEPTH.try_with(|d| *d).unwrap_or(0)
}

impl PluginBuilder {
    /// Offers an async host function the plugin imports as `host.NAME`: `f` gets the guest's
    /// bytes and returns a future of the answer, run on the plugin's runtime (see
    /// [`Self::runtime`]). The call timeout covers the time spent awaiting it; at the
    /// deadline the instance is killed and the future dropped.
    ///
    /// ```no_run
    /// # let wasm = Vec::new();
    /// let builder = sandboxrun_plugin::Plugin::builder(wasm).host_fn_async("fetch", |key: Vec<u8>| async move {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ///     Ok(key)
    /// });
    /// ```
    pub fn host_fn_async<F, Fut>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<u8>, String>> + Send + 'static,
    {
        let f: AsyncHostFn = Arc::new(move |input| Box::pin(f(input)));
        self.host_fns.push((name.to_string(), HostImpl::Async(f)));
        self
    }

    /// The tokio runtime async host functions run on (default: the runtime current when
    /// [`Self::build`] runs; without one, `build` fails with [`BuildError::NoRuntime`]).
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// [`Self::build`] on tokio's blocking pool: starting the instances (processes,
    /// confinement, compilation) does not block the caller's worker thread. Async host
    /// functions default to the caller's runtime.
    ///
    /// # Errors
    /// As [`Self::build`]; [`BuildError::NoRuntime`] when not called within a runtime.
    pub async fn build_async(mut self) -> Result<Plugin, BuildError> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        self.runtime.get_or_insert_with(|| handle.clone());
        match handle.spawn_blocking(move || self.build()).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(BuildError::NoRuntime),
        }
    }
}

/// The runtime a plugin with these host functions needs: `None` without async ones.
pub(crate) fn runtime_for(
    host_fns: &[(String, HostImpl)],
    given: Option<tokio::runtime::Handle>,
) -> Result<Option<tokio::runtime::Handle>, BuildError> {
    let any_async = host_fns.iter().any(|(_, h)| matches!(h, HostImpl::Async(_)));
    match given {
        Some(h) => Ok(Some(h)),
        None if any_async => tokio::runtime::Handle::try_current().map(Some).map_err(|_| BuildError::NoRuntime),
        None => Ok(tokio::runtime::Handle::try_current().ok()),
    }
}

/// Runs async host function `f` (called `name`) for the instance of `slot`: polls its
/// future on this thread, in the runtime's context, until `deadline`, past which the
/// instance is killed and the future dropped. As [`Shared::run_host_fn`]: `Err` ends the
/// call, `Ok(Err)` is the function's own failure, sent back to the guest.
pub(crate) fn run_host_fn(
    shared: &Shared,
    slot: &mut Slot,
    name: &str,
    f: &AsyncHostFn,
    input: &[u8],
    deadline: Instant,
) -> Result<Result<Vec<u8>, String>, CallError> {
    let Some(runtime) = &shared.runtime else {
        return Ok(Err(format!("{name}: no tokio runtime")));
    };
    // Making the future runs host code too: its panic is the host's error.
    let future = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(input.to_vec()))) {
        Ok(future) => future,
        Err(panic) => return Ok(Err(format!("panicked: {}", panic_message(&*panic)))),
    };
    let _context = runtime.enter();
    let mut future = Box::pin(TASK_DEPTH.scope(depth() + 1, CatchUnwind(future)));
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let outcome = loop {
        if let Poll::Ready(outcome) = future.as_mut().poll(&mut cx) {
            break outcome;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // The instance first (the deadline is the guest's), then the host's future.
            slot.kill(shared);
            drop(future);
            return Err(CallError::Timeout);
        }
        // Woken by the future's waker (or spuriously: it is polled again).
        std::thread::park_timeout(left);
    };
    match outcome {
        Ok(answer) => Ok(answer.map_err(|e| format!("{name}: {e}"))),
        Err(panic) => Ok(Err(format!("panicked: {}", panic_message(&*panic)))),
    }
}

/// Wakes the thread polling a host function's future.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A future whose panics become `Err(payload)`.
struct CatchUnwind(HostFuture);

impl Future for CatchUnwind {
    type Output = Result<Result<Vec<u8>, String>, Box<dyn std::any::Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

impl Plugin {
    /// [`Plugin::call`] for async code: the call runs on tokio's blocking pool, so the
    /// caller's worker thread is never blocked. Dropping the future does not cancel the call
    /// (it finishes within the call timeout, its answer discarded).
    ///
    /// # Errors
    /// As [`Plugin::call`]; [`CallError::Unavailable`] outside a tokio runtime (and without
    /// [`PluginBuilder::runtime`]).
    pub async fn call_async(&self, export: &str, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let (export, input) = (export.to_string(), input.to_vec());
        self.blocking(move |shared| shared.with_slot(|s| s.call(&export, &input))).await
    }

    /// [`Plugin::invoke`] for async code (see [`Plugin::call_async`]).
    ///
    /// # Errors
    /// As [`Plugin::call_async`].
    pub async fn invoke_async(&self, export: &str, args: &[Val]) -> Result<Vec<Val>, CallError> {
        let (export, args) = (export.to_string(), args.to_vec());
        self.blocking(move |shared| shared.with_slot(|s| s.invoke(&export, &args))).await
    }

    /// Runs `f` on the blocking pool at the caller's nesting depth.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<R, CallError> + Send + 'static,
    ) -> Result<R, CallError> {
        let handle = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.shared.runtime.clone())
            .ok_or_else(|| CallError::Unavailable("no tokio runtime to run the call on".into()))?;
        let (shared, d) = (self.shared.clone(), depth());
        match handle.spawn_blocking(move || with_depth(d, || f(&shared))).await {
            Ok(r) => r,
            // A bug of this library's: not the plugin's doing, so not a CallError.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(CallError::Unavailable("the tokio runtime shut down".into())),
        }
    }
}
