//! What a plugin's policy gives it and nothing more, and a keeper that dies: a read-only mount
//! reads but refuses every mutation, `..` and absolute symlinks stop at the mount, a file
//! outside stays unread and untouched; a keeper killed by the host's neighbour is started again
//! and the host never notices more than one failed call.

mod common;

use common::Checks;
use sandboxrun_plugin::{CallError, Plugin};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `read`: stdin is a path in the mount (preopen 3); writes the file's first 256 bytes, or
/// the errno as one byte prefixed by `E`. `create`: creates stdin's path; writes `E` and the
/// errno (0 if it was created).
const FILES: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $stdin (result i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 512))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16)))
    (i32.load (i32.const 16)))
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 32) (local.get $ptr))
    (i32.store (i32.const 36) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40))))
  (func $errno (param $e i32)
    (i32.store8 (i32.const 60) (i32.const 69))
    (i32.store8 (i32.const 61) (local.get $e))
    (call $write (i32.const 60) (i32.const 2)))
  (func (export "read") (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 1) (i32.const 1024) (call $stdin) (i32.const 0)
      (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 20)))
    (if (local.get $e) (then (call $errno (local.get $e)) (return)))
    (i32.store (i32.const 0) (i32.const 2048))
    (i32.store (i32.const 4) (i32.const 256))
    (drop (call $fd_read (i32.load (i32.const 20)) (i32.const 0) (i32.const 1) (i32.const 16)))
    (call $write (i32.const 2048) (i32.load (i32.const 16))))
  (func (export "create")
    (call $errno (call $open (i32.const 3) (i32.const 0) (i32.const 1024) (call $stdin) (i32.const 1)
      (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 20)))))"#;

fn layout() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sandboxrun-plugin-isolation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "mounted text").unwrap();
    std::fs::write(dir.join("secret"), "host secret").unwrap();
    std::os::unix::fs::symlink(dir.join("secret"), data.join("abs")).unwrap();
    std::os::unix::fs::symlink("../secret", data.join("up")).unwrap();
    // Readable by the run's identity (65534 when the tests run as root).
    for d in [&dir, &data] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in [data.join("in.txt"), dir.join("secret")] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    (dir, data)
}

fn policy(data: &Path) -> policy::Policy {
    let yaml = format!("version: 1\nmounts:\n  - {{host: {}, guest: /data, mode: ro}}\n", data.display());
    policy::Policy::parse(&yaml, Path::new("/"), "test.yaml").expect("policy")
}

/// The pid of `pid`'s parent, from /proc.
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces: the fields after its closing parenthesis.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

fn main() {
    sandboxrun_plugin::run_if_child();
    let mut c = Checks::new();
    let (dir, data) = layout();
    let module = wat::parse_str(FILES).expect("valid WAT");
    let plugin = Plugin::builder(module.clone())
        .policy(policy(&data))
        .call_timeout(Duration::from_secs(5))
        .build()
        .expect("build");
    c.run("a read-only mount: its files read", || {
        assert_eq!(plugin.call("read", b"in.txt").unwrap(), b"mounted text");
    });
    c.run("a read-only mount refuses creation (EROFS or ENOTCAPABLE), nothing appears", || {
        let got = plugin.call("create", b"new.txt").unwrap();
        assert!(got == [b'E', 69] || got == [b'E', 76], "{got:?}");
        assert!(!data.join("new.txt").exists());
    });
    c.run("`..`, an absolute symlink and a relative one out of the mount: never the host file", || {
        for path in ["../secret", "abs", "up", "/secret"] {
            let got = plugin.call("read", path.as_bytes()).unwrap();
            assert_eq!(got.first(), Some(&b'E'), "{path}: read {:?}", String::from_utf8_lossy(&got));
        }
        assert_eq!(std::fs::read_to_string(dir.join("secret")).unwrap(), "host secret");
    });
    c.run("a keeper killed from outside: one failed call at most, then a new keeper", || {
        let p = Plugin::builder(module.clone()).policy(policy(&data)).build().unwrap();
        assert_eq!(p.call("read", b"in.txt").unwrap(), b"mounted text");
        let instance = p.stats().instances[0].pid.expect("a live instance");
        let keeper = parent_of(instance);
        assert_ne!(keeper, std::process::id() as i32, "the instance is the keeper's child");
        // SAFETY: kill(2) only sends a signal; no memory of this process is involved.
        assert_eq!(unsafe { libc::kill(keeper, libc::SIGKILL) }, 0);
        std::thread::sleep(Duration::from_millis(100));
        let first = p.call("read", b"in.txt");
        if let Err(e) = &first {
            assert!(!matches!(e, CallError::Trap { .. }), "{e:?}");
        }
        assert_eq!(p.call("read", b"in.txt").unwrap(), b"mounted text", "after {first:?}");
        println!("     the call after the kill: {first:?}");
        // The old instance died with its keeper.
        assert!(!Path::new(&format!("/proc/{instance}")).exists() || parent_of(instance) != keeper);
    });
    let _ = std::fs::remove_dir_all(&dir);
    c.finish();
}
