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
    // Only the instructions, one per line, without value numbers' noise in block headers.
    translated(wat, bounds, false)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('v') || l.starts_with("jump") || l.starts_with("return") || l.starts_with("trap"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The IR of the first function of `wat`, as Cranelift prints it.
fn translated(wat: &str, bounds: BoundsStrategy, count_instructions: bool) -> String {
    let wasm = wat::parse_str(wat).unwrap();
    let info = module_info::parse(&wasm).unwrap();
    let mut flags = settings::builder();
    flags.set("opt_level", "none").unwrap();
    let isa = cranelift_native::builder().unwrap().finish(settings::Flags::new(flags)).unwrap();
    let mut env = FuncEnv::new(&info, bounds, &*isa);
    env.count_instructions = count_instructions;
    let range = info.bodies[0].clone();
    let body = wasmparser::FunctionBody::new(wasmparser::BinaryReader::new(&wasm[range.clone()], range.start as u64));
    let mut func = ir::Function::new();
    translate_function(&mut env, FuncIndex(0), &body, &mut func, &mut FunctionBuilderContext::new()).unwrap();
    func.display().to_string()
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

// ----- the instruction count (budget.rs) ------------------------------------------------------

/// The charges (the pinned register plus a negative constant: "charge N") and checks
/// (`trapnz` with the budget's code: "check") of the first function of `wat`, in order.
fn counting(wat: &str) -> Vec<String> {
    let ir = translated(wat, BoundsStrategy::GuardPages, true);
    let budget = format!("{}", crate::trap::TrapKind::InstructionBudget.to_trap_code());
    let lines: Vec<&str> = ir.lines().map(without_srcloc).collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied().unwrap_or("");
        if line.contains("get_pinned_reg") {
            if let Some(n) = next.split("iconst.i64 -").nth(1) {
                out.push(format!("charge {n}"));
            }
        } else if line.starts_with("trapnz") && line.ends_with(&budget) {
            out.push("check".to_string());
        }
    }
    out
}

/// A line of printed IR without its source location (`@0002`) and indentation.
fn without_srcloc(line: &str) -> &str {
    let line = line.trim();
    match line.strip_prefix('@') {
        Some(rest) => rest.split_once(char::is_whitespace).map_or("", |(_, l)| l.trim()),
        None => line,
    }
}

#[test]
fn without_counting_no_count_is_emitted() {
    let wat =
        "(module (memory 1) (func (param i32) (result i32) (loop (br_if 0 (local.get 0))) (i32.load (local.get 0))))";
    let ir = translated(wat, BoundsStrategy::GuardPages, false);
    assert!(!ir.contains("pinned_reg") && !ir.contains("user11"), "{ir}");
    assert!(translated(wat, BoundsStrategy::GuardPages, true).contains("pinned_reg"));
}

#[test]
fn straight_line_code_is_charged_once_at_its_end() {
    // local.get, i32.const, i32.add, end: one charge of 4 before the jump to the exit.
    let wat = "(module (func (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))";
    assert_eq!(counting(wat), ["check", "charge 4"]);
}

#[test]
fn a_loop_is_checked_at_its_header_and_charged_at_its_back_edge() {
    // Entry check; `loop` charged before the jump into the header; the header's check; the
    // body (local.get, br_if) charged on the back edge only; out of the loop, the count goes on
    // through the loop's and the function's `end` (reached only by falling through), charged
    // once before the return: local.get, br_if, end, end.
    let wat = "(module (func (param i32) (loop (br_if 0 (local.get 0)))))";
    assert_eq!(counting(wat), ["check", "charge 1", "check", "charge 2", "charge 4"]);
}

#[test]
fn instructions_that_may_trap_carry_the_count_pending_at_them() {
    // i32.const, i32.load (2), drop, i32.const, i32.const, i32.div_u (6), drop, end: no charge
    // before the load or the division, one of 8 at the end; the load's code is marked 2
    // pending, the division's 6 (its traps add them to the register's count).
    let wat = "(module (memory 1) (func (param i32)
        (drop (i32.load (i32.const 0)))
        (drop (i32.div_u (i32.const 1) (local.get 0)))))";
    assert_eq!(counting(wat), ["check", "charge 8"]);
    let ir = translated(wat, BoundsStrategy::GuardPages, true);
    let srcloc_of =
        |what: &str| ir.lines().find(|l| l.contains(what)).map(|l| l.trim().split(' ').next().unwrap_or(""));
    assert_eq!(srcloc_of("load.i32 region0"), Some("@0002"), "{ir}");
    assert_eq!(srcloc_of("udiv"), Some("@0006"), "{ir}");
    assert_eq!(srcloc_of("user11"), Some("@0000"), "the entry check: nothing pending");
}

#[test]
fn unreachable_code_is_not_counted() {
    // nop, br (2); what follows the br never runs; the block's end is reached by the branch.
    let wat = "(module (func (block (nop) (br 0) (nop) (nop) (unreachable))))";
    assert_eq!(counting(wat), ["check", "charge 3", "charge 1"]);
}

#[test]
fn only_calls_in_a_handlers_scope_are_try_calls() {
    // $f's first call is inside the try_table: a try_call whose exceptional edge reaches the
    // dispatch code (a tag comparison, then the catch's branch); the second is a plain call.
    let wat = "(module (tag $e (param i32)) (func $f
        (drop (block $h (result i32) (try_table (catch $e $h) (call $g)) (i32.const 0)))
        (call $g))
      (func $g))";
    let ir = translated(wat, BoundsStrategy::GuardPages, false);
    let count = |what: &str| ir.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("try_call "), 1, "{ir}");
    assert_eq!(count(" = call fn") + count("    call fn"), 1, "{ir}");
    assert_eq!(count("icmp eq"), 1, "the dispatch compares the tag once: {ir}");
    // A function without handlers has no try_call and no dispatch.
    let plain = translated("(module (func $f (call $f)))", BoundsStrategy::GuardPages, false);
    assert!(!plain.contains("try_call") && !plain.contains("icmp"), "{plain}");
}

#[test]
fn a_vector_access_is_checked_for_exactly_the_bytes_it_touches() {
    // A whole vector is 16 bytes, an extending load 8, a splat or lane access its lane's size.
    for (op, size) in [("v128.load", 16), ("v128.load8x8_s", 8), ("v128.load32_splat", 4), ("v128.load8_splat", 1)] {
        let wat = format!("(module (memory 1) (func (param i32) (result v128) ({op} (local.get 0))))");
        let ir = clif(&wat, BoundsStrategy::Explicit);
        let end = format!("v5 = iconst.i64 {size}\nv6 = iadd v4, v5  ; v5 = {size}\n");
        assert!(ir.contains(&end) && ir.contains("icmp ugt v6, v8") && ir.contains("heap_oob"), "{op}: {ir}");
        // Under guard pages a small offset needs no check: the access ends in the guard region.
        let ir = clif(&wat, BoundsStrategy::GuardPages);
        assert!(!ir.contains("icmp"), "{op}: {ir}");
    }
}
