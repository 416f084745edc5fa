//! The trust boundary between sandboxrun and what it runs, through the binary (issue #13):
//! the guest's arguments are the guest's, a guest cannot choose a status that reads as a
//! verdict or as success, text a module chose is escaped, sandboxrun's own broken stdout or
//! stderr never changes its exit status, and kernel interfaces are never mounted.

mod common;

use common::*;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Writes its argv to stdout (each argument ended by NUL, as `args_get` lays them out) and
/// exits with `fd_prestat_get(3)`'s errno: 8 (EBADF) when nothing is mounted, 0 when something
/// is.
const ARGV: &str = r#"
(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (drop (call $sizes (i32.const 0) (i32.const 4)))
    (drop (call $get (i32.const 1024) (i32.const 8192)))
    (i32.store (i32.const 16) (i32.const 8192))
    (i32.store (i32.const 20) (i32.load (i32.const 4)))
    (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
    (call $exit (call $prestat (i32.const 3) (i32.const 32)))))"#;

/// A module whose `_start` calls `proc_exit(code)` or `proc_raise(code)`.
fn ending(call: &str, code: i64) -> String {
    let (result, drop) = if call == "proc_raise" { ("(result i32)", "drop") } else { ("", "") };
    format!(
        r#"(module
          (import "wasi_snapshot_preview1" "{call}" (func $f (param i32) {result}))
          (memory (export "memory") 1)
          (func (export "_start") (call $f (i32.const {code})) {drop}))"#
    )
}

/// The arguments after MODULE in the guest-argument tests: every option sandboxrun has, in
/// both spellings, `--` and `--help`. `out` is where files they name would appear.
fn hostile_args(out: &Path) -> Vec<String> {
    [
        "-p",
        "/nonexistent/policy.yaml",
        &format!("--report={}", out.join("report.json").display()),
        "--dir=/etc::/etc",
        "--dir",
        "/::/host",
        "--env",
        "A=B",
        "--cache",
        &out.join("cache.sqlite").display().to_string(),
        "--run-as",
        "60000",
        "--no-cache",
        "--",
        "--help",
        "-v",
        "-h",
        "--invoke",
        "nothing",
        "--server",
        "/nonexistent.sock",
        "--version",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Checks a run of [`ARGV`] given [`hostile_args`]: the guest saw them verbatim, nothing was
/// mounted, written or used.
fn assert_guest_got(o: &Output, module: &Path, out: &Path) {
    let mut expected = module.file_name().unwrap().to_str().unwrap().to_string() + "\0";
    for a in hostile_args(out) {
        expected += &a;
        expected += "\0";
    }
    assert_eq!(stdout(o), expected, "{}", stderr(o));
    assert_eq!(o.status.code(), Some(8), "nothing is mounted: {}", stderr(o));
    assert_eq!(stderr(o), "");
    assert!(!out.join("report.json").exists(), "a --report after MODULE wrote a report");
    assert!(!out.join("cache.sqlite").exists(), "a --cache after MODULE was used");
}

#[test]
fn everything_after_the_module_is_the_guests() {
    let dir = temp_dir("guest-args");
    let module = write(&dir, "argv.wat", ARGV);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let o = run(bin().arg(&module).args(hostile_args(&out)));
    assert_guest_got(&o, &module, &out);
    // Options before MODULE are still sandboxrun's.
    let report = dir.join("report.json");
    let o = run(bin().arg("--report").arg(&report).arg("--dir=/etc::/etc").arg(&module).arg("x"));
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), "argv.wat\0x\0".to_string()), "{}", stderr(&o));
    assert_eq!(report_json(&report)["status"], "exited");
    // As an unprivileged user too (setpriv as uid 65534 when the suite runs as root).
    let o = run(unprivileged().arg("--no-cache").arg(&module).args(hostile_args(&out)));
    assert_guest_got(&o, &module, &out);
}

/// The same through a server, from `sandboxrun --server` and from `sandboxrun-client`: the
/// command line is parsed again in the server, the same way.
#[test]
fn everything_after_the_module_is_the_guests_through_a_server() {
    let dir = temp_dir("guest-args-server");
    let module = write(&dir, "argv.wat", ARGV);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let server = Server::start(&dir);
    let o = run(bin().arg("--server").arg(&server.socket).arg(&module).args(hostile_args(&out)));
    assert_guest_got(&o, &module, &out);
    let o = run(server.client_binary().arg(&module).args(hostile_args(&out)));
    assert_guest_got(&o, &module, &out);
    // A trap through the server with the client's stdout and stderr broken: still 134.
    let wat = write(&dir, "m.wat", HELLO);
    let o = with_broken_streams(server.client_binary().args(["--invoke", "div"]).arg(&wat).args(["1", "0"]));
    assert_eq!(o, Some(134));
}

#[test]
fn exit_codes_beyond_255_never_end_as_success() {
    let dir = temp_dir("big-exit");
    let report = dir.join("r.json");
    for code in [256i64, 512, 1 << 31, -1, 256 + 42] {
        let module = write(&dir, "m.wat", &ending("proc_exit", code));
        let o = run(bin().arg("--report").arg(&report).arg(&module));
        assert_eq!(o.status.code(), Some(1), "proc_exit({code}): {}", stderr(&o));
        let json = report_json(&report);
        assert_eq!(json["status"], "exited");
        assert_eq!(json["exit_code"].as_u64(), Some(code as u32 as u64), "the report keeps the code whole");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&format!("the guest exited with code {}", code as u32)), "{err}");
    }
}

#[test]
fn a_guest_code_that_reads_like_a_verdict_says_so() {
    let dir = temp_dir("reserved-exit");
    let report = dir.join("r.json");
    for code in [124i64, 125, 134, 137, 153, 159, 2, 130] {
        let module = write(&dir, "m.wat", &ending("proc_exit", code));
        let o = run(bin().arg("--report").arg(&report).arg(&module));
        assert_eq!(o.status.code(), Some(code as i32));
        assert_eq!(
            stderr(&o),
            format!("sandboxrun: the guest exited with code {code} (its own code, not a verdict)\n")
        );
        assert_eq!(report_json(&report)["status"], "exited", "the report's status is authoritative");
    }
    let module = write(&dir, "m.wat", &ending("proc_exit", 3));
    let o = run(bin().arg(&module));
    assert_eq!((o.status.code(), stderr(&o)), (Some(3), String::new()));
}

/// `proc_raise` takes WASI's signal numbers, which are not Linux's from SIGCHLD on; a number
/// WASI does not define is no signal at all.
#[test]
fn raised_signals_are_wasi_signals() {
    let dir = temp_dir("raise");
    let report = dir.join("r.json");
    // (WASI number, exit status, the report's signal: Linux's number)
    for (wasi, status, signal) in
        [(6i64, 134, Some(6)), (16, 128 + 17, Some(17)), (30, 159, Some(31)), (9, 137, Some(9))]
    {
        let module = write(&dir, "m.wat", &ending("proc_raise", wasi));
        let o = run(bin().arg("--report").arg(&report).arg(&module));
        assert_eq!(o.status.code(), Some(status), "proc_raise({wasi}): {}", stderr(&o));
        let json = report_json(&report);
        assert_eq!((json["status"].as_str(), json["reason"].as_str()), (Some("killed"), Some("guest_signal")));
        assert_eq!(json["signal"].as_i64(), signal);
        assert_eq!(json["exit_code"].as_i64(), Some(i64::from(status)));
        assert!(json["syscall"].is_null(), "a raised SIGSYS is no seccomp kill");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("the guest raised SIG") && err.contains(&format!("WASI signal {wasi}")), "{err}");
    }
    for wasi in [0i64, 31, 255] {
        let module = write(&dir, "m.wat", &ending("proc_raise", wasi));
        let o = run(bin().arg("--report").arg(&report).arg(&module));
        let json = report_json(&report);
        assert_eq!(o.status.code(), Some(1), "proc_raise({wasi}): {}", stderr(&o));
        assert_eq!((json["status"].as_str(), json["reason"].as_str()), (Some("killed"), Some("guest_signal")));
        assert!(json["signal"].is_null() && json["exit_code"].is_null(), "{json}");
        assert!(stderr(&o).contains(&format!("signal {wasi}, which WASI does not define")), "{}", stderr(&o));
    }
}

/// Appends a name section naming function 0 `name` to `wasm`.
fn with_function_name(mut wasm: Vec<u8>, name: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    let mut names = Vec::new();
    leb(1, &mut names); // one function
    leb(0, &mut names); // function 0
    leb(name.len(), &mut names);
    names.extend_from_slice(name.as_bytes());
    let mut body = Vec::new();
    leb(4, &mut body);
    body.extend_from_slice(b"name");
    body.push(1); // function names
    leb(names.len(), &mut body);
    body.extend_from_slice(&names);
    wasm.push(0); // custom section
    leb(body.len(), &mut wasm);
    wasm.extend_from_slice(&body);
    wasm
}

/// No control character of `text` but the newlines ending its lines.
fn assert_no_controls(text: &str) {
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "raw control characters in {text:?}");
}

#[test]
fn names_a_module_chose_are_escaped() {
    let dir = temp_dir("names");
    let hostile = "f\n\u{1b}[31mRED\u{7}\u{7f}\u{9b}2J";
    let wasm = wat::parse_str(r#"(module (func (export "_start") unreachable))"#).unwrap();
    let trap = dir.join("trap.wasm");
    std::fs::write(&trap, with_function_name(wasm, hostile)).unwrap();
    let report = dir.join("r.json");
    let o = run(bin().arg("--report").arg(&report).arg(&trap));
    assert_eq!(o.status.code(), Some(134));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert_no_controls(&err);
    assert!(err.contains(r"in function f\n\u{1b}[31mRED\u{7}\u{7f}\u{9b}2J (0)"), "{err:?}");
    let raw = std::fs::read_to_string(&report).unwrap();
    assert_no_controls(&raw);
    let function = report_json(&report)["trap"]["function"].as_str().unwrap().to_string();
    assert_no_controls(&function);

    // A missing import named with controls: the error line and the report's error.
    let import = write(
        &dir,
        "import.wat",
        r#"(module (import "env\n\1b[2J" "f\1b]0;owned\07\7f" (func)) (func (export "_start")))"#,
    );
    let o = run(bin().arg("--report").arg(&report).arg(&import));
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert_no_controls(&err);
    assert!(err.contains(r"unknown import env\n\u{1b}[2J.f\u{1b}]0;owned\u{7}\u{7f}"), "{err:?}");
    let error = report_json(&report)["error"].as_str().unwrap().to_string();
    assert_no_controls(&error);

    // `inspect`: one line per import and export, escaped.
    let exports = write(
        &dir,
        "exports.wat",
        r#"(module (import "m\00x" "\1b[31m" (func)) (func (export "e\n\1b[0m\u{85}")) (memory (export "m\r") 1))"#,
    );
    let o = run(bin().arg("inspect").arg(&exports));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_no_controls(&out);
    assert!(out.contains(r"  m\0x.\u{1b}[31m: func"), "{out}");
    assert!(out.contains(r"  e\n\u{1b}[0m\u{85}: func"), "{out}");
    assert!(out.contains(r"  m\r: memory"), "{out}");
}

/// Runs `cmd` with its stdout and stderr on a pipe whose read end is closed; its exit status.
fn with_broken_streams(cmd: &mut Command) -> Option<i32> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors it was given room for.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors are new and owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let o = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(write.try_clone().unwrap()))
        .stderr(Stdio::from(write))
        .status()
        .unwrap();
    o.code()
}

/// `sandboxrun trap.wasm 2>&1 | true`: sandboxrun's summary line cannot be written, and the
/// exit status is still the verdict's, never a panic's 101.
#[test]
fn broken_stdout_and_stderr_never_change_the_status() {
    let dir = temp_dir("broken-streams");
    let wat = write(&dir, "m.wat", HELLO);
    assert_eq!(with_broken_streams(bin().args(["--invoke", "div"]).arg(&wat).args(["1", "0"])), Some(134));
    assert_eq!(with_broken_streams(bin().arg(&wat)), Some(42));
    assert_eq!(with_broken_streams(bin().args(["--invoke", "add"]).arg(&wat).args(["1", "2"])), Some(0));
    let reserved = write(&dir, "r.wat", &ending("proc_exit", 124));
    assert_eq!(with_broken_streams(bin().arg(&reserved)), Some(124));
    let big = write(&dir, "b.wat", &ending("proc_exit", 300));
    assert_eq!(with_broken_streams(bin().arg(&big)), Some(1));
    assert_eq!(with_broken_streams(bin().arg(dir.join("absent.wasm"))), Some(125));
    assert_eq!(with_broken_streams(bin().arg("inspect").arg(&wat)), Some(0));
    let policy = write(&dir, "p.yaml", "version: 1\n");
    assert_eq!(with_broken_streams(bin().args(["policy", "check"]).arg(&policy)), Some(0));
    assert_eq!(with_broken_streams(bin().arg("--help")), Some(0));
    assert_eq!(with_broken_streams(bin().arg("--bogus")), Some(2));
    let client = env!("CARGO_BIN_EXE_sandboxrun-client");
    assert_eq!(with_broken_streams(&mut Command::new(client)), Some(2));
    assert_eq!(with_broken_streams(Command::new(client).arg(dir.join("no.sock")).arg(&wat)), Some(125));
}

#[test]
fn kernel_interfaces_are_never_mounted() {
    let dir = temp_dir("kernel-mounts");
    let wat = write(&dir, "m.wat", HELLO);
    std::os::unix::fs::symlink("/sys", dir.join("innocent")).unwrap();
    let innocent = format!("{}::/s", dir.join("innocent").display());
    let below = format!("{}::/s", dir.join("innocent").join("kernel").display());
    for (spec, expected) in [
        ("/proc::/p", "--dir /proc::/p: '/proc' is /proc or beneath it: kernel interfaces cannot be mounted"),
        // Symlinks: the runner refuses a final one, and checks the real ancestors of what it
        // opened through one.
        (innocent.as_str(), "innocent': is a symbolic link"),
        (below.as_str(), "/proc, /sys and /dev (and what is below them) cannot be mounted"),
        ("/::/h:rw", "--dir /::/h:rw: '/' can only be mounted read-only (mode: ro)"),
    ] {
        let o = run(bin().arg("--dir").arg(spec).arg(&wat));
        assert_eq!(o.status.code(), Some(125), "{spec}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{spec}: {err}");
        assert!(o.stdout.is_empty(), "nothing ran");
    }
    let policy = write(&dir, "p.yaml", "version: 1\nmounts:\n  - {host: /dev, guest: /dev}\n");
    let o = run(bin().arg("-p").arg(&policy).arg(&wat));
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(err.contains("p.yaml:3:") && err.contains("mounts.host: '/dev' is /dev or beneath it"), "{err}");
}

/// `sandboxrun`, as uid 65534 through `setpriv` when the suite runs as root.
fn unprivileged() -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(env!("CARGO_BIN_EXE_sandboxrun"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_sandboxrun"))
    }
}
