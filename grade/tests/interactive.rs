//! Interactive problems: the interactor's verdict, a submission that stops early, an
//! interactor that stops, and both sides waiting (ILE).

mod common;

use common::*;
use grade::{grade, load_problem, Reason, Role, RunOutcome, RunStatus, Trap, Verdict};

fn killed(reason: Reason) -> RunOutcome {
    let mut o = RunOutcome::exited(0, Vec::new());
    o.status =
        if reason == Reason::Idle || reason == Reason::WallTime { RunStatus::TimeLimit } else { RunStatus::Killed };
    o.exit_code = None;
    o.reason = Some(reason);
    o
}

/// Scenario per test input: (submission outcome, interactor exit or outcome, messages).
fn scenario(input: &str, fb: &std::path::Path) -> (RunOutcome, RunOutcome) {
    let write = |f: &str, s: &str| std::fs::write(fb.join(f), s).unwrap();
    let exit = RunOutcome::exited;
    match input {
        "ac" => {
            write("judgemessage.txt", "guessed in 7");
            (exit(0, Vec::new()), exit(42, Vec::new()))
        }
        "quit-early" => {
            // The submission stopped reading and exited; the interactor hit EOF and rejected.
            write("judgemessage.txt", "eof after 3 queries");
            (exit(0, Vec::new()), exit(43, Vec::new()))
        }
        "crash-early" => {
            let mut s = exit(0, Vec::new());
            s.status = RunStatus::Trapped;
            s.exit_code = None;
            s.trap = Some(Trap { kind: "unreachable".into(), function: None, offset: None });
            (s, exit(43, Vec::new()))
        }
        "crash-after-accept" => (exit(1, Vec::new()), exit(42, Vec::new())),
        "interactor-stops" => {
            // The interactor rejected and left; the submission died writing to the closed pipe.
            let mut s = killed(Reason::Signal);
            s.signal = Some(13);
            (s, exit(43, Vec::new()))
        }
        "interactor-crashes" => {
            let mut i = exit(0, Vec::new());
            i.status = RunStatus::Trapped;
            i.exit_code = None;
            i.trap = Some(Trap { kind: "integer overflow".into(), function: None, offset: None });
            (exit(0, Vec::new()), i)
        }
        "both-wait" => (killed(Reason::Idle), killed(Reason::Idle)),
        "both-wall" => (killed(Reason::WallTime), killed(Reason::WallTime)),
        "sub-tle" => {
            let mut s = killed(Reason::CpuTime);
            s.status = RunStatus::TimeLimit;
            (s, exit(43, Vec::new()))
        }
        other => panic!("{other}"),
    }
}

#[test]
fn interactive_outcomes() {
    let cases = [
        ("ac", Verdict::AC, "guessed in 7"),
        ("quit-early", Verdict::WA, "eof after 3 queries"),
        ("crash-early", Verdict::WA, ""),
        ("crash-after-accept", Verdict::RTE, "exited with code 1 (the interactor had accepted)"),
        ("interactor-stops", Verdict::WA, ""),
        ("interactor-crashes", Verdict::IE, "output validator trapped: integer overflow"),
        ("both-wait", Verdict::ILE, "both waited"),
        ("both-wall", Verdict::ILE, "both waited"),
        ("sub-tle", Verdict::TLE, "cpu time"),
    ];
    let tests: Vec<(String, String, String)> = cases
        .iter()
        .enumerate()
        .map(|(i, (inp, _, _))| (format!("secret/{i}"), inp.to_string(), "secret".to_string()))
        .collect();
    let refs: Vec<(&str, &str, &str)> = tests.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    let pkg = package(
        "name: Guess\nvalidation: custom interactive\nlimits:\n  time_limit: 2\n",
        &refs,
        &[("output_validators/guess/interactor.wasm", "\0asm")],
    );
    let problem = load_problem(pkg.path()).unwrap();
    assert_eq!(problem.limits.idle_limit_ms, 3000);
    let fake = Fake::new(|_, _| panic!("batch run in an interactive problem")).interactive(|s, i| {
        assert_eq!(s.role, Role::Submission);
        assert_eq!(i.role, Role::Interactor);
        assert_eq!(i.args[2], "/feedback/");
        let input = std::fs::read_to_string(host(i, &i.args[0])).unwrap();
        let (mut so, io) = scenario(&input, &host(i, "/feedback/"));
        so.module_sha256 = "sub".into();
        (so, io)
    });
    let r = grade(&problem, &[sub("a.wasm")], &fake, &options(2), &no_progress).unwrap();
    assert_eq!(r.problem.kind, "interactive");
    for (t, (input, verdict, message)) in r.submissions[0].tests.iter().zip(cases) {
        assert_eq!(t.verdict, verdict, "{input}: {}", t.judge_message);
        assert!(t.judge_message.contains(message), "{input}: '{}' lacks '{message}'", t.judge_message);
    }
}

#[test]
fn legacy_type_key_makes_it_interactive() {
    let pkg = package(
        "name: G\ntype: [pass-fail, interactive]\n",
        &[("secret/1", "1", "1")],
        &[("output_validator/i.wasm", "\0asm")],
    );
    let problem = load_problem(pkg.path()).unwrap();
    assert!(matches!(problem.kind, grade::ProblemKind::Interactive { .. }));
}
