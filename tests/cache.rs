//! The code cache through the binary: hits, misses, damaged rows and files, concurrency.

mod common;

use common::temp_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn run(cache: &Path, module: &Path, report: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandboxrun"))
        .arg("--cache")
        .arg(cache)
        .arg("--report")
        .arg(report)
        .arg(module)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn cache_status(report: &Path) -> String {
    let json = std::fs::read_to_string(report).unwrap();
    let at = json.find("\"cache\": \"").expect("cache field") + 10;
    json[at..].split('"').next().unwrap().to_string()
}

fn module(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join(format!("{text}.wasm"));
    std::fs::write(&path, common::printing_module(text)).unwrap();
    path
}

fn entries(cache: &Path) -> i64 {
    let conn = rusqlite::Connection::open(cache).unwrap();
    conn.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0)).unwrap()
}

/// The artifact files beside the database.
fn artifact_files(cache: &Path) -> Vec<PathBuf> {
    let folder = PathBuf::from(format!("{}.files", cache.display()));
    std::fs::read_dir(folder).map(|l| l.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
}

#[test]
fn second_run_hits_and_a_changed_module_misses() {
    let dir = temp_dir("hit");
    let cache = dir.join("c.sqlite");
    let report = dir.join("r.json");
    let m = module(&dir, "first");
    let a = run(&cache, &m, &report);
    assert_eq!((a.status.code(), cache_status(&report)), (Some(0), "miss".to_string()));
    let sha_of_miss = common::report_json(&report)["module_sha256"].clone();
    let b = run(&cache, &m, &report);
    assert_eq!((b.status.code(), cache_status(&report)), (Some(0), "hit".to_string()));
    // A hit reports the module's SHA-256 stored with the artifact: the same, and the true one.
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(std::fs::read(&m).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(common::report_json(&report)["module_sha256"], sha_of_miss);
    assert_eq!(sha_of_miss, sha.as_str());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(b.stdout, b"first\n");
    let other = module(&dir, "other");
    run(&cache, &other, &report);
    assert_eq!(cache_status(&report), "miss", "one changed byte is another key");
    assert_eq!(entries(&cache), 2);
}

#[test]
fn an_altered_cut_or_swapped_artifact_file_is_refused_and_compiled_again() {
    let dir = temp_dir("damaged");
    let cache = dir.join("c.sqlite");
    let report = dir.join("r.json");
    let m = module(&dir, "flip");
    run(&cache, &m, &report);
    let [file] = artifact_files(&cache).try_into().expect("one artifact file beside the database");
    let good = std::fs::read(&file).unwrap();
    type Damage = Box<dyn Fn(&Path)>;
    let damages: Vec<(&str, Damage)> = vec![
        (
            "one bit flipped in the code",
            Box::new(|f: &Path| {
                let mut bytes = std::fs::read(f).unwrap();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
                std::fs::write(f, bytes).unwrap();
            }),
        ),
        ("cut short", Box::new(|f: &Path| std::fs::File::options().write(true).open(f).unwrap().set_len(100).unwrap())),
        ("grown", Box::new(|f: &Path| std::fs::File::options().write(true).open(f).unwrap().set_len(1 << 16).unwrap())),
        ("removed", Box::new(|f: &Path| std::fs::remove_file(f).unwrap())),
        (
            "a symlink to an intact copy",
            Box::new(|f: &Path| {
                let copy = f.with_file_name("copy");
                std::fs::copy(f, &copy).unwrap();
                std::fs::remove_file(f).unwrap();
                std::os::unix::fs::symlink(&copy, f).unwrap();
            }),
        ),
    ];
    for (what, damage) in damages {
        damage(&file);
        let o = run(&cache, &m, &report);
        assert_eq!((o.status.code(), o.stdout.as_slice()), (Some(0), &b"flip\n"[..]), "{what}");
        assert_eq!(cache_status(&report), "miss", "{what}: refused");
        assert_eq!(std::fs::read(&file).unwrap(), good, "{what}: a good file in its place");
        run(&cache, &m, &report);
        assert_eq!(cache_status(&report), "hit", "{what}: the entry was replaced with a good one");
    }
}

#[test]
fn a_miss_is_stored_while_the_guest_still_runs() {
    let dir = temp_dir("overlap");
    let cache = dir.join("c.sqlite");
    let m = dir.join("spin.wasm");
    std::fs::write(&m, wat::parse_str(r#"(module (func (export "_start") (loop (br 0))))"#).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sandboxrun"))
        .arg("--cache")
        .arg(&cache)
        .arg(&m)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stored = |cache: &Path| {
        let conn = rusqlite::Connection::open(cache).ok()?;
        conn.query_row("SELECT COUNT(*) FROM entries", [], |r| r.get::<_, i64>(0)).ok()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stored(&cache) != Some(1) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(stored(&cache), Some(1), "the compiled code was stored");
    assert!(running, "stored while the guest was still spinning, not after the run");
}

#[test]
fn garbage_database_degrades_to_compiling() {
    let dir = temp_dir("garbage");
    let cache = dir.join("c.sqlite");
    std::fs::write(&cache, vec![0x42; 8192]).unwrap();
    let report = dir.join("r.json");
    let o = run(&cache, &module(&dir, "garbage"), &report);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, b"garbage\n");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("warning") && err.contains("without the code cache"), "{err}");
    assert_eq!(cache_status(&report), "disabled");
}

#[test]
fn concurrent_runs_of_a_new_module_leave_one_entry() {
    let dir = temp_dir("concurrent");
    let cache = dir.join("c.sqlite");
    let m = module(&dir, "together");
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_sandboxrun"))
                .arg("--cache")
                .arg(&cache)
                .arg("--report")
                .arg(dir.join(format!("r{i}.json")))
                .arg(&m)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.stdout, b"together\n");
        assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(entries(&cache), 1);
}

#[test]
fn compile_and_cache_commands() {
    let dir = temp_dir("commands");
    let cache = dir.join("c.sqlite");
    let m = module(&dir, "cmd");
    let sr = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sandboxrun")).env("SANDBOXRUN_CACHE", &cache).args(args).output().unwrap()
    };
    let o = sr(&["compile", m.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("compiled"));
    let o = sr(&["compile", m.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("already in"));
    let o = sr(&["cache", "stats"]);
    let stats = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(stats.contains("entries: 1") && stats.contains("stores: 1"), "{stats}");
    assert_eq!(sr(&["cache", "gc"]).status.code(), Some(0));
    assert_eq!(artifact_files(&cache).len(), 1);
    assert_eq!(sr(&["cache", "clear"]).status.code(), Some(0));
    assert!(String::from_utf8_lossy(&sr(&["cache", "stats"]).stdout).contains("entries: 0"));
    assert!(artifact_files(&cache).is_empty(), "clear removes the artifact files");
    let o = sr(&["compile", dir.join("absent.wasm").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(125));
}

/// A module of `data_len` bytes of passive data (and an empty `_start`), built by hand.
fn module_with_data(data_len: usize) -> Vec<u8> {
    fn leb(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }
    let section = |id: u8, body: &[u8]| [&[id][..], &leb(body.len()), body].concat();
    let data: Vec<u8> = (0..data_len).map(|i| (i * 7 + i / 4096) as u8).collect();
    let segment = [&[1u8, 1][..], &leb(data.len()), &data].concat();
    [
        &b"\0asm\x01\0\0\0"[..],
        &section(1, b"\x01\x60\x00\x00"),
        &section(3, b"\x01\x00"),
        &section(5, b"\x01\x00\x01"),
        &section(7, b"\x01\x06_start\x00\x00"),
        &section(10, b"\x01\x02\x00\x0b"),
        &section(11, &segment),
    ]
    .concat()
}

/// The supervisor's memory does not grow with the module: it hashes the module and checks the
/// cached artifact through bounded buffers and hands the child descriptors, never the bytes.
/// (Measured against a tiny module: a debug build's own baseline is larger than a release's.)
#[test]
fn the_supervisor_does_not_grow_with_the_module() {
    let dir = temp_dir("supervisor-memory");
    let cache = dir.join("c.sqlite");
    let peaks = |name: &str, bytes: Vec<u8>| -> Vec<(String, u64)> {
        let m = dir.join(name);
        std::fs::write(&m, bytes).unwrap();
        (0..2)
            .map(|_| {
                let o = Command::new(env!("CARGO_BIN_EXE_sandboxrun"))
                    .arg("-v")
                    .arg("--cache")
                    .arg(&cache)
                    .arg(&m)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
                let log = String::from_utf8_lossy(&o.stderr).into_owned();
                let field = |name: &str| {
                    let at = log.find(name).unwrap_or_else(|| panic!("{name} in {log}")) + name.len();
                    log[at..].split([' ', '\n']).next().unwrap().trim_matches('"').to_string()
                };
                (field("cache="), field("supervisor_peak_memory_bytes=").parse().unwrap())
            })
            .collect()
    };
    let small = peaks("small.wasm", module_with_data(16));
    let big = peaks("big.wasm", module_with_data(24 << 20));
    for ((cache_use, small), (big_use, big)) in small.iter().zip(&big) {
        assert_eq!(cache_use, big_use);
        assert!(
            big.saturating_sub(*small) < 2 << 20,
            "{cache_use}: {big} bytes for a 24 MiB module, {small} for a tiny one"
        );
    }
    assert_eq!((big[0].0.as_str(), big[1].0.as_str()), ("miss", "hit"));
    // The same module through a pipe: copied into a memory file through a bounded buffer.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sandboxrun"))
        .args(["-v", "--stdin", "null", "--cache"])
        .arg(&cache)
        .arg("/dev/stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = module_with_data(24 << 20);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{log}");
    let at = log.find("supervisor_peak_memory_bytes=").expect("logged") + "supervisor_peak_memory_bytes=".len();
    let piped: u64 = log[at..].split([' ', '\n']).next().unwrap().parse().unwrap();
    assert!(piped.saturating_sub(small[1].1) < 2 << 20, "piped: {piped} bytes, {} for a tiny module", small[1].1);
}
