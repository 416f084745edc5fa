//! The bounded runner: runs a target as a plain test on stable Rust, for a time budget, over
//! its committed seed corpus, its known failures, and deterministic pseudo-random inputs.
//!
//! Environment:
//! - `FUZZ_SEED`: the RNG seed (default: fixed per target, so a plain `cargo test` is
//!   repeatable); printed with the execution count.
//! - `FUZZ_SECONDS`: the time budget for the random inputs of each target (default: the
//!   target's own, a few seconds).
//! - `FUZZ_TIMEOUT`: seconds one execution may take before it counts as a hang (default 20).
//! - `FUZZ_REPLAY`: a file; only that input runs (to reproduce a crash).
//!
//! An input that panics is saved as `fuzz/artifacts/NAME/crash-HASH` (where `cargo fuzz`
//! puts its own) before the test fails; an input that hangs is saved there as
//! `timeout-HASH` and the process aborts. Before each execution the input is also written
//! to `fuzz/artifacts/NAME/last-input`, so a crash that kills the process (a signal the
//! engine does not handle) leaves its reproducer behind.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A small deterministic RNG (SplitMix64): inputs must be reproducible from the printed seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// An RNG with seed `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// FNV-1a, for crash file names and for seeds derived from names or inputs.
pub fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// Applies one to eight random edits to `input` (bit flips, byte sets, inserts, deletes,
/// duplications, splices with `other`): libFuzzer's mutations, in small.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = out.len();
        match rng.below(7) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] = [0, 1, 0x7f, 0x80, 0xff, rng.next_u64() as u8][rng.below(6)];
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes = rng.bytes(n);
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(16)).min(len);
                out.drain(at..end);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                let copy = out[at..end].to_vec();
                let to = rng.below(len + 1);
                out.splice(to..to, copy);
            }
            5 if !other.is_empty() => {
                let at = rng.below(other.len());
                let end = (at + 1 + rng.below(64)).min(other.len());
                let to = rng.below(len + 1);
                out.splice(to..to, other[at..end].iter().copied());
            }
            _ if len > 0 => out.truncate(rng.below(len)),
            _ => out.push(rng.next_u64() as u8),
        }
    }
    out
}

/// How a bounded run went.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// The seed of the random inputs.
    pub seed: u64,
    /// Committed corpus inputs run.
    pub corpus: usize,
    /// Generated inputs run.
    pub random: usize,
    /// Known failures (inputs under `known-failures/NAME/`) that still fail.
    pub known_failures: Vec<String>,
}

/// A target and how to make inputs for it.
pub struct Campaign {
    /// The target's name: its corpus is `corpus/NAME`, its known failures
    /// `known-failures/NAME`.
    pub name: &'static str,
    /// The target.
    pub target: fn(&[u8]),
    /// Makes one input from the RNG and the corpus.
    pub generate: fn(&mut Rng, &[Vec<u8>]) -> Vec<u8>,
    /// Seconds of random inputs unless `FUZZ_SECONDS` says otherwise.
    pub seconds: f64,
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files of a folder, sorted by name (none if it does not exist).
pub fn read_dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).ok()?)))
        .collect();
    files.sort();
    files
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The input currently running, for the hang watchdog.
type Running = Arc<Mutex<Option<(Instant, Vec<u8>)>>>;

struct Executor {
    name: &'static str,
    target: fn(&[u8]),
    artifacts: PathBuf,
    running: Running,
}

impl Executor {
    fn new(name: &'static str, target: fn(&[u8])) -> Executor {
        let artifacts = fuzz_dir().join("artifacts").join(name);
        let _ = std::fs::create_dir_all(&artifacts);
        let running: Running = Arc::default();
        let timeout = Duration::from_secs_f64(env_f64("FUZZ_TIMEOUT").unwrap_or(20.0));
        let watched = Arc::downgrade(&running);
        let dir = artifacts.clone();
        std::thread::spawn(move || {
            while let Some(running) = watched.upgrade() {
                if let Some((start, input)) = &*running.lock().unwrap_or_else(|e| e.into_inner()) {
                    if start.elapsed() > timeout {
                        let path = dir.join(format!("timeout-{:016x}", hash(input)));
                        let _ = std::fs::write(&path, input);
                        // Straight to stderr: the test harness captures `eprintln!`, even here.
                        let _ = writeln!(
                            std::io::stderr(),
                            "fuzz {name}: an execution took over {timeout:?}; input saved as {}",
                            path.display()
                        );
                        std::process::abort();
                    }
                }
                drop(running);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Executor { name, target, artifacts, running }
    }

    /// Runs one input; on a panic saves it and returns the panic's message.
    fn run(&self, input: &[u8]) -> Result<(), String> {
        let _ = std::fs::write(self.artifacts.join("last-input"), input);
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), input.to_vec()));
        let result = catch_unwind(AssertUnwindSafe(|| (self.target)(input)));
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
        result.map_err(|payload| {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            let path = self.artifacts.join(format!("crash-{:016x}", hash(input)));
            let _ = std::fs::write(&path, input);
            format!("fuzz {}: input {} panicked: {message}", self.name, path.display())
        })
    }
}

/// Runs `campaign` for its budget: `FUZZ_REPLAY` alone if set, else the committed corpus,
/// the known failures (which must still fail, or be moved to the corpus), then random
/// inputs. Panics (failing the test) on the first input that fails.
pub fn run(campaign: &Campaign) -> Stats {
    let name = campaign.name;
    let exec = Executor::new(name, campaign.target);
    if let Ok(path) = std::env::var("FUZZ_REPLAY") {
        let input = std::fs::read(&path).unwrap_or_else(|e| panic!("FUZZ_REPLAY {path}: {e}"));
        exec.run(&input).unwrap_or_else(|e| panic!("{e}"));
        println!("fuzz {name}: replayed {path}: no failure");
        return Stats::default();
    }
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| hash(name.as_bytes()));
    let mut stats = Stats { seed, ..Stats::default() };
    let start = Instant::now();

    let corpus: Vec<Vec<u8>> =
        read_dir_files(&fuzz_dir().join("corpus").join(name)).into_iter().map(|(_, bytes)| bytes).collect();
    for input in &corpus {
        exec.run(input).unwrap_or_else(|e| panic!("{e}"));
        stats.corpus += 1;
    }
    for (file, input) in read_dir_files(&fuzz_dir().join("known-failures").join(name)) {
        match exec.run(&input) {
            Err(e) => {
                println!("fuzz {name}: KNOWN FAILURE known-failures/{name}/{file} still fails: {e}");
                stats.known_failures.push(file);
            }
            Ok(()) => panic!("fuzz {name}: known-failures/{name}/{file} passes now: move it to corpus/{name}"),
        }
    }

    let budget = Duration::from_secs_f64(env_f64("FUZZ_SECONDS").unwrap_or(campaign.seconds));
    let mut rng = Rng::new(seed);
    let random_start = Instant::now();
    while random_start.elapsed() < budget {
        let input = (campaign.generate)(&mut rng, &corpus);
        if let Err(e) = exec.run(&input) {
            panic!("{e} (seed {seed}, after {} random inputs)", stats.random);
        }
        stats.random += 1;
    }
    println!(
        "fuzz {name}: seed {seed}: {} executions ({} corpus, {} random) in {:.1?}, {} known failures",
        stats.corpus + stats.random,
        stats.corpus,
        stats.random,
        start.elapsed(),
        stats.known_failures.len()
    );
    stats
}

/// A generator that mutates corpus entries half the time and makes fresh random bytes
/// (up to `max_len`) otherwise.
pub fn mutate_or_random(rng: &mut Rng, corpus: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    if !corpus.is_empty() && rng.below(2) == 0 {
        let input = &corpus[rng.below(corpus.len())];
        let other = &corpus[rng.below(corpus.len())];
        mutate(rng, input, other)
    } else {
        let len = rng.below(max_len + 1);
        rng.bytes(len)
    }
}

/// `main` for a target binary built without `cargo fuzz`: runs the target on each file
/// named on the command line (to reproduce a crash on stable Rust).
pub fn replay_main(target: fn(&[u8])) {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: TARGET FILE...  (runs the target on each file; fuzz with `cargo fuzz run TARGET`)");
        std::process::exit(2);
    }
    for file in files {
        let input = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        target(&input);
        println!("{file}: ok");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_mutation_stays_small() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.bytes(32), b.bytes(32));
        let input = b"hello world".to_vec();
        for _ in 0..1000 {
            assert!(mutate(&mut a, &input, b"other").len() < input.len() + 8 * 64);
        }
    }
}
