//! Every verdict, through the grading flow with a scripted executor, and the mapping rules.

mod common;

use common::*;
use grade::{classify, grade, load_problem, Reason, RunOutcome, RunStatus, Trap, Verdict};

fn outcome_for(input: &str) -> RunOutcome {
    let mut o = RunOutcome::exited(0, b"42\n".to_vec());
    o.cpu_time_ms = 10;
    o.peak_memory_bytes = 1 << 20;
    match input.trim() {
        "ac" => {}
        "wa" => o = RunOutcome::exited(0, b"41\n".to_vec()),
        "pe" => o = RunOutcome::exited(0, b"42 \n".to_vec()),
        "tle" => {
            o.status = RunStatus::TimeLimit;
            o.reason = Some(Reason::CpuTime);
            o.exit_code = None;
            o.cpu_time_ms = 1001;
        }
        "fuel" => {
            o.status = RunStatus::TimeLimit;
            o.reason = Some(Reason::Instructions);
            o.exit_code = None;
            o.instructions = Some(1_000_000);
        }
        "ile" => {
            o.status = RunStatus::TimeLimit;
            o.reason = Some(Reason::WallTime);
            o.exit_code = None;
            o.wall_time_ms = 3000;
        }
        "mle" => {
            o.status = RunStatus::MemoryLimit;
            o.reason = Some(Reason::CgroupMemory);
            o.exit_code = None;
        }
        "grow" => {
            o.status = RunStatus::Trapped;
            o.exit_code = None;
            o.memory_grow_refused = true;
            o.trap = Some(Trap {
                kind: "out of bounds memory access".into(),
                function: Some("main".into()),
                offset: Some(16),
            });
        }
        "grow-exit" => {
            o = RunOutcome::exited(3, Vec::new());
            o.memory_grow_refused = true;
        }
        "ole" => {
            o.status = RunStatus::OutputLimit;
            o.reason = Some(Reason::Output);
            o.exit_code = None;
        }
        "rte-exit" => o = RunOutcome::exited(3, Vec::new()),
        "rte-trap" => {
            o.status = RunStatus::Trapped;
            o.exit_code = None;
            o.trap = Some(Trap {
                kind: "integer divide by zero".into(),
                function: Some("solve (7)".into()),
                offset: Some(0x2a),
            });
        }
        "rte-signal" => {
            o.status = RunStatus::Killed;
            o.reason = Some(Reason::GuestSignal);
            o.exit_code = None;
            o.signal = Some(6);
        }
        "sv" => {
            o.status = RunStatus::Killed;
            o.reason = Some(Reason::Seccomp);
            o.exit_code = None;
            o.signal = Some(31);
            o.syscall = Some("socket".into());
        }
        "ie" => {
            o.status = RunStatus::Error;
            o.exit_code = None;
            o.error = Some("missing import wasi_snapshot_preview1::sock_open".into());
        }
        other => panic!("unexpected input {other}"),
    }
    o
}

const CASES: &[(&str, Verdict, &str)] = &[
    ("ac", Verdict::AC, ""),
    ("wa", Verdict::WA, "expected '42', found '41'"),
    ("pe", Verdict::PE, "whitespace differs"),
    ("tle", Verdict::TLE, "cpu time limit"),
    ("fuel", Verdict::TLE, "instruction budget exhausted after 1000000 instructions"),
    ("ile", Verdict::ILE, "wall-clock limit"),
    ("mle", Verdict::MLE, "memory.max"),
    (
        "grow",
        Verdict::MLE,
        "memory.grow refused at the memory limit, then trapped: out of bounds memory access in main at offset 0x10",
    ),
    ("grow-exit", Verdict::MLE, "memory.grow refused at the memory limit, then exited with code 3"),
    ("ole", Verdict::OLE, "output limit"),
    ("rte-exit", Verdict::RTE, "exited with code 3"),
    ("rte-trap", Verdict::RTE, "trapped: integer divide by zero in solve (7) at offset 0x2a"),
    ("rte-signal", Verdict::RTE, "raised signal 6"),
    ("sv", Verdict::SV, "system call 'socket' denied by seccomp"),
    ("ie", Verdict::IE, "sandboxrun could not run the module: missing import"),
];

#[test]
fn every_verdict_through_grade() {
    let tests: Vec<(String, String, String)> = CASES
        .iter()
        .enumerate()
        .map(|(i, (inp, _, _))| (format!("secret/{i:02}"), inp.to_string(), "42\n".to_string()))
        .collect();
    let refs: Vec<(&str, &str, &str)> = tests.iter().map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str())).collect();
    let pkg = package("name: Verdicts\nvalidator_flags: space_change_sensitive\n", &refs, &[]);
    let problem = load_problem(pkg.path()).unwrap();
    let fake = Fake::new(|_, input| outcome_for(std::str::from_utf8(input).unwrap()));
    let r = grade(&problem, &[sub("a.wasm")], &fake, &options(3), &no_progress).unwrap();
    let s = &r.submissions[0];
    for (i, (input, verdict, message)) in CASES.iter().enumerate() {
        let t = &s.tests[i];
        assert_eq!(t.verdict, *verdict, "{input}: {}", t.judge_message);
        assert!(t.judge_message.contains(message), "{input}: '{}' lacks '{message}'", t.judge_message);
    }
    assert_eq!(s.verdict, Verdict::WA, "the first verdict other than AC");
    assert_eq!(s.module_sha256, fake_sha("a.wasm"));
    assert_eq!(s.tests[0].limits.cpu_ms, 1000, "default time limit");
    assert_eq!(s.tests[4].instructions, Some(1_000_000));
    assert_eq!(s.tests[11].trap.as_ref().unwrap().kind, "integer divide by zero");
    assert_eq!(s.tests[13].syscall.as_deref(), Some("socket"));
}

#[test]
fn exit_zero_past_the_cpu_limit_is_tle_and_clean_exit_goes_to_the_checker() {
    let mut o = RunOutcome::exited(0, Vec::new());
    assert!(classify(&o, 1000).is_none());
    o.cpu_time_ms = 1500;
    assert_eq!(classify(&o, 1000).unwrap().verdict, Verdict::TLE);
}

#[test]
fn memory_grow_refused_alone_is_not_mle() {
    // A program that copes with a refused memory.grow and exits 0 is judged on its output.
    let mut o = RunOutcome::exited(0, Vec::new());
    o.memory_grow_refused = true;
    assert!(classify(&o, 1000).is_none());
}

#[test]
fn killed_reasons_map_to_their_verdicts() {
    let killed = |r: Reason| {
        let mut o = RunOutcome::exited(0, Vec::new());
        o.status = RunStatus::Killed;
        o.exit_code = None;
        o.reason = Some(r);
        o.signal = Some(9);
        classify(&o, 1000).unwrap().verdict
    };
    assert_eq!(killed(Reason::Signal), Verdict::RTE);
    assert_eq!(killed(Reason::Cancelled), Verdict::IE);
    assert_eq!(killed(Reason::CgroupMemory), Verdict::MLE);
    assert_eq!(killed(Reason::Output), Verdict::OLE);
    assert_eq!(killed(Reason::Seccomp), Verdict::SV);
}

#[test]
fn executor_failure_is_ie_and_control_characters_are_cleaned() {
    struct Broken;
    impl grade::Executor for Broken {
        fn run(&self, job: &grade::RunJob) -> Result<RunOutcome, grade::ExecError> {
            Err(grade::ExecError { module: job.module.clone(), message: "cannot fork".into() })
        }
        fn run_interactive(
            &self,
            _: &grade::RunJob,
            _: &grade::RunJob,
            _: std::time::Duration,
        ) -> Result<(RunOutcome, RunOutcome), grade::ExecError> {
            unreachable!()
        }
    }
    let pkg = package("name: x\n", &[("secret/1", "1", "1")], &[]);
    let problem = load_problem(pkg.path()).unwrap();
    let r = grade(&problem, &[sub("a.wasm")], &Broken, &options(1), &no_progress).unwrap();
    assert_eq!(r.submissions[0].tests[0].verdict, Verdict::IE);
    assert_eq!(r.submissions[0].tests[0].judge_message, "failed to run '/subs/a.wasm': cannot fork");

    let mut o = RunOutcome::exited(0, Vec::new());
    o.status = RunStatus::Trapped;
    o.trap = Some(Trap { kind: "evil\x1b[31m\nkind".into(), function: None, offset: None });
    assert_eq!(classify(&o, 1).unwrap().message, "trapped: evil [31m kind");
}

/// The runner's own verdict for the budget (`status: instruction_limit`, `reason:
/// instructions`) is TLE with the count, like a time limit with that reason.
#[test]
fn the_runners_instruction_limit_is_tle_with_the_count() {
    let mut o: RunOutcome = serde_json::from_value(serde_json::json!("instruction_limit"))
        .map(|status| RunOutcome { status, ..RunOutcome::exited(0, Vec::new()) })
        .unwrap();
    o.exit_code = None;
    o.reason = Some(Reason::Instructions);
    o.instructions = Some(6003);
    let judged = classify(&o, 1000).unwrap();
    assert_eq!(judged.verdict, Verdict::TLE);
    assert_eq!(judged.message, "instruction budget exhausted after 6003 instructions");
    o.instructions = None;
    assert_eq!(classify(&o, 1000).unwrap().message, "instruction budget exhausted");
}
