//! A slot: a process forked from the server that prepares a run's child ahead of time, then
//! takes one request from the server's socket and does what `sandboxrun` would do for it — in
//! the client's working directory and environment, with the client's standard streams — but
//! with the child already there. It answers the exit status and ends.

use super::request::take_client;
use super::Settings;
use crate::cli::command::Finished;
use crate::cli::RunCli;
use crate::server::hot::HotSet;
use crate::server::prepared::PreparedChild;
use crate::supervise::watch::Release;
use crate::supervise::{Ahead, OpenCache, Start};
use clap::Parser;
use protocol::reply::Reply;
use protocol::slot::SlotNews;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};

/// Forks a slot, which inherits the modules the server keeps at hand; returns the server's end
/// of its socket.
pub(super) fn start(listener: &UnixDatagram, settings: Settings, hot: &HotSet) -> io::Result<UnixStream> {
    let (server_end, slot_end) = UnixStream::pair()?;
    // SAFETY: the server is single-threaded.
    unsafe {
        sandbox::spawn::fork(|| match listener.try_clone() {
            Ok(listener) => life(slot_end, listener, settings, hot),
            Err(_) => crate::supervise::report::EXIT_ERROR,
        })
    }?;
    Ok(server_end)
}

/// Puts `pid` (0: this thread) in the background (nice 19) or back to the foreground (nice
/// 0); whether it worked. Nice rather than SCHED_IDLE: the scheduler counts a CPU running
/// only SCHED_IDLE work as idle and wakes a run there, where it waits if that work is in the
/// kernel (process creation, which this kernel does not preempt).
pub(super) fn schedule(pid: libc::pid_t, background: bool) -> bool {
    let nice = if background { 19 } else { 0 };
    // SAFETY: setpriority changes only scheduling. The pid is this thread or our child.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, nice) == 0 }
}

/// What a slot makes ready before a request comes.
fn prepare(settings: Settings, hot: HotSet) -> Option<Ahead> {
    let policy = policy::Policy { run_as: settings.run_as, ..policy::Policy::default_policy() };
    let mut confinement = crate::plan::confinement::for_policy(&policy);
    confinement.namespaces.network = !settings.shared_network;
    // SAFETY: the slot is single-threaded. A child that failed to start is started afresh by
    // the run, which reports why if it fails again.
    let child = unsafe { PreparedChild::start(confinement) }.ok()?;
    // The cache a run with the default settings uses, and where cgroups go.
    let cache = crate::cli::CacheArgs::default().location(&policy::CachePolicy::default()).and_then(OpenCache::open);
    let cgroups =
        sandbox::CgroupParent::find(&crate::plan::confinement::cgroup_limits(&policy::Policy::default_policy()))
            .map_err(|e| e.to_string());
    Some(Ahead { child, cache, cgroups, hot })
}

/// A request as it arrives.
struct Incoming {
    /// The encoded [`super::Request`] (a frame, not decoded yet).
    body: Vec<u8>,
    /// The client's end of the reply socket.
    reply: UnixStream,
    /// The descriptors after it.
    fds: Vec<OwnedFd>,
    /// The sender's uid, as the kernel vouches for it.
    uid: Option<u32>,
}

/// Waits for a request. A datagram without descriptors, or too large, is dropped unanswered.
/// `None`: the socket failed.
fn next_request(listener: &UnixDatagram) -> Option<Incoming> {
    loop {
        match crate::channels::fds::recv_from(listener) {
            Ok((body, mut fds, uid)) if !fds.is_empty() => {
                let reply = UnixStream::from(fds.remove(0));
                return Some(Incoming { body, reply, fds, uid });
            }
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::Interrupted | io::ErrorKind::Other) => continue,
            Err(_) => return None,
        }
    }
}

/// Why a slot refused a client.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// Another user than the server's (root excepted).
    #[error("this server serves uid {server} only, not uid {client}")]
    OtherUser {
        /// The server's uid.
        server: u32,
        /// The client's, as the kernel vouches for it.
        client: u32,
    },
    /// The datagram carried no credentials.
    #[error("the request carries no credentials")]
    NoCredentials,
    /// The request is malformed.
    #[error("bad request: {0}")]
    Bad(#[from] super::request::RequestError),
}

/// Refuses a client of another user than the server's (root excepted): a run's files are
/// opened with the slot's rights, which serving another user would lend it.
fn check_sender(uid: Option<u32>) -> Result<(), Refusal> {
    let me = nix::unistd::geteuid().as_raw();
    match uid {
        Some(uid) if uid == me || uid == 0 => Ok(()),
        Some(client) => Err(Refusal::OtherUser { server: me, client }),
        None => Err(Refusal::NoCredentials),
    }
}

/// A slot's life. With `settings.background`, it prepares in the background — preparing a
/// child is about 1 ms of kernel work — and returns to the foreground, with its child,
/// before it waits for a request.
fn life(mut server: UnixStream, listener: UnixDatagram, settings: Settings, hot: &HotSet) -> i32 {
    let mut keep = vec![0, 1, 2, server.as_raw_fd(), listener.as_raw_fd()];
    keep.extend(hot.fds());
    // SAFETY: first thing in the fresh process: the objects alive here own only stdio, the
    // socket to the server, the listener's duplicate and the modules at hand (whose
    // descriptors stay open; the set is duplicated below); the rest belong to the server's
    // objects, never used or dropped here.
    if unsafe { sandbox::fds::close_inherited(&keep) }.is_err() {
        return crate::supervise::report::EXIT_ERROR;
    }
    let hot = hot.duplicate();
    if settings.background {
        schedule(0, true);
    }
    // The slot reaps its run's child itself.
    // SAFETY: restoring the default disposition installs no handler of ours.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGCHLD, nix::sys::signal::SigHandler::SigDfl) };
    let ahead = prepare(settings, hot);
    crate::server::warm_text::map_ahead();
    if settings.background {
        schedule(0, false);
        if let Some(ahead) = &ahead {
            schedule(ahead.child.pid(), false);
        }
    }
    let request = next_request(&listener);
    drop(listener);
    // The server starts another slot when this one's run is over.
    let Some(Incoming { body, reply, fds, uid }) =
        request.filter(|_| crate::channels::fds::send(&mut server, &SlotNews::Busy, &[]).is_ok())
    else {
        if let Some(ahead) = ahead {
            ahead.child.discard();
        }
        return 0;
    };
    let taken = check_sender(uid).and_then(|()| Ok(take_client(&body, fds)?));
    let Finished { status, release, hot } = match taken {
        Ok(argv) => {
            let start = ahead.map_or(Start::Spawn, |ahead| Start::Prepared(Box::new(ahead)));
            match RunCli::try_parse_from(argv) {
                // The run ends if the client goes away (its reply socket hangs up).
                Ok(cli) => crate::cli::command::run(cli, start, reply.try_clone().ok().map(OwnedFd::from)),
                Err(e) => {
                    let _ = e.print();
                    Finished { status: e.exit_code(), release: None, hot: None }
                }
            }
        }
        Err(e) => {
            // The client prints this line and exits 125.
            let _ = protocol::write(&mut &reply, &Reply::Refused(e.to_string()));
            return 0;
        }
    };
    let _ = std::io::stdout().flush();
    let _ = protocol::write(&mut &reply, &Reply::Status(status));
    drop(reply);
    // The child ends now; its namespaces go to the server, which releases them when idle, and
    // the module the run found in the cache, which the server keeps at hand.
    let held = release.map(Release::into_namespaces).unwrap_or_default();
    let mut passed: Vec<_> = held.iter().map(AsFd::as_fd).collect();
    passed.extend(hot.as_ref().map(|h| h.artifact.as_fd()));
    let news = SlotNews::Done { hot: hot.as_ref().map(|h| h.module.clone()) };
    let _ = crate::channels::fds::send(&mut server, &news, &passed);
    if settings.background {
        // Tearing the slot down can wait too.
        schedule(0, true);
    }
    0
}
