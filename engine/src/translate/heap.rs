//! THE MEMORY SANDBOX. Every linear-memory address compiled code computes comes from
//! [`memory_addr`]; nothing else turns a wasm address into a native pointer.
//!
//! Each memory of a module (multi-memory) is its own sandbox: its own reservation, base and
//! length, read from its own `VMContext` slots; an access names one memory and is checked
//! against that memory alone.
//!
//! A wasm access reads `size` bytes at `index + offset`, where `index` is an unsigned 32-bit
//! operand and `offset` a static unsigned 32-bit immediate. It is in bounds iff
//! `index + offset + size <= current_length`.
//!
//! Two strategies, chosen per engine (see [`BoundsStrategy`]):
//!
//! 1. **Guard pages.** The memory owns a reservation of 4 GiB + [`GUARD_SIZE`] bytes, of which
//!    only the first `current_length` are accessible; the rest is `PROT_NONE`. If
//!    `offset + size <= GUARD_SIZE`, then `index + offset + size < 4 GiB + GUARD_SIZE`, so the
//!    access lies entirely inside the reservation: either in the accessible prefix (in bounds)
//!    or it touches an inaccessible page and faults. The load/store carries the
//!    `HEAP_OUT_OF_BOUNDS` trap code, so the fault is reported as an out-of-bounds trap. No
//!    check is emitted. Larger static offsets fall back to case 2.
//! 2. **Explicit check.** Compute `end = zext64(index) + offset + size` in 64 bits (it cannot
//!    overflow: at most 2^33) and trap with `HEAP_OUT_OF_BOUNDS` if `end > current_length`,
//!    reading the length at every access because `memory.grow` (possibly by another instance
//!    sharing the memory) changes it. The base never moves, so it may be hoisted.
//!
//! In both cases the native address is `base + zext64(index) + offset`; `zext` (never `sext`)
//! matters: a negative i32 is a large unsigned index, not an access below the base.
//!
//! 3. **A 64-bit memory** (memory64): `index` is an unsigned 64-bit operand and `offset` a
//!    64-bit immediate. A 64-bit memory grows to 4 GiB at most, like any memory here, so under
//!    guard pages it has the same reservation, and the same reasoning holds once `index` is
//!    known to be below 2^32: one comparison with a constant (`index > u32::MAX` traps) then,
//!    if `offset + size <= GUARD_SIZE`, no further check — the access lies in the reservation.
//!    Otherwise (explicit bounds, or a larger offset) an explicit check: `end = index +
//!    offset + size` is computed with overflow traps (an access whose end passes 2^64 is out
//!    of bounds of any memory), then compared with `current_length` as in case 2. The native
//!    address is `base + index + offset`, in bounds once the check passed.

use super::env::FuncEnv;
use crate::trap::TrapKind;
use crate::types::MemoryIndex;
use crate::vm::memory::{BoundsStrategy, GUARD_SIZE};
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

/// Native address of a `size`-byte access at wasm address `index` (an i32, or an i64 of a
/// 64-bit memory) + `offset` of memory `memory`, checked as the module's strategy requires.
/// The caller uses the result with offset 0.
pub fn memory_addr(
    env: &FuncEnv,
    builder: &mut FunctionBuilder,
    memory: MemoryIndex,
    index: Value,
    offset: u64,
    size: u32,
) -> Value {
    let code = TrapKind::MemoryOutOfBounds.to_trap_code();
    let in_guard = offset.checked_add(u64::from(size)).is_some_and(|end| end <= GUARD_SIZE);
    let guarded = env.bounds == BoundsStrategy::GuardPages && in_guard;
    let index = if !env.memory64(memory) {
        builder.ins().uextend(types::I64, index)
    } else if guarded {
        // Case 3 under guard pages: below 2^32 the index is as a 32-bit memory's (case 1).
        let high = builder.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, index, i64::from(u32::MAX));
        builder.ins().trapnz(high, code);
        index
    } else {
        return memory64_checked_addr(env, builder, memory, index, offset, size);
    };
    if !guarded {
        // Case 2 (a 32-bit index: the end is at most 2^33, no overflow).
        let end = builder.ins().iadd_imm_s(index, (offset + u64::from(size)) as i64);
        let length = env.memory_length(builder, memory);
        let oob = builder.ins().icmp(IntCC::UnsignedGreaterThan, end, length);
        builder.ins().trapnz(oob, code);
    }
    let base = env.memory_base(builder, memory);
    let addr = builder.ins().iadd(base, index);
    if offset == 0 {
        addr
    } else {
        builder.ins().iadd_imm_s(addr, offset as i64)
    }
}

/// Case 3 with an explicit check: `index` is an i64 of a 64-bit memory, checked in full.
fn memory64_checked_addr(
    env: &FuncEnv,
    builder: &mut FunctionBuilder,
    memory: MemoryIndex,
    index: Value,
    offset: u64,
    size: u32,
) -> Value {
    let code = TrapKind::MemoryOutOfBounds.to_trap_code();
    let offset_value = builder.ins().iconst(types::I64, offset as i64);
    let at = builder.ins().uadd_overflow_trap(index, offset_value, code);
    let size = builder.ins().iconst(types::I64, i64::from(size));
    let end = builder.ins().uadd_overflow_trap(at, size, code);
    let length = env.memory_length(builder, memory);
    let oob = builder.ins().icmp(IntCC::UnsignedGreaterThan, end, length);
    builder.ins().trapnz(oob, code);
    let base = env.memory_base(builder, memory);
    builder.ins().iadd(base, at)
}

/// Traps with an out-of-bounds memory access unless `status` (a builtin's result) is zero.
pub fn trap_on_status(builder: &mut FunctionBuilder, status: Value, kind: TrapKind) {
    builder.ins().trapnz(status, kind.to_trap_code());
}
