//! The grading flow: every (submission, test) pair runs on a pool of `jobs` worker threads, each
//! test in a fresh scratch directory; groups, dependencies, batches and points are applied in
//! test order so the result never depends on thread timing.

use crate::checker::{decode, CheckResult, Checker, Convention};
use crate::error::GradeError;
use crate::exec::{Executor, Mount, Role, RunJob, RunLimits, RunOutcome, Stdin};
use crate::package::{Aggregation, OnReject, Problem, ProblemKind, TestCase};
use crate::result::{
    GradeResult, GroupRecord, ProblemGroup, ProblemInfo, SubmissionResult, TestRecord, SCHEMA_VERSION,
};
use crate::scratch::ScratchDir;
use crate::verdict::{classify, decide_interactive, Judged, Verdict};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The guest path of a test's data directory (read-only: `NAME.in`, `NAME.ans`).
pub const GUEST_DATA: &str = "/data";
/// The guest path of the contestant's output for a checker (read-only: `output`).
pub const GUEST_JUDGE: &str = "/judge";
/// The guest path of the checker's feedback directory (read-write).
pub const GUEST_FEEDBACK: &str = "/feedback";
/// The guest path of the submission's scratch directory (read-write, empty).
pub const GUEST_SCRATCH: &str = "/scratch";

/// A program to grade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// A name for reports (e.g. the file name).
    pub name: String,
    /// The `.wasm` module.
    pub module: PathBuf,
}

/// How to grade.
#[derive(Clone, Debug)]
pub struct GradeOptions {
    /// Worker threads (at least 1).
    pub jobs: usize,
    /// The engine's version string, recorded in the result.
    pub engine_version: String,
    /// SHA-256 of the policy the runs use, recorded in the result.
    pub policy_sha256: String,
    /// Where scratch directories are made (default: the system's temp directory).
    pub scratch_root: Option<PathBuf>,
    /// An instruction budget per submission run (`None`: none).
    pub instruction_budget: Option<u64>,
    /// Bytes of stdout and stderr kept in each test record.
    pub head_bytes: usize,
}

impl Default for GradeOptions {
    fn default() -> GradeOptions {
        GradeOptions {
            jobs: 1,
            engine_version: String::new(),
            policy_sha256: String::new(),
            scratch_root: None,
            instruction_budget: None,
            head_bytes: 256,
        }
    }
}

/// Progress: one call per finished test (from a worker thread).
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// The submission's name.
    pub submission: &'a str,
    /// The test's id.
    pub test: &'a str,
    /// Its verdict (before batch fix-ups: a test that ran after its batch failed may still be
    /// reported SK in the result).
    pub verdict: Verdict,
    /// Tests finished so far, over all submissions.
    pub done: usize,
    /// Tests in all.
    pub total: usize,
}

enum Slot {
    Pending,
    Running,
    Done(Box<TestRecord>),
}

struct State {
    slots: Vec<Slot>,
    done: usize,
}

/// Grades `submissions` on `problem`, running every module through `executor`.
///
/// # Errors
/// [`GradeError`] when grading cannot start (no submissions, no scratch directory). Anything
/// that goes wrong in a test (the executor failing, a checker crashing) is that test's IE.
pub fn grade(
    problem: &Problem,
    submissions: &[Submission],
    executor: &dyn Executor,
    options: &GradeOptions,
    progress: &(dyn Fn(&Progress<'_>) + Sync),
) -> Result<GradeResult, GradeError> {
    if submissions.is_empty() {
        return Err(GradeError::NoSubmissions);
    }
    if options.jobs == 0 {
        return Err(GradeError::Options("jobs must be at least 1".into()));
    }
    let base = options.scratch_root.clone().unwrap_or_else(std::env::temp_dir);
    let root = ScratchDir::new(&base, "sandboxrun-grade")?;
    let n = problem.tests.len();
    let total = n * submissions.len();
    let state = Mutex::new(State { slots: (0..total).map(|_| Slot::Pending).collect(), done: 0 });
    let wake = Condvar::new();
    let checker_sha = Mutex::new(None::<String>);
    let module_sha = Mutex::new(vec![String::new(); submissions.len()]);
    let ctx = Ctx { problem, executor, options, root: root.path(), checker_sha: &checker_sha, module_sha: &module_sha };

    std::thread::scope(|scope| {
        for _ in 0..options.jobs.min(total) {
            scope.spawn(|| loop {
                let picked = {
                    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        let mut any_pending = false;
                        let mut choice = None;
                        for i in 0..total {
                            if !matches!(st.slots[i], Slot::Pending) {
                                continue;
                            }
                            any_pending = true;
                            match readiness(problem, &st.slots[i - i % n..i - i % n + n], i % n) {
                                Ready::Wait => continue,
                                r => {
                                    choice = Some((i, r));
                                    break;
                                }
                            }
                        }
                        if let Some((i, r)) = choice {
                            st.slots[i] = Slot::Running;
                            break Some((i, r));
                        }
                        if !any_pending {
                            break None;
                        }
                        st = wake.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                };
                let Some((i, ready)) = picked else { break };
                let (s, t) = (i / n, i % n);
                let test = &problem.tests[t];
                let record = match ready {
                    Ready::Skip(why) => skipped(problem, test, why, ctx.submission_limits()),
                    _ => ctx.run_test(&submissions[s], s, t),
                };
                let verdict = record.verdict;
                let done = {
                    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                    st.slots[i] = Slot::Done(Box::new(record));
                    st.done += 1;
                    st.done
                };
                wake.notify_all();
                progress(&Progress { submission: &submissions[s].name, test: &test.id, verdict, done, total });
            });
        }
    });

    let st = state.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut records: Vec<TestRecord> = st
        .slots
        .into_iter()
        .map(|s| match s {
            Slot::Done(r) => *r,
            // Every slot is done once the scope ends; kept total for safety.
            _ => skipped(problem, &problem.tests[0], "not run".into(), ctx.submission_limits()),
        })
        .collect();
    let shas = module_sha.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut subs = Vec::new();
    for (sub, sha) in submissions.iter().zip(shas) {
        let recs: Vec<TestRecord> = records.drain(..n).collect();
        subs.push(summarise(problem, sub, recs, sha));
    }
    let checker_sha256 = checker_sha.into_inner().unwrap_or_else(|e| e.into_inner());
    root.remove()?;
    Ok(GradeResult {
        schema_version: SCHEMA_VERSION,
        engine_version: options.engine_version.clone(),
        policy_sha256: options.policy_sha256.clone(),
        checker_sha256,
        problem: problem_info(problem),
        submissions: subs,
    })
}

enum Ready {
    Run,
    Skip(String),
    Wait,
}

/// Whether test `t` can run given the other tests of the same submission (`slots`).
fn readiness(problem: &Problem, slots: &[Slot], t: usize) -> Ready {
    let g = &problem.groups[problem.tests[t].group];
    for &d in &g.depends_on {
        let dep = &problem.groups[d];
        for &dt in &dep.tests {
            match &slots[dt] {
                Slot::Done(r) if r.verdict != Verdict::AC => {
                    return Ready::Skip(format!("skipped: group '{}' depends on '{}', which failed", g.name, dep.name))
                }
                Slot::Done(_) => {}
                _ => return Ready::Wait,
            }
        }
    }
    if g.on_reject == OnReject::Break {
        for &et in g.tests.iter().take_while(|&&x| x != t) {
            if matches!(&slots[et], Slot::Done(r) if r.verdict != Verdict::AC) {
                return Ready::Skip(batch_skip(&problem.tests[et].id));
            }
        }
    }
    Ready::Run
}

fn batch_skip(failed: &str) -> String {
    format!("skipped: test '{failed}' of this batch failed")
}

fn skipped(problem: &Problem, test: &TestCase, why: String, limits: RunLimits) -> TestRecord {
    TestRecord {
        id: test.id.clone(),
        group: problem.groups[test.group].name.clone(),
        verdict: Verdict::SK,
        fraction: 0.0,
        points: None,
        status: None,
        cpu_ms: 0,
        wall_ms: 0,
        peak_memory_bytes: 0,
        instructions: None,
        exit_code: None,
        signal: None,
        syscall: None,
        trap: None,
        stdout_head: String::new(),
        stderr_head: String::new(),
        contestant_message: None,
        judge_message: why,
        limits,
    }
}

struct Ctx<'a> {
    problem: &'a Problem,
    executor: &'a dyn Executor,
    options: &'a GradeOptions,
    root: &'a Path,
    checker_sha: &'a Mutex<Option<String>>,
    /// Each submission's module SHA-256, from the first outcome that carried one.
    module_sha: &'a Mutex<Vec<String>>,
}

impl Ctx<'_> {
    fn submission_limits(&self) -> RunLimits {
        let l = &self.problem.limits;
        RunLimits {
            cpu_ms: l.time_limit_ms,
            wall_ms: l.wall_limit_ms,
            memory_bytes: l.memory_bytes,
            output_bytes: l.output_bytes,
            instructions: self.options.instruction_budget,
        }
    }

    fn validation_limits(&self) -> RunLimits {
        let l = &self.problem.limits;
        RunLimits {
            cpu_ms: l.validation_time_ms,
            wall_ms: 2 * l.validation_time_ms + 1000,
            memory_bytes: l.validation_memory_bytes,
            output_bytes: l.validation_output_bytes,
            instructions: None,
        }
    }

    fn data_mount(test: &TestCase) -> Mount {
        Mount { host: test.input.parent().map(Path::to_path_buf).unwrap_or_default(), guest: GUEST_DATA.into() }
    }

    fn data_args(test: &TestCase) -> (String, String) {
        let name =
            |p: &Path| format!("{GUEST_DATA}/{}", p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
        (name(&test.input), name(&test.answer))
    }

    fn run_test(&self, sub: &Submission, s: usize, t: usize) -> TestRecord {
        let test = &self.problem.tests[t];
        let limits = self.submission_limits();
        let mut rec = skipped(self.problem, test, String::new(), limits);
        let dir = match ScratchDir::new(self.root, &format!("s{s}-t{t}")) {
            Ok(d) => d,
            Err(e) => {
                rec.verdict = Verdict::IE;
                rec.judge_message = e.to_string();
                return rec;
            }
        };
        let run = match dir.subdir("run") {
            Ok(r) => r,
            Err(e) => {
                rec.verdict = Verdict::IE;
                rec.judge_message = e.to_string();
                return rec;
            }
        };
        let job = RunJob {
            role: Role::Submission,
            module: sub.module.clone(),
            args: Vec::new(),
            stdin: Stdin::File(test.input.clone()),
            scratch: Some(Mount { host: run, guest: GUEST_SCRATCH.into() }),
            read_only: Vec::new(),
            limits,
            capture_stdout: limits.output_bytes,
            capture_stderr: self.options.head_bytes as u64,
        };
        let group = &self.problem.groups[test.group];
        let (outcome, judged, check) = match &self.problem.kind {
            ProblemKind::Batch => {
                let outcome = match self.executor.run(&job) {
                    Ok(o) => o,
                    Err(e) => {
                        rec.verdict = Verdict::IE;
                        rec.judge_message = e.to_string();
                        return rec;
                    }
                };
                match classify(&outcome, limits.cpu_ms) {
                    Some(j) => (outcome, j, None),
                    None => {
                        let c = self.check(test, &group.checker, &group.checker_flags, &outcome.stdout, &dir);
                        (outcome, c.judged.clone(), Some(c))
                    }
                }
            }
            ProblemKind::Interactive { interactor, convention } => {
                let mut sub_job = job;
                sub_job.stdin = Stdin::Peer;
                sub_job.capture_stdout = self.options.head_bytes as u64;
                let fb = match dir.subdir("feedback") {
                    Ok(f) => f,
                    Err(e) => {
                        rec.verdict = Verdict::IE;
                        rec.judge_message = e.to_string();
                        return rec;
                    }
                };
                let (inp, ans) = Self::data_args(test);
                let mut args = vec![inp, ans, format!("{GUEST_FEEDBACK}/")];
                args.extend(group.checker_flags.iter().cloned());
                let inter_job = RunJob {
                    role: Role::Interactor,
                    module: interactor.clone(),
                    args,
                    stdin: Stdin::Peer,
                    scratch: Some(Mount { host: fb.clone(), guest: GUEST_FEEDBACK.into() }),
                    read_only: vec![Self::data_mount(test)],
                    limits: self.validation_limits(),
                    capture_stdout: crate::checker::MESSAGE_MAX as u64,
                    capture_stderr: crate::checker::MESSAGE_MAX as u64,
                };
                let idle = Duration::from_millis(self.problem.limits.idle_limit_ms);
                match self.executor.run_interactive(&sub_job, &inter_job, idle) {
                    Ok((so, io)) => {
                        self.note_checker(&io);
                        let c = decode(&io, *convention, &fb);
                        let (j, fraction) = decide_interactive(&so, &io, c.clone(), limits.cpu_ms);
                        let c = CheckResult { fraction, ..c };
                        (so, j, Some(c))
                    }
                    Err(e) => {
                        rec.verdict = Verdict::IE;
                        rec.judge_message = e.to_string();
                        return rec;
                    }
                }
            }
        };
        let head = |b: &[u8]| clean_head(b, self.options.head_bytes);
        rec.verdict = judged.verdict;
        rec.judge_message = judged.message;
        rec.fraction = match (&check, judged.verdict) {
            (Some(c), Verdict::AC) => c.fraction,
            _ => 0.0,
        };
        rec.contestant_message = check.and_then(|c| c.contestant_message);
        rec.status = Some(outcome.status);
        rec.cpu_ms = outcome.cpu_time_ms;
        rec.wall_ms = outcome.wall_time_ms;
        rec.peak_memory_bytes = outcome.peak_memory_bytes;
        rec.instructions = outcome.instructions;
        rec.exit_code = outcome.exit_code;
        rec.signal = outcome.signal;
        rec.syscall = outcome.syscall.clone();
        rec.trap = outcome.trap.clone();
        rec.stdout_head = head(&outcome.stdout);
        rec.stderr_head = head(&outcome.stderr_head);
        if !outcome.module_sha256.is_empty() {
            let mut shas = self.module_sha.lock().unwrap_or_else(|e| e.into_inner());
            if shas[s].is_empty() {
                shas[s] = outcome.module_sha256.clone();
            }
        }
        if let Err(e) = dir.remove() {
            rec.verdict = Verdict::IE;
            rec.judge_message = e.to_string();
        }
        rec
    }

    fn note_checker(&self, o: &RunOutcome) {
        if !o.module_sha256.is_empty() {
            let mut c = self.checker_sha.lock().unwrap_or_else(|e| e.into_inner());
            c.get_or_insert_with(|| o.module_sha256.clone());
        }
    }

    fn check(
        &self,
        test: &TestCase,
        checker: &Checker,
        flags: &[String],
        output: &[u8],
        dir: &ScratchDir,
    ) -> CheckResult {
        let ie =
            |m: String| CheckResult { judged: Judged::new(Verdict::IE, m), fraction: 0.0, contestant_message: None };
        match checker {
            Checker::Builtin(c) => match std::fs::read(&test.answer) {
                Ok(ans) => {
                    let judged = c.check(output, &ans);
                    let fraction = if judged.verdict == Verdict::AC { 1.0 } else { 0.0 };
                    CheckResult { judged, fraction, contestant_message: None }
                }
                Err(e) => ie(format!("failed to read '{}': {e}", test.answer.display())),
            },
            Checker::Custom { module, convention } => {
                let prepared = (|| -> Result<(PathBuf, PathBuf), GradeError> {
                    let judge = dir.subdir("judge")?;
                    let fb = dir.subdir("feedback")?;
                    let out = judge.join("output");
                    std::fs::write(&out, output)
                        .map_err(|e| GradeError::Scratch { path: out.clone(), message: e.to_string() })?;
                    Ok((judge, fb))
                })();
                let (judge, fb) = match prepared {
                    Ok(p) => p,
                    Err(e) => return ie(e.to_string()),
                };
                let (inp, ans) = Self::data_args(test);
                let judge_mount = Mount { host: judge.clone(), guest: GUEST_JUDGE.into() };
                let (args, stdin, read_only, scratch) = match convention {
                    Convention::Icpc => {
                        let mut a = vec![inp, ans, format!("{GUEST_FEEDBACK}/")];
                        a.extend(flags.iter().cloned());
                        (
                            a,
                            Stdin::File(judge.join("output")),
                            vec![Self::data_mount(test)],
                            Some(Mount { host: fb.clone(), guest: GUEST_FEEDBACK.into() }),
                        )
                    }
                    Convention::Testlib => (
                        vec![inp, format!("{GUEST_JUDGE}/output"), ans],
                        Stdin::Empty,
                        vec![Self::data_mount(test), judge_mount],
                        None,
                    ),
                };
                let job = RunJob {
                    role: Role::Checker,
                    module: module.clone(),
                    args,
                    stdin,
                    scratch,
                    read_only,
                    limits: self.validation_limits(),
                    capture_stdout: crate::checker::MESSAGE_MAX as u64,
                    capture_stderr: crate::checker::MESSAGE_MAX as u64,
                };
                match self.executor.run(&job) {
                    Ok(o) => {
                        self.note_checker(&o);
                        decode(&o, *convention, &fb)
                    }
                    Err(e) => ie(format!("checker: {e}")),
                }
            }
        }
    }
}

fn clean_head(b: &[u8], max: usize) -> String {
    let b = &b[..b.len().min(max)];
    String::from_utf8_lossy(b).into_owned()
}

fn summarise(problem: &Problem, sub: &Submission, mut tests: Vec<TestRecord>, sha: String) -> SubmissionResult {
    // Batches: every test after the first rejected one is SK, whatever ran meanwhile.
    for g in &problem.groups {
        if g.on_reject != OnReject::Break {
            continue;
        }
        if let Some(first) = g.tests.iter().position(|&t| tests[t].verdict != Verdict::AC) {
            let failed = tests[g.tests[first]].id.clone();
            for &t in &g.tests[first + 1..] {
                if tests[t].verdict != Verdict::SK {
                    let limits = tests[t].limits;
                    tests[t] = skipped(problem, &problem.tests[t], batch_skip(&failed), limits);
                }
            }
        }
    }
    let mut groups = Vec::new();
    let mut score = 0.0;
    for g in &problem.groups {
        let fracs: Vec<f64> =
            g.tests.iter().map(|&t| if tests[t].verdict == Verdict::AC { tests[t].fraction } else { 0.0 }).collect();
        let verdict = g.tests.iter().map(|&t| tests[t].verdict).find(|v| *v != Verdict::AC).unwrap_or(Verdict::AC);
        let earned = match (g.points, g.aggregation) {
            (None, _) => 0.0,
            (Some(p), Aggregation::Min) => p * fracs.iter().copied().fold(1.0, f64::min),
            (Some(p), Aggregation::Sum) => {
                let share = p / g.tests.len() as f64;
                fracs.iter().map(|f| share * f).sum()
            }
        };
        if let Some(p) = g.points {
            let single = g.tests.len() == 1;
            for (&t, f) in g.tests.iter().zip(&fracs) {
                if g.aggregation == Aggregation::Sum || single {
                    tests[t].points = Some(p / g.tests.len() as f64 * f);
                }
            }
        }
        score += earned;
        groups.push(GroupRecord {
            name: g.name.clone(),
            verdict,
            max_points: g.points,
            points: earned,
            tests: g.tests.len(),
        });
    }
    let verdict = tests
        .iter()
        .map(|t| t.verdict)
        .find(|v| !matches!(v, Verdict::AC | Verdict::SK))
        .unwrap_or(if tests.iter().all(|t| t.verdict == Verdict::AC) { Verdict::AC } else { Verdict::SK });
    SubmissionResult {
        name: sub.name.clone(),
        module: sub.module.display().to_string(),
        module_sha256: sha,
        verdict,
        score,
        max_score: problem.max_score(),
        max_cpu_ms: tests.iter().map(|t| t.cpu_ms).max().unwrap_or(0),
        max_peak_memory_bytes: tests.iter().map(|t| t.peak_memory_bytes).max().unwrap_or(0),
        groups,
        tests,
    }
}

fn problem_info(p: &Problem) -> ProblemInfo {
    ProblemInfo {
        name: p.name.clone(),
        kind: match p.kind {
            ProblemKind::Batch => "batch".into(),
            ProblemKind::Interactive { .. } => "interactive".into(),
        },
        sha256: p.sha256.clone(),
        time_limit_ms: p.limits.time_limit_ms,
        wall_limit_ms: p.limits.wall_limit_ms,
        memory_bytes: p.limits.memory_bytes,
        output_bytes: p.limits.output_bytes,
        max_score: p.max_score(),
        groups: p
            .groups
            .iter()
            .map(|g| ProblemGroup {
                name: g.name.clone(),
                points: g.points,
                aggregation: match g.aggregation {
                    Aggregation::Min => "min".into(),
                    Aggregation::Sum => "sum".into(),
                },
                on_reject: match g.on_reject {
                    OnReject::Break => "break".into(),
                    OnReject::Continue => "continue".into(),
                },
                depends_on: g.depends_on.iter().map(|&d| p.groups[d].name.clone()).collect(),
                tests: g.tests.iter().map(|&t| p.tests[t].id.clone()).collect(),
            })
            .collect(),
    }
}
