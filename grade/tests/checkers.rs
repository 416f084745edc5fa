//! Custom checkers through the executor: the ICPC convention (exit 42/43, feedback files) and
//! testlib (exit 0/1/2/3/7); a checker that crashes, times out or exits oddly is IE, never WA.

mod common;

use common::*;
use grade::{grade, load_problem, ExecError, Reason, Role, RunOutcome, RunStatus, Stdin, Trap, Verdict};

fn icpc_package() -> Tmp {
    package(
        "name: Custom\nvalidation: custom\nvalidator_flags: tolerant\n",
        &[
            ("secret/1", "ok", "A"),
            ("secret/2", "wa", "A"),
            ("secret/3", "half", "A"),
            ("secret/4", "crash", "A"),
            ("secret/5", "slow", "A"),
            ("secret/6", "odd", "A"),
            ("secret/7", "broken", "A"),
            ("secret/8", "badscore", "A"),
        ],
        &[("output_validator/check.wasm", "\0asm")],
    )
}

/// An ICPC checker: reads the guest paths it is given and does what the input says.
fn icpc_checker(job: &grade::RunJob) -> Result<RunOutcome, ExecError> {
    assert_eq!(job.role, Role::Checker);
    assert!(job.module.ends_with("output_validator/check.wasm"));
    assert_eq!(job.args.len(), 4, "input answer feedback_dir flags: {:?}", job.args);
    assert_eq!(job.args[2], "/feedback/");
    assert_eq!(job.args[3], "tolerant");
    let input = std::fs::read_to_string(host(job, &job.args[0])).unwrap();
    let answer = std::fs::read_to_string(host(job, &job.args[1])).unwrap();
    assert_eq!(answer, "A");
    let Stdin::File(out) = &job.stdin else { panic!("contestant output comes on stdin") };
    assert_eq!(std::fs::read_to_string(out).unwrap(), "out:".to_string() + &input);
    let feedback = host(job, "/feedback/");
    assert!(feedback.is_dir());
    let write = |f: &str, s: &str| std::fs::write(feedback.join(f), s).unwrap();
    let mut o = RunOutcome::exited(42, Vec::new());
    o.module_sha256 = "checker-sha".into();
    match input.as_str() {
        "ok" => write("judgemessage.txt", "fine\n"),
        "wa" => {
            write("judgemessage.txt", "expected A\n");
            write("teammessage.txt", "look at the sign\n");
            o.exit_code = Some(43);
        }
        "half" => write("score.txt", "0.5\n"),
        "crash" => {
            o.status = RunStatus::Trapped;
            o.exit_code = None;
            o.trap = Some(Trap { kind: "unreachable".into(), function: None, offset: None });
        }
        "slow" => {
            o.status = RunStatus::TimeLimit;
            o.reason = Some(Reason::CpuTime);
            o.exit_code = None;
        }
        "odd" => o.exit_code = Some(1),
        "broken" => return Err(ExecError { module: job.module.clone(), message: "no such module".into() }),
        "badscore" => write("score.txt", "7\n"),
        _ => unreachable!(),
    }
    Ok(o)
}

#[test]
fn icpc_convention() {
    let pkg = icpc_package();
    let problem = load_problem(pkg.path()).unwrap();
    let fake = Fake::new(|_, input| RunOutcome::exited(0, [b"out:", input].concat())).checker(icpc_checker);
    let r = grade(&problem, &[sub("a.wasm")], &fake, &options(2), &no_progress).unwrap();
    let t = &r.submissions[0].tests;
    assert_eq!((t[0].verdict, t[0].judge_message.as_str()), (Verdict::AC, "fine"));
    assert_eq!((t[1].verdict, t[1].judge_message.as_str()), (Verdict::WA, "expected A"));
    assert_eq!(t[1].contestant_message.as_deref(), Some("look at the sign"));
    assert_eq!((t[2].verdict, t[2].fraction), (Verdict::AC, 0.5));
    assert_eq!(t[3].verdict, Verdict::IE, "a crashing checker: {}", t[3].judge_message);
    assert_eq!(t[3].judge_message, "output validator trapped: unreachable");
    assert_eq!(t[4].verdict, Verdict::IE, "a checker out of time");
    assert_eq!(t[5].verdict, Verdict::IE);
    assert_eq!(t[5].judge_message, "output validator exited with code 1 (expected 42 or 43)");
    assert_eq!(t[6].verdict, Verdict::IE);
    assert_eq!(
        t[6].judge_message,
        "checker: failed to run '".to_string()
            + &problem.root.join("output_validator/check.wasm").display().to_string()
            + "': no such module"
    );
    assert_eq!(t[7].verdict, Verdict::IE, "score.txt outside 0..1");
    assert_eq!(r.checker_sha256.as_deref(), Some("checker-sha"));
    // Checker limits are the validation limits, not the submission's.
    let log = fake.log.lock().unwrap();
    let c = log.iter().find(|j| j.role == Role::Checker).unwrap();
    assert_eq!(c.limits.cpu_ms, 60_000);
}

#[test]
fn testlib_convention() {
    let pkg = package(
        "name: T\nvalidation: custom\nchecker_convention: testlib\n",
        &[
            ("secret/1", "0", "A"),
            ("secret/2", "1", "A"),
            ("secret/3", "2", "A"),
            ("secret/4", "3", "A"),
            ("secret/5", "7", "A"),
            ("secret/6", "7z", "A"),
            ("secret/7", "7x", "A"),
            ("secret/8", "4", "A"),
        ],
        &[("output_validators/checker/check.wasm", "\0asm")],
    );
    let problem = load_problem(pkg.path()).unwrap();
    let fake = Fake::new(|_, input| RunOutcome::exited(0, input.to_vec())).checker(|job| {
        // check input output answer
        assert_eq!(job.args[1], "/judge/output");
        let input = std::fs::read_to_string(host(job, &job.args[0])).unwrap();
        let output = std::fs::read_to_string(host(job, &job.args[1])).unwrap();
        assert_eq!(input, output);
        assert_eq!(std::fs::read_to_string(host(job, &job.args[2])).unwrap(), "A");
        let mut o = RunOutcome::exited(input[..1].parse().unwrap(), Vec::new());
        o.stderr_head = match input.as_str() {
            "0" => b"ok 1 number".to_vec(),
            "1" => b"wrong answer 1st numbers differ".to_vec(),
            "2" => b"wrong output format".to_vec(),
            "3" => b"answer file is bad".to_vec(),
            "7" => b"points 0.25 partial".to_vec(),
            "7z" => b"points 0".to_vec(),
            "7x" => b"no points line".to_vec(),
            _ => Vec::new(),
        };
        Ok(o)
    });
    let r = grade(&problem, &[sub("a.wasm")], &fake, &options(1), &no_progress).unwrap();
    let v: Vec<(Verdict, f64)> = r.submissions[0].tests.iter().map(|t| (t.verdict, t.fraction)).collect();
    assert_eq!(
        v,
        [
            (Verdict::AC, 1.0),
            (Verdict::WA, 0.0),
            (Verdict::PE, 0.0),
            (Verdict::IE, 0.0),
            (Verdict::AC, 0.25),
            (Verdict::WA, 0.0),
            (Verdict::IE, 0.0),
            (Verdict::IE, 0.0)
        ]
    );
    assert_eq!(r.submissions[0].tests[1].judge_message, "wrong answer 1st numbers differ");
    assert_eq!(r.submissions[0].tests[3].judge_message, "testlib checker failed: answer file is bad");
}

#[test]
fn scratch_dirs_are_fresh_and_removed() {
    let root = Tmp::new();
    let pkg = package("name: x\n", &[("secret/1", "1", "1"), ("secret/2", "1", "1")], &[]);
    let problem = load_problem(pkg.path()).unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    let fake = Fake::new(|_, _| RunOutcome::exited(0, b"1".to_vec()));
    let mut opts = options(2);
    opts.scratch_root = Some(root.path().to_path_buf());
    grade(&problem, &[sub("a.wasm")], &fake, &opts, &no_progress).unwrap();
    for j in fake.log.lock().unwrap().iter() {
        let s = j.scratch.as_ref().unwrap();
        assert_eq!(s.guest, "/scratch");
        assert!(!seen.lock().unwrap().contains(&s.host), "a fresh directory per test");
        seen.lock().unwrap().push(s.host.clone());
        assert!(!s.host.exists(), "removed after the test");
    }
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "the run's root is removed too");
}
