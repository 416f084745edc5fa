//! `sandboxrun serve --socket PATH`: runs for clients (`sandboxrun-client PATH ...`, or
//! `sandboxrun --server PATH ...`) whose child — namespaces, identity, empty root, no
//! privileges — was made before the run was asked for.
//!
//! The server process stays single-threaded (it forks) and does not serve requests itself:
//! it keeps a pool of *slots* ([`slot`]), processes that have each prepared a run's child
//! ([`crate::server::prepared::PreparedChild`]) and wait on the server's datagram socket. A client
//! sends its request as one datagram ([`request`]); the kernel gives it to one waiting slot,
//! which runs it and answers on a socket the request carried. The server only replaces slots
//! — once their run is over, so that preparing the next one does not compete with a run —
//! and releases the namespaces of finished runs when no run is under way.
//!
//! Only clients of the server's own user (or root) are served, and the socket's mode is 0600:
//! a run's files are opened by the slot with the server's rights. A root server moves itself
//! into a new, empty network namespace, which its runs share instead of making one each
//! (docs/confinement.md says why that gives a run nothing to reach).

pub mod client;
pub mod hot;
pub mod prepared;
mod request;
mod slot;
pub mod warm_text;

pub use request::{request, Request, REQUEST_FDS};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use protocol::slot::SlotNews;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

/// How the server's slots run, decided once.
#[derive(Clone, Copy, Debug)]
struct Settings {
    /// Slots prepare in the background and return to the foreground before they wait.
    background: bool,
    /// Runs share the server's empty network namespace.
    shared_network: bool,
    /// The identity prepared children take.
    run_as: policy::RunAs,
}

/// Why the server could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The path exists and is not a socket.
    #[error("{0}: exists and is not a socket")]
    NotASocket(std::path::PathBuf),
    /// Another server is bound to the socket.
    #[error("{0}: a server is already listening")]
    Taken(std::path::PathBuf),
    /// Binding or setting up the socket failed.
    #[error("{path}: {source}")]
    Socket {
        /// The socket.
        path: std::path::PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A slot could not be started.
    #[error("failed to start a slot: {0}")]
    Slot(io::Error),
    /// Waiting for the slots failed.
    #[error("poll: {0}")]
    Poll(nix::Error),
}

/// Serves until killed.
///
/// # Errors
/// The socket cannot be created, or the first slot cannot be started.
pub fn serve(socket: &Path, pool: usize, run_as: policy::RunAs) -> Result<(), ServeError> {
    let listener = listen(socket)?;
    let settings = Settings { background: background_scheduling_works(), shared_network: share_network(), run_as };
    if settings.background {
        // The server's own work — starting slots, releasing namespaces — is all background.
        slot::schedule(0, true);
    }
    // Slots end on their own: the kernel reaps them.
    // SAFETY: SIG_IGN installs no handler of ours.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGCHLD, nix::sys::signal::SigHandler::SigIgn) };
    let mut slots: Vec<(UnixStream, Slot)> = Vec::new();
    // Modules runs found in the code cache, for later slots to inherit.
    let mut hot = hot::HotSet::default();
    for _ in 0..pool {
        let slot = slot::start(&listener, settings, &hot).map_err(ServeError::Slot)?;
        slots.push((slot, Slot::Ready));
    }
    let network = if settings.shared_network {
        "one empty network namespace for all runs"
    } else {
        "a network namespace per run"
    };
    crate::errln!("sandboxrun: serving on {} ({pool} prepared children, {network})", socket.display());
    // Namespaces of finished runs, released when no run is under way (see
    // `PreparedChild::hand_over`), or in a batch once too many are held.
    let mut held: Vec<OwnedFd> = Vec::new();
    loop {
        let mut polled: Vec<PollFd> = slots.iter().map(|(s, _)| PollFd::new(s.as_fd(), PollFlags::POLLIN)).collect();
        let timeout = if held.is_empty() { PollTimeout::NONE } else { PollTimeout::from(RELEASE_AFTER_MS) };
        let events = match poll(&mut polled, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(ServeError::Poll(e)),
        };
        let readable: Vec<bool> = polled.iter().map(|p| p.any().unwrap_or(true)).collect();
        drop(polled);
        // A slot says when it takes a client, hands over its run's namespaces when the run is
        // over ([`SlotNews`]), and closes its socket when it ends.
        let mut i = 0;
        slots.retain_mut(|(socket, state)| {
            i += 1;
            if !readable[i - 1] {
                return true;
            }
            match crate::channels::fds::recv::<SlotNews>(socket) {
                Ok(Some((SlotNews::Busy, _))) => *state = Slot::Running,
                Ok(Some((SlotNews::Done { hot: found }, mut fds))) => {
                    // The artifact's file comes last, after the run's namespaces.
                    if let Some(module) = found {
                        if let Some(artifact) = fds.pop() {
                            hot.insert(hot::HotEntry { module, artifact });
                        }
                    }
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
            match slot::start(&listener, settings, &hot) {
                Ok(s) => slots.push((s, Slot::Ready)),
                Err(e) => {
                    crate::errln!("sandboxrun: warning: failed to start a slot: {e}");
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

/// How long the server waits without a message before releasing held namespaces (when no
/// run is under way).
const RELEASE_AFTER_MS: u16 = 20;

/// Most namespace descriptors held before a batch is released anyway (7 per run).
const MAX_HELD: usize = 7 * 64;

/// Binds the socket (a datagram socket: a request is one datagram), mode 0600, replacing a
/// stale one (a socket nothing is bound to any more).
fn listen(socket: &Path) -> Result<UnixDatagram, ServeError> {
    let fail = |source: io::Error| ServeError::Socket { path: socket.to_path_buf(), source };
    if let Ok(meta) = std::fs::symlink_metadata(socket) {
        if !meta.file_type().is_socket() {
            return Err(ServeError::NotASocket(socket.to_path_buf()));
        }
        if UnixDatagram::unbound().and_then(|probe| probe.connect(socket)).is_ok() {
            return Err(ServeError::Taken(socket.to_path_buf()));
        }
        std::fs::remove_file(socket).map_err(fail)?;
    }
    use nix::sys::socket as ns;
    let errno = |e: nix::errno::Errno| fail(io::Error::from(e));
    let unbound =
        ns::socket(ns::AddressFamily::Unix, ns::SockType::Datagram, ns::SockFlag::SOCK_CLOEXEC, None).map_err(errno)?;
    // Before the name exists: each datagram then carries its sender's credentials, which the
    // kernel vouches for. (Set after binding, a datagram sent in between would carry none,
    // and the kernel would report its sender as the overflow uid.)
    ns::setsockopt(&unbound, ns::sockopt::PassCred, &true).map_err(errno)?;
    let address = ns::UnixAddr::new(socket).map_err(errno)?;
    // The name is created 0600 (the owner's only) by the umask: never, even for an instant,
    // wider (a client waiting for the name to appear sees its final mode).
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = ns::bind(unbound.as_raw_fd(), &address);
    nix::sys::stat::umask(old);
    bound.map_err(errno)?;
    let bound = UnixDatagram::from(unbound);
    Ok(bound)
}

/// Moves the server — and so every run it starts — into a new, empty network namespace when
/// it may (root): a run then needs no network namespace of its own, whose creation and
/// teardown cost about 1 ms of kernel time per run, mostly in places a run would wait for
/// (see docs/confinement.md for why sharing it gives a run nothing to reach). Returns whether
/// it did.
fn share_network() -> bool {
    nix::unistd::geteuid().is_root() && nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_ok()
}

/// Whether a slot may prepare in the background: it must be able to return to the foreground
/// before it waits for a client (CAP_SYS_NICE, or a high enough RLIMIT_NICE). A throwaway
/// child tries.
fn background_scheduling_works() -> bool {
    // SAFETY: the server is single-threaded; the child only makes two system calls.
    let Ok(pid) =
        (unsafe { sandbox::spawn::fork(|| i32::from(!(slot::schedule(0, true) && slot::schedule(0, false)))) })
    else {
        return false;
    };
    matches!(
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None),
        Ok(nix::sys::wait::WaitStatus::Exited(_, 0))
    )
}
