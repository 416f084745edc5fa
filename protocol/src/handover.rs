//! A run handed to a prepared child (started before the run was known), on their socket
//! pair: the run's description and its module, descriptors attached with `SCM_RIGHTS`.
//!
//! The description's type is the runner's (it is built from the policy, whose types this crate
//! does not depend on): [`Handover`] frames and bounds it whatever it is. The module travels as
//! raw bytes after the description, not as JSON.

use crate::payload::{from_json, to_json};
use crate::{kind, Message};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A run for a prepared child: `spec`, its description, and the module's bytes.
///
/// Payload: the description's length (`u32`, little-endian), the description (JSON), the
/// module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover<S> {
    /// The run's description.
    pub spec: S,
    /// The module's bytes (`.wasm` or `.wat`).
    pub module: Vec<u8>,
}

impl<S: Serialize + DeserializeOwned> Handover<S> {
    /// The frame of `Handover { spec, module }`, made from borrowed parts (the module is
    /// copied once, into the frame).
    ///
    /// # Errors
    /// As [`crate::encode`].
    pub fn encode_parts(spec: &S, module: &[u8]) -> Result<Vec<u8>, crate::ProtocolError> {
        crate::frame::encode_with::<Self>(|out| encode_payload(spec, module, out))
    }
}

fn encode_payload<S: Serialize>(spec: &S, module: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    to_json(spec, out)?;
    let len = u32::try_from(out.len() - at - 4).map_err(|_| "a description beyond 4 GiB".to_string())?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    out.extend_from_slice(module);
    Ok(())
}

impl<S: Serialize + DeserializeOwned> Message for Handover<S> {
    const KIND: u8 = kind::HANDOVER;
    const NAME: &'static str = "Handover";
    /// A module of 1 GiB is far beyond any a run could load.
    const MAX_LEN: u32 = 1 << 30;

    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), String> {
        encode_payload(&self.spec, &self.module, out)
    }

    fn decode_payload(payload: &[u8]) -> Result<Self, String> {
        let (len, rest) = payload.split_first_chunk::<4>().ok_or("no description length")?;
        let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| "a description beyond this machine")?;
        if len > rest.len() {
            return Err(format!("a description of {len} bytes in {} bytes", rest.len()));
        }
        let (spec, module) = rest.split_at(len);
        Ok(Handover { spec: from_json(spec)?, module: module.to_vec() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
    struct Spec {
        argv: Vec<String>,
        limit: u64,
    }

    #[test]
    fn handover() {
        checks::all(Handover {
            spec: Spec { argv: vec!["a.wasm".into()], limit: 7 },
            module: b"\0asm\x01\0\0\0".to_vec(),
        });
        checks::all(Handover { spec: Spec { argv: Vec::new(), limit: 0 }, module: Vec::new() });
        let spec = Spec { argv: vec!["x".into()], limit: 1 };
        let whole = crate::encode(&Handover { spec: spec.clone(), module: vec![1, 2, 3] }).unwrap();
        assert_eq!(Handover::encode_parts(&spec, &[1, 2, 3]).unwrap(), whole);
    }
}
