//! Instantiation: building an instance's `VMContext` from a module and its imports, and
//! applying its element and data segments (the store then runs its start function); the
//! lookups of an instance's exports.

use crate::builtins::{memory_init, table_init, BuiltinTable, BUILTINS};
use crate::module::Module;
use crate::module_info::{ConstExpr, ConstOp, EntityIndex, ImportKind, SegmentMode};
use crate::state::{GlobalData, InstanceData, StoreInner, TableData};
use crate::store::CallError;
use crate::trap::{Trap, TrapKind};
use crate::types::*;
use crate::values::*;
use crate::vm::vmctx::*;
use std::ptr::NonNull;

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

impl StoreInner {
    /// Instantiates `module` with `imports` given in the module's import order, up to (not
    /// including) its start function, which it returns for the caller to run.
    ///
    /// `store` is the raw pointer this state was reached through (the one every pointer
    /// back to the store must derive from: see [`crate::state`]).
    pub(crate) fn instantiate(
        &mut self,
        store: *mut StoreInner,
        module: &Module,
        imports: &[Extern],
    ) -> Result<(Instance, Option<Func>), InstantiateError> {
        let m = module.inner().clone();
        if !m.engine.same(&self.engine) {
            return Err(InstantiateError::WrongEngine);
        }
        let info = &m.info;
        if imports.len() != info.imports.len() {
            return Err(InstantiateError::ImportCount { expected: info.imports.len(), got: imports.len() });
        }
        self.check_imports(module, imports)?;
        self.registry.register(&m);

        let id = self.id;
        let engine = self.engine.clone();
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
            store,
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
                    let host = &mut *self.host_funcs[h as usize] as *mut crate::state::HostFuncData as *mut u8;
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
            let bits = eval_const(self, &data, init);
            self.globals.push(Box::new(GlobalData { ty: *ty, value: VMGlobal { bits } }));
            data.globals.push(self.globals.len() as u32 - 1);
        }
        // Tables.
        data.tables = tables;
        for (ty, init) in info.tables[info.num_imported_tables as usize..].iter().zip(&info.table_inits) {
            let raw = init.as_ref().map_or(0, |e| eval_const(self, &data, e) as usize);
            self.tables.push(Box::new(TableData::new(*ty, raw)));
            data.tables.push(self.tables.len() as u32 - 1);
        }

        // The VMContext.
        let offsets = VMOffsets::new(info);
        let set = |vmctx: &mut [u64], offset: i32, value: usize| vmctx[offset as usize / 8] = value as u64;
        let instance_ptr: *mut InstanceData = &mut *data;
        set(&mut data.vmctx, VMCTX_INSTANCE, instance_ptr as usize);
        // SAFETY: `store` points to this live state; the address is derived from it, not from
        // `self` (compiled code reads the limits while the store writes them).
        let limits = unsafe { std::ptr::addr_of!((*store).limits) };
        set(&mut data.vmctx, VMCTX_LIMITS, limits as usize);
        set(&mut data.vmctx, VMCTX_BUILTINS, &BUILTINS as *const BuiltinTable as usize);
        let type_ids_ptr = data.type_ids.as_ptr() as usize;
        set(&mut data.vmctx, VMCTX_TYPE_IDS, type_ids_ptr);
        if let Some(mem) = data.memories.first() {
            let mem = &self.memories[*mem as usize];
            set(&mut data.vmctx, VMCTX_MEMORY_BASE, mem.base() as usize);
            set(&mut data.vmctx, VMCTX_MEMORY_DEF, mem.definition() as usize);
        }
        let func_refs_ptr = data.func_refs.as_ptr() as usize;
        set(&mut data.vmctx, VMCTX_FUNC_REFS, func_refs_ptr);
        for t in 0..data.tables.len() {
            let def = &mut self.tables[data.tables[t] as usize].def as *mut VMTableDefinition;
            set(&mut data.vmctx, offsets.table(TableIndex(t as u32)), def as usize);
        }
        for g in 0..data.globals.len() {
            let global = &mut self.globals[data.globals[g] as usize].value as *mut VMGlobal;
            set(&mut data.vmctx, offsets.global(GlobalIndex(g as u32)), global as usize);
        }

        // Element segments: evaluated now; active ones copied, then dropped like declared ones.
        data.elements = info
            .elements
            .iter()
            .map(|seg| Some(seg.items.iter().map(|e| eval_const(self, &data, e) as usize).collect::<Box<[usize]>>()))
            .collect();
        self.instances.push(data);
        let index = self.instances.len() as u32 - 1;
        let instance = Instance { store: id, index };
        let data: *mut InstanceData = &mut *self.instances[index as usize];
        // SAFETY: boxed in the store; `self` is not used while `data` is (the segments' offsets
        // are evaluated from the globals through `store`, below).
        let data = unsafe { &mut *data };

        for (i, seg) in info.elements.iter().enumerate() {
            match &seg.mode {
                SegmentMode::Active { index, offset } => {
                    let offset = eval_const(self, data, offset) as u32;
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
        if let Some(image) = &m.image {
            // Every active segment fits memory 0, a memory of this instance, unseen by anyone
            // yet (checked when the image was built): applying the image is applying them all.
            let memory = data.memory_mut().expect("an image implies a defined memory 0");
            image.apply(memory)?;
            for (i, seg) in info.data.iter().enumerate() {
                data.data_dropped[i] |= matches!(seg.mode, SegmentMode::Active { .. });
            }
        }
        for (i, seg) in info.data.iter().enumerate().filter(|_| m.image.is_none()) {
            if let SegmentMode::Active { offset, .. } = &seg.mode {
                let offset = eval_const(self, data, offset) as u32;
                if memory_init(data, i as u32, offset, 0, seg.bytes.len() as u32) != 0 {
                    return Err(InstantiateError::Trap(Trap::new(TrapKind::MemoryOutOfBounds)));
                }
                data.data_dropped[i] = true;
            }
        }
        let start = info.start.map(|start| self.instance_func(instance, start));
        Ok((instance, start))
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

    pub(crate) fn instance_func(&self, instance: Instance, f: FuncIndex) -> Func {
        let data = &self.instances[instance.index as usize];
        let p = NonNull::new(data.func_refs[f.index()] as *mut VMFuncRef).expect("every function has a reference");
        Func { store: self.id, kind: FuncKind::Ref(p) }
    }

    /// The export `name` of `instance`.
    pub(crate) fn get_export(&self, instance: Instance, name: &str) -> Option<Extern> {
        assert_eq!(instance.store, self.id, "handle used with another store");
        let data = &self.instances[instance.index as usize];
        let id = self.id;
        Some(match data.module.info.export(name)? {
            EntityIndex::Func(f) => Extern::Func(self.instance_func(instance, f)),
            EntityIndex::Table(t) => Extern::Table(Table { store: id, index: data.tables[t.index()] }),
            EntityIndex::Memory(m) => Extern::Memory(Memory { store: id, index: data.memories[m.index()] }),
            EntityIndex::Global(g) => Extern::Global(Global { store: id, index: data.globals[g.index()] }),
        })
    }

    /// The names of `instance`'s exports.
    pub(crate) fn export_names(&self, instance: Instance) -> Vec<String> {
        self.instances[instance.index as usize].module.info.exports.iter().map(|(n, _)| n.clone()).collect()
    }
}

fn eval_const(store: &StoreInner, data: &InstanceData, e: &ConstExpr) -> ValRaw {
    let global = |g: GlobalIndex| store.globals[data.globals[g.index()] as usize].value.bits;
    match *e {
        ConstExpr::I32(v) => v as u32 as ValRaw,
        ConstExpr::I64(v) => v as u64 as ValRaw,
        ConstExpr::F32(v) => v as ValRaw,
        ConstExpr::F64(v) => v as ValRaw,
        ConstExpr::V128(v) => v,
        ConstExpr::RefNull => 0,
        ConstExpr::RefFunc(f) => data.func_refs[f.index()] as usize as ValRaw,
        ConstExpr::GlobalGet(g) => global(g),
        ConstExpr::Extended(ref ops) => eval_extended(ops, global),
    }
}

/// Runs an extended constant expression (well-formed: checked when it was parsed or loaded):
/// 32-bit results are zero-extended, as `eval_const` gives them.
fn eval_extended(ops: &[ConstOp], global: impl Fn(GlobalIndex) -> ValRaw) -> ValRaw {
    let mut stack: Vec<u64> = Vec::with_capacity(ops.len());
    for op in ops {
        let value = match *op {
            ConstOp::I32(v) => u64::from(v as u32),
            ConstOp::I64(v) => v as u64,
            ConstOp::GlobalGet(g) => global(g) as u64,
            binary => {
                let (b, a) = (stack.pop().unwrap_or(0), stack.pop().unwrap_or(0));
                let (a32, b32) = (a as u32, b as u32);
                match binary {
                    ConstOp::I32Add => u64::from(a32.wrapping_add(b32)),
                    ConstOp::I32Sub => u64::from(a32.wrapping_sub(b32)),
                    ConstOp::I32Mul => u64::from(a32.wrapping_mul(b32)),
                    ConstOp::I64Add => a.wrapping_add(b),
                    ConstOp::I64Sub => a.wrapping_sub(b),
                    ConstOp::I64Mul => a.wrapping_mul(b),
                    ConstOp::I32(_) | ConstOp::I64(_) | ConstOp::GlobalGet(_) => unreachable!("a value"),
                }
            }
        };
        stack.push(value);
    }
    ValRaw::from(stack.pop().unwrap_or(0))
}
