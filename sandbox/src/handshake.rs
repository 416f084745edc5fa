//! The spawn handshake as [`crate::spawn()`] speaks it: the messages of
//! [`protocol::handshake`], one frame each, over a UNIX stream socket pair. A closed peer or
//! an unexpected message is an error, and the parent's reads time out: never a hang.
//!
//! 1. parent → child: [`ToChild::Proceed`] once the id maps are written and the child is in
//!    its cgroup;
//! 2. child → parent: [`ToParent::Ready`] once it has taken its identity, or
//!    [`ToParent::Failed`] with the one-line error.
//!
//! The child's answer is untrusted like everything a child sends (it has not run guest code
//! yet, but its setup ran under a new identity): it is read through
//! [`protocol::read_untrusted`], bounded before anything is allocated.

use protocol::handshake::{ToChild, ToParent};
use protocol::{Message, ProtocolError};
use std::io;
use std::os::unix::net::UnixStream;

/// Why the handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer closed its end (it died, or gave up).
    #[error("spawn handshake: the other side closed the connection")]
    Closed,
    /// A message of the wrong type arrived.
    #[error("spawn handshake: unexpected message type {0}")]
    Unexpected(u8),
    /// A message that is not one of the protocol's (truncated, oversize, another version, a
    /// malformed payload).
    #[error("spawn handshake: {0}")]
    Malformed(ProtocolError),
    /// Reading or writing failed (or timed out).
    #[error("spawn handshake: {0}")]
    Io(io::Error),
}

impl From<ProtocolError> for HandshakeError {
    fn from(e: ProtocolError) -> HandshakeError {
        match e {
            ProtocolError::Closed => HandshakeError::Closed,
            ProtocolError::WrongKind { got, .. } => HandshakeError::Unexpected(got),
            ProtocolError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => HandshakeError::Closed,
            ProtocolError::Io(e) => HandshakeError::Io(e),
            e => HandshakeError::Malformed(e),
        }
    }
}

/// Sends one handshake message.
pub(crate) fn send<M: Message>(stream: &mut UnixStream, message: &M) -> Result<(), HandshakeError> {
    Ok(protocol::write(stream, message)?)
}

/// Receives the parent's message.
pub(crate) fn recv_to_child(stream: &mut UnixStream) -> Result<ToChild, HandshakeError> {
    Ok(protocol::read_untrusted(stream)?)
}

/// Receives the child's message.
pub(crate) fn recv_to_parent(stream: &mut UnixStream) -> Result<ToParent, HandshakeError> {
    Ok(protocol::read_untrusted(stream)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn messages_round_trip() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        send(&mut a, &ToChild::Proceed { cgroup: true }).unwrap();
        assert_eq!(recv_to_child(&mut b).unwrap(), ToChild::Proceed { cgroup: true });
        send(&mut b, &ToParent::failed("setresuid: EPERM".into())).unwrap();
        assert_eq!(recv_to_parent(&mut a).unwrap(), ToParent::Failed("setresuid: EPERM".into()));
        send(&mut b, &ToParent::Ready).unwrap();
        let got = recv_to_child(&mut a);
        assert!(matches!(got, Err(HandshakeError::Unexpected(protocol::kind::HANDSHAKE_TO_PARENT))), "{got:?}");
    }

    #[test]
    fn a_closed_peer_is_an_error() {
        let (mut a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert!(matches!(recv_to_parent(&mut a), Err(HandshakeError::Closed)));
    }

    #[test]
    fn a_frame_of_another_version_or_cut_short_is_an_error() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        b.write_all(&[protocol::MAGIC | (protocol::VERSION + 1), protocol::kind::HANDSHAKE_TO_PARENT, 0, 0, 0, 0])
            .unwrap();
        let got = recv_to_parent(&mut a);
        assert!(matches!(got, Err(HandshakeError::Malformed(ProtocolError::Version { .. }))), "{got:?}");
        b.write_all(&protocol::encode(&ToParent::Ready).unwrap()[..3]).unwrap();
        drop(b);
        let got = recv_to_parent(&mut a);
        assert!(matches!(got, Err(HandshakeError::Malformed(ProtocolError::Truncated { .. }))), "{got:?}");
    }
}
