//! The worker's on-disk copy of the store: each blob fetched once into `DIR/blobs/<sha256>`,
//! its hash checked when fetched and again each time it is used (a file changed on disk is
//! fetched anew); problem packages unpacked once into `DIR/problems/<sha256>/`. Files are
//! written as a new file renamed into place, readable by the runs' identity.

use super::job::sha256_hex;
use super::transport::{Store, TransportError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A reference the worker will not run (the submitter's to fix), or a failure of its own.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Nothing stored under the hash.
    #[error("object {0} is not in the store")]
    Missing(String),
    /// The stored bytes have another hash.
    #[error("object {sha256} has the wrong hash: its bytes hash to {actual}")]
    Mismatch {
        /// The reference.
        sha256: String,
        /// The bytes' hash.
        actual: String,
    },
    /// A problem package that is not a tar of plain files and folders.
    #[error("problem package {sha256} cannot be unpacked: {message}")]
    Package {
        /// The reference.
        sha256: String,
        /// Why.
        message: String,
    },
    /// The store failed (judge-side).
    #[error(transparent)]
    Store(#[from] TransportError),
    /// The local disk failed (judge-side).
    #[error("failed to write {path}: {message}")]
    Disk {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl FetchError {
    /// Whether the worker is to blame (retry later) rather than the job (refuse it).
    pub fn is_judge_side(&self) -> bool {
        matches!(self, FetchError::Store(_) | FetchError::Disk { .. })
    }
}

/// The on-disk copy.
pub struct BlobCache {
    dir: PathBuf,
    next: AtomicU64,
}

fn disk(path: &Path, e: impl std::fmt::Display) -> FetchError {
    FetchError::Disk { path: path.to_path_buf(), message: e.to_string() }
}

/// Creates `dir` searchable by everyone (the runs' identity reads below it).
pub fn public_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

impl BlobCache {
    /// A cache under `dir` (created).
    ///
    /// # Errors
    /// The folders cannot be created.
    pub fn new(dir: &Path) -> std::io::Result<BlobCache> {
        for d in [dir.to_path_buf(), dir.join("blobs"), dir.join("problems")] {
            public_dir(&d)?;
        }
        Ok(BlobCache { dir: dir.to_path_buf(), next: AtomicU64::new(0) })
    }

    fn temp(&self, parent: &Path) -> PathBuf {
        parent.join(format!(".tmp-{}-{}", std::process::id(), self.next.fetch_add(1, Ordering::Relaxed)))
    }

    /// The file holding the blob `sha256`, fetched from `store` unless a good copy is here.
    ///
    /// # Errors
    /// [`FetchError`]: missing or wrong bytes (the job's fault), or the store or disk failed.
    pub async fn fetch<S: Store>(&self, store: &S, sha256: &str) -> Result<PathBuf, FetchError> {
        let path = self.dir.join("blobs").join(sha256);
        if let Ok(bytes) = tokio::fs::read(&path).await {
            if sha256_hex(&bytes) == sha256 {
                return Ok(path);
            }
            let _ = tokio::fs::remove_file(&path).await;
        }
        let bytes = store.get(sha256).await?.ok_or_else(|| FetchError::Missing(sha256.into()))?;
        let actual = sha256_hex(&bytes);
        if actual != sha256 {
            return Err(FetchError::Mismatch { sha256: sha256.into(), actual });
        }
        let temp = self.temp(&self.dir.join("blobs"));
        let written = async {
            tokio::fs::write(&temp, &bytes).await?;
            tokio::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644)).await?;
            tokio::fs::rename(&temp, &path).await
        };
        if let Err(e) = written.await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(disk(&path, e));
        }
        Ok(path)
    }

    /// The folder of the problem package whose tar is the blob at `tar` (hash `sha256`),
    /// unpacked unless it already is. Blocking.
    ///
    /// # Errors
    /// A tar with anything but plain files and folders, or one that would write outside its
    /// folder; the disk failed.
    pub fn unpack(&self, tar: &Path, sha256: &str) -> Result<PathBuf, FetchError> {
        let target = self.dir.join("problems").join(sha256);
        if target.is_dir() {
            return Ok(target);
        }
        let temp = self.temp(&self.dir.join("problems"));
        let result = unpack_into(tar, &temp, sha256).and_then(|()| match std::fs::rename(&temp, &target) {
            Ok(()) => Ok(()),
            // Another job unpacked it first.
            Err(_) if target.is_dir() => Ok(()),
            Err(e) => Err(disk(&target, e)),
        });
        let _ = std::fs::remove_dir_all(&temp);
        result.map(|()| target)
    }
}

/// Unpacks the tar at `tar` into `dir`: folders 0755, files 0644, nothing else accepted.
fn unpack_into(tar: &Path, dir: &Path, sha256: &str) -> Result<(), FetchError> {
    let package = |message: String| FetchError::Package { sha256: sha256.into(), message };
    public_dir(dir).map_err(|e| disk(dir, e))?;
    let file = std::fs::File::open(tar).map_err(|e| disk(tar, e))?;
    let mut archive = tar::Archive::new(file);
    archive.set_preserve_permissions(false);
    archive.set_overwrite(false);
    for entry in archive.entries().map_err(|e| package(e.to_string()))? {
        let mut entry = entry.map_err(|e| package(e.to_string()))?;
        let kind = entry.header().entry_type();
        let name = entry.path().map(|p| p.display().to_string()).unwrap_or_default();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(package(format!("{name:?} is neither a file nor a folder")));
        }
        // `unpack_in` refuses a path that leaves `dir` (`..`, absolute).
        match entry.unpack_in(dir) {
            Ok(true) => {}
            Ok(false) => return Err(package(format!("{name:?} leaves the package"))),
            Err(e) => return Err(package(format!("{name:?}: {e}"))),
        }
    }
    chmod_tree(dir).map_err(|e| disk(dir, e))
}

fn chmod_tree(dir: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            chmod_tree(&entry.path())?;
        } else {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

/// A problem folder as a tar: its files in sorted order, with fixed owners, modes and times,
/// so the same folder always gives the same bytes (and the same sha256).
///
/// # Errors
/// A file cannot be read.
pub fn tar_folder(dir: &Path) -> std::io::Result<Vec<u8>> {
    fn walk(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(base.join(rel))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let rel = rel.join(e.file_name());
            out.push(rel.clone());
            if std::fs::metadata(base.join(&rel))?.is_dir() {
                walk(base, &rel, out)?;
            }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    walk(dir, Path::new(""), &mut paths)?;
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(true);
    for rel in paths {
        let full = dir.join(&rel);
        if full.is_dir() {
            builder.append_dir(&rel, &full)?;
        } else {
            builder.append_path_with_name(&full, &rel)?;
        }
    }
    builder.into_inner()
}
