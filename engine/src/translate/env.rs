//! The translator's one view of the runtime layout. Every access to the `VMContext`,
//! memories, tables, globals, function references and builtins goes through a method here,
//! so the opcode translation (`code.rs`) knows nothing of offsets.

use super::exceptions::try_call;
use crate::module_info::ModuleInfo;
use crate::trap::TrapKind;
use crate::types::*;
use crate::vm::memory::BoundsStrategy;
use crate::vm::vmctx::*;
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types, AbiParam, AliasRegion, AliasRegionData, ArgumentPurpose, BlockArg, InstBuilder,
    MemFlagsData, Signature, Value,
};
use cranelift_codegen::isa::{CallConv, TargetFrontendConfig, TargetIsa};
use cranelift_frontend::FunctionBuilder;
use std::collections::HashMap;

/// Cranelift type of a wasm value type (references are pointers; a `v128` is always an
/// `I8X16` between operators, see `simd.rs`).
pub fn ir_type(ty: ValType) -> ir::Type {
    match ty {
        ValType::I32 => types::I32,
        ValType::I64 => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::V128 => types::I8X16,
        ValType::Ref(_) => types::I64,
    }
}

/// The calling convention between wasm functions: Cranelift's `tail` convention, in which
/// every register is caller-saved, so small functions need no register saves in their
/// prologues (the host reaches wasm code only through the trampolines).
pub const WASM_CALL_CONV: CallConv = CallConv::Tail;

/// How a call is made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CallKind {
    /// A plain call.
    Plain,
    /// A call inside a `try_table` (or legacy `try`): an exception the callee throws comes to
    /// this block, the handler's dispatch code (see `exceptions.rs`).
    Try(ir::Block),
    /// A tail call (`return_call*`): the callee takes this function's frame.
    Tail,
}

impl CallKind {
    fn new(handler: Option<ir::Block>) -> CallKind {
        handler.map_or(CallKind::Plain, CallKind::Try)
    }
}

/// The wasm calling convention: `(callee_vmctx, caller_vmctx, params...) -> results`.
pub fn wasm_signature(ty: &FuncType) -> Signature {
    let mut sig = Signature::new(WASM_CALL_CONV);
    sig.params.push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(types::I64));
    sig.params.extend(ty.params.iter().map(|t| AbiParam::new(ir_type(*t))));
    sig.returns.extend(ty.results.iter().map(|t| AbiParam::new(ir_type(*t))));
    sig
}

/// The alias region of the guest's linear memory, for Cranelift's alias analysis: no access to
/// it aliases an access to [`RUNTIME`] data, so a store to linear memory does not force a
/// reload of a global, a table's bounds or the memory's length (calls still clobber both).
/// Declared first in every function by [`FuncEnv::begin_ir`]; this is its index.
pub const HEAP: u32 = 0;

/// The alias region of the runtime's own data: `VMContext` fields, globals, tables, function
/// references.
pub const RUNTIME: u32 = 1;

/// Flags for loads of runtime data that never changes during an instance's life.
pub fn readonly() -> MemFlagsData {
    trusted().with_readonly().with_can_move()
}

/// Flags for loads and stores of runtime data that may change.
pub fn trusted() -> MemFlagsData {
    MemFlagsData::trusted().with_alias_region(Some(AliasRegion::from_u32(RUNTIME)))
}

/// Flags for loads and stores of linear memory (they may trap: guard pages).
pub fn heap() -> MemFlagsData {
    MemFlagsData::new().with_alias_region(Some(AliasRegion::from_u32(HEAP)))
}

/// The environment of one function's translation.
pub struct FuncEnv<'m> {
    /// The module.
    pub module: &'m ModuleInfo,
    /// Its `VMContext` layout.
    pub offsets: VMOffsets,
    /// How memory accesses are kept in bounds.
    pub bounds: BoundsStrategy,
    /// The host's calling convention (builtins).
    pub call_conv: CallConv,
    /// The target's pointer type and the like.
    pub frontend_config: TargetFrontendConfig,
    /// Whether the code counts instructions (see `budget.rs`); off unless set.
    pub count_instructions: bool,
    /// Whether the function being translated needs a frame pointer: it makes a tail call
    /// (Cranelift's x64 tail calls rely on one) or throws to its callers (the unwinder starts
    /// from its frame pointer, `get_frame_pointer`).
    pub frame_pointer: bool,
    /// The function's own `VMContext` parameter.
    vmctx: Option<Value>,
    sigs: HashMap<TypeIndex, ir::SigRef>,
    builtin_sigs: HashMap<u8, ir::SigRef>,
    direct: HashMap<FuncIndex, ir::FuncRef>,
}

impl<'m> FuncEnv<'m> {
    /// An environment for translating functions of `module`.
    pub fn new(module: &'m ModuleInfo, bounds: BoundsStrategy, isa: &dyn TargetIsa) -> Self {
        FuncEnv {
            module,
            offsets: VMOffsets::new(module),
            bounds,
            call_conv: isa.default_call_conv(),
            frontend_config: isa.frontend_config(),
            count_instructions: false,
            frame_pointer: false,
            vmctx: None,
            sigs: HashMap::new(),
            builtin_sigs: HashMap::new(),
            direct: HashMap::new(),
        }
    }

    /// Resets per-function state; `vmctx` is the new function's context parameter.
    pub fn begin_function(&mut self, vmctx: Value) {
        self.vmctx = Some(vmctx);
        self.frame_pointer = false;
        self.sigs.clear();
        self.builtin_sigs.clear();
        self.direct.clear();
    }

    /// The current function's `VMContext`.
    pub fn vmctx(&self) -> Value {
        self.vmctx.expect("begin_function was called")
    }

    fn load_slot(&self, builder: &mut FunctionBuilder, offset: i32) -> Value {
        let vmctx = self.vmctx();
        builder.ins().load(types::I64, readonly(), vmctx, offset)
    }

    /// Prepares a new function's IR: declares the alias regions [`HEAP`] and [`RUNTIME`] (in
    /// that order, so the constants name them) and installs the stack-limit check in the
    /// prologue.
    pub fn begin_ir(&self, func: &mut ir::Function) {
        for (index, description) in [(HEAP, "linear memory"), (RUNTIME, "runtime data")] {
            let region =
                func.dfg.alias_regions.insert(AliasRegionData { user_id: index, description: description.into() });
            debug_assert_eq!(region, AliasRegion::from_u32(index), "declared first, in order");
        }
        let vmctx = func.create_global_value(ir::GlobalValueData::VMContext);
        let flags = func.dfg.mem_flags.insert_unchecked(readonly());
        let limits = func.create_global_value(ir::GlobalValueData::Load {
            base: vmctx,
            offset: VMCTX_LIMITS.into(),
            global_type: types::I64,
            flags,
        });
        let flags = func.dfg.mem_flags.insert_unchecked(trusted());
        let limit = func.create_global_value(ir::GlobalValueData::Load {
            base: limits,
            offset: VMLIMITS_STACK_LIMIT.into(),
            global_type: types::I64,
            flags,
        });
        func.stack_limit = Some(limit);
    }

    // ----- memory -------------------------------------------------------------------------

    /// Base address of memory `m` (it never moves).
    pub fn memory_base(&self, builder: &mut FunctionBuilder, m: MemoryIndex) -> Value {
        self.load_slot(builder, self.offsets.memory_base(m))
    }

    /// Whether memory `m` has 64-bit addresses (memory64).
    pub fn memory64(&self, m: MemoryIndex) -> bool {
        self.module.memories[m.index()].memory64
    }

    /// Current byte length of memory `m`, as i64.
    pub fn memory_length(&self, builder: &mut FunctionBuilder, m: MemoryIndex) -> Value {
        let def = self.load_slot(builder, self.offsets.memory_def(m));
        builder.ins().load(types::I64, trusted(), def, MEMORY_LENGTH)
    }

    // ----- globals ------------------------------------------------------------------------

    /// Address of global `g`'s value. The pointer never changes, but it is deliberately not
    /// `can_move`: Cranelift would hoist it to the entry block and keep it live through the
    /// whole function (C's stack-pointer global is read at entry and written at exit), one
    /// more register under pressure in hot loops — sha256's compression function ran 14 %
    /// slower for it. Reloading it from the `VMContext` where it is used costs one L1 load.
    pub fn global_addr(&self, builder: &mut FunctionBuilder, g: GlobalIndex) -> Value {
        let vmctx = self.vmctx();
        builder.ins().load(types::I64, trusted().with_readonly(), vmctx, self.offsets.global(g))
    }

    // ----- tables -------------------------------------------------------------------------

    /// `(base, length)` of table `t`; `length` is i32.
    pub fn table_bounds(&self, builder: &mut FunctionBuilder, t: TableIndex) -> (Value, Value) {
        let def = self.load_slot(builder, self.offsets.table(t));
        let base = builder.ins().load(types::I64, trusted(), def, TABLE_BASE);
        let len = builder.ins().load(types::I32, trusted(), def, TABLE_LENGTH);
        (base, len)
    }

    /// Whether table `t` has 64-bit indices (memory64's tables).
    pub fn table64(&self, t: TableIndex) -> bool {
        self.module.tables[t.index()].table64
    }

    /// Checks `index` (i32, or i64 for a 64-bit table) against table `t`'s length, trapping
    /// with `trap` when out of bounds; returns the table's base and the index as i64.
    pub fn checked_table_index(
        &self,
        builder: &mut FunctionBuilder,
        t: TableIndex,
        index: Value,
        trap: TrapKind,
    ) -> (Value, Value) {
        let (base, len) = self.table_bounds(builder, t);
        let (index, len) = if self.table64(t) {
            (index, builder.ins().uextend(types::I64, len))
        } else {
            (builder.ins().uextend(types::I64, index), builder.ins().uextend(types::I64, len))
        };
        let oob = builder.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, index, len);
        builder.ins().trapnz(oob, trap.to_trap_code());
        (base, index)
    }

    /// Address of element `index` (an i64 already bounds-checked) of a table with `base`.
    pub fn table_elem_addr(&self, builder: &mut FunctionBuilder, base: Value, index: Value) -> Value {
        let offset = builder.ins().ishl_imm_u(index, 3);
        builder.ins().iadd(base, offset)
    }

    /// Element `index` (an i64 already bounds-checked) of table `t` with `base`. A funcref
    /// table's zero may be an element not yet read from its image (see
    /// `crate::table_image`): the `TableElement` builtin then gives the element, off the hot
    /// path.
    pub fn table_element(&mut self, builder: &mut FunctionBuilder, t: TableIndex, base: Value, index: Value) -> Value {
        let addr = self.table_elem_addr(builder, base, index);
        let element = builder.ins().load(types::I64, trusted(), addr, 0);
        if self.module.tables[t.index()].element != ValType::FUNCREF {
            return element;
        }
        self.unless_zero(builder, element, |env, builder| {
            let t = builder.ins().iconst(types::I32, i64::from(t.0));
            // In bounds: below the length, a u32.
            let index = builder.ins().ireduce(types::I32, index);
            env.call_builtin(builder, Builtin::TableElement, &[t, index]).expect("returns")
        })
    }

    /// Before a write into table `t`: a funcref table whose elements still come from an
    /// image is filled first (the `FillTable` builtin), so that the write is not undone by a
    /// later first read.
    pub fn before_table_write(&mut self, builder: &mut FunctionBuilder, t: TableIndex) {
        if self.module.tables[t.index()].element != ValType::FUNCREF {
            return;
        }
        let def = self.load_slot(builder, self.offsets.table(t));
        let lazy = builder.ins().load(types::I32, trusted(), def, TABLE_LAZY);
        let fill = builder.create_block();
        let done = builder.create_block();
        builder.ins().brif(lazy, fill, &[], done, &[]);
        builder.switch_to_block(fill);
        builder.set_cold_block(fill);
        let t = builder.ins().iconst(types::I32, i64::from(t.0));
        self.call_builtin(builder, Builtin::FillTable, &[t]);
        builder.ins().jump(done, &[]);
        builder.switch_to_block(done);
    }

    /// `value` (an i64), or when it is zero what `slow` computes in a cold block.
    fn unless_zero(
        &mut self,
        builder: &mut FunctionBuilder,
        value: Value,
        slow: impl FnOnce(&mut Self, &mut FunctionBuilder) -> Value,
    ) -> Value {
        let zero = builder.create_block();
        let done = builder.create_block();
        let result = builder.append_block_param(done, types::I64);
        builder.ins().brif(value, done, &[BlockArg::Value(value)], zero, &[]);
        builder.switch_to_block(zero);
        builder.set_cold_block(zero);
        let computed = slow(self, builder);
        builder.ins().jump(done, &[BlockArg::Value(computed)]);
        builder.switch_to_block(done);
        result
    }

    // ----- functions ----------------------------------------------------------------------

    /// Imported function `f`'s `*const VMFuncRef` (set at instantiation).
    fn import_ref(&self, builder: &mut FunctionBuilder, f: FuncIndex) -> Value {
        let refs = self.load_slot(builder, VMCTX_FUNC_REFS);
        builder.ins().load(types::I64, readonly(), refs, 8 * f.0 as i32)
    }

    /// `ref.func f`: the function's `*const VMFuncRef`. A defined function's is made on
    /// first use (see `crate::func_refs`): while its slot is null, the `FuncRef` builtin
    /// makes it, off the hot path.
    pub fn func_ref(&mut self, builder: &mut FunctionBuilder, f: FuncIndex) -> Value {
        if f.0 < self.module.num_imported_funcs {
            return self.import_ref(builder, f);
        }
        let refs = self.load_slot(builder, VMCTX_FUNC_REFS);
        // Not `readonly`: the slot changes from null to the reference once.
        let r = builder.ins().load(types::I64, trusted(), refs, 8 * f.0 as i32);
        self.unless_zero(builder, r, |env, builder| {
            let f = builder.ins().iconst(types::I32, i64::from(f.0));
            env.call_builtin(builder, Builtin::FuncRef, &[f]).expect("returns")
        })
    }

    /// The canonical signature id of the module's type `ty`, as i32.
    pub fn type_id(&self, builder: &mut FunctionBuilder, ty: TypeIndex) -> Value {
        let ids = self.load_slot(builder, VMCTX_TYPE_IDS);
        builder.ins().load(types::I32, readonly(), ids, 4 * ty.0 as i32)
    }

    /// The imported signature for the module's type `ty`.
    pub fn signature(&mut self, builder: &mut FunctionBuilder, ty: TypeIndex) -> ir::SigRef {
        if let Some(sig) = self.sigs.get(&ty) {
            return *sig;
        }
        let sig = builder.import_signature(wasm_signature(&self.module.types[ty.index()]));
        self.sigs.insert(ty, sig);
        sig
    }

    /// Calls function `f` with `args` (without the context arguments); returns the results.
    /// Inside a handler's scope, `handler` is its dispatch block.
    pub fn call(
        &mut self,
        builder: &mut FunctionBuilder,
        f: FuncIndex,
        args: &[Value],
        handler: Option<ir::Block>,
    ) -> Vec<Value> {
        self.call_function(builder, f, args, CallKind::new(handler))
    }

    /// Tail-calls function `f` (`return_call`): the callee replaces this function's frame and
    /// returns to its caller. The block ends here.
    pub fn return_call(&mut self, builder: &mut FunctionBuilder, f: FuncIndex, args: &[Value]) {
        self.call_function(builder, f, args, CallKind::Tail);
    }

    fn call_function(
        &mut self,
        builder: &mut FunctionBuilder,
        f: FuncIndex,
        args: &[Value],
        kind: CallKind,
    ) -> Vec<Value> {
        self.frame_pointer |= kind == CallKind::Tail;
        let vmctx = self.vmctx();
        let mut full = Vec::with_capacity(args.len() + 2);
        let inst = match self.module.defined_func(f) {
            Some(_) => {
                // A defined function: a direct, PC-relative call with our own context.
                let callee = match self.direct.get(&f) {
                    Some(r) => *r,
                    None => {
                        let sig = self.signature(builder, self.module.functions[f.index()]);
                        let name = builder.func.declare_imported_user_function(ir::UserExternalName::new(0, f.0));
                        let r = builder.import_function(ir::ExtFuncData {
                            name: ir::ExternalName::user(name),
                            signature: sig,
                            colocated: true,
                            patchable: false,
                        });
                        self.direct.insert(f, r);
                        r
                    }
                };
                full.extend([vmctx, vmctx]);
                full.extend_from_slice(args);
                match kind {
                    CallKind::Plain => builder.ins().call(callee, &full),
                    CallKind::Tail => builder.ins().return_call(callee, &full),
                    CallKind::Try(dispatch) => {
                        let sig = builder.func.dfg.ext_funcs[callee].signature;
                        return try_call(builder, dispatch, sig, |b, table| b.ins().try_call(callee, &full, table));
                    }
                }
            }
            None => {
                // An import: call through its function reference with the callee's context.
                let sig = self.signature(builder, self.module.functions[f.index()]);
                let func_ref = self.import_ref(builder, f);
                let code = builder.ins().load(types::I64, readonly(), func_ref, FUNCREF_WASM_CALL);
                let callee_vmctx = builder.ins().load(types::I64, readonly(), func_ref, FUNCREF_VMCTX);
                full.extend([callee_vmctx, vmctx]);
                full.extend_from_slice(args);
                match kind {
                    CallKind::Plain => builder.ins().call_indirect(sig, code, &full),
                    CallKind::Tail => builder.ins().return_call_indirect(sig, code, &full),
                    CallKind::Try(dispatch) => {
                        return try_call(builder, dispatch, sig, |b, table| {
                            b.ins().try_call_indirect(code, &full, table)
                        })
                    }
                }
            }
        };
        builder.inst_results(inst).to_vec()
    }

    /// Calls the (non-null, type-checked) function reference `func_ref` of type `ty`. Inside a
    /// handler's scope, `handler` is its dispatch block.
    pub fn call_ref(
        &mut self,
        builder: &mut FunctionBuilder,
        ty: TypeIndex,
        func_ref: Value,
        args: &[Value],
        handler: Option<ir::Block>,
    ) -> Vec<Value> {
        self.call_through(builder, ty, func_ref, args, CallKind::new(handler))
    }

    /// Tail-calls the (non-null, type-checked) function reference `func_ref` of type `ty`. The
    /// block ends here.
    pub fn return_call_ref(&mut self, builder: &mut FunctionBuilder, ty: TypeIndex, func_ref: Value, args: &[Value]) {
        self.call_through(builder, ty, func_ref, args, CallKind::Tail);
    }

    fn call_through(
        &mut self,
        builder: &mut FunctionBuilder,
        ty: TypeIndex,
        func_ref: Value,
        args: &[Value],
        kind: CallKind,
    ) -> Vec<Value> {
        self.frame_pointer |= kind == CallKind::Tail;
        let sig = self.signature(builder, ty);
        let code = builder.ins().load(types::I64, trusted(), func_ref, FUNCREF_WASM_CALL);
        let callee_vmctx = builder.ins().load(types::I64, trusted(), func_ref, FUNCREF_VMCTX);
        let mut full = vec![callee_vmctx, self.vmctx()];
        full.extend_from_slice(args);
        let inst = match kind {
            CallKind::Plain => builder.ins().call_indirect(sig, code, &full),
            CallKind::Tail => builder.ins().return_call_indirect(sig, code, &full),
            CallKind::Try(dispatch) => {
                return try_call(builder, dispatch, sig, |b, table| b.ins().try_call_indirect(code, &full, table))
            }
        };
        builder.inst_results(inst).to_vec()
    }

    /// Loads the signature id stored in a function reference.
    pub fn func_ref_type_id(&self, builder: &mut FunctionBuilder, func_ref: Value) -> Value {
        builder.ins().load(types::I32, trusted(), func_ref, FUNCREF_TYPE_ID)
    }

    // ----- exceptions ---------------------------------------------------------------------

    /// The identity of tag `t` (the same for every import of one tag).
    pub fn tag_identity(&self, builder: &mut FunctionBuilder, t: TagIndex) -> Value {
        let vmctx = self.vmctx();
        builder.ins().load(types::I64, readonly(), vmctx, self.offsets.tag(t))
    }

    /// A new exception object of tag `t`, its payload to be stored with
    /// [`FuncEnv::store_payload`].
    pub fn new_exception(&mut self, builder: &mut FunctionBuilder, t: TagIndex) -> Value {
        let t = builder.ins().iconst(types::I32, i64::from(t.0));
        self.call_builtin(builder, Builtin::ExnAlloc, &[t]).expect("returns")
    }

    /// Stores payload value `i` of the exception `exn`.
    pub fn store_payload(&self, builder: &mut FunctionBuilder, exn: Value, i: usize, value: Value) {
        builder.ins().store(trusted(), value, exn, exn_value(i));
    }

    /// Loads payload value `i`, of type `ty`, of the exception `exn`.
    pub fn load_payload(&self, builder: &mut FunctionBuilder, exn: Value, i: usize, ty: ValType) -> Value {
        builder.ins().load(ir_type(ty), trusted(), exn, exn_value(i))
    }

    /// The identity of the tag of the exception `exn`.
    pub fn exception_tag(&self, builder: &mut FunctionBuilder, exn: Value) -> Value {
        builder.ins().load(types::I64, trusted(), exn, EXN_TAG)
    }

    /// A reference to the exception `exn` is handed out: it must outlive the catch.
    pub fn mark_escaped(&self, builder: &mut FunctionBuilder, exn: Value) {
        let flags = builder.ins().load(types::I64, trusted(), exn, EXN_FLAGS);
        let flags = builder.ins().bor_imm_u(flags, EXN_ESCAPED);
        builder.ins().store(trusted(), flags, exn, EXN_FLAGS);
    }

    /// The exception `exn` was caught and its reference dropped (after its payload was read).
    pub fn release_exception(&mut self, builder: &mut FunctionBuilder, exn: Value) {
        self.call_builtin(builder, Builtin::ExnRelease, &[exn]);
    }

    /// Throws the (non-null) exception `exn` to this function's callers (no handler of this
    /// function catches it). The block ends here.
    pub fn throw_to_caller(&mut self, builder: &mut FunctionBuilder, exn: Value) {
        self.frame_pointer = true;
        let fp = builder.ins().get_frame_pointer(types::I64);
        let count = if self.count_instructions {
            builder.ins().get_pinned_reg(types::I64)
        } else {
            builder.ins().iconst(types::I64, 0)
        };
        self.call_builtin(builder, Builtin::Throw, &[exn, fp, count]);
        // The builtin never returns.
        builder.ins().trap(crate::trap::TrapKind::Unreachable.to_trap_code());
    }

    // ----- builtins -----------------------------------------------------------------------

    /// Calls a builtin with `args` (after the context); returns its result, if any.
    pub fn call_builtin(&mut self, builder: &mut FunctionBuilder, builtin: Builtin, args: &[Value]) -> Option<Value> {
        let sig = match self.builtin_sigs.get(&(builtin as u8)) {
            Some(s) => *s,
            None => {
                let mut sig = Signature::new(self.call_conv);
                sig.params.push(AbiParam::new(types::I64));
                for arg in args {
                    sig.params.push(AbiParam::new(builder.func.dfg.value_type(*arg)));
                }
                if let Some(ty) = builtin.result() {
                    sig.returns.push(AbiParam::new(ty));
                }
                let s = builder.import_signature(sig);
                self.builtin_sigs.insert(builtin as u8, s);
                s
            }
        };
        let table = self.load_slot(builder, VMCTX_BUILTINS);
        let func = builder.ins().load(types::I64, readonly(), table, builtin.offset());
        let mut full = vec![self.vmctx()];
        full.extend_from_slice(args);
        let inst = builder.ins().call_indirect(sig, func, &full);
        builder.inst_results(inst).first().copied()
    }
}
