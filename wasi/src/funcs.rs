//! The WASI functions. [`call`] decodes the raw arguments, runs the function against the
//! context and guest memory, and returns the errno (or an [`Exit`] that ends the run).
//!
//! Conventions: a read-only mount refuses every mutation with `EROFS`; a path that would
//! leave its preopen (absolute, `..` past the root, a symlink pointing outside) is
//! `ENOTCAPABLE`; a bad guest pointer is `EFAULT`.

use crate::abi::{dirent_type, filetype, Abi};
use crate::ctx::{FdEntry, Kind, Output, WasiCtx, WriteState, ALL_RIGHTS};
use crate::errno::{Errno, WasiResult};
use crate::memory::GuestMemory;
use crate::sys;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

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

const FDFLAGS_APPEND: u16 = 1;
const FDFLAGS_NONBLOCK: u16 = 4;
const OFLAGS_CREAT: u32 = 1;
const OFLAGS_DIRECTORY: u32 = 2;
const OFLAGS_EXCL: u32 = 4;
const OFLAGS_TRUNC: u32 = 8;
const LOOKUP_SYMLINK_FOLLOW: u32 = 1;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const RIGHT_FD_ALLOCATE: u64 = 1 << 8;
const RIGHT_FD_READDIR: u64 = 1 << 14;
const RIGHT_FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
const FSTFLAGS_ATIM: u32 = 1;
const FSTFLAGS_ATIM_NOW: u32 = 2;
const FSTFLAGS_MTIM: u32 = 4;
const FSTFLAGS_MTIM_NOW: u32 = 8;

/// Calls function `index` of `abi.functions()` with raw arguments (i32s zero-extended).
/// `memory` is the caller's whole linear memory. Returns the errno.
pub fn call(ctx: &mut WasiCtx, abi: Abi, index: usize, memory: &mut [u8], args: &[u64]) -> Result<u64, Exit> {
    let sig = abi.functions().get(index).expect("index from Abi::functions");
    debug_assert_eq!(sig.params.len(), args.len());
    let mut m = GuestMemory::new(memory);
    let a = |i: usize| args[i] as u32;
    let w = |i: usize| args[i];
    let r = match sig.name {
        "args_get" => strings_get(&ctx.args, &mut m, a(0), a(1)),
        "args_sizes_get" => strings_sizes(&ctx.args, &mut m, a(0), a(1)),
        "environ_get" => strings_get(&ctx.env, &mut m, a(0), a(1)),
        "environ_sizes_get" => strings_sizes(&ctx.env, &mut m, a(0), a(1)),
        "clock_res_get" => clock_id(a(0)).and_then(|id| Ok(sys::clock(id, true)?)).and_then(|t| m.write_u64(a(1), t)),
        "clock_time_get" => clock_id(a(0)).and_then(|id| Ok(sys::clock(id, false)?)).and_then(|t| m.write_u64(a(2), t)),
        "fd_advise" => ctx.file(a(0)).and_then(|_| if a(3) > 5 { Err(Errno::Inval) } else { Ok(()) }),
        "fd_allocate" => fd_allocate(ctx, a(0), w(1), w(2)),
        "fd_close" => ctx.fds.remove(&a(0)).map(drop).ok_or(Errno::Badf),
        "fd_datasync" => ctx.entry(a(0)).and_then(|e| Ok(sys::sync(e.fd()?, true)?)),
        "fd_sync" => ctx.entry(a(0)).and_then(|e| Ok(sys::sync(e.fd()?, false)?)),
        "fd_fdstat_get" => fd_fdstat_get(ctx, &mut m, a(0), a(1)),
        "fd_fdstat_set_flags" => fd_fdstat_set_flags(ctx, a(0), a(1) as u16),
        "fd_fdstat_set_rights" => fd_fdstat_set_rights(ctx, a(0), w(1), w(2)),
        "fd_filestat_get" => fd_filestat_get(ctx, abi, &mut m, a(0), a(1)),
        "fd_filestat_set_size" => fd_filestat_set_size(ctx, a(0), w(1)),
        "fd_filestat_set_times" => {
            ctx.entry(a(0)).and_then(|e| set_times(e.writable, e.fd()?, None, w(1), w(2), a(3), true))
        }
        "fd_pread" => fd_read(ctx, &mut m, a(0), a(1), a(2), Some(w(3)), a(4)),
        "fd_read" => fd_read(ctx, &mut m, a(0), a(1), a(2), None, a(3)),
        "fd_pwrite" => fd_write(ctx, &mut m, a(0), a(1), a(2), Some(w(3)), a(4)),
        "fd_write" => fd_write(ctx, &mut m, a(0), a(1), a(2), None, a(3)),
        "fd_prestat_get" => fd_prestat_get(ctx, &mut m, a(0), a(1)),
        "fd_prestat_dir_name" => fd_prestat_dir_name(ctx, &mut m, a(0), a(1), a(2)),
        "fd_readdir" => fd_readdir(ctx, &mut m, a(0), a(1), a(2), w(3), a(4)),
        "fd_renumber" => fd_renumber(ctx, a(0), a(1)),
        "fd_seek" => fd_seek(ctx, abi, &mut m, a(0), w(1) as i64, a(2), a(3)),
        "fd_tell" => {
            ctx.file(a(0)).and_then(|e| Ok(sys::lseek(e.fd()?, 0, libc::SEEK_CUR)?)).and_then(|p| m.write_u64(a(1), p))
        }
        "path_create_directory" => path_create_directory(ctx, &m, a(0), a(1), a(2)),
        "path_filestat_get" => path_filestat_get(ctx, abi, &mut m, a(0), a(1), a(2), a(3), a(4)),
        "path_filestat_set_times" => path_filestat_set_times(ctx, &m, a(0), a(1), a(2), a(3), w(4), w(5), a(6)),
        "path_link" => path_link(ctx, &m, a(0), a(2), a(3), a(4), a(5), a(6)),
        "path_open" => path_open(ctx, &mut m, a(0), a(1), a(2), a(3), a(4), w(5), w(6), a(7) as u16, a(8)),
        "path_readlink" => path_readlink(ctx, &mut m, a(0), a(1), a(2), a(3), a(4), a(5)),
        "path_remove_directory" => path_remove(ctx, &m, a(0), a(1), a(2), true),
        "path_unlink_file" => path_remove(ctx, &m, a(0), a(1), a(2), false),
        "path_rename" => path_rename(ctx, &m, a(0), a(1), a(2), a(3), a(4), a(5)),
        "path_symlink" => path_symlink(ctx, &m, a(0), a(1), a(2), a(3), a(4)),
        "poll_oneoff" => poll_oneoff(ctx, abi, &mut m, a(0), a(1), a(2), a(3)),
        "proc_exit" => return Err(Exit::Code(a(0))),
        "proc_raise" => return Err(Exit::Signal(a(0) as u8)),
        "random_get" => m.slice_mut(a(0), a(1)).and_then(|buf| Ok(sys::getrandom(buf)?)),
        "sched_yield" => {
            std::thread::yield_now();
            Ok(())
        }
        // No socket is ever preopened: every descriptor is a file, a directory or stdio.
        "sock_accept" | "sock_recv" | "sock_send" | "sock_shutdown" => ctx.entry(a(0)).and(Err(Errno::Notsock)),
        other => unreachable!("unlisted function {other}"),
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

    fn file(&self, fd: u32) -> WasiResult<&FdEntry> {
        let e = self.entry(fd)?;
        match e.kind {
            Kind::File => Ok(e),
            Kind::Dir { .. } => Err(Errno::Isdir),
            _ => Err(Errno::Spipe),
        }
    }

    fn dir(&self, fd: u32) -> WasiResult<&FdEntry> {
        let e = self.entry(fd)?;
        match e.kind {
            Kind::Dir { .. } => Ok(e),
            _ => Err(Errno::Notdir),
        }
    }

    fn output_limit_hit(&self) -> bool {
        self.usage.stdout_bytes + self.usage.stderr_bytes >= self.limits.output_bytes
    }

    fn count_created(&mut self) -> WasiResult<()> {
        if self.usage.files_created >= self.limits.files_created {
            return Err(Errno::Dquot);
        }
        self.usage.files_created += 1;
        Ok(())
    }

    fn next_fd(&self) -> WasiResult<u32> {
        if self.fds.len() as u64 >= self.limits.open_files {
            return Err(Errno::Mfile);
        }
        // The lowest free number, as POSIX does.
        Ok((0..).find(|n| !self.fds.contains_key(n)).expect("a free number"))
    }
}

fn clock_id(id: u32) -> WasiResult<libc::clockid_t> {
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
        m.write_u32(ptrs + 4 * i as u32, at)?;
        m.write(at, s)?;
        m.write(at + s.len() as u32, &[0])?;
        at += s.len() as u32 + 1;
    }
    Ok(())
}

// ----- descriptors ------------------------------------------------------------------------------

fn fd_fdstat_get(ctx: &WasiCtx, m: &mut GuestMemory, fd: u32, out: u32) -> WasiResult<()> {
    let e = ctx.entry(fd)?;
    let (filetype, flags) = match &e.kind {
        Kind::Dir { .. } => (filetype::DIRECTORY, 0),
        Kind::File => {
            let fl = sys::status_flags(e.fd()?, None)?;
            let mut flags = 0u16;
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

fn fd_fdstat_set_flags(ctx: &WasiCtx, fd: u32, flags: u16) -> WasiResult<()> {
    let e = ctx.file(fd)?;
    e.write_state.set(None); // the append flag may change
    if flags & !(FDFLAGS_APPEND | FDFLAGS_NONBLOCK) != 0 {
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
    let e = ctx.entry(fd)?;
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
    let growth = (start + len).saturating_sub(current_size);
    if growth > 0 {
        if ctx.usage.disk_bytes + growth > ctx.limits.disk_bytes {
            return Err(Errno::Nospc);
        }
        ctx.usage.disk_bytes += growth;
    }
    Ok(len)
}

fn fd_filestat_set_size(ctx: &mut WasiCtx, fd: u32, size: u64) -> WasiResult<()> {
    let e = ctx.file(fd)?;
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
    let e = ctx.file(fd)?;
    if !e.writable {
        return Err(Errno::Rofs);
    }
    let host = e.fd()?.try_clone_to_owned()?;
    let end = offset.checked_add(len).ok_or(Errno::Fbig)?;
    if end > ctx.limits.file_size {
        return Err(Errno::Fbig);
    }
    let current = sys::fstat(host.as_fd())?.st_size as u64;
    account_growth(ctx, current, offset, len)?;
    Ok(sys::fallocate(host.as_fd(), offset, len)?)
}

fn set_times(
    writable: bool,
    fd: std::os::fd::BorrowedFd,
    name: Option<&str>,
    atim: u64,
    mtim: u64,
    flags: u32,
    follow: bool,
) -> WasiResult<()> {
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
    Ok(sys::set_times(fd, name, times, follow)?)
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
    if at.is_none() {
        e.write_state.set(None); // the offset moves
    }
    let vecs = m.iovecs(iovs, count)?;
    let Some(host) = e.host.as_ref() else {
        return m.write_u32(out, 0); // null stdin: end of file
    };
    let host = host.as_fd();
    let mut total = 0u64;
    for (ptr, len) in vecs {
        let buf = m.slice_mut(ptr, len)?;
        let n = match at {
            Some(offset) => sys::pread(host, buf, offset + total)?,
            None => sys::read(host, buf)?,
        };
        total += n as u64;
        if n < len as usize {
            break;
        }
    }
    m.write_u32(out, total as u32)
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
    if let Some(stream) = stream {
        if at.is_some() {
            return Err(Errno::Spipe);
        }
        let host = e.host.as_ref().map(|h| h.as_raw_fd());
        return write_output(ctx, m, stream, host, &vecs, out);
    }
    if !e.writable {
        return Err(Errno::Rofs);
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
    for (ptr, len) in vecs {
        if len == 0 {
            continue;
        }
        let allowed = match account_growth(ctx, size, pos, u64::from(len)) {
            Ok(n) => n,
            Err(e) if total > 0 => {
                let _ = e;
                break;
            }
            Err(e) => return Err(e),
        };
        let buf = &m.slice(ptr, len)?[..allowed as usize];
        let n = match at {
            Some(_) => sys::pwrite(host.as_fd(), buf, pos)?,
            None => sys::write(host.as_fd(), buf)?,
        } as u64;
        total += n;
        pos += n;
        size = size.max(pos);
        if n < u64::from(len) {
            break;
        }
    }
    if at.is_none() {
        let state = WriteState { pos, size, append, shrinks: ctx.shrinks };
        ctx.entry(fd)?.write_state.set(Some(state));
    }
    m.write_u32(out, total as u32)
}

/// Writes to stdout (`stream` 0) or stderr (1) — whatever guest descriptor they are now
/// numbered as — through `host` (the descriptor's host fd, `None` when captured), enforcing
/// the shared output limit: past it, the part that fits is written and the run ends.
fn write_output(
    ctx: &mut WasiCtx,
    m: &mut GuestMemory,
    stream: usize,
    host: Option<RawFd>,
    vecs: &[(u32, u32)],
    out: u32,
) -> WasiResult<()> {
    let mut total = 0u64;
    let mut limited = false;
    for (ptr, len) in vecs {
        let used = ctx.usage.stdout_bytes + ctx.usage.stderr_bytes;
        let room = ctx.limits.output_bytes.saturating_sub(used);
        let take = u64::from(*len).min(room);
        limited |= take < u64::from(*len);
        let data = &m.slice(*ptr, take as u32)?;
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
        if limited {
            break;
        }
    }
    if limited {
        // Reported as EPIPE internally; `call` turns it into Exit::OutputLimit.
        return Err(Errno::Pipe);
    }
    m.write_u32(out, total as u32)
}

fn fd_prestat_get(ctx: &WasiCtx, m: &mut GuestMemory, fd: u32, out: u32) -> WasiResult<()> {
    match &ctx.entry(fd)?.kind {
        Kind::Dir { preopen: Some(name) } => {
            m.write_u32(out, 0)?;
            m.write_u32(out + 4, name.len() as u32)
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
    let e = ctx.dir(fd)?;
    let entries = sys::read_dir(e.fd()?)?;
    let mut bytes = Vec::new();
    for (i, entry) in entries.iter().enumerate().skip(usize::try_from(cookie).unwrap_or(usize::MAX)) {
        if bytes.len() >= len as usize {
            break;
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

fn fd_renumber(ctx: &mut WasiCtx, from: u32, to: u32) -> WasiResult<()> {
    if !ctx.fds.contains_key(&from) || !ctx.fds.contains_key(&to) {
        return Err(Errno::Badf);
    }
    let entry = ctx.fds.remove(&from).expect("checked");
    ctx.fds.insert(to, entry);
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
    e.write_state.set(None); // the offset moves
    let whence = abi.whence(whence).ok_or(Errno::Inval)?;
    let pos = sys::lseek(e.fd()?, offset, whence)?;
    m.write_u64(out, pos)
}

// ----- paths ------------------------------------------------------------------------------------

/// A path split into the directory that holds its last component (opened beneath the
/// guest's directory descriptor) and that component.
struct Parent {
    dir: OwnedFd,
    name: String,
    trailing_slash: bool,
}

fn guest_path<'a>(m: &'a GuestMemory, ptr: u32, len: u32) -> WasiResult<&'a str> {
    let path = m.str(ptr, len)?;
    if path.contains('\0') {
        return Err(Errno::Ilseq);
    }
    if path.starts_with('/') {
        return Err(Errno::Notcapable);
    }
    if path.is_empty() {
        return Err(Errno::Noent);
    }
    Ok(path)
}

fn parent(dir: &FdEntry, path: &str) -> WasiResult<Parent> {
    let trimmed = path.trim_end_matches('/');
    let trailing_slash = trimmed.len() != path.len();
    if trimmed.is_empty() {
        return Err(Errno::Notcapable);
    }
    let (parent, name) = match trimmed.rfind('/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (".", trimmed),
    };
    if name == "." || name == ".." {
        return Err(if name == ".." { Errno::Notcapable } else { Errno::Inval });
    }
    let parent = if parent.is_empty() { "." } else { parent };
    let dir = sys::open_beneath(dir.fd()?, parent, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    Ok(Parent { dir, name: name.to_string(), trailing_slash })
}

fn writable_dir(ctx: &WasiCtx, fd: u32) -> WasiResult<&FdEntry> {
    let dir = ctx.dir(fd)?;
    if !dir.writable {
        return Err(Errno::Rofs);
    }
    Ok(dir)
}

fn path_create_directory(ctx: &mut WasiCtx, m: &GuestMemory, fd: u32, ptr: u32, len: u32) -> WasiResult<()> {
    let p = parent(writable_dir(ctx, fd)?, guest_path(m, ptr, len)?)?;
    ctx.count_created()?;
    Ok(sys::mkdir_at(p.dir.as_fd(), &p.name)?)
}

#[allow(clippy::too_many_arguments)]
fn path_filestat_get(
    ctx: &WasiCtx,
    abi: Abi,
    m: &mut GuestMemory,
    fd: u32,
    flags: u32,
    ptr: u32,
    len: u32,
    out: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let path = guest_path(m, ptr, len)?;
    let mut oflags = libc::O_PATH;
    if flags & LOOKUP_SYMLINK_FOLLOW == 0 {
        oflags |= libc::O_NOFOLLOW;
    }
    let f = sys::open_beneath(dir.fd()?, path, oflags, 0)?;
    let st = sys::fstat(f.as_fd())?;
    m.write(out, &abi.filestat(&st))
}

#[allow(clippy::too_many_arguments)]
fn path_filestat_set_times(
    ctx: &WasiCtx,
    m: &GuestMemory,
    fd: u32,
    flags: u32,
    ptr: u32,
    len: u32,
    atim: u64,
    mtim: u64,
    fst: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let p = parent(dir, guest_path(m, ptr, len)?)?;
    set_times(dir.writable, p.dir.as_fd(), Some(&p.name), atim, mtim, fst, flags & LOOKUP_SYMLINK_FOLLOW != 0)
}

#[allow(clippy::too_many_arguments)]
fn path_link(
    ctx: &mut WasiCtx,
    m: &GuestMemory,
    old_fd: u32,
    old_ptr: u32,
    old_len: u32,
    new_fd: u32,
    new_ptr: u32,
    new_len: u32,
) -> WasiResult<()> {
    let from = parent(writable_dir(ctx, old_fd)?, guest_path(m, old_ptr, old_len)?)?;
    let to = parent(writable_dir(ctx, new_fd)?, guest_path(m, new_ptr, new_len)?)?;
    if from.trailing_slash || to.trailing_slash {
        return Err(Errno::Notdir);
    }
    ctx.count_created()?;
    Ok(sys::link_at(from.dir.as_fd(), &from.name, to.dir.as_fd(), &to.name)?)
}

#[allow(clippy::too_many_arguments)]
fn path_open(
    ctx: &mut WasiCtx,
    m: &mut GuestMemory,
    fd: u32,
    lookup: u32,
    ptr: u32,
    len: u32,
    oflags: u32,
    rights_base: u64,
    rights_inheriting: u64,
    fdflags: u16,
    out: u32,
) -> WasiResult<()> {
    let dir = ctx.dir(fd)?;
    let path = guest_path(m, ptr, len)?.to_string();
    let write = rights_base & (RIGHT_FD_WRITE | RIGHT_FD_ALLOCATE | RIGHT_FD_FILESTAT_SET_SIZE) != 0
        || fdflags & FDFLAGS_APPEND != 0
        || oflags & OFLAGS_TRUNC != 0;
    let read = rights_base & (RIGHT_FD_READ | RIGHT_FD_READDIR) != 0 || !write;
    let creates = oflags & OFLAGS_CREAT != 0;
    if (write || creates) && !dir.writable {
        return Err(Errno::Rofs);
    }
    let mut flags = match (read, write) {
        (true, true) => libc::O_RDWR,
        (false, true) => libc::O_WRONLY,
        _ => libc::O_RDONLY,
    };
    if oflags & OFLAGS_DIRECTORY != 0 {
        flags = libc::O_RDONLY | libc::O_DIRECTORY;
    }
    if oflags & OFLAGS_TRUNC != 0 {
        flags |= libc::O_TRUNC;
    }
    if fdflags & FDFLAGS_APPEND != 0 {
        flags |= libc::O_APPEND;
    }
    if fdflags & FDFLAGS_NONBLOCK != 0 {
        flags |= libc::O_NONBLOCK;
    }
    if lookup & LOOKUP_SYMLINK_FOLLOW == 0 {
        flags |= libc::O_NOFOLLOW;
    }
    let writable = dir.writable;
    let inheriting = dir.rights_inheriting;
    let new_fd = ctx.next_fd()?;
    let dir_fd = ctx.dir(fd)?.fd()?.try_clone_to_owned()?;
    let host = if creates {
        match sys::open_beneath(dir_fd.as_fd(), &path, flags, 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) || oflags & OFLAGS_EXCL != 0 => {
                // Creating: count it against the quota first.
                ctx.count_created()?;
                sys::open_beneath(dir_fd.as_fd(), &path, flags | libc::O_CREAT | libc::O_EXCL, 0o666)?
            }
            other => other?,
        }
    } else {
        sys::open_beneath(dir_fd.as_fd(), &path, flags, 0)?
    };
    if oflags & OFLAGS_TRUNC != 0 {
        ctx.shrinks += 1; // the file may be open through other entries, their sizes now stale
    }
    let st = sys::fstat(host.as_fd())?;
    let kind = if st.st_mode & libc::S_IFMT == libc::S_IFDIR { Kind::Dir { preopen: None } } else { Kind::File };
    ctx.fds.insert(
        new_fd,
        FdEntry::new(
            kind,
            Some(host),
            writable,
            rights_base & inheriting & ALL_RIGHTS,
            rights_inheriting & inheriting & ALL_RIGHTS,
        ),
    );
    m.write_u32(out, new_fd)
}

#[allow(clippy::too_many_arguments)]
fn path_readlink(
    ctx: &WasiCtx,
    m: &mut GuestMemory,
    fd: u32,
    ptr: u32,
    len: u32,
    buf: u32,
    buf_len: u32,
    out: u32,
) -> WasiResult<()> {
    let p = parent(ctx.dir(fd)?, guest_path(m, ptr, len)?)?;
    let target = sys::readlink_at(p.dir.as_fd(), &p.name)?;
    let n = target.len().min(buf_len as usize);
    m.write(buf, &target[..n])?;
    m.write_u32(out, n as u32)
}

fn path_remove(ctx: &WasiCtx, m: &GuestMemory, fd: u32, ptr: u32, len: u32, is_dir: bool) -> WasiResult<()> {
    let p = parent(writable_dir(ctx, fd)?, guest_path(m, ptr, len)?)?;
    if p.trailing_slash && !is_dir {
        return Err(Errno::Notdir);
    }
    Ok(sys::unlink_at(p.dir.as_fd(), &p.name, is_dir)?)
}

#[allow(clippy::too_many_arguments)]
fn path_rename(
    ctx: &WasiCtx,
    m: &GuestMemory,
    old_fd: u32,
    old_ptr: u32,
    old_len: u32,
    new_fd: u32,
    new_ptr: u32,
    new_len: u32,
) -> WasiResult<()> {
    let from = parent(writable_dir(ctx, old_fd)?, guest_path(m, old_ptr, old_len)?)?;
    let to = parent(writable_dir(ctx, new_fd)?, guest_path(m, new_ptr, new_len)?)?;
    Ok(sys::rename_at(from.dir.as_fd(), &from.name, to.dir.as_fd(), &to.name)?)
}

fn path_symlink(
    ctx: &mut WasiCtx,
    m: &GuestMemory,
    old_ptr: u32,
    old_len: u32,
    fd: u32,
    ptr: u32,
    len: u32,
) -> WasiResult<()> {
    let target = m.str(old_ptr, old_len)?;
    let p = parent(writable_dir(ctx, fd)?, guest_path(m, ptr, len)?)?;
    if p.trailing_slash {
        return Err(Errno::Noent);
    }
    ctx.count_created()?;
    Ok(sys::symlink_at(target, p.dir.as_fd(), &p.name)?)
}

// ----- polling -----------------------------------------------------------------------------------

fn poll_oneoff(
    ctx: &WasiCtx,
    abi: Abi,
    m: &mut GuestMemory,
    subs: u32,
    events: u32,
    count: u32,
    out: u32,
) -> WasiResult<()> {
    if count == 0 {
        return Err(Errno::Inval);
    }
    let size = abi.subscription_size();
    m.slice(subs, count.checked_mul(size).ok_or(Errno::Fault)?)?;
    m.slice(events, count.checked_mul(32).ok_or(Errno::Fault)?)?;
    let now = sys::clock(libc::CLOCK_MONOTONIC, false)?;
    let mut ready = Vec::new();
    let mut earliest: Option<(u64, Vec<u64>)> = None;
    for i in 0..count {
        let s = subs + i * size;
        let userdata = m.read_u64(s)?;
        let tag = m.slice(s + 8, 1)?[0];
        match tag {
            0 => {
                // Clock: preview1 (id u32 @16, timeout @24, flags u16 @40);
                // snapshot 0 (identifier u64 @16, id u32 @24, timeout @32, flags @48).
                let (id, timeout, flags) = match abi {
                    Abi::Preview1 => (m.read_u32(s + 16)?, m.read_u64(s + 24)?, m.read_u16(s + 40)?),
                    Abi::Unstable => (m.read_u32(s + 24)?, m.read_u64(s + 32)?, m.read_u16(s + 48)?),
                };
                let clock = clock_id(id)?;
                let deadline = if flags & 1 != 0 {
                    // Absolute: convert to a relative wait on the same clock.
                    now + timeout.saturating_sub(sys::clock(clock, false)?)
                } else {
                    now + timeout
                };
                match &mut earliest {
                    Some((d, list)) if *d == deadline => list.push(userdata),
                    Some((d, _)) if *d < deadline => {}
                    _ => earliest = Some((deadline, vec![userdata])),
                }
            }
            1 | 2 => {
                let fd = m.read_u32(s + 16)?;
                let error = match ctx.entry(fd) {
                    Ok(_) => Errno::Success,
                    Err(e) => e,
                };
                // Files and stdio are always ready: report them at once.
                ready.push((userdata, error as u16, tag));
            }
            _ => return Err(Errno::Inval),
        }
    }
    if ready.is_empty() {
        if let Some((deadline, list)) = earliest {
            let wait = deadline.saturating_sub(sys::clock(libc::CLOCK_MONOTONIC, false)?);
            std::thread::sleep(std::time::Duration::from_nanos(wait));
            ready.extend(list.into_iter().map(|u| (u, 0, 0)));
        }
    }
    for (i, (userdata, error, tag)) in ready.iter().enumerate() {
        let mut event = [0u8; 32];
        event[0..8].copy_from_slice(&userdata.to_le_bytes());
        event[8..10].copy_from_slice(&error.to_le_bytes());
        event[10] = *tag;
        m.write(events + 32 * i as u32, &event)?;
    }
    m.write_u32(out, ready.len() as u32)
}
