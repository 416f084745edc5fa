//! Thin wrappers over the raw memory-mapping syscalls the runtime uses. Each turns the
//! C convention (-1 and errno) into `io::Error`; nothing else in the vm calls libc for memory.

use std::io;

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

/// Reserves `len` bytes of address space, inaccessible and not backed by memory.
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
    Ok(ptr as *mut u8)
}

/// Changes the protection of `len` bytes at `ptr`.
///
/// # Safety
/// `ptr..ptr+len` must lie in a mapping the caller owns, and no live Rust reference may
/// point into a range made less accessible.
pub unsafe fn protect(ptr: *mut u8, len: usize, prot: Prot) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: guaranteed by the caller.
    if unsafe { libc::mprotect(ptr as *mut libc::c_void, len, prot.bits()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Unmaps `len` bytes at `ptr`.
///
/// # Safety
/// The range must be a mapping the caller owns and nothing may use it afterwards.
pub unsafe fn unmap(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    if unsafe { libc::munmap(ptr as *mut libc::c_void, len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the pages of `len` bytes at `ptr` back to the kernel (they read as zero again).
///
/// # Safety
/// The range must be a private anonymous mapping the caller owns, with no live references.
pub unsafe fn discard(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: guaranteed by the caller.
    if unsafe { libc::madvise(ptr as *mut libc::c_void, len, libc::MADV_DONTNEED) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
