//! Starting a run: step 1 (namespaces and identity) from the parent's side, the cgroup
//! placement of step 6, and decoding how the child ended.
//!
//! [`spawn()`] calls `clone(2)` with `CLONE_NEWUSER` and the other namespace flags, so the child
//! is pid 1 of its own pid namespace. The child waits while the parent writes its uid and gid
//! maps and moves it into the run's cgroup; then it takes its identity, arms the seccomp
//! reporter, asks to be killed if the parent dies, says it is ready, and runs the given
//! function (which opens what the run needs and calls [`crate::confine`]).

use crate::cgroup::{Cgroup, CgroupError};
use crate::config::Confinement;
use crate::handshake::{self, HandshakeError};
use crate::namespaces::{self, NamespaceError, Spawned};
use crate::seccomp::{Violation, ViolationSlot};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use protocol::handshake::{ToChild, ToParent};
use std::io;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Exit status of a child whose function panicked (it never unwinds into the parent's code).
pub const PANIC_EXIT: i32 = 101;

/// Exit status of a child whose setup failed (the parent reports the child's message).
pub const SETUP_FAILED: i32 = 125;

/// How long the parent waits for each handshake message.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The shared page for the seccomp reporter could not be mapped.
    #[error("spawn: failed to map the violation page: mmap: {0}")]
    Slot(io::Error),
    /// The handshake socket pair could not be created.
    #[error("spawn: socketpair: {0}")]
    Socket(io::Error),
    /// Namespaces or id maps.
    #[error(transparent)]
    Namespaces(#[from] NamespaceError),
    /// Moving the child into its cgroup.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The handshake.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The child's setup failed, with its message.
    #[error("spawn: {0}")]
    Child(String),
}

/// A started child.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    slot: ViolationSlot,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// It exited with this status.
    Exited(i32),
    /// A signal other than SIGSYS killed it.
    Signaled(i32),
    /// SIGSYS killed it: a denied system call, named when the reporter recorded it.
    Seccomp(Option<Violation>),
}

impl Child {
    /// The child's pid (in the parent's pid namespace).
    pub fn pid(&self) -> libc::pid_t {
        self.pid.as_raw()
    }

    /// The denied system call the child's reporter recorded, if any (read after reaping it).
    pub fn violation(&self) -> Option<Violation> {
        self.slot.read()
    }

    /// Decodes a raw wait status of this child (for supervisors that reap it themselves).
    pub fn termination(&self, status: libc::c_int) -> Termination {
        if libc::WIFSIGNALED(status) {
            match libc::WTERMSIG(status) {
                libc::SIGSYS => Termination::Seccomp(self.violation()),
                signal => Termination::Signaled(signal),
            }
        } else {
            Termination::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// Waits for the child to end and says how.
    ///
    /// # Errors
    /// The `waitpid(2)` error (ECHILD if it was already reaped).
    pub fn wait(&self) -> io::Result<Termination> {
        loop {
            match nix::sys::wait::waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Termination::Exited(code)),
                Ok(WaitStatus::Signaled(_, Signal::SIGSYS, _)) => return Ok(Termination::Seccomp(self.violation())),
                Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(Termination::Signaled(signal as i32)),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(crate::sys::io(e)),
            }
        }
    }
}

/// Starts `child` in a new process in new namespaces (see the module documentation), moved
/// into `cgroup` if given, and returns once it is set up. The child exits with `child`'s value
/// ([`PANIC_EXIT`] if it panics); it is killed if the calling thread exits first.
///
/// # Errors
/// [`SpawnError`] naming the failed step; the child, if any, is killed and reaped.
///
/// # Safety
/// As for `fork`: the calling process must be single-threaded (no other thread may hold a lock
/// the child takes — the allocator's); glibc's `atfork` handlers do not run.
pub unsafe fn spawn<F: FnOnce() -> i32>(
    c: &Confinement,
    cgroup: Option<&Cgroup>,
    child: F,
) -> Result<Child, SpawnError> {
    let identity = namespaces::identity(&c.run_as)?;
    let slot = ViolationSlot::new().map_err(SpawnError::Slot)?;
    let (mut parent_end, mut child_end) = UnixStream::pair().map_err(SpawnError::Socket)?;
    // SAFETY: the caller guarantees a single-threaded process.
    let pid = unsafe { crate::sys::clone_fork(c.namespaces.clone_flags()) }
        .map_err(|source| NamespaceError::Clone { flags: namespaces::describe_flags(&c.namespaces), source })?;
    if pid == 0 {
        drop(parent_end);
        let spawned = Spawned { namespaces: c.namespaces, identity, cgroup: false };
        let code = match child_setup(&mut child_end, spawned, &slot) {
            Ok(()) => {
                drop(child_end);
                // A panic must never unwind out of here: the child would run its parent's code.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(PANIC_EXIT)
            }
            Err(message) => {
                let _ = handshake::send(&mut child_end, &ToParent::failed(message));
                SETUP_FAILED
            }
        };
        // SAFETY: leaves without running the parent's atexit handlers or destructors (the
        // slot's page stays mapped to the end).
        unsafe { libc::_exit(code) }
    }
    drop(child_end);
    let child_handle = Child { pid: Pid::from_raw(pid), slot };
    match parent_setup(&mut parent_end, pid, &identity, cgroup) {
        Ok(()) => Ok(child_handle),
        Err(e) => {
            let _ = nix::sys::signal::kill(child_handle.pid, Signal::SIGKILL);
            let _ = child_handle.wait();
            Err(e)
        }
    }
}

/// The parent's half: id maps, cgroup, go, wait for ready.
fn parent_setup(
    stream: &mut UnixStream,
    pid: libc::pid_t,
    identity: &namespaces::Identity,
    cgroup: Option<&Cgroup>,
) -> Result<(), SpawnError> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(SpawnError::Socket)?;
    namespaces::write_id_maps(pid, identity)?;
    // Before the child runs anything of its own: it is charged from its first allocation.
    if let Some(cgroup) = cgroup {
        cgroup.add(pid)?;
    }
    handshake::send(stream, &ToChild::Proceed { cgroup: cgroup.is_some() })?;
    match handshake::recv_to_parent(stream)? {
        ToParent::Ready => Ok(()),
        ToParent::Failed(message) => Err(SpawnError::Child(message)),
    }
}

/// The child's half; errors are the one-line message sent to the parent.
fn child_setup(stream: &mut UnixStream, mut spawned: Spawned, slot: &ViolationSlot) -> Result<(), String> {
    let ToChild::Proceed { cgroup } = handshake::recv_to_child(stream).map_err(|e| e.to_string())?;
    spawned.cgroup = cgroup;
    namespaces::become_identity(&spawned.identity).map_err(|e| e.to_string())?;
    // After the identity change, which clears the parent-death signal. Should the parent
    // already be gone, sending Ready below fails and the child exits.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("prctl(PR_SET_PDEATHSIG): {e}"))?;
    slot.arm();
    namespaces::record(spawned);
    handshake::send(stream, &ToParent::Ready).map_err(|e| e.to_string())
}

/// Forks a plain child (no namespaces, no identity change, no confinement) that runs `child`
/// and exits with its value ([`PANIC_EXIT`] if it panics), killed if the calling thread exits
/// first (or not started at all, if it already has). For supervisors' own processes, tests
/// and unconfined runs.
///
/// # Errors
/// The `fork` error.
///
/// # Safety
/// As for [`spawn()`].
pub unsafe fn fork<F: FnOnce() -> i32>(child: F) -> io::Result<libc::pid_t> {
    let parent = nix::unistd::getpid();
    // SAFETY: the caller guarantees a single-threaded process.
    let pid = unsafe { crate::sys::clone_fork(0) }?;
    if pid == 0 {
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        // A parent gone before that call would never send the signal: the child has been
        // handed to another reaper already.
        if nix::unistd::getppid() != parent {
            // SAFETY: leaves without running the parent's atexit handlers or destructors.
            unsafe { libc::_exit(PANIC_EXIT) }
        }
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(PANIC_EXIT);
        // SAFETY: leaves without running the parent's atexit handlers or destructors.
        unsafe { libc::_exit(code) }
    }
    Ok(pid)
}
