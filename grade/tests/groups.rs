//! Groups with points, dependencies, batches that stop at the first failure, and parallel
//! runs that give the same result as serial ones.

mod common;

use common::*;
use grade::{grade, load_problem, RunOutcome, Verdict};

/// sample (unscored), g1 (batch, 30), g2 (sum, 30, depends on g1), g3 (min, 40).
fn scored_package() -> Tmp {
    package(
        "name: Scored\ntype: scoring\n",
        &[
            ("sample/1", "1", "1"),
            ("secret/g1/a", "1", "1"),
            ("secret/g1/b", "2", "2"),
            ("secret/g1/c", "3", "3"),
            ("secret/g2/a", "4", "4"),
            ("secret/g2/b", "5", "5"),
            ("secret/g3/a", "6", "6"),
            ("secret/g3/b", "7", "7"),
        ],
        &[
            ("data/secret/g1/testdata.yaml", "points: 30\non_reject: break\n"),
            ("data/secret/g2/testdata.yaml", "score: 30\naggregation: sum\ndepends_on: g1\n"),
            ("data/secret/g3/testdata.yaml", "points: 40\n"),
        ],
    )
}

/// Echoes its input, except for the inputs in `wrong`.
fn echo_but(wrong: &'static [&'static str]) -> Fake {
    Fake::new(move |_, input| {
        let s = std::str::from_utf8(input).unwrap();
        RunOutcome::exited(0, if wrong.contains(&s) { b"x".to_vec() } else { input.to_vec() })
    })
}

#[test]
fn points_min_and_sum() {
    let pkg = scored_package();
    let problem = load_problem(pkg.path()).unwrap();
    assert_eq!(problem.max_score(), 100.0);
    let r = grade(&problem, &[sub("ok.wasm")], &echo_but(&[]), &options(2), &no_progress).unwrap();
    let s = &r.submissions[0];
    assert_eq!((s.verdict, s.score, s.max_score), (Verdict::AC, 100.0, 100.0));
    assert_eq!(s.tests[4].points, Some(15.0), "a sum group's test carries its share");
    assert_eq!(s.tests[1].points, None, "a batch's points belong to the batch");

    let r = grade(&problem, &[sub("g3.wasm")], &echo_but(&["7", "5"]), &options(2), &no_progress).unwrap();
    let s = &r.submissions[0];
    assert_eq!(s.score, 30.0 + 15.0, "g2 keeps half, g3 (min) loses all");
    assert_eq!(s.groups.iter().map(|g| g.points).collect::<Vec<_>>(), [0.0, 30.0, 15.0, 0.0]);
    assert_eq!(s.groups[3].verdict, Verdict::WA);
}

#[test]
fn batch_break_and_dependency_skip() {
    let pkg = scored_package();
    let problem = load_problem(pkg.path()).unwrap();
    for jobs in [1, 4] {
        let fake = echo_but(&["2"]);
        let r = grade(&problem, &[sub("b.wasm")], &fake, &options(jobs), &no_progress).unwrap();
        let s = &r.submissions[0];
        let v: Vec<Verdict> = s.tests.iter().map(|t| t.verdict).collect();
        use Verdict::*;
        assert_eq!(v, [AC, AC, WA, SK, SK, SK, AC, AC], "jobs {jobs}");
        assert_eq!(s.tests[3].judge_message, "skipped: test 'secret/g1/b' of this batch failed");
        assert_eq!(s.tests[4].judge_message, "skipped: group 'secret/g2' depends on 'secret/g1', which failed");
        assert_eq!(s.verdict, WA, "SK is never the submission's verdict when a failure caused it");
        assert_eq!(s.score, 40.0);
        let ran: Vec<Vec<u8>> = fake.log.lock().unwrap().iter().map(stdin_bytes).collect();
        assert!(!ran.contains(&b"4".to_vec()) && !ran.contains(&b"5".to_vec()), "a skipped group never runs");
        if jobs == 1 {
            assert!(!ran.contains(&b"3".to_vec()), "serially, a batch stops at its first failure");
        }
    }
}

#[test]
fn parallel_equals_serial_and_order_is_deterministic() {
    let pkg = scored_package();
    let problem = load_problem(pkg.path()).unwrap();
    let subs = [sub("one.wasm"), sub("two.wasm"), sub("three.wasm")];
    let run = |jobs| {
        let fake = Fake::new(|name, input| {
            // Each submission fails a different test; a little sleep shuffles completion order.
            let bad: &[u8] = match name {
                "one.wasm" => b"1",
                "two.wasm" => b"6",
                _ => b"none",
            };
            std::thread::sleep(std::time::Duration::from_millis((input[0] % 3) as u64));
            RunOutcome::exited(0, if input == bad { b"x".to_vec() } else { input.to_vec() })
        });
        let count = std::sync::atomic::AtomicUsize::new(0);
        let r = grade(&problem, &subs, &fake, &options(jobs), &|p: &grade::Progress<'_>| {
            assert_eq!(p.total, 24);
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(count.into_inner(), 24, "one progress call per test");
        r
    };
    let serial = run(1);
    let parallel = run(4);
    assert_eq!(serial, parallel);
    let verdicts: Vec<Verdict> = serial.submissions.iter().map(|s| s.verdict).collect();
    assert_eq!(verdicts, [Verdict::WA, Verdict::WA, Verdict::AC]);
    assert_eq!(
        serial.submissions.iter().map(|s| s.score).collect::<Vec<_>>(),
        [40.0, 60.0, 100.0],
        "one fails g1 (and so g2), two fails g3"
    );
    assert_eq!(serial.submissions[0].name, "one.wasm");
}

#[test]
fn unscored_problem_and_sample_failure() {
    let pkg = package("name: Plain\n", &[("sample/1", "1", "1"), ("secret/1", "2", "2")], &[]);
    let problem = load_problem(pkg.path()).unwrap();
    assert_eq!(problem.max_score(), 0.0);
    let r = grade(&problem, &[sub("a.wasm")], &echo_but(&["1"]), &options(1), &no_progress).unwrap();
    assert_eq!(r.submissions[0].verdict, Verdict::WA, "a sample failure rejects");
    assert_eq!(r.submissions[0].tests[1].verdict, Verdict::AC, "secret tests still run");
    assert_eq!(r.submissions[0].score, 0.0);
}

#[test]
fn zero_jobs_and_no_submissions_are_errors() {
    let pkg = package("name: x\n", &[("secret/1", "1", "1")], &[]);
    let problem = load_problem(pkg.path()).unwrap();
    let fake = echo_but(&[]);
    assert_eq!(
        grade(&problem, &[], &fake, &options(1), &no_progress).unwrap_err().to_string(),
        "no submissions to grade"
    );
    assert_eq!(
        grade(&problem, &[sub("a")], &fake, &options(0), &no_progress).unwrap_err().to_string(),
        "invalid grading options: jobs must be at least 1"
    );
}

/// The worked example of docs/grading.md.
#[test]
fn worked_example_from_the_docs() {
    let pkg = package(
        "name: A plus B\ntype: scoring\nlimits: {time_limit: 0.5, memory: 64}\nvalidator_flags: float_tolerance 1e-6\n",
        &[
            ("sample/1", "1 2", "3"),
            ("secret/small/1", "2 2", "4"),
            ("secret/small/2", "3 4", "7"),
            ("secret/small/3", "4 4", "8"),
            ("secret/large/1", "5 5", "10"),
            ("secret/large/2", "6 5", "11"),
        ],
        &[
            ("data/secret/small/testdata.yaml", "points: 30\non_reject: break\n"),
            ("data/secret/large/testdata.yaml", "points: 70\ndepends_on: small\n"),
        ],
    );
    let problem = load_problem(pkg.path()).unwrap();
    assert_eq!((problem.limits.time_limit_ms, problem.limits.wall_limit_ms), (500, 2000));
    let fake = Fake::new(|_, input| {
        let s = std::str::from_utf8(input).unwrap();
        let sum: i64 = s.split_whitespace().map(|x| x.parse::<i64>().unwrap()).sum();
        let mut o = RunOutcome::exited(0, format!("{}\n", if sum == 7 { 8 } else { sum }).into_bytes());
        o.cpu_time_ms = 3;
        o.wall_time_ms = 4;
        o.peak_memory_bytes = 1_150_000;
        o
    });
    let r = grade(&problem, &[sub("wrong.wasm")], &fake, &options(2), &no_progress).unwrap();
    let s = &r.submissions[0];
    use Verdict::*;
    // Test order is sample, secret/large, secret/small: large waits for small, which it needs.
    let ids: Vec<&str> = s.tests.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        ["sample/1", "secret/large/1", "secret/large/2", "secret/small/1", "secret/small/2", "secret/small/3"]
    );
    assert_eq!(s.tests.iter().map(|t| t.verdict).collect::<Vec<_>>(), [AC, SK, SK, AC, WA, SK]);
    assert_eq!(s.tests[1].judge_message, "skipped: group 'secret/large' depends on 'secret/small', which failed");
    assert_eq!(s.tests[5].judge_message, "skipped: test 'secret/small/2' of this batch failed");
    let ran: Vec<Vec<u8>> = fake.log.lock().unwrap().iter().map(stdin_bytes).collect();
    assert!(!ran.contains(&b"5 5".to_vec()) && !ran.contains(&b"6 5".to_vec()), "large never ran");
    assert_eq!((s.verdict, s.score, s.max_score), (WA, 0.0, 100.0));
    let table = grade::render(&r, grade::Format::Table);
    let groups = "group         verdict  points\nsample        AC            -\nsecret/large  SK         0/70\nsecret/small  WA         0/30\n";
    assert!(table.ends_with(groups), "{table}");
    assert!(table.contains(
        "secret/small/2  secret/small  WA            3        4      1.1       -  line 1, token 1: expected '7', found '8'"
    ), "{table}");
}
