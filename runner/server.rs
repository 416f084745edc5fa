//! `sandboxrun serve --socket PATH`: runs for clients (`sandboxrun --server PATH ...`) with the
//! namespaces, identity and empty root of each run's child made before the run is asked for.
//!
//! The server process stays single-threaded (it forks) and only accepts: it keeps a pool of
//! *slots*, each a process forked from it that has started and prepared a run's child
//! ([`PreparedChild`]) and waits. A client's connection goes to the oldest slot, and a new
//! slot is forked in its place. The slot then does what `sandboxrun` does — parses the
//! client's command line in the client's working directory and environment, with the client's
//! standard streams as its own — except that the child already exists; it sends the exit
//! status back and ends.
//!
//! Only clients of the server's own user (or root) are served: a run's files are opened by the
//! slot with the server's rights, on behalf of the client, so serving another user would lend
//! it those rights. The socket is created with mode 0600 for the same reason.

use crate::cli::RunCli;
use crate::fd_passing;
use crate::prepared::PreparedChild;
use crate::run::{OpenCache, Start};
use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// A client's request: its command line and environment; its working directory and
/// standard streams travel as descriptors, in that order.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The command line, `argv[0]` first.
    pub argv: Vec<Vec<u8>>,
    /// The environment, `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
}

/// Descriptors of a request: working directory, stdin, stdout, stderr.
pub const REQUEST_FDS: usize = 4;

/// Serves until killed.
///
/// # Errors
/// The socket cannot be created, or the first slot cannot be started.
pub fn serve(socket: &Path, pool: usize) -> Result<(), String> {
    let listener = listen(socket)?;
    let idle = idle_scheduling_works();
    // Slots end on their own: the kernel reaps them.
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code of ours.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut ready = VecDeque::new();
    while ready.len() < pool {
        ready.push_back(new_slot(idle).map_err(|e| format!("failed to start a slot: {e}"))?);
    }
    eprintln!("sandboxrun: serving on {} ({pool} prepared children)", socket.display());
    // Slots running a client's command. One is replaced when it ends, not when it starts: the
    // kernel work of preparing a child (about 1 ms of CPU) would otherwise compete with the
    // run it was dispatched beside.
    let mut busy: Vec<UnixStream> = Vec::new();
    loop {
        let mut polled: Vec<PollFd> = std::iter::once(listener.as_fd())
            .chain(busy.iter().map(AsFd::as_fd))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        if let Err(e) = poll(&mut polled, PollTimeout::NONE) {
            if e != nix::errno::Errno::EINTR {
                return Err(format!("poll: {e}"));
            }
            continue;
        }
        let ended: Vec<bool> = polled[1..].iter().map(|p| p.any().unwrap_or(true)).collect();
        let accepting = polled[0].any().unwrap_or(false);
        drop(polled);
        // A busy slot's socket becomes readable (end of file) when the slot ends.
        let mut i = 0;
        busy.retain(|_| {
            i += 1;
            !ended[i - 1]
        });
        while ready.len() + busy.len() < pool {
            match new_slot(idle) {
                Ok(s) => ready.push_back(s),
                Err(e) => {
                    eprintln!("sandboxrun: warning: failed to start a slot: {e}");
                    break;
                }
            }
        }
        if !accepting {
            continue;
        }
        let conn = match listener.accept() {
            Ok((conn, _)) => conn,
            Err(e) => {
                eprintln!("sandboxrun: warning: accept: {e}");
                continue;
            }
        };
        if let Err(e) = check_peer(&conn) {
            let _ = writeln!(&conn, "sandboxrun: error: {e}");
            continue;
        }
        busy.extend(dispatch(conn, &mut ready, idle));
    }
}

/// Binds the socket, mode 0600, replacing a stale one (a socket no server answers on).
fn listen(socket: &Path) -> Result<UnixListener, String> {
    let fail = |e: io::Error| format!("{}: {e}", socket.display());
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        if !meta.file_type().is_socket() {
            return Err(format!("{}: exists and is not a socket", socket.display()));
        }
        if UnixStream::connect(socket).is_ok() {
            return Err(format!("{}: a server is already listening", socket.display()));
        }
        std::fs::remove_file(socket).map_err(fail)?;
    }
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o077) };
    let listener = UnixListener::bind(socket);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(fail)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    Ok(listener)
}

/// Refuses a client of another user than the server's (root excepted).
fn check_peer(conn: &UnixStream) -> Result<(), String> {
    let cred = nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("getsockopt(SO_PEERCRED): {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if cred.uid() == me || cred.uid() == 0 {
        Ok(())
    } else {
        Err(format!("this server serves uid {me} only, not uid {}", cred.uid()))
    }
}

/// Hands `conn` to the oldest ready slot that takes it, starting one if none does; returns
/// the slot, now busy.
fn dispatch(conn: UnixStream, ready: &mut VecDeque<UnixStream>, idle: bool) -> Option<UnixStream> {
    loop {
        let mut slot = match ready.pop_front() {
            Some(s) => s,
            None => match new_slot(idle) {
                Ok(s) => s,
                Err(e) => {
                    let _ = writeln!(&conn, "sandboxrun: error: the server failed to start a slot: {e}");
                    return None;
                }
            },
        };
        // A slot that died (its child failed to start) refuses: try the next.
        if fd_passing::send(&mut slot, &[], &[conn.as_fd()]).is_ok() {
            return Some(slot);
        }
    }
}

/// Forks a slot; returns the server's end of its socket.
fn new_slot(idle: bool) -> io::Result<UnixStream> {
    let (server_end, slot_end) = UnixStream::pair()?;
    // SAFETY: the server is single-threaded.
    unsafe { sandbox::spawn::fork(|| slot(slot_end, idle)) }?;
    Ok(server_end)
}

/// Sets the scheduling policy of `pid` (0: this thread) to SCHED_IDLE or back to SCHED_OTHER;
/// whether it worked.
fn schedule(pid: libc::pid_t, idle: bool) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    let policy = if idle { libc::SCHED_IDLE } else { libc::SCHED_OTHER };
    // SAFETY: a valid sched_param; the call changes only scheduling.
    unsafe { libc::sched_setscheduler(pid, policy, &param) == 0 }
}

/// Whether a slot may wait under SCHED_IDLE: it must be able to return to normal scheduling
/// when a client comes (CAP_SYS_NICE, or a high enough RLIMIT_NICE). A throwaway child tries.
fn idle_scheduling_works() -> bool {
    // SAFETY: the server is single-threaded; the child only makes two system calls.
    let Ok(pid) = (unsafe { sandbox::spawn::fork(|| i32::from(!(schedule(0, true) && schedule(0, false)))) }) else {
        return false;
    };
    let mut status = 0;
    // SAFETY: waiting for our own child, with a valid out-pointer.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) } == pid;
    reaped && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// A slot's life: prepare a child, wait for a client, run its command. With `idle`, it waits
/// under SCHED_IDLE — preparing a child, about 1 ms of kernel work, then takes only CPU time
/// no run wants — and returns to normal scheduling, with its child, when a client comes.
fn slot(mut server: UnixStream, idle: bool) -> i32 {
    // SAFETY: first thing in the fresh process: the objects alive here own only stdio and the
    // socket; the rest belong to the server's objects, never used or dropped here.
    if unsafe { sandbox::fds::close_inherited(&[0, 1, 2, server.as_raw_fd()]) }.is_err() {
        return crate::report::EXIT_ERROR;
    }
    if idle {
        schedule(0, true);
    }
    // The slot reaps its run's child itself.
    // SAFETY: restoring the default disposition runs no code of ours.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let default = crate::confinement::for_policy(&policy::Policy::default_policy());
    // SAFETY: the slot is single-threaded. A child that failed to start is started afresh by
    // the run, which reports why if it fails again.
    let prepared = unsafe { PreparedChild::start(default) }.ok();
    // The cache a run with the default settings uses, opened while no run waits for it.
    let cache = crate::cli::CacheArgs::default().location(&policy::CachePolicy::default()).and_then(OpenCache::open);
    crate::warm_text::map_ahead();
    // Kept open to the end: the server replaces this slot when it closes.
    let conn = match fd_passing::recv(&mut server) {
        Ok(Some((_, fds))) => fds.into_iter().next(),
        _ => None,
    };
    let Some(conn) = conn else {
        // The server is gone, or sent nothing usable.
        if let Some(p) = prepared {
            p.discard();
        }
        return 0;
    };
    if idle {
        schedule(0, false);
        if let Some(p) = &prepared {
            schedule(p.pid(), false);
        }
    }
    let mut conn = UnixStream::from(conn);
    let start = match prepared {
        Some(p) => Start::Prepared(p, cache),
        None => Start::Spawn,
    };
    let status = match take_client(&mut conn) {
        Ok(argv) => match RunCli::try_parse_from(argv) {
            Ok(cli) => crate::command::run(cli, start),
            Err(e) => {
                let _ = e.print();
                e.exit_code()
            }
        },
        Err(e) => {
            // The client prints this line and exits 125.
            let _ = writeln!(&conn, "sandboxrun: error: bad request: {e}");
            return 0;
        }
    };
    let _ = std::io::stdout().flush();
    let _ = (&conn).write_all(&status.to_le_bytes());
    if idle {
        // Tearing the slot and its run's namespaces down can wait for idle time too.
        schedule(0, true);
    }
    0
}

/// Reads a client's request and takes on its working directory, environment and standard
/// streams; returns its command line.
fn take_client(conn: &mut UnixStream) -> Result<Vec<OsString>, String> {
    let (body, fds) = fd_passing::recv(conn).map_err(|e| e.to_string())?.ok_or("no request")?;
    let request: Request = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let [cwd, stdin, stdout, stderr]: [OwnedFd; REQUEST_FDS] =
        fds.try_into().map_err(|fds: Vec<OwnedFd>| format!("{} descriptors, expected {REQUEST_FDS}", fds.len()))?;
    // SAFETY: fchdir only reads the descriptor.
    if unsafe { libc::fchdir(cwd.as_raw_fd()) } != 0 {
        return Err(format!("fchdir: {}", io::Error::last_os_error()));
    }
    for (fd, target) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
        // SAFETY: dup2 onto a standard stream this process owns; nothing else holds it.
        if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
            return Err(format!("dup2: {}", io::Error::last_os_error()));
        }
    }
    for (key, _) in std::env::vars_os() {
        std::env::remove_var(key);
    }
    for entry in request.env {
        if let Some(eq) = entry.iter().position(|b| *b == b'=').filter(|eq| *eq > 0) {
            let (key, value) = entry.split_at(eq);
            std::env::set_var(OsString::from_vec(key.to_vec()), OsString::from_vec(value[1..].to_vec()));
        }
    }
    Ok(request.argv.into_iter().map(OsString::from_vec).collect())
}
