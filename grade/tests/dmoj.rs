//! The DMOJ `init.yml` importer.

mod common;

use common::*;
use grade::{grade, load_dmoj, Aggregation, Checker, Compare, Convention, OnReject, RunOutcome, Verdict};

fn dmoj(init: &str) -> Tmp {
    Tmp::new().with(&[
        ("init.yml", init),
        ("s1.in", "1"),
        ("s1.out", "1"),
        ("b1.in", "2"),
        ("b1.out", "2"),
        ("b2.in", "3"),
        ("b2.out", "3"),
        ("b3.in", "4"),
        ("b3.out", "4"),
        ("check.wasm", "\0asm"),
    ])
}

const INIT: &str = "\
checker:
  name: floats
  args: {precision: 4}
test_cases:
- {in: s1.in, out: s1.out, points: 5}
- batched:
  - {in: b1.in, out: b1.out}
  - {in: b2.in, out: b2.out}
  points: 20
- batched:
  - {in: b3.in, out: b3.out}
  points: 75
  dependencies: [2]
";

#[test]
fn imports_cases_batches_and_dependencies() {
    let d = dmoj(INIT);
    let p = load_dmoj(d.path()).unwrap();
    let names: Vec<&str> = p.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["case1", "batch2", "batch3"]);
    assert_eq!(
        p.tests.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["case1/s1", "batch2/b1", "batch2/b2", "batch3/b3"]
    );
    assert_eq!(p.groups[1].on_reject, OnReject::Break);
    assert_eq!(p.groups[1].aggregation, Aggregation::Min);
    assert_eq!(p.groups[2].depends_on, [1]);
    assert_eq!(p.max_score(), 100.0);
    assert_eq!(p.groups[0].checker, Checker::Builtin(Compare::floats(1e-4, 1e-4)));

    let fake = Fake::new(|_, input| RunOutcome::exited(0, if input == b"2" { b"9".to_vec() } else { input.to_vec() }));
    let r = grade(&p, &[sub("a.wasm")], &fake, &options(2), &no_progress).unwrap();
    let v: Vec<Verdict> = r.submissions[0].tests.iter().map(|t| t.verdict).collect();
    assert_eq!(v, [Verdict::AC, Verdict::WA, Verdict::SK, Verdict::SK]);
    assert_eq!(r.submissions[0].score, 5.0);
    assert_eq!(r.submissions[0].tests[0].points, Some(5.0));
}

#[test]
fn checkers_map() {
    let with = |c: &str| {
        let d = dmoj(&format!("checker: {c}\ntest_cases:\n- {{in: s1.in, out: s1.out, points: 1}}\n"));
        load_dmoj(d.path()).map(|p| p.groups[0].checker.clone())
    };
    assert_eq!(with("standard").unwrap(), Checker::Builtin(Compare::TOKENS));
    assert_eq!(with("identical").unwrap(), Checker::Builtin(Compare::EXACT));
    assert_eq!(with("unordered").unwrap(), Checker::Builtin(Compare::UNORDERED_LINES));
    let c = with("{name: bridged, args: {files: check.wasm, type: testlib}}").unwrap();
    assert!(matches!(c, Checker::Custom { convention: Convention::Testlib, .. }));
    let e = with("{name: bridged, args: {files: check.cpp, type: testlib}}").unwrap_err().to_string();
    assert!(e.ends_with("init.yml: checker: bridged needs exactly one prebuilt .wasm in args.files"), "{e}");
    let e = with("linecount").unwrap_err().to_string();
    assert!(e.contains("init.yml: checker: 'linecount' is not supported"), "{e}");
}

#[test]
fn malformed_init_yml() {
    let err = |init: &str| {
        let d = dmoj(init);
        let e = load_dmoj(d.path()).unwrap_err().to_string();
        assert!(!e.contains('\n'));
        e.replace(&d.path().display().to_string(), "DIR")
    };
    assert_eq!(err("archive: tests.zip\n"), "DIR/init.yml: test_cases is empty");
    assert_eq!(
        err("archive: tests.zip\ntest_cases:\n- {in: gone.in, out: gone.out}\n"),
        "DIR/init.yml: test_cases[1]: 'DIR/gone.in' not found (unpack 'tests.zip' beside init.yml)"
    );
    assert_eq!(err("test_cases:\n- {in: s1.in}\n"), "DIR/init.yml: test_cases[1]: needs both 'in' and 'out'");
    assert_eq!(
        err("test_cases:\n- batched:\n  - {in: s1.in, out: s1.out}\n  dependencies: [1]\n"),
        "DIR/init.yml: test_cases[1]: dependency 1 must name an earlier entry (1-based)"
    );
    assert!(err("test_cases: [\n").starts_with("DIR/init.yml:"));
    assert!(err("test_cases:\n- {in: s1.in, out: s1.out, points: lots}\n").starts_with("DIR/init.yml:2:"));
}
