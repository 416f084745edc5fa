//! `sandboxrun --server SOCKET ...` and `sandboxrun-client SOCKET ...`: hand the whole
//! command — command line, environment, working directory, standard streams — to a server
//! ([`crate::server`]) and exit with the status it answers.

use crate::supervise::report::EXIT_ERROR;
use protocol::reply::Reply;
use protocol::ProtocolError;
use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

/// Runs `argv` (a `sandboxrun` command line, `argv[0]` first) through the server on
/// `socket`; returns the exit status.
pub fn forward(socket: &Path, argv: Vec<OsString>) -> i32 {
    match ask(socket, argv) {
        Ok(status) => status,
        Err(e) => {
            crate::errln!("sandboxrun: error: server {}: {e}", socket.display());
            EXIT_ERROR
        }
    }
}

fn ask(socket: &Path, argv: Vec<OsString>) -> Result<i32, ProtocolError> {
    let cwd = std::fs::File::open(".")?;
    // SAFETY: this process's standard streams stay open while the request is sent.
    let stdio = [0, 1, 2].map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
    send(socket, argv, cwd.as_fd(), stdio)?.wait()
}

/// A request sent, its answer to come.
#[derive(Debug)]
pub struct Pending {
    reply: UnixStream,
}

/// Sends `argv` (a `sandboxrun` command line) to the server on `socket`, to run in `cwd` with
/// `stdio` as its standard streams (the server holds its own copies once this returns: the
/// caller may close its).
///
/// # Errors
/// No server, or the request could not be sent.
pub fn send(
    socket: &Path,
    argv: Vec<OsString>,
    cwd: BorrowedFd,
    stdio: [BorrowedFd; 3],
) -> Result<Pending, ProtocolError> {
    // The request is one datagram; the answer comes on a socket pair whose other end it carries.
    let (reply, theirs) = UnixStream::pair()?;
    let request = crate::server::request(argv);
    let fds = [theirs.as_fd(), cwd, stdio[0], stdio[1], stdio[2]];
    crate::channels::fds::send_to(&UnixDatagram::unbound()?, socket, &request, &fds)?;
    Ok(Pending { reply })
}

impl Pending {
    /// Waits for the answer: the run's exit status.
    ///
    /// # Errors
    /// The server refused the request, or ended the run without an exit status.
    pub fn wait(self) -> Result<i32, ProtocolError> {
        // The answer, once the server closes its end: the exit status, or a line saying why
        // the server could not run it. Read to its end, bounded: nothing may follow it.
        let mut answer = Vec::new();
        self.reply.take(protocol::max_frame_len::<Reply>() as u64 + 1).read_to_end(&mut answer)?;
        if answer.is_empty() {
            return Err(std::io::Error::other("the server ended the run without an exit status").into());
        }
        match protocol::decode_untrusted::<Reply>(&answer)? {
            Reply::Status(status) => Ok(status),
            Reply::Refused(why) => Err(std::io::Error::other(why).into()),
        }
    }
}
