//! A run handed to a prepared child (started before the run was known), on their socket
//! pair: the run's description, descriptors attached with `SCM_RIGHTS` (the module among them:
//! it travels as an open file, never as bytes in the frame).
//!
//! The description's type is the runner's (it is built from the policy, whose types this crate
//! does not depend on): [`Handover`] frames and bounds it whatever it is.

use crate::payload::{from_json, to_json};
use crate::{kind, Message};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A run for a prepared child: `spec`, its description. Payload: the description (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover<S> {
    /// The run's description.
    pub spec: S,
}

impl<S: Serialize + DeserializeOwned> Message for Handover<S> {
    const KIND: u8 = kind::HANDOVER;
    const NAME: &'static str = "Handover";
    /// A description names arguments, environment and mounts: 16 MiB is far beyond any.
    const MAX_LEN: u32 = 16 << 20;

    fn encode_payload(&self, out: &mut Vec<u8>) -> Result<(), String> {
        to_json(&self.spec, out)
    }

    fn decode_payload(payload: &[u8]) -> Result<Self, String> {
        Ok(Handover { spec: from_json(payload)? })
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
        checks::all(Handover { spec: Spec { argv: vec!["a.wasm".into()], limit: 7 } });
        checks::all(Handover { spec: Spec { argv: Vec::new(), limit: 0 } });
    }
}
