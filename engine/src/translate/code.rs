//! The opcode match: one arm (or a few) per WebAssembly operator, grouped by family.
//!
//! Every arm runs only while the current position is reachable (see `unreachable.rs` for
//! the other case). Operands come from and results go to the operand stack of
//! [`TranslationState`]; anything touching runtime data goes through [`FuncEnv`].

use super::env::{heap, ir_type, trusted, FuncEnv};
use super::heap::{memory_addr, trap_on_status};
use super::state::{ControlFrame, TranslationState};
use crate::module_info::val_type;
use crate::trap::TrapKind;
use crate::types::*;
use crate::vm::vmctx::Builtin;
use cranelift_codegen::ir::{
    self, condcodes::FloatCC, condcodes::IntCC, types, BlockArg, InstBuilder, JumpTableData, MemFlagsData, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use wasmparser::{BlockType, MemArg, MemArgTarget, Operator};

/// The zero value of a type (locals' initial value; null for references).
pub fn zero(builder: &mut FunctionBuilder, ty: ValType) -> Value {
    match ty {
        ValType::I32 => builder.ins().iconst(types::I32, 0),
        ValType::I64 | ValType::Ref(_) => builder.ins().iconst(types::I64, 0),
        ValType::F32 => builder.ins().f32const(0.0),
        ValType::F64 => builder.ins().f64const(0.0),
        ValType::V128 => super::simd::v128_const(builder, 0),
    }
}

/// `call_indirect`'s callee: pops the table index and the arguments of type `ty`, checks the
/// index against the table, the element for null and its type, and returns the function
/// reference and the arguments.
fn indirect_callee(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    state: &mut TranslationState,
    ty: TypeIndex,
    table: TableIndex,
) -> (Value, Vec<Value>) {
    let index = state.pop1();
    let call_args = pop_args(env, state, ty);
    let (base, index) = env.checked_table_index(builder, table, index, TrapKind::UndefinedElement);
    let func_ref = env.table_element(builder, table, base, index);
    builder.ins().trapz(func_ref, TrapKind::UninitializedElement.to_trap_code());
    let actual = env.func_ref_type_id(builder, func_ref);
    let expected = env.type_id(builder, ty);
    let mismatch = builder.ins().icmp(IntCC::NotEqual, actual, expected);
    builder.ins().trapnz(mismatch, TrapKind::IndirectCallTypeMismatch.to_trap_code());
    (func_ref, call_args)
}

/// `call_ref`'s callee: pops the function reference (trapping on null) and the arguments of
/// type `ty`.
fn ref_callee(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    state: &mut TranslationState,
    ty: TypeIndex,
) -> (Value, Vec<Value>) {
    let func_ref = state.pop1();
    let call_args = pop_args(env, state, ty);
    builder.ins().trapz(func_ref, TrapKind::NullFunctionReference.to_trap_code());
    (func_ref, call_args)
}

/// Pops the arguments of a call through a reference of type `ty` (the operand naming the
/// callee, above them, already popped).
fn pop_args(env: &FuncEnv, state: &mut TranslationState, ty: TypeIndex) -> Vec<Value> {
    let n = env.module.types[ty.index()].params.len();
    let call_args = state.peekn(n).to_vec();
    state.popn(n);
    call_args
}

/// A conditional branch to the frame `relative_depth` out, taken when `cond` (an integer) is
/// not zero, passing the top of the stack as the frame's branch arguments.
fn branch_if(builder: &mut FunctionBuilder, state: &mut TranslationState, relative_depth: u32, cond: Value) {
    let frame = state.frame_mut(relative_depth);
    frame.mark_branched_to();
    let (dest, arity) = (frame.br_destination(), frame.br_arity());
    let values = state.peekn(arity).to_vec();
    let fallthrough = builder.create_block();
    if state.pending > 0 {
        // Counting: the taken edge charges the run so far (the branch included); the
        // fallthrough, reached only from here, goes on counting it.
        let taken = builder.create_block();
        builder.ins().brif(cond, taken, &[], fallthrough, &[]);
        builder.switch_to_block(taken);
        super::budget::charge(builder, state.pending);
        jump(builder, dest, &values);
    } else {
        builder.ins().brif(cond, dest, &args(&values), fallthrough, &[]);
    }
    builder.switch_to_block(fallthrough);
}

/// `v` as an i64: an i32 address, index or length of a 32-bit memory or table zero-extended
/// (it is unsigned), an i64 one of a 64-bit memory or table as it is.
fn widen(builder: &mut FunctionBuilder, v: Value) -> Value {
    match builder.func.dfg.value_type(v) {
        types::I32 => builder.ins().uextend(types::I64, v),
        _ => v,
    }
}

/// The memory a load or store accesses.
pub fn memory_of(memarg: &MemArg) -> MemoryIndex {
    match memarg.target {
        MemArgTarget::Memory(m) => MemoryIndex(m),
        // GC arrays: the validator refuses them (GC is not among the engine's features).
        MemArgTarget::Array(_) => unreachable!("a GC array access passed validation"),
    }
}

/// Parameter and result types of a block type.
pub fn block_signature(env: &FuncEnv, ty: BlockType) -> (Vec<ValType>, Vec<ValType>) {
    match ty {
        BlockType::Empty => (vec![], vec![]),
        // Validated: a type the loader accepted (a block type is one of the module's).
        BlockType::Type(t) => (vec![], vec![val_type(t).unwrap_or(ValType::I64)]),
        BlockType::FuncType(i) => {
            let f = &env.module.types[i as usize];
            (f.params.to_vec(), f.results.to_vec())
        }
    }
}

/// A new block with parameters of `types`.
pub fn block_with_params(builder: &mut FunctionBuilder, types: &[ValType]) -> ir::Block {
    let block = builder.create_block();
    for t in types {
        builder.append_block_param(block, ir_type(*t));
    }
    block
}

fn args(values: &[Value]) -> Vec<BlockArg> {
    values.iter().map(|v| BlockArg::Value(*v)).collect()
}

fn jump(builder: &mut FunctionBuilder, block: ir::Block, values: &[Value]) {
    builder.ins().jump(block, &args(values));
}

/// Ends the innermost frame: `end` of a block, loop, if or the function body. Shared by the
/// reachable and the unreachable paths; `fallthrough` says whether control reaches `end`.
pub fn end_frame(builder: &mut FunctionBuilder, state: &mut TranslationState, fallthrough: bool) {
    let frame = state.control.pop().expect("validated: control stack underflow");
    state.handlers.end_frame(state.control.len());
    let next = frame.next();
    let num_results = frame.num_results();
    let stack_base = frame.stack_base();
    if fallthrough {
        let results = state.peekn(num_results).to_vec();
        jump(builder, next, &results);
    }
    let mut reachable = fallthrough;
    match frame {
        ControlFrame::Block { exit_reachable, .. } => reachable |= exit_reachable,
        ControlFrame::Loop { .. } => {}
        ControlFrame::If { else_block, params, head_reachable, seen_else, exit_reachable, .. } => {
            reachable |= exit_reachable;
            if !seen_else && head_reachable {
                // The implicit else arm passes the parameters through.
                builder.switch_to_block(else_block);
                jump(builder, next, &params);
                reachable = true;
            }
        }
    }
    state.stack.truncate(stack_base);
    state.reachable = reachable;
    if reachable {
        builder.switch_to_block(next);
        let params = builder.block_params(next).to_vec();
        state.stack.extend(params);
    }
}

/// Starts the else arm of the innermost `if`; `fallthrough` says whether the then arm's end
/// is reachable.
pub fn begin_else(builder: &mut FunctionBuilder, state: &mut TranslationState, fallthrough: bool) {
    let num_results = state.control.last().expect("validated").num_results();
    let results = if fallthrough { state.peekn(num_results).to_vec() } else { vec![] };
    let Some(ControlFrame::If {
        else_block, next, stack_base, params, head_reachable, seen_else, exit_reachable, ..
    }) = state.control.last_mut()
    else {
        unreachable!("validated: else without if")
    };
    if fallthrough {
        builder.ins().jump(*next, &args(&results));
        *exit_reachable = true;
    }
    *seen_else = true;
    state.stack.truncate(*stack_base);
    state.reachable = *head_reachable;
    if *head_reachable {
        state.stack.extend(params.iter().copied());
        builder.switch_to_block(*else_block);
    }
}

fn branch(builder: &mut FunctionBuilder, state: &mut TranslationState, depth: u32) {
    let frame = state.frame_mut(depth);
    frame.mark_branched_to();
    let (dest, arity) = (frame.br_destination(), frame.br_arity());
    let values = state.peekn(arity).to_vec();
    jump(builder, dest, &values);
}

fn bool_to_i32(builder: &mut FunctionBuilder, b: Value) -> Value {
    builder.ins().uextend(types::I32, b)
}

/// Translates one reachable operator. On an operator the engine does not implement, returns
/// its name.
pub fn translate_operator(
    env: &mut FuncEnv,
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    locals: &[Variable],
    op: &Operator,
) -> Result<(), String> {
    use Operator as O;
    macro_rules! unop {
        ($f:ident) => {{
            let a = state.pop1();
            let r = builder.ins().$f(a);
            state.stack.push(r);
        }};
    }
    macro_rules! binop {
        ($f:ident) => {{
            let (a, b) = state.pop2();
            let r = builder.ins().$f(a, b);
            state.stack.push(r);
        }};
    }
    macro_rules! icmp {
        ($cc:expr) => {{
            let (a, b) = state.pop2();
            let r = builder.ins().icmp($cc, a, b);
            let r = bool_to_i32(builder, r);
            state.stack.push(r);
        }};
    }
    macro_rules! fcmp {
        ($cc:expr) => {{
            let (a, b) = state.pop2();
            let r = builder.ins().fcmp($cc, a, b);
            let r = bool_to_i32(builder, r);
            state.stack.push(r);
        }};
    }
    macro_rules! convert {
        ($f:ident, $ty:expr) => {{
            let a = state.pop1();
            let r = builder.ins().$f($ty, a);
            state.stack.push(r);
        }};
    }
    macro_rules! load {
        ($memarg:expr, $ty:expr, $size:expr, $f:ident) => {{
            let index = state.pop1();
            let addr = memory_addr(env, builder, memory_of(&$memarg), index, $memarg.offset, $size);
            let r = builder.ins().$f($ty, heap(), addr, 0);
            state.stack.push(r);
        }};
    }
    macro_rules! store {
        ($memarg:expr, $size:expr, $f:ident) => {{
            let (index, value) = state.pop2();
            let addr = memory_addr(env, builder, memory_of(&$memarg), index, $memarg.offset, $size);
            builder.ins().$f(heap(), value, addr, 0);
        }};
    }
    macro_rules! extend {
        ($narrow:expr, $wide:expr) => {{
            let a = state.pop1();
            let n = builder.ins().ireduce($narrow, a);
            let r = builder.ins().sextend($wide, n);
            state.stack.push(r);
        }};
    }

    match *op {
        // ----- control: structured blocks map to Cranelift blocks (see state.rs) ----------
        O::Nop => {}
        O::Unreachable => {
            builder.ins().trap(TrapKind::Unreachable.to_trap_code());
            state.reachable = false;
        }
        O::Block { blockty } => {
            let (params, results) = block_signature(env, blockty);
            let next = block_with_params(builder, &results);
            let stack_base = state.stack.len() - params.len();
            state.control.push(ControlFrame::Block {
                next,
                stack_base,
                num_results: results.len(),
                exit_reachable: false,
            });
        }
        O::Loop { blockty } => {
            let (params, results) = block_signature(env, blockty);
            let header = block_with_params(builder, &params);
            let next = block_with_params(builder, &results);
            let values = state.peekn(params.len()).to_vec();
            jump(builder, header, &values);
            let stack_base = state.stack.len() - params.len();
            state.stack.truncate(stack_base);
            builder.switch_to_block(header);
            if env.count_instructions {
                // Every iteration passes here: no loop runs unchecked.
                super::budget::check(builder);
            }
            state.stack.extend(builder.block_params(header).to_vec());
            state.control.push(ControlFrame::Loop {
                header,
                next,
                stack_base,
                num_params: params.len(),
                num_results: results.len(),
            });
        }
        O::If { blockty } => {
            let cond = state.pop1();
            let (params, results) = block_signature(env, blockty);
            let then_block = builder.create_block();
            let else_block = builder.create_block();
            let next = block_with_params(builder, &results);
            builder.ins().brif(cond, then_block, &[], else_block, &[]);
            builder.switch_to_block(then_block);
            let stack_base = state.stack.len() - params.len();
            state.control.push(ControlFrame::If {
                else_block,
                next,
                stack_base,
                params: state.peekn(params.len()).to_vec(),
                num_results: results.len(),
                head_reachable: true,
                seen_else: false,
                exit_reachable: false,
            });
        }
        O::Else => begin_else(builder, state, true),
        O::End => end_frame(builder, state, true),
        O::Br { relative_depth } => {
            branch(builder, state, relative_depth);
            state.reachable = false;
        }
        O::BrIf { relative_depth } => {
            let cond = state.pop1();
            branch_if(builder, state, relative_depth, cond);
        }
        // Typed function references: a null reference branches (and is dropped), a non-null
        // one goes on; or the other way round, the reference passed along with the branch.
        O::BrOnNull { relative_depth } => {
            let r = state.pop1();
            let is_null = builder.ins().icmp_imm_u(IntCC::Equal, r, 0);
            branch_if(builder, state, relative_depth, is_null);
            state.stack.push(r);
        }
        O::BrOnNonNull { relative_depth } => {
            let r = *state.stack.last().expect("validated");
            branch_if(builder, state, relative_depth, r);
            state.pop1();
        }
        O::RefAsNonNull => {
            let r = *state.stack.last().expect("validated");
            builder.ins().trapz(r, TrapKind::NullReference.to_trap_code());
        }
        O::BrTable { ref targets } => {
            let index = state.pop1();
            let mut depths: Vec<u32> = targets.targets().collect::<Result<_, _>>().map_err(|e| e.to_string())?;
            depths.push(targets.default());
            let arity = state.frame_mut(targets.default()).br_arity();
            let values = state.peekn(arity).to_vec();
            // With arguments, each distinct target gets an edge block that passes them.
            let mut edges: std::collections::HashMap<u32, ir::Block> = Default::default();
            let mut calls = Vec::with_capacity(depths.len());
            for depth in &depths {
                let frame = state.frame_mut(*depth);
                frame.mark_branched_to();
                let dest = frame.br_destination();
                let block =
                    if arity == 0 { dest } else { *edges.entry(*depth).or_insert_with(|| builder.create_block()) };
                calls.push(builder.func.dfg.block_call(block, &[]));
            }
            let default = calls.pop().expect("default target");
            let table = builder.create_jump_table(JumpTableData::new(default, &calls));
            builder.ins().br_table(index, table);
            let mut edges: Vec<_> = edges.into_iter().collect();
            edges.sort_by_key(|(d, _)| *d);
            for (depth, block) in edges {
                let dest = state.frame_mut(depth).br_destination();
                builder.switch_to_block(block);
                jump(builder, dest, &values);
            }
            state.reachable = false;
        }
        O::Return => {
            let n = state.control[0].num_results();
            let values = state.peekn(n).to_vec();
            builder.ins().return_(&values);
            state.reachable = false;
        }

        // ----- calls: direct for defined functions, through function references otherwise --
        O::Call { function_index } => {
            let f = FuncIndex(function_index);
            let n = env.module.func_type(f).params.len();
            let call_args = state.peekn(n).to_vec();
            state.popn(n);
            let handler = state.handlers.for_call();
            let results = env.call(builder, f, &call_args, handler);
            state.stack.extend(results);
        }
        O::CallIndirect { type_index, table_index } => {
            let ty = TypeIndex(type_index);
            let (func_ref, call_args) = indirect_callee(builder, env, state, ty, TableIndex(table_index));
            let handler = state.handlers.for_call();
            let results = env.call_ref(builder, ty, func_ref, &call_args, handler);
            state.stack.extend(results);
        }
        // Tail calls: the callee takes this function's frame (constant stack however deep the
        // recursion) and returns to its caller.
        O::ReturnCall { function_index } => {
            let f = FuncIndex(function_index);
            let n = env.module.func_type(f).params.len();
            let call_args = state.peekn(n).to_vec();
            state.popn(n);
            env.return_call(builder, f, &call_args);
            state.reachable = false;
        }
        O::ReturnCallIndirect { type_index, table_index } => {
            let ty = TypeIndex(type_index);
            let (func_ref, call_args) = indirect_callee(builder, env, state, ty, TableIndex(table_index));
            env.return_call_ref(builder, ty, func_ref, &call_args);
            state.reachable = false;
        }
        // A typed reference's function is of its type (validated, and kept so at every link
        // and host boundary): only null is checked.
        O::CallRef { type_index } => {
            let ty = TypeIndex(type_index);
            let (func_ref, call_args) = ref_callee(builder, env, state, ty);
            let handler = state.handlers.for_call();
            let results = env.call_ref(builder, ty, func_ref, &call_args, handler);
            state.stack.extend(results);
        }
        O::ReturnCallRef { type_index } => {
            let ty = TypeIndex(type_index);
            let (func_ref, call_args) = ref_callee(builder, env, state, ty);
            env.return_call_ref(builder, ty, func_ref, &call_args);
            state.reachable = false;
        }

        // ----- exceptions: handlers are dispatch blocks; calls in their scope are try_calls
        // (see exceptions.rs) ---------------------------------------------------------------
        O::TryTable { ref try_table } => super::exceptions::try_table(builder, env, state, try_table),
        O::Throw { tag_index } => super::exceptions::throw(builder, env, state, TagIndex(tag_index)),
        O::ThrowRef => super::exceptions::throw_ref(builder, env, state),
        O::Try { blockty } => super::exceptions::legacy_try(builder, env, state, blockty),
        O::Catch { tag_index } => super::exceptions::legacy_catch(builder, env, state, Some(TagIndex(tag_index)), true),
        O::CatchAll => super::exceptions::legacy_catch(builder, env, state, None, true),
        O::Rethrow { relative_depth } => super::exceptions::rethrow(builder, env, state, relative_depth),
        O::Delegate { relative_depth } => {
            super::exceptions::delegate(state, relative_depth);
            end_frame(builder, state, true);
        }

        // ----- parametric ---------------------------------------------------------------------
        O::Drop => {
            state.pop1();
        }
        O::Select | O::TypedSelect { .. } => {
            let (a, b, cond) = state.pop3();
            let r = builder.ins().select(cond, a, b);
            state.stack.push(r);
        }

        // ----- variables: locals are Cranelift variables; globals live behind pointers -------
        O::LocalGet { local_index } => {
            let v = builder.use_var(locals[local_index as usize]);
            state.stack.push(v);
        }
        O::LocalSet { local_index } => {
            let v = state.pop1();
            builder.def_var(locals[local_index as usize], v);
        }
        O::LocalTee { local_index } => {
            let v = *state.stack.last().expect("validated");
            builder.def_var(locals[local_index as usize], v);
        }
        O::GlobalGet { global_index } => {
            let g = GlobalIndex(global_index);
            let ty = env.module.globals[g.index()];
            let addr = env.global_addr(builder, g);
            let flags = if ty.mutable { trusted() } else { super::env::readonly() };
            let v = builder.ins().load(ir_type(ty.ty), flags, addr, 0);
            state.stack.push(v);
        }
        O::GlobalSet { global_index } => {
            let v = state.pop1();
            let addr = env.global_addr(builder, GlobalIndex(global_index));
            builder.ins().store(trusted(), v, addr, 0);
        }

        // ----- memory: addresses come only from the memory sandbox (heap.rs) --------------------
        O::I32Load { memarg } => load!(memarg, types::I32, 4, load),
        O::I64Load { memarg } => load!(memarg, types::I64, 8, load),
        O::F32Load { memarg } => load!(memarg, types::F32, 4, load),
        O::F64Load { memarg } => load!(memarg, types::F64, 8, load),
        O::I32Load8S { memarg } => load!(memarg, types::I32, 1, sload8),
        O::I32Load8U { memarg } => load!(memarg, types::I32, 1, uload8),
        O::I32Load16S { memarg } => load!(memarg, types::I32, 2, sload16),
        O::I32Load16U { memarg } => load!(memarg, types::I32, 2, uload16),
        O::I64Load8S { memarg } => load!(memarg, types::I64, 1, sload8),
        O::I64Load8U { memarg } => load!(memarg, types::I64, 1, uload8),
        O::I64Load16S { memarg } => load!(memarg, types::I64, 2, sload16),
        O::I64Load16U { memarg } => load!(memarg, types::I64, 2, uload16),
        O::I64Load32S { memarg } | O::I64Load32U { memarg } => {
            let index = state.pop1();
            let addr = memory_addr(env, builder, memory_of(&memarg), index, memarg.offset, 4);
            let r = match *op {
                O::I64Load32S { .. } => builder.ins().sload32(heap(), addr, 0),
                _ => builder.ins().uload32(heap(), addr, 0),
            };
            state.stack.push(r);
        }
        O::I32Store { memarg } | O::I64Store { memarg } | O::F32Store { memarg } | O::F64Store { memarg } => {
            let size = match *op {
                O::I32Store { .. } | O::F32Store { .. } => 4,
                _ => 8,
            };
            store!(memarg, size, store)
        }
        O::I32Store8 { memarg } | O::I64Store8 { memarg } => store!(memarg, 1, istore8),
        O::I32Store16 { memarg } | O::I64Store16 { memarg } => store!(memarg, 2, istore16),
        O::I64Store32 { memarg } => store!(memarg, 4, istore32),
        // Sizes, addresses and lengths of a 64-bit memory are i64, of a 32-bit one i32: the
        // builtins take them widened to i64 (zero-extended: unsigned) and check them in 64 bits.
        O::MemorySize { mem } => {
            let len = env.memory_length(builder, MemoryIndex(mem));
            let pages = builder.ins().ushr_imm_u(len, 16);
            let pages = if env.memory64(MemoryIndex(mem)) { pages } else { builder.ins().ireduce(types::I32, pages) };
            state.stack.push(pages);
        }
        O::MemoryGrow { mem } => {
            let delta = state.pop1();
            let delta = widen(builder, delta);
            let m = builder.ins().iconst(types::I32, i64::from(mem));
            let r = env.call_builtin(builder, Builtin::MemoryGrow, &[m, delta]).expect("returns");
            // -1 (failure) narrows to -1.
            let r = if env.memory64(MemoryIndex(mem)) { r } else { builder.ins().ireduce(types::I32, r) };
            state.stack.push(r);
        }

        // ----- bulk memory and tables: runtime builtins; the code traps on a non-zero status ----
        O::MemoryFill { mem } => {
            let (dst, val, len) = state.pop3();
            let (dst, len) = (widen(builder, dst), widen(builder, len));
            let m = builder.ins().iconst(types::I32, i64::from(mem));
            let status = env.call_builtin(builder, Builtin::MemoryFill, &[m, dst, val, len]).expect("returns");
            trap_on_status(builder, status, TrapKind::MemoryOutOfBounds);
        }
        O::MemoryCopy { dst_mem, src_mem } => {
            let (dst, src, len) = state.pop3();
            let (dst, src, len) = (widen(builder, dst), widen(builder, src), widen(builder, len));
            let d = builder.ins().iconst(types::I32, i64::from(dst_mem));
            let s = builder.ins().iconst(types::I32, i64::from(src_mem));
            let status = env.call_builtin(builder, Builtin::MemoryCopy, &[d, s, dst, src, len]).expect("returns");
            trap_on_status(builder, status, TrapKind::MemoryOutOfBounds);
        }
        O::MemoryInit { data_index, mem } => {
            let (dst, src, len) = state.pop3();
            let dst = widen(builder, dst);
            let m = builder.ins().iconst(types::I32, i64::from(mem));
            let seg = builder.ins().iconst(types::I32, i64::from(data_index));
            let status = env.call_builtin(builder, Builtin::MemoryInit, &[m, seg, dst, src, len]).expect("returns");
            trap_on_status(builder, status, TrapKind::MemoryOutOfBounds);
        }
        O::DataDrop { data_index } => {
            let seg = builder.ins().iconst(types::I32, i64::from(data_index));
            env.call_builtin(builder, Builtin::DataDrop, &[seg]);
        }
        // Indices, sizes and lengths of a 64-bit table are i64, of a 32-bit one i32: checked
        // and passed to the builtins widened to i64 (zero-extended: unsigned).
        O::TableGet { table } => {
            let index = state.pop1();
            let (base, index) = env.checked_table_index(builder, TableIndex(table), index, TrapKind::TableOutOfBounds);
            let v = env.table_element(builder, TableIndex(table), base, index);
            state.stack.push(v);
        }
        O::TableSet { table } => {
            let (index, value) = state.pop2();
            env.before_table_write(builder, TableIndex(table));
            let (base, index) = env.checked_table_index(builder, TableIndex(table), index, TrapKind::TableOutOfBounds);
            let addr = env.table_elem_addr(builder, base, index);
            builder.ins().store(trusted(), value, addr, 0);
        }
        O::TableSize { table } => {
            let (_, len) = env.table_bounds(builder, TableIndex(table));
            let len = if env.table64(TableIndex(table)) { builder.ins().uextend(types::I64, len) } else { len };
            state.stack.push(len);
        }
        O::TableGrow { table } => {
            let (init, delta) = state.pop2();
            let delta = widen(builder, delta);
            let t = builder.ins().iconst(types::I32, i64::from(table));
            let r = env.call_builtin(builder, Builtin::TableGrow, &[t, init, delta]).expect("returns");
            // -1 (failure) narrows to -1.
            let r = if env.table64(TableIndex(table)) { r } else { builder.ins().ireduce(types::I32, r) };
            state.stack.push(r);
        }
        O::TableFill { table } => {
            let (dst, val, len) = state.pop3();
            let (dst, len) = (widen(builder, dst), widen(builder, len));
            let t = builder.ins().iconst(types::I32, i64::from(table));
            let status = env.call_builtin(builder, Builtin::TableFill, &[t, dst, val, len]).expect("returns");
            trap_on_status(builder, status, TrapKind::TableOutOfBounds);
        }
        O::TableCopy { dst_table, src_table } => {
            let (dst, src, len) = state.pop3();
            let (dst, src, len) = (widen(builder, dst), widen(builder, src), widen(builder, len));
            let d = builder.ins().iconst(types::I32, i64::from(dst_table));
            let s = builder.ins().iconst(types::I32, i64::from(src_table));
            let status = env.call_builtin(builder, Builtin::TableCopy, &[d, s, dst, src, len]).expect("returns");
            trap_on_status(builder, status, TrapKind::TableOutOfBounds);
        }
        O::TableInit { elem_index, table } => {
            let (dst, src, len) = state.pop3();
            let dst = widen(builder, dst);
            let t = builder.ins().iconst(types::I32, i64::from(table));
            let seg = builder.ins().iconst(types::I32, i64::from(elem_index));
            let status = env.call_builtin(builder, Builtin::TableInit, &[t, seg, dst, src, len]).expect("returns");
            trap_on_status(builder, status, TrapKind::TableOutOfBounds);
        }
        O::ElemDrop { elem_index } => {
            let seg = builder.ins().iconst(types::I32, i64::from(elem_index));
            env.call_builtin(builder, Builtin::ElemDrop, &[seg]);
        }

        // ----- references: pointers, 0 is null --------------------------------------------------
        O::RefNull { .. } => {
            let v = builder.ins().iconst(types::I64, 0);
            state.stack.push(v);
        }
        O::RefIsNull => {
            let a = state.pop1();
            let r = builder.ins().icmp_imm_u(IntCC::Equal, a, 0);
            let r = bool_to_i32(builder, r);
            state.stack.push(r);
        }
        O::RefFunc { function_index } => {
            let v = env.func_ref(builder, FuncIndex(function_index));
            state.stack.push(v);
        }

        // ----- constants ------------------------------------------------------------------------
        O::I32Const { value } => {
            let v = builder.ins().iconst(types::I32, i64::from(value));
            state.stack.push(v);
        }
        O::I64Const { value } => {
            let v = builder.ins().iconst(types::I64, value);
            state.stack.push(v);
        }
        O::F32Const { value } => {
            let v = builder.ins().f32const(ir::immediates::Ieee32::with_bits(value.bits()));
            state.stack.push(v);
        }
        O::F64Const { value } => {
            let v = builder.ins().f64const(ir::immediates::Ieee64::with_bits(value.bits()));
            state.stack.push(v);
        }

        // ----- integer arithmetic: Cranelift's semantics match wasm's (division traps included) --
        O::I32Eqz | O::I64Eqz => {
            let a = state.pop1();
            let r = builder.ins().icmp_imm_u(IntCC::Equal, a, 0);
            let r = bool_to_i32(builder, r);
            state.stack.push(r);
        }
        O::I32Eq | O::I64Eq => icmp!(IntCC::Equal),
        O::I32Ne | O::I64Ne => icmp!(IntCC::NotEqual),
        O::I32LtS | O::I64LtS => icmp!(IntCC::SignedLessThan),
        O::I32LtU | O::I64LtU => icmp!(IntCC::UnsignedLessThan),
        O::I32GtS | O::I64GtS => icmp!(IntCC::SignedGreaterThan),
        O::I32GtU | O::I64GtU => icmp!(IntCC::UnsignedGreaterThan),
        O::I32LeS | O::I64LeS => icmp!(IntCC::SignedLessThanOrEqual),
        O::I32LeU | O::I64LeU => icmp!(IntCC::UnsignedLessThanOrEqual),
        O::I32GeS | O::I64GeS => icmp!(IntCC::SignedGreaterThanOrEqual),
        O::I32GeU | O::I64GeU => icmp!(IntCC::UnsignedGreaterThanOrEqual),
        O::I32Clz | O::I64Clz => unop!(clz),
        O::I32Ctz | O::I64Ctz => unop!(ctz),
        O::I32Popcnt | O::I64Popcnt => unop!(popcnt),
        O::I32Add | O::I64Add => binop!(iadd),
        O::I32Sub | O::I64Sub => binop!(isub),
        O::I32Mul | O::I64Mul => binop!(imul),
        O::I32DivS | O::I64DivS => binop!(sdiv),
        O::I32DivU | O::I64DivU => binop!(udiv),
        O::I32RemS | O::I64RemS => binop!(srem),
        O::I32RemU | O::I64RemU => binop!(urem),
        O::I32And | O::I64And => binop!(band),
        O::I32Or | O::I64Or => binop!(bor),
        O::I32Xor | O::I64Xor => binop!(bxor),
        O::I32Shl | O::I64Shl => binop!(ishl),
        O::I32ShrS | O::I64ShrS => binop!(sshr),
        O::I32ShrU | O::I64ShrU => binop!(ushr),
        O::I32Rotl | O::I64Rotl => binop!(rotl),
        O::I32Rotr | O::I64Rotr => binop!(rotr),
        O::I32Extend8S => extend!(types::I8, types::I32),
        O::I32Extend16S => extend!(types::I16, types::I32),
        O::I64Extend8S => extend!(types::I8, types::I64),
        O::I64Extend16S => extend!(types::I16, types::I64),
        O::I64Extend32S => extend!(types::I32, types::I64),

        // ----- float arithmetic: Cranelift's fmin/fmax/nearest follow IEEE 754-2019 as wasm does --
        O::F32Eq | O::F64Eq => fcmp!(FloatCC::Equal),
        O::F32Ne | O::F64Ne => fcmp!(FloatCC::NotEqual),
        O::F32Lt | O::F64Lt => fcmp!(FloatCC::LessThan),
        O::F32Gt | O::F64Gt => fcmp!(FloatCC::GreaterThan),
        O::F32Le | O::F64Le => fcmp!(FloatCC::LessThanOrEqual),
        O::F32Ge | O::F64Ge => fcmp!(FloatCC::GreaterThanOrEqual),
        O::F32Abs | O::F64Abs => unop!(fabs),
        O::F32Neg | O::F64Neg => unop!(fneg),
        O::F32Ceil | O::F64Ceil => unop!(ceil),
        O::F32Floor | O::F64Floor => unop!(floor),
        O::F32Trunc | O::F64Trunc => unop!(trunc),
        O::F32Nearest | O::F64Nearest => unop!(nearest),
        O::F32Sqrt | O::F64Sqrt => unop!(sqrt),
        O::F32Add | O::F64Add => binop!(fadd),
        O::F32Sub | O::F64Sub => binop!(fsub),
        O::F32Mul | O::F64Mul => binop!(fmul),
        O::F32Div | O::F64Div => binop!(fdiv),
        O::F32Min | O::F64Min => binop!(fmin),
        O::F32Max | O::F64Max => binop!(fmax),
        O::F32Copysign | O::F64Copysign => binop!(fcopysign),

        // ----- conversions: trapping conversions trap with wasm's codes; `_sat` saturate -------
        O::I32WrapI64 => convert!(ireduce, types::I32),
        O::I64ExtendI32S => convert!(sextend, types::I64),
        O::I64ExtendI32U => convert!(uextend, types::I64),
        O::I32TruncF32S | O::I32TruncF64S => convert!(fcvt_to_sint, types::I32),
        O::I32TruncF32U | O::I32TruncF64U => convert!(fcvt_to_uint, types::I32),
        O::I64TruncF32S | O::I64TruncF64S => convert!(fcvt_to_sint, types::I64),
        O::I64TruncF32U | O::I64TruncF64U => convert!(fcvt_to_uint, types::I64),
        O::I32TruncSatF32S | O::I32TruncSatF64S => convert!(fcvt_to_sint_sat, types::I32),
        O::I32TruncSatF32U | O::I32TruncSatF64U => convert!(fcvt_to_uint_sat, types::I32),
        O::I64TruncSatF32S | O::I64TruncSatF64S => convert!(fcvt_to_sint_sat, types::I64),
        O::I64TruncSatF32U | O::I64TruncSatF64U => convert!(fcvt_to_uint_sat, types::I64),
        O::F32ConvertI32S | O::F32ConvertI64S => convert!(fcvt_from_sint, types::F32),
        O::F32ConvertI32U | O::F32ConvertI64U => convert!(fcvt_from_uint, types::F32),
        O::F64ConvertI32S | O::F64ConvertI64S => convert!(fcvt_from_sint, types::F64),
        O::F64ConvertI32U | O::F64ConvertI64U => convert!(fcvt_from_uint, types::F64),
        O::F32DemoteF64 => convert!(fdemote, types::F32),
        O::F64PromoteF32 => convert!(fpromote, types::F64),
        O::I32ReinterpretF32 | O::I64ReinterpretF64 | O::F32ReinterpretI32 | O::F64ReinterpretI64 => {
            let ty = match *op {
                O::I32ReinterpretF32 => types::I32,
                O::I64ReinterpretF64 => types::I64,
                O::F32ReinterpretI32 => types::F32,
                _ => types::F64,
            };
            let a = state.pop1();
            let r = builder.ins().bitcast(ty, MemFlagsData::new(), a);
            state.stack.push(r);
        }

        // ----- SIMD128 and relaxed SIMD: their own match (simd.rs) --------------------------------
        ref other => {
            if !super::simd::translate_simd(env, builder, state, other) {
                return Err(format!("{other:?}"));
            }
        }
    }
    Ok(())
}
