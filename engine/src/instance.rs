//! Instantiation: building an instance's `VMContext` from a module and its imports,
//! applying element and data segments, running the start function; and the builtins
//! compiled code calls for memory and table operations.

use crate::module::{Module, ModuleInner};
use crate::module_info::{ConstExpr, EntityIndex, ImportKind, SegmentMode};
use crate::store::{CallError, GlobalData, Store, StoreInner, TableData};
use crate::trap::{Trap, TrapKind};
use crate::types::*;
use crate::values::*;
use crate::vm::memory::LinearMemory;
use crate::vm::vmctx::*;
use std::ptr::NonNull;
use std::sync::Arc;

/// Why instantiation failed.
#[derive(Debug, thiserror::Error)]
pub enum InstantiateError {
    /// Wrong number of imports.
    #[error("expected {expected} imports, got {got}")]
    ImportCount {
        /// Imports the module declares.
        expected: usize,
        /// Imports given.
        got: usize,
    },
    /// An import of the wrong kind or type.
    #[error("incompatible import {module}.{name}: expected {expected}, found {found}")]
    ImportType {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// What the module wants.
        expected: ExternType,
        /// What was given.
        found: ExternType,
    },
    /// The module was compiled by another engine.
    #[error("module belongs to another engine")]
    WrongEngine,
    /// A memory could not be created.
    #[error("failed to create memory: {0}")]
    Memory(#[from] crate::vm::memory::MemoryError),
    /// A segment was out of bounds or the start function trapped.
    #[error("{0}")]
    Trap(Trap),
    /// The start function's host import failed.
    #[error("start function failed: {0}")]
    Start(CallError),
}

/// Runtime state of one instance. Its `vmctx` slot 0 points back here.
pub(crate) struct InstanceData {
    pub(crate) module: Arc<ModuleInner>,
    pub(crate) store: *mut StoreInner,
    pub(crate) vmctx: Box<[u64]>,
    type_ids: Box<[u32]>,
    /// Function references this instance owns: defined functions, then imported host functions.
    func_ref_storage: Box<[VMFuncRef]>,
    func_refs: Box<[*const VMFuncRef]>,
    /// Store indices of the instance's memories, tables and globals.
    memories: Vec<u32>,
    tables: Vec<u32>,
    globals: Vec<u32>,
    /// Passive element segments as raw references (`None` once dropped).
    elements: Vec<Option<Box<[usize]>>>,
    /// Whether each data segment was dropped.
    data_dropped: Vec<bool>,
}

impl InstanceData {
    /// The instance whose `VMContext` is `vmctx`.
    pub(crate) fn from_vmctx(vmctx: *mut u8) -> *mut InstanceData {
        // SAFETY: slot 0 of every VMContext holds its instance (written at instantiation).
        unsafe { *(vmctx as *const *mut InstanceData) }
    }

    fn store(&mut self) -> &mut StoreInner {
        // SAFETY: the store owns and outlives the instance; the runtime is single-threaded
        // and no other reference to the store is used while a builtin or host call runs.
        unsafe { &mut *self.store }
    }

    /// Memory 0.
    pub(crate) fn memory_mut(&mut self) -> Option<&mut LinearMemory> {
        let index = *self.memories.first()?;
        Some(&mut self.store().memories[index as usize])
    }

    fn table(&mut self, t: u32) -> &mut TableData {
        let index = self.tables[t as usize] as usize;
        &mut self.store().tables[index]
    }
}

/// Encodes a value as a raw slot of store `store`.
pub(crate) fn val_to_raw(store: &StoreInner, v: Val) -> Result<ValRaw, CallError> {
    Ok(match v {
        Val::I32(x) => x as u32 as ValRaw,
        Val::I64(x) => x as u64 as ValRaw,
        Val::F32(x) => x as ValRaw,
        Val::F64(x) => x as ValRaw,
        Val::ExternRef(r) => r.map_or(0, |r| r.0.get()) as ValRaw,
        Val::FuncRef(None) => 0,
        Val::FuncRef(Some(f)) if f.store != store.id => return Err(CallError::BadValue("function from another store")),
        Val::FuncRef(Some(Func { kind: FuncKind::Ref(p), .. })) => p.as_ptr() as usize as ValRaw,
        Val::FuncRef(Some(_)) => {
            return Err(CallError::BadValue("a host function must be imported by a module before use as a reference"))
        }
    })
}

impl Store {
    /// Instantiates `module` with `imports` given in the module's import order.
    pub fn instantiate(&mut self, module: &Module, imports: &[Extern]) -> Result<Instance, InstantiateError> {
        let m = module.inner().clone();
        if !m.engine.same(&self.inner.engine) {
            return Err(InstantiateError::WrongEngine);
        }
        let info = &m.info;
        if imports.len() != info.imports.len() {
            return Err(InstantiateError::ImportCount { expected: info.imports.len(), got: imports.len() });
        }
        self.check_imports(module, imports)?;
        self.inner.registry.register(&m);

        let store_ptr: *mut StoreInner = &mut *self.inner;
        let id = self.inner.id;
        let engine = self.inner.engine.clone();
        let type_ids: Box<[u32]> = info.types.iter().map(|t| engine.signature_id(t)).collect();

        // Memories, tables and globals: imported ones are shared, defined ones are created.
        let mut memories = Vec::new();
        let mut tables = Vec::new();
        let mut globals = Vec::new();
        let mut imported_funcs = Vec::new();
        for e in imports {
            match e {
                Extern::Func(f) => imported_funcs.push(*f),
                Extern::Memory(mem) => memories.push(mem.index),
                Extern::Table(t) => tables.push(t.index),
                Extern::Global(g) => globals.push(g.index),
            }
        }
        for ty in &info.memories[info.num_imported_memories as usize..] {
            memories.push(self.new_memory(*ty)?.index);
        }

        let num_funcs = info.functions.len();
        let num_host = imported_funcs.iter().filter(|f| matches!(f.kind, FuncKind::Host(_))).count();
        let mut data = Box::new(InstanceData {
            module: m.clone(),
            store: store_ptr,
            vmctx: vec![0u64; VMOffsets::new(info).size() / 8].into_boxed_slice(),
            type_ids,
            func_ref_storage: Box::new([]),
            func_refs: vec![std::ptr::null(); num_funcs].into_boxed_slice(),
            memories,
            tables: Vec::new(),
            globals: Vec::new(),
            elements: Vec::new(),
            data_dropped: vec![false; info.data.len()],
        });
        let vmctx = data.vmctx.as_mut_ptr() as *mut u8;

        // Function references: imports first (wasm ones shared, host ones wrapped), then ours.
        let mut storage = Vec::with_capacity(info.num_defined_funcs() + num_host);
        let mut refs: Vec<Option<usize>> = Vec::with_capacity(num_funcs); // index into storage
        let mut shared: Vec<*const VMFuncRef> = Vec::with_capacity(num_funcs);
        for (i, f) in imported_funcs.iter().enumerate() {
            let ty = info.functions[i];
            match f.kind {
                FuncKind::Ref(p) => {
                    refs.push(None);
                    shared.push(p.as_ptr());
                }
                FuncKind::Host(h) => {
                    let host = &mut *self.inner.host_funcs[h as usize] as *mut crate::func::HostFuncData as *mut u8;
                    storage.push(VMFuncRef {
                        wasm_call: m.code_address(m.host_trampolines[ty.index()].expect("checked at load")),
                        vmctx: host,
                        array_call: m.code_address(m.array_trampolines[ty.index()].expect("checked at load")),
                        type_id: data.type_ids[ty.index()],
                    });
                    refs.push(Some(storage.len() - 1));
                    shared.push(std::ptr::null());
                }
            }
        }
        for d in 0..info.num_defined_funcs() {
            let ty = info.functions[info.num_imported_funcs as usize + d];
            storage.push(VMFuncRef {
                wasm_call: m.func_address(DefinedFuncIndex(d as u32)),
                vmctx,
                array_call: m.code_address(m.array_trampolines[ty.index()].expect("checked at load")),
                type_id: data.type_ids[ty.index()],
            });
            refs.push(Some(storage.len() - 1));
            shared.push(std::ptr::null());
        }
        data.func_ref_storage = storage.into_boxed_slice();
        for (i, r) in refs.iter().enumerate() {
            data.func_refs[i] = match r {
                Some(s) => &data.func_ref_storage[*s] as *const VMFuncRef,
                None => shared[i],
            };
        }

        // Globals (initialisers may read earlier globals and take function references).
        data.globals = globals;
        for (d, (ty, init)) in
            info.globals[info.num_imported_globals as usize..].iter().zip(&info.global_inits).enumerate()
        {
            let _ = d;
            let bits = eval_const(&self.inner, &data, *init);
            self.inner.globals.push(Box::new(GlobalData { ty: *ty, value: VMGlobal { bits } }));
            data.globals.push(self.inner.globals.len() as u32 - 1);
        }
        // Tables.
        data.tables = tables;
        for (ty, init) in info.tables[info.num_imported_tables as usize..].iter().zip(&info.table_inits) {
            let raw = init.map_or(0, |e| eval_const(&self.inner, &data, e) as usize);
            self.inner.tables.push(Box::new(TableData::new(*ty, raw)));
            data.tables.push(self.inner.tables.len() as u32 - 1);
        }

        // The VMContext.
        let offsets = VMOffsets::new(info);
        let set = |vmctx: &mut [u64], offset: i32, value: usize| vmctx[offset as usize / 8] = value as u64;
        let instance_ptr: *mut InstanceData = &mut *data;
        set(&mut data.vmctx, VMCTX_INSTANCE, instance_ptr as usize);
        set(&mut data.vmctx, VMCTX_LIMITS, &self.inner.limits as *const VMLimits as usize);
        set(&mut data.vmctx, VMCTX_BUILTINS, &BUILTINS as *const BuiltinTable as usize);
        let type_ids_ptr = data.type_ids.as_ptr() as usize;
        set(&mut data.vmctx, VMCTX_TYPE_IDS, type_ids_ptr);
        if let Some(mem) = data.memories.first() {
            let mem = &self.inner.memories[*mem as usize];
            set(&mut data.vmctx, VMCTX_MEMORY_BASE, mem.base() as usize);
            set(&mut data.vmctx, VMCTX_MEMORY_DEF, mem.definition() as usize);
        }
        let func_refs_ptr = data.func_refs.as_ptr() as usize;
        set(&mut data.vmctx, VMCTX_FUNC_REFS, func_refs_ptr);
        for t in 0..data.tables.len() {
            let def = &mut self.inner.tables[data.tables[t] as usize].def as *mut VMTableDefinition;
            set(&mut data.vmctx, offsets.table(TableIndex(t as u32)), def as usize);
        }
        for g in 0..data.globals.len() {
            let global = &mut self.inner.globals[data.globals[g] as usize].value as *mut VMGlobal;
            set(&mut data.vmctx, offsets.global(GlobalIndex(g as u32)), global as usize);
        }

        // Element segments: evaluated now; active ones copied, then dropped like declared ones.
        data.elements = info
            .elements
            .iter()
            .map(|seg| {
                Some(seg.items.iter().map(|e| eval_const(&self.inner, &data, *e) as usize).collect::<Box<[usize]>>())
            })
            .collect();
        self.inner.instances.push(data);
        let index = self.inner.instances.len() as u32 - 1;
        let instance = Instance { store: id, index };
        let data: *mut InstanceData = &mut *self.inner.instances[index as usize];
        // SAFETY: boxed in the store, which we hold mutably; builtins reach it the same way.
        let data = unsafe { &mut *data };

        for (i, seg) in info.elements.iter().enumerate() {
            match &seg.mode {
                SegmentMode::Active { index, offset } => {
                    let offset = eval_const(&self.inner, data, *offset) as u32;
                    let len = data.elements[i].as_ref().map_or(0, |e| e.len()) as u32;
                    if table_init(data, *index, i as u32, offset, 0, len) != 0 {
                        return Err(InstantiateError::Trap(Trap::new(TrapKind::TableOutOfBounds)));
                    }
                    data.elements[i] = None;
                }
                SegmentMode::Declared => data.elements[i] = None,
                SegmentMode::Passive => {}
            }
        }
        for (i, seg) in info.data.iter().enumerate() {
            if let SegmentMode::Active { offset, .. } = &seg.mode {
                let offset = eval_const(&self.inner, data, *offset) as u32;
                if memory_init(data, i as u32, offset, 0, seg.bytes.len() as u32) != 0 {
                    return Err(InstantiateError::Trap(Trap::new(TrapKind::MemoryOutOfBounds)));
                }
                data.data_dropped[i] = true;
            }
        }
        if let Some(start) = info.start {
            let f = self.instance_func(instance, start);
            self.call(f, &[]).map_err(|e| match e {
                CallError::Trap(t) => InstantiateError::Trap(t),
                other => InstantiateError::Start(other),
            })?;
        }
        Ok(instance)
    }

    fn check_imports(&self, module: &Module, imports: &[Extern]) -> Result<(), InstantiateError> {
        let info = module.info();
        for (import, e) in info.imports.iter().zip(imports) {
            let found = self.extern_type(*e);
            let expected = match &import.kind {
                ImportKind::Func(t) => ExternType::Func(info.types[t.index()].clone()),
                ImportKind::Table(t) => ExternType::Table(*t),
                ImportKind::Memory(m) => ExternType::Memory(*m),
                ImportKind::Global(g) => ExternType::Global(*g),
            };
            let ok = match (&expected, &found) {
                (ExternType::Func(a), ExternType::Func(b)) => a == b,
                (ExternType::Table(a), ExternType::Table(b)) => a.element == b.element && b.limits.matches(&a.limits),
                (ExternType::Memory(a), ExternType::Memory(b)) => b.limits.matches(&a.limits),
                (ExternType::Global(a), ExternType::Global(b)) => a == b,
                _ => false,
            };
            if !ok {
                return Err(InstantiateError::ImportType {
                    module: import.module.clone(),
                    name: import.name.clone(),
                    expected,
                    found,
                });
            }
        }
        Ok(())
    }

    fn instance_func(&self, instance: Instance, f: FuncIndex) -> Func {
        let data = &self.inner.instances[instance.index as usize];
        let p = NonNull::new(data.func_refs[f.index()] as *mut VMFuncRef).expect("every function has a reference");
        Func { store: self.inner.id, kind: FuncKind::Ref(p) }
    }

    /// The export `name` of `instance`.
    pub fn get_export(&self, instance: Instance, name: &str) -> Option<Extern> {
        assert_eq!(instance.store, self.inner.id, "handle used with another store");
        let data = &self.inner.instances[instance.index as usize];
        let id = self.inner.id;
        Some(match data.module.info.export(name)? {
            EntityIndex::Func(f) => Extern::Func(self.instance_func(instance, f)),
            EntityIndex::Table(t) => Extern::Table(Table { store: id, index: data.tables[t.index()] }),
            EntityIndex::Memory(m) => Extern::Memory(Memory { store: id, index: data.memories[m.index()] }),
            EntityIndex::Global(g) => Extern::Global(Global { store: id, index: data.globals[g.index()] }),
        })
    }

    /// The exported function `name`.
    pub fn get_func(&self, instance: Instance, name: &str) -> Option<Func> {
        match self.get_export(instance, name)? {
            Extern::Func(f) => Some(f),
            _ => None,
        }
    }

    /// The names of `instance`'s exports.
    pub fn export_names(&self, instance: Instance) -> Vec<String> {
        self.inner.instances[instance.index as usize].module.info.exports.iter().map(|(n, _)| n.clone()).collect()
    }
}

fn eval_const(store: &StoreInner, data: &InstanceData, e: ConstExpr) -> ValRaw {
    match e {
        ConstExpr::I32(v) => v as u32 as ValRaw,
        ConstExpr::I64(v) => v as u64 as ValRaw,
        ConstExpr::F32(v) => v as ValRaw,
        ConstExpr::F64(v) => v as ValRaw,
        ConstExpr::RefNull => 0,
        ConstExpr::RefFunc(f) => data.func_refs[f.index()] as usize as ValRaw,
        ConstExpr::GlobalGet(g) => store.globals[data.globals[g.index()] as usize].value.bits,
    }
}

// ----- builtins -------------------------------------------------------------------------------

/// The builtin table compiled code calls through (`VMCTX_BUILTINS`), in [`Builtin`] order.
#[repr(C)]
pub(crate) struct BuiltinTable {
    memory_grow: unsafe extern "C" fn(*mut u8, u32) -> u32,
    memory_fill: unsafe extern "C" fn(*mut u8, u32, u32, u32) -> u32,
    memory_copy: unsafe extern "C" fn(*mut u8, u32, u32, u32) -> u32,
    memory_init: unsafe extern "C" fn(*mut u8, u32, u32, u32, u32) -> u32,
    data_drop: unsafe extern "C" fn(*mut u8, u32),
    table_grow: unsafe extern "C" fn(*mut u8, u32, u64, u32) -> u32,
    table_fill: unsafe extern "C" fn(*mut u8, u32, u32, u64, u32) -> u32,
    table_copy: unsafe extern "C" fn(*mut u8, u32, u32, u32, u32, u32) -> u32,
    table_init: unsafe extern "C" fn(*mut u8, u32, u32, u32, u32, u32) -> u32,
    elem_drop: unsafe extern "C" fn(*mut u8, u32),
}

const _: () = assert!(std::mem::size_of::<BuiltinTable>() == 8 * BUILTIN_COUNT);

static BUILTINS: BuiltinTable = BuiltinTable {
    memory_grow: builtin_memory_grow,
    memory_fill: builtin_memory_fill,
    memory_copy: builtin_memory_copy,
    memory_init: builtin_memory_init,
    data_drop: builtin_data_drop,
    table_grow: builtin_table_grow,
    table_fill: builtin_table_fill,
    table_copy: builtin_table_copy,
    table_init: builtin_table_init,
    elem_drop: builtin_elem_drop,
};

/// The instance behind a builtin's `vmctx` argument.
///
/// # Safety
/// `vmctx` must be a live instance's context (compiled code passes its own).
unsafe fn instance<'a>(vmctx: *mut u8) -> &'a mut InstanceData {
    // SAFETY: guaranteed by the caller; builtins run on the store's thread while no other
    // reference to the instance is in use.
    unsafe { &mut *InstanceData::from_vmctx(vmctx) }
}

/// `Some(start..start+len)` if it lies within `size`.
fn range(start: u32, len: u32, size: usize) -> Option<std::ops::Range<usize>> {
    let end = (start as usize).checked_add(len as usize)?;
    (end <= size).then_some(start as usize..end)
}

unsafe extern "C" fn builtin_memory_grow(vmctx: *mut u8, delta: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    data.memory_mut().and_then(|m| m.grow(delta)).unwrap_or(u32::MAX)
}

unsafe extern "C" fn builtin_memory_fill(vmctx: *mut u8, dst: u32, value: u32, len: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    let Some(mem) = data.memory_mut() else { return 1 };
    let bytes = mem.data_mut();
    match range(dst, len, bytes.len()) {
        Some(r) => {
            bytes[r].fill(value as u8);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn builtin_memory_copy(vmctx: *mut u8, dst: u32, src: u32, len: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    let Some(mem) = data.memory_mut() else { return 1 };
    let bytes = mem.data_mut();
    match (range(dst, len, bytes.len()), range(src, len, bytes.len())) {
        (Some(d), Some(s)) => {
            bytes.copy_within(s, d.start);
            0
        }
        _ => 1,
    }
}

fn memory_init(data: &mut InstanceData, segment: u32, dst: u32, src: u32, len: u32) -> u32 {
    let module = data.module.clone();
    let seg: &[u8] = if data.data_dropped[segment as usize] { &[] } else { &module.info.data[segment as usize].bytes };
    let Some(s) = range(src, len, seg.len()) else { return 1 };
    let Some(mem) = data.memory_mut() else { return 1 };
    let bytes = mem.data_mut();
    match range(dst, len, bytes.len()) {
        Some(d) => {
            bytes[d].copy_from_slice(&seg[s]);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn builtin_memory_init(vmctx: *mut u8, segment: u32, dst: u32, src: u32, len: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    memory_init(unsafe { instance(vmctx) }, segment, dst, src, len)
}

unsafe extern "C" fn builtin_data_drop(vmctx: *mut u8, segment: u32) {
    // SAFETY: called by compiled code with its own context.
    unsafe { instance(vmctx) }.data_dropped[segment as usize] = true;
}

unsafe extern "C" fn builtin_table_grow(vmctx: *mut u8, table: u32, init: u64, delta: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    data.table(table).grow(delta, init as usize).unwrap_or(u32::MAX)
}

unsafe extern "C" fn builtin_table_fill(vmctx: *mut u8, table: u32, dst: u32, value: u64, len: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let t = unsafe { instance(vmctx) }.table(table);
    match range(dst, len, t.elements.len()) {
        Some(r) => {
            t.elements[r].fill(value as usize);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn builtin_table_copy(
    vmctx: *mut u8,
    dst_table: u32,
    src_table: u32,
    dst: u32,
    src: u32,
    len: u32,
) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    let src_len = data.table(src_table).elements.len();
    let dst_len = data.table(dst_table).elements.len();
    let (Some(s), Some(d)) = (range(src, len, src_len), range(dst, len, dst_len)) else { return 1 };
    if data.tables[dst_table as usize] == data.tables[src_table as usize] {
        data.table(dst_table).elements.copy_within(s, d.start);
    } else {
        let items: Vec<usize> = data.table(src_table).elements[s].to_vec();
        data.table(dst_table).elements[d].copy_from_slice(&items);
    }
    0
}

fn table_init(data: &mut InstanceData, table: u32, segment: u32, dst: u32, src: u32, len: u32) -> u32 {
    let items: Vec<usize> = {
        let seg = data.elements[segment as usize].as_deref().unwrap_or(&[]);
        match range(src, len, seg.len()) {
            Some(s) => seg[s].to_vec(),
            None => return 1,
        }
    };
    let t = data.table(table);
    match range(dst, len, t.elements.len()) {
        Some(d) => {
            t.elements[d].copy_from_slice(&items);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn builtin_table_init(vmctx: *mut u8, table: u32, segment: u32, dst: u32, src: u32, len: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    table_init(unsafe { instance(vmctx) }, table, segment, dst, src, len)
}

unsafe extern "C" fn builtin_elem_drop(vmctx: *mut u8, segment: u32) {
    // SAFETY: called by compiled code with its own context.
    unsafe { instance(vmctx) }.elements[segment as usize] = None;
}
