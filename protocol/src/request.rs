//! A client's request to a server: one datagram, its descriptors attached with `SCM_RIGHTS`
//! (the client's end of the reply socket, then its working directory and standard streams).

use crate::payload::{bytes, from_json, to_json};
use crate::{kind, Message};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Largest datagram a server takes: the frame of a [`Request`] fits it.
pub const MAX_DATAGRAM: usize = 64 << 10;

/// A client's request: its command line and the environment variables sandboxrun reads.
/// No entry holds a NUL byte, and no key is empty or holds `=` (the decoder refuses them: they
/// could not be set as arguments or variables).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The command line, `argv[0]` first.
    pub argv: Vec<OsString>,
    /// The environment entries.
    pub env: Vec<(OsString, OsString)>,
}

/// A byte string on the wire.
#[derive(Serialize, Deserialize)]
struct Entry(#[serde(with = "bytes")] Vec<u8>);

/// The payload.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    argv: Vec<Entry>,
    env: Vec<(Entry, Entry)>,
}

impl Message for Request {
    const KIND: u8 = kind::REQUEST;
    const NAME: &'static str = "Request";
    const MAX_LEN: u32 = (MAX_DATAGRAM - crate::HEADER_LEN) as u32;

    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), String> {
        let entry = |s: &OsString| Entry(s.as_bytes().to_vec());
        let wire = Wire {
            argv: self.argv.iter().map(entry).collect(),
            env: self.env.iter().map(|(k, v)| (entry(k), entry(v))).collect(),
        };
        to_json(&wire, out)
    }

    fn decode_payload(payload: &[u8]) -> Result<Self, String> {
        let wire: Wire = from_json(payload)?;
        let nul = |e: &Entry| e.0.contains(&0);
        if wire.argv.iter().any(nul) || wire.env.iter().any(|(k, v)| nul(k) || nul(v)) {
            return Err("an entry holds a NUL byte".into());
        }
        if wire.env.iter().any(|(k, _)| k.0.is_empty() || k.0.contains(&b'=')) {
            return Err("an environment variable's name is empty or holds '='".into());
        }
        let os = |e: Entry| OsString::from_vec(e.0);
        Ok(Request {
            argv: wire.argv.into_iter().map(os).collect(),
            env: wire.env.into_iter().map(|(k, v)| (os(k), os(v))).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{checks, decode_untrusted, encode, ProtocolError};

    #[test]
    fn request() {
        checks::all(Request {
            argv: vec!["sandboxrun".into(), OsString::from_vec(vec![0xff, b'x']), "".into()],
            env: vec![("HOME".into(), "/h=x".into()), ("XDG_CACHE_HOME".into(), "".into())],
        });
        checks::all(Request { argv: Vec::new(), env: Vec::new() });
    }

    #[test]
    fn entries_that_could_not_be_used_are_refused() {
        let bad = [
            Request { argv: vec!["a\0b".into()], env: Vec::new() },
            Request { argv: Vec::new(), env: vec![("HOME".into(), "\0".into())] },
            Request { argv: Vec::new(), env: vec![("".into(), "x".into())] },
            Request { argv: Vec::new(), env: vec![("A=B".into(), "x".into())] },
        ];
        for request in bad {
            let got = decode_untrusted::<Request>(&encode(&request).unwrap());
            assert!(matches!(got, Err(ProtocolError::Payload { .. })), "{request:?}: {got:?}");
        }
    }

    #[test]
    fn a_request_too_large_for_a_datagram_is_refused_when_encoded() {
        let request = Request { argv: vec![OsString::from("x".repeat(MAX_DATAGRAM))], env: Vec::new() };
        assert!(matches!(encode(&request), Err(ProtocolError::TooLarge { .. })));
    }
}
