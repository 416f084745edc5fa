//! Scratch directories: created fresh (never reusing an existing path) and removed afterwards,
//! without following any symbolic link a guest may have left inside.

use crate::error::GradeError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory this crate created; removed by [`ScratchDir::remove`] or on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
    removed: bool,
}

fn err(path: &Path, e: &std::io::Error) -> GradeError {
    GradeError::Scratch { path: path.to_path_buf(), message: e.to_string().to_lowercase() }
}

impl ScratchDir {
    /// Creates `base/prefix-<pid>-<n>` (a name not used before; `create_dir` fails on an
    /// existing path, so a planted directory or link is never adopted).
    pub(crate) fn new(base: &Path, prefix: &str) -> Result<ScratchDir, GradeError> {
        for _ in 0..100 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ScratchDir { path, removed: false }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(err(&path, &e)),
            }
        }
        Err(GradeError::Scratch { path: base.to_path_buf(), message: "no unused name found".into() })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (or returns) the subdirectory `name`.
    pub(crate) fn subdir(&self, name: &str) -> Result<PathBuf, GradeError> {
        let p = self.path.join(name);
        match std::fs::create_dir(&p) {
            Ok(()) => Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() && !p.is_symlink() => Ok(p),
            Err(e) => Err(err(&p, &e)),
        }
    }

    /// Removes the directory and everything in it (links are removed, not followed).
    pub(crate) fn remove(mut self) -> Result<(), GradeError> {
        self.removed = true;
        std::fs::remove_dir_all(&self.path).map_err(|e| err(&self.path, &e))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.removed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
