//! What a guest can make the host do, through the binary (issue 13): files an earlier guest
//! planted in an rw folder that a later stage names (the report, stdin, a mount), kernel
//! filesystems as mounts, a supervisor's cache lock, the stack, and the run's process after
//! sandboxrun has ended.

mod common;

use common::*;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// An earlier stage's output folder, holding what a guest could leave there.
fn output_folder(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    out
}

#[test]
fn a_report_is_written_beside_a_planted_symlink_never_through_it() {
    let dir = temp_dir("report-link");
    let out = output_folder(&dir);
    let victim = write(&dir, "victim", "precious\n");
    std::os::unix::fs::symlink(&victim, out.join("report.json")).unwrap();
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(bin().arg("--report").arg(out.join("report.json")).arg(&wat));
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(out.join("report.json")).unwrap();
    assert!(meta.file_type().is_file(), "the link was replaced by the report");
    assert_eq!(report_json(&out.join("report.json"))["exit_code"], 42);
    // Nothing left behind beside it.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

#[test]
fn a_planted_symlink_named_as_stdin_or_mount_is_refused() {
    let dir = temp_dir("stdin-link");
    let out = output_folder(&dir);
    let secret = write(&dir, "secret", "the host's secret\n");
    std::os::unix::fs::symlink(&secret, out.join("result.txt")).unwrap();
    std::os::unix::fs::symlink("/", out.join("data")).unwrap();
    let wat = write(&dir, "m.wat", HELLO);
    let policy = write(&dir, "p.yaml", "version: 1\nstdin: out/result.txt\n");
    let o = run(bin().arg("-p").arg(&policy).arg(&wat));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("result.txt") && err.contains("symbolic link"), "{err}");
    assert!(!stdout(&o).contains("secret"));

    let o = run(bin().arg("--dir").arg(format!("{}::/data", out.join("data").display())).arg(&wat));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("data") && err.contains("symbolic link"), "{err}");
}

#[test]
fn a_fifo_named_as_stdin_is_refused_without_blocking() {
    let dir = temp_dir("stdin-fifo");
    let fifo = dir.join("in");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o666) }, 0);
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    let wat = write(&dir, "m.wat", HELLO);
    let policy = write(&dir, "p.yaml", "version: 1\nstdin: in\nlimits:\n  wall_time: 2s\n");
    let started = Instant::now();
    let o = run(bin().arg("-p").arg(&policy).arg(&wat));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn kernel_filesystems_cannot_be_mounted_however_named_and_the_root_only_read_only() {
    let dir = temp_dir("kernel-fs");
    let wat = write(&dir, "m.wat", HELLO);
    std::os::unix::fs::symlink("/proc", dir.join("p")).unwrap();
    std::os::unix::fs::symlink("/sys/kernel", dir.join("s")).unwrap();
    let proc_below = format!("{}/p/1", dir.display());
    let sys_below = format!("{}/s/..", dir.display());
    for host in ["/proc", "/sys", "/dev", "/dev/shm", "/proc/self/../1", proc_below.as_str(), sys_below.as_str()] {
        let o = run(bin().arg("--dir").arg(format!("{host}::/h")).arg(&wat));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{host}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("cannot be mounted") || err.contains("symbolic link"), "{host}: {err}");
    }
    std::os::unix::fs::symlink("/", dir.join("up")).unwrap();
    for root in ["/".to_string(), format!("{}/up/..", dir.display())] {
        let o = run(bin().arg("--dir").arg(format!("{root}::/h:rw")).arg(&wat));
        assert_eq!(o.status.code(), Some(125), "{root}: {}", stderr(&o));
        assert!(stderr(&o).contains("read-only"), "{}", stderr(&o));
    }
    let o = run(bin().arg("--dir").arg("/::/h").arg(&wat));
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
}

/// The run's process is reaped before sandboxrun ends: none is left for whoever adopts
/// orphans (here a subreaper shell, as a PID 1 that does not reap would be), and `wait4` of
/// sandboxrun counts the run's CPU time.
#[test]
fn no_run_outlives_sandboxrun_and_its_cpu_time_is_sandboxruns() {
    let dir = temp_dir("reap");
    let wat = write(&dir, "m.wat", HELLO);
    let script = format!(
        "for i in 1 2 3 4 5; do {} {} >/dev/null; done; sleep 0.3; read -r kids < /proc/$$/task/$$/children; echo \"$kids\"",
        env!("CARGO_BIN_EXE_sandboxrun"),
        wat.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]).env("SANDBOXRUN_CACHE", dir.join("cache.sqlite"));
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "", "processes left to the subreaper: {}", stdout(&o));

    // CPU time: a run spinning for half a second of CPU.
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  cpu_time: 500ms\n");
    let child = bin()
        .arg("-p")
        .arg(&policy)
        .args(["--invoke", "spin"])
        .arg(&wat)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    // SAFETY: all-zero is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    // SAFETY: waiting for our own child, with valid out-pointers.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    assert_eq!(libc::WEXITSTATUS(status), 124);
    let cpu = Duration::from_micros((usage.ru_utime.tv_sec * 1_000_000 + usage.ru_utime.tv_usec) as u64);
    assert!(cpu >= Duration::from_millis(400), "wait4 saw {cpu:?} of user CPU");
    std::mem::forget(child);
}

/// Another process holding the code cache's lock (a `cache gc`, a store) delays a run's
/// lookup by a bounded time, and never counts against its wall-clock limit.
#[test]
fn a_locked_cache_costs_the_run_neither_its_verdict_nor_more_than_a_moment() {
    let dir = temp_dir("cache-lock");
    let wat = write(&dir, "m.wat", HELLO);
    let cache = dir.join("cache.sqlite");
    // Create the cache with a first run.
    let o = run(bin().env("SANDBOXRUN_CACHE", &cache).arg(&wat));
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    let db = rusqlite::Connection::open(&cache).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  wall_time: 300ms\n");
    let started = Instant::now();
    let o = run(bin().env("SANDBOXRUN_CACHE", &cache).arg("-p").arg(&policy).arg(&wat));
    let took = started.elapsed();
    db.execute_batch("ROLLBACK").unwrap();
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    assert!(stderr(&o).contains("without the code cache"), "{}", stderr(&o));
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

/// `limits.wasm_stack` is honoured whatever stack sandboxrun was started with: deep
/// recursion is a stack-exhaustion trap, never a SIGSEGV; a stack that cannot be had is one
/// line before anything runs.
#[test]
fn deep_recursion_traps_under_a_small_inherited_stack() {
    let dir = temp_dir("stack");
    let wat = write(&dir, "m.wat", HELLO);
    let with_stack = |soft: u64, hard: u64| {
        let mut cmd = bin();
        cmd.args(["--invoke", "recurse"]).arg(&wat);
        // SAFETY: setrlimit is async-signal-safe and reads only the struct passed.
        unsafe {
            cmd.pre_exec(move || {
                let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                if libc::setrlimit(libc::RLIMIT_STACK, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        run(&mut cmd)
    };
    // `ulimit -S -s 1024`: the run raises its own soft limit.
    let o = with_stack(1 << 20, libc::RLIM_INFINITY);
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(stderr(&o).contains("call stack exhausted"), "{}", stderr(&o));
    // `ulimit -s 1024` (hard too): refused in one line.
    let o = with_stack(1 << 20, 1 << 20);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("wasm_stack") && err.contains("ulimit -s"), "{err}");
    // More than a run may have.
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  wasm_stack: 200MiB\n");
    let o = run(bin().arg("-p").arg(&policy).arg(&wat));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("wasm_stack"), "{}", stderr(&o));
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
}

/// The same refusals, and a working rw mount, for a caller that is not root (uid 65534
/// through `setpriv` when the suite runs as root): its supervisor clones mounts in a user and
/// mount namespace of its own.
#[test]
fn host_files_as_an_unprivileged_user() {
    let dir = temp_dir("host-unprivileged");
    let out = output_folder(&dir);
    let wat = write(&dir, "m.wat", HELLO);
    let victim = write(&dir, "victim", "precious\n");
    std::os::unix::fs::symlink(&victim, out.join("report.json")).unwrap();
    std::os::unix::fs::symlink("/", out.join("data")).unwrap();
    std::fs::create_dir(out.join("real")).unwrap();
    for p in [&dir, &out, &out.join("real")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    for p in [&wat, &victim] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let unprivileged = |args: &[String]| {
        let mut cmd = if is_root() {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(env!("CARGO_BIN_EXE_sandboxrun"));
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_sandboxrun"))
        };
        run(cmd.arg("--no-cache").args(args))
    };
    let w = wat.display().to_string();
    let o = unprivileged(&["--report".into(), out.join("report.json").display().to_string(), w.clone()]);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let o = unprivileged(&["--dir".into(), format!("{}::/d", out.join("data").display()), w.clone()]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));
    let o = unprivileged(&["--dir".into(), "/proc::/p".into(), w.clone()]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be mounted"), "{}", stderr(&o));
    let o = unprivileged(&["--dir".into(), format!("{}::/d:rw", out.join("real").display()), w]);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
}

/// A guest that tries to leave its rw mount (`/out`, descriptor 3) through symlinks an
/// earlier stage left there (`x -> ..`, `abs -> <outside>`) and `..`: sets a host file's
/// times (following the final symlink), opens it and prints it. Exits with a bit per success.
const ESCAPE: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_filestat_set_times"
    (func $set_times (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "x/outside/secret")
  (data (i32.const 200) "abs/secret")
  (data (i32.const 300) "../outside/secret")
  (data (i32.const 400) "x/x/x/x/x/outside/secret")
  (global $reached (mut i32) (i32.const 0))
  ;; Sets the times of (ptr, len) following symlinks, then opens it and prints what it reads.
  (func $try (param $ptr i32) (param $len i32) (param $bit i32)
    (if (i32.eqz (call $set_times (i32.const 3) (i32.const 1) (local.get $ptr) (local.get $len)
                   (i64.const 1000000000) (i64.const 1000000000) (i32.const 5)))
      (then (global.set $reached (i32.or (global.get $reached) (local.get $bit)))))
    (if (i32.eqz (call $open (i32.const 3) (i32.const 1) (local.get $ptr) (local.get $len) (i32.const 0)
                   (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 8)))
      (then
        (global.set $reached (i32.or (global.get $reached) (i32.shl (local.get $bit) (i32.const 8))))
        (i32.store (i32.const 16) (i32.const 1024))
        (i32.store (i32.const 20) (i32.const 256))
        (drop (call $read (i32.load (i32.const 8)) (i32.const 16) (i32.const 1) (i32.const 24)))
        (i32.store (i32.const 20) (i32.load (i32.const 24)))
        (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))))
  (func (export "_start")
    (call $try (i32.const 100) (i32.const 16) (i32.const 1))
    (call $try (i32.const 200) (i32.const 10) (i32.const 2))
    (call $try (i32.const 300) (i32.const 17) (i32.const 4))
    (call $try (i32.const 400) (i32.const 24) (i32.const 8))
    (call $exit (global.get $reached))))
"#;

/// A guest that tries to leave its rw mount through symlinks an earlier stage left there
/// (`x -> ..`, an absolute one) and `..`: setting a host file's times (following the final
/// symlink), opening it to print it. Every attempt fails and the file is untouched — with
/// WASI's beneath-resolution on, and with it turned off (the debug build's test seam): the
/// kernel's wall alone holds.
#[test]
fn a_guest_cannot_reach_past_its_mount_even_without_wasis_own_checks() {
    let (dir, secret, wat) = escape_layout("escape");
    let out = dir.join("out");
    let before = std::fs::metadata(&secret).unwrap().modified().unwrap();
    for unchecked in [false, true] {
        let mut cmd = bin();
        if unchecked {
            cmd.env("SANDBOXRUN_TEST_UNCHECKED_PATHS", "1");
        }
        let o = run(cmd.arg("--dir").arg(format!("{}::/out:rw", out.display())).arg(&wat));
        assert_eq!(o.status.code(), Some(0), "unchecked {unchecked}: reached {:?}; {}", o.status.code(), stderr(&o));
        assert!(!stdout(&o).contains("secret"), "{}", stdout(&o));
        assert_eq!(std::fs::metadata(&secret).unwrap().modified().unwrap(), before, "unchecked {unchecked}");
    }
}

/// As root, an rw mount whose directory belongs to another uid than the run's works without a
/// chown: the mount is idmapped, the run acts as the owner, and what it creates belongs to
/// the owner on the host; files of other owners inside stay out of its reach.
#[test]
fn a_root_callers_rw_mount_of_another_owner_is_idmapped_to_the_run() {
    // Only root may idmap (an unprivileged run's mounts are its own user's): this test needs
    // root, as CI has.
    assert!(is_root(), "this test needs root (CI runs as root)");
    const CREATE: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "made")
  (data (i32.const 200) "theirs")
  (func (export "_start")
    ;; Create `made` (must work), then open `theirs` (root's, 0644) for writing (must fail).
    (if (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 4) (i32.const 1)
                    (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 8))
      (then (call $exit (i32.const 10))))
    (if (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 200) (i32.const 6) (i32.const 0)
                    (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 8)))
      (then (call $exit (i32.const 11))))
    (call $exit (i32.const 0))))
"#;
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("idmap");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    write(&out, "theirs", "root's\n");
    std::os::unix::fs::chown(&out, Some(1234), Some(2345)).unwrap();
    let wat = write(&dir, "create.wat", CREATE);
    let o = run(bin().arg("--dir").arg(format!("{}::/out:rw", out.display())).arg(&wat));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let made = std::fs::metadata(out.join("made")).unwrap();
    assert_eq!((made.uid(), made.gid()), (1234, 2345));
    assert_eq!(std::fs::read_to_string(out.join("theirs")).unwrap(), "root's\n");
}

/// `dir/outside/secret` (owned by the run's identity: its times would be the run's to set,
/// were it reachable), `dir/out` (rw for the run) with `x -> ..` and `abs -> dir/outside`, and
/// [`ESCAPE`] as `dir/escape.wat`; everything usable by uid 65534.
fn escape_layout(name: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = write(&outside, "secret", "the host's secret\n");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o666)).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&secret, Some(65534), Some(65534)).unwrap();
    }
    let out = dir.join("out");
    rw_dir(&out);
    std::os::unix::fs::symlink("..", out.join("x")).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("abs")).unwrap();
    let wat = write(&dir, "escape.wat", ESCAPE);
    std::fs::set_permissions(&wat, std::fs::Permissions::from_mode(0o644)).unwrap();
    (dir, secret, wat)
}

/// The same guest through a server, root's and an unprivileged one's (uid 65534), with WASI's
/// beneath-resolution off in the server's runs: the prepared children's mounts are detached
/// mounts too, made by the slot.
#[test]
fn the_kernels_wall_holds_through_a_server_root_and_unprivileged() {
    let (dir, secret, _) = escape_layout("escape-server");
    let before = std::fs::metadata(&secret).unwrap().modified().unwrap();
    for unprivileged in [false, true] {
        let as_user = |bin: &str| {
            let mut cmd = if unprivileged && is_root() {
                let mut c = std::process::Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(bin);
                c
            } else {
                std::process::Command::new(bin)
            };
            cmd.env("SANDBOXRUN_TEST_UNCHECKED_PATHS", "1").current_dir(&dir);
            cmd
        };
        let socket = dir.join(format!("s{}.sock", u8::from(unprivileged)));
        let serve = as_user(env!("CARGO_BIN_EXE_sandboxrun"));
        let server = Server::launch(serve, socket.clone());
        let o = run(as_user(env!("CARGO_BIN_EXE_sandboxrun-client")).arg(&socket).args([
            "--no-cache",
            "--dir",
            "out::/out:rw",
            "escape.wat",
        ]));
        assert_eq!(o.status.code(), Some(0), "unprivileged {unprivileged}: {}", stderr(&o));
        assert!(!stdout(&o).contains("secret"));
        assert_eq!(std::fs::metadata(&secret).unwrap().modified().unwrap(), before, "unprivileged {unprivileged}");
        drop(server);
    }
}

/// `sandboxrun policy check` opens the policy's host files as a run would (the policy crate
/// itself touches no host path): each refusal is one line, exit 125.
#[test]
fn policy_check_opens_the_host_files_as_a_run_would() {
    let dir = temp_dir("policy-check");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    write(&dir, "afile", "x");
    std::os::unix::fs::symlink("/proc", dir.join("p")).unwrap();
    for (policy, expected) in [
        ("mounts:\n  - {host: nope, guest: /d}\n", "nope': does not exist"),
        ("mounts:\n  - {host: afile, guest: /d}\n", "afile': is not a directory"),
        ("mounts:\n  - {host: p, guest: /d}\n", "p': is a symbolic link"),
        ("stdin: missing.txt\n", "missing.txt': does not exist"),
        ("stdin: data\n", "data': is not a regular file"),
    ] {
        let file = write(&dir, "p.yaml", &format!("version: 1\n{policy}"));
        let o = run(bin().args(["policy", "check"]).arg(&file));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{policy}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{policy}: {err}");
    }
    let file = write(&dir, "p.yaml", "version: 1\nmounts:\n  - {host: data, guest: /d}\n");
    let o = run(bin().args(["policy", "check"]).arg(&file));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
