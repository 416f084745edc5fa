//! A slot's news to the server, on their socket pair (descriptors attached with
//! `SCM_RIGHTS`).

use crate::kind;
use crate::payload::{bytes, json_message};
use serde::{Deserialize, Serialize};

/// What a slot tells the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotNews {
    /// It has taken a client.
    Busy,
    /// Its run is over; the descriptors attached are the run's namespaces, then, if `hot` is
    /// set, the cached artifact's file.
    Done {
        /// A module the run found in the code cache, for the server to keep at hand for later
        /// runs (see [`HotModule`]).
        hot: Option<HotModule>,
    },
}

/// What identifies a file's contents without reading them: the file (device, inode) and its
/// size, modification and change times. Any write changes the change time, which no one but
/// the kernel sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFingerprint {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
}

/// A module a slot's run found in the code cache: the next runs of the same file (by its
/// fingerprint) under the same cache need neither hash it nor look it up nor check its
/// artifact again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HotModule {
    /// The module file's fingerprint when it was hashed.
    pub fingerprint: FileFingerprint,
    /// Its content key (BLAKE3).
    pub module_key: [u8; 32],
    /// The code cache's database file.
    #[serde(with = "bytes")]
    pub cache_path: Vec<u8>,
    /// The cache key the artifact is stored under (module key and engine identity).
    pub cache_key: [u8; 32],
    /// The artifact's length (its file is attached).
    pub artifact_len: u64,
    /// The module's SHA-256, hex.
    pub module_sha256: String,
}

// A path of up to 4096 bytes, every byte escaped at worst, and the rest.
json_message!(SlotNews, kind::SLOT_NEWS, 32 << 10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks;

    #[test]
    fn slot_news() {
        checks::all(SlotNews::Busy);
        checks::all(SlotNews::Done { hot: None });
        let fingerprint = FileFingerprint { dev: 1, ino: 2, size: 3, mtime_ns: -4, ctime_ns: i128::MAX };
        checks::all(SlotNews::Done {
            hot: Some(HotModule {
                fingerprint,
                module_key: [7; 32],
                cache_path: vec![b'/', 0xff, b'x'],
                cache_key: [255; 32],
                artifact_len: u64::MAX,
                module_sha256: "ab".repeat(32),
            }),
        });
    }
}
