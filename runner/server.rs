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
use crate::run::{Ahead, OpenCache, Start};
use clap::Parser;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

/// A client's request: its command line and the environment variables sandboxrun reads
/// ([`crate::cli::ENVIRONMENT`]); its working directory and standard streams travel as
/// descriptors, in that order.
///
/// Encoded as the number of arguments (4 bytes, little-endian), then every argument and every
/// `KEY=VALUE` entry, each ended by a NUL byte (none can hold one).
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The command line, `argv[0]` first.
    pub argv: Vec<OsString>,
    /// The environment entries.
    pub env: Vec<(OsString, OsString)>,
}

impl Request {
    /// The request to run `argv`, with this process's environment.
    pub fn new(argv: Vec<OsString>) -> Request {
        Request {
            argv,
            env: crate::cli::ENVIRONMENT
                .iter()
                .filter_map(|key| std::env::var_os(key).map(|value| (OsString::from(key), value)))
                .collect(),
        }
    }

    /// The encoded request.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = (self.argv.len() as u32).to_le_bytes().to_vec();
        for arg in &self.argv {
            out.extend_from_slice(arg.as_bytes());
            out.push(0);
        }
        for (key, value) in &self.env {
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
            out.push(0);
        }
        out
    }

    /// Decodes a request.
    ///
    /// # Errors
    /// Malformed: too short, an entry without its NUL, an argument count beyond the entries, an
    /// environment entry without `=`.
    pub fn decode(bytes: &[u8]) -> Result<Request, String> {
        let count = bytes.get(..4).ok_or("too short")?;
        let argc = u32::from_le_bytes(count.try_into().expect("four bytes")) as usize;
        let rest = &bytes[4..];
        if rest.last().is_some_and(|b| *b != 0) {
            return Err("an entry lacks its end".into());
        }
        let entries: Vec<&[u8]> = if rest.is_empty() { Vec::new() } else { rest[..rest.len() - 1].split(|b| *b == 0).collect() };
        if argc > entries.len() {
            return Err(format!("{argc} arguments announced, {} entries sent", entries.len()));
        }
        let os = |b: &[u8]| OsString::from_vec(b.to_vec());
        let env = entries[argc..]
            .iter()
            .map(|e| match e.iter().position(|b| *b == b'=') {
                Some(eq) if eq > 0 => Ok((os(&e[..eq]), os(&e[eq + 1..]))),
                _ => Err("an environment entry without '='".to_string()),
            })
            .collect::<Result<_, _>>()?;
        Ok(Request { argv: entries[..argc].iter().map(|a| os(a)).collect(), env })
    }
}

/// Descriptors of a request after the reply socket: working directory, stdin, stdout, stderr.
pub const REQUEST_FDS: usize = 4;

/// Serves until killed.
///
/// # Errors
/// The socket cannot be created, or the first slot cannot be started.
pub fn serve(socket: &Path, pool: usize) -> Result<(), String> {
    let listener = listen(socket)?;
    let idle_ok = background_scheduling_works();
    if idle_ok {
        // The server's own work — starting slots, releasing namespaces — is all background.
        schedule(0, true);
    }
    let shared_network = share_network();
    // Slots end on their own: the kernel reaps them.
    // SAFETY: setting a signal's disposition to SIG_IGN runs no code of ours.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    let mut slots: Vec<(UnixStream, Slot)> = Vec::new();
    for _ in 0..pool {
        let slot = new_slot(&listener, idle_ok, shared_network).map_err(|e| format!("failed to start a slot: {e}"))?;
        slots.push((slot, Slot::Ready));
    }
    let network = if shared_network { "one empty network namespace for all runs" } else { "a network namespace per run" };
    eprintln!("sandboxrun: serving on {} ({pool} prepared children, {network})", socket.display());
    // Namespaces of finished runs, released when no run is under way (see
    // `prepared::take_namespaces`), or in a batch once too many are held.
    let mut held: Vec<OwnedFd> = Vec::new();
    loop {
        let mut polled: Vec<PollFd> = slots.iter().map(|(s, _)| PollFd::new(s.as_fd(), PollFlags::POLLIN)).collect();
        let timeout = if held.is_empty() { PollTimeout::NONE } else { PollTimeout::from(RELEASE_AFTER_MS) };
        let events = match poll(&mut polled, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        };
        let readable: Vec<bool> = polled.iter().map(|p| p.any().unwrap_or(true)).collect();
        drop(polled);
        // A slot says when it takes a client, hands over its run's namespaces when the run is
        // over, and closes its socket when it ends.
        let mut i = 0;
        slots.retain_mut(|(socket, state)| {
            i += 1;
            if !readable[i - 1] {
                return true;
            }
            match fd_passing::recv(socket) {
                Ok(Some((body, _))) if body == BUSY => *state = Slot::Running,
                Ok(Some((body, fds))) if body == DONE => {
                    held.extend(fds);
                    *state = Slot::Done;
                }
                _ => return false,
            }
            true
        });
        let count = |wanted: Slot| slots.iter().filter(|(_, state)| *state == wanted).count();
        if (events == 0 && count(Slot::Running) == 0) || held.len() > MAX_HELD {
            held.clear();
        }
        // A running slot is replaced once its run is over, so that preparing the next one
        // (about 1 ms of kernel work) comes between runs rather than during one; at once only
        // if fewer than half the pool is ready.
        let (mut ready, running) = (count(Slot::Ready), count(Slot::Running));
        while ready + running < pool || ready < pool.div_ceil(2) {
            match new_slot(&listener, idle_ok, shared_network) {
                Ok(s) => slots.push((s, Slot::Ready)),
                Err(e) => {
                    eprintln!("sandboxrun: warning: failed to start a slot: {e}");
                    break;
                }
            }
            ready += 1;
        }
    }
}

/// Where a slot is in its life, as the server sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Prepared, waiting for a client.
    Ready,
    /// Running a client's command.
    Running,
    /// Its run is over; it is ending.
    Done,
}

/// A slot's message: it has taken a client.
const BUSY: &[u8] = b"busy";

/// A slot's message: its run is over; the descriptors are its namespaces.
const DONE: &[u8] = b"done";

/// How long the server waits without a message before releasing held namespaces (when no
/// run is under way).
const RELEASE_AFTER_MS: u16 = 20;

/// Most namespace descriptors held before a batch is released anyway (7 per run).
const MAX_HELD: usize = 7 * 64;

/// Binds the socket (a datagram socket: a request is one datagram), mode 0600, replacing a
/// stale one (a socket nothing is bound to any more).
fn listen(socket: &Path) -> Result<UnixDatagram, String> {
    let fail = |e: io::Error| format!("{}: {e}", socket.display());
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        if !meta.file_type().is_socket() {
            return Err(format!("{}: exists and is not a socket", socket.display()));
        }
        if UnixDatagram::unbound().and_then(|probe| probe.connect(socket)).is_ok() {
            return Err(format!("{}: a server is already listening", socket.display()));
        }
        std::fs::remove_file(socket).map_err(fail)?;
    }
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o077) };
    let bound = UnixDatagram::bind(socket);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let bound = bound.map_err(fail)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    // Each datagram then carries its sender's credentials, which the kernel vouches for.
    nix::sys::socket::setsockopt(&bound, nix::sys::socket::sockopt::PassCred, &true)
        .map_err(|e| fail(io::Error::from(e)))?;
    Ok(bound)
}

/// Refuses a client of another user than the server's (root excepted).
fn check_sender(uid: Option<u32>) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    match uid {
        Some(uid) if uid == me || uid == 0 => Ok(()),
        Some(uid) => Err(format!("this server serves uid {me} only, not uid {uid}")),
        None => Err("the request carries no credentials".into()),
    }
}

/// Forks a slot; returns the server's end of its socket.
fn new_slot(listener: &UnixDatagram, idle: bool, shared_network: bool) -> io::Result<UnixStream> {
    let (server_end, slot_end) = UnixStream::pair()?;
    // SAFETY: the server is single-threaded.
    unsafe {
        sandbox::spawn::fork(|| match listener.try_clone() {
            Ok(listener) => slot(slot_end, listener, idle, shared_network),
            Err(_) => crate::report::EXIT_ERROR,
        })
    }?;
    Ok(server_end)
}

/// Puts `pid` (0: this thread) in the background (nice 19) or back to the foreground (nice
/// 0); whether it worked. Nice rather than SCHED_IDLE: the scheduler counts a CPU running
/// only SCHED_IDLE work as idle and wakes a run there, where it waits if that work is in the
/// kernel (process creation, which this kernel does not preempt).
fn schedule(pid: libc::pid_t, background: bool) -> bool {
    let nice = if background { 19 } else { 0 };
    // SAFETY: setpriority changes only scheduling. The pid is this thread or our child.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, nice) == 0 }
}

/// Moves the server — and so every run it starts — into a new, empty network namespace when
/// it may (root): a run then needs no network namespace of its own, whose creation and
/// teardown cost about 1 ms of kernel time per run, mostly in places a run would wait for
/// (see docs/confinement.md for why sharing it gives a run nothing to reach). Returns whether
/// it did.
fn share_network() -> bool {
    // SAFETY: geteuid has no preconditions; unshare only changes this process's namespaces.
    unsafe { libc::geteuid() == 0 && libc::unshare(libc::CLONE_NEWNET) == 0 }
}

/// Whether a slot may prepare in the background: it must be able to return to the foreground
/// before it waits for a client (CAP_SYS_NICE, or a high enough RLIMIT_NICE). A throwaway
/// child tries.
fn background_scheduling_works() -> bool {
    // SAFETY: the server is single-threaded; the child only makes two system calls.
    let Ok(pid) = (unsafe { sandbox::spawn::fork(|| i32::from(!(schedule(0, true) && schedule(0, false)))) }) else {
        return false;
    };
    let mut status = 0;
    // SAFETY: waiting for our own child, with a valid out-pointer.
    let reaped = unsafe { libc::waitpid(pid, &mut status, 0) } == pid;
    reaped && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// A slot's life: prepare a child, accept a client, run its command. With `idle`, it prepares
/// in the background — preparing a child, about 1 ms of kernel work, then yields to runs — and
/// returns to the foreground, with its child, before it waits.
/// Slots accept on the server's socket themselves: the kernel wakes one per connection, with
/// no hop through the server.
fn slot(mut server: UnixStream, listener: UnixDatagram, idle: bool, shared_network: bool) -> i32 {
    // SAFETY: first thing in the fresh process: the objects alive here own only stdio, the
    // sockets and the listener's duplicate; the rest belong to the server's objects, never
    // used or dropped here.
    if unsafe { sandbox::fds::close_inherited(&[0, 1, 2, server.as_raw_fd(), listener.as_raw_fd()]) }.is_err() {
        return crate::report::EXIT_ERROR;
    }
    if idle {
        schedule(0, true);
    }
    // The slot reaps its run's child itself.
    // SAFETY: restoring the default disposition runs no code of ours.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let mut default = crate::confinement::for_policy(&policy::Policy::default_policy());
    default.namespaces.network = !shared_network;
    // SAFETY: the slot is single-threaded. A child that failed to start is started afresh by
    // the run, which reports why if it fails again.
    let prepared = unsafe { PreparedChild::start(default) }.ok();
    // The cache a run with the default settings uses, opened while no run waits for it.
    let cache = crate::cli::CacheArgs::default().location(&policy::CachePolicy::default()).and_then(OpenCache::open);
    let cgroups = sandbox::CgroupParent::find(&crate::confinement::cgroup_limits(&policy::Policy::default_policy()))
        .map_err(|e| e.to_string());
    crate::warm_text::map_ahead();
    // Prepared: back to the foreground before waiting, so that a client wakes the slot and its
    // child at once.
    if idle {
        schedule(0, false);
        if let Some(p) = &prepared {
            schedule(p.pid(), false);
        }
    }
    // A request: its body, the client's end of the reply socket and its other descriptors,
    // and its sender. A datagram without a reply socket is dropped unanswered.
    let request = loop {
        match fd_passing::recv_from(&listener) {
            Ok((body, mut fds, uid)) if !fds.is_empty() => {
                let reply = UnixStream::from(fds.remove(0));
                break Some((body, fds, uid, reply));
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::Other => continue,
            Err(_) => break None,
        }
    };
    drop(listener);
    // The server starts another slot; it sees this one end when its socket closes.
    let Some((body, fds, uid, conn)) = request.filter(|_| fd_passing::send(&mut server, BUSY, &[]).is_ok()) else {
        if let Some(p) = prepared {
            p.discard();
        }
        return 0;
    };
    if let Err(e) = check_sender(uid) {
        let _ = writeln!(&conn, "sandboxrun: error: {e}");
        return 0;
    }
    let start = match prepared {
        Some(child) => Start::Prepared(Ahead { child, cache, cgroups }),
        None => Start::Spawn,
    };
    let status = match take_client(&body, fds) {
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
    drop(conn);
    let held = crate::prepared::take_namespaces();
    let _ = fd_passing::send(&mut server, DONE, &held.iter().map(AsFd::as_fd).collect::<Vec<_>>());
    if idle {
        // Tearing the slot down can wait too.
        schedule(0, true);
    }
    0
}

/// Reads a client's request and takes on its working directory, environment and standard
/// streams; returns its command line.
fn take_client(body: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<OsString>, String> {
    let request = Request::decode(body)?;
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
    for key in crate::cli::ENVIRONMENT {
        std::env::remove_var(key);
    }
    for (key, value) in request.env.iter().filter(|(k, _)| crate::cli::ENVIRONMENT.iter().any(|e| k == e)) {
        std::env::set_var(key, value);
    }
    Ok(request.argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_decodes_to_itself() {
        let request = Request {
            argv: vec!["sandboxrun".into(), OsString::from_vec(vec![0xff, b'x']), "".into()],
            env: vec![("HOME".into(), "/h=x".into()), ("XDG_CACHE_HOME".into(), "".into())],
        };
        assert_eq!(Request::decode(&request.encode()).unwrap(), request);
        let empty = Request { argv: Vec::new(), env: Vec::new() };
        assert_eq!(Request::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn malformed_requests_are_errors() {
        for bad in [&b""[..], b"\x01\0\0", b"\x02\0\0\0a\0", b"\x01\0\0\0a\0noequals\0", b"\x01\0\0\0a"] {
            assert!(Request::decode(bad).is_err(), "{bad:?}");
        }
    }
}
