//! The code cache of sandboxrun (a crate of its own, so that embedders of the engine do not
//! build SQLite): compiled artifacts keyed by everything that shapes the generated code, so a
//! later run of the same module maps native code instead of compiling.
//!
//! - **Key**: SHA-256 over the module's BLAKE3 hash ([`content_hash`]), the engine's version, the artifact format
//!   version and the engine's identity ([`engine::Engine::identity`]: a hash of the engine's
//!   sources and lock file, the bounds strategy, the CPU's feature words). Any change is a
//!   miss, never a wrong hit; the artifact carries the identity too, checked when loaded.
//! - **Value**: a file beside the database (in `<database>.files/`), named by the BLAKE3 hash
//!   of its bytes; the database's row holds that hash and the size. A hit opens the file and
//!   checks both before handing it out ([`CodeCache::get`] returns the open file, which a run
//!   maps: the bytes are never copied through the process that looks them up). A file that is
//!   missing, cut short, longer or altered is a miss, its row deleted; the next store replaces
//!   it. Files are written to a temporary name and renamed, never changed in place, so an open
//!   file keeps its contents while a later store or an eviction replaces or removes the name.
//! - **Concurrency**: a rollback journal and a busy timeout; concurrent writers of the same key insert
//!   the same bytes (`INSERT OR REPLACE`, and a rename onto the same name), so exactly one row
//!   and one file result.
//! - **Size**: after each insert, least-recently-used rows (and their files) are evicted until
//!   the total size is within the bound; [`CodeCache::touch`] refreshes `last_used` at most once a minute,
//!   so a hit is a pure read.
//! - **Schema** versions live in SQLite's `user_version` and are migrated on open (versions 1
//!   and 2 are dropped, to be compiled again: version 1 kept artifacts inside the database,
//!   version 2 had no module SHA-256).
//!
//! A damaged, full or read-only database is a [`CacheError`]; the caller degrades to
//! compiling without caching.

mod files;
mod hashing;

pub use files::{Staged, HEAD_LEN};

/// The BLAKE3 hash (a module's content key, see [`CacheKey::new`]) and length of a file's
/// contents, read through a bounded buffer at offsets (the file's position is left alone; a
/// large file on two threads, both ended when this returns).
///
/// # Errors
/// Reading failed.
pub fn content_hash(file: &File) -> std::io::Result<([u8; 32], u64)> {
    let len = file.metadata()?.len();
    Ok((hashing::hash_file(file, len, hashing::Access::Read)?, len))
}

/// The BLAKE3 hash of `bytes` (as [`content_hash`] of a file holding them).
pub fn content_hash_of(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

use files::Checksum;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// SQLite refused (corrupt, read-only, full, locked too long...).
    #[error("code cache {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A folder or an artifact file could not be created, read, written or removed.
    #[error("code cache {path}: {source}")]
    Io {
        /// The folder or file.
        path: String,
        /// The host's error.
        source: std::io::Error,
    },
    /// The database was written by a newer sandboxrun.
    #[error("code cache {path}: schema version {found} is newer than this sandboxrun's {SCHEMA_VERSION}")]
    NewerSchema {
        /// The database file.
        path: String,
        /// Its version.
        found: i64,
    },
}

/// The schema version this code writes.
pub const SCHEMA_VERSION: i64 = 3;

/// How long a statement waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How stale a row's `last_used` may get before a use rewrites it: eviction order is exact to
/// this granularity, and a cache hit is a pure read in all but one run a minute.
pub const LRU_GRANULARITY: Duration = Duration::from_secs(60);

/// A cache key: see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key of a module (by its BLAKE3 hash, [`content_hash`]) compiled by an engine of
    /// `identity`.
    pub fn new(module_hash: &[u8; 32], identity: &str) -> CacheKey {
        let mut h = Sha256::new();
        h.update(b"sandboxrun code cache, module by BLAKE3\0");
        h.update(module_hash);
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(engine::artifact::FORMAT_VERSION.to_le_bytes());
        h.update(identity.as_bytes());
        CacheKey(h.finalize().into())
    }
}

/// Counts for `sandboxrun cache stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Rows.
    pub entries: u64,
    /// Bytes of artifacts.
    pub bytes: u64,
    /// Artifacts stored (each after a miss, or by `sandboxrun compile`). Hits are not
    /// counted: counting them would make every hit a write (each run's report says hit or
    /// miss).
    pub stores: u64,
}

/// A cached artifact, checked: its file, open, holding exactly `len` bytes whose hash is the
/// one stored. Files are never changed in place (see the crate's documentation), so a mapping
/// of it reads these bytes for as long as it lives.
#[derive(Debug)]
pub struct CachedArtifact {
    /// The artifact file, open for reading.
    pub file: File,
    /// Its length.
    pub len: u64,
    /// The SHA-256 (hex) of the module it was compiled from, as stored with it (a hit need not
    /// read the module to report it).
    pub module_sha256: Option<String>,
}

/// An open code cache.
pub struct CodeCache {
    conn: Connection,
    path: String,
    folder: PathBuf,
    max_bytes: u64,
    lru_granularity: Duration,
    /// Whether the connection is set up for writing ([`CodeCache::for_writing`]).
    writing: Cell<bool>,
    /// The key and `last_used` of the row [`CodeCache::get`] last returned.
    last_read: Cell<Option<(CacheKey, i64)>>,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// A checksum column's value, if it has the right length.
fn checksum_of(bytes: &[u8]) -> Option<Checksum> {
    bytes.try_into().ok()
}

impl CodeCache {
    /// Opens (creating if needed) the cache at `path`, bounded to `max_bytes`.
    pub fn open(path: &Path, max_bytes: u64) -> Result<CodeCache, CacheError> {
        CodeCache::open_within(path, max_bytes, BUSY_TIMEOUT)
    }

    /// [`CodeCache::open`], waiting at most `patience` for another process's write to end
    /// (a run must not wait long for the cache; it can compile instead).
    pub fn open_within(path: &Path, max_bytes: u64, patience: Duration) -> Result<CodeCache, CacheError> {
        let name = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| CacheError::Io { path: dir.display().to_string(), source })?;
        }
        let sql = |source| CacheError::Sqlite { path: name.clone(), source };
        let conn = Connection::open(path).map_err(sql)?;
        conn.busy_timeout(patience).map_err(sql)?;
        let cache = CodeCache {
            conn,
            path: name,
            folder: files::folder_of(path),
            max_bytes,
            lru_granularity: LRU_GRANULARITY,
            writing: Cell::new(false),
            last_read: Cell::new(None),
        };
        cache.migrate()?;
        cache.conn.busy_timeout(BUSY_TIMEOUT).map_err(cache.err())?;
        Ok(cache)
    }

    /// Sets the connection up for writing, once, before its first write; a run that only
    /// reads (a hit) never pays for these statements.
    ///
    /// A rollback journal, not WAL: runs are short-lived processes that each open the database
    /// once to read one row, and the first connection to a WAL database rebuilds its
    /// shared-memory index on every open (0.1-0.3 ms a run), while a rollback-journal read is a
    /// shared lock and a few page reads. Writes (misses) are rare and short: readers wait for
    /// them under the busy timeout. A WAL database of an older version is converted by its next
    /// writer (when it has the file to itself; until then it is read in WAL mode). TRUNCATE
    /// rather than DELETE: a commit empties the journal instead of unlinking it, so it needs no
    /// directory sync; an empty journal is no hot journal to readers. Both settings belong to
    /// the connection, not the file.
    fn for_writing(&self) {
        if !self.writing.replace(true) {
            let _ = self.conn.pragma_update(None, "journal_mode", "TRUNCATE");
            let _ = self.conn.pragma_update(None, "synchronous", "NORMAL");
        }
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> CacheError + '_ {
        move |source| CacheError::Sqlite { path: self.path.clone(), source }
    }

    fn io_err(&self, path: &Path) -> impl Fn(std::io::Error) -> CacheError {
        let path = path.display().to_string();
        move |source| CacheError::Io { path: path.clone(), source }
    }

    fn migrate(&self) -> Result<(), CacheError> {
        let version: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(self.err())?;
        if version > SCHEMA_VERSION {
            return Err(CacheError::NewerSchema { path: self.path.clone(), found: version });
        }
        if version < SCHEMA_VERSION {
            self.for_writing();
            // Version 1's artifacts lived in the database, version 2's rows had no module
            // SHA-256: they are dropped (compiled again on their next run; `gc` removes the
            // files left behind) and the file compacted.
            self.conn
                .execute_batch(
                    "BEGIN IMMEDIATE;
                     DROP TABLE IF EXISTS artifacts;
                     DROP TABLE IF EXISTS entries;
                     CREATE TABLE IF NOT EXISTS entries (
                         key BLOB PRIMARY KEY,
                         checksum BLOB NOT NULL,
                         size INTEGER NOT NULL,
                         module_sha256 TEXT,
                         created INTEGER NOT NULL,
                         last_used INTEGER NOT NULL
                     );
                     CREATE INDEX IF NOT EXISTS entries_last_used ON entries(last_used);
                     CREATE INDEX IF NOT EXISTS entries_checksum ON entries(checksum);
                     CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                     PRAGMA user_version = 3;
                     COMMIT;",
                )
                .map_err(self.err())?;
            if version >= 1 {
                let _ = self.conn.execute_batch("VACUUM");
            }
        }
        Ok(())
    }

    fn count(&self, name: &str) {
        // Counters are informational: a failure to bump one is not worth failing a run.
        let _ = self.conn.execute(
            "INSERT INTO counters(name, value) VALUES (?1, 1) ON CONFLICT(name) DO UPDATE SET value = value + 1",
            params![name],
        );
    }

    /// The artifact stored under `key`, if its file is present and intact (size and hash
    /// checked): a read, nothing written but the deletion of a damaged entry. Record the use
    /// with [`CodeCache::touch`], off the critical path.
    pub fn get(&self, key: &CacheKey) -> Result<Option<CachedArtifact>, CacheError> {
        let row: Option<(Vec<u8>, i64, i64, Option<String>)> = self
            .conn
            .query_row(
                "SELECT checksum, size, last_used, module_sha256 FROM entries WHERE key = ?1",
                params![&key.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.err())?;
        let Some((checksum, size, last_used, module_sha256)) = row else { return Ok(None) };
        self.last_read.set(Some((*key, last_used)));
        let found = match (checksum_of(&checksum), u64::try_from(size)) {
            (Some(checksum), Ok(size)) => files::open_checked(&self.folder, &checksum, size)
                .map_err(self.io_err(&self.folder.join(files::name_of(&checksum))))?,
            _ => None,
        };
        match found {
            Some(file) => Ok(Some(CachedArtifact { file, len: size as u64, module_sha256 })),
            None => {
                self.for_writing();
                self.conn.execute("DELETE FROM entries WHERE key = ?1", params![&key.0[..]]).map_err(self.err())?;
                Ok(None)
            }
        }
    }

    /// [`CodeCache::get`], waiting at most `patience` for another process's write to end
    /// (a run must not wait long for the cache; it can compile instead).
    ///
    /// # Errors
    /// As [`CodeCache::get`]; a database still locked after `patience` is an error too.
    pub fn get_within(&self, key: &CacheKey, patience: Duration) -> Result<Option<CachedArtifact>, CacheError> {
        let _ = self.conn.busy_timeout(patience);
        let found = self.get(key);
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        found
    }

    /// Records a use of `key` for eviction: its `last_used` time, when older than
    /// [`LRU_GRANULARITY`] (so a module run again and again costs a write a minute, not a
    /// write a run), waiting at most `patience` for a concurrent writer. Bookkeeping only: a
    /// failure (a busy or read-only file) loses nothing.
    pub fn touch(&self, key: &CacheKey, patience: Duration) {
        let t = now();
        let stale_before = t - self.lru_granularity.as_micros() as i64;
        // Read by `get` a moment ago and recent enough: no statement at all.
        if self.last_read.get().is_some_and(|(k, used)| k == *key && used >= stale_before) {
            return;
        }
        self.for_writing();
        let _ = self.conn.busy_timeout(patience);
        let _ = self.conn.execute(
            "UPDATE entries SET last_used = ?2 WHERE key = ?1 AND last_used < ?3",
            params![&key.0[..], t, stale_before],
        );
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
    }

    /// A new artifact file to write, stored under a key by [`CodeCache::commit`] (dropped
    /// unfinished, it is removed).
    pub fn stage(&self) -> Result<Staged, CacheError> {
        Staged::new(&self.folder).map_err(self.io_err(&self.folder))
    }

    /// Stores a staged artifact under `key`, with the SHA-256 (hex) of the module it was
    /// compiled from if known, then evicts least-recently-used entries beyond the size bound.
    /// An artifact larger than the bound is not stored.
    pub fn commit(&self, key: &CacheKey, staged: Staged, module_sha256: Option<&str>) -> Result<(), CacheError> {
        if staged.len() > self.max_bytes {
            return Ok(()); // would evict everything and still not fit
        }
        let (checksum, size) = staged.finish().map_err(self.io_err(&self.folder))?;
        let t = now();
        self.for_writing();
        // One transaction for the row, the counter and the eviction: one commit (its journal
        // write and syncs) instead of three.
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(self.err())?;
        let written = self
            .conn
            .execute(
                "INSERT OR REPLACE INTO entries(key, checksum, size, module_sha256, created, last_used)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![&key.0[..], &checksum[..], size as i64, module_sha256, t],
            )
            .map_err(self.err())
            .and_then(|_| {
                self.count("stores");
                self.evict(self.max_bytes)
            });
        match written {
            Ok(evicted) => {
                self.conn.execute_batch("COMMIT").map_err(self.err())?;
                self.remove_unreferenced(evicted);
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Stores `data` under `key` ([`CodeCache::stage`], then [`CodeCache::commit`]).
    pub fn put(&self, key: &CacheKey, data: &[u8], module_sha256: Option<&str>) -> Result<(), CacheError> {
        let mut staged = self.stage()?;
        staged.write_all(data).map_err(self.io_err(&self.folder))?;
        self.commit(key, staged, module_sha256)
    }

    /// Sets how stale `last_used` must be before [`CodeCache::touch`] rewrites it.
    pub fn set_lru_granularity(&mut self, granularity: Duration) {
        self.lru_granularity = granularity;
    }

    /// Evicts least-recently-used rows until the total is at most `bound` bytes; returns the
    /// checksums of the rows deleted (their files go once the deletion is committed).
    fn evict(&self, bound: u64) -> Result<Vec<Checksum>, CacheError> {
        let total: i64 =
            self.conn.query_row("SELECT COALESCE(SUM(size), 0) FROM entries", [], |r| r.get(0)).map_err(self.err())?;
        let mut excess = total - bound as i64;
        let mut evicted = Vec::new();
        if excess <= 0 {
            return Ok(evicted);
        }
        let mut stmt =
            self.conn.prepare("SELECT key, checksum, size FROM entries ORDER BY last_used ASC").map_err(self.err())?;
        let victims: Vec<(Vec<u8>, Vec<u8>, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.err())?
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        for (key, checksum, size) in victims {
            if excess <= 0 {
                break;
            }
            self.conn.execute("DELETE FROM entries WHERE key = ?1", params![key]).map_err(self.err())?;
            evicted.extend(checksum_of(&checksum));
            excess -= size;
        }
        Ok(evicted)
    }

    /// Removes the files of `checksums` that no entry refers to any more. Best effort: a file
    /// left behind is removed by [`CodeCache::gc`].
    fn remove_unreferenced(&self, checksums: Vec<Checksum>) {
        for checksum in checksums {
            let referenced: Result<i64, _> =
                self.conn.query_row("SELECT COUNT(*) FROM entries WHERE checksum = ?1", params![&checksum[..]], |r| {
                    r.get(0)
                });
            if referenced == Ok(0) {
                let _ = std::fs::remove_file(self.folder.join(files::name_of(&checksum)));
            }
        }
    }

    /// Entries, bytes and hit/miss counts.
    pub fn stats(&self) -> Result<CacheStats, CacheError> {
        let (entries, bytes): (i64, i64) = self
            .conn
            .query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        let counter = |name: &str| -> Result<i64, CacheError> {
            self.conn
                .query_row("SELECT value FROM counters WHERE name = ?1", params![name], |r| r.get(0))
                .optional()
                .map(|v| v.unwrap_or(0))
                .map_err(self.err())
        };
        Ok(CacheStats { entries: entries as u64, bytes: bytes as u64, stores: counter("stores")? as u64 })
    }

    /// Removes every entry, counter and artifact file.
    pub fn clear(&self) -> Result<(), CacheError> {
        self.for_writing();
        self.conn.execute_batch("DELETE FROM entries; DELETE FROM counters; VACUUM;").map_err(self.err())?;
        self.remove_files(|_| true)
    }

    /// Removes the folder's files for which `doomed` (given the file name) says so, artifact
    /// files and leftover temporaries alike; strangers (other names) are left alone.
    fn remove_files(&self, doomed: impl Fn(&str) -> bool) -> Result<(), CacheError> {
        let listing = match std::fs::read_dir(&self.folder) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io_err(&self.folder)(e)),
        };
        for entry in listing {
            let entry = entry.map_err(self.io_err(&self.folder))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let ours = files::is_artifact_name(name) || name.starts_with(".tmp-");
            if ours && doomed(name) {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io_err(&path)(e)),
                }
            }
        }
        Ok(())
    }

    /// Deletes entries whose file is missing or damaged, files no entry refers to and
    /// temporaries older than an hour (a store that died), enforces the size bound and compacts
    /// the database; returns how many entries were removed.
    pub fn gc(&self) -> Result<u64, CacheError> {
        self.for_writing();
        let before = self.stats()?.entries;
        let mut stmt = self.conn.prepare("SELECT key, checksum, size FROM entries").map_err(self.err())?;
        let rows: Vec<(Vec<u8>, Vec<u8>, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.err())?
            .filter_map(|row| row.ok())
            .collect();
        drop(stmt);
        let mut kept = std::collections::HashSet::new();
        for (key, checksum, size) in rows {
            let intact = match (checksum_of(&checksum), u64::try_from(size)) {
                (Some(c), Ok(size)) => files::open_checked(&self.folder, &c, size).ok().flatten().map(|_| c),
                _ => None,
            };
            match intact {
                Some(c) => {
                    kept.insert(files::name_of(&c));
                }
                None => {
                    self.conn.execute("DELETE FROM entries WHERE key = ?1", params![key]).map_err(self.err())?;
                }
            }
        }
        let evicted = self.evict(self.max_bytes)?;
        for c in &evicted {
            kept.remove(&files::name_of(c));
        }
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let old = |name: &str| {
            std::fs::symlink_metadata(self.folder.join(name)).and_then(|m| m.modified()).is_ok_and(|t| t < hour_ago)
        };
        self.remove_files(|name| if name.starts_with(".tmp-") { old(name) } else { !kept.contains(name) })?;
        self.conn.execute_batch("VACUUM;").map_err(self.err())?;
        Ok(before - self.stats()?.entries)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("sandboxrun-cache-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("cache.sqlite")
    }

    fn key(n: u8) -> CacheKey {
        CacheKey::new(&[n; 32], "fp")
    }

    fn bytes(found: Option<CachedArtifact>) -> Option<Vec<u8>> {
        found.map(|mut a| {
            let mut v = Vec::new();
            a.file.read_to_end(&mut v).unwrap();
            assert_eq!(v.len() as u64, a.len);
            v
        })
    }

    fn files_in(path: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(files::folder_of(path))
            .map(|l| l.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn put_get_and_keys_differ() {
        let path = temp("basic");
        let c = CodeCache::open(&path, 1 << 20).unwrap();
        assert!(c.get(&key(1)).unwrap().is_none());
        c.put(&key(1), b"artifact", Some("5ha")).unwrap();
        let found = c.get(&key(1)).unwrap();
        assert_eq!(found.as_ref().and_then(|f| f.module_sha256.as_deref()), Some("5ha"));
        assert_eq!(bytes(found), Some(b"artifact".to_vec()));
        c.touch(&key(1), Duration::from_millis(50));
        assert_ne!(CacheKey::new(&[1; 32], "fp"), CacheKey::new(&[1; 32], "fp2"));
        let s = c.stats().unwrap();
        assert_eq!((s.entries, s.bytes, s.stores), (1, 8, 1));
        // One file, named by its contents' hash, beside the database.
        let name = files::name_of(blake3::hash(b"artifact").as_bytes());
        assert_eq!(files_in(&path), vec![name]);
        c.clear().unwrap();
        assert_eq!(c.stats().unwrap(), CacheStats::default());
        assert!(files_in(&path).is_empty());
    }

    #[test]
    fn an_altered_cut_or_missing_file_is_a_miss_and_its_entry_deleted() {
        let path = temp("damaged");
        let c = CodeCache::open(&path, 1 << 20).unwrap();
        let file = files::folder_of(&path).join(files::name_of(blake3::hash(b"artifact").as_bytes()));
        type Damage = Box<dyn Fn(&Path)>;
        let damages: Vec<(&str, Damage)> = vec![
            ("altered", Box::new(|f: &Path| std::fs::write(f, b"artifacT").unwrap())),
            ("cut", Box::new(|f: &Path| std::fs::write(f, b"artif").unwrap())),
            ("longer", Box::new(|f: &Path| std::fs::write(f, b"artifact!").unwrap())),
            ("missing", Box::new(|f: &Path| std::fs::remove_file(f).unwrap())),
            (
                "a symlink to the same bytes",
                Box::new(|f: &Path| {
                    let elsewhere = f.with_file_name("elsewhere");
                    std::fs::write(&elsewhere, b"artifact").unwrap();
                    std::fs::remove_file(f).unwrap();
                    std::os::unix::fs::symlink(&elsewhere, f).unwrap();
                }),
            ),
        ];
        for (what, damage) in damages {
            c.put(&key(1), b"artifact", None).unwrap();
            assert!(c.get(&key(1)).unwrap().is_some());
            damage(&file);
            assert!(c.get(&key(1)).unwrap().is_none(), "{what}");
            assert_eq!(c.stats().unwrap().entries, 0, "{what}");
            let _ = std::fs::remove_file(&file);
        }
        // The next store replaces the file.
        c.put(&key(1), b"artifact", None).unwrap();
        assert_eq!(bytes(c.get(&key(1)).unwrap()), Some(b"artifact".to_vec()));
    }

    #[test]
    fn an_open_artifact_keeps_its_bytes_while_its_name_is_replaced_or_removed() {
        let path = temp("stable");
        let c = CodeCache::open(&path, 1 << 20).unwrap();
        c.put(&key(1), b"first", None).unwrap();
        let open = c.get(&key(1)).unwrap();
        c.clear().unwrap();
        c.put(&key(1), b"second", None).unwrap();
        assert_eq!(bytes(open), Some(b"first".to_vec()));
        assert_eq!(bytes(c.get(&key(1)).unwrap()), Some(b"second".to_vec()));
    }

    #[test]
    fn an_unfinished_store_leaves_nothing() {
        let path = temp("unfinished");
        let c = CodeCache::open(&path, 1 << 20).unwrap();
        let mut staged = c.stage().unwrap();
        staged.write_all(&[7; 10_000]).unwrap();
        assert_eq!(staged.head().len(), HEAD_LEN);
        drop(staged);
        assert!(files_in(&path).is_empty());
        assert_eq!(c.stats().unwrap().entries, 0);
    }

    #[test]
    fn least_recently_used_is_evicted_with_its_file() {
        let path = temp("lru");
        let mut c = CodeCache::open(&path, 250).unwrap();
        c.set_lru_granularity(Duration::ZERO);
        c.put(&key(1), &[1; 100], None).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        c.put(&key(2), &[2; 100], None).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.get(&key(1)).unwrap().is_some());
        c.touch(&key(1), Duration::from_millis(50)); // now 2 is the least recently used
        std::thread::sleep(Duration::from_millis(2));
        c.put(&key(3), &[3; 100], None).unwrap();
        assert!(c.get(&key(2)).unwrap().is_none());
        assert!(c.get(&key(1)).unwrap().is_some() && c.get(&key(3)).unwrap().is_some());
        assert_eq!(files_in(&path).len(), 2, "the evicted entry's file is gone");
    }

    #[test]
    fn gc_removes_damaged_entries_orphans_and_old_temporaries() {
        let path = temp("gc");
        let c = CodeCache::open(&path, 1 << 20).unwrap();
        c.put(&key(1), b"good", None).unwrap();
        c.put(&key(2), b"bad", None).unwrap();
        let folder = files::folder_of(&path);
        std::fs::write(folder.join(files::name_of(blake3::hash(b"bad").as_bytes())), b"BAD").unwrap();
        let orphan = files::name_of(&[9; 32]);
        std::fs::write(folder.join(&orphan), b"orphan").unwrap();
        std::fs::write(folder.join(".tmp-1-1"), b"fresh temporary").unwrap();
        std::fs::write(folder.join("stranger"), b"not ours").unwrap();
        assert_eq!(c.gc().unwrap(), 1);
        let mut left = files_in(&path);
        left.retain(|n| n != ".tmp-1-1" && n != "stranger");
        assert_eq!(left, vec![files::name_of(blake3::hash(b"good").as_bytes())]);
        assert!(folder.join(".tmp-1-1").exists(), "a store may be writing it");
        assert!(folder.join("stranger").exists());
    }

    #[test]
    fn the_database_keeps_a_rollback_journal_and_converts_a_wal_one() {
        let path = temp("journal");
        {
            // An older sandboxrun's database, in WAL mode.
            let old = Connection::open(&path).unwrap();
            old.pragma_update(None, "journal_mode", "WAL").unwrap();
        }
        let mut c = CodeCache::open(&path, 64 << 20).unwrap();
        c.set_lru_granularity(Duration::ZERO);
        for n in 0..20 {
            c.put(&key(n), &[n; 64 << 10], None).unwrap();
            std::thread::sleep(Duration::from_millis(1));
            c.touch(&key(n), Duration::from_millis(50));
        }
        let mode: String = c.conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "truncate");
        for leftover in ["-wal", "-shm"] {
            assert!(!Path::new(&format!("{}{leftover}", path.display())).exists(), "{leftover} left behind");
        }
        // The rollback journal stays, empty: nothing for a reader to roll back.
        let journal = std::fs::metadata(format!("{}-journal", path.display())).map_or(0, |m| m.len());
        assert_eq!(journal, 0);
        assert_eq!(c.stats().unwrap().entries, 20);
    }

    #[test]
    fn a_version_1_database_loses_its_rows_and_keeps_working() {
        let path = temp("v1");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE artifacts (key BLOB PRIMARY KEY, checksum BLOB NOT NULL, size INTEGER NOT NULL,
                     data BLOB NOT NULL, created INTEGER NOT NULL, last_used INTEGER NOT NULL);
                 INSERT INTO artifacts VALUES (X'00', X'00', 1, X'00', 0, 0);
                 CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let c = CodeCache::open(&path, 1 << 20).unwrap();
        assert_eq!(c.stats().unwrap().entries, 0);
        c.put(&key(1), b"x", None).unwrap();
        assert!(c.get(&key(1)).unwrap().is_some());
    }

    #[test]
    fn a_version_2_database_loses_its_rows_and_keeps_working() {
        let path = temp("v2");
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(
                "CREATE TABLE entries (key BLOB PRIMARY KEY, checksum BLOB NOT NULL, size INTEGER NOT NULL,
                     created INTEGER NOT NULL, last_used INTEGER NOT NULL);
                 INSERT INTO entries VALUES (X'00', X'00', 1, 0, 0);
                 CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let c = CodeCache::open(&path, 1 << 20).unwrap();
        assert_eq!(c.stats().unwrap().entries, 0);
        c.put(&key(1), b"x", Some("sha")).unwrap();
        assert_eq!(c.get(&key(1)).unwrap().and_then(|a| a.module_sha256).as_deref(), Some("sha"));
    }

    #[test]
    fn a_recent_use_is_not_rewritten() {
        let mut c = CodeCache::open(&temp("granularity"), 1 << 20).unwrap();
        c.put(&key(1), b"x", None).unwrap();
        let last_used = |c: &CodeCache| -> i64 {
            c.conn
                .query_row("SELECT last_used FROM entries WHERE key = ?1", params![&key(1).0[..]], |r| r.get(0))
                .unwrap()
        };
        let before = last_used(&c);
        std::thread::sleep(Duration::from_millis(2));
        c.touch(&key(1), Duration::from_millis(50));
        assert_eq!(last_used(&c), before, "used less than a minute ago: no write");
        // The same after a hit, which remembers the row's last use (no statement at all).
        assert!(c.get(&key(1)).unwrap().is_some());
        c.touch(&key(1), Duration::from_millis(50));
        assert_eq!(last_used(&c), before);
        // A hit whose last use is stale is rewritten.
        c.set_lru_granularity(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.get(&key(1)).unwrap().is_some());
        c.touch(&key(1), Duration::from_millis(50));
        let written = last_used(&c);
        assert!(written > before, "granularity zero: every use is written");
        // The remembered row is another key's: no shortcut.
        c.put(&key(2), b"y", None).unwrap();
        assert!(c.get(&key(2)).unwrap().is_some());
        std::thread::sleep(Duration::from_millis(2));
        c.touch(&key(1), Duration::from_millis(50));
        assert!(last_used(&c) > written);
    }

    #[test]
    fn garbage_and_read_only_files_are_errors_not_panics() {
        let path = temp("garbage");
        std::fs::write(&path, vec![0x5a; 4096]).unwrap();
        assert!(CodeCache::open(&path, 1 << 20).is_err());

        let path = temp("readonly");
        CodeCache::open(&path, 1 << 20).unwrap().put(&key(1), b"x", None).unwrap();
        let ro = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let c = CodeCache {
            conn: ro,
            path: "ro".into(),
            folder: files::folder_of(&path),
            max_bytes: 1 << 20,
            lru_granularity: LRU_GRANULARITY,
            writing: Cell::new(false),
            last_read: Cell::new(None),
        };
        assert_eq!(bytes(c.get(&key(1)).unwrap()), Some(b"x".to_vec()), "reads still work");
        assert!(c.put(&key(2), b"y", None).is_err(), "writes fail cleanly");
    }

    #[test]
    fn newer_schema_is_refused() {
        let path = temp("newer");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 9).unwrap();
        assert!(matches!(CodeCache::open(&path, 1 << 20), Err(CacheError::NewerSchema { found: 9, .. })));
    }
}
