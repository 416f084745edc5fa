//! Unwinding to an exception handler (x86-64): walking wasm frames by frame pointer, and
//! resuming in a handler's frame.
//!
//! Every wasm function that calls has a frame pointer on x86-64 (Cranelift's prologue pushes
//! `rbp` and sets it whenever a function calls or uses the stack), so from the frame pointer of
//! the frame that threw, `[fp]` is its caller's frame pointer and `[fp + 8]` the return
//! address into the caller. A return address in a wasm function names a call site: it has a
//! handler when the call was made inside a `try_table` (a Cranelift `try_call`). The walk
//! stops at the first return address outside wasm functions: the array-call trampoline of the
//! host's entry (calls from wasm into the host go through host functions, which enter wasm
//! again through `catch_traps`, so frames above them never reach here).
//!
//! Resuming follows Cranelift's contract for `try_call`s of the `tail` convention: every
//! register but the stack and frame pointers is clobbered at a handler, the stack pointer is
//! the one at the call site (the callee's frame pointer + 16: its return address and saved
//! frame pointer popped, the stack arguments it popped re-reserved), and the exception
//! payload is in `rax`. The pinned register (`r15`, the instruction count of counting code)
//! is set to the count at the throw.

/// What the unwinder needs to know of compiled code.
pub trait Frames {
    /// For a return address: `None` when it is not in a wasm function; otherwise the address
    /// of that call's exception handler, if it has one.
    fn call_site(&self, return_address: usize) -> Option<Option<usize>>;
}

/// Where to resume: a handler and its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The handler's address.
    pub pc: usize,
    /// The stack pointer at its call site.
    pub sp: usize,
    /// The frame pointer of its function.
    pub fp: usize,
}

/// The innermost handler for an exception thrown by the wasm frame with frame pointer `fp`
/// (which has no handler of its own for it: the translator branches to those directly), or
/// `None` when the walk reaches the host's entry first.
///
/// # Safety
/// `fp` must be the frame pointer of a live wasm frame, and every frame between it and the
/// host's entry a wasm frame with a frame pointer whose code `frames` knows.
pub unsafe fn find_handler(frames: &dyn Frames, mut fp: usize) -> Option<Resume> {
    loop {
        // SAFETY: `fp` is a live frame's frame pointer (the caller's contract, then each
        // caller's in turn): the saved frame pointer and the return address are above it.
        let (caller_fp, return_address) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        match frames.call_site(return_address)? {
            Some(pc) => return Some(Resume { pc, sp: fp + 16, fp: caller_fp }),
            None => fp = caller_fp,
        }
    }
}

/// Jumps to `target` with `payload` in `rax` and `pinned` in `r15`, abandoning every frame
/// above the handler's.
///
/// # Safety
/// `target` must come from [`find_handler`] on this thread's current stack, and the frames
/// abandoned (compiled code, and the caller's own) must own nothing that needs dropping.
pub unsafe fn resume(target: Resume, payload: u64, pinned: u64) -> ! {
    // SAFETY: the caller's contract: the handler expects exactly this state (see the module's
    // documentation).
    unsafe {
        std::arch::asm!(
            "mov rsp, {sp}",
            "mov rbp, {fp}",
            "jmp {pc}",
            sp = in(reg) target.sp,
            fp = in(reg) target.fp,
            pc = in(reg) target.pc,
            in("rax") payload,
            in("r15") pinned,
            options(noreturn),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames laid out by hand: three frame records, the middle call site with a handler.
    struct Fake {
        handler_at: usize,
        wasm: std::ops::Range<usize>,
    }

    impl Frames for Fake {
        fn call_site(&self, return_address: usize) -> Option<Option<usize>> {
            self.wasm.contains(&return_address).then(|| (return_address == self.handler_at).then_some(0x5000))
        }
    }

    #[test]
    fn the_walk_finds_the_first_handler_and_stops_at_the_entry() {
        // Each record: [saved fp, return address].
        let mut stack = [0usize; 6];
        let base = stack.as_ptr() as usize;
        // Written through a copy so the compiler sees the records as read (by address).
        stack.copy_from_slice(&[
            base + 16, // frame 0 → frame 1
            0x1100,    // a wasm call site without handler
            base + 32, // frame 1 → frame 2
            0x1200,    // a wasm call site with a handler
            0,
            0x9000, // outside wasm: the entry
        ]);
        let frames = Fake { handler_at: 0x1200, wasm: 0x1000..0x2000 };
        // SAFETY: the records above stand for the frames.
        let found = unsafe { find_handler(&frames, base) };
        assert_eq!(found, Some(Resume { pc: 0x5000, sp: base + 16 + 16, fp: base + 32 }));
        let frames = Fake { handler_at: 0, wasm: 0x1000..0x2000 };
        // SAFETY: as above.
        assert_eq!(unsafe { find_handler(&frames, base) }, None);
    }
}
