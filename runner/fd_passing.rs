//! Messages with descriptors attached (`SCM_RIGHTS`) over a Unix stream socket: how a client
//! hands its standard streams and working directory to a server, and a supervisor hands a run
//! to a child prepared before it.
//!
//! On a stream socket a message is a fixed-size header, sent with the descriptors, then a
//! body of the length the header gives, sent plainly ([`send`], [`recv`]). On a datagram
//! socket it is one datagram, which also carries the sender's credentials
//! ([`send_to`], [`recv_from`]).

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

/// Most descriptors one message carries (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// Largest body accepted (a module of 1 GiB is far beyond any limit a run could load).
const MAX_BODY: u64 = 1 << 30;

/// The numbers of descriptors to attach to one message.
fn raw_fds(fds: &[BorrowedFd<'_>]) -> io::Result<Vec<RawFd>> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other(format!("{} descriptors: at most {MAX_FDS} fit one message", fds.len())));
    }
    Ok(fds.iter().map(|f| f.as_raw_fd()).collect())
}

/// Takes ownership of descriptors a message carried.
fn received(raw: Vec<RawFd>) -> impl Iterator<Item = OwnedFd> {
    // SAFETY: the kernel has just installed these descriptors in this process for the message
    // received; nothing else owns them.
    raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sends `body` with `fds` attached.
///
/// # Errors
/// Too many descriptors, or the socket's error.
pub fn send(stream: &mut UnixStream, body: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw = raw_fds(fds)?;
    let header = (body.len() as u64).to_le_bytes();
    let rights = [ControlMessage::ScmRights(&raw)];
    let control: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<()>(stream.as_raw_fd(), &[IoSlice::new(&header)], control, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(io::Error::from)?;
    stream.write_all(&header[sent..])?;
    stream.write_all(body)
}

/// Receives one message: its body and descriptors (close-on-exec). `Ok(None)` at end of file
/// before a message.
///
/// # Errors
/// The socket's error, a truncated message, or one larger than any this program sends.
pub fn recv(stream: &mut UnixStream) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut header = [0u8; 8];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (got, fds) = {
        let mut iov = [IoSliceMut::new(&mut header)];
        let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
            .map_err(io::Error::from)?;
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                fds.extend(received(raw));
            }
        }
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(io::Error::other("a message carried more descriptors than fit"));
        }
        (msg.bytes, fds)
    };
    if got == 0 {
        return Ok(None);
    }
    stream.read_exact(&mut header[got..])?;
    let len = u64::from_le_bytes(header);
    if len > MAX_BODY {
        return Err(io::Error::other(format!("a message of {len} bytes")));
    }
    let mut body = vec![0; len as usize];
    stream.read_exact(&mut body)?;
    Ok(Some((body, fds)))
}

/// Largest datagram [`recv_from`] takes.
pub const MAX_DATAGRAM: usize = 64 << 10;

/// Sends `body` with `fds` attached, as one datagram, to the socket bound at `to`.
///
/// # Errors
/// Too many descriptors, or the socket's error (ECONNREFUSED: nothing bound there).
pub fn send_to(socket: &UnixDatagram, to: &Path, body: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw = raw_fds(fds)?;
    let address = UnixAddr::new(to).map_err(io::Error::from)?;
    let rights = [ControlMessage::ScmRights(&raw)];
    let control: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    sendmsg(socket.as_raw_fd(), &[IoSlice::new(body)], control, MsgFlags::MSG_NOSIGNAL, Some(&address))
        .map_err(io::Error::from)?;
    Ok(())
}

/// Receives one datagram: its body, its descriptors (close-on-exec) and the uid of its
/// sender, as the kernel vouches for it (`None` unless the socket has `SO_PASSCRED`).
///
/// # Errors
/// The socket's error, or a datagram larger than [`MAX_DATAGRAM`] or carrying more
/// descriptors than fit (what it carried is closed).
pub fn recv_from(socket: &UnixDatagram) -> io::Result<(Vec<u8>, Vec<OwnedFd>, Option<u32>)> {
    let mut body = vec![0u8; MAX_DATAGRAM];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS], libc::ucred);
    let mut iov = [IoSliceMut::new(&mut body)];
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io::Error::from)?;
    let (mut fds, mut uid) = (Vec::new(), None);
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        match cmsg {
            ControlMessageOwned::ScmRights(raw) => fds.extend(received(raw)),
            ControlMessageOwned::ScmCredentials(cred) => uid = Some(cred.uid()),
            _ => {}
        }
    }
    if msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::other("a request larger than any this program sends"));
    }
    let len = msg.bytes;
    body.truncate(len);
    Ok((body, fds, uid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_message_carries_its_descriptors() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let (r, mut w) = std::io::pipe().unwrap();
        send(&mut a, b"hello", &[r.as_fd()]).unwrap();
        drop(r);
        let (body, fds) = recv(&mut b).unwrap().unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(fds.len(), 1);
        w.write_all(b"x").unwrap();
        drop(w);
        let mut got = String::new();
        std::fs::File::from(fds.into_iter().next().unwrap()).read_to_string(&mut got).unwrap();
        assert_eq!(got, "x", "the passed descriptor is the pipe's read end");
        drop(a);
        assert!(recv(&mut b).unwrap().is_none(), "end of file between messages");
    }

    #[test]
    fn a_large_body_and_no_descriptors() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let body = vec![7u8; 1 << 20];
        let sender = std::thread::spawn(move || send(&mut a, &body, &[]).unwrap());
        let (got, fds) = recv(&mut b).unwrap().unwrap();
        sender.join().unwrap();
        assert_eq!((got.len(), fds.len()), (1 << 20, 0));
    }

    #[test]
    fn a_datagram_carries_descriptors_and_the_senders_uid() {
        let dir = std::env::temp_dir().join(format!("sandboxrun-fd-passing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        let server = UnixDatagram::bind(&path).unwrap();
        nix::sys::socket::setsockopt(&server, nix::sys::socket::sockopt::PassCred, &true).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        let (r, _w) = std::io::pipe().unwrap();
        send_to(&client, &path, b"request", &[r.as_fd()]).unwrap();
        let (body, fds, uid) = recv_from(&server).unwrap();
        assert_eq!((body.as_slice(), fds.len()), (&b"request"[..], 1));
        // SAFETY: getuid has no preconditions.
        assert_eq!(uid, Some(unsafe { libc::getuid() }));
        assert!(send_to(&client, &dir.join("nobody-there"), b"x", &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_truncated_message_is_an_error() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&100u64.to_le_bytes()).unwrap();
        a.write_all(b"short").unwrap();
        drop(a);
        assert!(recv(&mut b).is_err());
    }
}
