//! The frame every message travels in, and the only ways to write and read one.

use crate::{Message, MAGIC, VERSION};
use std::io::{self, Read, Write};

/// Bytes of a frame's header: magic and version, kind, length (`u32`, little-endian).
pub const HEADER_LEN: usize = 6;

/// Why a message could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The peer closed its end before a frame began (it died, or had nothing to say).
    #[error("the other side closed the connection")]
    Closed,
    /// The frame ended early.
    #[error("a truncated {what}: {got} of {needed} bytes")]
    Truncated {
        /// The message expected.
        what: &'static str,
        /// Bytes the frame (header, or header and payload) needed.
        needed: u64,
        /// Bytes that came.
        got: u64,
    },
    /// The first byte is not a frame's.
    #[error("not a message of this program's protocol (first byte {first:#04x})")]
    NotAFrame {
        /// The byte found.
        first: u8,
    },
    /// The peer speaks another version of the protocol.
    #[error("protocol version {got}, this program speaks version {expected} (mixed sandboxrun installations?)")]
    Version {
        /// The peer's version.
        got: u8,
        /// Ours, [`VERSION`].
        expected: u8,
    },
    /// Another message came than the one expected.
    #[error("unexpected message kind {got} where a {expected} (kind {expected_kind}) was expected")]
    WrongKind {
        /// The message expected.
        expected: &'static str,
        /// Its kind.
        expected_kind: u8,
        /// The kind that came.
        got: u8,
    },
    /// The payload is longer than its type allows (checked before reading it).
    #[error("a {what} of {len} bytes, more than the {max} it may have")]
    TooLarge {
        /// The message.
        what: &'static str,
        /// Its length.
        len: u64,
        /// The most it may have ([`Message::MAX_LEN`]).
        max: u32,
    },
    /// Bytes follow the frame.
    #[error("{extra} bytes after a {what}")]
    TrailingBytes {
        /// The message.
        what: &'static str,
        /// How many bytes follow it.
        extra: u64,
    },
    /// The payload is not a valid message of its kind.
    #[error("a malformed {what}: {reason}")]
    Payload {
        /// The message.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing failed (or timed out).
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A frame's header, parsed and checked for magic and version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The kind byte.
    pub kind: u8,
    /// The payload's length.
    pub len: u32,
}

impl Header {
    /// Parses a header.
    ///
    /// # Errors
    /// [`ProtocolError::NotAFrame`] or [`ProtocolError::Version`].
    pub fn parse(bytes: [u8; HEADER_LEN]) -> Result<Header, ProtocolError> {
        if bytes[0] & 0xF0 != MAGIC {
            return Err(ProtocolError::NotAFrame { first: bytes[0] });
        }
        if bytes[0] & 0x0F != VERSION {
            return Err(ProtocolError::Version { got: bytes[0] & 0x0F, expected: VERSION });
        }
        Ok(Header { kind: bytes[1], len: u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) })
    }

    /// Checks that this header starts an `M` within `M`'s bound; returns the payload's length.
    ///
    /// # Errors
    /// [`ProtocolError::WrongKind`] or [`ProtocolError::TooLarge`].
    pub fn expect<M: Message>(self) -> Result<usize, ProtocolError> {
        if self.kind != M::KIND {
            return Err(ProtocolError::WrongKind { expected: M::NAME, expected_kind: M::KIND, got: self.kind });
        }
        if self.len > M::MAX_LEN {
            return Err(ProtocolError::TooLarge { what: M::NAME, len: self.len.into(), max: M::MAX_LEN });
        }
        usize::try_from(self.len).map_err(|_| ProtocolError::TooLarge { what: M::NAME, len: self.len.into(), max: 0 })
    }
}

/// The longest frame of an `M`: what a reader of a pipe carrying one `M` bounds it by.
pub const fn max_frame_len<M: Message>() -> usize {
    HEADER_LEN + M::MAX_LEN as usize
}

/// The frame of `message`.
///
/// # Errors
/// The payload cannot be encoded, or is longer than [`Message::MAX_LEN`].
pub fn encode<M: Message>(message: &M) -> Result<Vec<u8>, ProtocolError> {
    encode_with::<M>(|out| message.encode_payload(out))
}

/// The frame of an `M` whose payload `fill` appends (for a message encoded from borrowed
/// parts).
pub(crate) fn encode_with<M: Message>(
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<Vec<u8>, ProtocolError> {
    let mut frame = vec![MAGIC | VERSION, M::KIND, 0, 0, 0, 0];
    fill(&mut frame).map_err(|reason| ProtocolError::Payload { what: M::NAME, reason })?;
    let len = (frame.len() - HEADER_LEN) as u64;
    let too_large = || ProtocolError::TooLarge { what: M::NAME, len, max: M::MAX_LEN };
    let len32 = u32::try_from(len).map_err(|_| too_large())?;
    if len32 > M::MAX_LEN {
        return Err(too_large());
    }
    frame[2..HEADER_LEN].copy_from_slice(&len32.to_le_bytes());
    Ok(frame)
}

/// Writes `message` as one frame, in one `write_all` (a frame up to `PIPE_BUF` bytes reaches a
/// pipe whole, without blocking on its reader while the pipe has room).
///
/// # Errors
/// As [`encode`], or the write failed.
pub fn write<M: Message>(writer: &mut impl Write, message: &M) -> Result<(), ProtocolError> {
    writer.write_all(&encode(message)?)?;
    Ok(())
}

/// Decodes one whole frame of an `M` from bytes anyone may have written. Never panics; the
/// payload's length is checked against [`Message::MAX_LEN`] before it is looked at; bytes after
/// the frame are an error.
///
/// # Errors
/// Any [`ProtocolError`] but `Closed` and `Io`.
pub fn decode_untrusted<M: Message>(frame: &[u8]) -> Result<M, ProtocolError> {
    let truncated = |needed: u64| ProtocolError::Truncated { what: M::NAME, needed, got: frame.len() as u64 };
    let Some((header, payload)) = frame.split_first_chunk::<HEADER_LEN>() else {
        return Err(truncated(HEADER_LEN as u64));
    };
    let len = Header::parse(*header)?.expect::<M>()?;
    match payload.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(truncated((HEADER_LEN + len) as u64)),
        std::cmp::Ordering::Greater => {
            Err(ProtocolError::TrailingBytes { what: M::NAME, extra: (payload.len() - len) as u64 })
        }
        std::cmp::Ordering::Equal => decode_payload(payload),
    }
}

/// Reads one frame of an `M` from a stream anyone may write: as [`decode_untrusted`], the
/// payload's buffer allocated only once its length is known to be within bounds. Reads
/// exactly the frame: what follows stays in the stream.
///
/// # Errors
/// [`ProtocolError::Closed`] at end of file before the frame, [`ProtocolError::Truncated`]
/// within it, or as [`decode_untrusted`].
pub fn read_untrusted<M: Message>(reader: &mut impl Read) -> Result<M, ProtocolError> {
    let mut header = [0u8; HEADER_LEN];
    match fill(reader, &mut header)? {
        0 => return Err(ProtocolError::Closed),
        HEADER_LEN => {}
        got => return Err(ProtocolError::Truncated { what: M::NAME, needed: HEADER_LEN as u64, got: got as u64 }),
    }
    let len = Header::parse(header)?.expect::<M>()?;
    let mut payload = vec![0u8; len];
    let got = fill(reader, &mut payload)?;
    if got < len {
        return Err(ProtocolError::Truncated {
            what: M::NAME,
            needed: (HEADER_LEN + len) as u64,
            got: (HEADER_LEN + got) as u64,
        });
    }
    decode_payload(&payload)
}

/// Reads into `buf` until it is full or the stream ends; returns how much it holds.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, ProtocolError> {
    let mut at = 0;
    while at < buf.len() {
        match reader.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ProtocolError::Io(e)),
        }
    }
    Ok(at)
}

fn decode_payload<M: Message>(payload: &[u8]) -> Result<M, ProtocolError> {
    M::decode_payload(payload).map_err(|reason| ProtocolError::Payload { what: M::NAME, reason })
}
