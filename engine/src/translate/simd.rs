//! The opcode match for SIMD128 (`v128`) operators and relaxed SIMD, lowered to Cranelift's
//! vector IR.
//!
//! **Representation.** Between operators — on the operand stack, in locals, block parameters,
//! globals, calls — a `v128` is always a Cranelift `I8X16`. Each operator bitcasts its operands
//! to the lane type it works on ([`pop_as`]), computes, and bitcasts its result back
//! ([`push`]). The bitcasts name little-endian lane order (wasm's), so they are byte-for-byte
//! identities; on x86-64 they cost nothing (one XMM register holds every vector type). No
//! operator is scalarised here: each maps to Cranelift's vector instruction, which the x86-64
//! backend lowers with SSE up to SSE4.1 (the ISA flags `cranelift-native` finds on the host, part
//! of the engine's identity, so code never runs on a CPU without them).
//!
//! **Memory.** Every load and store gets its address from the memory sandbox
//! ([`memory_addr`]) with the access's exact size: 16 bytes for a whole vector, 8 for the
//! extending loads, the lane's size for lane and splat loads, so the bounds check (or the
//! guard page) covers exactly the bytes touched.
//!
//! **Floats.** Cranelift's vector `fmin`/`fmax` are wasm's `min`/`max` (NaN-propagating,
//! -0 < +0); `pmin`/`pmax` are the spec's compare-and-select, written as `fcmp` + `bitselect`
//! with the spec's operand order; rounding uses `ceil`/`floor`/`trunc`/`nearest`.
//!
//! **Relaxed SIMD is deterministic**: every relaxed operator gives the same result on every
//! machine, the one its non-relaxed counterpart (or the exact arithmetic) gives:
//! - `i8x16.relaxed_swizzle` is `i8x16.swizzle` (an index ≥ 16 selects 0);
//! - `i32x4.relaxed_trunc_*` are the `trunc_sat` conversions (NaN → 0, saturating);
//! - `f32x4/f64x2.relaxed_madd`/`nmadd` are fused (`fma`, one rounding; a libcall per lane
//!   where the CPU has no FMA);
//! - `*.relaxed_laneselect` is `v128.bitselect` (every bit of the mask counts);
//! - `f32x4/f64x2.relaxed_min`/`max` are `min`/`max`;
//! - `i16x8.relaxed_q15mulr_s` is `i16x8.q15mulr_sat_s`;
//! - `i16x8.relaxed_dot_i8x16_i7x16_s` treats both operands as signed (the pairwise sum wraps),
//!   and `i32x4.relaxed_dot_i8x16_i7x16_add_s` adds the exact sum of the four signed products.

use super::code::memory_of;
use super::env::{heap, FuncEnv};
use super::heap::memory_addr;
use super::state::TranslationState;
use cranelift_codegen::ir::{
    condcodes::FloatCC, condcodes::IntCC, types, types::*, ConstantData, Endianness, InstBuilder, MemFlagsData, Type,
    Value,
};
use cranelift_frontend::FunctionBuilder;
use wasmparser::{MemArg, Operator};

/// An `I8X16` constant with the bytes of `bits` (little-endian: lane 0 lowest).
pub fn v128_const(builder: &mut FunctionBuilder, bits: u128) -> Value {
    vector_const(builder, I8X16, bits)
}

/// A constant of vector type `ty` with the bytes of `bits`.
fn vector_const(builder: &mut FunctionBuilder, ty: Type, bits: u128) -> Value {
    let handle = builder.func.dfg.constants.insert(ConstantData::from(&bits.to_le_bytes()[..]));
    builder.ins().vconst(ty, handle)
}

/// `v` as a vector of type `ty`: a bitcast in wasm's (little-endian) lane order, or `v` itself.
fn cast(builder: &mut FunctionBuilder, ty: Type, v: Value) -> Value {
    if builder.func.dfg.value_type(v) == ty {
        v
    } else {
        builder.ins().bitcast(ty, MemFlagsData::new().with_endianness(Endianness::Little), v)
    }
}

/// Pops a `v128` as a vector of type `ty`.
fn pop_as(builder: &mut FunctionBuilder, state: &mut TranslationState, ty: Type) -> Value {
    let v = state.pop1();
    cast(builder, ty, v)
}

/// Pops two `v128`s as vectors of type `ty`, in push order.
fn pop2_as(builder: &mut FunctionBuilder, state: &mut TranslationState, ty: Type) -> (Value, Value) {
    let b = pop_as(builder, state, ty);
    let a = pop_as(builder, state, ty);
    (a, b)
}

/// Pushes a result: a vector as the canonical `I8X16`, a scalar as it is.
fn push(builder: &mut FunctionBuilder, state: &mut TranslationState, v: Value) {
    let v = if builder.func.dfg.value_type(v).is_vector() { cast(builder, I8X16, v) } else { v };
    state.stack.push(v);
}

/// The checked native address of a `size`-byte access at the popped wasm address (an i32, or
/// an i64 in a 64-bit memory), in the memory `memarg` names.
fn pop_addr(
    env: &FuncEnv,
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    memarg: &MemArg,
    size: u32,
) -> Value {
    let index = state.pop1();
    memory_addr(env, builder, memory_of(memarg), index, memarg.offset, size)
}

/// Pops the operand of `i8x16.splat`, `i16x8.splat` … and narrows an i32 to an 8- or 16-bit
/// lane.
fn lane_scalar(builder: &mut FunctionBuilder, state: &mut TranslationState, ty: Type) -> Value {
    let x = state.pop1();
    let lane = ty.lane_type();
    if builder.func.dfg.value_type(x) == lane {
        x
    } else {
        builder.ins().ireduce(lane, x)
    }
}

/// The bytes a splat, zero-extending, lane load or lane store touches: one lane's.
fn lane_access_bytes(op: &Operator) -> u32 {
    use Operator as O;
    match op {
        O::V128Load8Splat { .. } | O::V128Load8Lane { .. } | O::V128Store8Lane { .. } => 1,
        O::V128Load16Splat { .. } | O::V128Load16Lane { .. } | O::V128Store16Lane { .. } => 2,
        O::V128Load32Splat { .. } | O::V128Load32Zero { .. } | O::V128Load32Lane { .. } | O::V128Store32Lane { .. } => {
            4
        }
        _ => 8,
    }
}

/// The vector type of a lane access of `bytes` bytes (8-, 16-, 32- or 64-bit lanes).
fn lanes_of_size(bytes: u32) -> Type {
    match bytes {
        1 => I8X16,
        2 => I16X8,
        4 => I32X4,
        _ => I64X2,
    }
}

/// Signed or unsigned, for the widening operators.
#[derive(Clone, Copy)]
enum Sign {
    Signed,
    Unsigned,
}

/// Which half of a vector a widening operator takes.
#[derive(Clone, Copy)]
enum Half {
    Low,
    High,
}

/// `v`'s `half` widened to twice the lane width, sign- or zero-extended.
fn widen(builder: &mut FunctionBuilder, sign: Sign, half: Half, v: Value) -> Value {
    match (sign, half) {
        (Sign::Signed, Half::Low) => builder.ins().swiden_low(v),
        (Sign::Signed, Half::High) => builder.ins().swiden_high(v),
        (Sign::Unsigned, Half::Low) => builder.ins().uwiden_low(v),
        (Sign::Unsigned, Half::High) => builder.ins().uwiden_high(v),
    }
}

/// The products `a[i] * b[i]` of signed lanes, exact in lanes of twice the width: those of
/// the low half, then of the high half.
fn signed_products(builder: &mut FunctionBuilder, a: Value, b: Value) -> (Value, Value) {
    let (a_lo, b_lo) = (builder.ins().swiden_low(a), builder.ins().swiden_low(b));
    let lo = builder.ins().imul(a_lo, b_lo);
    let (a_hi, b_hi) = (builder.ins().swiden_high(a), builder.ins().swiden_high(b));
    let hi = builder.ins().imul(a_hi, b_hi);
    (lo, hi)
}

/// The pairwise sums of lanes `a[2i] * b[2i] + a[2i+1] * b[2i+1]`, widened (signed) to twice
/// the lane width: `i32x4.dot_i16x8_s` and the relaxed i8 dot product.
fn signed_dot(builder: &mut FunctionBuilder, a: Value, b: Value) -> Value {
    let (lo, hi) = signed_products(builder, a, b);
    builder.ins().iadd_pairwise(lo, hi)
}

/// The pairwise sums of adjacent lanes of `v`, widened (`extadd_pairwise`).
fn extadd_pairwise(builder: &mut FunctionBuilder, sign: Sign, v: Value) -> Value {
    let lo = widen(builder, sign, Half::Low, v);
    let hi = widen(builder, sign, Half::High, v);
    builder.ins().iadd_pairwise(lo, hi)
}

/// Translates one reachable SIMD operator; returns false when `op` is not one (the caller
/// reports it unsupported).
pub fn translate_simd(
    env: &FuncEnv,
    builder: &mut FunctionBuilder,
    state: &mut TranslationState,
    op: &Operator,
) -> bool {
    use Operator as O;
    macro_rules! unop {
        ($ty:expr, $f:ident) => {{
            let a = pop_as(builder, state, $ty);
            let r = builder.ins().$f(a);
            push(builder, state, r);
        }};
    }
    macro_rules! binop {
        ($ty:expr, $f:ident) => {{
            let (a, b) = pop2_as(builder, state, $ty);
            let r = builder.ins().$f(a, b);
            push(builder, state, r);
        }};
    }
    macro_rules! icmp {
        ($ty:expr, $cc:expr) => {{
            let (a, b) = pop2_as(builder, state, $ty);
            let r = builder.ins().icmp($cc, a, b);
            push(builder, state, r);
        }};
    }
    macro_rules! fcmp {
        ($ty:expr, $cc:expr) => {{
            let (a, b) = pop2_as(builder, state, $ty);
            let r = builder.ins().fcmp($cc, a, b);
            push(builder, state, r);
        }};
    }
    macro_rules! shift {
        ($ty:expr, $f:ident) => {{
            // Cranelift takes the shift amount modulo the lane width, as wasm does.
            let amount = state.pop1();
            let a = pop_as(builder, state, $ty);
            let r = builder.ins().$f(a, amount);
            push(builder, state, r);
        }};
    }
    macro_rules! convert {
        ($from:expr, $f:ident, $to:expr) => {{
            let a = pop_as(builder, state, $from);
            let r = builder.ins().$f($to, a);
            push(builder, state, r);
        }};
    }
    macro_rules! widen {
        ($from:expr, $sign:expr, $half:expr) => {{
            let a = pop_as(builder, state, $from);
            let r = widen(builder, $sign, $half, a);
            push(builder, state, r);
        }};
    }
    macro_rules! extmul {
        ($from:expr, $sign:expr, $half:expr) => {{
            let (a, b) = pop2_as(builder, state, $from);
            let a = widen(builder, $sign, $half, a);
            let b = widen(builder, $sign, $half, b);
            let r = builder.ins().imul(a, b);
            push(builder, state, r);
        }};
    }
    macro_rules! extend_load {
        ($memarg:expr, $f:ident) => {{
            let addr = pop_addr(env, builder, state, &$memarg, 8);
            let r = builder.ins().$f(heap(), addr, 0);
            push(builder, state, r);
        }};
    }

    match *op {
        // ----- memory: addresses from the memory sandbox, sized to the bytes touched -------------
        O::V128Load { memarg } => {
            let addr = pop_addr(env, builder, state, &memarg, 16);
            let r = builder.ins().load(I8X16, heap(), addr, 0);
            push(builder, state, r);
        }
        O::V128Store { memarg } => {
            let value = state.pop1();
            let addr = pop_addr(env, builder, state, &memarg, 16);
            builder.ins().store(heap(), value, addr, 0);
        }
        O::V128Load8x8S { memarg } => extend_load!(memarg, sload8x8),
        O::V128Load8x8U { memarg } => extend_load!(memarg, uload8x8),
        O::V128Load16x4S { memarg } => extend_load!(memarg, sload16x4),
        O::V128Load16x4U { memarg } => extend_load!(memarg, uload16x4),
        O::V128Load32x2S { memarg } => extend_load!(memarg, sload32x2),
        O::V128Load32x2U { memarg } => extend_load!(memarg, uload32x2),
        O::V128Load8Splat { memarg }
        | O::V128Load16Splat { memarg }
        | O::V128Load32Splat { memarg }
        | O::V128Load64Splat { memarg } => {
            let size = lane_access_bytes(op);
            let ty = lanes_of_size(size);
            let addr = pop_addr(env, builder, state, &memarg, size);
            let x = builder.ins().load(ty.lane_type(), heap(), addr, 0);
            let r = builder.ins().splat(ty, x);
            push(builder, state, r);
        }
        O::V128Load32Zero { memarg } | O::V128Load64Zero { memarg } => {
            let size = lane_access_bytes(op);
            let ty = lanes_of_size(size);
            let addr = pop_addr(env, builder, state, &memarg, size);
            let x = builder.ins().load(ty.lane_type(), heap(), addr, 0);
            let r = builder.ins().scalar_to_vector(ty, x);
            push(builder, state, r);
        }
        O::V128Load8Lane { memarg, lane }
        | O::V128Load16Lane { memarg, lane }
        | O::V128Load32Lane { memarg, lane }
        | O::V128Load64Lane { memarg, lane } => {
            let size = lane_access_bytes(op);
            let ty = lanes_of_size(size);
            let vector = pop_as(builder, state, ty);
            let addr = pop_addr(env, builder, state, &memarg, size);
            let x = builder.ins().load(ty.lane_type(), heap(), addr, 0);
            let r = builder.ins().insertlane(vector, x, lane);
            push(builder, state, r);
        }
        O::V128Store8Lane { memarg, lane }
        | O::V128Store16Lane { memarg, lane }
        | O::V128Store32Lane { memarg, lane }
        | O::V128Store64Lane { memarg, lane } => {
            let size = lane_access_bytes(op);
            let vector = pop_as(builder, state, lanes_of_size(size));
            let addr = pop_addr(env, builder, state, &memarg, size);
            let x = builder.ins().extractlane(vector, lane);
            builder.ins().store(heap(), x, addr, 0);
        }

        // ----- constants, splats, lanes: one Cranelift instruction each --------------------------
        O::V128Const { value } => {
            let r = v128_const(builder, value.i128() as u128);
            push(builder, state, r);
        }
        O::I8x16Splat | O::I16x8Splat | O::I32x4Splat | O::I64x2Splat | O::F32x4Splat | O::F64x2Splat => {
            let ty = match *op {
                O::I8x16Splat => I8X16,
                O::I16x8Splat => I16X8,
                O::I32x4Splat => I32X4,
                O::I64x2Splat => I64X2,
                O::F32x4Splat => F32X4,
                _ => F64X2,
            };
            let x = lane_scalar(builder, state, ty);
            let r = builder.ins().splat(ty, x);
            push(builder, state, r);
        }
        O::I8x16ExtractLaneS { lane } | O::I16x8ExtractLaneS { lane } => {
            let ty = if matches!(*op, O::I8x16ExtractLaneS { .. }) { I8X16 } else { I16X8 };
            let v = pop_as(builder, state, ty);
            let x = builder.ins().extractlane(v, lane);
            let r = builder.ins().sextend(types::I32, x);
            push(builder, state, r);
        }
        O::I8x16ExtractLaneU { lane } | O::I16x8ExtractLaneU { lane } => {
            let ty = if matches!(*op, O::I8x16ExtractLaneU { .. }) { I8X16 } else { I16X8 };
            let v = pop_as(builder, state, ty);
            let x = builder.ins().extractlane(v, lane);
            let r = builder.ins().uextend(types::I32, x);
            push(builder, state, r);
        }
        O::I32x4ExtractLane { lane }
        | O::I64x2ExtractLane { lane }
        | O::F32x4ExtractLane { lane }
        | O::F64x2ExtractLane { lane } => {
            let ty = match *op {
                O::I32x4ExtractLane { .. } => I32X4,
                O::I64x2ExtractLane { .. } => I64X2,
                O::F32x4ExtractLane { .. } => F32X4,
                _ => F64X2,
            };
            let v = pop_as(builder, state, ty);
            let r = builder.ins().extractlane(v, lane);
            push(builder, state, r);
        }
        O::I8x16ReplaceLane { lane }
        | O::I16x8ReplaceLane { lane }
        | O::I32x4ReplaceLane { lane }
        | O::I64x2ReplaceLane { lane }
        | O::F32x4ReplaceLane { lane }
        | O::F64x2ReplaceLane { lane } => {
            let ty = match *op {
                O::I8x16ReplaceLane { .. } => I8X16,
                O::I16x8ReplaceLane { .. } => I16X8,
                O::I32x4ReplaceLane { .. } => I32X4,
                O::I64x2ReplaceLane { .. } => I64X2,
                O::F32x4ReplaceLane { .. } => F32X4,
                _ => F64X2,
            };
            let x = lane_scalar(builder, state, ty);
            let v = pop_as(builder, state, ty);
            let r = builder.ins().insertlane(v, x, lane);
            push(builder, state, r);
        }
        O::I8x16Shuffle { lanes } => {
            let (a, b) = pop2_as(builder, state, I8X16);
            let mask = builder.func.dfg.immediates.push(ConstantData::from(&lanes[..]));
            let r = builder.ins().shuffle(a, b, mask);
            push(builder, state, r);
        }
        // Cranelift's `swizzle` selects 0 for an index ≥ 16, as wasm's does.
        O::I8x16Swizzle | O::I8x16RelaxedSwizzle => binop!(I8X16, swizzle),

        // ----- bitwise and boolean reductions ----------------------------------------------------
        O::V128Not => unop!(I8X16, bnot),
        O::V128And => binop!(I8X16, band),
        O::V128AndNot => binop!(I8X16, band_not),
        O::V128Or => binop!(I8X16, bor),
        O::V128Xor => binop!(I8X16, bxor),
        O::V128Bitselect
        | O::I8x16RelaxedLaneselect
        | O::I16x8RelaxedLaneselect
        | O::I32x4RelaxedLaneselect
        | O::I64x2RelaxedLaneselect => {
            // wasm: (v1 & c) | (v2 & !c); Cranelift's mask comes first.
            let c = pop_as(builder, state, I8X16);
            let (v1, v2) = pop2_as(builder, state, I8X16);
            let r = builder.ins().bitselect(c, v1, v2);
            push(builder, state, r);
        }
        O::V128AnyTrue => {
            let a = pop_as(builder, state, I8X16);
            let r = builder.ins().vany_true(a);
            let r = builder.ins().uextend(types::I32, r);
            push(builder, state, r);
        }
        O::I8x16AllTrue | O::I16x8AllTrue | O::I32x4AllTrue | O::I64x2AllTrue => {
            let ty = match *op {
                O::I8x16AllTrue => I8X16,
                O::I16x8AllTrue => I16X8,
                O::I32x4AllTrue => I32X4,
                _ => I64X2,
            };
            let a = pop_as(builder, state, ty);
            let r = builder.ins().vall_true(a);
            let r = builder.ins().uextend(types::I32, r);
            push(builder, state, r);
        }
        O::I8x16Bitmask | O::I16x8Bitmask | O::I32x4Bitmask | O::I64x2Bitmask => {
            let ty = match *op {
                O::I8x16Bitmask => I8X16,
                O::I16x8Bitmask => I16X8,
                O::I32x4Bitmask => I32X4,
                _ => I64X2,
            };
            let a = pop_as(builder, state, ty);
            let r = builder.ins().vhigh_bits(types::I32, a);
            push(builder, state, r);
        }

        // ----- integer comparisons: all-ones / all-zeros lanes, as wasm's ------------------------
        O::I8x16Eq => icmp!(I8X16, IntCC::Equal),
        O::I8x16Ne => icmp!(I8X16, IntCC::NotEqual),
        O::I8x16LtS => icmp!(I8X16, IntCC::SignedLessThan),
        O::I8x16LtU => icmp!(I8X16, IntCC::UnsignedLessThan),
        O::I8x16GtS => icmp!(I8X16, IntCC::SignedGreaterThan),
        O::I8x16GtU => icmp!(I8X16, IntCC::UnsignedGreaterThan),
        O::I8x16LeS => icmp!(I8X16, IntCC::SignedLessThanOrEqual),
        O::I8x16LeU => icmp!(I8X16, IntCC::UnsignedLessThanOrEqual),
        O::I8x16GeS => icmp!(I8X16, IntCC::SignedGreaterThanOrEqual),
        O::I8x16GeU => icmp!(I8X16, IntCC::UnsignedGreaterThanOrEqual),
        O::I16x8Eq => icmp!(I16X8, IntCC::Equal),
        O::I16x8Ne => icmp!(I16X8, IntCC::NotEqual),
        O::I16x8LtS => icmp!(I16X8, IntCC::SignedLessThan),
        O::I16x8LtU => icmp!(I16X8, IntCC::UnsignedLessThan),
        O::I16x8GtS => icmp!(I16X8, IntCC::SignedGreaterThan),
        O::I16x8GtU => icmp!(I16X8, IntCC::UnsignedGreaterThan),
        O::I16x8LeS => icmp!(I16X8, IntCC::SignedLessThanOrEqual),
        O::I16x8LeU => icmp!(I16X8, IntCC::UnsignedLessThanOrEqual),
        O::I16x8GeS => icmp!(I16X8, IntCC::SignedGreaterThanOrEqual),
        O::I16x8GeU => icmp!(I16X8, IntCC::UnsignedGreaterThanOrEqual),
        O::I32x4Eq => icmp!(I32X4, IntCC::Equal),
        O::I32x4Ne => icmp!(I32X4, IntCC::NotEqual),
        O::I32x4LtS => icmp!(I32X4, IntCC::SignedLessThan),
        O::I32x4LtU => icmp!(I32X4, IntCC::UnsignedLessThan),
        O::I32x4GtS => icmp!(I32X4, IntCC::SignedGreaterThan),
        O::I32x4GtU => icmp!(I32X4, IntCC::UnsignedGreaterThan),
        O::I32x4LeS => icmp!(I32X4, IntCC::SignedLessThanOrEqual),
        O::I32x4LeU => icmp!(I32X4, IntCC::UnsignedLessThanOrEqual),
        O::I32x4GeS => icmp!(I32X4, IntCC::SignedGreaterThanOrEqual),
        O::I32x4GeU => icmp!(I32X4, IntCC::UnsignedGreaterThanOrEqual),
        O::I64x2Eq => icmp!(I64X2, IntCC::Equal),
        O::I64x2Ne => icmp!(I64X2, IntCC::NotEqual),
        O::I64x2LtS => icmp!(I64X2, IntCC::SignedLessThan),
        O::I64x2GtS => icmp!(I64X2, IntCC::SignedGreaterThan),
        O::I64x2LeS => icmp!(I64X2, IntCC::SignedLessThanOrEqual),
        O::I64x2GeS => icmp!(I64X2, IntCC::SignedGreaterThanOrEqual),

        // ----- float comparisons: ordered, except `ne` (true on NaN), as wasm's ------------------
        O::F32x4Eq => fcmp!(F32X4, FloatCC::Equal),
        O::F32x4Ne => fcmp!(F32X4, FloatCC::NotEqual),
        O::F32x4Lt => fcmp!(F32X4, FloatCC::LessThan),
        O::F32x4Gt => fcmp!(F32X4, FloatCC::GreaterThan),
        O::F32x4Le => fcmp!(F32X4, FloatCC::LessThanOrEqual),
        O::F32x4Ge => fcmp!(F32X4, FloatCC::GreaterThanOrEqual),
        O::F64x2Eq => fcmp!(F64X2, FloatCC::Equal),
        O::F64x2Ne => fcmp!(F64X2, FloatCC::NotEqual),
        O::F64x2Lt => fcmp!(F64X2, FloatCC::LessThan),
        O::F64x2Gt => fcmp!(F64X2, FloatCC::GreaterThan),
        O::F64x2Le => fcmp!(F64X2, FloatCC::LessThanOrEqual),
        O::F64x2Ge => fcmp!(F64X2, FloatCC::GreaterThanOrEqual),

        // ----- integer arithmetic: wrapping, saturating, min/max, averages ------------------------
        O::I8x16Add => binop!(I8X16, iadd),
        O::I16x8Add => binop!(I16X8, iadd),
        O::I32x4Add => binop!(I32X4, iadd),
        O::I64x2Add => binop!(I64X2, iadd),
        O::I8x16Sub => binop!(I8X16, isub),
        O::I16x8Sub => binop!(I16X8, isub),
        O::I32x4Sub => binop!(I32X4, isub),
        O::I64x2Sub => binop!(I64X2, isub),
        O::I16x8Mul => binop!(I16X8, imul),
        O::I32x4Mul => binop!(I32X4, imul),
        O::I64x2Mul => binop!(I64X2, imul),
        O::I8x16AddSatS => binop!(I8X16, sadd_sat),
        O::I8x16AddSatU => binop!(I8X16, uadd_sat),
        O::I16x8AddSatS => binop!(I16X8, sadd_sat),
        O::I16x8AddSatU => binop!(I16X8, uadd_sat),
        O::I8x16SubSatS => binop!(I8X16, ssub_sat),
        O::I8x16SubSatU => binop!(I8X16, usub_sat),
        O::I16x8SubSatS => binop!(I16X8, ssub_sat),
        O::I16x8SubSatU => binop!(I16X8, usub_sat),
        O::I8x16MinS => binop!(I8X16, smin),
        O::I8x16MinU => binop!(I8X16, umin),
        O::I8x16MaxS => binop!(I8X16, smax),
        O::I8x16MaxU => binop!(I8X16, umax),
        O::I16x8MinS => binop!(I16X8, smin),
        O::I16x8MinU => binop!(I16X8, umin),
        O::I16x8MaxS => binop!(I16X8, smax),
        O::I16x8MaxU => binop!(I16X8, umax),
        O::I32x4MinS => binop!(I32X4, smin),
        O::I32x4MinU => binop!(I32X4, umin),
        O::I32x4MaxS => binop!(I32X4, smax),
        O::I32x4MaxU => binop!(I32X4, umax),
        O::I8x16AvgrU => binop!(I8X16, avg_round),
        O::I16x8AvgrU => binop!(I16X8, avg_round),
        O::I8x16Abs => unop!(I8X16, iabs),
        O::I16x8Abs => unop!(I16X8, iabs),
        O::I32x4Abs => unop!(I32X4, iabs),
        O::I64x2Abs => unop!(I64X2, iabs),
        O::I8x16Neg => unop!(I8X16, ineg),
        O::I16x8Neg => unop!(I16X8, ineg),
        O::I32x4Neg => unop!(I32X4, ineg),
        O::I64x2Neg => unop!(I64X2, ineg),
        O::I8x16Popcnt => unop!(I8X16, popcnt),
        O::I16x8Q15MulrSatS | O::I16x8RelaxedQ15mulrS => binop!(I16X8, sqmul_round_sat),
        O::I8x16Shl => shift!(I8X16, ishl),
        O::I8x16ShrS => shift!(I8X16, sshr),
        O::I8x16ShrU => shift!(I8X16, ushr),
        O::I16x8Shl => shift!(I16X8, ishl),
        O::I16x8ShrS => shift!(I16X8, sshr),
        O::I16x8ShrU => shift!(I16X8, ushr),
        O::I32x4Shl => shift!(I32X4, ishl),
        O::I32x4ShrS => shift!(I32X4, sshr),
        O::I32x4ShrU => shift!(I32X4, ushr),
        O::I64x2Shl => shift!(I64X2, ishl),
        O::I64x2ShrS => shift!(I64X2, sshr),
        O::I64x2ShrU => shift!(I64X2, ushr),

        // ----- narrowing, widening, extended multiplies and dot products -------------------------
        O::I8x16NarrowI16x8S => binop!(I16X8, snarrow),
        O::I8x16NarrowI16x8U => binop!(I16X8, unarrow),
        O::I16x8NarrowI32x4S => binop!(I32X4, snarrow),
        O::I16x8NarrowI32x4U => binop!(I32X4, unarrow),
        O::I16x8ExtendLowI8x16S => widen!(I8X16, Sign::Signed, Half::Low),
        O::I16x8ExtendHighI8x16S => widen!(I8X16, Sign::Signed, Half::High),
        O::I16x8ExtendLowI8x16U => widen!(I8X16, Sign::Unsigned, Half::Low),
        O::I16x8ExtendHighI8x16U => widen!(I8X16, Sign::Unsigned, Half::High),
        O::I32x4ExtendLowI16x8S => widen!(I16X8, Sign::Signed, Half::Low),
        O::I32x4ExtendHighI16x8S => widen!(I16X8, Sign::Signed, Half::High),
        O::I32x4ExtendLowI16x8U => widen!(I16X8, Sign::Unsigned, Half::Low),
        O::I32x4ExtendHighI16x8U => widen!(I16X8, Sign::Unsigned, Half::High),
        O::I64x2ExtendLowI32x4S => widen!(I32X4, Sign::Signed, Half::Low),
        O::I64x2ExtendHighI32x4S => widen!(I32X4, Sign::Signed, Half::High),
        O::I64x2ExtendLowI32x4U => widen!(I32X4, Sign::Unsigned, Half::Low),
        O::I64x2ExtendHighI32x4U => widen!(I32X4, Sign::Unsigned, Half::High),
        O::I16x8ExtMulLowI8x16S => extmul!(I8X16, Sign::Signed, Half::Low),
        O::I16x8ExtMulHighI8x16S => extmul!(I8X16, Sign::Signed, Half::High),
        O::I16x8ExtMulLowI8x16U => extmul!(I8X16, Sign::Unsigned, Half::Low),
        O::I16x8ExtMulHighI8x16U => extmul!(I8X16, Sign::Unsigned, Half::High),
        O::I32x4ExtMulLowI16x8S => extmul!(I16X8, Sign::Signed, Half::Low),
        O::I32x4ExtMulHighI16x8S => extmul!(I16X8, Sign::Signed, Half::High),
        O::I32x4ExtMulLowI16x8U => extmul!(I16X8, Sign::Unsigned, Half::Low),
        O::I32x4ExtMulHighI16x8U => extmul!(I16X8, Sign::Unsigned, Half::High),
        O::I64x2ExtMulLowI32x4S => extmul!(I32X4, Sign::Signed, Half::Low),
        O::I64x2ExtMulHighI32x4S => extmul!(I32X4, Sign::Signed, Half::High),
        O::I64x2ExtMulLowI32x4U => extmul!(I32X4, Sign::Unsigned, Half::Low),
        O::I64x2ExtMulHighI32x4U => extmul!(I32X4, Sign::Unsigned, Half::High),
        O::I16x8ExtAddPairwiseI8x16S | O::I16x8ExtAddPairwiseI8x16U => {
            let a = pop_as(builder, state, I8X16);
            let sign = if matches!(*op, O::I16x8ExtAddPairwiseI8x16S) { Sign::Signed } else { Sign::Unsigned };
            let r = extadd_pairwise(builder, sign, a);
            push(builder, state, r);
        }
        O::I32x4ExtAddPairwiseI16x8S | O::I32x4ExtAddPairwiseI16x8U => {
            let a = pop_as(builder, state, I16X8);
            let sign = if matches!(*op, O::I32x4ExtAddPairwiseI16x8S) { Sign::Signed } else { Sign::Unsigned };
            let r = extadd_pairwise(builder, sign, a);
            push(builder, state, r);
        }
        O::I32x4DotI16x8S => {
            let (a, b) = pop2_as(builder, state, I16X8);
            let r = signed_dot(builder, a, b);
            push(builder, state, r);
        }
        O::I16x8RelaxedDotI8x16I7x16S => {
            let (a, b) = pop2_as(builder, state, I8X16);
            let r = signed_dot(builder, a, b);
            push(builder, state, r);
        }
        O::I32x4RelaxedDotI8x16I7x16AddS => {
            // Each signed i8 product fits an i16; their sums of four need an i32: the products
            // are widened pairwise to i32, then the pairs added.
            let c = pop_as(builder, state, I32X4);
            let (a, b) = pop2_as(builder, state, I8X16);
            let (lo, hi) = signed_products(builder, a, b);
            let lo = extadd_pairwise(builder, Sign::Signed, lo);
            let hi = extadd_pairwise(builder, Sign::Signed, hi);
            let dot = builder.ins().iadd_pairwise(lo, hi);
            let r = builder.ins().iadd(dot, c);
            push(builder, state, r);
        }

        // ----- float arithmetic: IEEE operations; wasm's min/max; pmin/pmax by compare-select -----
        O::F32x4Add => binop!(F32X4, fadd),
        O::F32x4Sub => binop!(F32X4, fsub),
        O::F32x4Mul => binop!(F32X4, fmul),
        O::F32x4Div => binop!(F32X4, fdiv),
        O::F32x4Min | O::F32x4RelaxedMin => binop!(F32X4, fmin),
        O::F32x4Max | O::F32x4RelaxedMax => binop!(F32X4, fmax),
        O::F64x2Add => binop!(F64X2, fadd),
        O::F64x2Sub => binop!(F64X2, fsub),
        O::F64x2Mul => binop!(F64X2, fmul),
        O::F64x2Div => binop!(F64X2, fdiv),
        O::F64x2Min | O::F64x2RelaxedMin => binop!(F64X2, fmin),
        O::F64x2Max | O::F64x2RelaxedMax => binop!(F64X2, fmax),
        O::F32x4PMin | O::F32x4PMax | O::F64x2PMin | O::F64x2PMax => {
            // pmin(a, b) = b < a ? b : a;  pmax(a, b) = a < b ? b : a.
            let ty = if matches!(*op, O::F32x4PMin | O::F32x4PMax) { F32X4 } else { F64X2 };
            let (a, b) = pop2_as(builder, state, ty);
            let less = match *op {
                O::F32x4PMin | O::F64x2PMin => builder.ins().fcmp(FloatCC::LessThan, b, a),
                _ => builder.ins().fcmp(FloatCC::LessThan, a, b),
            };
            let mask = cast(builder, ty, less);
            let r = builder.ins().bitselect(mask, b, a);
            push(builder, state, r);
        }
        O::F32x4Abs => unop!(F32X4, fabs),
        O::F32x4Neg => unop!(F32X4, fneg),
        O::F32x4Sqrt => unop!(F32X4, sqrt),
        O::F32x4Ceil => unop!(F32X4, ceil),
        O::F32x4Floor => unop!(F32X4, floor),
        O::F32x4Trunc => unop!(F32X4, trunc),
        O::F32x4Nearest => unop!(F32X4, nearest),
        O::F64x2Abs => unop!(F64X2, fabs),
        O::F64x2Neg => unop!(F64X2, fneg),
        O::F64x2Sqrt => unop!(F64X2, sqrt),
        O::F64x2Ceil => unop!(F64X2, ceil),
        O::F64x2Floor => unop!(F64X2, floor),
        O::F64x2Trunc => unop!(F64X2, trunc),
        O::F64x2Nearest => unop!(F64X2, nearest),
        O::F32x4RelaxedMadd | O::F32x4RelaxedNmadd | O::F64x2RelaxedMadd | O::F64x2RelaxedNmadd => {
            let ty = if matches!(*op, O::F32x4RelaxedMadd | O::F32x4RelaxedNmadd) { F32X4 } else { F64X2 };
            let c = pop_as(builder, state, ty);
            let (a, b) = pop2_as(builder, state, ty);
            let a = match *op {
                O::F32x4RelaxedNmadd | O::F64x2RelaxedNmadd => builder.ins().fneg(a),
                _ => a,
            };
            let r = builder.ins().fma(a, b, c);
            push(builder, state, r);
        }

        // ----- conversions: saturating float → int, the `_zero` forms fill the high lanes with 0 --
        O::I32x4TruncSatF32x4S | O::I32x4RelaxedTruncF32x4S => convert!(F32X4, fcvt_to_sint_sat, I32X4),
        O::I32x4TruncSatF32x4U | O::I32x4RelaxedTruncF32x4U => convert!(F32X4, fcvt_to_uint_sat, I32X4),
        O::I32x4TruncSatF64x2SZero
        | O::I32x4RelaxedTruncF64x2SZero
        | O::I32x4TruncSatF64x2UZero
        | O::I32x4RelaxedTruncF64x2UZero => {
            // x86-64 lowers these narrows only in this shape: a conversion and a zero `I64X2`
            // constant (not a bitcast one).
            let a = pop_as(builder, state, F64X2);
            let zero = vector_const(builder, I64X2, 0);
            let r = match *op {
                O::I32x4TruncSatF64x2SZero | O::I32x4RelaxedTruncF64x2SZero => {
                    let wide = builder.ins().fcvt_to_sint_sat(I64X2, a);
                    builder.ins().snarrow(wide, zero)
                }
                _ => {
                    let wide = builder.ins().fcvt_to_uint_sat(I64X2, a);
                    builder.ins().uunarrow(wide, zero)
                }
            };
            push(builder, state, r);
        }
        O::F32x4ConvertI32x4S => convert!(I32X4, fcvt_from_sint, F32X4),
        O::F32x4ConvertI32x4U => convert!(I32X4, fcvt_from_uint, F32X4),
        O::F64x2ConvertLowI32x4S | O::F64x2ConvertLowI32x4U => {
            let a = pop_as(builder, state, I32X4);
            let r = if matches!(*op, O::F64x2ConvertLowI32x4S) {
                let wide = builder.ins().swiden_low(a);
                builder.ins().fcvt_from_sint(F64X2, wide)
            } else {
                let wide = builder.ins().uwiden_low(a);
                builder.ins().fcvt_from_uint(F64X2, wide)
            };
            push(builder, state, r);
        }
        O::F32x4DemoteF64x2Zero => unop!(F64X2, fvdemote),
        O::F64x2PromoteLowF32x4 => unop!(F32X4, fvpromote_low),

        _ => return false,
    }
    true
}
