//! Helpers shared by the end-to-end tests of the binary.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test, with a code cache of its own.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandboxrun"));
    // Never touch the user's own code cache.
    cmd.env("SANDBOXRUN_CACHE", cache_path());
    cmd
}

/// The code cache [`bin`]'s runs use: one per test process.
pub fn cache_path() -> PathBuf {
    std::env::temp_dir().join(format!("sandboxrun-test-{}-cache.sqlite", std::process::id()))
}

/// A committed fixture (`tests/fixtures`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandboxrun-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the suite runs as root (as CI does).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A directory for an rw mount: owned by the run's identity when the suite runs as root
/// (runs started by root take uid/gid 65534 and need their rw mounts writable by it).
pub fn rw_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    if is_root() {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    }
}

/// Writes a file and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs with no stdin and captures the output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("sandboxrun runs")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Prints "hello, world" and exits 42; also exports `add`, `div`, `spin` and `recurse`.
pub const HELLO: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, world\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 42)))
  (func (export "add") (param i32 i64) (result i64) (i64.add (i64.extend_i32_s (local.get 0)) (local.get 1)))
  (func $div (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))
  (func (export "spin") (loop $l (br $l)))
  (func $rec (export "recurse") (result i32) (i32.add (i32.const 1) (call $rec)))
)"#;

/// The `--report` file as JSON.
pub fn report_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A server for one test, killed when dropped.
pub struct Server {
    /// The server process.
    pub child: std::process::Child,
    /// Its socket.
    pub socket: PathBuf,
}

impl Server {
    /// A server with the test's cache, on `dir/server.sock`.
    pub fn start(dir: &Path) -> Server {
        Server::launch(bin(), dir.join("server.sock"))
    }

    /// `sandboxrun` (as `command` starts it) serving on `socket`, once it answers.
    pub fn launch(mut command: Command, socket: PathBuf) -> Server {
        let child = command
            .args(["serve", "--pool", "2", "--socket"])
            .arg(&socket)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::os::unix::net::UnixDatagram::unbound().and_then(|probe| probe.connect(&socket)).is_err() {
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "the server did not start");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Server { child, socket }
    }

    /// `sandboxrun --server SOCKET` with the test's cache.
    pub fn client(&self) -> Command {
        let mut cmd = bin();
        cmd.arg("--server").arg(&self.socket);
        cmd
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `sandboxrun-client SOCKET`, with the test's cache (as [`bin`] sets it).
    pub fn client_binary(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandboxrun-client"));
        for (key, value) in bin().get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        cmd.arg(&self.socket);
        cmd
    }
}

/// A module whose `_start` prints `text` and a newline (WASI `fd_write`), as a binary.
pub fn printing_module(text: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
          (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
          (memory (export "memory") 1)
          (data (i32.const 16) "{text}\n")
          (func (export "_start")
            (i32.store (i32.const 0) (i32.const 16))
            (i32.store (i32.const 4) (i32.const {}))
            (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
        text.len() + 1
    );
    wat::parse_str(&wat).unwrap()
}
