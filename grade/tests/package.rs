//! Loading problem packages: keys, defaults, groups and testdata.yaml, and one-line errors that
//! name the file (and line) for every malformed input.

mod common;

use common::*;
use grade::{load_problem, Aggregation, Checker, Compare, CompareMode, Convention, OnReject, ProblemKind};

#[test]
fn full_package() {
    let pkg = package(
        "problem_format_version: 2023-07-draft\nname:\n  en: Hello\n  sv: Hej\nuuid: 1234\nlimits:\n  time_limit: 1.5\n  memory: 256\n  output: 16\n  time_multipliers: {ac_to_time_limit: 2}\nvalidator_flags: float_tolerance 1e-6 case_sensitive\n",
        &[
            ("sample/1", "1", "1"),
            ("secret/b/2", "2", "2"),
            ("secret/a/1", "1", "1"),
            ("secret/a/deeper/1", "1", "1"),
            ("secret/0", "0", "0"),
        ],
        &[
            ("data/secret/testdata.yaml", "on_reject: break\n"),
            ("data/secret/a/testdata.yaml", "points: 10\naggregation: sum\noutput_validator_flags: space_change_sensitive\n"),
            ("data/secret/b/testdata.yaml", "points: 20\ndepends_on: [secret/a]\n"),
            ("data/sample/1.png", "not a test"),
            ("input_validators/v/validate.wasm", "\0asm"),
        ],
    );
    let p = load_problem(pkg.path()).unwrap();
    assert_eq!(p.name, "Hello");
    assert_eq!(p.limits.time_limit_ms, 1500);
    assert_eq!(p.limits.wall_limit_ms, 4000);
    assert_eq!(p.limits.memory_bytes, 256 << 20);
    assert_eq!(p.limits.output_bytes, 16 << 20);
    assert_eq!(p.limits.validation_time_ms, 60_000);
    assert_eq!(p.kind, ProblemKind::Batch);
    let names: Vec<&str> = p.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["sample", "secret", "secret/a", "secret/a/deeper", "secret/b"]);
    let ids: Vec<&str> = p.tests.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["sample/1", "secret/0", "secret/a/1", "secret/a/deeper/1", "secret/b/2"]);
    assert_eq!(p.groups[0].on_reject, OnReject::Continue);
    assert_eq!(p.groups[1].on_reject, OnReject::Break);
    assert_eq!(p.groups[3].on_reject, OnReject::Break, "inherited");
    assert_eq!(p.groups[3].aggregation, Aggregation::Sum, "inherited");
    assert_eq!(p.groups[3].points, None, "points are not inherited");
    assert_eq!(p.groups[4].depends_on, [2]);
    assert_eq!(p.groups[0].checker, Checker::Builtin(Compare { case_sensitive: true, ..Compare::floats(1e-6, 1e-6) }));
    assert_eq!(
        p.groups[2].checker,
        Checker::Builtin(Compare { mode: CompareMode::Exact, case_sensitive: false, floats: None })
    );
    assert_eq!(p.max_score(), 30.0);
    assert_eq!(p.input_validators.len(), 1);
    assert_eq!(p.sha256.len(), 64);
}

#[test]
fn defaults_and_legacy_keys() {
    let pkg = package("", &[("secret/1", "1", "1")], &[]);
    let p = load_problem(pkg.path()).unwrap();
    assert_eq!(p.limits.time_limit_ms, grade::DEFAULT_TIME_LIMIT_MS);
    assert_eq!(p.limits.memory_bytes, grade::DEFAULT_MEMORY_MIB << 20);
    assert_eq!(p.limits.output_bytes, grade::DEFAULT_OUTPUT_MIB << 20);
    assert!(p.name.starts_with("grade-test-"), "the directory's name");
    // Kattis's default validator is case-insensitive and whitespace-tolerant.
    assert_eq!(p.groups[0].checker, Checker::Builtin(Compare { case_sensitive: false, ..Compare::TOKENS }));

    let pkg = package("name: L\n", &[("secret/1", "1", "1")], &[(".timelimit", "2.5\n")]);
    assert_eq!(load_problem(pkg.path()).unwrap().limits.time_limit_ms, 2500);
    let pkg = package("name: L\ntime_limit: 3\nmemory_limit: 64\n", &[("secret/1", "1", "1")], &[]);
    let p = load_problem(pkg.path()).unwrap();
    assert_eq!((p.limits.time_limit_ms, p.limits.memory_bytes), (3000, 64 << 20));
    let pkg = package(
        "name: C\nvalidation: custom\nchecker_convention: testlib\n",
        &[("secret/1", "1", "1")],
        &[("output_validator/c.wasm", "")],
    );
    let p = load_problem(pkg.path()).unwrap();
    assert!(matches!(&p.groups[0].checker, Checker::Custom { convention: Convention::Testlib, .. }));
}

#[test]
fn the_hash_covers_every_file_and_its_path() {
    let a = package("name: H\n", &[("secret/1", "1", "1")], &[]);
    let b = package("name: H\n", &[("secret/1", "1", "1")], &[]);
    let c = package("name: H\n", &[("secret/1", "1", "2")], &[]);
    let d = package("name: H\n", &[("secret/2", "1", "1")], &[]);
    let h = |t: &Tmp| grade::package_sha256(t.path()).unwrap();
    assert_eq!(h(&a), h(&b));
    assert_ne!(h(&a), h(&c));
    assert_ne!(h(&a), h(&d));
}

/// Loads a package made of `yaml`, one secret test and `extra`, and returns the error.
fn error(yaml: &str, extra: &[(&str, &str)]) -> String {
    let pkg = package(yaml, &[("secret/1", "1", "1")], extra);
    let e = load_problem(pkg.path()).unwrap_err().to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e.replace(&pkg.path().display().to_string(), "PKG")
}

#[test]
fn malformed_packages_give_one_line_errors() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("name: [unclosed\n", &[], "PKG/problem.yaml:1:"),
        ("name: X\nlimits:\n  time_limit: fast\n", &[], "PKG/problem.yaml:3:"),
        ("name: X\nlimits:\n  time_limit: -1\n", &[], "PKG/problem.yaml: time_limit must be a positive number, not -1"),
        ("name: X\nlimits:\n  memory: 0\n", &[], "PKG/problem.yaml: memory must be a positive number, not 0"),
        (
            "validation: clever\n",
            &[],
            "PKG/problem.yaml: validation: unknown word 'clever' (use default, custom or custom interactive)",
        ),
        (
            "validation: interactive\n",
            &[],
            "PKG/problem.yaml: validation: interactive needs custom ('custom interactive')",
        ),
        ("type: quiz\n", &[], "PKG/problem.yaml: type: unknown problem type 'quiz'"),
        (
            "validator_flags: float_tolerance\n",
            &[],
            "PKG/problem.yaml: validator flag 'float_tolerance' needs a non-negative number after it",
        ),
        ("validator_flags: fuzzy\n", &[], "PKG/problem.yaml: unknown validator flag 'fuzzy'"),
        (
            "validation: custom\n",
            &[],
            "PKG/output_validator: custom validation needs a prebuilt .wasm checker or interactor here (none found)",
        ),
        (
            "validation: custom\n",
            &[("output_validator/a.wasm", ""), ("output_validator/b.wasm", "")],
            "more than one .wasm output validator",
        ),
        ("checker_convention: coci\n", &[], "PKG/problem.yaml: checker_convention: 'coci' is not icpc or testlib"),
        ("", &[("data/secret/2.in", "x")], "PKG/data/secret/2.in: no matching .ans file"),
        ("", &[("data/secret/3.ans", "x")], "PKG/data/secret/3.ans: no matching .in file"),
        (
            "",
            &[("data/secret/testdata.yaml", "on_reject: maybe\n")],
            "PKG/data/secret/testdata.yaml: on_reject: 'maybe' is not break or continue",
        ),
        (
            "",
            &[("data/secret/testdata.yaml", "points: -3\n")],
            "PKG/data/secret/testdata.yaml: points must be a non-negative number, not -3",
        ),
        (
            "",
            &[("data/secret/testdata.yaml", "points: 1\nscore: 2\n")],
            "PKG/data/secret/testdata.yaml: give points or score, not both",
        ),
        ("", &[("data/secret/testdata.yaml", "points: [1\n")], "PKG/data/secret/testdata.yaml:1:"),
        (
            "",
            &[("data/secret/testdata.yaml", "depends_on: nowhere\n")],
            "PKG/data/secret/testdata.yaml: depends_on: no group 'nowhere' with tests",
        ),
        (
            "",
            &[("data/secret/testdata.yaml", "output_validator_flags: wobbly\n")],
            "PKG/data/secret/testdata.yaml: unknown validator flag 'wobbly'",
        ),
        (
            "",
            &[("data/secret/testdata.yaml", "aggregation: max\n")],
            "PKG/data/secret/testdata.yaml: aggregation: 'max' is not min or sum",
        ),
        ("", &[(".timelimit", "soon")], "PKG/.timelimit: 'soon' is not a number of seconds"),
    ];
    for (yaml, extra, want) in cases {
        let e = error(yaml, extra);
        assert!(e.starts_with(want) || e.contains(want), "got '{e}', want '{want}'");
    }
}

#[test]
fn dependency_order_and_missing_directories() {
    let pkg = package(
        "",
        &[("secret/a/1", "1", "1"), ("secret/b/1", "1", "1")],
        &[("data/secret/a/testdata.yaml", "depends_on: b\n")],
    );
    let p = load_problem(pkg.path()).unwrap();
    assert_eq!(p.groups[0].depends_on, [1], "a group may depend on one later in test order");
    let pkg = package(
        "",
        &[("secret/a/1", "1", "1"), ("secret/b/1", "1", "1"), ("secret/c/1", "1", "1")],
        &[
            ("data/secret/a/testdata.yaml", "depends_on: b\n"),
            ("data/secret/b/testdata.yaml", "depends_on: c\n"),
            ("data/secret/c/testdata.yaml", "depends_on: [secret/a]\n"),
        ],
    );
    let e = load_problem(pkg.path()).unwrap_err().to_string();
    assert!(
        e.ends_with("data/secret/c/testdata.yaml: depends_on: a cycle: secret/c -> secret/a -> secret/b -> secret/c"),
        "{e}"
    );
    let pkg = package("", &[("secret/a/1", "1", "1")], &[("data/secret/a/testdata.yaml", "depends_on: a\n")]);
    let e = load_problem(pkg.path()).unwrap_err().to_string();
    assert!(e.ends_with("depends_on: 'a' is this group itself"), "{e}");

    let empty = Tmp::new();
    let e = load_problem(empty.path()).unwrap_err().to_string();
    assert_eq!(e, format!("failed to read '{}/problem.yaml': no such file or directory", empty.path().display()));
    let no_secret = Tmp::new().with(&[("problem.yaml", "name: x\n"), ("data/sample/1.in", "")]);
    let e = load_problem(no_secret.path()).unwrap_err().to_string();
    assert_eq!(e, format!("{}/data/secret: no such directory", no_secret.path().display()));
    let no_tests = Tmp::new().with(&[("problem.yaml", "name: x\n"), ("data/secret/readme.md", "")]);
    let e = load_problem(no_tests.path()).unwrap_err().to_string();
    assert_eq!(e, format!("{}/data: no test cases (.in with .ans) found", no_tests.path().display()));
}

#[test]
fn yaml_errors_name_line_and_column() {
    let e = error("name: X\nlimits:\n  time_limit: fast\n", &[]);
    assert_eq!(e, "PKG/problem.yaml:3:15: invalid floating point");
    let e = error("name: [unclosed\n", &[]);
    assert_eq!(e, "PKG/problem.yaml:1:7: unclosed bracket '['");
}
