//! Catching traps and unwinding out of compiled code (x86-64 Linux).
//!
//! Compiled code raises traps as signals: `ud2` (SIGILL) for explicit traps and for the
//! stack-limit check in prologues, faults in a memory's guard region (SIGSEGV/SIGBUS). Host
//! functions unwind with [`raise_host`]. Both end in the same place:
//!
//! - [`catch_traps`] enters compiled code through `sandboxrun_enter` (assembly below), which
//!   saves the callee-saved registers, records its stack pointer in the thread's innermost
//!   [`Activation`], and calls the trampoline.
//! - On a trap the signal handler checks that the faulting pc is a trap site of code the
//!   activation knows ([`TrapLookup`]), records the trap, and rewrites the interrupted context
//!   so that the kernel "returns" into `sandboxrun_unwind(saved_sp)`, which resets the stack
//!   pointer to the saved one and returns 1 from `sandboxrun_enter`, restoring the
//!   callee-saved registers. Faults anywhere else go to the previously installed handler, so a
//!   host bug still crashes loudly.
//!
//! Soundness: the frames skipped are compiled wasm frames (which own nothing) and, for
//! [`raise_host`], the host-call glue frame, which has moved everything it owned into the
//! payload before raising. No Rust destructor is skipped. This is the same contract as
//! `longjmp` out of a signal handler, without restoring a signal mask (the handler returns
//! normally through `sigreturn`).

use crate::trap::TrapKind;
use std::any::Any;
use std::cell::Cell;
use std::sync::Once;

/// What the signal handler needs to recognise trap sites. Implementations must be
/// async-signal-safe: they only read data that does not change while wasm runs.
pub trait TrapLookup {
    /// The trap of the instruction at `pc`, if `pc` is a trap site of compiled code.
    fn lookup(&self, pc: usize) -> Option<TrapKind>;
}

/// Why compiled code did not return normally.
pub enum Unwind {
    /// A trap at `pc` (and, for memory faults, the faulting address).
    Trap {
        /// What happened.
        kind: TrapKind,
        /// The trapping instruction.
        pc: usize,
        /// The address accessed, for memory faults.
        fault_addr: Option<usize>,
    },
    /// A host function raised this payload.
    Host(Box<dyn Any + Send>),
}

/// One entry into compiled code on this thread.
struct Activation {
    saved_sp: usize,
    lookup: *const (dyn TrapLookup + 'static),
    trap: Option<(TrapKind, usize, Option<usize>)>,
    host: Option<Box<dyn Any + Send>>,
    prev: *mut Activation,
}

thread_local! {
    /// The innermost activation of this thread (const-initialised, no destructor: safe to
    /// read from a signal handler).
    static CURRENT: Cell<*mut Activation> = const { Cell::new(std::ptr::null_mut()) };
    /// Whether this thread has an alternate signal stack we know of.
    static ALT_STACK: Cell<bool> = const { Cell::new(false) };
}

std::arch::global_asm!(
    ".text",
    ".globl sandboxrun_enter",
    ".type sandboxrun_enter,@function",
    ".p2align 4",
    // sandboxrun_enter(saved_sp: *mut usize, f, a0, a1, a2, a3) -> u32
    "sandboxrun_enter:",
    // Save the frame pointer and every callee-saved register: after an unwind they are
    // restored from here, whatever the skipped frames did to them.
    "push rbp",
    "mov rbp, rsp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    // Entry rsp was 8 mod 16; six pushes make it 8 mod 16 again: realign for the call.
    "sub rsp, 8",
    // Publish this stack pointer: unwinding resets rsp to it.
    "mov [rdi], rsp",
    // Call f(a0, a1, a2, a3).
    "mov rax, rsi",
    "mov rdi, rdx",
    "mov rsi, rcx",
    "mov rdx, r8",
    "mov rcx, r9",
    "call rax",
    "xor eax, eax",
    ".Lsandboxrun_restore:",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".size sandboxrun_enter, .-sandboxrun_enter",
    // sandboxrun_unwind(sp) -> !: resume `sandboxrun_enter`'s epilogue with result 1.
    ".globl sandboxrun_unwind",
    ".type sandboxrun_unwind,@function",
    ".p2align 4",
    "sandboxrun_unwind:",
    "mov rsp, rdi",
    "mov eax, 1",
    "jmp .Lsandboxrun_restore",
    ".size sandboxrun_unwind, .-sandboxrun_unwind",
);

unsafe extern "C" {
    fn sandboxrun_enter(saved_sp: *mut usize, f: usize, a0: usize, a1: usize, a2: usize, a3: usize) -> u32;
    fn sandboxrun_unwind(sp: usize) -> !;
}

/// Calls `f(args[0], args[1], args[2], args[3])` (an `extern "C"` function pointer into
/// compiled code), catching traps of code `lookup` knows and host unwinds.
///
/// # Safety
/// `f` must be a function with that signature; the code it runs may only trap at sites
/// `lookup` reports, and host functions it calls may only unwind through [`raise_host`].
pub unsafe fn catch_traps(lookup: &dyn TrapLookup, f: usize, args: [usize; 4]) -> Result<(), Unwind> {
    init_traps();
    ensure_alt_stack();
    // SAFETY: the activation is popped before this function returns, so the erased lifetime
    // never outlives `lookup`.
    let lookup: *const (dyn TrapLookup + 'static) = unsafe { std::mem::transmute(lookup as *const dyn TrapLookup) };
    let mut activation = Activation { saved_sp: 0, lookup, trap: None, host: None, prev: CURRENT.get() };
    // All further accesses go through this pointer: the signal handler writes through it too.
    let act: *mut Activation = &mut activation;
    CURRENT.set(act);
    // SAFETY: `sandboxrun_enter` follows the C ABI and returns exactly once (normally, or
    // through `sandboxrun_unwind` with every callee-saved register restored).
    let result = unsafe { sandboxrun_enter(&raw mut (*act).saved_sp, f, args[0], args[1], args[2], args[3]) };
    // SAFETY: `act` points to our local, which is live.
    let act = unsafe { &mut *act };
    CURRENT.set(act.prev);
    if result == 0 {
        return Ok(());
    }
    if let Some(payload) = act.host.take() {
        return Err(Unwind::Host(payload));
    }
    let (kind, pc, fault_addr) = act.trap.take().expect("an unwind records its reason");
    Err(Unwind::Trap { kind, pc, fault_addr })
}

/// Unwinds to the innermost [`catch_traps`] of this thread, which returns
/// `Err(Unwind::Host(payload))`. Called by host-function glue; the caller must own nothing
/// that needs dropping (everything skipped is leaked).
pub fn raise_host(payload: Box<dyn Any + Send>) -> ! {
    let act = CURRENT.get();
    assert!(!act.is_null(), "raise_host outside of compiled code");
    // SAFETY: a non-null CURRENT is a live activation further up this thread's stack.
    unsafe {
        (*act).host = Some(payload);
        sandboxrun_unwind((*act).saved_sp)
    }
}

const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// The handlers that were installed before ours, by position in `SIGNALS`.
static mut PREVIOUS: [std::mem::MaybeUninit<libc::sigaction>; 4] = [std::mem::MaybeUninit::uninit(); 4];

/// Installs the trap signal handlers (once per process).
pub fn init_traps() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        for (i, sig) in SIGNALS.iter().enumerate() {
            // SAFETY: all-zero is a valid sigaction; we fill the fields we use.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: writing PREVIOUS happens once, inside `call_once`, before any handler
            // can read it; sigaction gets valid pointers.
            unsafe {
                libc::sigemptyset(&mut action.sa_mask);
                let previous = (&raw mut PREVIOUS[i]).cast::<libc::sigaction>();
                if libc::sigaction(*sig, &action, previous) != 0 {
                    panic!("sigaction failed: {}", std::io::Error::last_os_error());
                }
            }
        }
    });
}

unsafe extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let act = CURRENT.get();
    if !act.is_null() {
        // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
        let uc = unsafe { &mut *(context as *mut libc::ucontext_t) };
        let pc = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
        // SAFETY: a non-null CURRENT is a live activation whose lookup outlives it.
        let kind = unsafe { (*(*act).lookup).lookup(pc) };
        if let Some(kind) = kind {
            let fault_addr = if sig == libc::SIGSEGV || sig == libc::SIGBUS {
                // SAFETY: si_addr is valid for these signals.
                Some(unsafe { (*info).si_addr() } as usize)
            } else {
                None
            };
            // SAFETY: as above; the thread is stopped in compiled code of this activation.
            unsafe {
                (*act).trap = Some((kind, pc, fault_addr));
                uc.uc_mcontext.gregs[libc::REG_RDI as usize] = (*act).saved_sp as i64;
            }
            uc.uc_mcontext.gregs[libc::REG_RIP as usize] = sandboxrun_unwind as *const () as i64;
            return;
        }
    }
    // Not a trap of ours: behave as if we were not here.
    let i = SIGNALS.iter().position(|s| *s == sig).expect("registered signal");
    // SAFETY: PREVIOUS was written (once) before our handler was installed and is only read
    // afterwards; we take a raw pointer, never a reference to the mutable static.
    #[allow(clippy::deref_addrof)]
    let previous = unsafe { (*(&raw const PREVIOUS[i])).assume_init_ref() };
    let target = previous.sa_sigaction;
    if target == libc::SIG_DFL || target == libc::SIG_IGN {
        // Restore the default and return: the fault happens again and takes the default
        // action (terminating the process with this signal).
        // SAFETY: installing a valid sigaction.
        unsafe { libc::sigaction(sig, previous, std::ptr::null_mut()) };
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed for this signal with this signature.
        let f: unsafe extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(target) };
        // SAFETY: forwarding exactly what we received.
        unsafe { f(sig, info, context) };
    } else {
        // SAFETY: as above, for a plain handler.
        let f: unsafe extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(target) };
        // SAFETY: forwarding the signal number.
        unsafe { f(sig) };
    }
}

/// Gives this thread an alternate signal stack if it has none, so the handler can run even
/// when the fault was a stack overflow. The stack is kept for the thread's life.
fn ensure_alt_stack() {
    if ALT_STACK.get() {
        return;
    }
    // SAFETY: querying the current alternate stack with a valid out-pointer.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::sigaltstack(std::ptr::null(), &mut current) };
    if current.ss_flags & libc::SS_DISABLE != 0 {
        const SIZE: usize = 64 << 10;
        if let Ok(ptr) = super::sys::reserve(SIZE) {
            let page = super::sys::page_size();
            // The lowest page stays inaccessible as a guard.
            // SAFETY: our fresh reservation, no references into it.
            if unsafe { super::sys::protect(ptr.wrapping_add(page), SIZE - page, super::sys::Prot::ReadWrite) }.is_ok()
            {
                let stack = libc::stack_t {
                    ss_sp: ptr.wrapping_add(page) as *mut libc::c_void,
                    ss_flags: 0,
                    ss_size: SIZE - page,
                };
                // SAFETY: a valid, never-freed stack for this thread.
                unsafe { libc::sigaltstack(&stack, std::ptr::null_mut()) };
            }
        }
    }
    ALT_STACK.set(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::code_memory::CodeMemory;

    /// Machine code for tests, with its trap sites.
    struct Code {
        mem: CodeMemory,
        traps: Vec<(usize, TrapKind)>,
    }

    impl TrapLookup for Code {
        fn lookup(&self, pc: usize) -> Option<TrapKind> {
            let offset = pc.checked_sub(self.mem.base() as usize)?;
            self.traps.iter().find(|(o, _)| *o == offset).map(|(_, k)| *k)
        }
    }

    fn code(bytes: &[u8], traps: Vec<(usize, TrapKind)>) -> Code {
        Code { mem: CodeMemory::new(bytes, |_, _| Ok::<(), ()>(())).unwrap(), traps }
    }

    fn run(c: &Code, args: [usize; 4]) -> Result<(), Unwind> {
        // SAFETY: the test code follows the C ABI and traps only at listed sites.
        unsafe { catch_traps(c, c.mem.base() as usize, args) }
    }

    #[test]
    fn ud2_is_a_trap_and_the_thread_stays_usable() {
        let ud2 = code(&[0x0f, 0x0b], vec![(0, TrapKind::Unreachable)]);
        // mov qword [rdi], rsi ; ret
        let store = code(&[0x48, 0x89, 0x37, 0xc3], vec![]);
        for _ in 0..100 {
            match run(&ud2, [0; 4]) {
                Err(Unwind::Trap { kind, pc, fault_addr }) => {
                    assert_eq!(kind, TrapKind::Unreachable);
                    assert_eq!(pc, ud2.mem.base() as usize);
                    assert_eq!(fault_addr, None);
                }
                _ => panic!("expected a trap"),
            }
            let mut out = 0usize;
            assert!(run(&store, [&mut out as *mut usize as usize, 99, 0, 0]).is_ok());
            assert_eq!(out, 99);
        }
    }

    #[test]
    fn guard_fault_is_an_out_of_bounds_trap() {
        let guard = super::super::sys::reserve(1 << 16).unwrap();
        // mov eax, dword [rdi] ; ret
        let load = code(&[0x8b, 0x07, 0xc3], vec![(0, TrapKind::MemoryOutOfBounds)]);
        match run(&load, [guard as usize + 8, 0, 0, 0]) {
            Err(Unwind::Trap { kind: TrapKind::MemoryOutOfBounds, fault_addr, .. }) => {
                assert_eq!(fault_addr, Some(guard as usize + 8))
            }
            _ => panic!("expected an out-of-bounds trap"),
        }
    }

    extern "C" fn raise_seven() {
        raise_host(Box::new(7u32));
    }

    extern "C" fn nested(inner: usize) {
        // SAFETY: `inner` is a `&Code` passed by the test.
        let inner = unsafe { &*(inner as *const Code) };
        assert!(matches!(run(inner, [0; 4]), Err(Unwind::Trap { kind: TrapKind::Unreachable, .. })));
    }

    #[test]
    fn host_unwind_and_nesting() {
        // sub rsp, 8 ; call rsi ; add rsp, 8 ; ret  — calls the function in the 2nd argument.
        let call = code(&[0x48, 0x83, 0xec, 0x08, 0xff, 0xd6, 0x48, 0x83, 0xc4, 0x08, 0xc3], vec![]);
        match run(&call, [0, raise_seven as *const () as usize, 0, 0]) {
            Err(Unwind::Host(p)) => assert_eq!(p.downcast_ref::<u32>(), Some(&7)),
            _ => panic!("expected a host unwind"),
        }
        // A host function that runs trapping code itself, then returns normally.
        let ud2 = code(&[0x0f, 0x0b], vec![(0, TrapKind::Unreachable)]);
        // mov rdi, rdx ; sub rsp, 8 ; call rsi ; add rsp, 8 ; ret
        let call_with =
            code(&[0x48, 0x89, 0xd7, 0x48, 0x83, 0xec, 0x08, 0xff, 0xd6, 0x48, 0x83, 0xc4, 0x08, 0xc3], vec![]);
        assert!(run(&call_with, [0, nested as *const () as usize, &ud2 as *const Code as usize, 0]).is_ok());
    }

    #[test]
    fn traps_on_several_threads_at_once() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let ud2 = code(&[0x0f, 0x0b], vec![(0, TrapKind::Unreachable)]);
                    (0..200).all(|_| matches!(run(&ud2, [0; 4]), Err(Unwind::Trap { .. })))
                })
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
    }
}
