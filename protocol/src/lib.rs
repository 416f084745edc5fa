//! The one protocol sandboxrun's processes speak to each other: the supervising parent, the
//! confined child, a prepared child, the server, its slots and a client.
//!
//! # Frames
//!
//! Every message travels as one frame, whatever carries it (a pipe, a socket pair, a datagram
//! with descriptors attached):
//!
//! | bytes | what                                                                   |
//! |-------|------------------------------------------------------------------------|
//! | 0     | magic and version: `0xA0 \| VERSION` ([`MAGIC`], [`VERSION`])         |
//! | 1     | the message's kind ([`Message::KIND`], one byte per message type)      |
//! | 2..6  | the payload's length, `u32` little-endian, at most [`Message::MAX_LEN`] |
//! | 6..   | the payload                                                            |
//!
//! A reader knows which message it expects next: a frame of another kind, of another version,
//! longer than the expected type allows, cut short, or followed by trailing bytes is an error
//! ([`ProtocolError`]), never a guess. The length is checked against the expected type's
//! maximum *before* anything is allocated for the payload.
//!
//! # Payloads
//!
//! Payloads are JSON (`serde_json`, already in the tree): the messages are small and rare
//! (a handful per run), so a binary format would save microseconds nobody waits for, while
//! JSON keeps them readable in `strace` output and gives a well-tested parser with a recursion
//! limit. The one large payload, a module handed to a prepared child ([`handover`]), travels
//! as raw bytes after its JSON description; code artifacts do not travel in frames at all
//! (a sealed memfd one way, a bounded pipe the other, see [`code_channel`]).
//!
//! # Everything read is untrusted
//!
//! A confined child runs guest code, and a guest that took over its process may write
//! anything on the descriptors it still holds. A client is another process. So there is one
//! way to read a message, [`decode_untrusted`] (or [`read_untrusted`] on a stream), and it
//! treats every byte as hostile: it never panics, bounds every size before allocating,
//! rejects trailing bytes, and validates what the types alone cannot say (no NUL byte in an
//! argument, say). Messages a confined child sends are marked [`FromConfined`]; their readers
//! must also accept them only in the protocol state that expects them.
//!
//! # Channels
//!
//! One module per channel, each message one type implementing [`Message`]:
//! [`handshake`] (spawn handshake), [`code_channel`] (the cache answer), [`handover`] (a run
//! handed to a prepared child), [`request`] (a client's request datagram), [`slot`] (a slot's
//! news to the server), [`reply`] (the exit status a client gets), [`report`] (the child's
//! report to its supervisor).

mod frame;
mod payload;

pub mod code_channel;
pub mod handover;
pub mod handshake;
pub mod reply;
pub mod report;
pub mod request;
pub mod slot;

pub use frame::{decode_untrusted, encode, max_frame_len, read_untrusted, write, Header, ProtocolError, HEADER_LEN};

/// The high nibble of a frame's first byte.
pub const MAGIC: u8 = 0xA0;

/// The protocol's version, the low nibble of a frame's first byte. Bumped when any message's
/// layout changes: a mixed installation (a server of one version, a client of another) then
/// fails with [`ProtocolError::Version`] instead of misreading.
pub const VERSION: u8 = 1;

/// Every message kind, in one place so that no two types share one.
pub mod kind {
    /// [`crate::handshake::ToChild`].
    pub const HANDSHAKE_TO_CHILD: u8 = 1;
    /// [`crate::handshake::ToParent`].
    pub const HANDSHAKE_TO_PARENT: u8 = 2;
    /// [`crate::code_channel::CacheAnswer`].
    pub const CACHE_ANSWER: u8 = 3;
    /// [`crate::handover::Handover`].
    pub const HANDOVER: u8 = 4;
    /// [`crate::request::Request`].
    pub const REQUEST: u8 = 5;
    /// [`crate::slot::SlotNews`].
    pub const SLOT_NEWS: u8 = 6;
    /// [`crate::reply::Reply`].
    pub const REPLY: u8 = 7;
    /// [`crate::report::ChildReport`].
    pub const CHILD_REPORT: u8 = 8;
    /// [`crate::report::ChildStarted`]: a child about to run guest code, to its supervisor.
    pub const CHILD_STARTED: u8 = 9;
}

/// One message type of the protocol.
///
/// Implementations encode their payload and decode it from bytes that may come from anyone:
/// [`Message::decode_payload`] must not panic, whatever the bytes, and must refuse values the
/// receiver could not safely use.
pub trait Message: Sized {
    /// The frame's kind byte (one of [`kind`]).
    const KIND: u8;
    /// The type's name, for error messages.
    const NAME: &'static str;
    /// The longest payload accepted; a longer frame is refused before its payload is read.
    const MAX_LEN: u32;

    /// Appends the payload to `out`.
    ///
    /// # Errors
    /// The value cannot be encoded (the framing then also refuses payloads over
    /// [`Message::MAX_LEN`]).
    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), String>;

    /// Decodes a payload of exactly these bytes.
    ///
    /// # Errors
    /// One line saying what is wrong with it.
    fn decode_payload(payload: &[u8]) -> Result<Self, String>;
}

/// A message a confined child sends (or a process that will run guest code): its reader
/// takes it as hostile input and bounds the pipe it comes on by [`max_frame_len`].
pub trait FromConfined: Message {}

#[cfg(test)]
mod tests {
    #[test]
    fn every_kind_is_its_own() {
        use crate::kind::*;
        let mut kinds = [
            HANDSHAKE_TO_CHILD,
            HANDSHAKE_TO_PARENT,
            CACHE_ANSWER,
            HANDOVER,
            REQUEST,
            SLOT_NEWS,
            REPLY,
            CHILD_REPORT,
            CHILD_STARTED,
        ];
        kinds.sort_unstable();
        let before = kinds.len();
        assert_eq!(kinds.iter().collect::<std::collections::BTreeSet<_>>().len(), before);
    }
}

/// Per-type checks every message type gets: round trip, an oversize frame refused before its
/// payload is read, a truncated frame, a wrong kind, a wrong version, trailing bytes.
#[cfg(test)]
pub(crate) mod checks {
    use crate::{decode_untrusted, encode, read_untrusted, Message, ProtocolError, HEADER_LEN, MAGIC, VERSION};
    use std::fmt::Debug;
    use std::io::Read;

    /// A reader that hands out `bytes` and then fails the test if read further: proof that the
    /// reader stopped at the header.
    struct HeaderOnly(Vec<u8>, usize);

    impl Read for HeaderOnly {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            assert!(self.1 < self.0.len(), "read past the header of an oversize frame");
            let n = buf.len().min(self.0.len() - self.1);
            buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    /// Runs every check on `message`.
    pub(crate) fn all<M: Message + PartialEq + Debug>(message: M) {
        let frame = encode(&message).unwrap();
        assert_eq!(frame[0], MAGIC | VERSION);
        assert_eq!(frame[1], M::KIND);
        assert_eq!(decode_untrusted::<M>(&frame).unwrap(), message, "round trip");
        assert_eq!(read_untrusted::<M>(&mut &frame[..]).unwrap(), message, "round trip on a stream");

        // Oversize: refused from the header alone, for the largest length too.
        for len in [u64::from(M::MAX_LEN) + 1, u64::from(u32::MAX)] {
            let Ok(len) = u32::try_from(len) else { continue };
            let mut header = vec![MAGIC | VERSION, M::KIND];
            header.extend_from_slice(&len.to_le_bytes());
            let got = read_untrusted::<M>(&mut HeaderOnly(header.clone(), 0));
            assert!(matches!(got, Err(ProtocolError::TooLarge { .. })), "{got:?}");
            assert!(matches!(decode_untrusted::<M>(&header), Err(ProtocolError::TooLarge { .. })));
        }

        // Truncated, anywhere.
        for cut in 1..frame.len() {
            let got = decode_untrusted::<M>(&frame[..cut]);
            assert!(matches!(got, Err(ProtocolError::Truncated { .. })), "cut at {cut}: {got:?}");
            let got = read_untrusted::<M>(&mut &frame[..cut]);
            assert!(matches!(got, Err(ProtocolError::Truncated { .. })), "cut at {cut}: {got:?}");
        }
        assert!(matches!(read_untrusted::<M>(&mut &[][..]), Err(ProtocolError::Closed)));

        // Wrong kind.
        let mut other = frame.clone();
        other[1] = M::KIND.wrapping_add(1);
        let got = decode_untrusted::<M>(&other);
        assert!(matches!(got, Err(ProtocolError::WrongKind { got, .. }) if got == M::KIND.wrapping_add(1)), "{got:?}");

        // Wrong version, and not a frame at all.
        let mut newer = frame.clone();
        newer[0] = MAGIC | (VERSION + 1);
        let got = decode_untrusted::<M>(&newer);
        assert!(matches!(got, Err(ProtocolError::Version { got, .. }) if got == VERSION + 1), "{got:?}");
        assert!(got.unwrap_err().to_string().contains("version"));
        let mut json = frame.clone();
        json[0] = b'{';
        assert!(matches!(decode_untrusted::<M>(&json), Err(ProtocolError::NotAFrame { .. })));

        // Trailing bytes.
        let mut longer = frame.clone();
        longer.push(0);
        let got = decode_untrusted::<M>(&longer);
        assert!(matches!(got, Err(ProtocolError::TrailingBytes { extra: 1, .. })), "{got:?}");

        // A payload that is not the type's.
        let mut garbage = frame[..HEADER_LEN].to_vec();
        garbage[2..6].copy_from_slice(&3u32.to_le_bytes());
        garbage.extend_from_slice(b"\xff\x00{");
        assert!(matches!(decode_untrusted::<M>(&garbage), Err(ProtocolError::Payload { .. })));
    }
}
