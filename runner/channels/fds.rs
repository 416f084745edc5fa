//! Messages with descriptors attached (`SCM_RIGHTS`) over a Unix stream socket: how a client
//! hands its standard streams and working directory to a server, a slot its run's namespaces
//! to the server, and a supervisor a run to a child prepared before it.
//!
//! On a stream socket a message is one [`protocol`] frame: its header sent with the
//! descriptors, its payload plainly after it ([`send`], [`recv`]); the reader checks the
//! header's kind and bound before it reads the payload. On a datagram socket it is one
//! datagram holding the whole frame, which also carries the sender's credentials
//! ([`send_to`], [`recv_from`]); its reader decodes it with [`protocol::decode_untrusted`].

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};
use protocol::{Message, ProtocolError, HEADER_LEN};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

/// Most descriptors one message carries (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

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

/// Sends `message` with `fds` attached.
///
/// # Errors
/// The message cannot be encoded, too many descriptors, or the socket's error.
pub fn send<M: Message>(stream: &mut UnixStream, message: &M, fds: &[BorrowedFd<'_>]) -> Result<(), ProtocolError> {
    send_frame(stream, &protocol::encode(message)?, fds)
}

/// Sends an encoded frame with `fds` attached (to the header).
///
/// # Errors
/// Too many descriptors, or the socket's error.
pub fn send_frame(stream: &mut UnixStream, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), ProtocolError> {
    let raw = raw_fds(fds)?;
    let header = frame.get(..HEADER_LEN).ok_or_else(|| io::Error::other("not a frame"))?;
    let rights = [ControlMessage::ScmRights(&raw)];
    let control: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    let sent = sendmsg::<()>(stream.as_raw_fd(), &[IoSlice::new(header)], control, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(io::Error::from)?;
    stream.write_all(&frame[sent..])?;
    Ok(())
}

/// Receives one `M` and the descriptors attached to it (close-on-exec). `Ok(None)` at end of
/// file before a message. The payload is read only once the header says it is an `M` within
/// its bound ([`protocol::read_untrusted`]).
///
/// # Errors
/// The socket's error, or a frame that is not a whole, valid `M`.
pub fn recv<M: Message>(stream: &mut UnixStream) -> Result<Option<(M, Vec<OwnedFd>)>, ProtocolError> {
    let mut header = [0u8; HEADER_LEN];
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
            return Err(io::Error::other("a message carried more descriptors than fit").into());
        }
        (msg.bytes, fds)
    };
    if got == 0 {
        return Ok(None);
    }
    // The rest of the frame follows on the stream: the header's first bytes are replayed.
    let message = protocol::read_untrusted(&mut (&header[..got]).chain(&mut *stream))?;
    Ok(Some((message, fds)))
}

/// Largest datagram [`recv_from`] takes: the largest frame of a request.
pub const MAX_DATAGRAM: usize = protocol::request::MAX_DATAGRAM;

/// Sends `message` with `fds` attached, as one datagram, to the socket bound at `to`.
///
/// # Errors
/// The message cannot be encoded (or is too large for a datagram), too many descriptors, or
/// the socket's error (ECONNREFUSED: nothing bound there).
pub fn send_to<M: Message>(
    socket: &UnixDatagram,
    to: &Path,
    message: &M,
    fds: &[BorrowedFd<'_>],
) -> Result<(), ProtocolError> {
    let body = protocol::encode(message)?;
    let raw = raw_fds(fds)?;
    let address = UnixAddr::new(to).map_err(io::Error::from)?;
    let rights = [ControlMessage::ScmRights(&raw)];
    let control: &[ControlMessage] = if raw.is_empty() { &[] } else { &rights };
    sendmsg(socket.as_raw_fd(), &[IoSlice::new(&body)], control, MsgFlags::MSG_NOSIGNAL, Some(&address))
        .map_err(io::Error::from)?;
    Ok(())
}

/// Receives one datagram: its body (a frame, to decode with [`protocol::decode_untrusted`]), its descriptors (close-on-exec) and the uid of its
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
    use protocol::handover::Handover;
    use protocol::reply::Reply;
    use protocol::slot::SlotNews;
    use std::os::fd::AsFd;

    #[test]
    fn a_message_carries_its_descriptors() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let (r, mut w) = std::io::pipe().unwrap();
        send(&mut a, &SlotNews::Done { hot: None }, &[r.as_fd()]).unwrap();
        drop(r);
        let (news, fds) = recv::<SlotNews>(&mut b).unwrap().unwrap();
        assert_eq!(news, SlotNews::Done { hot: None });
        assert_eq!(fds.len(), 1);
        w.write_all(b"x").unwrap();
        drop(w);
        let mut got = String::new();
        std::fs::File::from(fds.into_iter().next().unwrap()).read_to_string(&mut got).unwrap();
        assert_eq!(got, "x", "the passed descriptor is the pipe's read end");
        drop(a);
        assert!(recv::<SlotNews>(&mut b).unwrap().is_none(), "end of file between messages");
    }

    #[test]
    fn a_large_body_and_no_descriptors() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let handover = Handover { spec: "x".repeat(1 << 20) };
        let sent = handover.clone();
        let sender = std::thread::spawn(move || send(&mut a, &sent, &[]).unwrap());
        let (got, fds) = recv::<Handover<String>>(&mut b).unwrap().unwrap();
        sender.join().unwrap();
        assert_eq!((got, fds.len()), (handover, 0));
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
        send_to(&client, &path, &Reply::Status(3), &[r.as_fd()]).unwrap();
        let (body, fds, uid) = recv_from(&server).unwrap();
        assert_eq!((protocol::decode_untrusted::<Reply>(&body).unwrap(), fds.len()), (Reply::Status(3), 1));
        // SAFETY: getuid has no preconditions.
        assert_eq!(uid, Some(unsafe { libc::getuid() }));
        assert!(send_to(&client, &dir.join("nobody-there"), &Reply::Status(0), &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_truncated_message_is_an_error() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let frame = protocol::encode(&Reply::Refused("a long enough line".into())).unwrap();
        a.write_all(&frame[..frame.len() - 3]).unwrap();
        drop(a);
        assert!(matches!(recv::<Reply>(&mut b), Err(ProtocolError::Truncated { .. })));
    }

    #[test]
    fn an_oversize_or_unexpected_message_is_refused_from_its_header() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&[protocol::MAGIC | protocol::VERSION, protocol::kind::SLOT_NEWS, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert!(matches!(recv::<SlotNews>(&mut b), Err(ProtocolError::TooLarge { .. })));
        let (mut a, mut b) = UnixStream::pair().unwrap();
        send(&mut a, &Reply::Status(1), &[]).unwrap();
        assert!(matches!(recv::<SlotNews>(&mut b), Err(ProtocolError::WrongKind { .. })));
    }
}
