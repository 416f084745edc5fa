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
use crate::func_refs::FuncRefs;
use crate::module::ModuleInner;
use crate::store::{CallError, MAX_TABLE_ELEMENTS};
use crate::table_image::LazyElements;
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
    /// The elements; while `lazy` is set, a zero may be an element not yet read from the
    /// image (see [`crate::table_image`]): read through `StoreInner::table_element`, and
    /// `StoreInner::fill_table` before writing.
    pub(crate) elements: Vec<usize>,
    pub(crate) def: VMTableDefinition,
    /// The image elements not yet read come from; `def.lazy` is non-zero while this is set.
    pub(crate) lazy: Option<LazyElements>,
}

impl TableData {
    /// A table with every element `init`.
    pub(crate) fn new(ty: TableType, init: usize) -> Self {
        let mut elements = vec![init; ty.limits.min as usize];
        let def = VMTableDefinition { base: elements.as_mut_ptr(), current_elements: ty.limits.min, lazy: 0 };
        TableData { ty, elements, def, lazy: None }
    }

    /// A table whose elements come from `lazy` as they are first read (zeroed memory until then).
    pub(crate) fn lazy(ty: TableType, lazy: LazyElements) -> Self {
        let mut table = TableData::new(ty, 0);
        table.def.lazy = 1;
        table.lazy = Some(lazy);
        table
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
    /// Exception tags (their addresses are their identities).
    pub(crate) tags: Vec<Box<crate::exceptions::TagData>>,
    /// Exception objects not freed yet.
    pub(crate) exceptions: crate::exceptions::Exceptions,
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
    /// Function references, made on first use.
    pub(crate) func_refs: FuncRefs,
    /// Store indices of the instance's memories, tables and globals.
    pub(crate) memories: Vec<u32>,
    pub(crate) tables: Vec<u32>,
    pub(crate) globals: Vec<u32>,
    /// Store indices of the instance's tags.
    pub(crate) tags: Vec<u32>,
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
    pub(crate) fn store(&mut self) -> &mut StoreInner {
        // SAFETY: the store owns and outlives the instance; `self.store` derives from the
        // store's root pointer; the runtime is single-threaded and, per the above, no other
        // reference to the state is live while this one is.
        unsafe { &mut *self.store }
    }

    /// Memory `m` of the instance.
    pub(crate) fn memory_mut(&mut self, m: u32) -> Option<&mut LinearMemory> {
        let index = *self.memories.get(m as usize)?;
        Some(&mut self.store().memories[index as usize])
    }

    /// Function `f`'s reference, made now if this is its first use.
    pub(crate) fn func_ref(&self, f: FuncIndex) -> *const VMFuncRef {
        let m = &self.module;
        let vmctx = self.vmctx.as_ptr() as *mut u8;
        self.func_refs.get(f, &|d| {
            let ty = m.info.functions[m.info.num_imported_funcs as usize + d.index()];
            VMFuncRef {
                wasm_call: m.func_address(d),
                vmctx,
                array_call: m.code_address(m.array_trampolines[ty.index()].expect("checked at load")),
                type_id: m.type_ids[ty.index()],
            }
        })
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

    /// Pages of all the store's memories: the embedder's limit bounds them together (a module
    /// with many memories gets no more than one with one).
    fn memory_pages(&self) -> u64 {
        self.memories.iter().map(|m| u64::from(m.pages())).sum()
    }

    /// Creates a memory, within what the store's limit leaves.
    pub(crate) fn new_memory(&mut self, ty: MemoryType) -> Result<Memory, crate::vm::memory::MemoryError> {
        let left = u64::from(self.memory_limit_pages).saturating_sub(self.memory_pages()) as u32;
        let mut memory = LinearMemory::new(ty.limits.min, ty.limits.max, left, self.engine.bounds())?;
        memory.memory64 = ty.memory64;
        self.memories.push(Box::new(memory));
        Ok(Memory { store: self.id, index: self.memories.len() as u32 - 1 })
    }

    /// `memory.grow` of memory `index` (a store index) by `delta` pages, within the store's
    /// limit on all its memories together: the old size in pages, or `u32::MAX`.
    pub(crate) fn grow_memory(&mut self, index: u32, delta: u32) -> u32 {
        let fits = self.memory_pages() + u64::from(delta) <= u64::from(self.memory_limit_pages);
        let memory = &mut self.memories[index as usize];
        if !fits {
            memory.refused(delta);
            return u32::MAX;
        }
        memory.grow(delta).unwrap_or(u32::MAX)
    }

    /// A memory's type (with its current size as minimum).
    pub(crate) fn memory_type(&self, memory: Memory) -> MemoryType {
        self.check(memory.store);
        let m = &self.memories[memory.index as usize];
        MemoryType { limits: Limits { min: m.pages(), max: m.declared_max() }, memory64: m.memory64 }
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

    /// The canonical signature id of a function of this store (`None` for one of another
    /// store).
    pub(crate) fn func_type_id(&self, func: Func) -> Option<u32> {
        if func.store != self.id {
            return None;
        }
        Some(match func.kind {
            FuncKind::Host(i) => self.engine.signature_id(&self.host_funcs[i as usize].ty),
            // SAFETY: function references handed out by this store stay valid as long as it.
            FuncKind::Ref(p) => unsafe { p.as_ref() }.type_id,
        })
    }

    /// What `v` is, for error messages: its type, precise for a function reference (its
    /// signature, or null).
    pub(crate) fn describe(&self, v: &Val) -> String {
        match v {
            Val::FuncRef(None) => "ref.null func".into(),
            Val::FuncRef(Some(f)) => match self.func_type_id(*f) {
                Some(id) => format!("{}", ValType::Ref(RefType { nullable: false, heap: HeapType::Sig(id) })),
                None => "a function of another store".into(),
            },
            Val::ExternRef(None) => "ref.null extern".into(),
            Val::ExnRef(None) => "ref.null exn".into(),
            other => other.ty().to_string(),
        }
    }

    /// Whether `v` is a value of type `ty` (canonical): a reference must be of the store, of a
    /// matching type, and null only where the type allows it.
    pub(crate) fn val_matches(&self, v: &Val, ty: ValType) -> bool {
        let ValType::Ref(r) = ty else { return v.ty() == ty };
        let (null, top) = match v {
            Val::FuncRef(f) => (f.is_none(), HeapType::Func),
            Val::ExternRef(e) => (e.is_none(), HeapType::Extern),
            Val::ExnRef(e) => (e.is_none(), HeapType::Exn),
            _ => return false,
        };
        if r.heap.top() != top {
            return false;
        }
        if null {
            return r.nullable;
        }
        match (v, r.heap) {
            (_, heap) if heap == top => true,
            (Val::FuncRef(Some(f)), HeapType::Sig(id)) => self.func_type_id(*f) == Some(id),
            _ => false,
        }
    }

    /// The type of an extern.
    pub(crate) fn extern_type(&self, e: Extern) -> ExternType {
        match e {
            Extern::Func(f) => ExternType::Func(self.func_type(f)),
            Extern::Table(t) => ExternType::Table(self.table_type(t)),
            Extern::Memory(m) => ExternType::Memory(self.memory_type(m)),
            Extern::Global(g) => ExternType::Global(self.global_type(g)),
            Extern::Tag(t) => {
                self.check(t.store);
                ExternType::Tag(self.tags[t.index as usize].ty.clone())
            }
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
        Val::ExnRef(None) => 0,
        Val::ExnRef(Some(e)) if store.exceptions.contains(e.0.get()) => e.0.get() as ValRaw,
        Val::ExnRef(Some(_)) => return Err(CallError::BadValue("exception from another store")),
        Val::FuncRef(None) => 0,
        Val::FuncRef(Some(f)) if f.store != store.id => return Err(CallError::BadValue("function from another store")),
        Val::FuncRef(Some(Func { kind: FuncKind::Ref(p), .. })) => p.as_ptr() as usize as ValRaw,
        Val::FuncRef(Some(_)) => {
            return Err(CallError::BadValue("a host function must be imported by a module before use as a reference"))
        }
    })
}
