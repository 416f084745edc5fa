//! Issue #14 through the binary: a WAT guest makes the preview1 calls whose behaviour the
//! issue fixes and writes its errno table to stdout (`wasi/tests/conformance.rs` has the
//! full cases over guest memory; the Wasmtime behaviour they follow is read from its source).

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

/// Each check stores its errno at 1000 + 4*i; the table goes to wherever stdout was
/// renumbered to.
const GUEST: &str = r#"(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_set_rights" (func $rights (param i32 i64 i64) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_set_times" (func $times (param i32 i64 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "f")
  (data (i32.const 110) "log")
  (data (i32.const 120) "spare")
  (data (i32.const 130) "out.txt")
  (data (i32.const 140) "/etc/passwd")
  (data (i32.const 160) "abs")
  (data (i32.const 170) "stdout text")
  (data (i32.const 200) "file text")
  (func $r (param i32 i32) (i32.store (i32.add (i32.const 1000) (i32.mul (local.get 0) (i32.const 4))) (local.get 1)))
  (func $w (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 300) (local.get $ptr))
    (i32.store (i32.const 304) (local.get $len))
    (call $write (local.get $fd) (i32.const 300) (i32.const 1) (i32.const 308)))
  (func (export "_start")
    ;; O_CREAT|O_EXCL|O_TRUNC on an existing file: EEXIST, nothing truncated.
    (call $r (i32.const 0) (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 13)
      (i64.const 66) (i64.const 66) (i32.const 0) (i32.const 500)))
    ;; Open for reading, drop FD_READ, read: ENOTCAPABLE.
    (call $r (i32.const 1) (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 0)
      (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 504)))
    (call $r (i32.const 2) (call $rights (i32.load (i32.const 504)) (i64.const 0) (i64.const 0)))
    (call $r (i32.const 3) (call $read (i32.load (i32.const 504)) (i32.const 300) (i32.const 1) (i32.const 308)))
    ;; An absolute symlink target: EPERM.
    (call $r (i32.const 4) (call $symlink (i32.const 140) (i32.const 11) (i32.const 3) (i32.const 160) (i32.const 3)))
    ;; Stdin's times (a host file): EBADF, untouched.
    (call $r (i32.const 5) (call $times (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 8)))
    ;; Numbering: close 4, open log (4) and spare (5), close spare, move stdout onto log,
    ;; open out.txt: it gets 5 (the highest free), not stdout's old 1.
    (call $r (i32.const 6) (call $close (i32.load (i32.const 504))))
    (call $r (i32.const 7) (call $open (i32.const 3) (i32.const 0) (i32.const 110) (i32.const 3) (i32.const 1)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 512)))
    (call $r (i32.const 8) (call $open (i32.const 3) (i32.const 0) (i32.const 120) (i32.const 5) (i32.const 1)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 516)))
    (call $r (i32.const 9) (call $close (i32.load (i32.const 516))))
    (call $r (i32.const 10) (call $renumber (i32.const 1) (i32.load (i32.const 512))))
    (call $r (i32.const 11) (call $open (i32.const 3) (i32.const 0) (i32.const 130) (i32.const 7) (i32.const 1)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 520)))
    (drop (call $w (i32.load (i32.const 520)) (i32.const 200) (i32.const 9)))
    ;; Text for the old stdout number: EBADF now (it landed in out.txt before).
    (call $r (i32.const 12) (call $w (i32.const 1) (i32.const 170) (i32.const 11)))
    (call $r (i32.const 13) (i32.load (i32.const 520)))
    (drop (call $w (i32.load (i32.const 512)) (i32.const 1000) (i32.const 56)))))"#;

/// The guest's files in a fresh folder: `rw/f`, `in.txt` (stdin, with old times), the WAT.
fn setup(name: &str) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    let rw = dir.join("rw");
    rw_dir(&rw);
    write(&rw, "f", "keep me");
    let input = write(&dir, "in.txt", "stdin text");
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(&input).unwrap().set_modified(old).unwrap();
    let wat = write(&dir, "conformance.wat", GUEST);
    (dir, rw, input, wat)
}

/// The errno table the guest wrote.
fn table(stdout: &[u8]) -> Vec<u32> {
    stdout.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn preview1_conformance_through_the_binary() {
    let (dir, rw, input, wat) = setup("wasi-conformance");
    let policy = write(&dir, "p.yaml", "version: 1\nstdin: in.txt\n");
    let o = run(bin().arg("-p").arg(&policy).arg("--dir").arg(format!("{}::/rw:rw", rw.display())).arg(&wat));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = table(&o.stdout);
    // EEXIST, ok, ok, ENOTCAPABLE, EPERM, EBADF, five oks, ok, EBADF, fd 5.
    assert_eq!(table, vec![20, 0, 0, 76, 63, 8, 0, 0, 0, 0, 0, 0, 8, 5], "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(rw.join("f")).unwrap(), "keep me");
    assert_eq!(std::fs::read_to_string(rw.join("out.txt")).unwrap(), "file text");
    assert!(std::fs::symlink_metadata(rw.join("abs")).is_err());
    assert_eq!(std::fs::metadata(&input).unwrap().mtime(), 1_000_000_000, "stdin's file keeps its times");
}

/// The same guest under `wasmtime run` (`$WASMTIME`, else `wasmtime` on the PATH), where one
/// is found: the same table and the same files. Skipped with a printed reason where not
/// (tests/PRECONDITIONS.md).
#[test]
fn preview1_conformance_side_by_side_with_wasmtime() {
    let wasmtime = std::env::var_os("WASMTIME").unwrap_or_else(|| "wasmtime".into());
    let mut probe = std::process::Command::new(&wasmtime);
    let Ok(version) = probe.arg("--version").output() else {
        eprintln!("note: no wasmtime run comparison: {} not found (set WASMTIME)", wasmtime.to_string_lossy());
        return;
    };
    eprintln!("comparing with {}", String::from_utf8_lossy(&version.stdout).trim());
    let (ours_dir, ours_rw, _, ours_wat) = setup("wasi-side-by-side-ours");
    let policy = write(&ours_dir, "p.yaml", "version: 1\nstdin: in.txt\n");
    let ours =
        run(bin().arg("-p").arg(&policy).arg("--dir").arg(format!("{}::/rw:rw", ours_rw.display())).arg(&ours_wat));
    let (_, theirs_rw, theirs_input, theirs_wat) = setup("wasi-side-by-side-wasmtime");
    let theirs = run(std::process::Command::new(&wasmtime)
        .arg("run")
        .arg("--dir")
        .arg(format!("{}::/rw", theirs_rw.display()))
        .arg(&theirs_wat)
        .stdin(std::fs::File::open(&theirs_input).unwrap()));
    assert_eq!(theirs.status.code(), ours.status.code(), "wasmtime: {}", stderr(&theirs));
    assert_eq!(table(&ours.stdout), table(&theirs.stdout), "ours, then wasmtime's");
    for file in ["f", "out.txt", "log"] {
        assert_eq!(std::fs::read(ours_rw.join(file)).ok(), std::fs::read(theirs_rw.join(file)).ok(), "{file}");
    }
    assert_eq!(
        std::fs::symlink_metadata(ours_rw.join("abs")).is_ok(),
        std::fs::symlink_metadata(theirs_rw.join("abs")).is_ok()
    );
}
