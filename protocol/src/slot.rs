//! A slot's news to the server, on their socket pair (descriptors attached with
//! `SCM_RIGHTS`).

use crate::kind;
use crate::payload::json_message;
use serde::{Deserialize, Serialize};

/// What a slot tells the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotNews {
    /// It has taken a client.
    Busy,
    /// Its run is over; the descriptors attached are the run's namespaces.
    Done,
}

json_message!(SlotNews, kind::SLOT_NEWS, 64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks;

    #[test]
    fn slot_news() {
        checks::all(SlotNews::Busy);
        checks::all(SlotNews::Done);
    }
}
