//! Thin wrappers over the raw syscalls of the runtime: memory mappings, signal handlers and
//! alternate signal stacks. Each turns the C convention (-1 and errno) into `io::Error`;
//! nothing else in the vm calls libc.
//!
//! Every function here is async-signal-safe (a syscall and a read of `errno`, no allocation):
//! the trap handler in `traps.rs` uses some of them.

use std::io;
use std::os::fd::RawFd;

/// Page protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prot {
    /// No access.
    None,
    /// Read and write.
    ReadWrite,
    /// Read and execute.
    ReadExec,
}

impl Prot {
    fn bits(self) -> i32 {
        match self {
            Prot::None => libc::PROT_NONE,
            Prot::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
            Prot::ReadExec => libc::PROT_READ | libc::PROT_EXEC,
        }
    }
}

/// Turns a C return value (-1 and errno on failure) into a `Result`.
fn check(ret: libc::c_int) -> io::Result<()> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

// ----- memory -------------------------------------------------------------------------------

/// The system page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size <= 0 {
        4096
    } else {
        size as usize
    }
}

/// Reserves `len` bytes of address space (`mmap` of a private anonymous mapping with
/// `PROT_NONE` and `MAP_NORESERVE`): inaccessible and not backed by memory until made
/// accessible with [`protect`]. The address is page-aligned.
///
/// # Errors
/// The kernel's answer, e.g. `ENOMEM` under a tight `RLIMIT_AS`, or `EINVAL` for `len == 0`.
pub fn reserve(len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh anonymous mapping at an address the kernel chooses touches no
    // existing memory.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(ptr.cast::<u8>())
}

/// Changes the protection of `len` bytes at `ptr` (`mprotect`). `len == 0` does nothing.
///
/// # Errors
/// The kernel's answer, e.g. `ENOMEM` when committing memory fails.
///
/// # Safety
/// `ptr..ptr+len` must lie in a mapping the caller owns, `ptr` page-aligned, and no live
/// Rust reference may point into a range made less accessible.
pub unsafe fn protect(ptr: *mut u8, len: usize, prot: Prot) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: guaranteed by the caller.
    check(unsafe { libc::mprotect(ptr.cast(), len, prot.bits()) })
}

/// Unmaps `len` bytes at `ptr` (`munmap`).
///
/// # Errors
/// The kernel's answer (only for invalid arguments).
///
/// # Safety
/// The range must be a mapping the caller owns and nothing may use it afterwards.
pub unsafe fn unmap(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    check(unsafe { libc::munmap(ptr.cast(), len) })
}

/// Maps `len` bytes of the file `fd` from `offset` over `ptr`, private (copy-on-write) and
/// read-write (`mmap` with `MAP_PRIVATE | MAP_FIXED`), replacing what was mapped there.
///
/// # Errors
/// The kernel's answer, e.g. `EACCES` for a descriptor not open for reading, `ENODEV` for a
/// file that cannot be mapped, `EINVAL` for unaligned arguments.
///
/// # Safety
/// `ptr..ptr+len` must lie in a mapping the caller owns, `ptr` and `offset` page-aligned, with
/// no live Rust reference into it; the file's bytes in `offset..offset+len` must exist and must
/// not change while the mapping lives (pages not yet written still read through to the file).
pub unsafe fn map_file_private(ptr: *mut u8, len: usize, fd: RawFd, offset: u64) -> io::Result<()> {
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: guaranteed by the caller; MAP_FIXED only replaces the caller's own range.
    let got = unsafe {
        libc::mmap(ptr.cast(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_FIXED, fd, offset)
    };
    if got == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces `len` bytes at `ptr` with fresh zero pages, private, anonymous and read-write
/// (`mmap` with `MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED`).
///
/// # Errors
/// The kernel's answer.
///
/// # Safety
/// As for [`map_file_private`], without the file.
pub unsafe fn map_zero_fixed(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller; MAP_FIXED only replaces the caller's own range.
    let got = unsafe {
        libc::mmap(
            ptr.cast(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if got == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the pages of `len` bytes at `ptr` back to the kernel (`madvise(MADV_DONTNEED)`);
/// they read as zero again.
///
/// # Errors
/// The kernel's answer (only for invalid arguments).
///
/// # Safety
/// The range must be a private anonymous mapping the caller owns, with no live references.
pub unsafe fn discard(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    check(unsafe { libc::madvise(ptr.cast(), len, libc::MADV_DONTNEED) })
}

// ----- signals ------------------------------------------------------------------------------

/// The action installed for `sig`, without changing it (`sigaction` with no new action).
///
/// # Errors
/// `EINVAL` for an invalid signal number.
pub fn query_sigaction(sig: libc::c_int) -> io::Result<libc::sigaction> {
    // SAFETY: all-zero is a valid `sigaction` (SIG_DFL, empty mask, no flags).
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one into a valid out-pointer.
    check(unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) })?;
    Ok(old)
}

/// Installs `action` for `sig` (`sigaction`).
///
/// # Errors
/// `EINVAL` for an invalid or uncatchable signal number.
///
/// # Safety
/// `action.sa_sigaction` must be `SIG_DFL`, `SIG_IGN`, or a function with the signature its
/// `sa_flags` announce that is sound to run at any point of any thread of the process.
pub unsafe fn set_sigaction(sig: libc::c_int, action: &libc::sigaction) -> io::Result<()> {
    // SAFETY: guaranteed by the caller; `action` is a valid pointer.
    check(unsafe { libc::sigaction(sig, action, std::ptr::null_mut()) })
}

/// An empty signal set.
pub fn empty_sigset() -> libc::sigset_t {
    // SAFETY: all-zero is a valid `sigset_t` to pass to sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer; sigemptyset cannot fail for it.
    unsafe { libc::sigemptyset(&mut set) };
    set
}

/// Sends `sig` to the calling thread (`raise`).
///
/// # Errors
/// `EINVAL` for an invalid signal number.
pub fn raise(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: raise has no memory-safety preconditions.
    if unsafe { libc::raise(sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The calling thread's alternate signal stack (`sigaltstack` with no new stack); its
/// `ss_flags` has `SS_DISABLE` when there is none and `SS_ONSTACK` while running on it.
///
/// # Errors
/// Never in practice (the kernel only rejects bad pointers).
pub fn current_sigaltstack() -> io::Result<libc::stack_t> {
    // SAFETY: all-zero is a valid `stack_t`.
    let mut old: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new stack only reads the current one into a valid out-pointer.
    check(unsafe { libc::sigaltstack(std::ptr::null(), &mut old) })?;
    Ok(old)
}

/// Sets the calling thread's alternate signal stack (`sigaltstack`); `ss_flags: SS_DISABLE`
/// removes it.
///
/// # Errors
/// `EPERM` while running on the current alternate stack, `ENOMEM` for a stack below
/// `MINSIGSTKSZ`.
///
/// # Safety
/// The stack's memory must stay mapped read-write, and be used for nothing else, for as long
/// as it is this thread's alternate signal stack.
pub unsafe fn set_sigaltstack(stack: &libc::stack_t) -> io::Result<()> {
    // SAFETY: guaranteed by the caller; `stack` is a valid pointer.
    check(unsafe { libc::sigaltstack(stack, std::ptr::null_mut()) })
}

/// The least size of a signal stack on this machine: the kernel's `AT_MINSIGSTKSZ` (the
/// signal frame grows with the CPU's register state, e.g. AVX-512 or AMX), at least
/// `SIGSTKSZ`.
pub fn min_signal_stack_size() -> usize {
    // SAFETY: getauxval has no preconditions; it returns 0 for an unknown entry.
    let dynamic = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
    dynamic.max(libc::SIGSTKSZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_protect_discard_unmap() {
        let page = page_size();
        assert!(page.is_power_of_two());
        let ptr = reserve(2 * page).unwrap();
        assert_eq!(ptr as usize % page, 0);
        // SAFETY: our fresh reservation, no references into it.
        unsafe { protect(ptr, page, Prot::ReadWrite) }.unwrap();
        // SAFETY: the first page is now read-write; we own the whole mapping.
        unsafe {
            ptr.write(5);
            assert_eq!(ptr.read(), 5);
            discard(ptr, page).unwrap();
            assert_eq!(ptr.read(), 0, "discarded pages read as zero");
            unmap(ptr, 2 * page).unwrap();
        }
        assert_eq!(reserve(0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn signal_queries() {
        assert!(query_sigaction(libc::SIGSEGV).is_ok());
        assert!(query_sigaction(-1).is_err());
        assert!(current_sigaltstack().is_ok());
        assert!(min_signal_stack_size() >= libc::SIGSTKSZ);
    }
}
