//! The supervisor's side of the code cache: the lookup while the child confines itself, the
//! answer on the code channel, and storing what the child compiled — only where it was asked
//! for, only an artifact of this engine's identity, bounded in size, from a second thread so a
//! store's disk sync is off the run's path.

use super::module_sha::ModuleSha;
use super::report::CacheUse;
use crate::channels::code::{Answer, Sender};
use cache::{CacheKey, CachedArtifact, CodeCache};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

/// A code cache opened before the run was known; used if the run's cache is the same file.
pub struct OpenCache {
    db: CodeCache,
    location: (PathBuf, u64),
    file: (u64, u64),
}

impl OpenCache {
    /// Opens the cache at `location` if its file exists (a run creates a missing one).
    pub fn open(location: (PathBuf, u64)) -> Option<OpenCache> {
        let file = file_identity(&location.0)?;
        let db = CodeCache::open(&location.0, location.1).ok()?;
        Some(OpenCache { db, location, file })
    }

    /// The open cache, if `location` names it and its file was not replaced since.
    fn take_for(this: Option<OpenCache>, location: &(PathBuf, u64)) -> Option<CodeCache> {
        this.filter(|c| c.location == *location && file_identity(&location.0) == Some(c.file)).map(|c| c.db)
    }
}

/// A file's device and inode.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The cache as this run uses it. The parent alone opens the database, after the fork: the
/// child never holds a descriptor of it.
pub(super) struct Cache {
    pub(super) db: CodeCache,
    pub(super) key: CacheKey,
}

/// How long recording a hit may wait for another process's write: it happens while the run
/// is under way, and must not delay the supervisor.
const TOUCH_PATIENCE: Duration = Duration::from_millis(20);

/// How long a lookup may wait for another process's write (`sandboxrun cache gc`, a store):
/// past it the run compiles without the cache.
const LOOKUP_PATIENCE: Duration = Duration::from_millis(500);

/// Opens the cache and looks the module up — unless the artifact is already `at_hand` (a
/// server's, checked when first found). Any cache failure is one warning line and the run
/// continues without the cache.
pub(super) fn lookup(
    location: &Option<(PathBuf, u64)>,
    open: Option<OpenCache>,
    sha: &[u8; 32],
    identity: &str,
    at_hand: Option<CachedArtifact>,
) -> (Option<Cache>, Option<CachedArtifact>) {
    let Some(location) = location else { return (None, None) };
    let warn = |e: &dyn std::fmt::Display| crate::errln!("sandboxrun: warning: {e}; running without the code cache");
    let db = match OpenCache::take_for(open, location)
        .map_or_else(|| CodeCache::open_within(&location.0, location.1, LOOKUP_PATIENCE), Ok)
    {
        Ok(db) => db,
        Err(e) => {
            warn(&e);
            return (None, None);
        }
    };
    let key = CacheKey::new(sha, identity);
    if at_hand.is_some() {
        return (Some(Cache { db, key }), at_hand);
    }
    match db.get_within(&key, LOOKUP_PATIENCE) {
        Ok(artifact) => (Some(Cache { db, key }), artifact),
        Err(e) => {
            warn(&e);
            (None, None)
        }
    }
}

/// Whether an artifact whose first bytes are `head` is this engine's: only such code is
/// stored (the child cannot write the cache itself; the child that loads it checks the rest).
fn ours(head: &[u8], identity: &str) -> bool {
    engine::artifact::Artifact::identity_in_header(head).is_ok_and(|i| i == identity)
}

/// Stores code the child compiled and sent back, already read (`artifact`), with the module's
/// SHA-256. A failure costs only the cache entry.
pub(super) fn store(cache: &Cache, identity: &str, artifact: &[u8], sha: &ModuleSha) {
    if !ours(artifact, identity) {
        return;
    }
    if let Err(e) = cache.db.put(&cache.key, artifact, Some(&sha.get())) {
        crate::errln!("sandboxrun: warning: {e}; the compiled code was not cached");
    }
}

/// Stores code the child sends back on `returned` as it arrives, through a bounded buffer
/// into the cache's file (the supervisor's memory does not grow with the code): at most
/// `limit` bytes, of this engine's identity; with the module's SHA-256. A failure costs only
/// the cache entry.
fn store_streamed(cache: &Cache, identity: &str, returned: OwnedFd, limit: usize, sha: &ModuleSha) {
    let mut staged = match cache.db.stage() {
        Ok(s) => s,
        Err(e) => {
            // The pipe closes with `returned`: the child's write fails, it does not block.
            crate::errln!("sandboxrun: warning: {e}; the compiled code was not cached");
            return;
        }
    };
    let copied = std::io::copy(&mut File::from(returned).take(limit as u64 + 1), &mut staged);
    if copied.is_err() || staged.is_empty() || staged.len() > limit as u64 || !ours(staged.head(), identity) {
        return; // dropped: the temporary file goes
    }
    if let Err(e) = cache.db.commit(&cache.key, staged, Some(&sha.get())) {
        crate::errln!("sandboxrun: warning: {e}; the compiled code was not cached");
    }
}

/// The most compiled code a child may send back for a module of `module_len` bytes: far above
/// what the compiler makes (two to four times the module), far below the host's memory.
pub(super) fn artifact_limit(module_len: usize) -> usize {
    module_len.saturating_mul(16).max(64 << 20)
}

/// Whether code sent back is stored: only when it was asked for. On a miss the child sends it
/// and closes the pipe before any guest code runs. On a hit it closes the pipe unused, also
/// before any guest code — unless the cached artifact failed to load and it compiled afresh
/// (`compiled`), which replaces the damaged row.
pub(super) fn wanted_back(cache: CacheUse, compiled: bool) -> bool {
    match cache {
        CacheUse::Miss => true,
        CacheUse::Hit => compiled,
        CacheUse::Disabled => false,
    }
}

/// Answers the child on the code channel; a failure only costs the cache.
pub(super) fn answer(sender: &mut crate::channels::code::Sender, answer: crate::channels::code::Answer<'_>) {
    match sender.answer(answer) {
        // A broken pipe: the child ended before asking (its report says why).
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        // The child reads end of file and compiles.
        Err(e) => crate::errln!("sandboxrun: warning: failed to pass the cached code to the run: {e}"),
    }
}

/// Looks the module up (unless its artifact is `at_hand`) and answers the child: a miss at
/// once when there is no database yet (the child compiles while this process creates it, 2 ms
/// with its syncs), else after the lookup. Returns the cache as this run uses it, how, and a
/// hit's artifact.
pub(super) fn look_up_and_answer(
    sender: &mut Sender,
    location: &Option<(PathBuf, u64)>,
    open: Option<OpenCache>,
    digest: &[u8; 32],
    identity: &str,
    at_hand: Option<CachedArtifact>,
) -> (Option<Cache>, CacheUse, Option<CachedArtifact>) {
    let fresh = location.as_ref().is_some_and(|(path, _)| !path.exists());
    if fresh {
        answer(sender, Answer::Miss);
    }
    let (cache, cached) = lookup(location, open, digest, identity, at_hand);
    let (status, found) = match (&cache, &cached) {
        (None, _) => (CacheUse::Disabled, Answer::NoCache),
        (Some(_), Some(artifact)) => (CacheUse::Hit, Answer::Hit(artifact)),
        (Some(_), None) => (CacheUse::Miss, Answer::Miss),
    };
    if !fresh {
        answer(sender, found);
    }
    if let (Some(c), CacheUse::Hit) = (&cache, status) {
        // While the run starts: the bookkeeping of a hit (one taken from a server's modules
        // at hand too, so that eviction sees the uses) is off its critical path.
        c.db.touch(&c.key, TOUCH_PATIENCE);
    }
    (cache, status, cached)
}

/// What becomes of the code the child may send back.
pub(super) enum Back {
    /// Nothing is wanted (no cache).
    Unwanted,
    /// A second thread reads and stores it (a miss).
    Storing(JoinHandle<()>),
    /// Read beside the report, stored after the run if the report says the child compiled
    /// afresh (a hit whose artifact was damaged, or a miss whose thread could not start).
    After(Box<Cache>),
}

/// On a miss, starts the thread that reads the child's code from `returned` and stores it;
/// otherwise says that `returned` is read beside the report (`Err(returned)`).
pub(super) fn store_in_background(
    cache: Option<Cache>,
    status: CacheUse,
    returned: OwnedFd,
    limit: usize,
    identity: &str,
    sha: &ModuleSha,
) -> (Back, Option<OwnedFd>) {
    let Some(c) = cache else { return (Back::Unwanted, Some(returned)) };
    if status != CacheUse::Miss {
        return (Back::After(Box::new(c)), Some(returned));
    }
    // The child sends the code it compiled, and closes the pipe, before any guest code runs.
    // The thread reads a duplicate of the pipe: if it cannot start, the pipe is still drained
    // beside the report (a child writing to a closed pipe would get SIGPIPE).
    let thread_end = match returned.try_clone() {
        Ok(fd) => fd,
        Err(e) => {
            crate::errln!("sandboxrun: warning: {e}; the compiled code will not be cached");
            return (Back::After(Box::new(c)), Some(returned));
        }
    };
    let (identity, sha) = (identity.to_string(), sha.clone());
    let spawned = std::thread::Builder::new()
        .name("cache-store".into())
        .spawn(move || store_streamed(&c, &identity, thread_end, limit, &sha));
    match spawned {
        Ok(handle) => {
            drop(returned);
            (Back::Storing(handle), None)
        }
        Err(e) => {
            crate::errln!("sandboxrun: warning: {e}; the compiled code will not be cached");
            (Back::Unwanted, Some(returned))
        }
    }
}

/// Finishes with the code sent back once the run is over: stores what was read beside the
/// report if it was wanted (`compiled`: the child says it compiled afresh), or waits for the
/// storing thread.
pub(super) fn finish(
    back: Back,
    status: CacheUse,
    compiled: bool,
    read: Option<&[u8]>,
    identity: &str,
    sha: &ModuleSha,
) {
    match back {
        Back::Unwanted => {}
        Back::Storing(handle) => {
            let _ = handle.join();
        }
        Back::After(c) => {
            if let Some(bytes) = read.filter(|_| wanted_back(status, compiled)) {
                store(&c, identity, bytes, sha);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_sent_back_is_stored_only_where_it_was_asked_for() {
        assert!(wanted_back(CacheUse::Miss, true));
        // A hit's child closes the pipe unused before any guest code: whatever arrives is not
        // the compiler's (a guest that took over its process), unless it compiled afresh.
        assert!(!wanted_back(CacheUse::Hit, false));
        assert!(wanted_back(CacheUse::Hit, true));
        assert!(!wanted_back(CacheUse::Disabled, true));
    }

    #[test]
    fn the_artifact_bound_is_generous_and_finite() {
        assert_eq!(artifact_limit(0), 64 << 20);
        assert_eq!(artifact_limit(10 << 20), 160 << 20);
        assert_eq!(artifact_limit(usize::MAX), usize::MAX);
    }
}
