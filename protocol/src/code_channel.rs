//! The code channel's answer: what the supervisor found in the code cache, on a pipe to the
//! child. A hit's artifact itself is not in the frame: the supervisor has written it into a
//! memfd, sealed, which the child maps; compiled code goes back raw on a second pipe, which
//! the supervisor bounds and checks as it would any artifact.

use crate::kind;
use crate::payload::json_message;
use serde::{Deserialize, Serialize};

/// The supervisor's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CacheAnswer {
    /// No usable cache: compile, send nothing back.
    NoCache,
    /// Not cached: compile and send the artifact back.
    Miss,
    /// Cached: the file sent with the answer holds the artifact's `len` bytes.
    Hit {
        /// The artifact's length.
        len: u64,
    },
}

// Far below a socket's buffer: the answer is written whole, without waiting for the child.
json_message!(CacheAnswer, kind::CACHE_ANSWER, 64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks;

    #[test]
    fn cache_answer() {
        checks::all(CacheAnswer::NoCache);
        checks::all(CacheAnswer::Miss);
        checks::all(CacheAnswer::Hit { len: u64::MAX });
        assert!(crate::max_frame_len::<CacheAnswer>() < 512, "atomic on any pipe");
    }
}
