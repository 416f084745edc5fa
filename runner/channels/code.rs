//! The code cache as the child sees it: through a channel to the supervisor, which alone opens
//! the database.
//!
//! The supervisor starts the child first and looks the module up while the child builds its
//! WASI context and confines itself: the two take about as long (0.3-0.6 ms each), on
//! different cores. It then answers on a pipe: no cache, a miss, or a hit whose artifact it has
//! written into a memfd made before the fork, which the child maps privately (no copy through
//! the pipe). Freshly compiled code goes back on a second pipe for the supervisor to check and
//! store. A supervisor that drops its end without answering means "no cache": the child
//! compiles and sends nothing. The answer is one [`protocol`] frame
//! ([`protocol::code_channel::CacheAnswer`]).

use protocol::code_channel::CacheAnswer;
use protocol::ProtocolError;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// What the supervisor found (its side of the answer).
#[derive(Clone, Copy, Debug)]
pub enum Answer<'a> {
    /// No usable cache: compile, send nothing back.
    NoCache,
    /// Not cached: compile and send the artifact back.
    Miss,
    /// This artifact.
    Hit(&'a [u8]),
}

/// What the child learned (its side of the answer).
#[derive(Debug)]
pub enum Cached {
    /// No usable cache.
    NoCache,
    /// Not cached.
    Miss,
    /// The cached artifact, mapped, and the sealed memfd it is mapped from (whose memory image
    /// instances may map copy-on-write).
    Hit {
        /// The artifact's bytes.
        artifact: Mapped,
        /// The memfd holding them from offset 0, sealed.
        file: OwnedFd,
    },
}

/// The supervisor's ends.
#[derive(Debug)]
pub struct Sender {
    answer: File,
    code: File,
    returned: OwnedFd,
}

/// The child's ends. The answer pipe and the memfd are closed once the answer is in (a
/// mapping outlives its descriptor); the pipe back once the code is sent or not wanted.
#[derive(Debug)]
pub struct Receiver {
    answer: Option<File>,
    code: Option<OwnedFd>,
    back: Option<File>,
}

/// Creates the channel; call before forking (the child inherits its ends).
///
/// # Errors
/// `pipe2` or `memfd_create` failed.
pub fn channel() -> io::Result<(Sender, Receiver)> {
    // Close-on-exec, as `std::io::pipe` makes them.
    let (answer_read, answer_write) = io::pipe()?;
    let (back_read, back_write) = io::pipe()?;
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let code = memfd_create(c"sandboxrun-artifact", MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    // Duplicated so each side owns one.
    let code_child = code.try_clone()?;
    Ok((
        Sender { answer: File::from(OwnedFd::from(answer_write)), code: code.into(), returned: back_read.into() },
        Receiver {
            answer: Some(File::from(OwnedFd::from(answer_read))),
            code: Some(code_child),
            back: Some(File::from(OwnedFd::from(back_write))),
        },
    ))
}

impl Sender {
    /// Answers the child; the artifact of a hit is written before the answer, and the memfd
    /// sealed: no one can change or resize it afterwards, so the child's mapping reads fixed
    /// bytes.
    ///
    /// # Errors
    /// Writing or sealing failed (the child then reads end of file, and compiles without the
    /// cache).
    pub fn answer(&mut self, answer: Answer<'_>) -> io::Result<()> {
        let message = match answer {
            Answer::NoCache => CacheAnswer::NoCache,
            Answer::Miss => CacheAnswer::Miss,
            Answer::Hit(artifact) => {
                self.code.write_all(artifact)?;
                use nix::fcntl::{fcntl, FcntlArg, SealFlag};
                let seals =
                    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
                fcntl(&self.code, FcntlArg::F_ADD_SEALS(seals))?;
                CacheAnswer::Hit { len: artifact.len() as u64 }
            }
        };
        // One frame of a few dozen bytes never fills a pipe: this does not block on the child.
        protocol::write(&mut self.answer, &message).map_err(|e| match e {
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
        let code = self.code.as_ref().map(|c| c.as_raw_fd());
        answer.into_iter().chain(code).chain(self.back.as_ref().map(|b| b.as_raw_fd())).collect()
    }

    /// The three descriptors, to pass to a child that was not forked with them (see
    /// [`Receiver::from_fds`]).
    ///
    /// # Errors
    /// The receiver was already used.
    pub fn into_fds(self) -> io::Result<[OwnedFd; 3]> {
        match (self.answer, self.code, self.back) {
            (Some(a), Some(c), Some(b)) => Ok([a.into(), c, b.into()]),
            _ => Err(io::Error::other("the code channel was already used")),
        }
    }

    /// The receiver of [`Receiver::into_fds`]'s descriptors.
    pub fn from_fds([answer, code, back]: [OwnedFd; 3]) -> Receiver {
        Receiver { answer: Some(answer.into()), code: Some(code), back: Some(back.into()) }
    }

    /// Waits for the supervisor's answer (it is looking the module up meanwhile). Only the
    /// first call waits; later ones answer "no cache".
    ///
    /// # Errors
    /// A malformed answer or a failed mapping.
    pub fn receive(&mut self) -> io::Result<Cached> {
        let (Some(mut answer), Some(code)) = (self.answer.take(), self.code.take()) else {
            return Ok(self.no_cache());
        };
        match protocol::read_untrusted(&mut answer) {
            Ok(CacheAnswer::NoCache) => Ok(self.no_cache()),
            Ok(CacheAnswer::Miss) => Ok(Cached::Miss),
            Ok(CacheAnswer::Hit { len }) => Ok(Cached::Hit { artifact: Mapped::new(&code, len)?, file: code }),
            // The supervisor gave up on the cache without a word (or before its last one).
            Err(ProtocolError::Closed | ProtocolError::Truncated { .. }) => Ok(self.no_cache()),
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

/// A private, read-only mapping of the artifact the supervisor wrote into the memfd.
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
        // SAFETY: a fresh mapping at an address the kernel picks, read-only. The supervisor
        // sealed the memfd against writes, shrinking and growing before it answered, so the
        // `len` bytes mapped exist and never change while the slice `deref` hands out lives.
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

    #[test]
    fn a_hit_arrives_mapped_and_a_miss_asks_for_the_code_back() {
        let (mut sender, mut receiver) = channel().unwrap();
        let artifact: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        sender.answer(Answer::Hit(&artifact)).unwrap();
        assert_eq!(receiver.fds().len(), 3);
        // Sealed: the child's own descriptor cannot change the bytes it is about to map.
        let code = File::from(receiver.code.as_ref().unwrap().try_clone().unwrap());
        let refused = std::os::unix::fs::FileExt::write_all_at(&code, b"x", 0);
        assert_eq!(refused.unwrap_err().raw_os_error(), Some(libc::EPERM));
        match receiver.receive().unwrap() {
            // The answer pipe and the memfd are closed: the mapping stays.
            Cached::Hit { artifact: mapped, .. } => {
                assert_eq!(receiver.fds().len(), 1, "only the pipe back is left");
                assert_eq!(&mapped[..], &artifact[..]);
            }
            other => panic!("{other:?}"),
        }

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
        sender.answer(Answer::Hit(b"artifact")).unwrap();
        assert!(matches!(receiver.receive().unwrap(), Cached::Hit { .. }));
        drop(receiver);
        let mut returned = Vec::new();
        File::from(sender.returned()).read_to_end(&mut returned).unwrap();
        assert!(returned.is_empty());
    }

    #[test]
    fn an_answer_of_another_kind_is_an_error_and_a_cut_one_means_no_cache() {
        let (mut sender, mut receiver) = channel().unwrap();
        protocol::write(&mut sender.answer, &protocol::slot::SlotNews::Busy).unwrap();
        assert_eq!(receiver.receive().unwrap_err().kind(), io::ErrorKind::InvalidData);
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
            let Sender { answer: answer_end, code, returned } = sender;
            drop((answer_end, code));
            assert!(matches!(receiver.receive().unwrap(), Cached::NoCache));
            receiver.send_back(b"code");
            drop(receiver);
            let mut got = Vec::new();
            File::from(returned).read_to_end(&mut got).unwrap();
            assert!(got.is_empty());
        }
    }
}
