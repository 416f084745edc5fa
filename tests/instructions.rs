//! The deterministic instruction budget through the binary (`limits.instructions`,
//! `--instructions`): exact counts in the report at a normal end, at a trap, at a host call and
//! at the budget; the `instruction_limit` verdict, the same five times in a row; no count
//! without counting; counting and non-counting code kept apart in the code cache; the policy's
//! refusals; the same run through the server.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// `_start` counting `i` up to `k`: `loop` (1), then per iteration `local.get, i32.const,
/// i32.add, local.set, local.get, i32.const, i32.lt_u, br_if` (8), the loop's and the
/// function's `end` (2): 8k + 3 instructions.
fn count_to(k: u32) -> String {
    format!(
        r#"(module
          (memory (export "memory") 1)
          (func (export "_start") (local i32)
            (loop $l
              (local.set 0 (i32.add (local.get 0) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get 0) (i32.const {k}))))))"#
    )
}

/// `wat` compiled with the `wat` crate into `dir/name`.
fn wasm(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, wat::parse_str(wat).expect("fixture parses")).unwrap();
    path
}

/// Runs `module` with `args` before it and a report; returns the exit status and the report.
fn run_with(args: &[&str], module: &Path, report: &Path) -> (Option<i32>, serde_json::Value, String) {
    let o = run(bin().args(args).arg("--report").arg(report).arg(module));
    (o.status.code(), report_json(report), stderr(&o))
}

#[test]
fn a_loop_of_k_iterations_reports_8k_plus_3_at_a_normal_end() {
    let dir = temp_dir("instr-exact");
    let report = dir.join("r.json");
    for k in [1u32, 1000, 250_000] {
        let module = wasm(&dir, &format!("k{k}.wasm"), &count_to(k));
        let (code, json, err) = run_with(&["--instructions", "1000000000"], &module, &report);
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(json["status"], "exited");
        assert_eq!(json["instructions"].as_u64(), Some(8 * u64::from(k) + 3), "k={k}");
        assert!(json.get("reason").is_none_or(|r| r.is_null()), "{json}");
    }
}

#[test]
fn the_budget_ends_the_run_with_instruction_limit_the_same_five_times() {
    let dir = temp_dir("instr-limit");
    let module = wasm(&dir, "m.wasm", &count_to(1_000_000));
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  instructions: 100000\n");
    let report = dir.join("r.json");
    // Checked at the loop header after i iterations (1 + 8i): the first past 100000 is i = 12500.
    let expected = 1 + 8 * 12_500;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (code, json, err) = run_with(&["-p", policy.to_str().unwrap()], &module, &report);
        assert_eq!(code, Some(124), "{err}");
        assert_eq!(json["status"], "instruction_limit", "{json}");
        assert_eq!(json["reason"], "instructions");
        assert_eq!(json["details"], "instruction limit of 100000");
        assert_eq!(json["instructions"].as_u64(), Some(expected));
        assert_eq!(err.trim(), "sandboxrun: instruction limit (instruction limit of 100000)");
        seen.push((json["status"].clone(), json["instructions"].clone(), json["trap"].clone()));
    }
    assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    // The command line overrides the policy's budget.
    let (code, json, _) = run_with(&["-p", policy.to_str().unwrap(), "--instructions", "1_000"], &module, &report);
    assert_eq!((code, json["instructions"].as_u64()), (Some(124), Some(1 + 8 * 125)));
    // A budget that fits ends normally, with the whole count.
    let small = wasm(&dir, "small.wasm", &count_to(100));
    let (code, json, _) = run_with(&["--instructions", "803"], &small, &report);
    assert_eq!((code, json["status"].as_str(), json["instructions"].as_u64()), (Some(0), Some("exited"), Some(803)));
    // One fewer: over the budget after its last check, so not a normal end.
    let (code, json, _) = run_with(&["--instructions", "802"], &small, &report);
    assert_eq!(
        (code, json["status"].as_str(), json["instructions"].as_u64()),
        (Some(124), Some("instruction_limit"), Some(803))
    );
}

#[test]
fn the_count_is_exact_at_another_trap_and_at_a_host_exit() {
    let dir = temp_dir("instr-trap");
    let report = dir.join("r.json");
    // m nops, then unreachable: m + 1, the trapping instruction included.
    for m in [0usize, 1, 17] {
        let wat = format!("(module (func (export \"_start\") {} (unreachable)))", "(nop) ".repeat(m));
        let module = wasm(&dir, &format!("trap{m}.wasm"), &wat);
        let (code, json, err) = run_with(&["--instructions", "1000"], &module, &report);
        assert_eq!(code, Some(134), "{err}");
        assert_eq!((json["status"].as_str(), json["trap"]["kind"].as_str()), (Some("trapped"), Some("unreachable")));
        assert_eq!(json["instructions"].as_u64(), Some(m as u64 + 1));
    }
    // HELLO: two stores (3 each), fd_write's four arguments, the call (one instruction, a
    // host call) and the drop (6), then proc_exit's argument and call (2).
    let module = wasm(&dir, "hello.wasm", HELLO);
    let (code, json, err) = run_with(&["--instructions", "1000"], &module, &report);
    assert_eq!(code, Some(42), "{err}");
    assert_eq!(json["instructions"].as_u64(), Some(14));
}

#[test]
fn without_counting_the_report_has_no_count() {
    let dir = temp_dir("instr-off");
    let report = dir.join("r.json");
    let module = wasm(&dir, "m.wasm", &count_to(10));
    let (code, json, _) = run_with(&[], &module, &report);
    assert_eq!(code, Some(0));
    assert!(json.get("instructions").is_none(), "{json}");
    let trap = wasm(&dir, "t.wasm", "(module (func (export \"_start\") (unreachable)))");
    let (code, json, _) = run_with(&[], &trap, &report);
    assert_eq!(code, Some(134));
    assert!(json.get("instructions").is_none(), "{json}");
}

#[test]
fn counting_and_plain_code_never_share_a_cache_entry() {
    let dir = temp_dir("instr-cache");
    let cache = dir.join("cache.sqlite");
    let report = dir.join("r.json");
    let module = wasm(&dir, "m.wasm", &count_to(1000));
    let cache_arg = cache.to_str().unwrap();
    let counting = ["--cache", cache_arg, "--instructions", "1000000"];
    let plain = ["--cache", cache_arg];
    let steps: [(&[&str], &str); 5] =
        [(&counting, "miss"), (&plain, "miss"), (&counting, "hit"), (&plain, "hit"), (&counting, "hit")];
    for (i, (args, cache_use)) in steps.into_iter().enumerate() {
        let (code, json, err) = run_with(args, &module, &report);
        assert_eq!(code, Some(0), "step {i}: {err}");
        assert_eq!(json["cache"], cache_use, "step {i}");
        let counted = args.contains(&"--instructions");
        assert_eq!(json["instructions"].as_u64(), counted.then_some(8003), "step {i}: {json}");
    }
    let rows: i64 = rusqlite::Connection::open(&cache)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2, "one entry per engine identity");
}

#[test]
fn a_bad_budget_is_one_clear_error() {
    let dir = temp_dir("instr-bad");
    let module = wasm(&dir, "m.wasm", &count_to(10));
    for (yaml, message) in [
        ("instructions: 0", "p.yaml:3:17: limits.instructions: must be between 1 and 1000000000000000, got 0"),
        ("instructions: 1e9", "p.yaml:3:17: limits.instructions: '1e9' is not a positive whole number"),
        (
            "instructions: 1000000000000001",
            "p.yaml:3:17: limits.instructions: must be between 1 and 1000000000000000, got 1000000000000001",
        ),
    ] {
        let policy = write(&dir, "p.yaml", &format!("version: 1\nlimits:\n  {yaml}\n"));
        let o = run(bin().arg("-p").arg(&policy).arg(&module));
        assert_eq!(o.status.code(), Some(125), "{yaml}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("sandboxrun: error: ") && err.trim_end().ends_with(message), "{err}");
    }
    let o = run(bin().args(["--instructions", "lots"]).arg(&module));
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(stderr(&o).trim(), "sandboxrun: error: --instructions lots: 'lots' is not a positive whole number");
}

#[test]
fn through_the_server_the_budget_is_the_same() {
    let dir = temp_dir("instr-server");
    let server = Server::start(&dir);
    let module = wasm(&dir, "m.wasm", &count_to(1_000_000));
    let report = dir.join("r.json");
    for _ in 0..2 {
        let o = run(server.client().args(["--instructions", "100000", "--report"]).arg(&report).arg(&module));
        assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
        let json = report_json(&report);
        assert_eq!(
            (json["status"].as_str(), json["instructions"].as_u64()),
            (Some("instruction_limit"), Some(100_001))
        );
    }
    let small = wasm(&dir, "small.wasm", &count_to(100));
    let o = run(server.client().args(["--instructions", "803", "--report"]).arg(&report).arg(&small));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(report_json(&report)["instructions"].as_u64(), Some(803));
}
