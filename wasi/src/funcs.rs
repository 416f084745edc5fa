//! The WASI functions. [`call`] decodes the raw arguments, runs the function against the
//! context and guest memory, and returns the errno (or an [`Exit`] that ends the run).
//!
//! Conventions: a read-only mount refuses every mutation with `EROFS`; a path that would
//! leave its preopen (absolute, `..` past the root, a symlink pointing outside) is
//! `ENOTCAPABLE`; a bad guest pointer is `EFAULT`.

use crate::abi::{dirent_type, filetype, Abi, Func};
use crate::ctx::{FdEntry, Kind, Output, WasiCtx, WriteState};
use crate::errno::{Errno, WasiResult};
use crate::memory::{clamp_to_u32_total, GuestMemory, IovecList};
use crate::rights::*;
use crate::sys;
use crate::{path, poll};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// How a WASI call ends the run instead of returning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exit {
    /// `proc_exit(code)`.
    #[error("exit with code {0}")]
    Code(u32),
    /// The output limit was reached.
    #[error("output limit reached")]
    OutputLimit,
    /// `proc_raise(signal)`.
    #[error("raised signal {0}")]
    Signal(u8),
}

pub(crate) const FDFLAGS_APPEND: u16 = 1;
pub(crate) const FDFLAGS_DSYNC: u16 = 2;
pub(crate) const FDFLAGS_NONBLOCK: u16 = 4;
pub(crate) const FDFLAGS_RSYNC: u16 = 8;
pub(crate) const FDFLAGS_SYNC: u16 = 16;
/// The fdflags that ask for synchronized I/O.
pub(crate) const FDFLAGS_SYNCS: u16 = FDFLAGS_DSYNC | FDFLAGS_RSYNC | FDFLAGS_SYNC;
pub(crate) const OFLAGS_CREAT: u32 = 1;
pub(crate) const OFLAGS_DIRECTORY: u32 = 2;
pub(crate) const OFLAGS_EXCL: u32 = 4;
pub(crate) const OFLAGS_TRUNC: u32 = 8;
pub(crate) const LOOKUP_SYMLINK_FOLLOW: u32 = 1;
const FSTFLAGS_ATIM: u32 = 1;
const FSTFLAGS_ATIM_NOW: u32 = 2;
const FSTFLAGS_MTIM: u32 = 4;
const FSTFLAGS_MTIM_NOW: u32 = 8;

/// Calls `func` with raw arguments (i32s zero-extended; at least as many as it takes, see
/// [`Func::sig`]). `memory` is the caller's whole linear memory. Returns the errno.
pub fn call(ctx: &mut WasiCtx, abi: Abi, func: Func, memory: &mut [u8], args: &[u64]) -> Result<u64, Exit> {
    debug_assert!(args.len() >= func.sig().params.len());
    let mut m = GuestMemory::new(memory);
    // A missing argument reads as 0 (the linker passes exactly the signature's).
    let w = |i: usize| args.get(i).copied().unwrap_or(0);
    let a = |i: usize| w(i) as u32;
    let r = match func {
        Func::ArgsGet => strings_get(&ctx.args, &mut m, a(0), a(1)),
        Func::ArgsSizesGet => strings_sizes(&ctx.args, &mut m, a(0), a(1)),
        Func::EnvironGet => strings_get(&ctx.env, &mut m, a(0), a(1)),
        Func::EnvironSizesGet => strings_sizes(&ctx.env, &mut m, a(0), a(1)),
        Func::ClockResGet => clock_id(a(0)).and_then(|id| Ok(sys::clock(id, true)?)).and_then(|t| m.write_u64(a(1), t)),
        Func::ClockTimeGet => {
            clock_id(a(0)).and_then(|id| Ok(sys::clock(id, false)?)).and_then(|t| m.write_u64(a(2), t))
        }
        Func::FdAdvise => {
            ctx.file_with(a(0), FD_ADVISE).and_then(|_| if a(3) > 5 { Err(Errno::Inval) } else { Ok(()) })
        }
        Func::FdAllocate => fd_allocate(ctx, a(0), w(1), w(2)),
        Func::FdClose => ctx.close(a(0)).map(drop),
        Func::FdDatasync => ctx.entry_with(a(0), FD_DATASYNC).and_then(|e| Ok(sys::sync(e.fd()?, true)?)),
        Func::FdSync => ctx.entry_with(a(0), FD_SYNC).and_then(|e| Ok(sys::sync(e.fd()?, false)?)),
        Func::FdFdstatGet => fd_fdstat_get(ctx, &mut m, a(0), a(1)),
        Func::FdFdstatSetFlags => fd_fdstat_set_flags(ctx, a(0), a(1) as u16),
        Func::FdFdstatSetRights => fd_fdstat_set_rights(ctx, a(0), w(1), w(2)),
        Func::FdFilestatGet => fd_filestat_get(ctx, abi, &mut m, a(0), a(1)),
        Func::FdFilestatSetSize => fd_filestat_set_size(ctx, a(0), w(1)),
        Func::FdFilestatSetTimes => fd_filestat_set_times(ctx, a(0), w(1), w(2), a(3)),
        Func::FdPread => fd_read(ctx, &mut m, a(0), a(1), a(2), Some(w(3)), a(4)),
        Func::FdRead => fd_read(ctx, &mut m, a(0), a(1), a(2), None, a(3)),
        Func::FdPwrite => fd_write(ctx, &mut m, a(0), a(1), a(2), Some(w(3)), a(4)),
        Func::FdWrite => fd_write(ctx, &mut m, a(0), a(1), a(2), None, a(3)),
        Func::FdPrestatGet => fd_prestat_get(ctx, &mut m, a(0), a(1)),
        Func::FdPrestatDirName => fd_prestat_dir_name(ctx, &mut m, a(0), a(1), a(2)),
        Func::FdReaddir => fd_readdir(ctx, &mut m, a(0), a(1), a(2), w(3), a(4)),
        Func::FdRenumber => fd_renumber(ctx, a(0), a(1)),
        Func::FdSeek => fd_seek(ctx, abi, &mut m, a(0), w(1) as i64, a(2), a(3)),
        Func::FdTell => {
            let pos = ctx.file(a(0)).and_then(|e| {
                e.require_any(FD_TELL | FD_SEEK)?; // FD_SEEK implies FD_TELL
                Ok(sys::lseek(e.fd()?, 0, libc::SEEK_CUR)?)
            });
            pos.and_then(|p| m.write_u64(a(1), p))
        }
        Func::PathCreateDirectory => path::path_create_directory(ctx, &m, a(0), a(1), a(2)),
        Func::PathFilestatGet => path::path_filestat_get(ctx, abi, &mut m, a(0), a(1), a(2), a(3), a(4)),
        Func::PathFilestatSetTimes => path::path_filestat_set_times(ctx, &m, a(0), a(1), a(2), a(3), w(4), w(5), a(6)),
        Func::PathLink => path::path_link(ctx, &m, a(0), a(1), a(2), a(3), a(4), a(5), a(6)),
        Func::PathOpen => path::path_open(ctx, &mut m, a(0), a(1), a(2), a(3), a(4), w(5), w(6), a(7) as u16, a(8)),
        Func::PathReadlink => path::path_readlink(ctx, &mut m, a(0), a(1), a(2), a(3), a(4), a(5)),
        Func::PathRemoveDirectory => path::path_remove(ctx, &m, a(0), a(1), a(2), true),
        Func::PathUnlinkFile => path::path_remove(ctx, &m, a(0), a(1), a(2), false),
        Func::PathRename => path::path_rename(ctx, &m, a(0), a(1), a(2), a(3), a(4), a(5)),
        Func::PathSymlink => path::path_symlink(ctx, &m, a(0), a(1), a(2), a(3), a(4)),
        Func::PollOneoff => poll::poll_oneoff(ctx, abi, &mut m, a(0), a(1), a(2), a(3)),
        Func::ProcExit => return Err(Exit::Code(a(0))),
        Func::ProcRaise => return Err(Exit::Signal(a(0) as u8)),
        Func::RandomGet => m.slice_mut(a(0), a(1)).and_then(|buf| Ok(sys::getrandom(buf)?)),
        Func::SchedYield => {
            std::thread::yield_now();
            Ok(())
        }
        // No socket is ever preopened: every descriptor is a file, a directory or stdio.
        Func::SockAccept | Func::SockRecv | Func::SockSend | Func::SockShutdown => {
            ctx.entry(a(0)).and(Err(Errno::Notsock))
        }
    };
    match r {
        Ok(()) => Ok(0),
        Err(Errno::Success) => unreachable!("success is not an error"),
        Err(e) if e == Errno::Pipe && ctx.output_limit_hit() => Err(Exit::OutputLimit),
        Err(e) => Ok(e as u64),
    }
}

impl WasiCtx {
    pub(crate) fn entry(&self, fd: u32) -> WasiResult<&FdEntry> {
        self.fds.get(&fd).ok_or(Errno::Badf)
    }

    /// The entry for `fd` if it holds every right in `rights`.
    pub(crate) fn entry_with(&self, fd: u32, rights: u64) -> WasiResult<&FdEntry> {
        let e = self.entry(fd)?;
        e.require(rights)?;
        Ok(e)
    }

    /// The file `fd` if it holds every right in `rights`.
    fn file_with(&self, fd: u32, rights: u64) -> WasiResult<&FdEntry> {
        let e = self.file(fd)?;
        e.require(rights)?;
        Ok(e)
    }

    /// The directory `fd` if it holds every right in `rights`.
    pub(crate) fn dir_with(&self, fd: u32, rights: u64) -> WasiResult<&FdEntry> {
        let e = self.dir(fd)?;
        e.require(rights)?;
        Ok(e)
    }

    fn file(&self, fd: u32) -> WasiResult<&FdEntry> {
        let e = self.entry(fd)?;
        match e.kind {
            Kind::File => Ok(e),
            Kind::Dir { .. } => Err(Errno::Isdir),
            _ => Err(Errno::Spipe),
        }
    }

    pub(crate) fn dir(&self, fd: u32) -> WasiResult<&FdEntry> {
        let e = self.entry(fd)?;
        match e.kind {
            Kind::Dir { .. } => Ok(e),
            _ => Err(Errno::Notdir),
        }
    }

    fn output_limit_hit(&self) -> bool {
        self.usage.stdout_bytes.saturating_add(self.usage.stderr_bytes) >= self.limits.output_bytes
    }

    pub(crate) fn count_created(&mut self) -> WasiResult<()> {
        if self.usage.files_created >= self.limits.files_created {
            return Err(Errno::Dquot);
        }
        self.usage.files_created += 1;
        Ok(())
    }

    /// Gives back what [`WasiCtx::count_created`] counted for an entry not created after all.
    pub(crate) fn uncount_created(&mut self) {
        self.usage.files_created = self.usage.files_created.saturating_sub(1);
    }

    /// The number the next new descriptor gets, as in Wasmtime (see the crate docs): the
    /// highest freed number not reused yet, else one past the highest in use.
    pub(crate) fn next_fd(&self) -> WasiResult<u32> {
        if self.fds.len() as u64 >= self.limits.open_files {
            return Err(Errno::Mfile);
        }
        if let Some(&n) = self.free.last() {
            return Ok(n);
        }
        match self.fds.last_key_value() {
            // Every number up to the highest is in use or free (nothing else creates one),
            // so past u32::MAX there is no number left.
            Some((&n, _)) => n.checked_add(1).ok_or(Errno::Mfile),
            None => Ok(0),
        }
    }

    /// Installs `entry` as descriptor `fd` (from [`WasiCtx::next_fd`]).
    pub(crate) fn install(&mut self, fd: u32, entry: FdEntry) {
        self.free.remove(&fd);
        self.fds.insert(fd, entry);
    }

    /// `fd_close`: the number becomes free.
    fn close(&mut self, fd: u32) -> WasiResult<FdEntry> {
        let entry = self.fds.remove(&fd).ok_or(Errno::Badf)?;
        self.free.insert(fd);
        Ok(entry)
    }
}

pub(crate) fn clock_id(id: u32) -> WasiResult<libc::clockid_t> {
    Ok(match id {
        0 => libc::CLOCK_REALTIME,
        1 => libc::CLOCK_MONOTONIC,
        2 => libc::CLOCK_PROCESS_CPUTIME_ID,
        3 => libc::CLOCK_THREAD_CPUTIME_ID,
        _ => return Err(Errno::Inval),
    })
}

fn strings_sizes(list: &[Vec<u8>], m: &mut GuestMemory, count_ptr: u32, size_ptr: u32) -> WasiResult<()> {
    let size: usize = list.iter().map(|s| s.len() + 1).sum();
    m.write_u32(count_ptr, list.len() as u32)?;
    m.write_u32(size_ptr, u32::try_from(size).map_err(|_| Errno::Overflow)?)
}

fn strings_get(list: &[Vec<u8>], m: &mut GuestMemory, ptrs: u32, buf: u32) -> WasiResult<()> {
    let mut at = buf;
    for (i, s) in list.iter().enumerate() {
        let slot = u32::try_from(i).ok().and_then(|i| i.checked_mul(4)).and_then(|o| ptrs.checked_add(o));
        m.write_u32(slot.ok_or(Errno::Fault)?, at)?;
        m.write(at, s)?;
        let nul = u32::try_from(s.len()).ok().and_then(|n| at.checked_add(n)).ok_or(Errno::Fault)?;
        m.write(nul, &[0])?;
        at = nul.checked_add(1).ok_or(Errno::Fault)?;
    }
    Ok(())
}

// ----- descriptors ------------------------------------------------------------------------------

fn fd_fdstat_get(ctx: &WasiCtx, m: &mut GuestMemory, fd: u32, out: u32) -> WasiResult<()> {
    let e = ctx.entry(fd)?;
    let (filetype, flags) = match &e.kind {
        Kind::Dir { .. } => (filetype::DIRECTORY, e.sync_flags),
        Kind::File => {
            let fl = sys::status_flags(e.fd()?, None)?;
            let mut flags = e.sync_flags;
            if fl & libc::O_APPEND != 0 {
                flags |= FDFLAGS_APPEND;
            }
            if fl & libc::O_NONBLOCK != 0 {
                flags |= FDFLAGS_NONBLOCK;
            }
            (filetype::REGULAR_FILE, flags)
        }
        _ => match e.host.as_ref() {
            Some(h) => (crate::abi::filetype(sys::fstat(h.as_fd())?.st_mode), 0),
            None => (filetype::CHARACTER_DEVICE, 0),
        },
    };
    let mut buf = [0u8; 24];
    buf[0] = filetype;
    buf[2..4].copy_from_slice(&flags.to_le_bytes());
    buf[8..16].copy_from_slice(&e.rights_base.to_le_bytes());
    buf[16..24].copy_from_slice(&e.rights_inheriting.to_le_bytes());
    m.write(out, &buf)
}

/// Sets the append and non-blocking flags. The synchronized-I/O flags cannot change after
/// the open (`F_SETFL` ignores them): asking for the ones the descriptor has is accepted (so
/// `fcntl(F_SETFL, fcntl(F_GETFL) | O_NONBLOCK)` works), asking for others is `EINVAL`, the
/// errno Wasmtime gives for any of them.
fn fd_fdstat_set_flags(ctx: &WasiCtx, fd: u32, flags: u16) -> WasiResult<()> {
    let e = ctx.file_with(fd, FD_FDSTAT_SET_FLAGS)?;
    e.write_state.set(None); // the append flag may change
    if flags & FDFLAGS_SYNCS != e.sync_flags {
        return Err(Errno::Inval);
    }
    if flags & !(FDFLAGS_APPEND | FDFLAGS_NONBLOCK | FDFLAGS_SYNCS) != 0 {
        return Err(Errno::Notsup);
    }
    let mut host = sys::status_flags(e.fd()?, None)? & !(libc::O_APPEND | libc::O_NONBLOCK);
    if flags & FDFLAGS_APPEND != 0 {
        host |= libc::O_APPEND;
    }
    if flags & FDFLAGS_NONBLOCK != 0 {
        host |= libc::O_NONBLOCK;
    }
    sys::status_flags(e.fd()?, Some(host))?;
    Ok(())
}

fn fd_fdstat_set_rights(ctx: &mut WasiCtx, fd: u32, base: u64, inheriting: u64) -> WasiResult<()> {
    let e = ctx.fds.get_mut(&fd).ok_or(Errno::Badf)?;
    // Rights can only be dropped.
    if base & !e.rights_base != 0 || inheriting & !e.rights_inheriting != 0 {
        return Err(Errno::Notcapable);
    }
    e.rights_base = base;
    e.rights_inheriting = inheriting;
    Ok(())
}

fn fd_filestat_get(ctx: &WasiCtx, abi: Abi, m: &mut GuestMemory, fd: u32, out: u32) -> WasiResult<()> {
    let e = ctx.entry_with(fd, FD_FILESTAT_GET)?;
    let st = match e.host.as_ref() {
        Some(h) => sys::fstat(h.as_fd())?,
        None => {
            // SAFETY: all-zero is a valid stat.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            st.st_mode = libc::S_IFCHR;
            st
        }
    };
    m.write(out, &abi.filestat(&st))
}

/// Checks a growth of a file to `new_end` bytes against the size and disk limits and
/// counts it; returns how many bytes of a write ending at `new_end` may happen.
fn account_growth(ctx: &mut WasiCtx, current_size: u64, start: u64, len: u64) -> WasiResult<u64> {
    let allowed_end = ctx.limits.file_size;
    if start >= allowed_end && len > 0 {
        return Err(Errno::Fbig);
    }
    let len = len.min(allowed_end - start.min(allowed_end));
    let growth = start.saturating_add(len).saturating_sub(current_size);
    if growth > 0 {
        if ctx.usage.disk_bytes.saturating_add(growth) > ctx.limits.disk_bytes {
            return Err(Errno::Nospc);
        }
        ctx.usage.disk_bytes += growth;
    }
    Ok(len)
}

fn fd_filestat_set_size(ctx: &mut WasiCtx, fd: u32, size: u64) -> WasiResult<()> {
    let e = ctx.file_with(fd, FD_FILESTAT_SET_SIZE)?;
    if !e.writable {
        return Err(Errno::Rofs);
    }
    let host = e.fd()?.try_clone_to_owned()?;
    if size > ctx.limits.file_size {
        return Err(Errno::Fbig);
    }
    let current = sys::fstat(host.as_fd())?.st_size as u64;
    ctx.shrinks += 1; // the file may be open through other entries, their sizes now stale
    account_growth(ctx, current, size, 0)?;
    if size > current {
        account_growth(ctx, current, current, size - current)?;
    }
    Ok(sys::ftruncate(host.as_fd(), size)?)
}

fn fd_allocate(ctx: &mut WasiCtx, fd: u32, offset: u64, len: u64) -> WasiResult<()> {
    let e = ctx.file_with(fd, FD_ALLOCATE)?;
    if !e.writable {
        return Err(Errno::Rofs);
    }
    let host = e.fd()?.try_clone_to_owned()?;
    let end = offset.checked_add(len).ok_or(Errno::Fbig)?;
    if end > ctx.limits.file_size || i64::try_from(end).is_err() {
        return Err(Errno::Fbig);
    }
    let current = sys::fstat(host.as_fd())?.st_size as u64;
    account_growth(ctx, current, offset, len)?;
    Ok(sys::fallocate(host.as_fd(), offset, len)?)
}

/// `fd_filestat_set_times`. Stdio is not a file here (`EBADF`, as in Wasmtime): a host file
/// given as stdin keeps its times.
fn fd_filestat_set_times(ctx: &WasiCtx, fd: u32, atim: u64, mtim: u64, flags: u32) -> WasiResult<()> {
    let e = ctx.entry(fd)?;
    if matches!(e.kind, Kind::Stdin | Kind::Stdout | Kind::Stderr) {
        return Err(Errno::Badf);
    }
    e.require(FD_FILESTAT_SET_TIMES)?;
    set_times(e.writable, e.fd()?, atim, mtim, flags)
}

/// Sets the times of what `fd` refers to, from the WASI `fstflags`.
pub(crate) fn set_times(writable: bool, fd: BorrowedFd, atim: u64, mtim: u64, flags: u32) -> WasiResult<()> {
    if !writable {
        return Err(Errno::Rofs);
    }
    let pick = |set: u32, now: u32, t: u64| -> WasiResult<Option<Option<u64>>> {
        match (flags & set != 0, flags & now != 0) {
            (true, true) => Err(Errno::Inval),
            (true, false) => Ok(Some(Some(t))),
            (false, true) => Ok(Some(None)),
            (false, false) => Ok(None),
        }
    };
    let times = [pick(FSTFLAGS_ATIM, FSTFLAGS_ATIM_NOW, atim)?, pick(FSTFLAGS_MTIM, FSTFLAGS_MTIM_NOW, mtim)?];
    Ok(sys::set_times(fd, times)?)
}

fn fd_read(
    ctx: &mut WasiCtx,
    m: &mut GuestMemory,
    fd: u32,
    iovs: u32,
    count: u32,
    at: Option<u64>,
    out: u32,
) -> WasiResult<()> {
    let e = ctx.entry(fd)?;
    match e.kind {
        Kind::Dir { .. } => return Err(Errno::Isdir),
        Kind::Stdout | Kind::Stderr => return Err(Errno::Badf),
        Kind::Stdin if at.is_some() => return Err(Errno::Spipe),
        _ => {}
    }
    e.require(if at.is_some() { FD_READ | FD_SEEK } else { FD_READ })?;
    if at.is_none() {
        e.write_state.set(None); // the offset moves
    }
    let vecs = m.iovecs(iovs, count)?;
    let Some(host) = e.host.as_ref() else {
        return m.write_u32(out, 0); // null stdin: end of file
    };
    let host = host.as_fd();
    if let Some(offset) = at {
        sys::off_t(offset)?;
    }
    let mut total = 0u64;
    vecs.for_each(m, |m, ptr, len| {
        let len = clamp_to_u32_total(total, len);
        let buf = m.slice_mut(ptr, len)?;
        let n = match at {
            Some(offset) => sys::pread(host, buf, offset.checked_add(total).ok_or(Errno::Overflow)?)?,
            None => sys::read(host, buf)?,
        };
        total += n as u64;
        Ok(n == len as usize && len > 0)
    })?;
    m.write_u32(out, u32::try_from(total).expect("clamped to u32"))
}

fn fd_write(
    ctx: &mut WasiCtx,
    m: &mut GuestMemory,
    fd: u32,
    iovs: u32,
    count: u32,
    at: Option<u64>,
    out: u32,
) -> WasiResult<()> {
    let vecs = m.iovecs(iovs, count)?;
    let e = ctx.entry(fd)?;
    let stream = match e.kind {
        Kind::Stdout => Some(0),
        Kind::Stderr => Some(1),
        Kind::Stdin => return Err(Errno::Badf),
        Kind::Dir { .. } => return Err(Errno::Isdir),
        Kind::File => None,
    };
    e.require(if at.is_some() { FD_WRITE | FD_SEEK } else { FD_WRITE })?;
    if let Some(stream) = stream {
        if at.is_some() {
            return Err(Errno::Spipe);
        }
        let host = e.host.as_ref().map(|h| h.as_raw_fd());
        return write_output(ctx, m, stream, host, vecs, out);
    }
    if !e.writable {
        return Err(Errno::Rofs);
    }
    if let Some(offset) = at {
        sys::off_t(offset)?; // before any accounting
    }
    let raw = e.fd()?.as_raw_fd();
    // Taken: a write that fails half-way leaves no state behind (the offset may have moved).
    let known = e.write_state.take().filter(|s| at.is_none() && s.shrinks == ctx.shrinks);
    // SAFETY: `raw` belongs to the entry for `fd`, which stays in the table during this call
    // (only `fd_close`/`fd_renumber` remove entries); borrowing it avoids a dup per write.
    let host = unsafe { BorrowedFd::borrow_raw(raw) };
    // A sequential write after another needs no system call but the write itself.
    let (mut pos, size, append) = match known {
        Some(s) => (s.pos, s.size, s.append),
        None => {
            let size = sys::fstat(host.as_fd())?.st_size as u64;
            let append = sys::status_flags(host.as_fd(), None)? & libc::O_APPEND != 0;
            let pos = match (at, append) {
                (Some(offset), _) => offset,
                (None, true) => size,
                (None, false) => sys::lseek(host.as_fd(), 0, libc::SEEK_CUR)?,
            };
            (pos, size, append)
        }
    };
    let mut total = 0u64;
    let mut size = size;
    vecs.for_each(m, |m, ptr, len| {
        let len = clamp_to_u32_total(total, len);
        if len == 0 {
            return Ok(false);
        }
        let allowed = match account_growth(ctx, size, pos, u64::from(len)) {
            Ok(n) => n,
            Err(_) if total > 0 => return Ok(false), // a short write; the error comes next time
            Err(e) => return Err(e),
        };
        let buf = &m.slice(ptr, len)?[..allowed as usize];
        let n = match at {
            Some(_) => sys::pwrite(host.as_fd(), buf, pos)?,
            None => sys::write(host.as_fd(), buf)?,
        } as u64;
        total += n;
        pos = pos.saturating_add(n);
        size = size.max(pos);
        Ok(n == u64::from(len))
    })?;
    if at.is_none() {
        let state = WriteState { pos, size, append, shrinks: ctx.shrinks };
        ctx.entry(fd)?.write_state.set(Some(state));
    }
    m.write_u32(out, u32::try_from(total).expect("clamped to u32"))
}

/// Writes to stdout (`stream` 0) or stderr (1) — whatever guest descriptor they are now
/// numbered as — through `host` (the descriptor's host fd, `None` when captured), enforcing
/// the shared output limit: past it, the part that fits is written and the run ends.
fn write_output(
    ctx: &mut WasiCtx,
    m: &mut GuestMemory,
    stream: usize,
    host: Option<RawFd>,
    vecs: IovecList,
    out: u32,
) -> WasiResult<()> {
    let mut total = 0u64;
    let mut limited = false;
    vecs.for_each(m, |m, ptr, len| {
        let len = clamp_to_u32_total(total, len);
        if len == 0 {
            return Ok(false);
        }
        let used = ctx.usage.stdout_bytes.saturating_add(ctx.usage.stderr_bytes);
        let room = ctx.limits.output_bytes.saturating_sub(used);
        let take = u64::from(len).min(room);
        limited |= take < u64::from(len);
        let data = &m.slice(ptr, take as u32)?;
        let mode = if stream == 0 { ctx.stdout } else { ctx.stderr };
        let written = match mode {
            Output::Capture => {
                ctx.captured[stream].extend_from_slice(data);
                data.len()
            }
            Output::Inherit => {
                let raw = host.ok_or(Errno::Badf)?;
                // SAFETY: `raw` belongs to a descriptor-table entry, which is not removed while
                // this call runs.
                let host = unsafe { BorrowedFd::borrow_raw(raw) };
                let mut done = 0;
                while done < data.len() {
                    done += sys::write(host, &data[done..])?;
                }
                done
            }
        } as u64;
        if stream == 0 {
            ctx.usage.stdout_bytes += written;
        } else {
            ctx.usage.stderr_bytes += written;
        }
        total += written;
        Ok(!limited)
    })?;
    if limited {
        // Reported as EPIPE internally; `call` turns it into Exit::OutputLimit.
        return Err(Errno::Pipe);
    }
    m.write_u32(out, u32::try_from(total).expect("clamped to u32"))
}

fn fd_prestat_get(ctx: &WasiCtx, m: &mut GuestMemory, fd: u32, out: u32) -> WasiResult<()> {
    match &ctx.entry(fd)?.kind {
        Kind::Dir { preopen: Some(name) } => {
            m.write_u32(out, 0)?;
            m.write_u32(out.checked_add(4).ok_or(Errno::Fault)?, name.len() as u32)
        }
        _ => Err(Errno::Badf),
    }
}

fn fd_prestat_dir_name(ctx: &WasiCtx, m: &mut GuestMemory, fd: u32, buf: u32, len: u32) -> WasiResult<()> {
    match &ctx.entry(fd)?.kind {
        Kind::Dir { preopen: Some(name) } => {
            if (len as usize) < name.len() {
                return Err(Errno::Nametoolong);
            }
            m.write(buf, name.as_bytes())
        }
        _ => Err(Errno::Badf),
    }
}

fn fd_readdir(
    ctx: &WasiCtx,
    m: &mut GuestMemory,
    fd: u32,
    buf: u32,
    len: u32,
    cookie: u64,
    out: u32,
) -> WasiResult<()> {
    let e = ctx.dir_with(fd, FD_READDIR)?;
    m.slice(buf, len)?; // EFAULT before any work
    let entries = sys::read_dir(e.fd()?)?;
    let mut bytes = Vec::new();
    for (i, entry) in entries.iter().enumerate().skip(usize::try_from(cookie).unwrap_or(usize::MAX)) {
        if bytes.len() >= len as usize {
            break; // at most one entry past `len` bytes: bounded by the guest's buffer
        }
        let mut header = [0u8; 24];
        header[0..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        header[8..16].copy_from_slice(&entry.ino.to_le_bytes());
        header[16..20].copy_from_slice(&(entry.name.len() as u32).to_le_bytes());
        header[20] = dirent_type(entry.d_type);
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&entry.name);
    }
    // A full buffer (bufused == buf_len) tells the guest there may be more.
    bytes.truncate(len as usize);
    m.write(buf, &bytes)?;
    m.write_u32(out, bytes.len() as u32)
}

/// `fd_renumber`, as Wasmtime does it: `to` is closed and takes `from`'s entry; `from`
/// becomes free (renumbering onto itself changes nothing).
fn fd_renumber(ctx: &mut WasiCtx, from: u32, to: u32) -> WasiResult<()> {
    if !ctx.fds.contains_key(&from) || !ctx.fds.contains_key(&to) {
        return Err(Errno::Badf);
    }
    if from == to {
        return Ok(());
    }
    drop(ctx.close(to)?);
    let entry = ctx.close(from)?;
    ctx.install(to, entry);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn fd_seek(
    ctx: &WasiCtx,
    abi: Abi,
    m: &mut GuestMemory,
    fd: u32,
    offset: i64,
    whence: u32,
    out: u32,
) -> WasiResult<()> {
    let e = ctx.file(fd)?;
    let whence = abi.whence(whence).ok_or(Errno::Inval)?;
    // Asking where the offset is needs only FD_TELL (which FD_SEEK implies).
    if offset == 0 && whence == libc::SEEK_CUR {
        e.require_any(FD_TELL | FD_SEEK)?;
    } else {
        e.require(FD_SEEK)?;
    }
    e.write_state.set(None); // the offset moves
    let pos = sys::lseek(e.fd()?, offset, whence)?;
    m.write_u64(out, pos)
}
