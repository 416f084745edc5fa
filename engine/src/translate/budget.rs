//! THE INSTRUCTION COUNT, in code compiled with [`crate::Config::count_instructions`].
//!
//! **Where it lives.** The number of instructions the store may still execute (its budget
//! minus what ran) is kept in Cranelift's pinned register, r15 on x86-64, which the register
//! allocator then never hands out. It is never in guest memory and no wasm instruction can
//! name it: a guest can neither read, reset nor overflow it (it only goes down, by at most
//! the length of one function body between two checks, from at most
//! [`crate::store::MAX_INSTRUCTION_BUDGET`]). While host code runs, the store's
//! [`crate::vm::vmctx::VMLimits`] holds it: `vm::traps::catch_traps` loads the register
//! on entry and stores it back on return and on a trap in compiled code (from the signal
//! context), and the host trampoline ([`around_host_call`]) hands it over around each host
//! call.
//!
//! **What counts.** Every operator that executes counts 1: `block`, `loop`, `if`, `br*`,
//! `nop`, `drop`, a `call` (a call to a host function is that one instruction), and `else` and
//! `end` when control falls through them (a branch to a block's end does not execute its
//! `end`; an `if` without `else` whose condition is false goes straight past its `end`).
//! Instructions after a `br`, `return` or `unreachable` never execute and never count.
//!
//! **When it is charged.** The translator counts operators at compile time and subtracts the
//! straight-line run since the last charge ([`flush`]) before each operator that leaves the
//! straight line, calls, or is `unreachable` ([`charges_before`]): one subtraction per basic
//! block, in a register. Operators that may trap in the middle of a run (loads and stores,
//! division, float-to-int truncation, table and bulk-memory operations) are not charged
//! before: each operator's code carries, as its source location, the instructions counted
//! since the last charge including itself, and the compiler keeps that number for every trap
//! site (`budget_sites`), so a trap's count is the register's value plus it. The count is
//! therefore exact at every trap (the trapping instruction and everything executed before
//! it), at every call and at a normal return (every instruction executed).
//!
//! **Exceptions.** `throw`, `throw_ref` and `rethrow` count 1 and charge before their code, like
//! a call; the unwinder hands the register's value to the handler (`vm::unwind`), which
//! counts nothing more: the count is exact across throws, and an exception reaching the host
//! hands it to the store like a host function's error. A legacy `catch` or `delegate` charges
//! like `else` and `end`.
//!
//! **Where it is checked.** At every function entry and loop header ([`check`]), before each
//! host call ([`around_host_call`]) and when a call from the host returns (the store): the
//! run traps with [`TrapKind::InstructionBudget`] once the count exceeds the budget. The
//! count reported then is exact (the instructions executed up to the check), and may exceed
//! the budget by at most a loop-free, call-free stretch of one function. Every way back to
//! earlier code (a loop's back edge, `br_table` included) passes a loop header and every call
//! a function entry, so no control flow escapes the checks.

use super::state::{ControlFrame, TranslationState};
use crate::trap::TrapKind;
use crate::vm::vmctx::{VMCTX_LIMITS, VMLIMITS_INSTRUCTIONS};
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;
use wasmparser::Operator;

/// Whether the instructions counted so far must be charged before `op`'s code: it ends a
/// straight-line run (a branch, or a jump into a merge block), it calls (the callee counts on
/// from the register), or it is `unreachable`. Other operators that may trap are exact through
/// their trap sites' pending counts instead (see the module's documentation). `br_if`, `br_on_null`
/// and `br_on_non_null` charge on their taken edge only (`code.rs`), and some `end`s not at all ([`charges_before_in`]).
pub fn charges_before(op: &Operator) -> bool {
    use Operator as O;
    matches!(
        op,
        O::Loop { .. }
            | O::If { .. }
            | O::Else
            | O::End
            | O::Br { .. }
            | O::BrTable { .. }
            | O::Return
            | O::Unreachable
            | O::Call { .. }
            | O::CallIndirect { .. }
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::CallRef { .. }
            | O::ReturnCallRef { .. }
            | O::Throw { .. }
            | O::ThrowRef
            | O::Rethrow { .. }
            | O::Catch { .. }
            | O::CatchAll
            | O::Delegate { .. }
    )
}

/// Subtracts the instructions counted since the last charge from the register.
pub fn flush(builder: &mut FunctionBuilder, state: &mut TranslationState) {
    if state.pending > 0 {
        charge(builder, state.pending);
        state.pending = 0;
    }
}

/// Subtracts `n` instructions from the register (on one path: see `br_if`).
pub fn charge(builder: &mut FunctionBuilder, n: u32) {
    let left = builder.ins().get_pinned_reg(types::I64);
    let left = builder.ins().iadd_imm_s(left, -i64::from(n));
    builder.ins().set_pinned_reg(left);
}

/// Whether the instructions counted so far must be charged before `op`, in `state` (before
/// `op` is translated): [`charges_before`], except at an `end` whose continuation is reached
/// only by falling through it (a `loop`'s, a `block`'s that no branch targets, the function's
/// when nothing branches to its end): the count goes on there, and is charged at the next
/// branch, call or return instead.
pub fn charges_before_in(op: &Operator, state: &TranslationState) -> bool {
    match op {
        Operator::End => match state.control.last() {
            Some(ControlFrame::Loop { .. }) => false,
            Some(ControlFrame::Block { exit_reachable, .. }) => *exit_reachable,
            _ => true,
        },
        other => charges_before(other),
    }
}

/// Traps with [`TrapKind::InstructionBudget`] when the count went past the budget (the
/// register is negative).
pub fn check(builder: &mut FunctionBuilder) {
    let left = builder.ins().get_pinned_reg(types::I64);
    let over = builder.ins().icmp_imm_s(IntCC::SignedLessThan, left, 0);
    builder.ins().trapnz(over, TrapKind::InstructionBudget.to_trap_code());
}

/// Emits a host call (`call`) in a host trampoline: when the caller is wasm code (its context
/// `caller_vmctx` is not null), the count is stored in the store's limits, checked (a run past
/// its budget does no more host calls), and read back afterwards (the host may have run wasm
/// code of the same store meanwhile). Called from the host directly, nothing is counted.
pub fn around_host_call(
    builder: &mut FunctionBuilder,
    caller_vmctx: Value,
    mut call: impl FnMut(&mut FunctionBuilder),
) {
    let counted = builder.create_block();
    let uncounted = builder.create_block();
    let done = builder.create_block();
    builder.ins().brif(caller_vmctx, counted, &[], uncounted, &[]);

    builder.switch_to_block(counted);
    let flags = MemFlagsData::trusted();
    let limits = builder.ins().load(types::I64, flags, caller_vmctx, VMCTX_LIMITS);
    let left = builder.ins().get_pinned_reg(types::I64);
    builder.ins().store(flags, left, limits, VMLIMITS_INSTRUCTIONS);
    check(builder);
    call(builder);
    let left = builder.ins().load(types::I64, flags, limits, VMLIMITS_INSTRUCTIONS);
    builder.ins().set_pinned_reg(left);
    builder.ins().jump(done, &[]);

    builder.switch_to_block(uncounted);
    call(builder);
    builder.ins().jump(done, &[]);

    builder.switch_to_block(done);
}
