//! Payload encodings shared by the message types: JSON for the values (see the crate's docs
//! for why), and byte strings that stay readable when they are UTF-8.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Appends `value` as JSON.
pub(crate) fn to_json<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), String> {
    serde_json::to_writer(out, value).map_err(|e| e.to_string())
}

/// Decodes JSON (the whole payload: trailing characters are an error). `serde_json` never
/// panics on its input and bounds its recursion.
pub(crate) fn from_json<T: DeserializeOwned>(payload: &[u8]) -> Result<T, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

/// Implements [`crate::Message`] for a type whose payload is its JSON.
macro_rules! json_message {
    ($ty:ty, $kind:expr, $max:expr) => {
        impl $crate::Message for $ty {
            const KIND: u8 = $kind;
            const NAME: &'static str = stringify!($ty);
            const MAX_LEN: u32 = $max;

            fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), String> {
                $crate::payload::to_json(self, out)
            }

            fn decode_payload(payload: &[u8]) -> Result<Self, String> {
                $crate::payload::from_json(payload)
            }
        }
    };
}
pub(crate) use json_message;

/// A byte string as JSON: a string when it is UTF-8 (nearly always), else an array of bytes.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Bytes<'a> {
    Text(std::borrow::Cow<'a, str>),
    Raw(Vec<u8>),
}

/// `serde(with)` for a `Vec<u8>` that is usually text.
pub(crate) mod bytes {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(value) {
            Ok(text) => Bytes::Text(text.into()),
            Err(_) => Bytes::Raw(value.to_vec()),
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(match Bytes::deserialize(d)? {
            Bytes::Text(text) => text.into_owned().into_bytes(),
            Bytes::Raw(raw) => raw,
        })
    }
}
