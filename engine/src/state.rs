//! The runtime state compiled code reaches: a store's [`StoreInner`] and the objects it owns
//! (instances, memories, tables, globals, host functions), each boxed so its address stays
//! fixed while compiled code holds pointers to it.
//!
//! Ownership and aliasing: a [`crate::Store`] owns its `StoreInner` through a raw pointer
//! made by `Box::into_raw`; every pointer to the state — in a `VMContext`, a host function's
//! context, an instance's back pointer — is derived from that one, never from a reference. No
//! `&`/`&mut` to the state is held across a call into compiled code: each use (a builtin, a
//! host call, a store method) derives a reference for its own short scope and drops it before
//! control can reach another.

use crate::engine::Engine;
use crate::func::HostFn;
use crate::module::ModuleInner;
use crate::store::{CallError, MAX_TABLE_ELEMENTS};
use crate::trap::TrapKind;
use crate::types::*;
use crate::values::*;
use crate::vm::memory::LinearMemory;
use crate::vm::traps::TrapLookup;
use crate::vm::vmctx::*;
use std::sync::Arc;

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
    /// The instruction budget `limits.instructions_left` started from (counting engines).
    pub(crate) instruction_budget: u64,
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

impl TrapLookup for CodeRegistry {
    fn lookup(&self, pc: usize) -> Option<TrapKind> {
        self.modules.iter().find_map(|m| m.trap_at(pc))
    }
}

/// A host function's context. `dispatch` must stay the first field: host trampolines call
/// the function pointer at offset 0 of their context.
#[repr(C)]
pub(crate) struct HostFuncData {
    pub(crate) dispatch: unsafe extern "C" fn(*mut HostFuncData, *mut u8, *mut ValRaw, usize),
    pub(crate) store: *mut StoreInner,
    pub(crate) ty: FuncType,
    pub(crate) func: Box<HostFn>,
}

/// Runtime state of one instance. Its `vmctx` slot 0 points back here.
pub(crate) struct InstanceData {
    pub(crate) module: Arc<ModuleInner>,
    pub(crate) store: *mut StoreInner,
    pub(crate) vmctx: Box<[u64]>,
    pub(crate) type_ids: Box<[u32]>,
    /// Function references this instance owns: defined functions, then imported host functions.
    pub(crate) func_ref_storage: Box<[VMFuncRef]>,
    pub(crate) func_refs: Box<[*const VMFuncRef]>,
    /// Store indices of the instance's memories, tables and globals.
    pub(crate) memories: Vec<u32>,
    pub(crate) tables: Vec<u32>,
    pub(crate) globals: Vec<u32>,
    /// Passive element segments as raw references (`None` once dropped).
    pub(crate) elements: Vec<Option<Box<[usize]>>>,
    /// Whether each data segment was dropped.
    pub(crate) data_dropped: Vec<bool>,
}

impl InstanceData {
    /// The instance whose `VMContext` is `vmctx`.
    ///
    /// # Safety
    /// `vmctx` must be the `VMContext` of a live instance (compiled code passes its own).
    pub(crate) unsafe fn from_vmctx(vmctx: *mut u8) -> *mut InstanceData {
        // SAFETY: slot 0 of every VMContext holds its instance (written at instantiation),
        // and the caller guarantees `vmctx` is one.
        unsafe { *(vmctx as *const *mut InstanceData) }
    }

    /// The store's state, for the caller's short scope: a builtin or host call in progress,
    /// during which nothing else uses the state (the store's own methods wait for compiled
    /// code to return, and hold no reference meanwhile).
    fn store(&mut self) -> &mut StoreInner {
        // SAFETY: the store owns and outlives the instance; `self.store` derives from the
        // store's root pointer; the runtime is single-threaded and, per the above, no other
        // reference to the state is live while this one is.
        unsafe { &mut *self.store }
    }

    /// Memory 0.
    pub(crate) fn memory_mut(&mut self) -> Option<&mut LinearMemory> {
        let index = *self.memories.first()?;
        Some(&mut self.store().memories[index as usize])
    }

    /// Table `t` of the instance.
    pub(crate) fn table(&mut self, t: u32) -> &mut TableData {
        let index = self.tables[t as usize] as usize;
        &mut self.store().tables[index]
    }
}

impl StoreInner {
    /// Panics unless a handle of store `id` is used with this store.
    pub(crate) fn check(&self, id: u64) {
        assert_eq!(id, self.id, "handle used with another store");
    }

    /// Creates a memory.
    pub(crate) fn new_memory(&mut self, ty: MemoryType) -> Result<Memory, crate::vm::memory::MemoryError> {
        let memory = LinearMemory::new(ty.limits.min, ty.limits.max, self.memory_limit_pages, self.engine.bounds())?;
        self.memories.push(Box::new(memory));
        Ok(Memory { store: self.id, index: self.memories.len() as u32 - 1 })
    }

    /// A memory's type (with its current size as minimum).
    pub(crate) fn memory_type(&self, memory: Memory) -> MemoryType {
        self.check(memory.store);
        let m = &self.memories[memory.index as usize];
        MemoryType { limits: Limits { min: m.pages(), max: m.declared_max() } }
    }

    /// A table's type (with its current size as minimum).
    pub(crate) fn table_type(&self, table: Table) -> TableType {
        self.check(table.store);
        self.tables[table.index as usize].ty
    }

    /// A global's type.
    pub(crate) fn global_type(&self, global: Global) -> GlobalType {
        self.check(global.store);
        self.globals[global.index as usize].ty
    }

    /// A function's type.
    pub(crate) fn func_type(&self, func: Func) -> FuncType {
        self.check(func.store);
        match func.kind {
            FuncKind::Host(i) => self.host_funcs[i as usize].ty.clone(),
            // SAFETY: function references handed out by this store stay valid as long as it.
            FuncKind::Ref(p) => self.engine.signature(unsafe { p.as_ref() }.type_id),
        }
    }

    /// The type of an extern.
    pub(crate) fn extern_type(&self, e: Extern) -> ExternType {
        match e {
            Extern::Func(f) => ExternType::Func(self.func_type(f)),
            Extern::Table(t) => ExternType::Table(self.table_type(t)),
            Extern::Memory(m) => ExternType::Memory(self.memory_type(m)),
            Extern::Global(g) => ExternType::Global(self.global_type(g)),
        }
    }
}

/// Encodes a value as a raw slot of store `store`.
pub(crate) fn val_to_raw(store: &StoreInner, v: Val) -> Result<ValRaw, CallError> {
    Ok(match v {
        Val::I32(x) => x as u32 as ValRaw,
        Val::I64(x) => x as u64 as ValRaw,
        Val::F32(x) => x as ValRaw,
        Val::F64(x) => x as ValRaw,
        Val::V128(x) => x,
        Val::ExternRef(r) => r.map_or(0, |r| r.0.get()) as ValRaw,
        Val::FuncRef(None) => 0,
        Val::FuncRef(Some(f)) if f.store != store.id => return Err(CallError::BadValue("function from another store")),
        Val::FuncRef(Some(Func { kind: FuncKind::Ref(p), .. })) => p.as_ptr() as usize as ValRaw,
        Val::FuncRef(Some(_)) => {
            return Err(CallError::BadValue("a host function must be imported by a module before use as a reference"))
        }
    })
}
