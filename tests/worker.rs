//! `sandboxrun worker` and `sandboxrun submit` against a real `nats-server -js` on a free
//! local port (traffic to 127.0.0.1 only; every wait bounded; servers and workers killed
//! when a test ends): many jobs over two workers answered exactly once, a worker killed
//! mid-job, a poison job, a grading end to end, wrong references refused.

mod common;

use common::*;
use futures_util::StreamExt;
use sandboxrun::worker::job::{sha256_hex, GradeWork, Job, JobResult, Outcome, RunWork, Work};
use sandboxrun::worker::nats::{connect, NatsQueue, NatsStore, QueueSettings};
use sandboxrun::worker::transport::{JobQueue, Store};
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server` with JetStream on a free local port, killed when dropped.
struct Nats {
    child: Child,
    url: String,
}

impl Nats {
    fn start(dir: &Path) -> Nats {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("nats-server")
            .args(["-js", "-sd"])
            .arg(dir.join("jetstream"))
            .args(["-p", &port.to_string(), "-a", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (apt-get install nats-server; .ci/run installs it)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, url: format!("nats://127.0.0.1:{port}") }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `sandboxrun worker`, killed when dropped.
struct Worker {
    child: Child,
    name: String,
}

impl Worker {
    fn start(nats: &Nats, dir: &Path, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Worker {
        let mut cmd = bin();
        cmd.args([
            "worker",
            "--nats",
            &nats.url,
            "--jobs",
            "2",
            "--name",
            name,
            "--ack-wait",
            "2",
            "--nak-delay",
            "0.2",
        ])
        .arg("--cache-dir")
        .arg(dir.join(format!("cache-{name}")))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.stderr"))).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Worker { child: cmd.spawn().unwrap(), name: name.into() }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn client(nats: &Nats) -> (NatsQueue, NatsStore) {
    let settings = QueueSettings { stream: "SANDBOXRUN".into(), ack_wait: Duration::from_secs(2), max_deliver: 5 };
    connect(&nats.url, &settings, false).await.unwrap()
}

fn run_job(id: &str, module: &str, policy: Option<&str>) -> Job {
    Job {
        id: id.into(),
        reply: format!("sandboxrun.results.{id}"),
        work: Work::Run(RunWork {
            module: module.into(),
            name: "hello.wat".into(),
            policy: policy.map(str::to_string),
            args: vec![],
            stdin_base64: String::new(),
        }),
    }
}

async fn enqueue(queue: &NatsQueue, job: &Job) {
    queue.enqueue("run", &job.id, &serde_json::to_vec(job).unwrap()).await.unwrap();
}

/// The results published on `sandboxrun.results.>` within `wait`, until `until` holds.
async fn collect(
    sub: &mut async_nats::Subscriber,
    wait: Duration,
    until: impl Fn(&[JobResult]) -> bool,
) -> Vec<JobResult> {
    let mut results = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while !until(&results) {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Ok(Some(m)) => results.push(serde_json::from_slice(&m.payload).unwrap()),
            _ => break,
        }
    }
    results
}

fn stderr_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.stderr"))).unwrap_or_default()
}

/// A module spinning until its CPU limit.
const SPIN: &str = r#"(module (func (export "_start") (loop $l (br $l))))"#;

#[test]
fn two_workers_answer_200_run_jobs_exactly_once() {
    let dir = temp_dir("worker-200");
    let nats = Nats::start(&dir);
    let rt = runtime();
    let (queue, store) = rt.block_on(client(&nats));
    let (a, b) = (Worker::start(&nats, &dir, "a", &[], &[]), Worker::start(&nats, &dir, "b", &[], &[]));
    let results = rt.block_on(async {
        let raw = async_nats::connect(&nats.url).await.unwrap();
        let mut sub = raw.subscribe("sandboxrun.results.>").await.unwrap();
        let module = store.put(HELLO.as_bytes().to_vec()).await.unwrap();
        for i in 0..200 {
            enqueue(&queue, &run_job(&format!("job{i}"), &module, None)).await;
        }
        let mut results = collect(&mut sub, Duration::from_secs(240), |r| r.len() >= 200).await;
        // Nothing more comes: no job is answered twice.
        results.extend(collect(&mut sub, Duration::from_secs(3), |_| false).await);
        results
    });
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &results {
        *seen.entry(r.job_id.clone()).or_default() += 1;
        assert_eq!((r.outcome, r.exit_status), (Outcome::Done, 42), "{r:?}");
        let stdout = base64_decode(r.stdout_base64.as_deref().unwrap_or(""));
        assert_eq!(stdout, b"hello, world\n");
        assert_eq!(r.report.as_ref().unwrap()["exit_code"], 42);
    }
    assert_eq!(
        seen.len(),
        200,
        "{} of 200 answered; a: {}; b: {}",
        seen.len(),
        stderr_of(&dir, "a"),
        stderr_of(&dir, "b")
    );
    assert!(seen.values().all(|&n| n == 1), "a job answered twice: {seen:?}");
    for w in [&a, &b] {
        assert!(results.iter().any(|r| r.worker == w.name), "worker {} answered nothing", w.name);
    }
}

#[test]
fn a_worker_killed_mid_job_hands_it_to_the_other() {
    let dir = temp_dir("worker-kill");
    let nats = Nats::start(&dir);
    let rt = runtime();
    let (queue, store) = rt.block_on(client(&nats));
    let mut first = Worker::start(&nats, &dir, "first", &[], &[]);
    let results = rt.block_on(async {
        let raw = async_nats::connect(&nats.url).await.unwrap();
        let mut sub = raw.subscribe("sandboxrun.results.>").await.unwrap();
        let module = store.put(SPIN.as_bytes().to_vec()).await.unwrap();
        enqueue(&queue, &run_job("spin", &module, Some("version: 1\nlimits: {cpu_time: 3s}\n"))).await;
        // The first worker takes it and spins; killed as a crash would kill it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(first.child.try_wait().unwrap().is_none(), "{}", stderr_of(&dir, "first"));
        first.child.kill().unwrap();
        first.child.wait().unwrap();
        // Its server (and the run in it) went with it: a parent-death signal.
        let marker = dir.join("cache-first").display().to_string();
        let started = Instant::now();
        while !processes_naming(&marker).is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "left behind: {:?}", processes_naming(&marker));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _second = Worker::start(&nats, &dir, "second", &[], &[]);
        let mut results = collect(&mut sub, Duration::from_secs(60), |r| !r.is_empty()).await;
        results.extend(collect(&mut sub, Duration::from_secs(4), |_| false).await);
        results
    });
    assert_eq!(results.len(), 1, "{results:?}; second: {}", stderr_of(&dir, "second"));
    let r = &results[0];
    assert_eq!((r.job_id.as_str(), r.worker.as_str(), r.outcome), ("spin", "second", Outcome::Done));
    assert_eq!(r.exit_status, 124, "the CPU limit ends it: {r:?}");
    assert!(r.attempt >= 2, "{r:?}");
}

#[test]
fn a_poison_job_is_terminated_and_reported_as_a_judge_error() {
    let dir = temp_dir("worker-poison");
    let nats = Nats::start(&dir);
    let rt = runtime();
    let (queue, store) = rt.block_on(client(&nats));
    let poison = "(module (func (export \"_start\")))";
    let fault = sha256_hex(poison.as_bytes());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let metrics = format!("127.0.0.1:{port}");
    let _w = Worker::start(
        &nats,
        &dir,
        "w",
        &["--max-deliver", "3", "--metrics", &metrics],
        &[("SANDBOXRUN_WORKER_FAULT", &fault)],
    );
    let results = rt.block_on(async {
        let raw = async_nats::connect(&nats.url).await.unwrap();
        let mut sub = raw.subscribe("sandboxrun.results.>").await.unwrap();
        let module = store.put(poison.as_bytes().to_vec()).await.unwrap();
        let hello = store.put(HELLO.as_bytes().to_vec()).await.unwrap();
        enqueue(&queue, &run_job("poison", &module, None)).await;
        enqueue(&queue, &run_job("fine", &hello, None)).await;
        let mut results = collect(&mut sub, Duration::from_secs(60), |r| r.len() >= 2).await;
        results.extend(collect(&mut sub, Duration::from_secs(2), |_| false).await);
        results
    });
    assert_eq!(results.len(), 2, "{results:?}; {}", stderr_of(&dir, "w"));
    let poison = results.iter().find(|r| r.job_id == "poison").unwrap();
    assert_eq!((poison.outcome, poison.exit_status, poison.attempt), (Outcome::JudgeError, 125, 3), "{poison:?}");
    assert!(poison.error.as_deref().unwrap().contains("given up after 2 attempt(s)"), "{poison:?}");
    assert!(poison.report.is_none(), "never reported as the submission's run: {poison:?}");
    let fine = results.iter().find(|r| r.job_id == "fine").unwrap();
    assert_eq!((fine.outcome, fine.exit_status), (Outcome::Done, 42));
    let page = http_get(&metrics);
    for line in [
        "sandboxrun_worker_failures_total{kind=\"judge\"} 2",
        "sandboxrun_worker_failures_total{kind=\"terminated\"} 1",
        "sandboxrun_worker_jobs_done_total{kind=\"run\"} 1",
    ] {
        assert!(page.contains(line), "{line} not in\n{page}");
    }
    assert!(stderr_of(&dir, "w").contains("injected judge-side fault"), "{}", stderr_of(&dir, "w"));
}

#[test]
fn a_grade_job_and_a_run_job_end_to_end_through_submit() {
    let dir = temp_dir("worker-grade");
    let nats = Nats::start(&dir);
    let _w = Worker::start(&nats, &dir, "w", &[], &[]);
    let sum = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/grading/sum");
    let out = run(bin()
        .args(["submit", "--nats", &nats.url, "--wait", "--timeout", "120", "--grade"])
        .arg(&sum)
        .arg(sum.join("submissions/ac.wasm")));
    assert_eq!(out.status.code(), Some(0), "{}{}\n{}", stdout(&out), stderr(&out), stderr_of(&dir, "w"));
    let r: JobResult = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!((r.outcome, r.worker.as_str()), (Outcome::Done, "w"));
    let grade = r.grade.unwrap();
    let verdicts: Vec<_> =
        grade["submissions"][0]["tests"].as_array().unwrap().iter().map(|t| t["verdict"].as_str().unwrap()).collect();
    assert!(!verdicts.is_empty() && verdicts.iter().all(|v| *v == "AC"), "{grade}");
    // With an instruction budget: a looping submission is TLE at its budget, the count given.
    let out = run(bin()
        .args(["submit", "--nats", &nats.url, "--wait", "--timeout", "120", "--instructions", "50000000", "--grade"])
        .arg(&sum)
        .arg(sum.join("submissions/tle.wasm")));
    let r: JobResult = serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let grade = r.grade.unwrap();
    let first = &grade["submissions"][0]["tests"][0];
    assert_eq!(first["verdict"], "TLE", "{grade}");
    assert!(first["instructions"].as_u64().is_some_and(|n| n >= 50_000_000), "{first}");
    let out = run(bin().args(["submit", "--nats", &nats.url, "--instructions", "0", "--grade"]).arg(&sum).arg(&sum));
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("--instructions 0: must be between 1 and"), "{}", stderr(&out));
    // A run job, with its arguments, through the same command.
    let hello = write(&dir, "hello.wat", HELLO);
    let out =
        run(bin().args(["submit", "--nats", &nats.url, "--wait", "--timeout", "60", "--run"]).arg(&hello).arg("-x"));
    assert_eq!(out.status.code(), Some(42), "{}{}", stdout(&out), stderr(&out));
    let r: JobResult = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(base64_decode(r.stdout_base64.as_deref().unwrap()), b"hello, world\n");
    // Without --wait: the job's id.
    let out = run(bin().args(["submit", "--nats", &nats.url, "--run"]).arg(&hello));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).trim().is_empty());
}

#[test]
fn a_reference_with_the_wrong_hash_is_refused_never_run() {
    let dir = temp_dir("worker-hash");
    let nats = Nats::start(&dir);
    let rt = runtime();
    let (queue, _store) = rt.block_on(client(&nats));
    let _w = Worker::start(&nats, &dir, "w", &[], &[]);
    let results = rt.block_on(async {
        let raw = async_nats::connect(&nats.url).await.unwrap();
        let mut sub = raw.subscribe("sandboxrun.results.>").await.unwrap();
        // Stored under the hash of other bytes.
        let js = async_nats::jetstream::new(raw.clone());
        let objects = js.get_object_store("SANDBOXRUN_blobs").await.unwrap();
        let claimed = sha256_hex(b"what the submitter meant");
        objects.put(claimed.as_str(), &mut HELLO.as_bytes()).await.unwrap();
        enqueue(&queue, &run_job("mismatch", &claimed, None)).await;
        enqueue(&queue, &run_job("missing", &sha256_hex(b"never uploaded"), None)).await;
        let grade = Job {
            id: "grade-missing".into(),
            reply: "sandboxrun.results.grade-missing".into(),
            work: Work::Grade(GradeWork {
                problem: claimed.clone(),
                submission: claimed,
                name: "x.wasm".into(),
                instructions: None,
            }),
        };
        queue.enqueue("grade", &grade.id, &serde_json::to_vec(&grade).unwrap()).await.unwrap();
        let mut results = collect(&mut sub, Duration::from_secs(60), |r| r.len() >= 3).await;
        results.extend(collect(&mut sub, Duration::from_secs(2), |_| false).await);
        results
    });
    assert_eq!(results.len(), 3, "{results:?}; {}", stderr_of(&dir, "w"));
    let by_id = |id: &str| results.iter().find(|r| r.job_id == id).unwrap();
    for (id, says) in
        [("mismatch", "has the wrong hash"), ("missing", "is not in the store"), ("grade-missing", "wrong hash")]
    {
        let r = by_id(id);
        assert_eq!((r.outcome, r.exit_status), (Outcome::Refused, 125), "{r:?}");
        assert!(r.error.as_deref().unwrap().contains(says), "{id}: {r:?}");
        assert!(r.report.is_none() && r.stdout_base64.is_none(), "never run: {r:?}");
    }
}

#[test]
fn sigterm_lets_the_job_in_flight_finish_or_hands_it_back() {
    let dir = temp_dir("worker-term");
    let nats = Nats::start(&dir);
    let rt = runtime();
    let (queue, store) = rt.block_on(client(&nats));
    let term = |w: &Worker| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(w.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap()
    };
    let exits = |w: &mut Worker, within: Duration| {
        let started = Instant::now();
        loop {
            if let Some(status) = w.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(started.elapsed() < within, "worker {} did not stop", w.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    rt.block_on(async {
        let raw = async_nats::connect(&nats.url).await.unwrap();
        let mut sub = raw.subscribe("sandboxrun.results.>").await.unwrap();
        let module = store.put(SPIN.as_bytes().to_vec()).await.unwrap();
        let policy = Some("version: 1\nlimits: {cpu_time: 2s}\n");
        // Within the grace period: the job finishes, its result is published, then it stops.
        let mut patient = Worker::start(&nats, &dir, "patient", &["--grace", "20"], &[]);
        enqueue(&queue, &run_job("finished", &module, policy)).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        term(&patient);
        let results = collect(&mut sub, Duration::from_secs(30), |r| !r.is_empty()).await;
        assert_eq!(results.len(), 1, "{}", stderr_of(&dir, "patient"));
        assert_eq!(
            (results[0].job_id.as_str(), results[0].worker.as_str(), results[0].exit_status),
            ("finished", "patient", 124)
        );
        assert_eq!(exits(&mut patient, Duration::from_secs(10)), Some(0));
        assert!(stderr_of(&dir, "patient").contains("stopping: 1 job(s) in flight"), "{}", stderr_of(&dir, "patient"));
        // Past it: the job is handed back, and the next worker answers it.
        let mut hasty = Worker::start(&nats, &dir, "hasty", &["--grace", "0.3"], &[]);
        enqueue(&queue, &run_job("handed-back", &module, policy)).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        term(&hasty);
        assert_eq!(exits(&mut hasty, Duration::from_secs(5)), Some(0));
        assert!(stderr_of(&dir, "hasty").contains("handed back"), "{}", stderr_of(&dir, "hasty"));
        let _next = Worker::start(&nats, &dir, "next", &[], &[]);
        let results = collect(&mut sub, Duration::from_secs(30), |r| !r.is_empty()).await;
        assert_eq!(results.len(), 1, "{}", stderr_of(&dir, "next"));
        assert_eq!((results[0].job_id.as_str(), results[0].worker.as_str()), ("handed-back", "next"));
    });
}

/// Processes whose command line contains `text`.
fn processes_naming(text: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmdline =
                String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?).replace('\0', " ");
            cmdline.contains(text).then(|| format!("{pid}: {cmdline}"))
        })
        .collect()
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).unwrap()
}

/// `GET /metrics` on `addr` (a local port), the body.
fn http_get(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}
