//! A `sandboxrun serve` of this process's own, for one grading: its slots keep children
//! prepared, so a test costs what a run through a server costs. Killed when dropped.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server on a socket of its own.
pub struct LocalServer {
    child: Child,
    socket: PathBuf,
}

/// How long a server may take to answer on its socket.
const START_PATIENCE: Duration = Duration::from_secs(10);

impl LocalServer {
    /// Starts this binary as `sandboxrun serve --socket DIR/server.sock --pool POOL`, and
    /// waits until it answers. The server is killed when the thread that started it ends (its process
    /// dies, even by `kill -9`): a parent-death signal. Start it from a long-lived thread.
    ///
    /// # Errors
    /// The binary could not be started, or its server did not answer in time.
    pub fn start(dir: &Path, pool: usize) -> std::io::Result<LocalServer> {
        LocalServer::start_as(dir, "server", pool, None)
    }

    /// [`LocalServer::start`] on `dir/NAME.sock`, its prepared children taking `run_as` (a
    /// root caller's; see `sandboxrun serve --run-as`).
    ///
    /// # Errors
    /// As [`LocalServer::start`].
    pub fn start_as(
        dir: &Path,
        name: &str,
        pool: usize,
        run_as: Option<policy::RunAs>,
    ) -> std::io::Result<LocalServer> {
        let socket = dir.join(format!("{name}.sock"));
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(std::env::current_exe()?);
        // SAFETY: the closure runs in the forked child before exec and makes one
        // async-signal-safe call (prctl); it touches no memory of the parent's.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        if let Some(id) = run_as {
            command.args(["serve", "--run-as", &format!("{}:{}", id.uid, id.gid)]);
        } else {
            command.arg("serve");
        }
        let child = command
            .args(["--pool", &pool.clamp(1, 256).to_string(), "--socket"])
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = LocalServer { child, socket };
        let started = Instant::now();
        while UnixDatagram::unbound().and_then(|probe| probe.connect(&server.socket)).is_err() {
            if started.elapsed() > START_PATIENCE {
                return Err(std::io::Error::other("the grading server did not start"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(server)
    }

    /// Its socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
