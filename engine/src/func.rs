//! Host functions: Rust closures callable from wasm.
//!
//! A host function imported by a module is called through that module's host trampoline
//! for the function's type, which spills the arguments into an array and calls
//! [`host_dispatch`] with the function's [`HostFuncData`] as context. Errors and panics unwind
//! the wasm frames (see `vm::traps::raise_host`) and reappear at the host's call site.

use crate::state::{HostFuncData, InstanceData, StoreInner};
use crate::store::HostError;
use crate::values::Val;
use crate::vm::traps;
use crate::vm::vmctx::ValRaw;
use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// The closure type of host functions: `(caller, params, results)`.
pub type HostFn = dyn Fn(&mut Caller, &[Val], &mut [Val]) -> Result<(), HostError>;

/// What a host function learns about its caller.
pub struct Caller {
    pub(crate) store: *mut StoreInner,
    pub(crate) instance: Option<*mut InstanceData>,
}

impl Caller {
    /// The calling instance's memory WASI pointers refer to — the one it exports as `memory`,
    /// else its memory 0 — if it has one and the caller is wasm code.
    pub fn memory(&mut self) -> Option<&mut [u8]> {
        let instance = self.instance?;
        // SAFETY: the instance lives as long as the store, which outlives this call; the
        // memory's bytes are only accessed by this host function while it runs.
        let instance = unsafe { &mut *instance };
        let m = instance.module.host_memory;
        instance.memory_mut(m).map(|m| m.data_mut())
    }

    /// The id of the store the call happens in.
    pub fn store_id(&self) -> u64 {
        // SAFETY: the store outlives every call made in it.
        unsafe { (*self.store).id }
    }
}

/// Why wasm frames are being unwound on behalf of a host function.
pub(crate) enum HostUnwind {
    Error(HostError),
    Panic(Box<dyn Any + Send>),
}

/// Values a host call keeps on the stack: every WASI function has at most nine parameters.
const INLINE_VALUES: usize = 16;

/// `len` values in `inline` when they fit, else in `heap`.
fn values_buffer<'a>(inline: &'a mut [Val; INLINE_VALUES], heap: &'a mut Vec<Val>, len: usize) -> &'a mut [Val] {
    if len <= INLINE_VALUES {
        &mut inline[..len]
    } else {
        heap.resize(len, Val::I32(0));
        heap
    }
}

/// Called by host trampolines.
///
/// # Safety
/// `ctx` is a live `HostFuncData`, `caller_vmctx` null or a live instance's context, and
/// `values` has `len` slots holding the arguments, with room for the results.
pub(crate) unsafe extern "C" fn host_dispatch(
    ctx: *mut HostFuncData,
    caller_vmctx: *mut u8,
    values: *mut ValRaw,
    len: usize,
) {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: guaranteed by the caller (see above).
        let (host, values) = unsafe { (&*ctx, std::slice::from_raw_parts_mut(values, len)) };
        // SAFETY: as above.
        let store_id = unsafe { (*host.store).id };
        // On the stack for the usual few values (nothing allocated per call), else on the heap.
        let mut arg_buf = [Val::I32(0); INLINE_VALUES];
        let mut arg_heap = Vec::new();
        let args = values_buffer(&mut arg_buf, &mut arg_heap, host.ty.params.len());
        for ((slot, t), raw) in args.iter_mut().zip(host.ty.params.iter()).zip(values.iter()) {
            *slot = Val::from_raw(*raw, *t, store_id);
            // SAFETY: as above; the exceptions are only read by this thread while it runs.
            unsafe { (*host.store).exceptions.pin(slot) };
        }
        let mut result_buf = [Val::I32(0); INLINE_VALUES];
        let mut result_heap = Vec::new();
        let results = values_buffer(&mut result_buf, &mut result_heap, host.ty.results.len());
        for (slot, t) in results.iter_mut().zip(host.ty.results.iter()) {
            *slot = Val::default_for(*t);
        }
        let (args, results) = (&*args, results);
        // SAFETY: non-null, it is the calling instance's context (the caller's contract).
        let instance = (!caller_vmctx.is_null()).then(|| unsafe { InstanceData::from_vmctx(caller_vmctx) });
        let mut caller = Caller { store: host.store, instance };
        (host.func)(&mut caller, args, results)?;
        for (slot, (r, t)) in values.iter_mut().zip(results.iter().zip(host.ty.results.iter())) {
            // SAFETY: the store outlives the call.
            if !unsafe { (*host.store).val_matches(r, *t) } {
                // SAFETY: as above.
                let what = unsafe { (*host.store).describe(r) };
                return Err(HostError::from(format!("host function returned {what} where {t} was expected")));
            }
            // SAFETY: the store outlives the call.
            *slot = unsafe { crate::state::val_to_raw(&*host.store, *r) }.map_err(HostError::from)?;
        }
        Ok(())
    }));
    let payload: Box<dyn Any + Send> = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => Box::new(HostUnwind::Error(e)),
        Err(panic) => Box::new(HostUnwind::Panic(panic)),
    };
    // SAFETY: everything this frame owned has been moved into `payload`: nothing is left to
    // drop; the frames below up to `catch_traps` are compiled code and its trampolines.
    unsafe { traps::raise_host(payload) }
}
