//! The system calls of the plugin's channels, each turning -1/errno into an `io::Error`:
//! SOCK_SEQPACKET pairs, datagrams with descriptors (SCM_RIGHTS), sealed memfds and their
//! shared mappings, pidfds, and waiting with a deadline.
//!
//! The confined child may only `read` and `write` on what it holds (its seccomp allowlist has
//! no `sendmsg`, `recvmsg` or `memfd_create`): only the host and the keeper pass descriptors.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// The result of a call returning -1 and errno on failure.
fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A SOCK_SEQPACKET socket pair, close-on-exec: every write is one datagram, read whole.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    // SAFETY: `fds` is a valid array of two ints the call fills.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) };
    check(r as _)?;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Most descriptors one datagram carries.
pub const MAX_FDS: usize = 4;

/// Sends `bytes` as one datagram with `fds` attached (SCM_RIGHTS); never raises SIGPIPE.
pub fn send(fd: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS);
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
    // u64 words: aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: msg_control points at `control`, large enough for one header and MAX_FDS
        // descriptors; CMSG_FIRSTHDR/CMSG_DATA stay within it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        }
    }
    loop {
        // SAFETY: `msg` describes valid buffers for the duration of the call.
        match check(unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) } as _) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(()),
        }
    }
}

/// What [`recv`] got.
pub enum Received {
    /// The peer closed its end.
    Closed,
    /// A datagram of this length (its real length: more than the buffer if it was cut) and
    /// the descriptors it carried.
    Datagram(usize, Vec<OwnedFd>),
}

/// Receives one datagram into `buf` with any descriptors it carries (close-on-exec). A
/// datagram longer than `buf` reports its real length (the caller refuses it).
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control = [0u64; 8];
    // SAFETY: a zeroed msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    let n = loop {
        // SAFETY: `msg` describes valid buffers for the duration of the call.
        match check(unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_TRUNC) } as _) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(n) => break n as usize,
        }
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` with `msg_controllen` bytes of well-formed headers;
    // CMSG_FIRSTHDR/NXTHDR walk only within them. Each descriptor received is ours.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..len / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(Received::Closed);
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("too many descriptors in one datagram"));
    }
    Ok(Received::Datagram(n, fds))
}

/// Reads one datagram with plain `read` (the confined child's way); `Ok(0)` when the peer is
/// gone. A datagram longer than `buf` is cut (the host sends none).
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        match check(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as _) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// Writes one datagram with plain `write` (the confined child's way).
pub fn write(fd: RawFd, bytes: &[u8]) -> io::Result<()> {
    loop {
        // SAFETY: `bytes` is valid for reads of its length.
        match check(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) } as _) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r.map(drop),
        }
    }
}

/// Waits until `fd` is readable (or hung up), or `deadline` passes: `Ok(false)` on timeout.
pub fn wait_readable(fd: RawFd, deadline: Option<Instant>) -> io::Result<bool> {
    loop {
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            libc::timespec { tv_sec: left.as_secs() as libc::time_t, tv_nsec: left.subsec_nanos() as libc::c_long }
        });
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        let ts = timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _);
        // SAFETY: one valid pollfd; `ts` is null or points at a live timespec.
        match check(unsafe { libc::ppoll(&mut pfd, 1, ts, std::ptr::null()) } as _) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
        }
    }
}

/// Polls `fds` for readability until one is ready or `timeout_ms` passes (-1: forever);
/// returns their `revents`.
pub fn poll(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<libc::c_short>> {
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    loop {
        // SAFETY: `pfds` is a valid array of its length.
        match check(unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as _, timeout_ms) } as _) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => return Ok(pfds.iter().map(|p| p.revents).collect()),
        }
    }
}

/// A memfd holding `bytes`, sealed against every change (write, shrink, grow, further seals):
/// its receiver may map or read it without fearing that the sender changes it.
pub fn sealed_memfd(name: &std::ffi::CStr, bytes: &[u8]) -> io::Result<OwnedFd> {
    let fd = memfd(name)?;
    let mut file = std::fs::File::from(fd);
    io::Write::write_all(&mut file, bytes)?;
    let fd = OwnedFd::from(file);
    let seals = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on our own descriptor.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } as _)?;
    Ok(fd)
}

/// A memfd of `size` bytes (a window's [`crate::spin::mapped_len`]) sealed against shrinking and growing: both sides may map it
/// shared, and neither can truncate it under the other (which would turn the other's reads
/// into SIGBUS).
pub fn window_memfd(size: usize) -> io::Result<OwnedFd> {
    let fd = memfd(c"sandboxrun-plugin-window")?;
    // SAFETY: ftruncate and fcntl on our own descriptor.
    unsafe {
        check(libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) as _)?;
        check(libc::fcntl(
            fd.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
        ) as _)?;
    }
    Ok(fd)
}

fn memfd(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and valid flags.
    let fd = check(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) } as _)?;
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether `fd` is a memfd with the seals `needed` (all of them).
pub fn has_seals(fd: RawFd, needed: libc::c_int) -> bool {
    // SAFETY: fcntl reads the descriptor's seals.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    seals >= 0 && seals & needed == needed
}

/// The size of the file behind `fd`.
pub fn file_size(fd: RawFd) -> io::Result<u64> {
    // SAFETY: a zeroed stat is valid for fstat to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is valid for writes.
    check(unsafe { libc::fstat(fd, &mut st) } as _)?;
    Ok(st.st_size as u64)
}

/// A shared read-write mapping of a whole memfd (the payload window): `payload` bytes, then
/// the control area of [`crate::spin`] (its doorbell words).
#[derive(Debug)]
pub struct Mapping {
    ptr: *mut u8,
    /// The whole mapping.
    len: usize,
    /// The payload bytes at its start.
    payload: usize,
}

// SAFETY: the mapping is plain memory owned by this value; concurrent access is governed by
// the channel's turn taking (only the side whose turn it is touches it), and its users copy
// bytes out before interpreting them.
unsafe impl Send for Mapping {}
// SAFETY: as for Send; `&Mapping` only gives raw copies in and out.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps a window of `payload` bytes from `fd` (whose size must be
    /// [`crate::spin::mapped_len`] of it) shared, read-write.
    pub fn new(fd: RawFd, payload: usize) -> io::Result<Mapping> {
        let len = usize::try_from(crate::spin::mapped_len(payload as u64)).map_err(io::Error::other)?;
        // SAFETY: a fresh mapping at an address of the kernel's choice; nothing aliases it.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0)
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len, payload })
    }

    /// Its payload size.
    pub fn size(&self) -> usize {
        self.payload
    }

    /// A doorbell word of the control area.
    pub fn word(&self, w: crate::spin::Word) -> &std::sync::atomic::AtomicU32 {
        let at = crate::spin::control_offset(self.payload as u64) as usize + w.offset();
        assert!(at + 4 <= self.len);
        // SAFETY: `at` is within the mapping (checked), 64-byte aligned past a page-aligned
        // start plus 0 or 64 (so aligned for AtomicU32, which has u32's layout), and the
        // mapping lives as long as `&self`. This process touches the control area only through
        // these atomics (copies are bounded by `payload`); the other process may write it at
        // any time, which atomic accesses tolerate (any value is a valid u32).
        unsafe { &*self.ptr.add(at).cast::<std::sync::atomic::AtomicU32>() }
    }

    /// Copies `len` bytes out (`None` if `len` exceeds the window). The other side may write
    /// concurrently only if it breaks the protocol; the copy is then garbage, never unsound.
    pub fn copy_out(&self, len: usize) -> Option<Vec<u8>> {
        if len > self.payload {
            return None;
        }
        let mut out = Vec::with_capacity(len);
        // SAFETY: `len` bytes of the mapping are readable; `out` has room for them.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr, out.as_mut_ptr(), len);
            out.set_len(len);
        }
        Some(out)
    }

    /// Copies `bytes` in at the start; `false` if they do not fit.
    pub fn copy_in(&self, bytes: &[u8]) -> bool {
        if bytes.len() > self.payload {
            return false;
        }
        // SAFETY: the mapping is writable for `bytes.len()` bytes and does not overlap `bytes`.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr, bytes.len()) };
        true
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A pidfd for `pid` (a child of the caller, unreaped: the pid cannot have been reused).
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, no memory.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends SIGKILL through a pidfd (never to a reused pid); a process already gone is fine.
pub fn pidfd_kill(fd: RawFd) {
    // SAFETY: pidfd_send_signal with a null siginfo reads no memory.
    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd, libc::SIGKILL, std::ptr::null::<libc::siginfo_t>(), 0) };
}

/// The CPU-time clock of process `pid` (all its threads): readable by any process that sees
/// the pid, without ptrace rights.
pub fn process_cpu_clock(pid: libc::pid_t) -> io::Result<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `clock` is valid for writes.
    let r = unsafe { libc::clock_getcpuclockid(pid, &mut clock) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(clock)
}

/// The current value of `clock`.
pub fn clock_time(clock: libc::clockid_t) -> io::Result<std::time::Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is valid for writes.
    check(unsafe { libc::clock_gettime(clock, &mut ts) } as _)?;
    Ok(std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}
