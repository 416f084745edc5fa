//! End-to-end tests of the `sandboxrun` binary: exit statuses, output, WASI over mounts,
//! limits, reports and bad input.

mod common;

use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

#[test]
fn hello_exit_code_and_stdout() {
    let dir = temp_dir("hello");
    let wat = write(&dir, "hello.wat", HELLO);
    let o = run(bin().arg(&wat));
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello, world\n");
    assert_eq!(stderr(&o), "");
}

/// A module that is not a regular file (a pipe) is read once by the supervisor and handed to
/// the run in a sealed memory file: it runs, and a second run of the same bytes is a hit.
#[test]
fn a_module_from_a_pipe_runs_and_is_cached() {
    let dir = temp_dir("pipe-module");
    let cache = dir.join("cache.sqlite");
    for expected in ["miss", "hit"] {
        let mut child = bin()
            .arg("--cache")
            .arg(&cache)
            .arg("--report")
            .arg(dir.join("r.json"))
            .arg("--stdin")
            .arg("null")
            .arg("/dev/stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(HELLO.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
        assert_eq!(stdout(&o), "hello, world\n");
        assert_eq!(report_json(&dir.join("r.json"))["cache"], expected);
    }
}

#[test]
fn invoke_prints_results() {
    let dir = temp_dir("invoke");
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(bin().args(["--invoke", "add"]).arg(&wat).args(["-2", "40"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "38\n");
    let o = run(bin().args(["--invoke", "add"]).arg(&wat).args(["x", "1"]));
    assert_eq!(o.status.code(), Some(125));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn trap_is_134_with_one_line_and_report() {
    let dir = temp_dir("trap");
    let wat = write(&dir, "m.wat", HELLO);
    let report = dir.join("report.json");
    let o = run(bin().arg("--report").arg(&report).args(["--invoke", "div"]).arg(&wat).args(["1", "0"]));
    assert_eq!(o.status.code(), Some(134));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("integer divide by zero") && err.contains("div"), "{err}");
    let json = std::fs::read_to_string(&report).unwrap();
    // The run's uid: `run_as` (65534 by default) for a root caller, the caller's own otherwise.
    // SAFETY: geteuid has no preconditions.
    let uid = if is_root() { 65534 } else { unsafe { libc::geteuid() } };
    let uid = format!("\"uid\": {uid},");
    for key in [
        "\"status\": \"trapped\"",
        "\"kind\": \"integer divide by zero\"",
        "\"module_sha256\"",
        "\"cpu_time_ms\"",
        "\"wall_time_ms\"",
        "\"peak_memory_bytes\"",
        "\"stdout_bytes\"",
        "\"stderr_bytes\"",
        "\"compile\"",
        "\"execute\"",
        "\"landlock\": \"abi ",
        uid.as_str(),
        "\"seccomp\": true",
        "\"network\"",
    ] {
        assert!(json.contains(key), "{key} missing in {json}");
    }
}

/// Descriptors the caller leaks into sandboxrun (an fd without close-on-exec) never reach
/// the run: the report lists what was open when confinement began.
#[test]
fn inherited_descriptors_are_closed_before_confinement() {
    use std::os::unix::process::CommandExt;
    let dir = temp_dir("fds");
    let wat = write(&dir, "m.wat", HELLO);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let secret = write(&dir, "secret", "do not read");
    let report = dir.join("report.json");
    let secret_file = std::fs::File::open(&secret).unwrap();
    let raw = std::os::fd::AsRawFd::as_raw_fd(&secret_file);
    let mut cmd = bin();
    // A cache of its own: the first run is a miss whatever other tests ran.
    cmd.arg("--cache")
        .arg(dir.join("cache.sqlite"))
        .arg("--report")
        .arg(&report)
        .arg("--dir")
        .arg(format!("{}::/data", dir.join("data").display()))
        .arg(&wat);
    // SAFETY: dup2 is async-signal-safe; the new fd 900 is not close-on-exec, so it is
    // inherited. (A high number: a low one could be reused by the run's own descriptors.)
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 900) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = run(&mut cmd);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let fds: Vec<i64> =
        json["confinement"]["open_fds"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    // stdio, the report pipe, the release pipe, the code channel's pipe back (its answer
    // socket is closed once the answer is in, before confinement ends), WASI's duplicates of
    // stdin (inherited, the default), stdout and stderr, the one mount: nothing else, fd 900
    // least of all.
    assert_eq!(fds.len(), 10, "{fds:?}");
    assert_eq!(&fds[..3], &[0, 1, 2]);
    assert!(!fds.contains(&900), "{fds:?}");
    // A cache hit holds two more: the cached artifact's file, which the run maps, and the
    // module's, kept until the cached code has loaded (if it did not, the module is compiled).
    let o = run(&mut cmd);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["cache"], "hit");
    let hit: Vec<i64> =
        json["confinement"]["open_fds"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(hit.len(), 12, "{hit:?}");
    assert!(!hit.contains(&900), "{hit:?}");
}

#[test]
fn stack_overflow_is_a_trap() {
    let dir = temp_dir("stack");
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(bin().args(["--invoke", "recurse"]).arg(&wat));
    assert_eq!(o.status.code(), Some(134));
    assert!(stderr(&o).contains("call stack exhausted"), "{}", stderr(&o));
}

#[test]
fn files_over_mounts_behave_and_nothing_escapes() {
    let dir = temp_dir("files");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    rw_dir(&dir.join("out"));
    write(&dir.join("data"), "input.txt", "hello from host\n");
    write(&dir, "secret.txt", "secret\n");
    let policy = write(
        &dir,
        "p.yaml",
        "version: 1\nargs: [arg1]\nenv: {GREETING: hi}\nmounts:\n  - {host: data, guest: /ro}\n  - {host: out, guest: /rw, mode: rw}\n",
    );
    let o = run(bin().arg("-p").arg(&policy).arg(fixture("files.wasm")));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("argc=2 argv1=arg1 env=hi\n"), "{out}");
    assert!(out.contains("content=hello from host\n"), "{out}");
    for line in out.lines().skip(1).filter(|l| !l.starts_with("content=")) {
        assert!(line.ends_with(": ok"), "{line}\n{out}");
    }
    assert_eq!(out.lines().filter(|l| l.ends_with(": ok")).count(), 15, "{out}");
    assert_eq!(std::fs::read_dir(dir.join("out")).unwrap().count(), 0, "the guest cleaned up");
}

#[test]
fn stdin_to_stdout_and_exit_codes() {
    let dir = temp_dir("stdin");
    write(&dir, "in.txt", "abc\n");
    let policy = write(&dir, "p.yaml", "version: 1\nstdin: in.txt\n");
    for code in ["0", "1", "42"] {
        let o = run(bin().arg("-p").arg(&policy).arg(fixture("echo.wasm")).arg(code));
        assert_eq!(o.status.code(), Some(code.parse().unwrap()), "{}", stderr(&o));
        assert_eq!(stdout(&o), "ABC\n");
    }
    // stdin: inherit.
    let policy = write(&dir, "q.yaml", "version: 1\nstdin: inherit\n");
    let mut child = bin()
        .arg("-p")
        .arg(&policy)
        .arg(fixture("echo.wasm"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "PIPED\n");
    // Default, as with `wasmtime run`: this process's stdin; `--stdin null` or a policy's
    // `stdin: null` gives none; `--stdin FILE` a file.
    let piped = |cmd: &mut Command| {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
        stdout(&child.wait_with_output().unwrap())
    };
    assert_eq!(piped(bin().arg(fixture("echo.wasm"))), "PIPED\n");
    assert_eq!(piped(bin().args(["--stdin", "null"]).arg(fixture("echo.wasm"))), "");
    let null_policy = write(&dir, "n.yaml", "version: 1\nstdin: \"null\"\n");
    assert_eq!(piped(bin().arg("-p").arg(&null_policy).arg(fixture("echo.wasm"))), "");
    assert_eq!(piped(bin().arg("--stdin").arg(dir.join("in.txt")).arg(fixture("echo.wasm"))), "ABC\n");
    let o = run(bin().args(["--stdin", "absent.txt"]).arg(fixture("echo.wasm")));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdin file") && stderr(&o).contains("absent.txt': does not exist"), "{}", stderr(&o));
}

#[test]
fn host_environment_is_not_visible() {
    let dir = temp_dir("env");
    let policy = write(&dir, "p.yaml", "version: 1\nargs: [0]\n");
    // files.wasm prints GREETING; the host's variable must not reach the guest.
    let o = run(bin().arg("-p").arg(&policy).arg(fixture("files.wasm")).env("GREETING", "from-host"));
    assert!(stdout(&o).contains("env=-"), "{}", stdout(&o));
}

#[test]
fn bad_input_is_125_with_one_line() {
    let dir = temp_dir("bad");
    let truncated = write(&dir, "t.wasm", "\0asm\x01\0\0\0\x01\x05");
    let invalid = write(&dir, "i.wat", "(module (func (result i32)))");
    let unparsable = write(&dir, "u.wat", "(module\n  (func (i32.cnst 1)))");
    let binary_junk = dir.join("j.wat");
    let prose = write(&dir, "notes.txt", "hello world\n");
    std::fs::write(&binary_junk, b"\xff\xfe(module)").unwrap();
    let missing =
        write(&dir, "m.wat", r#"(module (import "wasi_snapshot_preview1" "nope" (func)) (func (export "_start")))"#);
    let env = write(&dir, "e.wat", r#"(module (import "env" "f" (func (param i32))) (func (export "_start")))"#);
    let bad_policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  memory: 5MB\n");
    let absent = dir.join("absent.wasm");
    let cases: Vec<(Vec<&std::ffi::OsStr>, &str)> = vec![
        (vec![truncated.as_os_str()], "invalid module"),
        (vec![invalid.as_os_str()], "type mismatch"),
        (
            vec![unparsable.as_os_str()],
            "invalid text module: unknown operator or unexpected token at line 2, column 10",
        ),
        (vec![binary_junk.as_os_str()], "not a WebAssembly module: neither the binary magic"),
        (vec![prose.as_os_str()], "not a WebAssembly module: neither the binary magic"),
        (vec![missing.as_os_str()], "unknown import wasi_snapshot_preview1.nope: expected func() -> ()"),
        (vec![env.as_os_str()], "unknown import env.f: expected func(i32) -> ()"),
        (vec!["-p".as_ref(), bad_policy.as_os_str(), env.as_os_str()], "p.yaml:3:11: limits.memory: unknown unit 'MB'"),
        (vec![absent.as_os_str()], "failed to read"),
        (vec!["--run-as".as_ref(), "0".as_ref(), env.as_os_str()], "--run-as 0: must not be 0"),
        (vec!["--dir".as_ref(), "nope::/x".as_ref(), env.as_os_str()], "nope': does not exist"),
    ];
    for (args, expected) in cases {
        let o = run(bin().args(&args));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: expected '{expected}' in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_wrong_command_line_is_2_with_usage() {
    for args in [&["--bogus", "x.wasm"][..], &[][..]] {
        let o = run(bin().args(args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("Usage: sandboxrun"), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn policy_check_and_inspect() {
    let dir = temp_dir("check");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let policy =
        write(&dir, "p.yaml", "version: 1\nmounts:\n  - {host: data, guest: /data}\nlimits:\n  memory: 64MiB\n");
    let o = run(bin().args(["policy", "check"]).arg(&policy));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("memory: 64MiB") && out.contains("wall_time: 30s") && out.contains("guest: /data"), "{out}");
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(bin().arg("inspect").arg(&wat));
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stdout(&o).contains("wasi_snapshot_preview1.fd_write: func(i32, i32, i32, i32) -> (i32)"),
        "{}",
        stdout(&o)
    );
    // The features a module uses; one the engine does not implement is named, in one line.
    let tail = write(
        &dir,
        "tail.wat",
        "(module (memory 1) (func $f (memory.fill (i32.const 0) (i32.const 0) (i32.const 0)) (return_call $f)))",
    );
    let o = run(bin().arg("inspect").arg(&tail));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("features: bulk-memory, tail-call\n"), "{}", stdout(&o));
    let simd = write(&dir, "simd.wat", "(module (func (drop (v128.const i64x2 0 0))))");
    let o = run(bin().arg("inspect").arg(&simd));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("features: simd\n"), "{}", stdout(&o));
    let shared = write(&dir, "shared.wat", "(module (memory 1 1 shared))");
    let o = run(bin().arg("inspect").arg(&shared));
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("uses threads, which this engine does not implement"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn concurrent_runs_do_not_see_each_others_files() {
    let dir = temp_dir("concurrent");
    let wat = |name: &str| {
        format!(
            r#"(module
              (import "wasi_snapshot_preview1" "path_open"
                (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
              (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
              (memory (export "memory") 1)
              (data (i32.const 100) "{name}")
              (data (i32.const 200) "../other/{name}")
              (func (export "_start")
                ;; create own file in the rw mount (fd 3), then try the neighbour's through ..
                (drop (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const {len}) (i32.const 1)
                  (i64.const 64) (i64.const 64) (i32.const 0) (i32.const 0)))
                (call $exit (call $open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const {len2}) (i32.const 0)
                  (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 0)))))"#,
            len = name.len(),
            len2 = name.len() + 9
        )
    };
    // As root, each run also gets a uid of its own (`--run-as`), owning its rw directory.
    let uids = [60001u32, 60002];
    let runs: Vec<_> = ["a", "b"]
        .iter()
        .zip(uids)
        .map(|(n, uid)| {
            let own = dir.join(n);
            std::fs::create_dir_all(&own).unwrap();
            if is_root() {
                std::os::unix::fs::chown(&own, Some(uid), Some(uid)).unwrap();
            }
            let other = if *n == "a" { "b" } else { "a" };
            let module = write(&dir, &format!("{n}.wat"), &wat(other));
            bin()
                .arg("--run-as")
                .arg(uid.to_string())
                .arg("--report")
                .arg(dir.join(format!("{n}.json")))
                .arg("--dir")
                .arg(format!("{}::/box:rw", own.display()))
                .arg(module)
                .spawn()
                .unwrap()
        })
        .collect();
    for child in runs {
        let o = child.wait_with_output().unwrap();
        // ENOTCAPABLE (76): the neighbour's directory is outside the mount.
        assert_eq!(o.status.code(), Some(76));
    }
    assert!(dir.join("a/b").exists() && dir.join("b/a").exists());
    if is_root() {
        for (n, uid) in ["a", "b"].iter().zip(uids) {
            let json = report_json(&dir.join(format!("{n}.json")));
            assert_eq!(json["confinement"]["uid"].as_u64(), Some(u64::from(uid)));
            let owner = std::os::unix::fs::MetadataExt::uid(
                &std::fs::metadata(dir.join(n).join(if *n == "a" { "b" } else { "a" })).unwrap(),
            );
            assert_eq!(owner, uid, "the file the run created belongs to its uid");
        }
    }
}

#[test]
fn every_other_wasi_function_through_the_binary() {
    let dir = temp_dir("calls");
    std::fs::create_dir_all(dir.join("ro")).unwrap();
    rw_dir(&dir.join("rw"));
    write(&dir.join("ro"), "input.txt", "hi\n");
    let policy = write(
        &dir,
        "p.yaml",
        "version: 1\nmounts:\n  - {host: ro, guest: /ro}\n  - {host: rw, guest: /rw, mode: rw}\nlimits:\n  open_files: 16\n",
    );
    let o = run(bin().arg("-p").arg(&policy).arg(fixture("calls.wasm")));
    assert_eq!(o.status.code(), Some(0), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 34, "{out}");
    for line in out.lines() {
        assert!(line.ends_with(": ok"), "{line}\n{out}");
    }
}

#[test]
fn legacy_wasi_unstable_module_runs() {
    let dir = temp_dir("unstable");
    let wat = write(
        &dir,
        "u.wat",
        r#"(module
          (import "wasi_unstable" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (import "wasi_unstable" "proc_exit" (func $exit (param i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "legacy\n")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const 7))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (call $exit (i32.const 9))))"#,
    );
    let o = run(bin().arg(&wat));
    assert_eq!((o.status.code(), stdout(&o)), (Some(9), "legacy\n".to_string()), "{}", stderr(&o));
}

#[test]
fn shipped_examples_work() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = run(bin().args(["policy", "check"]).arg(root.join("examples/grader/policy.yaml")));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(bin().arg(root.join("examples/hello.wat")));
    assert_eq!((o.status.code(), stdout(&o)), (Some(0), "hello from sandboxrun\n".to_string()));
}

/// The functions C programs rarely reach, called directly from WAT through the binary. Each
/// check stores its errno at 1000 + 4*i; the guest then writes that table to stdout.
#[test]
fn rare_wasi_functions_from_wat() {
    let dir = temp_dir("rare");
    rw_dir(&dir.join("rw"));
    write(&dir.join("rw"), "f", "x");
    let wat = write(
        &dir,
        "rare.wat",
        r#"(module
          (import "wasi_snapshot_preview1" "fd_renumber" (func $renumber (param i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_fdstat_set_rights" (func $rights (param i32 i64 i64) (result i32)))
          (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "sock_send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "path_open"
            (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_raise" (func $raise (param i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 100) "f/")
          (func $r (param i32 i32) (i32.store (i32.add (i32.const 1000) (i32.mul (local.get 0) (i32.const 4))) (local.get 1)))
          (func (export "_start")
            (call $r (i32.const 0) (call $renumber (i32.const 3) (i32.const 50)))       ;; EBADF: no fd 50
            (call $r (i32.const 5) (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 2) (i32.const 0)
              (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 200)))             ;; ENOTDIR: "f/" is a file (before
              ;; the rights are dropped: path_open then needs PATH_OPEN)
            (call $r (i32.const 1) (call $rights (i32.const 3) (i64.const 2) (i64.const 2)))  ;; ok: dropping rights
            (call $r (i32.const 2) (call $rights (i32.const 3) (i64.const -1) (i64.const 0))) ;; ENOTCAPABLE: raising
            (call $r (i32.const 3) (call $accept (i32.const 3) (i32.const 0) (i32.const 0)))  ;; ENOTSOCK
            (call $r (i32.const 4) (call $send (i32.const 77) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))) ;; EBADF
            (call $r (i32.const 6) (call $renumber (i32.const 2) (i32.const 1)))        ;; ok: stderr now at 1
            (i32.store (i32.const 0) (i32.const 1000))
            (i32.store (i32.const 4) (i32.const 28))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
            (drop (call $raise (i32.const 6)))))"#,
    );
    let o = run(bin().arg("--dir").arg(format!("{}::/rw:rw", dir.join("rw").display())).arg(&wat));
    // The errno table went to stderr (fd 1 was renumbered to stderr's descriptor).
    let table: Vec<u32> = o.stderr.chunks_exact(4).take(7).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(table, vec![8, 0, 76, 57, 8, 54, 0], "{:?}", String::from_utf8_lossy(&o.stderr));
    // proc_raise(SIGABRT) ends the run like the signal would.
    assert_eq!(o.status.code(), Some(128 + 6));
}

/// The core cases again as an unprivileged user (uid 65534 through `setpriv` when the suite
/// runs as root, as CI does): user namespaces, landlock and seccomp need no privilege.
#[test]
fn core_cases_as_an_unprivileged_user() {
    let dir = temp_dir("unprivileged");
    let wat = write(&dir, "m.wat", HELLO);
    for p in [&dir, &wat] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let root = is_root();
    let unprivileged = |args: &[&std::ffi::OsStr]| -> Output {
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(env!("CARGO_BIN_EXE_sandboxrun"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_sandboxrun"))
        };
        cmd.arg("--no-cache").args(args).stdin(Stdio::null()).output().expect("setpriv (util-linux) runs")
    };
    let o = unprivileged(&[wat.as_os_str()]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(42), "hello, world\n".to_string()), "{}", stderr(&o));
    let o = unprivileged(&["--invoke".as_ref(), "div".as_ref(), wat.as_os_str(), "1".as_ref(), "0".as_ref()]);
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let o = unprivileged(&["--invoke".as_ref(), "recurse".as_ref(), wat.as_os_str()]);
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(stderr(&o).contains("call stack exhausted"));
}

/// A tail-recursive loop ten million calls deep runs in constant stack through the binary
/// (WebAssembly 3.0 tail calls); the same recursion without them overflows the stack (a trap).
#[test]
fn a_deep_tail_recursion_runs_in_constant_stack() {
    let dir = temp_dir("tail-calls");
    let wat = write(
        &dir,
        "tail.wat",
        r#"(module
          (func $count (export "count") (param i64 i64) (result i64)
            (if (result i64) (i64.eqz (local.get 0))
              (then (local.get 1))
              (else (return_call $count (i64.sub (local.get 0) (i64.const 1)) (i64.add (local.get 1) (i64.const 2))))))
          (func $deep (export "deep") (param i64) (result i64)
            (if (result i64) (i64.eqz (local.get 0))
              (then (i64.const 0))
              (else (i64.add (i64.const 1) (call $deep (i64.sub (local.get 0) (i64.const 1))))))))"#,
    );
    let o = run(bin().args(["--invoke", "count"]).arg(&wat).args(["10000000", "0"]));
    assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "20000000"), "{}", stderr(&o));
    let o = run(bin().args(["--invoke", "deep"]).arg(&wat).arg("10000000"));
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(stderr(&o).contains("call stack exhausted"), "{}", stderr(&o));
}

/// Typed function references through the binary: `call_ref` calls a function passed by
/// reference, and traps on null with its own message (exit 134); `inspect` names the feature,
/// a policy without it refuses the module, and a module using GC's types is refused naming GC.
#[test]
fn typed_function_references_run_and_trap_through_the_binary() {
    let dir = temp_dir("typed-refs");
    let wat = write(
        &dir,
        "refs.wat",
        r#"(module
          (type $f (func (param i32) (result i32)))
          (func $double (type $f) (i32.mul (local.get 0) (i32.const 2)))
          (elem declare func $double)
          (func $apply (param (ref null $f)) (param i32) (result i32) (call_ref $f (local.get 1) (local.get 0)))
          (func (export "twice") (param i32) (result i32) (call $apply (ref.func $double) (local.get 0)))
          (func (export "null") (param i32) (result i32) (call $apply (ref.null $f) (local.get 0))))"#,
    );
    let o = run(bin().args(["--invoke", "twice"]).arg(&wat).arg("21"));
    assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "42"), "{}", stderr(&o));
    let o = run(bin().args(["--invoke", "null"]).arg(&wat).arg("21"));
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(stderr(&o).contains("null function reference"), "{}", stderr(&o));
    let o = run(bin().arg("inspect").arg(&wat));
    // (A declarative element segment is bulk memory's.)
    assert!(stdout(&o).starts_with("features: reference-types, bulk-memory, function-references\n"), "{}", stdout(&o));
    let p = write(&dir, "p.yaml", "version: 1\nfeatures: [reference-types]\n");
    let o = run(bin().arg("-p").arg(&p).args(["--invoke", "twice"]).arg(&wat).arg("21"));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("function references"), "{}", stderr(&o));
    let gc = write(&dir, "gc.wat", "(module (func (result anyref) (ref.null any)))");
    let o = run(bin().arg("inspect").arg(&gc));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("gc"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

/// A policy's `features` restrict what modules may use: a module using another is refused
/// with the feature's name and its offset (even when the code cache holds it compiled under
/// every feature); an unknown or unimplemented name is a one-line error, exit 125.
#[test]
fn a_policys_features_restrict_what_a_module_may_use() {
    let dir = temp_dir("features");
    let cache = dir.join("cache.sqlite");
    let wat = write(
        &dir,
        "bulk.wat",
        "(module (memory 1) (func (export \"_start\") (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))))",
    );
    let with = |policy: &str| {
        let p = write(&dir, "p.yaml", policy);
        run(bin().arg("--cache").arg(&cache).arg("-p").arg(&p).arg(&wat))
    };
    // Cached under every feature first.
    assert_eq!(with("version: 1\n").status.code(), Some(0));
    assert_eq!(with("version: 1\nfeatures: [bulk-memory]\n").status.code(), Some(0));
    let o = with("version: 1\nfeatures: [multi-value, tail-call]\n");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("bulk memory") && stderr(&o).contains("offset"), "{}", stderr(&o));
    for (policy, why) in [
        ("version: 1\nfeatures: [tail-calls]\n", "unknown WebAssembly feature 'tail-calls'"),
        ("version: 1\nfeatures: [threads]\n", "the WebAssembly feature 'threads' is not implemented"),
    ] {
        let o = with(policy);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
}

/// Two memories (WebAssembly 3.0 multi-memory) through the binary: WASI reads memory 0 (the
/// exported one), the program copies into it from its second memory, and the policy's memory
/// limit bounds both memories together — growing the second within it works, growing the
/// first past what is left is refused.
#[test]
fn two_memories_share_the_policys_memory_limit() {
    let dir = temp_dir("two-memories");
    let wat = write(
        &dir,
        "two.wat",
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
          (memory $io (export "memory") 1)
          (memory $other 1)
          (data (memory $other) (i32.const 0) "two memories\n")
          (data (memory $io) (i32.const 200) "refused\n")
          (func $print (param i32 i32)
            (i32.store $io (i32.const 0) (local.get 0))
            (i32.store $io (i32.const 4) (local.get 1))
            (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 20))))
          (func (export "_start")
            (memory.copy $io $other (i32.const 100) (i32.const 0) (i32.const 13))
            (call $print (i32.const 100) (i32.const 13))
            ;; 151 of the limit's 256 pages: fine.
            (if (i32.ne (memory.grow $other (i32.const 150)) (i32.const 1)) (then unreachable))
            ;; 301 pages: refused.
            (if (i32.eq (memory.grow $io (i32.const 150)) (i32.const -1))
              (then (call $print (i32.const 200) (i32.const 8))))))"#,
    );
    let policy = write(&dir, "p.yaml", "version: 1\nlimits: {memory: 16MiB}\n");
    let o = run(bin().arg("-p").arg(&policy).arg(&wat));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "two memories\nrefused\n");
}

/// A 64-bit memory (WebAssembly 3.0 memory64) through the binary: an address past 4 GiB is
/// out of bounds (the run traps), not wrapped into the memory.
#[test]
fn a_64_bit_memory_runs_and_traps_past_its_end() {
    let dir = temp_dir("memory64");
    let wat = write(
        &dir,
        "m64.wat",
        r#"(module
          (memory i64 1)
          (data (i64.const 65535) "!")
          (func (export "byte") (param i64) (result i32) (i32.load8_u (local.get 0))))"#,
    );
    let o = run(bin().args(["--invoke", "byte"]).arg(&wat).arg("65535"));
    assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "33"), "{}", stderr(&o));
    let o = run(bin().args(["--invoke", "byte"]).arg(&wat).arg("4295032831")); // 2^32 + 65535
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(stderr(&o).contains("out of bounds memory access"), "{}", stderr(&o));
}

/// A C++ program built with clang-19 -fwasm-exceptions (the legacy try/catch encoding;
/// `tests/fixtures/throw.cc`) throws across frames, runs each frame's destructors on the way
/// (cleanups that catch and rethrow), and catches in main; an exception nothing catches ends
/// the run as a trap — `uncaught exception` with its tag, in the summary line and the report.
#[test]
fn a_cpp_program_throws_and_catches_and_an_uncaught_exception_is_a_trap() {
    let dir = temp_dir("cpp-exceptions");
    let o = run(bin().arg(fixture("throw.wasm")));
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "caught 3, destroyed 36\n"), "{}", stderr(&o));
    let report = dir.join("r.json");
    let o = run(bin().arg("--report").arg(&report).arg(fixture("throw.wasm")).arg("5"));
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert_eq!(stdout(&o), "caught 3, destroyed 36\n");
    assert!(stderr(&o).starts_with("sandboxrun: wasm trap: uncaught exception (tag "), "{}", stderr(&o));
    let report = report_json(&report);
    assert_eq!(report["status"], "trapped");
    assert_eq!(report["trap"]["kind"], "uncaught exception");
    assert!(report["trap"]["tag"].is_string(), "{report}");
}

/// A C program built with -msimd128 (`tests/fixtures/simd.c`): a loop clang auto-vectorised
/// and loops written with wasm_simd128.h intrinsics give the scalar loops' results, compiled
/// and from the code cache.
#[test]
fn a_simd_c_program_gives_the_scalar_results() {
    let dir = temp_dir("simd");
    let cache = dir.join("cache.sqlite");
    let report = dir.join("r.json");
    // Compiled, then from the code cache: the same output both times.
    for expected_cache in ["miss", "hit"] {
        let o = run(bin().arg("--cache").arg(&cache).arg("--report").arg(&report).arg(fixture("simd.wasm")));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), "dot -33886119 -33886119 -33886119, max 16383.932 16383.932: same\n");
        assert_eq!(report_json(&report)["cache"], expected_cache);
    }
    let o = run(bin().arg("inspect").arg(fixture("simd.wasm")));
    assert!(stdout(&o).starts_with("features: simd\n"), "{}", stdout(&o));
}

/// A guest that keeps exceptions alive (a chain, each holding the one before, in a loop that
/// never returns) cannot grow the runtime's heap past the policy's memory limit: the run traps
/// with `out of memory for exception objects` at the limit, reported as a refusal at the
/// limit, instead of eating the runtime's allowance. One that drops them (caught by
/// reference, or passing through C++-style cleanups) throws two million in the same policy:
/// the dead ones are collected during the run.
#[test]
fn exceptions_kept_alive_stop_at_the_policys_memory_limit() {
    let dir = temp_dir("exception-pile");
    let wat = write(
        &dir,
        "pile.wat",
        r#"(module
          (tag $e (param exnref i64 i64 i64))
          (func (export "_start") (local $head exnref)
            (loop $l
              (block $h (result exnref)
                (try_table (catch_all_ref $h)
                  (throw $e (local.get $head) (i64.const 2) (i64.const 3) (i64.const 4)))
                unreachable)
              (local.set $head)
              (br $l))))"#,
    );
    let policy = write(&dir, "p.yaml", "version: 1\nlimits: {memory: 16MiB}\n");
    let report_file = dir.join("r.json");
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report_file).arg(&wat));
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    let report = report_json(&report_file);
    assert_eq!(report["trap"]["kind"], "out of memory for exception objects", "{report}");
    assert_eq!(report["memory_grow_refused"], true);
    let peak = report["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak < 100 << 20, "the run's peak memory is {peak} bytes");

    let dropped = write(
        &dir,
        "dropped.wat",
        r#"(module
          (tag $e (param i64 i64 i64 i64))
          (func $cleanup
            (block $h (result exnref)
              (try_table (catch_all_ref $h) (throw $e (i64.const 1) (i64.const 2) (i64.const 3) (i64.const 4)))
              (return))
            (throw_ref))
          (func (export "_start") (local $n i32)
            (local.set $n (i32.const 2000000))
            (loop $l
              (block $c (result i64 i64 i64 i64)
                (try_table (catch $e $c) (call $cleanup))
                unreachable)
              drop drop drop drop
              (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))"#,
    );
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report_file).arg(&dropped));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let peak = report_json(&report_file)["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak < 64 << 20, "the run's peak memory is {peak} bytes");
}

/// A module declaring a table larger than the engine allows, with a constant element segment
/// at its far end, is refused in one line (exit 125) — neither the table nor the lazy table's
/// image is allocated first (an image used to be built at load, before the size was checked,
/// and the run died at the memory limit).
#[test]
fn a_huge_table_is_an_error_not_an_allocation() {
    let dir = temp_dir("huge-table");
    let wat = write(
        &dir,
        "t.wat",
        "(module (table 4000000000 funcref) (func) (elem (i32.const 3999999999) func 0) (func (export \"_start\")))",
    );
    let o = run(bin().arg(&wat));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("larger than the limit"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

/// Tables filled on first use, through the binary and the code cache: a slot a constant
/// segment wrote calls its function, an empty one traps as `uninitialized element`, the same
/// when compiled and when loaded from the cache.
#[test]
fn a_lazily_filled_table_calls_and_traps_compiled_and_cached() {
    let dir = temp_dir("lazy-table");
    let cache = dir.join("cache.sqlite");
    let wat = write(
        &dir,
        "t.wat",
        r#"(module
          (type $r (func (result i32)))
          (table 8 funcref)
          (func $a (result i32) (i32.const 41))
          (func $b (result i32) (i32.const 42))
          (elem (i32.const 3) func $a $b)
          (func (export "at") (param i32) (result i32) (call_indirect (type $r) (local.get 0))))"#,
    );
    let invoke = |slot: &str| run(bin().arg("--cache").arg(&cache).args(["--invoke", "at"]).arg(&wat).arg(slot));
    for _ in 0..2 {
        let o = invoke("4");
        assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "42"), "{}", stderr(&o));
        let o = invoke("2");
        assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
        assert!(stderr(&o).contains("uninitialized element"), "{}", stderr(&o));
    }
}
