//! The typed messages parent and child exchange while [`crate::spawn()`] sets the child up, over
//! a UNIX stream socket pair. A closed peer or an unexpected message is an error, and the
//! parent's reads time out: never a hang.
//!
//! 1. parent → child: [`ToChild::Proceed`] once the id maps are written and the child is in
//!    its cgroup;
//! 2. child → parent: [`ToParent::Ready`] once it has taken its identity, or
//!    [`ToParent::Failed`] with the one-line error.

use std::io::{self, Read, Write};
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
    /// Reading or writing failed (or timed out).
    #[error("spawn handshake: {0}")]
    Io(io::Error),
}

/// Parent to child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToChild {
    /// Go on: the id maps are written; `cgroup` says whether the child was moved into one.
    Proceed {
        /// Whether the child is in the run's cgroup.
        cgroup: bool,
    },
}

/// Child to parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToParent {
    /// Set up: the child runs its function next.
    Ready,
    /// Setup failed; the child exits.
    Failed(String),
}

const PROCEED: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;

/// A frame: the type, the payload's length (u16, little-endian), the payload.
fn send(stream: &mut UnixStream, kind: u8, payload: &[u8]) -> Result<(), HandshakeError> {
    let payload = &payload[..payload.len().min(u16::MAX as usize)];
    let mut frame = vec![kind];
    frame.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame).map_err(HandshakeError::Io)
}

fn recv(stream: &mut UnixStream) -> Result<(u8, Vec<u8>), HandshakeError> {
    let read = |stream: &mut UnixStream, buf: &mut [u8]| {
        stream.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => HandshakeError::Closed,
            _ => HandshakeError::Io(e),
        })
    };
    let mut header = [0u8; 3];
    read(stream, &mut header)?;
    let mut payload = vec![0u8; u16::from_le_bytes([header[1], header[2]]) as usize];
    read(stream, &mut payload)?;
    Ok((header[0], payload))
}

impl ToChild {
    pub(crate) fn send(&self, stream: &mut UnixStream) -> Result<(), HandshakeError> {
        match self {
            ToChild::Proceed { cgroup } => send(stream, PROCEED, &[u8::from(*cgroup)]),
        }
    }

    pub(crate) fn recv(stream: &mut UnixStream) -> Result<ToChild, HandshakeError> {
        match recv(stream)? {
            (PROCEED, payload) => Ok(ToChild::Proceed { cgroup: payload.first() == Some(&1) }),
            (kind, _) => Err(HandshakeError::Unexpected(kind)),
        }
    }
}

impl ToParent {
    pub(crate) fn send(&self, stream: &mut UnixStream) -> Result<(), HandshakeError> {
        match self {
            ToParent::Ready => send(stream, READY, &[]),
            ToParent::Failed(message) => send(stream, FAILED, message.as_bytes()),
        }
    }

    pub(crate) fn recv(stream: &mut UnixStream) -> Result<ToParent, HandshakeError> {
        match recv(stream)? {
            (READY, _) => Ok(ToParent::Ready),
            (FAILED, payload) => Ok(ToParent::Failed(String::from_utf8_lossy(&payload).into_owned())),
            (kind, _) => Err(HandshakeError::Unexpected(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        ToChild::Proceed { cgroup: true }.send(&mut a).unwrap();
        assert_eq!(ToChild::recv(&mut b).unwrap(), ToChild::Proceed { cgroup: true });
        ToParent::Failed("setresuid: EPERM".into()).send(&mut b).unwrap();
        assert_eq!(ToParent::recv(&mut a).unwrap(), ToParent::Failed("setresuid: EPERM".into()));
        ToParent::Ready.send(&mut b).unwrap();
        assert!(matches!(ToChild::recv(&mut a), Err(HandshakeError::Unexpected(READY))));
    }

    #[test]
    fn a_closed_peer_is_an_error() {
        let (mut a, b) = UnixStream::pair().unwrap();
        drop(b);
        assert!(matches!(ToParent::recv(&mut a), Err(HandshakeError::Closed)));
    }
}
