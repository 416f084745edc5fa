//! The answer a slot gives its client, on the reply socket the request carried.

use crate::kind;
use crate::payload::json_message;
use serde::{Deserialize, Serialize};

/// How the server answers a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The run's exit status.
    Status(i32),
    /// The server could not take the request: one line saying why.
    Refused(String),
}

json_message!(Reply, kind::REPLY, 64 << 10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks;

    #[test]
    fn reply() {
        checks::all(Reply::Status(0));
        checks::all(Reply::Status(-1));
        checks::all(Reply::Refused("this server serves uid 0 only, not uid 65534".into()));
    }
}
