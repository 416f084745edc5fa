//! Instantiation: building an instance's `VMContext` from a module and its imports, and
//! applying its element and data segments (the store then runs its start function); the
//! lookups of an instance's exports.

use crate::builtins::{memory_init, table_init, BuiltinTable, BUILTINS};
use crate::exceptions::TagData;
use crate::func_refs::FuncRefs;
use crate::module::Module;
use crate::module_info::{ConstExpr, ConstOp, EntityIndex, ImportKind, SegmentMode};
use crate::state::{GlobalData, InstanceData, StoreInner, TableData};
use crate::store::{CallError, MAX_TABLE_ELEMENTS};
use crate::table_image::LazyElements;
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
    /// A table's initial size is beyond what the store allows.
    #[error("a table of {min} elements is larger than the limit of {limit}")]
    TableTooLarge {
        /// The initial size the module declares.
        min: u32,
        /// [`crate::store::MAX_TABLE_ELEMENTS`].
        limit: u32,
    },
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

        // Memories, tables and globals: imported ones are shared, defined ones are created.
        let mut memories = Vec::new();
        let mut tables = Vec::new();
        let mut globals = Vec::new();
        let mut tags = Vec::new();
        let mut imported_funcs = Vec::new();
        for e in imports {
            match e {
                Extern::Func(f) => imported_funcs.push(*f),
                Extern::Memory(mem) => memories.push(mem.index),
                Extern::Table(t) => tables.push(t.index),
                Extern::Global(g) => globals.push(g.index),
                Extern::Tag(t) => tags.push(t.index),
            }
        }
        // Defined tags: new identities, named for reports by their export name or index.
        for (x, ty) in info.tags.iter().enumerate().skip(info.num_imported_tags as usize) {
            let name = info
                .exports
                .iter()
                .find(|(_, e)| *e == EntityIndex::Tag(TagIndex(x as u32)))
                .map_or_else(|| format!("{x}"), |(n, _)| format!("'{n}'"));
            self.tags.push(Box::new(TagData { ty: m.signature(*ty), name }));
            tags.push(self.tags.len() as u32 - 1);
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
            func_refs: FuncRefs::new(num_funcs, info.num_imported_funcs, num_host),
            memories,
            tables: Vec::new(),
            globals: Vec::new(),
            tags,
            elements: Vec::new(),
            data_dropped: vec![false; info.data.len()],
        });
        // Function references: imports now (wasm ones shared, host ones wrapped), the
        // instance's own on first use (see `crate::func_refs`).
        for (i, f) in imported_funcs.iter().enumerate() {
            let ty = info.functions[i];
            match f.kind {
                FuncKind::Ref(p) => data.func_refs.import_shared(FuncIndex(i as u32), p.as_ptr()),
                FuncKind::Host(h) => {
                    let host = &mut *self.host_funcs[h as usize] as *mut crate::state::HostFuncData as *mut u8;
                    let r = VMFuncRef {
                        wasm_call: m.code_address(m.host_trampolines[ty.index()].expect("checked at load")),
                        vmctx: host,
                        array_call: m.code_address(m.array_trampolines[ty.index()].expect("checked at load")),
                        type_id: m.type_ids[ty.index()],
                    };
                    data.func_refs.import_host(FuncIndex(i as u32), r);
                }
            }
        }

        // Globals (initialisers may read earlier globals and take function references).
        data.globals = globals;
        for (ty, init) in info.globals[info.num_imported_globals as usize..].iter().zip(&info.global_inits) {
            let bits = eval_const(self, &data, init);
            let ty = m.canonical_global(*ty);
            self.globals.push(Box::new(GlobalData { ty, value: VMGlobal { bits } }));
            data.globals.push(self.globals.len() as u32 - 1);
        }
        // Tables: filled on first use from the module's images if it has them (see
        // `crate::table_image`), otherwise by the active segments below.
        data.tables = tables;
        let index = self.instances.len() as u32;
        let defined_tables = info.tables[info.num_imported_tables as usize..].iter().zip(&info.table_inits);
        for (d, (ty, init)) in defined_tables.enumerate() {
            if ty.limits.min > MAX_TABLE_ELEMENTS {
                return Err(InstantiateError::TableTooLarge { min: ty.limits.min, limit: MAX_TABLE_ELEMENTS });
            }
            let ty = m.canonical_table(*ty);
            let table = match m.table_images.as_ref().and_then(|i| i.table(d)) {
                Some(image) => TableData::lazy(ty, LazyElements { image: image.clone(), owner: index }),
                None => TableData::new(ty, init.as_ref().map_or(0, |e| eval_const(self, &data, e) as usize)),
            };
            self.tables.push(Box::new(table));
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
        // The module's ids: `data.module` keeps them alive as long as the instance.
        let type_ids_ptr = data.module.type_ids.as_ptr() as usize;
        set(&mut data.vmctx, VMCTX_TYPE_IDS, type_ids_ptr);
        for m in 0..data.memories.len() {
            let mem = &self.memories[data.memories[m] as usize];
            let index = MemoryIndex(m as u32);
            set(&mut data.vmctx, offsets.memory_base(index), mem.base() as usize);
            set(&mut data.vmctx, offsets.memory_def(index), mem.definition() as usize);
        }
        let func_refs_ptr = data.func_refs.array() as usize;
        set(&mut data.vmctx, VMCTX_FUNC_REFS, func_refs_ptr);
        for t in 0..data.tables.len() {
            let def = &mut self.tables[data.tables[t] as usize].def as *mut VMTableDefinition;
            set(&mut data.vmctx, offsets.table(TableIndex(t as u32)), def as usize);
        }
        for g in 0..data.globals.len() {
            let global = &mut self.globals[data.globals[g] as usize].value as *mut VMGlobal;
            set(&mut data.vmctx, offsets.global(GlobalIndex(g as u32)), global as usize);
        }

        for (x, t) in data.tags.iter().enumerate() {
            let identity = self.tags[*t as usize].identity();
            set(&mut data.vmctx, offsets.tag(TagIndex(x as u32)), identity as usize);
        }

        // Element segments: passive ones evaluated now; active ones too, to be copied into
        // their tables below, unless the tables' images hold them; declared ones dropped.
        let imaged = m.table_images.is_some();
        data.elements = info
            .elements
            .iter()
            .map(|seg| {
                let needed = match seg.mode {
                    SegmentMode::Passive => true,
                    SegmentMode::Active { .. } => !imaged,
                    SegmentMode::Declared => false,
                };
                needed.then(|| seg.items.iter().map(|e| eval_const(self, &data, e) as usize).collect::<Box<[usize]>>())
            })
            .collect();
        self.instances.push(data);
        debug_assert_eq!(index, self.instances.len() as u32 - 1);
        let instance = Instance { store: id, index };
        let data: *mut InstanceData = &mut *self.instances[index as usize];
        // SAFETY: boxed in the store; `self` is not used while `data` is (the segments' offsets
        // are evaluated from the globals through `store`, below).
        let data = unsafe { &mut *data };

        for (i, seg) in info.elements.iter().enumerate().filter(|_| !imaged) {
            if let SegmentMode::Active { index, offset } = &seg.mode {
                // An i32 offset (a 32-bit table's) is zero-extended, an i64 one is as it is.
                let offset = eval_const(self, data, offset) as u64;
                let len = data.elements[i].as_ref().map_or(0, |e| e.len()) as u32;
                if table_init(data, *index, i as u32, offset, 0, len) != 0 {
                    return Err(InstantiateError::Trap(Trap::new(TrapKind::TableOutOfBounds)));
                }
                data.elements[i] = None;
            }
        }
        if let Some(image) = &m.image {
            // Every active segment fits memory 0, a memory of this instance, unseen by anyone
            // yet (checked when the image was built): applying the image is applying them all.
            let memory = data.memory_mut(0).expect("an image implies a defined memory 0");
            image.apply(memory)?;
        }
        for (i, seg) in info.data.iter().enumerate().filter(|_| m.image.is_none()) {
            if let SegmentMode::Active { index, offset } = &seg.mode {
                // An i32 offset (a 32-bit memory's) is zero-extended, an i64 one is as it is.
                let offset = eval_const(self, data, offset) as u64;
                if memory_init(data, *index, i as u32, offset, 0, seg.bytes.len() as u32) != 0 {
                    return Err(InstantiateError::Trap(Trap::new(TrapKind::MemoryOutOfBounds)));
                }
            }
        }
        // Applied, the active segments are dropped (CPython has 24,000: one copy, no walk).
        data.data_dropped.copy_from_slice(&m.active_data);
        let start = info.start.map(|start| self.instance_func(instance, start));
        Ok((instance, start))
    }

    /// Checks each import against what the module declares, in the engine's canonical types:
    /// a function of the same signature (every function type is final), a tag of the same
    /// type, a table of the same element type with fitting limits, a memory with fitting
    /// limits, and a global of the same type if mutable, of a subtype if not.
    fn check_imports(&self, module: &Module, imports: &[Extern]) -> Result<(), InstantiateError> {
        let m = module.inner();
        let info = &m.info;
        for (import, e) in info.imports.iter().zip(imports) {
            let found = self.extern_type(*e);
            let expected = m.import_type(&import.kind);
            let ok = match (&import.kind, e, &expected, &found) {
                (ImportKind::Func(t), Extern::Func(f), ..) => self.func_type_id(*f) == Some(m.type_ids[t.index()]),
                (.., ExternType::Table(a), ExternType::Table(b)) => {
                    a.element == b.element && a.table64 == b.table64 && b.limits.matches(&a.limits)
                }
                (.., ExternType::Memory(a), ExternType::Memory(b)) => {
                    a.memory64 == b.memory64 && b.limits.matches(&a.limits)
                }
                (.., ExternType::Global(a), ExternType::Global(b)) => {
                    a.mutable == b.mutable && if a.mutable { a.ty == b.ty } else { b.ty.matches(a.ty) }
                }
                (.., ExternType::Tag(a), ExternType::Tag(b)) => a == b,
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
        let p = NonNull::new(data.func_ref(f) as *mut VMFuncRef).expect("every function has a reference");
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
            EntityIndex::Tag(t) => Extern::Tag(Tag { store: id, index: data.tags[t.index()] }),
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
        ConstExpr::RefFunc(f) => data.func_ref(f) as usize as ValRaw,
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
