//! `simd_ops`: one SIMD instruction at a time, in sandboxrun's engine and in wasmi (the
//! oracle). The input picks an instruction (every SIMD128 operator that computes on values:
//! loads and stores are the spec suite's, relaxed SIMD is implementation-defined) and its
//! operands (three v128s, an i32, an i64, an f32, an f64, lane indices, a shuffle's
//! pattern); a module with one function applying it runs in both, and the results must be
//! equal bit for bit — except that where a float lane is NaN in both, its payload may differ
//! (the specification lets NaN results be any NaN). Built only with the oracle: under
//! `cargo test` (a dev-dependency) and `cargo fuzz` (`cfg(fuzzing)`).

use engine::{Config, Engine, Module, Store, Val};

/// What an instruction takes and gives, in terms of the function's parameters
/// `(v128 v128 v128 i32 i64 f32 f64)`.
#[derive(Clone, Copy)]
enum Shape {
    /// v128 → v128.
    Unary,
    /// v128 v128 → v128.
    Binary,
    /// v128 v128 v128 → v128 (`v128.bitselect`).
    Ternary,
    /// v128 → i32 (`any_true`, `all_true`, `bitmask`).
    Test,
    /// v128 i32 → v128 (shifts).
    Shift,
    /// A scalar (the parameter of that type) → v128 (`splat`).
    Splat(&'static str),
    /// v128 → scalar of that type, with a lane index below the count.
    Extract(&'static str, u8),
    /// v128 scalar → v128, with a lane index below the count.
    Replace(&'static str, u8),
}

use Shape::*;

/// The instructions, by their text names.
const OPS: &[(&str, Shape)] = &[
    ("v128.not", Unary),
    ("v128.and", Binary),
    ("v128.andnot", Binary),
    ("v128.or", Binary),
    ("v128.xor", Binary),
    ("v128.bitselect", Ternary),
    ("v128.any_true", Test),
    ("i8x16.swizzle", Binary),
    ("i8x16.splat", Splat("i32")),
    ("i16x8.splat", Splat("i32")),
    ("i32x4.splat", Splat("i32")),
    ("i64x2.splat", Splat("i64")),
    ("f32x4.splat", Splat("f32")),
    ("f64x2.splat", Splat("f64")),
    ("i8x16.extract_lane_s", Extract("i32", 16)),
    ("i8x16.extract_lane_u", Extract("i32", 16)),
    ("i16x8.extract_lane_s", Extract("i32", 8)),
    ("i16x8.extract_lane_u", Extract("i32", 8)),
    ("i32x4.extract_lane", Extract("i32", 4)),
    ("i64x2.extract_lane", Extract("i64", 2)),
    ("f32x4.extract_lane", Extract("f32", 4)),
    ("f64x2.extract_lane", Extract("f64", 2)),
    ("i8x16.replace_lane", Replace("i32", 16)),
    ("i16x8.replace_lane", Replace("i32", 8)),
    ("i32x4.replace_lane", Replace("i32", 4)),
    ("i64x2.replace_lane", Replace("i64", 2)),
    ("f32x4.replace_lane", Replace("f32", 4)),
    ("f64x2.replace_lane", Replace("f64", 2)),
    ("i8x16.eq", Binary),
    ("i8x16.ne", Binary),
    ("i8x16.lt_s", Binary),
    ("i8x16.lt_u", Binary),
    ("i8x16.gt_s", Binary),
    ("i8x16.gt_u", Binary),
    ("i8x16.le_s", Binary),
    ("i8x16.le_u", Binary),
    ("i8x16.ge_s", Binary),
    ("i8x16.ge_u", Binary),
    ("i16x8.eq", Binary),
    ("i16x8.ne", Binary),
    ("i16x8.lt_s", Binary),
    ("i16x8.lt_u", Binary),
    ("i16x8.gt_s", Binary),
    ("i16x8.gt_u", Binary),
    ("i16x8.le_s", Binary),
    ("i16x8.le_u", Binary),
    ("i16x8.ge_s", Binary),
    ("i16x8.ge_u", Binary),
    ("i32x4.eq", Binary),
    ("i32x4.ne", Binary),
    ("i32x4.lt_s", Binary),
    ("i32x4.lt_u", Binary),
    ("i32x4.gt_s", Binary),
    ("i32x4.gt_u", Binary),
    ("i32x4.le_s", Binary),
    ("i32x4.le_u", Binary),
    ("i32x4.ge_s", Binary),
    ("i32x4.ge_u", Binary),
    ("i64x2.eq", Binary),
    ("i64x2.ne", Binary),
    ("i64x2.lt_s", Binary),
    ("i64x2.gt_s", Binary),
    ("i64x2.le_s", Binary),
    ("i64x2.ge_s", Binary),
    ("f32x4.eq", Binary),
    ("f32x4.ne", Binary),
    ("f32x4.lt", Binary),
    ("f32x4.gt", Binary),
    ("f32x4.le", Binary),
    ("f32x4.ge", Binary),
    ("f64x2.eq", Binary),
    ("f64x2.ne", Binary),
    ("f64x2.lt", Binary),
    ("f64x2.gt", Binary),
    ("f64x2.le", Binary),
    ("f64x2.ge", Binary),
    ("i8x16.abs", Unary),
    ("i8x16.neg", Unary),
    ("i8x16.popcnt", Unary),
    ("i8x16.all_true", Test),
    ("i8x16.bitmask", Test),
    ("i8x16.narrow_i16x8_s", Binary),
    ("i8x16.narrow_i16x8_u", Binary),
    ("i8x16.shl", Shift),
    ("i8x16.shr_s", Shift),
    ("i8x16.shr_u", Shift),
    ("i8x16.add", Binary),
    ("i8x16.add_sat_s", Binary),
    ("i8x16.add_sat_u", Binary),
    ("i8x16.sub", Binary),
    ("i8x16.sub_sat_s", Binary),
    ("i8x16.sub_sat_u", Binary),
    ("i8x16.min_s", Binary),
    ("i8x16.min_u", Binary),
    ("i8x16.max_s", Binary),
    ("i8x16.max_u", Binary),
    ("i8x16.avgr_u", Binary),
    ("i16x8.extadd_pairwise_i8x16_s", Unary),
    ("i16x8.extadd_pairwise_i8x16_u", Unary),
    ("i32x4.extadd_pairwise_i16x8_s", Unary),
    ("i32x4.extadd_pairwise_i16x8_u", Unary),
    ("i16x8.abs", Unary),
    ("i16x8.neg", Unary),
    ("i16x8.q15mulr_sat_s", Binary),
    ("i16x8.all_true", Test),
    ("i16x8.bitmask", Test),
    ("i16x8.narrow_i32x4_s", Binary),
    ("i16x8.narrow_i32x4_u", Binary),
    ("i16x8.extend_low_i8x16_s", Unary),
    ("i16x8.extend_high_i8x16_s", Unary),
    ("i16x8.extend_low_i8x16_u", Unary),
    ("i16x8.extend_high_i8x16_u", Unary),
    ("i16x8.shl", Shift),
    ("i16x8.shr_s", Shift),
    ("i16x8.shr_u", Shift),
    ("i16x8.add", Binary),
    ("i16x8.add_sat_s", Binary),
    ("i16x8.add_sat_u", Binary),
    ("i16x8.sub", Binary),
    ("i16x8.sub_sat_s", Binary),
    ("i16x8.sub_sat_u", Binary),
    ("i16x8.mul", Binary),
    ("i16x8.min_s", Binary),
    ("i16x8.min_u", Binary),
    ("i16x8.max_s", Binary),
    ("i16x8.max_u", Binary),
    ("i16x8.avgr_u", Binary),
    ("i16x8.extmul_low_i8x16_s", Binary),
    ("i16x8.extmul_high_i8x16_s", Binary),
    ("i16x8.extmul_low_i8x16_u", Binary),
    ("i16x8.extmul_high_i8x16_u", Binary),
    ("i32x4.abs", Unary),
    ("i32x4.neg", Unary),
    ("i32x4.all_true", Test),
    ("i32x4.bitmask", Test),
    ("i32x4.extend_low_i16x8_s", Unary),
    ("i32x4.extend_high_i16x8_s", Unary),
    ("i32x4.extend_low_i16x8_u", Unary),
    ("i32x4.extend_high_i16x8_u", Unary),
    ("i32x4.shl", Shift),
    ("i32x4.shr_s", Shift),
    ("i32x4.shr_u", Shift),
    ("i32x4.add", Binary),
    ("i32x4.sub", Binary),
    ("i32x4.mul", Binary),
    ("i32x4.min_s", Binary),
    ("i32x4.min_u", Binary),
    ("i32x4.max_s", Binary),
    ("i32x4.max_u", Binary),
    ("i32x4.dot_i16x8_s", Binary),
    ("i32x4.extmul_low_i16x8_s", Binary),
    ("i32x4.extmul_high_i16x8_s", Binary),
    ("i32x4.extmul_low_i16x8_u", Binary),
    ("i32x4.extmul_high_i16x8_u", Binary),
    ("i64x2.abs", Unary),
    ("i64x2.neg", Unary),
    ("i64x2.all_true", Test),
    ("i64x2.bitmask", Test),
    ("i64x2.extend_low_i32x4_s", Unary),
    ("i64x2.extend_high_i32x4_s", Unary),
    ("i64x2.extend_low_i32x4_u", Unary),
    ("i64x2.extend_high_i32x4_u", Unary),
    ("i64x2.shl", Shift),
    ("i64x2.shr_s", Shift),
    ("i64x2.shr_u", Shift),
    ("i64x2.add", Binary),
    ("i64x2.sub", Binary),
    ("i64x2.mul", Binary),
    ("i64x2.extmul_low_i32x4_s", Binary),
    ("i64x2.extmul_high_i32x4_s", Binary),
    ("i64x2.extmul_low_i32x4_u", Binary),
    ("i64x2.extmul_high_i32x4_u", Binary),
    ("f32x4.ceil", Unary),
    ("f32x4.floor", Unary),
    ("f32x4.trunc", Unary),
    ("f32x4.nearest", Unary),
    ("f32x4.abs", Unary),
    ("f32x4.neg", Unary),
    ("f32x4.sqrt", Unary),
    ("f32x4.add", Binary),
    ("f32x4.sub", Binary),
    ("f32x4.mul", Binary),
    ("f32x4.div", Binary),
    ("f32x4.min", Binary),
    ("f32x4.max", Binary),
    ("f32x4.pmin", Binary),
    ("f32x4.pmax", Binary),
    ("f64x2.ceil", Unary),
    ("f64x2.floor", Unary),
    ("f64x2.trunc", Unary),
    ("f64x2.nearest", Unary),
    ("f64x2.abs", Unary),
    ("f64x2.neg", Unary),
    ("f64x2.sqrt", Unary),
    ("f64x2.add", Binary),
    ("f64x2.sub", Binary),
    ("f64x2.mul", Binary),
    ("f64x2.div", Binary),
    ("f64x2.min", Binary),
    ("f64x2.max", Binary),
    ("f64x2.pmin", Binary),
    ("f64x2.pmax", Binary),
    ("i32x4.trunc_sat_f32x4_s", Unary),
    ("i32x4.trunc_sat_f32x4_u", Unary),
    ("f32x4.convert_i32x4_s", Unary),
    ("f32x4.convert_i32x4_u", Unary),
    ("i32x4.trunc_sat_f64x2_s_zero", Unary),
    ("i32x4.trunc_sat_f64x2_u_zero", Unary),
    ("f64x2.convert_low_i32x4_s", Unary),
    ("f64x2.convert_low_i32x4_u", Unary),
    ("f32x4.demote_f64x2_zero", Unary),
    ("f64x2.promote_low_f32x4", Unary),
    // `i8x16.shuffle` is built apart (16 lane immediates).
];

/// Operand bits that reach the edges: zero, all ones, sign bits, float specials.
const EDGES: [u32; 10] = [
    0,
    u32::MAX,
    0x8000_0000,
    0x7fff_ffff,
    0x7f80_0000, // +inf
    0xff80_0000, // -inf
    0x7fc0_0000, // quiet NaN
    0x7f80_0001, // signalling NaN
    0x3f00_0000, // 0.5
    0x4b00_0001, // 2^23 + 1
];

/// Reads the input front to back; past its end, zeros.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else { return 0 };
        self.0 = rest;
        b
    }

    fn u32(&mut self) -> u32 {
        // A quarter of the words are edge values.
        match self.u8() {
            k @ 0..=63 => EDGES[k as usize % EDGES.len()],
            _ => u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()]),
        }
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    fn v128(&mut self) -> u128 {
        (0..4).fold(0, |v, i| v | u128::from(self.u32()) << (32 * i))
    }
}

/// One case: the module's text and its arguments.
struct Case {
    op: String,
    wasm: Vec<u8>,
    args: (u128, u128, u128, u32, u64, u32, u64),
    /// The result's float lane width in bytes (4 or 8), where NaN payloads may differ.
    float_lanes: Option<usize>,
}

fn case(data: &[u8]) -> Case {
    let mut b = Bytes(data);
    let pick = b.u8() as usize | (b.u8() as usize) << 8;
    let args = (b.v128(), b.v128(), b.v128(), b.u32(), b.u64(), b.u32(), b.u64());
    let (op, result, body) = if pick % (OPS.len() + 1) == OPS.len() {
        let lanes: Vec<String> = (0..16).map(|_| (b.u8() % 32).to_string()).collect();
        let op = format!("i8x16.shuffle {}", lanes.join(" "));
        (op.clone(), "v128", format!("({op} (local.get 0) (local.get 1))"))
    } else {
        let (name, shape) = OPS[pick % OPS.len()];
        let local = |ty: &str| match ty {
            "i32" => 3,
            "i64" => 4,
            "f32" => 5,
            _ => 6,
        };
        match shape {
            Unary => (name.to_string(), "v128", format!("({name} (local.get 0))")),
            Binary => (name.to_string(), "v128", format!("({name} (local.get 0) (local.get 1))")),
            Ternary => (name.to_string(), "v128", format!("({name} (local.get 0) (local.get 1) (local.get 2))")),
            Test => (name.to_string(), "i32", format!("({name} (local.get 0))")),
            Shift => (name.to_string(), "v128", format!("({name} (local.get 0) (local.get 3))")),
            Splat(ty) => (name.to_string(), "v128", format!("({name} (local.get {}))", local(ty))),
            Extract(ty, lanes) => {
                let lane = b.u8() % lanes;
                (format!("{name} {lane}"), ty, format!("({name} {lane} (local.get 0))"))
            }
            Replace(ty, lanes) => {
                let lane = b.u8() % lanes;
                let body = format!("({name} {lane} (local.get 0) (local.get {}))", local(ty));
                (format!("{name} {lane}"), "v128", body)
            }
        }
    };
    let float_lanes = match (result, &op[..4]) {
        ("v128", "f32x") => Some(4),
        ("v128", "f64x") => Some(8),
        _ => None,
    };
    let wat = format!("(module (func (export \"f\") (param v128 v128 v128 i32 i64 f32 f64) (result {result}) {body}))");
    let wasm = wat::parse_str(&wat).unwrap_or_else(|e| panic!("{op}: {e}"));
    Case { op, wasm, args, float_lanes }
}

/// A result as raw bits (scalars zero-extended), from either engine.
fn ours(case: &Case) -> u128 {
    static ENGINE: std::sync::OnceLock<Engine> = std::sync::OnceLock::new();
    let engine = ENGINE.get_or_init(|| Engine::new(Config::default()).expect("engine"));
    let module = Module::new(engine, &case.wasm).unwrap_or_else(|e| panic!("{}: {e}", case.op));
    let mut store = Store::new(engine);
    let instance = store.instantiate(&module, &[]).expect("instantiates");
    let f = store.get_func(instance, "f").expect("export f");
    let (a, b, c, i, l, x, y) = case.args;
    let args =
        [Val::V128(a), Val::V128(b), Val::V128(c), Val::I32(i as i32), Val::I64(l as i64), Val::F32(x), Val::F64(y)];
    match store.call(f, &args).unwrap_or_else(|e| panic!("{}: {e}", case.op))[..] {
        [Val::V128(v)] => v,
        [Val::I32(v)] => u128::from(v as u32),
        [Val::I64(v)] => u128::from(v as u64),
        [Val::F32(v)] => u128::from(v),
        [Val::F64(v)] => u128::from(v),
        ref other => panic!("{}: unexpected results {other:?}", case.op),
    }
}

fn oracle(case: &Case) -> u128 {
    use wasmi::{Val as W, V128};
    let engine = wasmi::Engine::new(&{
        let mut c = wasmi::Config::default();
        c.wasm_simd(true);
        c
    });
    let module = wasmi::Module::new(&engine, &case.wasm[..]).unwrap_or_else(|e| panic!("{}: {e}", case.op));
    let mut store = wasmi::Store::new(&engine, ());
    let instance = wasmi::Linker::<()>::new(&engine).instantiate_and_start(&mut store, &module).expect("instantiates");
    let f = instance.get_func(&store, "f").expect("export f");
    let (a, b, c, i, l, x, y) = case.args;
    let args = [
        W::V128(V128::from(a)),
        W::V128(V128::from(b)),
        W::V128(V128::from(c)),
        W::I32(i as i32),
        W::I64(l as i64),
        W::F32(wasmi::F32::from_bits(x)),
        W::F64(wasmi::F64::from_bits(y)),
    ];
    let mut results = [W::I32(0)];
    let ty = f.ty(&store);
    results[0] = W::default_for_ty(ty.results()[0]);
    f.call(&mut store, &args, &mut results).unwrap_or_else(|e| panic!("{}: oracle: {e}", case.op));
    match results[0] {
        W::V128(v) => v.as_u128(),
        W::I32(v) => u128::from(v as u32),
        W::I64(v) => u128::from(v as u64),
        W::F32(v) => u128::from(v.to_bits()),
        W::F64(v) => u128::from(v.to_bits()),
        ref other => panic!("{}: unexpected oracle result {other:?}", case.op),
    }
}

/// Whether `a` and `b` agree: bit for bit, but for float lanes that are NaN in both.
fn agree(a: u128, b: u128, float_lanes: Option<usize>) -> bool {
    let Some(width) = float_lanes else { return a == b };
    let bits = 8 * width;
    let mask = u128::MAX >> (128 - bits);
    (0..128 / bits).all(|lane| {
        let (x, y) = ((a >> (lane * bits)) & mask, (b >> (lane * bits)) & mask);
        let nan = |v: u128| match width {
            4 => f32::from_bits(v as u32).is_nan(),
            _ => f64::from_bits(v as u64).is_nan(),
        };
        x == y || (nan(x) && nan(y))
    })
}

/// The target.
pub fn target(data: &[u8]) {
    let case = case(data);
    let (got, expected) = (ours(&case), oracle(&case));
    assert!(
        agree(got, expected, case.float_lanes),
        "{} with {:x?}: sandboxrun {got:#034x}, wasmi {expected:#034x}",
        case.op,
        case.args
    );
}

/// Inputs for the bounded test: random bytes (each picks an instruction and its operands).
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if !corpus.is_empty() && rng.below(4) == 0 {
        return crate::runner::mutate_or_random(rng, corpus, 0);
    }
    rng.bytes(80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_simd_ops() {
        crate::runner::run(&crate::runner::Campaign { name: "simd_ops", target, generate, seconds: 8.0 });
    }

    /// Every instruction in the list builds and agrees on one input (a wrong name or shape in
    /// the list would otherwise hide among random picks).
    #[test]
    fn every_listed_instruction_runs_in_both() {
        for pick in 0..=OPS.len() {
            let mut data = vec![pick as u8, (pick >> 8) as u8];
            data.extend((0..78).map(|i| (i * 37 + pick) as u8));
            target(&data);
        }
    }

    #[test]
    fn nan_lanes_agree_whatever_their_payload_and_nothing_else_does() {
        let (quiet, other) = (0x7fc0_0000u128, 0x7fc0_0001u128);
        assert!(agree(quiet, other, Some(4)));
        assert!(!agree(quiet, other, None));
        assert!(!agree(1, 2, Some(4)));
        assert!(!agree(quiet << 32, 0, Some(4)));
    }
}
