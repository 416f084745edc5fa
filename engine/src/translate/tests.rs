//! Golden tests of the memory sandbox: the IR generated for a load under each strategy and
//! offset class, so any change to how addresses are computed shows up in review.

use super::env::FuncEnv;
use super::translate_function;
use crate::module_info;
use crate::types::FuncIndex;
use crate::vm::memory::BoundsStrategy;
use cranelift_codegen::ir;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::FunctionBuilderContext;

fn clif(wat: &str, bounds: BoundsStrategy) -> String {
    let wasm = wat::parse_str(wat).unwrap();
    let info = module_info::parse(&wasm).unwrap();
    let mut flags = settings::builder();
    flags.set("opt_level", "none").unwrap();
    let isa = cranelift_native::builder().unwrap().finish(settings::Flags::new(flags)).unwrap();
    let mut env = FuncEnv::new(&info, bounds, &*isa);
    let range = info.bodies[0].clone();
    let body = wasmparser::FunctionBody::new(wasmparser::BinaryReader::new(&wasm[range.clone()], range.start as u64));
    let mut func = ir::Function::new();
    translate_function(&mut env, FuncIndex(0), &body, &mut func, &mut FunctionBuilderContext::new()).unwrap();
    // Only the instructions, one per line, without value numbers' noise in block headers.
    func.display()
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('v') || l.starts_with("jump") || l.starts_with("return") || l.starts_with("trap"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn load(offset: u64) -> String {
    format!("(module (memory 1) (func (param i32) (result i32) (i32.load offset={offset} (local.get 0))))")
}

#[test]
fn guard_pages_small_offset_has_no_check() {
    let ir = clif(&load(16), BoundsStrategy::GuardPages);
    assert_eq!(
        ir,
        // The load carries the default trap code (heap_oob), which the printer omits; region0
        // is linear memory, region1 the runtime's data.
        "v4 = uextend.i64 v2\n\
         v5 = load.i64 notrap aligned readonly can_move region1 v0+32\n\
         v6 = iadd v5, v4\n\
         v7 = iconst.i64 16\n\
         v8 = iadd v6, v7  ; v7 = 16\n\
         v9 = load.i32 region0 v8\n\
         jump block1(v9)\n\
         return v3",
        "{ir}"
    );
}

#[test]
fn guard_pages_huge_offset_is_checked() {
    let ir = clif(&load(0xffff_fff0), BoundsStrategy::GuardPages);
    assert!(ir.contains("icmp ugt"), "{ir}");
    assert!(ir.contains("trapnz") && ir.contains("heap_oob"), "{ir}");
}

#[test]
fn explicit_strategy_checks_every_access() {
    let ir = clif(&load(0), BoundsStrategy::Explicit);
    // end = zext(index) + size, compared with the current length (read at every access
    // through the memory definition, as grow changes it); the base is loaded separately.
    assert_eq!(
        ir,
        "v4 = uextend.i64 v2\n\
         v5 = iconst.i64 4\n\
         v6 = iadd v4, v5  ; v5 = 4\n\
         v7 = load.i64 notrap aligned readonly can_move region1 v0+40\n\
         v8 = load.i64 notrap aligned region1 v7+8\n\
         v9 = icmp ugt v6, v8\n\
         trapnz v9, heap_oob\n\
         v10 = load.i64 notrap aligned readonly can_move region1 v0+32\n\
         v11 = iadd v10, v4\n\
         v12 = load.i32 region0 v11\n\
         jump block1(v12)\n\
         return v3",
        "{ir}"
    );
}
