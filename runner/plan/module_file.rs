//! The module a run runs, as an open file. The supervisor hashes it through a bounded buffer
//! (its memory does not grow with the module) and hands the child the descriptor; the child
//! reads the bytes only when it compiles (a cache hit needs none of them) and checks that what
//! it read is what the supervisor hashed, so a file rewritten in between is an error, never a
//! run of other code under the first one's name or cache key.

use protocol::slot::FileFingerprint;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest module a run takes (far beyond any real program: CPython is 26 MB).
pub const MAX_MODULE_LEN: u64 = 1 << 30;

/// How long before it was hashed a module file must have last changed for its fingerprint to
/// stand for its contents later ([`ModuleFile::settled_fingerprint`]): a file changed within a
/// moment of being hashed could keep an equal fingerprint on a coarse clock.
pub const SETTLED: Duration = Duration::from_secs(2);

/// Why a module cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum ModuleFileError {
    /// The host's error opening, reading or copying it.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The module's path.
        path: String,
        /// The host's error.
        source: io::Error,
    },
    /// Larger than [`MAX_MODULE_LEN`].
    #[error("{path}: a module of more than {MAX_MODULE_LEN} bytes")]
    TooLarge {
        /// The module's path.
        path: String,
    },
    /// The child read other bytes than the supervisor hashed.
    #[error("the module changed while the run started (read {got} bytes, or other bytes than the {expected} hashed)")]
    Changed {
        /// The length the supervisor hashed.
        expected: u64,
        /// The length read.
        got: u64,
    },
}

/// A module, open for reading, with its content key.
#[derive(Debug)]
pub struct ModuleFile {
    file: File,
    len: u64,
    key: [u8; 32],
    /// The file's fingerprint, if it had settled when hashed (see [`SETTLED`]).
    settled: Option<FileFingerprint>,
}

impl ModuleFile {
    /// Opens the module at `path` and hashes it. A regular file is used as it is; anything
    /// else (a pipe, a terminal) is read once into a sealed memory file, so the child can
    /// read it again.
    ///
    /// # Errors
    /// [`ModuleFileError`].
    pub fn open(path: &Path) -> Result<ModuleFile, ModuleFileError> {
        Self::open_known(path, |_| None)
    }

    /// [`ModuleFile::open`], but a regular file whose fingerprint `known` recognises takes
    /// the key `known` gives instead of being hashed (a server's modules at hand).
    ///
    /// # Errors
    /// [`ModuleFileError`].
    pub fn open_known(
        path: &Path,
        known: impl Fn(&FileFingerprint) -> Option<[u8; 32]>,
    ) -> Result<ModuleFile, ModuleFileError> {
        let name = path.display().to_string();
        let failed = |source| ModuleFileError::Read { path: name.clone(), source };
        let hashed_at = SystemTime::now();
        let file = File::open(path).map_err(failed)?;
        if !file.metadata().map_err(failed)?.is_file() {
            // Copied through a bounded buffer: the supervisor's memory does not grow with it.
            return ModuleFile::sealed_copy(file).map_err(failed)?.ok_or(ModuleFileError::TooLarge { path: name });
        }
        let before = fingerprint(&file).map_err(failed)?;
        if let Some(key) = known(&before) {
            return Ok(ModuleFile { file, len: before.size, key, settled: Some(before) });
        }
        let (key, len) = cache::content_hash(&file).map_err(failed)?;
        if len > MAX_MODULE_LEN {
            return Err(ModuleFileError::TooLarge { path: name });
        }
        // Unchanged while it was hashed, and settled before.
        let after = fingerprint(&file).map_err(failed)?;
        let settled = (after == before && before.size == len && settled(&before, hashed_at)).then_some(before);
        Ok(ModuleFile { file, len, key, settled })
    }

    /// A module held in memory, in a sealed memory file (no one can change it).
    ///
    /// # Errors
    /// `memfd_create`, writing or sealing failed.
    pub fn from_bytes(bytes: &[u8]) -> io::Result<ModuleFile> {
        Self::sealed_copy(bytes)?
            .ok_or_else(|| io::Error::other(format!("a module of more than {MAX_MODULE_LEN} bytes")))
    }

    /// What `reader` yields, copied into a sealed memory file through a bounded buffer and
    /// hashed there; `None` past [`MAX_MODULE_LEN`] bytes.
    fn sealed_copy(reader: impl Read) -> io::Result<Option<ModuleFile>> {
        use nix::fcntl::{fcntl, FcntlArg, SealFlag};
        use nix::sys::memfd::{memfd_create, MFdFlags};
        let fd = memfd_create(c"sandboxrun-module", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
        let mut file = File::from(fd);
        let len = io::copy(&mut reader.take(MAX_MODULE_LEN + 1), &mut file)?;
        if len > MAX_MODULE_LEN {
            return Ok(None);
        }
        file.flush()?;
        let seals = SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
        fcntl(&file, FcntlArg::F_ADD_SEALS(seals))?;
        let (key, hashed) = cache::content_hash(&file)?;
        debug_assert_eq!(hashed, len);
        Ok(Some(ModuleFile { file, len, key, settled: None }))
    }

    /// The file's fingerprint, if it had settled before it was hashed: it then stands for
    /// the contents the key was computed from. `None` for a module held in memory.
    pub fn settled_fingerprint(&self) -> Option<FileFingerprint> {
        self.settled
    }

    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its content key ([`cache::content_hash`]).
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// A descriptor of it for the child.
    ///
    /// # Errors
    /// `dup` failed.
    pub fn descriptor(&self) -> io::Result<OwnedFd> {
        Ok(self.file.try_clone()?.into())
    }

    /// Its SHA-256 (the report's `module_sha256`), read at offsets; empty if reading fails.
    pub fn sha256_hex(&self) -> String {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut at = 0u64;
        loop {
            match std::os::unix::fs::FileExt::read_at(&self.file, &mut buffer, at) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buffer[..n]);
                    at += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return String::new(),
            }
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The fingerprint of an open file.
///
/// # Errors
/// `fstat` failed.
pub fn fingerprint(file: &File) -> io::Result<FileFingerprint> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata()?;
    let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
    Ok(FileFingerprint {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
    })
}

/// Whether a file of `fingerprint`, hashed from `hashed_at` on, had settled ([`SETTLED`]).
fn settled(fingerprint: &FileFingerprint, hashed_at: SystemTime) -> bool {
    let Ok(at) = hashed_at.duration_since(UNIX_EPOCH) else { return false };
    fingerprint.ctime_ns + SETTLED.as_nanos() as i128 <= at.as_nanos() as i128
}

/// The child's side: reads the module from `fd` (from its start, at offsets) and checks it is
/// the `len` bytes whose key is `key`.
///
/// # Errors
/// [`ModuleFileError::Read`] or [`ModuleFileError::Changed`].
pub fn read_checked(fd: OwnedFd, len: u64, key: &[u8; 32]) -> Result<Vec<u8>, ModuleFileError> {
    let file = File::from(fd);
    let failed = |source| ModuleFileError::Read { path: "the module".into(), source };
    let mut bytes = Vec::with_capacity(usize::try_from(len.min(MAX_MODULE_LEN)).unwrap_or(0));
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let at = bytes.len() as u64;
        if at > len {
            break;
        }
        match std::os::unix::fs::FileExt::read_at(&file, &mut chunk, at) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(e)),
        }
    }
    if bytes.len() as u64 != len || cache::content_hash_of(&bytes) != *key {
        return Err(ModuleFileError::Changed { expected: len, got: bytes.len() as u64 });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_module_is_read_back_only_as_hashed() {
        let dir = std::env::temp_dir().join(format!("sandboxrun-module-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.wasm");
        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        let m = ModuleFile::open(&path).unwrap();
        assert_eq!((m.len(), m.key()), (8, &cache::content_hash_of(b"\0asm\x01\0\0\0")));
        assert_eq!(read_checked(m.descriptor().unwrap(), m.len(), m.key()).unwrap(), b"\0asm\x01\0\0\0");
        assert_eq!(m.sha256_hex().len(), 64);
        // Rewritten in place after it was hashed (same length, another byte; or longer).
        std::fs::write(&path, b"\0asm\x01\0\0\x01").unwrap();
        let changed = read_checked(m.descriptor().unwrap(), m.len(), m.key());
        assert!(matches!(changed, Err(ModuleFileError::Changed { expected: 8, got: 8 })), "{changed:?}");
        std::fs::write(&path, b"\0asm\x01\0\0\0 and more").unwrap();
        let changed = read_checked(m.descriptor().unwrap(), m.len(), m.key());
        assert!(matches!(changed, Err(ModuleFileError::Changed { .. })), "{changed:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_a_file_that_settled_before_it_was_hashed_has_a_fingerprint_that_stands_for_it() {
        let now = SystemTime::now();
        let at = |d: Duration| (now - d).duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128;
        let fp = |ctime_ns| FileFingerprint { dev: 1, ino: 2, size: 3, mtime_ns: 0, ctime_ns };
        assert!(settled(&fp(at(Duration::from_secs(60))), now));
        assert!(!settled(&fp(at(Duration::from_millis(500))), now));
        assert!(!settled(&fp(at(Duration::ZERO) + 1), now), "changed after it was hashed");
        // A file written just now: no fingerprint; a known one takes the key given.
        let dir = std::env::temp_dir().join(format!("sandboxrun-module-settled-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.wasm");
        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        let m = ModuleFile::open(&path).unwrap();
        assert_eq!(m.settled_fingerprint(), None);
        let known = ModuleFile::open_known(&path, |_| Some([9; 32])).unwrap();
        assert_eq!(known.key(), &[9; 32]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_module_from_a_pipe_or_memory_is_sealed() {
        let m = ModuleFile::from_bytes(b"(module)").unwrap();
        let fd = m.descriptor().unwrap();
        let refused = std::os::unix::fs::FileExt::write_all_at(&File::from(fd), b"x", 0);
        assert_eq!(refused.unwrap_err().raw_os_error(), Some(libc::EPERM));
        let m = ModuleFile::open(Path::new("/dev/null")).unwrap();
        assert_eq!(m.len(), 0);
        assert!(matches!(ModuleFile::open(Path::new("/nonexistent/m.wasm")), Err(ModuleFileError::Read { .. })));
    }
}
