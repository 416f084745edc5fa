//! Step 0, descriptors: a forked child inherits every descriptor of its parent that is not
//! close-on-exec — and, since no `exec` follows, those that are too. [`close_inherited`] closes
//! all but the ones the run needs, before it opens anything of its own; [`open_fds`] lists what
//! is open, for the report (read while `/proc` still resolves, before the empty root).

use std::io;
use std::os::fd::RawFd;

/// The descriptors open in this process, ascending (from `/proc/self/fd`).
///
/// # Errors
/// Reading `/proc/self/fd` failed (no `/proc`).
pub fn open_fds() -> io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) {
            fds.push(fd);
        }
    }
    // The directory's own descriptor was listed too, and is closed by now.
    fds.retain(|fd| {
        // SAFETY: F_GETFD only queries the descriptor table.
        let flags = unsafe { libc::fcntl(*fd, libc::F_GETFD) };
        flags != -1
    });
    fds.sort_unstable();
    Ok(fds)
}

/// Closes every descriptor of this process except `keep`. Returns how many it closed.
///
/// # Errors
/// Listing the descriptors failed; nothing was closed.
///
/// # Safety
/// No live object of this process may own or use a descriptor missing from `keep` (call it
/// first thing in a freshly forked child, keeping those the child's own objects hold).
pub unsafe fn close_inherited(keep: &[RawFd]) -> io::Result<usize> {
    let doomed: Vec<RawFd> = open_fds()?.into_iter().filter(|fd| !keep.contains(fd)).collect();
    for fd in &doomed {
        // SAFETY: the caller guarantees nothing still uses a descriptor missing from `keep`.
        unsafe { libc::close(*fd) };
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

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
