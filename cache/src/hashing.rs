//! BLAKE3 of a file, quickly and in bounded memory: read at offsets through a small buffer (or,
//! for the cache's own files, through small read-only mappings, which spare the copy), and a
//! large file hashed as BLAKE3's two top subtrees on two threads, joined before returning (the
//! caller may fork right after: no thread outlives the call).

use blake3::hazmat::{left_subtree_len, merge_subtrees_root, ChainingValue, HasherExt, Mode};
use std::fs::File;
use std::io;

/// How much is read (or mapped) at a time: large enough for BLAKE3's widest SIMD path, small
/// enough that a supervisor's memory does not grow with what it hashes.
const WINDOW: usize = 512 << 10;

/// Files from this size on are hashed on two threads.
const TWO_THREADS_FROM: u64 = 4 << 20;

/// How a file's bytes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// `pread` into a buffer: safe whatever happens to the file meanwhile (it may be cut).
    Read,
    /// Read-only mappings, a window at a time: no copy. Only for files never cut short while
    /// open (the cache's own, replaced by renaming): reading a mapped page past a new end of
    /// file would kill the process.
    Map,
}

/// The BLAKE3 hash of `file`'s `len` bytes (its size when asked). Fails if it holds fewer.
pub(crate) fn hash_file(file: &File, len: u64, access: Access) -> io::Result<[u8; 32]> {
    if len < TWO_THREADS_FROM {
        let mut hasher = blake3::Hasher::new();
        feed(&mut hasher, file, 0, len, access)?;
        return Ok(*hasher.finalize().as_bytes());
    }
    let left = left_subtree_len(len);
    let (left_cv, right_cv) = std::thread::scope(|s| {
        let right = std::thread::Builder::new().spawn_scoped(s, || subtree(file, left, len, access));
        let left_cv = subtree(file, 0, left, access);
        let right_cv = match right {
            Ok(thread) => thread.join().unwrap_or_else(|_| Err(io::Error::other("hashing thread panicked"))),
            // No second thread: this one does both halves.
            Err(_) => subtree(file, left, len, access),
        };
        (left_cv, right_cv)
    });
    Ok(*merge_subtrees_root(&left_cv?, &right_cv?, Mode::Hash).as_bytes())
}

/// The chaining value of the subtree of bytes `from..to` (a whole subtree: see
/// [`left_subtree_len`]).
fn subtree(file: &File, from: u64, to: u64, access: Access) -> io::Result<ChainingValue> {
    let mut hasher = blake3::Hasher::new();
    hasher.set_input_offset(from);
    feed(&mut hasher, file, from, to, access)?;
    Ok(hasher.finalize_non_root())
}

/// Feeds bytes `from..to` of `file` to `hasher`.
fn feed(hasher: &mut blake3::Hasher, file: &File, from: u64, to: u64, access: Access) -> io::Result<()> {
    if access == Access::Map && feed_mapped(hasher, file, from, to).is_ok() {
        return Ok(());
    }
    let cut = || io::Error::new(io::ErrorKind::UnexpectedEof, "the file was cut short while it was hashed");
    let mut buffer = vec![0u8; WINDOW];
    let mut at = from;
    while at < to {
        let want = usize::try_from(to - at).unwrap_or(WINDOW).min(WINDOW);
        match std::os::unix::fs::FileExt::read_at(file, &mut buffer[..want], at) {
            Ok(0) => return Err(cut()),
            Ok(n) => {
                hasher.update(&buffer[..n]);
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`feed`] through read-only mappings of a window each (`from` is a multiple of the window:
/// subtrees start at powers of two, and windows are page-aligned). Fails before feeding
/// anything if the file cannot be mapped.
fn feed_mapped(hasher: &mut blake3::Hasher, file: &File, from: u64, to: u64) -> io::Result<()> {
    use nix::sys::mman::{madvise, mmap, munmap, MapFlags, MmapAdvise, ProtFlags};
    if !from.is_multiple_of(WINDOW as u64) || file.metadata()?.len() < to {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut at = from;
    while at < to {
        let len = usize::try_from(to - at).unwrap_or(WINDOW).min(WINDOW);
        let size = std::num::NonZeroUsize::new(len).expect("at < to");
        let offset = libc::off_t::try_from(at).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a fresh private read-only mapping at an address the kernel picks, of bytes
        // the file held when checked above. The caller's contract (`Access::Map`): the file is
        // never cut short while open, so every mapped page stays readable.
        let ptr = unsafe { mmap(None, size, ProtFlags::PROT_READ, MapFlags::MAP_PRIVATE, file, offset) }?;
        // SAFETY: the mapping just made, `len` readable bytes.
        let _ = unsafe { madvise(ptr, len, MmapAdvise::MADV_SEQUENTIAL) };
        // SAFETY: as above; the slice is dropped before the mapping is.
        hasher.update(unsafe { std::slice::from_raw_parts(ptr.as_ptr().cast::<u8>(), len) });
        // SAFETY: unmaps exactly the mapping made above; nothing refers to it any more.
        let _ = unsafe { munmap(ptr, len) };
        at += len as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_way_gives_blake3_of_the_bytes() {
        let path = std::env::temp_dir().join(format!("sandboxrun-hashing-{}", std::process::id()));
        // Lengths around the window, the two-thread threshold and odd tree shapes.
        for len in [0usize, 1, 1024, 1025, WINDOW - 1, WINDOW, WINDOW + 7, 4 << 20, (4 << 20) + 1, 9_437_185] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + i / 1024) as u8).collect();
            std::fs::File::create(&path).unwrap().write_all(&bytes).unwrap();
            let file = File::open(&path).unwrap();
            for access in [Access::Read, Access::Map] {
                let got = hash_file(&file, len as u64, access).unwrap();
                assert_eq!(got, *blake3::hash(&bytes).as_bytes(), "{len} bytes, {access:?}");
            }
            // Asked for more than the file holds: an error, never a hash.
            assert!(hash_file(&file, len as u64 + 1, Access::Read).is_err(), "{len}");
        }
        let _ = std::fs::remove_file(path);
    }
}
