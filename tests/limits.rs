//! Limit verdicts through the binary: time (wall and CPU), output, memory (linear and native),
//! descriptors, and rw mounts the run's identity cannot write.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn an_infinite_loop_ends_at_the_wall_time_limit() {
    let dir = temp_dir("wall");
    let wat = write(&dir, "m.wat", HELLO);
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  wall_time: 1s\n  cpu_time: 10s\n");
    let report = dir.join("r.json");
    let started = Instant::now();
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report).args(["--invoke", "spin"]).arg(&wat));
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
    // Within the limit + 10%, start-up included.
    assert!(took < Duration::from_millis(1100), "took {took:?}");
    let json = report_json(&report);
    assert_eq!((json["status"].as_str(), json["reason"].as_str()), (Some("time_limit"), Some("wall_time")));
    assert!(stderr(&o).contains("wall time limit of 1s"), "{}", stderr(&o));
}

#[test]
fn the_cpu_time_limit_stops_the_run_at_the_limit() {
    let dir = temp_dir("cpu");
    let wat = write(&dir, "m.wat", HELLO);
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  cpu_time: 1s\n  wall_time: 20s\n");
    let report = dir.join("r.json");
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report).args(["--invoke", "spin"]).arg(&wat));
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
    assert!(stderr(&o).contains("cpu time limit of 1s"), "{}", stderr(&o));
    let json = report_json(&report);
    assert_eq!(json["reason"].as_str(), Some("cpu_time"));
    // Stopped by the supervisor, not by RLIMIT_CPU's SIGKILL a second or two later.
    let cpu = json["cpu_time_ms"].as_u64().unwrap();
    assert!((1000..1100).contains(&cpu), "cpu_time_ms {cpu}");
}

#[test]
fn output_from_stdin_stops_at_the_limit() {
    let dir = temp_dir("output");
    write(&dir, "in.txt", &"x".repeat(10_000));
    let policy = write(&dir, "p.yaml", "version: 1\nstdin: in.txt\nlimits:\n  output: 1KiB\n");
    let report = dir.join("r.json");
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report).arg(fixture("echo.wasm")));
    assert_eq!(o.status.code(), Some(153), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), 1024);
    let json = report_json(&report);
    assert_eq!((json["status"].as_str(), json["stdout_bytes"].as_u64()), (Some("output_limit"), Some(1024)));
}

/// 1 GiB in 64 KiB writes against the default 16 MiB limit: the capture is cut exactly there.
#[test]
fn a_gibibyte_of_output_is_cut_at_the_limit() {
    let dir = temp_dir("gib");
    let wat = write(
        &dir,
        "m.wat",
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory 2)
          (func (export "_start") (local $i i32)
            (i32.store (i32.const 0) (i32.const 1024))
            (i32.store (i32.const 4) (i32.const 65536))
            (loop $l
              (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const 16384))))))"#,
    );
    let report = dir.join("r.json");
    let o = run(bin().arg("--report").arg(&report).arg(&wat));
    assert_eq!(o.status.code(), Some(153), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), 16 << 20);
    assert_eq!(report_json(&report)["reason"].as_str(), Some("output"));
}

/// `memory.grow` past the policy's limit returns -1 and the run goes on; this module then
/// traps, and the verdict is the trap.
#[test]
fn memory_grow_past_the_limit_fails_and_the_trap_is_reported() {
    let dir = temp_dir("grow");
    let wat = write(
        &dir,
        "m.wat",
        r#"(module
          (memory 1)
          (func (export "_start")
            (if (i32.ne (memory.grow (i32.const 10)) (i32.const 1)) (then unreachable))
            (if (i32.ne (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))
            ;; 11 pages now: the last word is writable, the next byte traps.
            (i32.store (i32.const 0xafffc) (i32.const 1))
            (i32.store (i32.const 0xb0000) (i32.const 1))))"#,
    );
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  memory: 16MiB\n");
    let report = dir.join("r.json");
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report).arg(&wat));
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert!(stderr(&o).contains("out of bounds memory access"), "{}", stderr(&o));
    assert_eq!(report_json(&report)["status"].as_str(), Some("trapped"));
}

/// Tables live in the process's own memory: growing eight of them to ten million elements
/// (640 MB) passes the data limit (1 MiB + the runtime's 384 MiB allowance), and the verdict is
/// the memory limit.
#[test]
fn native_allocation_past_the_cap_is_the_memory_limit() {
    let dir = temp_dir("native");
    let tables: String = (0..8).map(|i| format!("(table $t{i} 0 funcref)")).collect();
    let grows: String =
        (0..8).map(|i| format!("(drop (table.grow $t{i} (ref.null func) (i32.const 10000000)))")).collect();
    let wat = write(&dir, "m.wat", &format!("(module {tables} (func (export \"_start\") {grows}))"));
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  memory: 1MiB\n");
    let report = dir.join("r.json");
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report).arg(&wat));
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    assert!(stderr(&o).contains("memory limit of 1MiB"), "{}", stderr(&o));
    let json = report_json(&report);
    assert_eq!((json["status"].as_str(), json["reason"].as_str()), (Some("memory_limit"), Some("native_memory")));
}

/// 10,000 opens with `open_files: 16`: the first 12 succeed (stdio and the mount hold 4),
/// every other one is EMFILE, and the run goes on to exit with the count.
#[test]
fn ten_thousand_opens_meet_emfile_and_the_run_continues() {
    let dir = temp_dir("emfile");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    write(&dir.join("data"), "f", "x");
    let wat = write(
        &dir,
        "m.wat",
        r#"(module
          (import "wasi_snapshot_preview1" "path_open"
            (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
          (memory 1)
          (data (i32.const 100) "f")
          (func (export "_start") (local $i i32) (local $ok i32) (local $e i32)
            (loop $l
              (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 0)
                (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 200)))
              (if (i32.eqz (local.get $e)) (then (local.set $ok (i32.add (local.get $ok) (i32.const 1))))
                (else (if (i32.ne (local.get $e) (i32.const 33)) (then (call $exit (i32.const 255))))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
            (call $exit (local.get $ok))))"#,
    );
    let policy =
        write(&dir, "p.yaml", "version: 1\nmounts:\n  - {host: data, guest: /data}\nlimits:\n  open_files: 16\n");
    let o = run(bin().arg("-p").arg(&policy).arg(&wat));
    assert_eq!(o.status.code(), Some(12), "{}", stderr(&o));
}

/// An rw mount the run's identity cannot write is refused before the guest runs, with the
/// fix in the message. (As root, a directory of another owner is idmapped to the run, which
/// then has the owner's rights: mode 0555 denies even the owner.)
#[test]
fn an_unwritable_rw_mount_is_one_clear_error() {
    let dir = temp_dir("unwritable");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(bin().arg("--dir").arg(format!("{}::/out:rw", out.display())).arg(&wat));
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("mount /out:") && err.contains("is not writable by uid"), "{err}");
    if is_root() {
        assert!(err.contains("run_as"), "{err}");
    }
}

/// An ro mount the run's identity cannot read is refused the same way: root opens the
/// directory with the run's identity (the child checks again that it may use it). (A directory mode
/// 0300 is unreadable even by its owner, as the unprivileged suite is.)
#[test]
fn an_unreadable_ro_mount_is_one_clear_error() {
    let dir = temp_dir("unreadable");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mode = if is_root() { 0o700 } else { 0o300 };
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    let wat = write(&dir, "m.wat", HELLO);
    let o = run(bin().arg("--dir").arg(format!("{}::/data", data.display())).arg(&wat));
    let err = stderr(&o);
    if is_root() {
        // Root opens it as the run, uid 65534, which may not read it.
        assert_eq!(o.status.code(), Some(125), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("data'") && err.contains("is not readable by uid 65534"), "{err}");
        assert!(err.contains("run_as"), "{err}");
    } else {
        // Not even sandboxrun can open it: the same one-line refusal, from the opening.
        assert_eq!(o.status.code(), Some(125), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("/data"), "{err}");
    }
}

/// A `memory.grow` refused at the policy's memory limit is in the report (graders call a run
/// that then fails a memory limit); a grow past the module's own maximum is not.
#[test]
fn a_grow_refused_at_the_memory_limit_is_reported() {
    let dir = temp_dir("grow-refused");
    let grow = |max: &str| {
        format!(
            r#"(module (memory {max}) (func (export "_start")
                 (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))))"#
        )
    };
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  memory: 2MiB\n");
    let report = dir.join("r.json");
    let wat = write(&dir, "limit.wat", &grow("1"));
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report).arg(&wat));
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert_eq!(report_json(&report)["memory_grow_refused"], true);
    let wat = write(&dir, "declared.wat", &grow("1 2"));
    let o = run(bin().arg("-p").arg(&policy).arg("--report").arg(&report).arg(&wat));
    assert_eq!(o.status.code(), Some(134), "{}", stderr(&o));
    assert_eq!(report_json(&report)["memory_grow_refused"], false);
}

/// A run killed at a limit — it never sends its final report — is still reported with its
/// confinement and the stages it got through (the child sends them before guest code runs,
/// so the guest cannot have shaped them), and the code it compiled on a miss is stored: the
/// next run is a hit.
#[test]
fn a_run_killed_at_a_limit_keeps_its_confinement_stages_and_compiled_code() {
    let dir = temp_dir("killed-report");
    let wat = write(&dir, "m.wat", r#"(module (func (export "spin") (loop $l (br $l))) (func (export "_start")))"#);
    let policy = write(&dir, "p.yaml", "version: 1\nlimits:\n  wall_time: 1s\n  cpu_time: 10s\n");
    let cache = dir.join("cache.sqlite");
    for (i, expected) in ["miss", "hit"].into_iter().enumerate() {
        let report = dir.join(format!("r{i}.json"));
        let o = run(bin()
            .env("SANDBOXRUN_CACHE", &cache)
            .arg("-p")
            .arg(&policy)
            .arg("--report")
            .arg(&report)
            .args(["--invoke", "spin"])
            .arg(&wat));
        assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
        let json = report_json(&report);
        assert_eq!((json["reason"].as_str(), json["cache"].as_str()), (Some("wall_time"), Some(expected)), "{json}");
        let confinement = &json["confinement"];
        assert!(confinement["namespaces"].as_array().is_some_and(|n| n.iter().any(|n| n == "user")), "{json}");
        assert_eq!(confinement["seccomp"], true, "{json}");
        assert!(json["stages"]["link"].as_f64().unwrap() > 0.0, "{json}");
        if expected == "miss" {
            assert!(json["compile_ms"].as_f64().unwrap() > 0.0, "{json}");
        }
    }
}
