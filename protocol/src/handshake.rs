//! The spawn handshake: parent and child while `sandbox::spawn` sets the child up, over a
//! UNIX stream socket pair.
//!
//! 1. parent → child: [`ToChild::Proceed`] once the id maps are written and the child is in
//!    its cgroup;
//! 2. child → parent: [`ToParent::Ready`] once it has taken its identity, or
//!    [`ToParent::Failed`] with the one-line error.

use crate::payload::json_message;
use crate::{kind, FromConfined};
use serde::{Deserialize, Serialize};

/// Parent to child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToChild {
    /// Go on: the id maps are written; `cgroup` says whether the child was moved into one.
    Proceed {
        /// Whether the child is in the run's cgroup.
        cgroup: bool,
    },
}

json_message!(ToChild, kind::HANDSHAKE_TO_CHILD, 64);

/// Child to parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToParent {
    /// Set up: the child runs its function next.
    Ready,
    /// Setup failed; the child exits.
    Failed(String),
}

impl ToParent {
    /// The longest message [`ToParent::failed`] keeps, in bytes.
    pub const MAX_MESSAGE: usize = 4096;

    /// [`ToParent::Failed`] with `message`, cut to [`ToParent::MAX_MESSAGE`] bytes (at a
    /// character boundary) so that it always fits the frame.
    pub fn failed(mut message: String) -> ToParent {
        if message.len() > Self::MAX_MESSAGE {
            let mut end = Self::MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        ToParent::Failed(message)
    }
}

// 4 KiB of text escapes to at most 6 times as much JSON.
json_message!(ToParent, kind::HANDSHAKE_TO_PARENT, 32 << 10);

impl FromConfined for ToParent {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks;

    #[test]
    fn to_child() {
        checks::all(ToChild::Proceed { cgroup: true });
        checks::all(ToChild::Proceed { cgroup: false });
    }

    #[test]
    fn to_parent() {
        checks::all(ToParent::Ready);
        checks::all(ToParent::Failed("setresuid: EPERM".into()));
        // The longest message, of the characters JSON escapes most.
        let failed = ToParent::failed("\u{1}".repeat(10_000));
        assert!(matches!(&failed, ToParent::Failed(m) if m.len() == ToParent::MAX_MESSAGE));
        checks::all(failed);
        assert!(matches!(ToParent::failed("é".repeat(3000)), ToParent::Failed(m) if m.len() == 4096));
    }
}
