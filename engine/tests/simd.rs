//! SIMD128 beyond the specification suite: a vectorised program agrees with its scalar twin,
//! `v128` values cross the host boundary (parameters, results, globals, host functions) and flow
//! through blocks, branches, `select` and tail calls, a vector access traps at the first byte
//! past the memory under both bounds strategies, relaxed SIMD gives its documented results, and
//! SIMD operators count one instruction each.

mod common;

use common::{call, instantiate, trap_kind};
use engine::*;

fn engine(bounds: BoundsStrategy) -> Engine {
    Engine::new(Config { bounds: Some(bounds), ..Config::default() }).expect("engine")
}

const STRATEGIES: [BoundsStrategy; 2] = [BoundsStrategy::GuardPages, BoundsStrategy::Explicit];

/// An engine for each bounds strategy, without and with instruction counting.
fn engines() -> impl Iterator<Item = Engine> {
    STRATEGIES.into_iter().flat_map(|bounds| {
        [false, true].into_iter().map(move |counting| {
            Engine::new(Config { bounds: Some(bounds), count_instructions: counting, ..Config::default() })
                .expect("engine")
        })
    })
}

/// Dot products of two i32 arrays at 0 and 4096 (n elements, n a multiple of 4), scalar and
/// with `i32x4`, and a sum of f32s both ways (exactly representable, so the order of the
/// additions does not matter).
const DOT: &str = r#"
(module
  (memory (export "memory") 1)
  ;; a[i] = 3i - 7, b[i] = 1000 - 5i, f[i] = i / 4 as f32 at 8192
  (func (export "init") (param $n i32)
    (local $i i32)
    (loop $l
      (i32.store (i32.shl (local.get $i) (i32.const 2))
        (i32.sub (i32.mul (local.get $i) (i32.const 3)) (i32.const 7)))
      (i32.store offset=4096 (i32.shl (local.get $i) (i32.const 2))
        (i32.sub (i32.const 1000) (i32.mul (local.get $i) (i32.const 5))))
      (f32.store offset=8192 (i32.shl (local.get $i) (i32.const 2))
        (f32.div (f32.convert_i32_s (local.get $i)) (f32.const 4)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))
  (func (export "dot_scalar") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc)
        (i32.mul (i32.load (i32.shl (local.get $i) (i32.const 2)))
                 (i32.load offset=4096 (i32.shl (local.get $i) (i32.const 2))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
  (func (export "dot_simd") (param $n i32) (result i32)
    (local $p i32) (local $acc v128)
    (loop $l
      (local.set $acc (i32x4.add (local.get $acc)
        (i32x4.mul (v128.load (local.get $p)) (v128.load offset=4096 (local.get $p)))))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br_if $l (i32.lt_u (local.get $p) (i32.shl (local.get $n) (i32.const 2)))))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
      (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
  (func (export "sum_scalar") (param $n i32) (result f32)
    (local $i i32) (local $acc f32)
    (loop $l
      (local.set $acc (f32.add (local.get $acc) (f32.load offset=8192 (i32.shl (local.get $i) (i32.const 2)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))
  (func (export "sum_simd") (param $n i32) (result f32)
    (local $p i32) (local $acc v128)
    (loop $l
      (local.set $acc (f32x4.add (local.get $acc) (v128.load offset=8192 (local.get $p))))
      (local.set $p (i32.add (local.get $p) (i32.const 16)))
      (br_if $l (i32.lt_u (local.get $p) (i32.shl (local.get $n) (i32.const 2)))))
    ;; horizontal sum by shuffles: lanes (0+2, 1+3), then (0+1)
    (local.set $acc (f32x4.add (local.get $acc)
      (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $acc) (local.get $acc))))
    (f32.add (f32x4.extract_lane 0 (local.get $acc)) (f32x4.extract_lane 1 (local.get $acc)))))
"#;

#[test]
fn a_vectorised_dot_product_equals_the_scalar_one() {
    for engine in engines() {
        let (mut store, i) = instantiate(&engine, DOT);
        for n in [4, 8, 100, 1000] {
            call(&mut store, i, "init", &[Val::I32(n)]).unwrap();
            let expected: i64 = (0..n as i64).map(|i| (3 * i - 7) * (1000 - 5 * i)).sum();
            let scalar = call(&mut store, i, "dot_scalar", &[Val::I32(n)]).unwrap();
            let simd = call(&mut store, i, "dot_simd", &[Val::I32(n)]).unwrap();
            assert_eq!(scalar, vec![Val::I32(expected as i32)], "n {n}");
            assert_eq!(simd, scalar, "n {n}, {:?}, counting {}", engine.bounds(), engine.config().count_instructions);
            let scalar = call(&mut store, i, "sum_scalar", &[Val::I32(n)]).unwrap();
            let simd = call(&mut store, i, "sum_simd", &[Val::I32(n)]).unwrap();
            let expected: f32 = (0..n).map(|i| i as f32 / 4.0).sum();
            assert_eq!(scalar, vec![Val::F32(expected.to_bits())], "n {n}");
            assert_eq!(simd, scalar, "n {n}, {:?}, counting {}", engine.bounds(), engine.config().count_instructions);
        }
    }
}

/// The lanes of an `i32x4` as a `v128`'s bits.
fn i32x4(lanes: [u32; 4]) -> u128 {
    lanes.iter().rev().fold(0u128, |acc, l| acc << 32 | u128::from(*l))
}

#[test]
fn v128_values_cross_the_host_boundary() {
    let wat = r#"
    (module
      (import "host" "twice" (func $twice (param v128) (result v128)))
      (import "host" "base" (global $base v128))
      (global $last (export "last") (mut v128) (v128.const i32x4 0 0 0 0))
      (global (export "const") v128 (v128.const i64x2 0x0102030405060708 -1))
      ;; last := twice(x) + base; returns (last, x reversed lane-wise, an i32 after them)
      (func (export "f") (param $x v128) (param $k i32) (result v128 v128 i32)
        (global.set $last (i32x4.add (call $twice (local.get $x)) (global.get $base)))
        (global.get $last)
        (i8x16.shuffle 12 13 14 15 8 9 10 11 4 5 6 7 0 1 2 3 (local.get $x) (local.get $x))
        (local.get $k)))
    "#;
    for bounds in STRATEGIES {
        let engine = engine(bounds);
        let module = Module::new(&engine, wat::parse_str(wat).unwrap().as_slice()).expect("compiles");
        let mut store = Store::new(&engine);
        let twice = store.new_host_func(FuncType::new([ValType::V128], [ValType::V128]), |_, args, results| {
            let Val::V128(x) = args[0] else { unreachable!("typed") };
            let lanes =
                x.to_le_bytes().chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>();
            results[0] = Val::V128(i32x4([0, 1, 2, 3].map(|l| lanes[l].wrapping_mul(2))));
            Ok(())
        });
        let base = store
            .new_global(GlobalType { ty: ValType::V128, mutable: false }, Val::V128(i32x4([100, 200, 300, 400])))
            .unwrap();
        let mut linker = Linker::new();
        linker.define("host", "twice", Extern::Func(twice)).define("host", "base", Extern::Global(base));
        let i = linker.instantiate(&mut store, &module).expect("instantiates");
        let x = i32x4([1, 2, 3, 0xffff_fff0]);
        let r = call(&mut store, i, "f", &[Val::V128(x), Val::I32(-9)]).unwrap();
        let sum = i32x4([102, 204, 306, 0xffff_ffe0u32.wrapping_add(400)]);
        assert_eq!(r, vec![Val::V128(sum), Val::V128(i32x4([0xffff_fff0, 3, 2, 1])), Val::I32(-9)]);
        let Some(Extern::Global(last)) = store.get_export(i, "last") else { panic!("global export") };
        assert_eq!(store.global_get(last), Val::V128(sum));
        assert_eq!(store.global_type(last).ty, ValType::V128);
        let Some(Extern::Global(c)) = store.get_export(i, "const") else { panic!("global export") };
        assert_eq!(store.global_get(c), Val::V128(u128::MAX << 64 | 0x0102030405060708));
        // A value of the wrong type is refused, not reinterpreted.
        assert!(call(&mut store, i, "f", &[Val::I64(1), Val::I32(0)]).is_err());
    }
}

#[test]
fn a_vector_access_traps_at_its_last_byte_past_the_memory() {
    let wat = r#"
    (module
      (memory (export "memory") 1)
      (func (export "load") (param i32) (result v128) (v128.load (local.get 0)))
      (func (export "load_offset") (param i32) (result v128) (v128.load offset=65520 (local.get 0)))
      (func (export "store") (param i32) (v128.store (local.get 0) (v128.const i64x2 -1 -1)))
      (func (export "load64_lane") (param i32) (result v128)
        (v128.load64_lane 1 (local.get 0) (v128.const i64x2 0 0)))
      (func (export "load32_splat") (param i32) (result v128) (v128.load32_splat (local.get 0)))
      (func (export "load16x4_u") (param i32) (result v128) (v128.load16x4_u (local.get 0)))
      (func (export "store8_lane") (param i32) (v128.store8_lane 15 (local.get 0) (v128.const i64x2 -1 -1))))
    "#;
    const END: i32 = 65536;
    for engine in engines() {
        let (mut store, i) = instantiate(&engine, wat);
        let oob = |store: &mut Store, name: &str, at: i32| {
            assert_eq!(trap_kind(call(store, i, name, &[Val::I32(at)])), TrapKind::MemoryOutOfBounds, "{name} {at}");
        };
        // The last whole access fits; one byte further, only its last byte is outside.
        for (name, size) in [("load", 16), ("load64_lane", 8), ("load32_splat", 4), ("load16x4_u", 8)] {
            call(&mut store, i, name, &[Val::I32(END - size)]).unwrap_or_else(|e| panic!("{name}: {e}"));
            oob(&mut store, name, END - size + 1);
            oob(&mut store, name, -1);
        }
        call(&mut store, i, "load_offset", &[Val::I32(0)]).unwrap();
        oob(&mut store, "load_offset", 1);
        call(&mut store, i, "store8_lane", &[Val::I32(END - 1)]).unwrap();
        oob(&mut store, "store8_lane", END);
        // A store that does not fit writes nothing.
        oob(&mut store, "store", END - 15);
        let Some(Extern::Memory(memory)) = store.get_export(i, "memory") else { panic!("memory export") };
        assert!(store.memory_data(memory)[END as usize - 15..END as usize - 1].iter().all(|b| *b == 0));
        call(&mut store, i, "store", &[Val::I32(END - 16)]).unwrap();
        assert!(store.memory_data(memory)[END as usize - 16..].iter().all(|b| *b == 0xff));
    }
}

/// A `v128` from lanes of `width` bytes, lane 0 first (each lane's low `width` bytes).
fn lanes(values: &[i64], width: usize) -> u128 {
    values.iter().rev().fold(0u128, |acc, v| acc << (8 * width) | (*v as u128 & ((1u128 << (8 * width)) - 1)))
}

#[test]
fn relaxed_simd_gives_its_documented_deterministic_results() {
    let wat = r#"
    (module
      (func (export "swizzle") (param v128 v128) (result v128) (i8x16.relaxed_swizzle (local.get 0) (local.get 1)))
      (func (export "trunc_s") (param v128) (result v128) (i32x4.relaxed_trunc_f32x4_s (local.get 0)))
      (func (export "trunc_u_zero") (param v128) (result v128) (i32x4.relaxed_trunc_f64x2_u_zero (local.get 0)))
      (func (export "madd") (param v128 v128 v128) (result v128)
        (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2)))
      (func (export "laneselect") (param v128 v128 v128) (result v128)
        (i32x4.relaxed_laneselect (local.get 0) (local.get 1) (local.get 2)))
      (func (export "min") (param v128 v128) (result v128) (f32x4.relaxed_min (local.get 0) (local.get 1)))
      (func (export "q15") (param v128 v128) (result v128) (i16x8.relaxed_q15mulr_s (local.get 0) (local.get 1)))
      (func (export "dot") (param v128 v128) (result v128) (i16x8.relaxed_dot_i8x16_i7x16_s (local.get 0) (local.get 1)))
      (func (export "dot_add") (param v128 v128 v128) (result v128)
        (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get 0) (local.get 1) (local.get 2))))
    "#;
    let v = Val::V128;
    let f32x4 = |l: [f32; 4]| lanes(&l.map(|x| i64::from(x.to_bits())), 4);
    for bounds in STRATEGIES {
        let (mut store, i) = instantiate(&engine(bounds), wat);
        let mut run = |name: &str, args: &[u128]| {
            let args: Vec<Val> = args.iter().map(|a| v(*a)).collect();
            match call(&mut store, i, name, &args).unwrap()[..] {
                [Val::V128(r)] => r,
                ref other => panic!("{name}: {other:?}"),
            }
        };
        // An index of 16 or more selects 0, whatever its low bits (x86's pshufb would not).
        let bytes = lanes(&(1..=16).collect::<Vec<_>>(), 1);
        let index = lanes(&[0, 15, 16, 0x80, 0xff, 0x8f, 31, 1, 0, 0, 0, 0, 0, 0, 0, 0], 1);
        assert_eq!(run("swizzle", &[bytes, index]), lanes(&[1, 16, 0, 0, 0, 0, 0, 2, 1, 1, 1, 1, 1, 1, 1, 1], 1));
        // Saturating, NaN to 0, as trunc_sat.
        let r = run("trunc_s", &[f32x4([f32::NAN, 3e9, -3e9, -1.5])]);
        assert_eq!(r, lanes(&[0, i64::from(i32::MAX), i64::from(i32::MIN), -1], 4));
        let f64x2 = |l: [f64; 2]| lanes(&l.map(|x| x.to_bits() as i64), 8);
        assert_eq!(run("trunc_u_zero", &[f64x2([f64::NAN, -1.0])]), 0);
        assert_eq!(run("trunc_u_zero", &[f64x2([5e9, 2.9])]), lanes(&[0xffff_ffff, 2, 0, 0], 4));
        // Fused: (1 + 2^-12)^2 - (1 + 2^-11) is 2^-24 with one rounding, 0 with two.
        let x = 1.0 + f32::powi(2.0, -12);
        let r = run("madd", &[f32x4([x; 4]), f32x4([x; 4]), f32x4([-(1.0 + f32::powi(2.0, -11)); 4])]);
        assert_eq!(r, f32x4([f32::powi(2.0, -24); 4]));
        // Every bit of the mask selects, as bitselect.
        let (a, b, m) = (u128::MAX / 0xff * 0xaa, u128::MAX / 0xff * 0x55, u128::MAX / 0xff * 0x0f);
        assert_eq!(run("laneselect", &[a, b, m]), u128::MAX / 0xff * 0x5a);
        // wasm's min: NaN propagates, -0 < +0.
        let r = run("min", &[f32x4([f32::NAN, -0.0, 0.0, 2.0]), f32x4([1.0, 0.0, -0.0, -3.0])]);
        let r = r.to_le_bytes();
        let lane = |i: usize| u32::from_le_bytes(r[4 * i..4 * i + 4].try_into().unwrap());
        assert!(f32::from_bits(lane(0)).is_nan());
        assert_eq!([lane(1), lane(2), lane(3)], [(-0.0f32).to_bits(), (-0.0f32).to_bits(), (-3.0f32).to_bits()]);
        // Saturating, as q15mulr_sat_s.
        let min16 = lanes(&[-32768; 8], 2);
        assert_eq!(run("q15", &[min16, min16]), lanes(&[32767; 8], 2));
        // Both operands signed; the i16 sum wraps; the i32 sum of four products is exact.
        let min8 = lanes(&[-128; 16], 1);
        assert_eq!(run("dot", &[min8, min8]), lanes(&[-32768; 8], 2));
        assert_eq!(run("dot_add", &[min8, min8, lanes(&[1, 2, 3, -4], 4)]), lanes(&[65537, 65538, 65539, 65532], 4));
    }
}

#[test]
fn simd_operators_count_one_each() {
    let wat = r#"
    (module
      (memory 1)
      ;; 5 operators and the function's end
      (func (export "add") (result i32)
        (i32x4.extract_lane 3 (i32x4.add (v128.const i32x4 1 2 3 4) (i32x4.splat (i32.const 5)))))
      ;; traps at the 4th operator, which counts
      (func (export "oob") (result v128)
        (v128.const i64x2 0 0) (drop) (i32.const 65535) (v128.load) (drop) (v128.const i64x2 0 0)))
    "#;
    for bounds in STRATEGIES {
        let engine = Engine::new(Config { bounds: Some(bounds), count_instructions: true, ..Config::default() })
            .expect("engine");
        let (mut store, i) = instantiate(&engine, wat);
        assert_eq!(call(&mut store, i, "add", &[]).unwrap(), vec![Val::I32(9)]);
        assert_eq!(store.instructions_used(), Some(6), "{bounds:?}");
        let (mut store, i) = instantiate(&engine, wat);
        assert_eq!(trap_kind(call(&mut store, i, "oob", &[])), TrapKind::MemoryOutOfBounds);
        assert_eq!(store.instructions_used(), Some(4), "{bounds:?}");
    }
}

#[test]
fn v128_values_flow_through_blocks_branches_select_and_tail_calls() {
    let wat = r#"
    (module
      (type $v (func (param v128) (result v128)))
      (table funcref (elem $inc))
      (func $inc (type $v) (i32x4.add (local.get 0) (v128.const i32x4 1 1 1 1)))
      ;; n increments through a loop whose parameter is a v128, then a branch table and select
      (func (export "run") (param $x v128) (param $n i32) (result v128)
        (local.get $x)
        (loop $l (param v128) (result v128)
          (call $inc)
          (local.tee $n (i32.sub (local.get $n) (i32.const 1)))
          (br_if $l))
        (block $b (param v128) (result v128)
          (block $a (param v128) (result v128)
            (br_table $a $b (i32.const 1))))
        (select (result v128) (v128.const i32x4 -1 -1 -1 -1) (i32.eqz (local.get $n))))
      ;; a tail call and an indirect tail call with v128 arguments
      (func (export "tail") (param v128) (result v128) (return_call $inc (local.get 0)))
      (func (export "tail_indirect") (param v128) (result v128)
        (return_call_indirect (type $v) (local.get 0) (i32.const 0))))
    "#;
    for engine in engines() {
        let (mut store, i) = instantiate(&engine, wat);
        let x = i32x4([10, 20, 30, 40]);
        let r = call(&mut store, i, "run", &[Val::V128(x), Val::I32(5)]).unwrap();
        assert_eq!(r, vec![Val::V128(i32x4([15, 25, 35, 45]))]);
        let r = call(&mut store, i, "tail", &[Val::V128(x)]).unwrap();
        assert_eq!(r, vec![Val::V128(i32x4([11, 21, 31, 41]))]);
        let r = call(&mut store, i, "tail_indirect", &[Val::V128(x)]).unwrap();
        assert_eq!(r, vec![Val::V128(i32x4([11, 21, 31, 41]))]);
    }
}
