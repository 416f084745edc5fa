//! `sandboxrun grade` through the binary: every verdict on the example problems
//! (`examples/grading/`, C submissions built by its `build.sh`), each checker kind (built-in,
//! ICPC and testlib checkers written in WAT here, a checker that crashes), groups, points and
//! dependencies, interactive problems (accepted, wrong, both sides waiting), and every output
//! format (the JSON against the schema in the repository, the JUnit XML parsed, the HTML page
//! rendered by a real headless browser).

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// The tests of this file one at a time: each grades with `--jobs 2` on a 2-core machine, and
/// a CPU-bound submission given less than its share would end at the wall clock (ILE) instead
/// of its CPU limit (TLE).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grading").join(path)
}

/// `sandboxrun grade --format json PROBLEM SUBMISSIONS...`, parsed.
fn grade_json(problem: &Path, submissions: &[PathBuf]) -> (Output, Value) {
    let o = run(bin().arg("grade").args(["--format", "json", "--jobs", "2"]).arg(problem).args(submissions));
    let json = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
    (o, json)
}

/// Each submission's verdict and score, by name.
fn verdicts(json: &Value) -> Vec<(String, String)> {
    json["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["verdict"].as_str().unwrap().to_string()))
        .collect()
}

fn tests_of<'a>(json: &'a Value, submission: &str) -> &'a Vec<Value> {
    let s = json["submissions"].as_array().unwrap().iter().find(|s| s["name"] == submission).unwrap();
    s["tests"].as_array().unwrap()
}

#[test]
fn every_verdict_of_a_batch_problem_with_groups_points_and_dependencies() {
    let _serial = serial();
    let names = ["ac", "small_only", "pe", "tle", "mle", "ole", "rte", "escape"];
    let subs: Vec<PathBuf> = names.iter().map(|n| example(&format!("sum/submissions/{n}.wasm"))).collect();
    let (o, json) = grade_json(&example("sum"), &subs);
    assert_eq!(o.status.code(), Some(1), "not every test accepted: {}", stderr(&o));
    let got: Vec<(String, String)> = verdicts(&json);
    let expected = [
        ("ac.wasm", "AC"),
        ("small_only.wasm", "WA"),
        ("pe.wasm", "PE"),
        ("tle.wasm", "TLE"),
        ("mle.wasm", "MLE"),
        ("ole.wasm", "OLE"),
        ("rte.wasm", "RTE"),
        ("escape.wasm", "RTE"),
    ];
    assert_eq!(got, expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    let score = |name: &str| {
        json["submissions"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap()["score"].as_f64().unwrap()
    };
    assert_eq!((score("ac.wasm"), score("small_only.wasm"), score("tle.wasm")), (100.0, 30.0, 0.0));
    // The large group depends on the small one and stops at its first failure (a batch).
    let small_only = tests_of(&json, "small_only.wasm");
    let verdict_of = |tests: &Vec<Value>, id: &str| tests.iter().find(|t| t["id"] == id).unwrap()["verdict"].clone();
    assert_eq!(verdict_of(small_only, "secret/large/1"), "WA");
    assert_eq!(verdict_of(small_only, "secret/large/2"), "SK");
    let tle = tests_of(&json, "tle.wasm");
    assert_eq!(verdict_of(tle, "secret/large/1"), "SK", "dependency on a failed group");
    // The MLE is exact: the grow was refused at the limit, then the program aborted.
    let mle = tests_of(&json, "mle.wasm");
    assert!(mle[0]["judge_message"].as_str().unwrap_or_default().contains("memory"), "{}", mle[0]);
    // The escaping submission saw nothing of the host.
    for t in tests_of(&json, "escape.wasm") {
        let out = t["stdout_head"].as_str().unwrap_or_default();
        assert!(!out.contains("root:") && !out.contains("read "), "{out}");
    }
}

#[test]
fn a_float_checker_and_an_accepted_run_exit_0() {
    let _serial = serial();
    let (o, json) = grade_json(&example("average"), &[example("average/submissions/ac.wasm")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(verdicts(&json), [("ac.wasm".to_string(), "AC".to_string())]);
    let (_, json) = grade_json(&example("average"), &[example("average/submissions/wa.wasm")]);
    assert_eq!(verdicts(&json)[0].1, "WA");
}

#[test]
fn interactive_problems_accepted_wrong_and_both_waiting() {
    let _serial = serial();
    let subs = ["ac", "wa", "silent"].map(|n| example(&format!("guess/submissions/{n}.wasm")));
    let started = std::time::Instant::now();
    let (_, json) = grade_json(&example("guess"), &subs);
    assert_eq!(
        verdicts(&json),
        [("ac.wasm", "AC"), ("wa.wasm", "WA"), ("silent.wasm", "ILE")].map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // A deadlock ends at the wall-clock limit (2 × 1 s + 1 s), never hangs the judge.
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// A package in a temporary folder with `checker` (WAT) as its output validator.
fn package_with_checker(name: &str, checker_wat: &str, convention: &str) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let problem = dir.join("p");
    for d in ["data/secret", "output_validator"] {
        std::fs::create_dir_all(problem.join(d)).unwrap();
    }
    write(&problem, "problem.yaml", &format!("name: X\nvalidation: custom\nchecker_convention: {convention}\n"));
    write(&problem.join("data/secret"), "1.in", "1 2\n");
    write(&problem.join("data/secret"), "1.ans", "3\n");
    std::fs::write(problem.join("output_validator/check.wasm"), wat::parse_str(checker_wat).unwrap()).unwrap();
    for entry in walk(&dir) {
        let mode = if entry.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&entry, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    problem
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all.extend(walk(&p));
        } else {
            all.push(p);
        }
    }
    all
}

/// A checker that exits with `code` (or traps).
fn checker_exiting(code: Option<u32>) -> String {
    let body = match code {
        Some(c) => format!("(call $exit (i32.const {c}))"),
        None => "unreachable".into(),
    };
    format!(
        r#"(module (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1) (func (export "_start") {body}))"#
    )
}

#[test]
fn custom_checkers_icpc_and_testlib_and_one_that_crashes() {
    let _serial = serial();
    let ac = example("sum/submissions/ac.wasm");
    for (name, convention, code, expected) in [
        ("icpc-ac", "icpc", Some(42), "AC"),
        ("icpc-wa", "icpc", Some(43), "WA"),
        ("testlib-ok", "testlib", Some(0), "AC"),
        ("testlib-wa", "testlib", Some(1), "WA"),
        ("testlib-pe", "testlib", Some(2), "PE"),
        ("testlib-fail", "testlib", Some(3), "IE"),
        // A checker that traps is the judge's failure, never the submission's.
        ("icpc-crash", "icpc", None, "IE"),
    ] {
        let problem = package_with_checker(name, &checker_exiting(code), convention);
        let (o, json) = grade_json(&problem, std::slice::from_ref(&ac));
        assert_eq!(verdicts(&json)[0].1, expected, "{name}: {}", stderr(&o));
        if expected == "IE" {
            assert_eq!(o.status.code(), Some(125), "{name}: a judge error is 125");
        }
    }
}

#[test]
fn every_output_format() {
    let _serial = serial();
    let problem = example("sum");
    let subs = [example("sum/submissions/ac.wasm"), example("sum/submissions/pe.wasm")];
    let dir = temp_dir("grade-formats");
    let mut outputs = std::collections::HashMap::new();
    for format in ["table", "json", "junit", "gradescope", "html"] {
        let out = dir.join(format!("result.{format}"));
        let o = run(bin().arg("grade").args(["--format", format, "--output"]).arg(&out).arg(&problem).args(&subs));
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "--output writes the file, not stdout");
        outputs.insert(format, std::fs::read_to_string(&out).unwrap());
    }
    assert!(outputs["table"].contains("PE") && outputs["table"].contains("ac.wasm"), "{}", outputs["table"]);
    // JSON: valid against the schema in the repository.
    let json: Value = serde_json::from_str(&outputs["json"]).unwrap();
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("grade/schema/result.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // JUnit: well-formed XML with a test case per test and a failure for the PE submission.
    let mut reader = quick_xml::Reader::from_str(&outputs["junit"]);
    let (mut cases, mut failures) = (0, 0);
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => cases += 1,
                b"failure" => failures += 1,
                _ => {}
            },
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!((cases, failures > 0), (10, true), "{}", outputs["junit"]);
    let gradescope: Value = serde_json::from_str(&outputs["gradescope"]).unwrap();
    assert!(gradescope["tests"].as_array().is_some_and(|t| !t.is_empty()), "{gradescope}");
    // HTML: self-contained, and a real browser renders the verdict matrix the JSON describes.
    let html = &outputs["html"];
    assert!(!html.contains("http://") && !html.contains("https://"), "no external assets");
    html_renders_the_matrix(&dir.join("result.html"), &json);
}

/// Loads the page in headless Chromium (installed by `.ci/run`) and checks the rendered
/// document shows every submission with its verdict.
fn html_renders_the_matrix(page: &Path, json: &Value) {
    let browser = ["chromium", "chromium-browser"]
        .iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("a headless browser (chromium; .ci/run installs it)");
    let profile = temp_dir("grade-browser");
    let o = std::process::Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("<table"), "the page rendered: {}", stderr(&o));
    for s in json["submissions"].as_array().unwrap() {
        assert!(dom.contains(s["name"].as_str().unwrap()), "{dom}");
        assert!(dom.contains(s["verdict"].as_str().unwrap()), "{dom}");
    }
}

#[test]
fn a_bad_package_or_format_is_one_line_and_125() {
    let _serial = serial();
    let dir = temp_dir("grade-bad");
    let ac = example("sum/submissions/ac.wasm");
    let o = run(bin().arg("grade").arg(&dir).arg(&ac));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    let o = run(bin().arg("grade").args(["--format", "pdf"]).arg(example("sum")).arg(&ac));
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("--format pdf"), "{}", stderr(&o));
    let o = run(bin().arg("grade").arg(example("sum")));
    assert_eq!(o.status.code(), Some(2), "no submission: a usage error");
}

#[test]
fn a_dmoj_problem_folder_is_graded_too() {
    let _serial = serial();
    let dir = temp_dir("grade-dmoj");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let problem = dir.join("sum");
    std::fs::create_dir_all(&problem).unwrap();
    write(&problem, "1.in", "1 2\n");
    write(&problem, "1.out", "3\n");
    write(&problem, "2.in", "5 5\n");
    write(&problem, "2.out", "10\n");
    write(&problem, "init.yml", "test_cases:\n  - {in: 1.in, out: 1.out, points: 40}\n  - {batched: [{in: 2.in, out: 2.out}], points: 60, dependencies: [1]}\n");
    for p in walk(&dir) {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let (o, json) = grade_json(&problem, &[example("sum/submissions/ac.wasm"), example("sum/submissions/pe.wasm")]);
    assert_eq!(o.status.code(), Some(0), "every test accepted: {}", stderr(&o));
    // DMOJ's standard checker compares tokens: the extra space is accepted there.
    assert_eq!(verdicts(&json), [("ac.wasm", "AC"), ("pe.wasm", "AC")].map(|(a, b)| (a.to_string(), b.to_string())));
    let score = json["submissions"][0]["score"].as_f64().unwrap();
    assert_eq!(score, 100.0);
}

/// Runs in flight never share a uid: as root every run takes a box of its own (uids from
/// 60000, isolate's box ids), so the two sides of an interactive test — in flight together by
/// construction — have different uids, and no run takes the shared `nobody`. Not as root, runs
/// are the caller's own uid in a user namespace (nothing else to share).
#[test]
fn concurrent_runs_get_distinct_uids() {
    let _serial = serial();
    let keep = temp_dir("grade-boxes");
    let subs = ["ac", "wa"].map(|n| example(&format!("guess/submissions/{n}.wasm")));
    // One test at a time: its submission and interactor take consecutive job folders.
    let o = run(bin()
        .arg("grade")
        .args(["--format", "json", "--jobs", "1", "--keep"])
        .arg(&keep)
        .arg(example("guess"))
        .args(&subs));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let uid_of = |n: usize| {
        let report = keep.join(format!("runs/job-{n}/report.json"));
        report.exists().then(|| report_json(&report)["confinement"]["uid"].as_u64().expect("a uid"))
    };
    let mut pairs = 0;
    while let (Some(sub), Some(int)) = (uid_of(2 * pairs), uid_of(2 * pairs + 1)) {
        if is_root() {
            assert!(
                (60_000..60_000 + 128 * 32).contains(&sub) && (60_000..60_000 + 128 * 32).contains(&int),
                "{sub} {int}"
            );
            assert_ne!(sub, int, "test {pairs}: both sides of an interactive test ran as uid {sub}");
        } else {
            let own = u64::from(nix::unistd::geteuid().as_raw());
            assert_eq!((sub, int), (own, own));
        }
        pairs += 1;
    }
    // Three tests for each of two submissions.
    assert_eq!(pairs, 6, "job folders under {}", keep.display());
}

/// `--instructions N`: every submission run counts its instructions; a run past its budget is
/// TLE whatever the machine's load, and two gradings give the same verdicts and the same
/// counts, test by test.
#[test]
fn an_instruction_budget_gives_the_same_verdicts_and_counts_every_time() {
    let _serial = serial();
    let subs = [example("sum/submissions/ac.wasm"), example("sum/submissions/tle.wasm")];
    let grade = || {
        let o = run(bin()
            .arg("grade")
            .args(["--format", "json", "--jobs", "2", "--instructions", "50000000"])
            .arg(example("sum"))
            .args(&subs));
        let json: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        assert_eq!(o.status.code(), Some(1), "not every test accepted: {}", stderr(&o));
        json
    };
    let counts = |json: &Value, name: &str| -> Vec<(String, String, u64)> {
        tests_of(json, name)
            .iter()
            .filter(|t| t["verdict"] != "SK") // a skipped test did not run
            .map(|t| {
                let n = t["instructions"].as_u64().unwrap_or_else(|| panic!("no count in {t}"));
                (t["id"].as_str().unwrap().to_string(), t["verdict"].as_str().unwrap().to_string(), n)
            })
            .collect()
    };
    let first = grade();
    let expected = [("ac.wasm", "AC"), ("tle.wasm", "TLE")];
    assert_eq!(verdicts(&first), expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    let (ac, tle) = (counts(&first, "ac.wasm"), counts(&first, "tle.wasm"));
    assert!(ac.iter().all(|(_, v, n)| v == "AC" && *n > 0 && *n <= 50_000_000), "{ac:?}");
    assert!(tle.iter().any(|(_, v, n)| v == "TLE" && *n >= 50_000_000), "{tle:?}");
    let second = grade();
    assert_eq!(counts(&second, "ac.wasm"), ac, "the same counts every time");
    assert_eq!(counts(&second, "tle.wasm"), tle);
}
