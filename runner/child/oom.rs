//! What a failed allocation does. Rust's default prints a line and aborts with SIGABRT, which
//! the confined child — pid 1 of its namespace — would ignore, dying later by some other
//! signal. [`ExitOnOom`] ends the process at once instead: the child with
//! [`CHILD_OUT_OF_MEMORY`], which the parent reads as the memory limit (`RLIMIT_DATA` is what
//! makes allocations fail there), and the parent with an error line and status 125.

use crate::supervise::report::EXIT_ERROR;
use crate::supervise::verdict::CHILD_OUT_OF_MEMORY;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// Marks this process as a run's child (called first thing in the forked child).
pub fn mark_child() {
    IN_CHILD.store(true, Ordering::Relaxed);
}

/// The system allocator, ending the process when an allocation fails (install it with
/// `#[global_allocator]` in the binary).
pub struct ExitOnOom;

#[cold]
fn out_of_memory() -> ! {
    if IN_CHILD.load(Ordering::Relaxed) {
        // SAFETY: _exit has no preconditions; nothing may allocate from here on.
        unsafe { libc::_exit(CHILD_OUT_OF_MEMORY) }
    }
    const LINE: &[u8] = b"sandboxrun: error: out of memory\n";
    // SAFETY: a valid buffer; write and _exit are async-signal-safe and do not allocate.
    unsafe {
        libc::write(2, LINE.as_ptr().cast(), LINE.len());
        libc::_exit(EXIT_ERROR)
    }
}

// SAFETY: every method forwards to `System`, which upholds GlobalAlloc's contract; a null
// result never returns to the caller.
unsafe impl GlobalAlloc for ExitOnOom {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            out_of_memory()
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory()
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory()
        }
        p
    }
}
