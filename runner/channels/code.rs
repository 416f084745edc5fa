//! The code cache as the child sees it: through a channel to the supervisor, which alone opens
//! the database.
//!
//! The supervisor starts the child first and looks the module up while the child builds its
//! WASI context and confines itself: the two take about as long (0.3-0.6 ms each), on
//! different cores. It then answers on a socket: no cache, a miss, or a hit with the cached
//! artifact's file attached (`SCM_RIGHTS`), which the child maps privately: the bytes are
//! never copied, neither through the supervisor nor into the child. The child takes the answer
//! before its seccomp filter is in place (the filter allows no `recvmsg`). Freshly compiled
//! code goes back on a pipe for the supervisor to check and store. A supervisor that drops its
//! end without answering means "no cache": the child compiles and sends nothing. The answer is
//! one [`protocol`] frame ([`protocol::code_channel::CacheAnswer`]).

use super::fds;
use protocol::code_channel::CacheAnswer;
use protocol::ProtocolError;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// What the supervisor found (its side of the answer).
#[derive(Clone, Copy, Debug)]
pub enum Answer<'a> {
    /// No usable cache: compile, send nothing back.
    NoCache,
    /// Not cached: compile and send the artifact back.
    Miss,
    /// This artifact, checked by the cache.
    Hit(&'a cache::CachedArtifact),
}

/// What the child learned (its side of the answer).
#[derive(Debug)]
pub enum Cached {
    /// No usable cache.
    NoCache,
    /// Not cached.
    Miss,
    /// The cached artifact, mapped, and the file it is mapped from (whose memory image
    /// instances may map copy-on-write).
    Hit {
        /// The artifact's bytes.
        artifact: Mapped,
        /// The file holding them from offset 0.
        file: OwnedFd,
    },
}

/// The supervisor's ends.
#[derive(Debug)]
pub struct Sender {
    answer: UnixStream,
    returned: OwnedFd,
}

/// The child's ends. The answer socket is closed once the answer is in (a mapping outlives its
/// descriptor); the pipe back once the code is sent or not wanted.
#[derive(Debug)]
pub struct Receiver {
    answer: Option<UnixStream>,
    back: Option<File>,
}

/// Creates the channel; call before forking (the child inherits its ends).
///
/// # Errors
/// `socketpair` or `pipe2` failed.
pub fn channel() -> io::Result<(Sender, Receiver)> {
    // Close-on-exec, as std makes them.
    let (answer_supervisor, answer_child) = UnixStream::pair()?;
    let (back_read, back_write) = io::pipe()?;
    Ok((
        Sender { answer: answer_supervisor, returned: back_read.into() },
        Receiver { answer: Some(answer_child), back: Some(File::from(OwnedFd::from(back_write))) },
    ))
}

impl Sender {
    /// Answers the child; a hit's artifact file goes with the answer.
    ///
    /// # Errors
    /// The socket's error (the child then reads end of file, and compiles without the cache).
    pub fn answer(&mut self, answer: Answer<'_>) -> io::Result<()> {
        let (message, file) = match answer {
            Answer::NoCache => (CacheAnswer::NoCache, None),
            Answer::Miss => (CacheAnswer::Miss, None),
            Answer::Hit(artifact) => (CacheAnswer::Hit { len: artifact.len }, Some(artifact.file.as_fd())),
        };
        // One frame of a few dozen bytes never fills the socket: this does not block on the
        // child.
        fds::send(&mut self.answer, &message, file.as_slice()).map_err(|e| match e {
            ProtocolError::Io(e) => e,
            e => io::Error::other(e),
        })
    }

    /// The read end of the pipe the child sends compiled code back on.
    pub fn returned(self) -> OwnedFd {
        self.returned
    }
}

impl Receiver {
    /// The descriptors the child must keep open.
    pub fn fds(&self) -> Vec<RawFd> {
        let answer = self.answer.as_ref().map(|a| a.as_raw_fd());
        answer.into_iter().chain(self.back.as_ref().map(|b| b.as_raw_fd())).collect()
    }

    /// The two descriptors, to pass to a child that was not forked with them (see
    /// [`Receiver::from_fds`]).
    ///
    /// # Errors
    /// The receiver was already used.
    pub fn into_fds(self) -> io::Result<[OwnedFd; 2]> {
        match (self.answer, self.back) {
            (Some(a), Some(b)) => Ok([a.into(), b.into()]),
            _ => Err(io::Error::other("the code channel was already used")),
        }
    }

    /// The receiver of [`Receiver::into_fds`]'s descriptors.
    pub fn from_fds([answer, back]: [OwnedFd; 2]) -> Receiver {
        Receiver { answer: Some(answer.into()), back: Some(back.into()) }
    }

    /// Waits for the supervisor's answer (it is looking the module up meanwhile). Only the
    /// first call waits; later ones answer "no cache".
    ///
    /// # Errors
    /// A malformed answer (a hit without exactly one regular file of at least its length
    /// attached, another message) or a failed mapping.
    pub fn receive(&mut self) -> io::Result<Cached> {
        let Some(mut answer) = self.answer.take() else {
            return Ok(self.no_cache());
        };
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("cache answer: {what}"));
        match fds::recv::<CacheAnswer>(&mut answer) {
            Ok(Some((CacheAnswer::NoCache, _))) => Ok(self.no_cache()),
            Ok(Some((CacheAnswer::Miss, _))) => Ok(Cached::Miss),
            Ok(Some((CacheAnswer::Hit { len }, attached))) => {
                let [file]: [OwnedFd; 1] = attached.try_into().map_err(|_| invalid("not one file attached"))?;
                let meta = File::from(file.try_clone()?).metadata()?;
                if !meta.is_file() || meta.len() < len {
                    return Err(invalid("the file attached is not the artifact"));
                }
                Ok(Cached::Hit { artifact: Mapped::new(&file, len)?, file })
            }
            // The supervisor gave up on the cache without a word (or before its last one).
            Ok(None) | Err(ProtocolError::Closed | ProtocolError::Truncated { .. }) => Ok(self.no_cache()),
            Err(ProtocolError::Io(e)) => Err(e),
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }

    fn no_cache(&mut self) -> Cached {
        self.back = None;
        Cached::NoCache
    }

    /// Sends freshly compiled code back, if the supervisor caches it (a failure only loses
    /// the cache entry).
    pub fn send_back(&mut self, artifact: &[u8]) {
        if let Some(mut back) = self.back.take() {
            let _ = back.write_all(artifact);
        }
    }
}

/// A private, read-only mapping of the artifact file the supervisor passed.
#[derive(Debug)]
pub struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn new(fd: &OwnedFd, len: u64) -> io::Result<Mapped> {
        use nix::sys::mman::{mmap, MapFlags, ProtFlags};
        let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        let Some(size) = std::num::NonZeroUsize::new(len) else {
            return Ok(Mapped { ptr: std::ptr::NonNull::dangling().as_ptr(), len });
        };
        // SAFETY: a fresh mapping at an address the kernel picks, read-only, of `len` bytes
        // the file was just seen to hold. The code cache never writes or truncates an artifact
        // file in place (it writes a temporary and renames it; eviction unlinks), so the bytes
        // stay as the cache checked them while the slice `deref` hands out lives; only the
        // cache's owner, by hand, could change them (see the `cache` crate).
        let ptr = unsafe { mmap(None, size, ProtFlags::PROT_READ, MapFlags::MAP_PRIVATE, fd, 0) }?;
        Ok(Mapped { ptr: ptr.as_ptr(), len })
    }
}

impl std::ops::Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes (or is dangling with `len` 0) until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 {
            if let Some(ptr) = std::ptr::NonNull::new(self.ptr) {
                // SAFETY: unmaps exactly the mapping made in `new`; no slice of it outlives
                // `self`.
                let _ = unsafe { nix::sys::mman::munmap(ptr, self.len) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn cached(bytes: &[u8]) -> (std::path::PathBuf, cache::CachedArtifact) {
        let dir = std::env::temp_dir().join(format!("sandboxrun-code-channel-{}-{}", std::process::id(), bytes.len()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = cache::CodeCache::open(&dir.join("c.sqlite"), 1 << 30).unwrap();
        let key = cache::CacheKey([1; 32]);
        db.put(&key, bytes, None).unwrap();
        (dir, db.get(&key).unwrap().unwrap())
    }

    #[test]
    fn a_hit_arrives_mapped_and_a_miss_asks_for_the_code_back() {
        let (mut sender, mut receiver) = channel().unwrap();
        let artifact: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let (dir, found) = cached(&artifact);
        sender.answer(Answer::Hit(&found)).unwrap();
        assert_eq!(receiver.fds().len(), 2);
        match receiver.receive().unwrap() {
            // The answer socket is closed: the mapping stays.
            Cached::Hit { artifact: mapped, .. } => {
                assert_eq!(receiver.fds().len(), 1, "only the pipe back is left");
                assert_eq!(&mapped[..], &artifact[..]);
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(dir);

        let (mut sender, mut receiver) = channel().unwrap();
        sender.answer(Answer::Miss).unwrap();
        assert!(matches!(receiver.receive().unwrap(), Cached::Miss));
        receiver.send_back(b"code");
        drop(receiver);
        let mut returned = Vec::new();
        File::from(sender.returned()).read_to_end(&mut returned).unwrap();
        assert_eq!(returned, b"code");
    }

    #[test]
    fn after_a_hit_the_pipe_back_ends_once_the_child_is_done_with_the_channel() {
        // What the child does before any guest code (`child::run_stages` drops its receiver
        // after loading): the supervisor sees end of file, so nothing written later — by a
        // guest that took over its process — can arrive, whatever it writes.
        let (mut sender, mut receiver) = channel().unwrap();
        let (dir, found) = cached(b"artifact");
        sender.answer(Answer::Hit(&found)).unwrap();
        assert!(matches!(receiver.receive().unwrap(), Cached::Hit { .. }));
        drop(receiver);
        let mut returned = Vec::new();
        File::from(sender.returned()).read_to_end(&mut returned).unwrap();
        assert!(returned.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_answer_of_another_kind_or_a_hit_without_its_file_is_an_error_and_a_cut_one_means_no_cache() {
        let (mut sender, mut receiver) = channel().unwrap();
        protocol::write(&mut sender.answer, &protocol::slot::SlotNews::Busy).unwrap();
        assert_eq!(receiver.receive().unwrap_err().kind(), io::ErrorKind::InvalidData);
        // A hit claiming more bytes than its file holds, or with no file.
        let (dir, found) = cached(b"artifact");
        let (mut sender, mut receiver) = channel().unwrap();
        fds::send(&mut sender.answer, &CacheAnswer::Hit { len: 9 }, &[found.file.as_fd()]).unwrap();
        assert_eq!(receiver.receive().unwrap_err().kind(), io::ErrorKind::InvalidData);
        let (mut sender, mut receiver) = channel().unwrap();
        fds::send(&mut sender.answer, &CacheAnswer::Hit { len: 8 }, &[]).unwrap();
        assert_eq!(receiver.receive().unwrap_err().kind(), io::ErrorKind::InvalidData);
        let _ = std::fs::remove_dir_all(dir);
        let (mut sender, mut receiver) = channel().unwrap();
        sender.answer.write_all(&protocol::encode(&CacheAnswer::Miss).unwrap()[..4]).unwrap();
        drop(sender);
        assert!(matches!(receiver.receive().unwrap(), Cached::NoCache));
    }

    #[test]
    fn silence_or_no_cache_means_compile_and_send_nothing() {
        for answer in [None, Some(Answer::NoCache)] {
            let (mut sender, mut receiver) = channel().unwrap();
            if let Some(a) = answer {
                sender.answer(a).unwrap();
            }
            let Sender { answer: answer_end, returned } = sender;
            drop(answer_end);
            assert!(matches!(receiver.receive().unwrap(), Cached::NoCache));
            receiver.send_back(b"code");
            drop(receiver);
            let mut got = Vec::new();
            File::from(returned).read_to_end(&mut got).unwrap();
            assert!(got.is_empty());
        }
    }
}
