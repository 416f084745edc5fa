//! The modules a server keeps at hand: after a slot's run found its module in the code cache,
//! the server keeps the module's fingerprint and key and the artifact's open file (a small,
//! bounded set, least recently reported first out). Slots it starts later inherit the set, so
//! a grader's hundredth run of the same module neither hashes it, nor looks it up, nor reads
//! its artifact to check it: the artifact file the server holds open was checked when first
//! found, and cache files are never changed in place.
//!
//! A module file is known by its fingerprint ([`FileFingerprint`]): any write changes its
//! change time. Only a module that had settled when it was hashed is kept (see
//! [`crate::plan::module_file::SETTLED`]).

use protocol::slot::{FileFingerprint, HotModule};
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Most modules a server keeps at hand.
pub const HOT_MODULES: usize = 8;

/// A module at hand: what a run learned, and its artifact's file.
#[derive(Debug)]
pub struct HotEntry {
    /// What is known of it.
    pub module: HotModule,
    /// The artifact's file, open for reading.
    pub artifact: OwnedFd,
}

/// The modules at hand, most recent last.
#[derive(Debug, Default)]
pub struct HotSet {
    entries: Vec<HotEntry>,
}

impl HotSet {
    /// Keeps `entry`, replacing one for the same file and cache, and forgetting the least
    /// recently kept beyond [`HOT_MODULES`].
    pub fn insert(&mut self, entry: HotEntry) {
        self.entries.retain(|e| {
            (e.module.fingerprint.dev, e.module.fingerprint.ino, &e.module.cache_key)
                != (entry.module.fingerprint.dev, entry.module.fingerprint.ino, &entry.module.cache_key)
        });
        self.entries.push(entry);
        if self.entries.len() > HOT_MODULES {
            self.entries.remove(0);
        }
    }

    /// The content key of the module file whose fingerprint is `fingerprint`, if known.
    pub fn module_key(&self, fingerprint: &FileFingerprint) -> Option<[u8; 32]> {
        self.entries.iter().rev().find(|e| e.module.fingerprint == *fingerprint).map(|e| e.module.module_key)
    }

    /// The artifact stored under `cache_key` in the cache at `cache_path`, if at hand: a
    /// duplicate of its file, its length and the module's SHA-256.
    pub fn artifact(&self, cache_path: &[u8], cache_key: &[u8; 32]) -> Option<cache::CachedArtifact> {
        let e = self
            .entries
            .iter()
            .rev()
            .find(|e| e.module.cache_path == cache_path && e.module.cache_key == *cache_key)?;
        let file = File::from(e.artifact.try_clone().ok()?);
        Some(cache::CachedArtifact {
            file,
            len: e.module.artifact_len,
            module_sha256: Some(e.module.module_sha256.clone()),
        })
    }

    /// A copy of the set, its descriptors duplicated (entries whose descriptor cannot be are
    /// left out).
    pub fn duplicate(&self) -> HotSet {
        let entries = self
            .entries
            .iter()
            .filter_map(|e| Some(HotEntry { module: e.module.clone(), artifact: e.artifact.try_clone().ok()? }))
            .collect();
        HotSet { entries }
    }

    /// The descriptors the set holds (a slot keeps them open).
    pub fn fds(&self) -> Vec<RawFd> {
        self.entries.iter().map(|e| e.artifact.as_raw_fd()).collect()
    }

    /// How many modules are at hand.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, key: u8) -> HotEntry {
        let file = File::open("/dev/null").unwrap();
        HotEntry {
            module: HotModule {
                fingerprint: FileFingerprint { dev: 1, ino, size: 3, mtime_ns: 4, ctime_ns: 5 },
                module_key: [key; 32],
                cache_path: b"/c.sqlite".to_vec(),
                cache_key: [key; 32],
                artifact_len: 9,
                module_sha256: "s".into(),
            },
            artifact: file.into(),
        }
    }

    #[test]
    fn the_set_is_bounded_and_keeps_the_latest_per_file() {
        let mut set = HotSet::default();
        for i in 0..20 {
            set.insert(entry(i, i as u8));
        }
        assert_eq!(set.len(), HOT_MODULES);
        assert_eq!(set.fds().len(), HOT_MODULES);
        let fp = |ino| FileFingerprint { dev: 1, ino, size: 3, mtime_ns: 4, ctime_ns: 5 };
        assert_eq!(set.module_key(&fp(19)), Some([19; 32]));
        assert_eq!(set.module_key(&fp(0)), None, "the oldest went");
        // Another fingerprint of the same file (it changed): not known.
        assert_eq!(set.module_key(&FileFingerprint { ctime_ns: 6, ..fp(19) }), None);
        set.insert(entry(19, 19));
        assert_eq!(set.len(), HOT_MODULES, "replaced, not added");
        assert!(set.artifact(b"/c.sqlite", &[19; 32]).is_some());
        assert!(set.artifact(b"/other.sqlite", &[19; 32]).is_none());
    }
}
