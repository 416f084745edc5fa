//! The artifact files beside the database: one file per artifact, named by the BLAKE3 hash of
//! its bytes (content-addressed), written once through a temporary file and a rename, never
//! changed in place. A reader opens a file by name, checks its size and hash, and hands out the
//! open file: a run maps it instead of copying the bytes through the supervisor.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The folder of artifact files of the database at `db`: `<db>.files`.
pub(crate) fn folder_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".files");
    PathBuf::from(name)
}

/// A content hash, as stored in the database.
pub(crate) type Checksum = [u8; 32];

/// The file name of the artifact whose hash is `checksum`.
pub(crate) fn name_of(checksum: &Checksum) -> String {
    checksum.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `name` is one [`name_of`] makes (other files in the folder are temporaries or
/// strangers).
pub(crate) fn is_artifact_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Opens the artifact file `checksum` names in `folder` if it holds exactly `size` bytes whose
/// hash is `checksum`: `Ok(None)` when it is missing, shorter, longer or altered. A symlink
/// in its place is refused (`O_NOFOLLOW`), as is anything but a regular file.
pub(crate) fn open_checked(folder: &Path, checksum: &Checksum, size: u64) -> io::Result<Option<File>> {
    let path = folder.join(name_of(checksum));
    let file = match File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(&path) {
        Ok(f) => f,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() != size {
        return Ok(None);
    }
    // Mapped: the cache's files are never cut short in place.
    match crate::hashing::hash_file(&file, size, crate::hashing::Access::Map) {
        Ok(found) if found == *checksum => Ok(Some(file)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// An artifact being written: bytes go to a temporary file in the folder and into the hash;
/// [`Staged::finish`] names the file by its hash.
pub struct Staged {
    file: File,
    temp: PathBuf,
    folder: PathBuf,
    hasher: blake3::Hasher,
    len: u64,
    head: Vec<u8>,
}

/// How many leading bytes a [`Staged`] keeps in memory, for a caller's check of the
/// artifact's header.
pub const HEAD_LEN: usize = 4096;

impl Staged {
    /// A new temporary file in `folder` (created if needed).
    pub(crate) fn new(folder: &Path) -> io::Result<Staged> {
        std::fs::create_dir_all(folder)?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let temp = folder.join(format!(".tmp-{}-{nanos}", std::process::id()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)?;
        Ok(Staged { file, temp, folder: folder.to_path_buf(), hasher: blake3::Hasher::new(), len: 0, head: Vec::new() })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first [`HEAD_LEN`] bytes written (fewer if fewer were).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Renames the file to its hash's name (replacing a file of the same contents) and returns
    /// the hash. No sync: a file cut short by a crash fails its check and is compiled again.
    pub(crate) fn finish(mut self) -> io::Result<(Checksum, u64)> {
        self.file.flush()?;
        let checksum = *self.hasher.finalize().as_bytes();
        std::fs::rename(&self.temp, self.folder.join(name_of(&checksum)))?;
        self.temp = PathBuf::new();
        Ok((checksum, self.len))
    }
}

impl Write for Staged {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        let keep = HEAD_LEN.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..keep]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Not finished: the temporary file goes.
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_hex_hashes_and_nothing_else() {
        let name = name_of(&[0xab; 32]);
        assert!(is_artifact_name(&name));
        assert!(!is_artifact_name(".tmp-1-2"));
        assert!(!is_artifact_name(&name.to_uppercase()));
        assert!(!is_artifact_name(&name[1..]));
    }
}
