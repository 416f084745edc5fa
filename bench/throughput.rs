//! Throughput driver: runs a module N times through the `sandboxrun` binary, K runs in flight,
//! checks every run's report (status `exited`, exit code as expected) and prints runs per
//! second.
//!
//! `cargo run --release --example throughput -- SANDBOXRUN MODULE [RUNS] [IN_FLIGHT] [EXIT_CODE]`
//!
//! SANDBOXRUN is split at spaces: `"sandboxrun-client /tmp/server.sock"` runs through a
//! server (`sandboxrun serve`).

use std::collections::VecDeque;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: throughput SANDBOXRUN MODULE [RUNS=400] [IN_FLIGHT=4] [EXIT_CODE=0]");
        std::process::exit(2);
    }
    let mut command = args[1].split_whitespace();
    let bin = command.next().expect("a command");
    let leading: Vec<&str> = command.collect();
    let module = &args[2];
    let arg = |i: usize, default: u32| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (runs, in_flight, expected) = (arg(3, 400), arg(4, 4), arg(5, 0) as i32);
    let dir = std::env::temp_dir().join(format!("sandboxrun-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let report = |i: u32| dir.join(format!("{i}.json"));
    let start = |i: u32| -> Child {
        Command::new(bin)
            .args(&leading)
            .arg("--report")
            .arg(report(i))
            .arg(module)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("sandboxrun starts")
    };

    let started = Instant::now();
    let mut running: VecDeque<(u32, Child)> = VecDeque::new();
    let mut failures = Vec::new();
    for i in 0..runs {
        if running.len() as u32 == in_flight {
            let (n, mut child) = running.pop_front().expect("a run in flight");
            if child.wait().expect("wait").code() != Some(expected) {
                failures.push(n);
            }
        }
        running.push_back((i, start(i)));
    }
    for (n, mut child) in running {
        if child.wait().expect("wait").code() != Some(expected) {
            failures.push(n);
        }
    }
    let elapsed = started.elapsed();
    for i in 0..runs {
        let text = std::fs::read_to_string(report(i)).unwrap_or_default();
        if !text.contains("\"status\": \"exited\"") || !text.contains(&format!("\"exit_code\": {expected}")) {
            failures.push(i);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{runs} runs, {in_flight} in flight: {:.3} s, {:.0} runs/s; reports checked: {} wrong",
        elapsed.as_secs_f64(),
        f64::from(runs) / elapsed.as_secs_f64(),
        failures.len()
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
