//! Step 0, descriptors: a forked child inherits every descriptor of its parent that is not
//! close-on-exec — and, since no `exec` follows, those that are too. [`close_inherited`] closes
//! all but the ones the run needs, before it opens anything of its own; [`FdList`] lists what
//! is open, for the report (opened while `/proc` still resolves, before the empty root, and
//! read when confinement ends).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A handle on this process's descriptor table (`/proc/self/fd`): opened while `/proc`
/// resolves, it lists the open descriptors later, after the root is gone too.
#[derive(Debug)]
pub struct FdList(nix::dir::Dir);

impl FdList {
    /// Opens `/proc/self/fd`.
    ///
    /// # Errors
    /// No `/proc`.
    pub fn open() -> io::Result<FdList> {
        let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC;
        let dir = nix::dir::Dir::open("/proc/self/fd", flags, nix::sys::stat::Mode::empty()).map_err(crate::sys::io)?;
        Ok(FdList(dir))
    }

    /// The descriptor this holds.
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// The descriptors open now, ascending, its own excluded.
    ///
    /// # Errors
    /// Reading the directory failed.
    pub fn list(&mut self) -> io::Result<Vec<RawFd>> {
        let own = self.fd();
        let mut fds = Vec::new();
        for entry in self.0.iter() {
            let entry = entry.map_err(crate::sys::io)?;
            if let Some(fd) = entry.file_name().to_str().ok().and_then(|n| n.parse::<RawFd>().ok()) {
                if fd != own {
                    fds.push(fd);
                }
            }
        }
        fds.sort_unstable();
        Ok(fds)
    }
}

/// The descriptors open in this process, ascending (from `/proc/self/fd`).
///
/// # Errors
/// Reading `/proc/self/fd` failed (no `/proc`).
pub fn open_fds() -> io::Result<Vec<RawFd>> {
    FdList::open()?.list()
}

/// Closes every descriptor of this process except `keep`: `close_range(2)` over the gaps
/// between them (a handful of calls, no directory to read); on a kernel without it (before
/// 5.9), one `close` per descriptor listed in `/proc/self/fd`.
///
/// # Errors
/// `close_range` failed for another reason than its absence, or listing the descriptors for
/// the fallback failed.
///
/// # Safety
/// No live object of this process may own or use a descriptor missing from `keep` (call it
/// first thing in a freshly forked child, keeping those the child's own objects hold).
pub unsafe fn close_inherited(keep: &[RawFd]) -> io::Result<()> {
    for (first, last) in gaps(keep) {
        // SAFETY: the caller guarantees nothing still uses a descriptor missing from `keep`,
        // and [first, last] holds none of them.
        let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOSYS) {
                return Err(e);
            }
            // SAFETY: as above.
            return unsafe { close_listed(keep) };
        }
    }
    Ok(())
}

/// The ranges of descriptor numbers (inclusive) around and between `keep`, up to the largest.
fn gaps(keep: &[RawFd]) -> Vec<(u32, u32)> {
    let mut kept: Vec<u32> = keep.iter().filter_map(|fd| u32::try_from(*fd).ok()).collect();
    kept.sort_unstable();
    kept.dedup();
    let mut gaps = Vec::new();
    let mut first = Some(0u32);
    for fd in kept {
        if let Some(f) = first.filter(|f| *f < fd) {
            gaps.push((f, fd - 1));
        }
        first = fd.checked_add(1);
    }
    if let Some(f) = first {
        gaps.push((f, u32::MAX));
    }
    gaps
}

/// The fallback of [`close_inherited`]: every descriptor `/proc/self/fd` lists, but `keep`.
///
/// # Safety
/// As for [`close_inherited`].
unsafe fn close_listed(keep: &[RawFd]) -> io::Result<()> {
    for fd in open_fds()?.into_iter().filter(|fd| !keep.contains(fd)) {
        // SAFETY: the caller guarantees nothing still uses a descriptor missing from `keep`.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_surround_the_kept_descriptors() {
        assert_eq!(gaps(&[0, 1, 2, 7, 9, 10, 11]), vec![(3, 6), (8, 8), (12, u32::MAX)]);
        assert_eq!(gaps(&[2, 0, 2, 1]), vec![(3, u32::MAX)], "unsorted, repeated");
        assert_eq!(gaps(&[]), vec![(0, u32::MAX)]);
        assert_eq!(gaps(&[5, -1]), vec![(0, 4), (6, u32::MAX)], "a negative number keeps nothing");
        assert_eq!(gaps(&[i32::MAX]), vec![(0, i32::MAX as u32 - 1), (i32::MAX as u32 + 1, u32::MAX)]);
    }

    #[test]
    fn lists_a_new_descriptor() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        // A high number: other test threads open descriptors meanwhile and get the lowest free
        // ones, so this one cannot be reused between the close and the second listing.
        // SAFETY: duplicating a descriptor we own; the new one is owned below.
        let fd = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&f), libc::F_DUPFD_CLOEXEC, 900) };
        assert!(fd >= 900, "{}", std::io::Error::last_os_error());
        // SAFETY: `fd` is a new descriptor owned by nothing else.
        let high = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        assert!(open_fds().unwrap().contains(&fd));
        drop(high);
        assert!(!open_fds().unwrap().contains(&fd));
    }
}
