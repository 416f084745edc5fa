//! The store: owner of every runtime object (instances, memories, tables, globals, host
//! functions). Objects live as long as their store, so compiled code can hold raw pointers
//! between them; handles ([`Func`], [`Memory`], ...) are indices checked against the store.

use crate::engine::Engine;
use crate::func::HostFuncData;
use crate::instance::InstanceData;
use crate::module::ModuleInner;
use crate::trap::{Trap, TrapKind};
use crate::types::*;
use crate::values::*;
use crate::vm::memory::LinearMemory;
use crate::vm::traps::{self, TrapLookup, Unwind};
use crate::vm::vmctx::{VMFuncRef, VMGlobal, VMLimits, VMTableDefinition, ValRaw};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Error from a host function (downcast it to find e.g. a WASI exit).
pub type HostError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a call into wasm did not return normally.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The wasm code trapped.
    #[error("{0}")]
    Trap(Trap),
    /// A host function returned an error, which unwound the wasm frames.
    #[error("{0}")]
    Host(HostError),
    /// The arguments do not fit the function's type.
    #[error("type mismatch: expected {expected}, got {got}")]
    Signature {
        /// The function's parameter types.
        expected: String,
        /// The argument types given.
        got: String,
    },
    /// A value from another store, or a host function where a function reference is needed.
    #[error("{0}")]
    BadValue(&'static str),
}

/// Largest table size the store allows (elements).
pub const MAX_TABLE_ELEMENTS: u32 = 10_000_000;

/// A table's storage.
pub(crate) struct TableData {
    pub(crate) ty: TableType,
    pub(crate) elements: Vec<usize>,
    pub(crate) def: VMTableDefinition,
}

impl TableData {
    pub(crate) fn new(ty: TableType, init: usize) -> Self {
        let mut elements = vec![init; ty.limits.min as usize];
        let def = VMTableDefinition { base: elements.as_mut_ptr(), current_elements: ty.limits.min };
        TableData { ty, elements, def }
    }

    /// Grows by `delta` elements set to `init`; returns the old size or `None`.
    pub(crate) fn grow(&mut self, delta: u32, init: usize) -> Option<u32> {
        let old = self.elements.len() as u32;
        let new = old.checked_add(delta)?;
        if new > self.ty.limits.max.unwrap_or(u32::MAX).min(MAX_TABLE_ELEMENTS) {
            return None;
        }
        self.elements.resize(new as usize, init);
        self.def.base = self.elements.as_mut_ptr();
        self.def.current_elements = new;
        self.ty.limits.min = new;
        Some(old)
    }
}

/// A global's storage.
pub(crate) struct GlobalData {
    pub(crate) ty: GlobalType,
    pub(crate) value: VMGlobal,
}

/// The part of a store with a stable address (compiled code and host functions point here).
/// Objects are boxed so their addresses stay fixed as the vectors grow.
#[allow(clippy::vec_box)]
pub(crate) struct StoreInner {
    pub(crate) id: u64,
    pub(crate) engine: Engine,
    pub(crate) limits: VMLimits,
    pub(crate) memory_limit_pages: u32,
    pub(crate) memories: Vec<Box<LinearMemory>>,
    pub(crate) tables: Vec<Box<TableData>>,
    pub(crate) globals: Vec<Box<GlobalData>>,
    pub(crate) host_funcs: Vec<Box<HostFuncData>>,
    pub(crate) instances: Vec<Box<InstanceData>>,
    /// Code of every module instantiated in the store, for the signal handler. Boxed apart
    /// from the rest so the handler reads it through its own shared reference.
    pub(crate) registry: Box<CodeRegistry>,
}

/// The modules whose code runs in a store.
#[derive(Default)]
pub(crate) struct CodeRegistry {
    pub(crate) modules: Vec<Arc<ModuleInner>>,
}

impl CodeRegistry {
    /// Adds a module (once).
    pub(crate) fn register(&mut self, module: &Arc<ModuleInner>) {
        if !self.modules.iter().any(|m| Arc::ptr_eq(m, module)) {
            self.modules.push(module.clone());
        }
    }
}

/// Owner of all runtime objects of one execution context; not thread-safe.
pub struct Store {
    pub(crate) inner: Box<StoreInner>,
}

impl Store {
    /// An empty store.
    pub fn new(engine: &Engine) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Store {
            inner: Box::new(StoreInner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                engine: engine.clone(),
                limits: VMLimits::default(),
                memory_limit_pages: 65536,
                memories: Vec::new(),
                tables: Vec::new(),
                globals: Vec::new(),
                host_funcs: Vec::new(),
                instances: Vec::new(),
                registry: Box::default(),
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Caps every memory created from now on at `bytes` (rounded down to whole pages):
    /// `memory.grow` beyond it returns -1, and a module needing more fails to instantiate.
    pub fn set_memory_limit(&mut self, bytes: u64) {
        self.inner.memory_limit_pages = (bytes / 65536).min(65536) as u32;
    }

    // ----- objects ----------------------------------------------------------------------------

    /// Creates a memory.
    pub fn new_memory(&mut self, ty: MemoryType) -> Result<Memory, crate::vm::memory::MemoryError> {
        let inner = &mut *self.inner;
        let memory = LinearMemory::new(ty.limits.min, ty.limits.max, inner.memory_limit_pages, inner.engine.bounds())?;
        inner.memories.push(Box::new(memory));
        Ok(Memory { store: inner.id, index: inner.memories.len() as u32 - 1 })
    }

    /// Creates a table with every element set to `init`.
    pub fn new_table(&mut self, ty: TableType, init: Val) -> Result<Table, CallError> {
        let raw = self.to_raw(init)? as usize;
        let inner = &mut *self.inner;
        inner.tables.push(Box::new(TableData::new(ty, raw)));
        Ok(Table { store: inner.id, index: inner.tables.len() as u32 - 1 })
    }

    /// Creates a global.
    pub fn new_global(&mut self, ty: GlobalType, value: Val) -> Result<Global, CallError> {
        if value.ty() != ty.ty {
            return Err(CallError::BadValue("global value of the wrong type"));
        }
        let bits = self.to_raw(value)?;
        let inner = &mut *self.inner;
        inner.globals.push(Box::new(GlobalData { ty, value: VMGlobal { bits } }));
        Ok(Global { store: inner.id, index: inner.globals.len() as u32 - 1 })
    }

    fn check<T>(&self, store: u64, what: T) -> T {
        assert_eq!(store, self.inner.id, "handle used with another store");
        what
    }

    /// A memory's bytes.
    pub fn memory_data(&self, memory: Memory) -> &[u8] {
        self.check(memory.store, self.inner.memories[memory.index as usize].data())
    }

    /// A memory's bytes, writable.
    pub fn memory_data_mut(&mut self, memory: Memory) -> &mut [u8] {
        assert_eq!(memory.store, self.inner.id, "handle used with another store");
        self.inner.memories[memory.index as usize].data_mut()
    }

    /// A memory's type (with its current size as minimum).
    pub fn memory_type(&self, memory: Memory) -> MemoryType {
        let m = self.check(memory.store, &self.inner.memories[memory.index as usize]);
        MemoryType { limits: Limits { min: m.pages(), max: m.declared_max() } }
    }

    /// A table's type (with its current size as minimum).
    pub fn table_type(&self, table: Table) -> TableType {
        self.check(table.store, self.inner.tables[table.index as usize].ty)
    }

    /// A global's type.
    pub fn global_type(&self, global: Global) -> GlobalType {
        self.check(global.store, self.inner.globals[global.index as usize].ty)
    }

    /// A global's current value.
    pub fn global_get(&self, global: Global) -> Val {
        let g = self.check(global.store, &self.inner.globals[global.index as usize]);
        Val::from_raw(g.value.bits, g.ty.ty, self.inner.id)
    }

    /// A function's type.
    pub fn func_type(&self, func: Func) -> FuncType {
        match self.check(func.store, func.kind) {
            FuncKind::Host(i) => self.inner.host_funcs[i as usize].ty.clone(),
            // SAFETY: function references handed out by this store stay valid as long as it.
            FuncKind::Ref(p) => self.inner.engine.signature(unsafe { p.as_ref() }.type_id),
        }
    }

    /// The type of an extern.
    pub fn extern_type(&self, e: Extern) -> ExternType {
        match e {
            Extern::Func(f) => ExternType::Func(self.func_type(f)),
            Extern::Table(t) => ExternType::Table(self.table_type(t)),
            Extern::Memory(m) => ExternType::Memory(self.memory_type(m)),
            Extern::Global(g) => ExternType::Global(self.global_type(g)),
        }
    }

    /// Encodes a value as a raw slot.
    pub(crate) fn to_raw(&self, v: Val) -> Result<ValRaw, CallError> {
        crate::instance::val_to_raw(&self.inner, v)
    }

    // ----- calls --------------------------------------------------------------------------------

    /// Calls `func` with `args`; returns its results.
    pub fn call(&mut self, func: Func, args: &[Val]) -> Result<Vec<Val>, CallError> {
        let ty = self.func_type(func);
        if args.len() != ty.params.len() || args.iter().zip(ty.params.iter()).any(|(a, t)| a.ty() != *t) {
            let list = |v: Vec<String>| format!("({})", v.join(", "));
            return Err(CallError::Signature {
                expected: list(ty.params.iter().map(|t| t.to_string()).collect()),
                got: list(args.iter().map(|a| a.ty().to_string()).collect()),
            });
        }
        match func.kind {
            FuncKind::Host(i) => {
                let mut results: Vec<Val> = ty.results.iter().map(|t| Val::default_for(*t)).collect();
                let store: *mut StoreInner = &mut *self.inner;
                let host: *const HostFuncData = &*self.inner.host_funcs[i as usize];
                let mut caller = crate::func::Caller { store, instance: None };
                // SAFETY: host functions live as long as the store; `caller` only reaches the
                // store through the raw pointer while no other borrow of it is active.
                unsafe { ((*host).func)(&mut caller, args, &mut results) }.map_err(CallError::Host)?;
                Ok(results)
            }
            FuncKind::Ref(p) => {
                let mut values = vec![0 as ValRaw; ty.params.len().max(ty.results.len()).max(1)];
                for (slot, a) in values.iter_mut().zip(args) {
                    *slot = self.to_raw(*a)?;
                }
                // SAFETY: the reference belongs to this store (checked by func_type) and lives
                // as long as it.
                let f = unsafe { p.as_ref() };
                // SAFETY: `array_call` is the array trampoline of the function's own type,
                // `values` holds max(params, results) slots as it requires.
                unsafe { self.enter(f, values.as_mut_ptr()) }?;
                let id = self.inner.id;
                Ok(ty.results.iter().zip(values).map(|(t, raw)| Val::from_raw(raw, *t, id)).collect())
            }
        }
    }

    /// Runs `f`'s array trampoline with trap handling and the stack limit in place.
    ///
    /// # Safety
    /// `values` must have room for `f`'s parameters and results.
    pub(crate) unsafe fn enter(&mut self, f: &VMFuncRef, values: *mut ValRaw) -> Result<(), CallError> {
        traps::init_traps();
        let outermost = self.inner.limits.stack_limit == 0;
        if outermost {
            let here = &outermost as *const bool as usize;
            self.inner.limits.stack_limit = here.saturating_sub(self.inner.engine.config().max_wasm_stack);
        }
        let registry: *const CodeRegistry = &*self.inner.registry;
        // SAFETY: the registry is a separate allocation, not changed while wasm runs.
        let lookup: &dyn TrapLookup = unsafe { &*registry };
        // SAFETY: the trampoline and its arguments come from a live function reference; see
        // `catch_traps` for the unwinding contract.
        let result = unsafe {
            traps::catch_traps(
                lookup,
                f.array_call as usize,
                [f.vmctx as usize, f.wasm_call as usize, 0, values as usize],
            )
        };
        if outermost {
            self.inner.limits.stack_limit = 0;
        }
        result.map_err(|unwind| self.unwind_to_error(unwind))
    }

    fn unwind_to_error(&self, unwind: Unwind) -> CallError {
        match unwind {
            Unwind::Trap { kind, pc, .. } => {
                let located =
                    self.inner.registry.modules.iter().find_map(|m| m.func_at(pc).map(|(f, off)| (m, f, off)));
                match located {
                    Some((m, f, off)) => {
                        CallError::Trap(Trap { kind, function: Some((f.0, m.info.func_name(f))), offset: Some(off) })
                    }
                    None => CallError::Trap(Trap::new(kind)),
                }
            }
            Unwind::Host(payload) => match payload.downcast::<crate::func::HostUnwind>() {
                Ok(h) => match *h {
                    crate::func::HostUnwind::Error(e) => CallError::Host(e),
                    crate::func::HostUnwind::Panic(p) => std::panic::resume_unwind(p),
                },
                Err(other) => std::panic::resume_unwind(other),
            },
        }
    }
}

impl TrapLookup for CodeRegistry {
    fn lookup(&self, pc: usize) -> Option<TrapKind> {
        self.modules.iter().find_map(|m| m.trap_at(pc))
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("id", &self.inner.id).field("instances", &self.inner.instances.len()).finish()
    }
}
