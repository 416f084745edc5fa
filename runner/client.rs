//! `sandboxrun --server SOCKET ...` and `sandboxrun-client SOCKET ...`: hand the whole
//! command — command line, environment, working directory, standard streams — to a server
//! ([`crate::server`]) and exit with the status it answers.

use crate::fd_passing;
use crate::report::EXIT_ERROR;
use crate::server::Request;
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

fn ask(socket: &Path, argv: Vec<OsString>) -> std::io::Result<i32> {
    // The request is one datagram; the answer comes on a socket pair whose other end it carries.
    let (mut reply, theirs) = UnixStream::pair()?;
    let cwd = std::fs::File::open(".")?;
    // SAFETY: this process's standard streams stay open while the request is sent.
    let stdio = [0, 1, 2].map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
    let body = Request::new(argv).encode();
    let fds = [theirs.as_fd(), cwd.as_fd(), stdio[0], stdio[1], stdio[2]];
    fd_passing::send_to(&UnixDatagram::unbound()?, socket, &body, &fds)?;
    drop(theirs);
    // The answer: the exit status, or a line saying why the server could not run it.
    let mut answer = Vec::new();
    reply.read_to_end(&mut answer)?;
    match <[u8; 4]>::try_from(answer.as_slice()) {
        Ok(status) => Ok(i32::from_le_bytes(status)),
        Err(_) if answer.is_empty() => Err(std::io::Error::other("the server ended the run without an exit status")),
        Err(_) => Err(std::io::Error::other(
            String::from_utf8_lossy(&answer).trim().trim_start_matches("sandboxrun: error: ").to_string(),
        )),
    }
}
