//! Catching traps and unwinding out of compiled code (x86-64 Linux).
//!
//! Compiled code raises traps as signals: `ud2` (SIGILL) for explicit traps and for the
//! stack-limit check in prologues, `div` by zero or overflow (SIGFPE), and loads or stores in a
//! memory's guard region (SIGSEGV, or SIGBUS). Host functions unwind with [`raise_host`]. Both
//! end in the same place:
//!
//! - [`catch_traps`] pushes an `Activation` on this thread's activation stack and enters
//!   compiled code through `sandboxrun_enter` (assembly below), which saves the callee-saved
//!   registers, records its stack pointer in the activation, and calls the trampoline.
//! - On a trap the signal handler checks that the faulting pc is a trap site the innermost
//!   activation's [`TrapLookup`] knows, records the trap in the activation, and rewrites the
//!   interrupted context so that the kernel "returns" into `sandboxrun_unwind(saved_sp)`,
//!   which resets the stack pointer to the saved one and returns 1 from `sandboxrun_enter`,
//!   restoring the callee-saved registers. [`raise_host`] calls `sandboxrun_unwind` directly.
//! - Faults anywhere else go to the handler installed before ours (or take the default
//!   action), so a host bug still crashes loudly.
//!
//! Soundness: the frames skipped are compiled wasm frames (which own nothing) and, for
//! [`raise_host`], the host-call glue frame, which has moved everything it owned into the
//! payload before raising. No Rust destructor is skipped. This is the contract of `longjmp`;
//! unlike `longjmp` out of a signal handler, the handler returns normally (through
//! `sigreturn`), so the kernel restores the signal mask itself.
//!
//! Async-signal safety: the handler reads only the const-initialised, destructor-free
//! thread-local `CURRENT`, the activation it points to, the lookup (which only reads
//! immutable tables) and the saved previous handlers, and makes only plain syscalls.

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
compile_error!("vm::traps supports x86-64 Linux only");

use super::sys;
use crate::trap::TrapKind;
use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Once;

/// What the signal handler needs to recognise trap sites.
///
/// Implementations run inside a signal handler, so they must be async-signal-safe: only read
/// data that does not change while compiled code runs (e.g. binary search in sorted tables);
/// no allocation, locks or panics.
pub trait TrapLookup {
    /// Trap kind for a faulting `pc` inside our compiled code, `None` if `pc` is not ours (or
    /// not a trap site).
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
        /// The address accessed, for SIGSEGV and SIGBUS.
        fault_addr: Option<usize>,
    },
    /// A host function raised this payload with [`raise_host`].
    Host(Box<dyn Any + Send>),
}

impl fmt::Debug for Unwind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unwind::Trap { kind, pc, fault_addr } => f
                .debug_struct("Trap")
                .field("kind", kind)
                .field("pc", &format_args!("{pc:#x}"))
                .field("fault_addr", &fault_addr.map(|a| format!("{a:#x}")))
                .finish(),
            Unwind::Host(_) => f.write_str("Host(..)"),
        }
    }
}

/// One entry into compiled code on this thread: a node of the activation stack, living in
/// [`catch_traps`]' frame. `sandboxrun_enter` reaches `pinned` at 8 bytes past `saved_sp`.
#[repr(C)]
struct Activation {
    /// The stack pointer `sandboxrun_unwind` returns to (written by `sandboxrun_enter`).
    saved_sp: usize,
    /// The pinned register (r15, the instruction count of counting code): loaded by
    /// `sandboxrun_enter` before the call, stored back by it on return and by the signal
    /// handler on a trap.
    pinned: u64,
    /// Trap sites of the code this activation runs; outlives the activation.
    lookup: *const (dyn TrapLookup + 'static),
    /// Why the activation was unwound (written by the signal handler or [`raise_host`]).
    outcome: Option<Unwind>,
    /// The next outer activation, or null.
    prev: *mut Activation,
}

thread_local! {
    /// The innermost activation of this thread, null outside compiled code. Const-initialised
    /// and without destructor, so reading it is a plain TLS load: safe in a signal handler.
    static CURRENT: Cell<*mut Activation> = const { Cell::new(std::ptr::null_mut()) };
    /// The alternate signal stack this thread got from us, freed at thread exit. Never used
    /// by the signal handler.
    static ALT_STACK: AltStack = const { AltStack::new() };
}

// `sandboxrun_enter(saved_sp: *mut usize, f, a0, a1, a2, a3) -> u32` and
// `sandboxrun_unwind(sp: usize) -> !`, System V x86-64 ABI.
std::arch::global_asm!(
    ".pushsection .text",
    ".globl sandboxrun_enter",
    ".hidden sandboxrun_enter",
    ".type sandboxrun_enter,@function",
    ".p2align 4",
    "sandboxrun_enter:",
    // Save the frame pointer (keeping a frame-pointer chain for profilers) and every
    // callee-saved register: after an unwind they are restored from here, whatever the
    // skipped frames did to them (wasm code uses the tail calling convention, which saves
    // none).
    "push rbp",
    "mov rbp, rsp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    // rsp was 8 mod 16 at entry (the return address); six pushes leave it 8 mod 16: realign
    // for the call.
    "sub rsp, 8",
    // Publish this stack pointer in the activation (`*saved_sp`): unwinding resets rsp to it.
    "mov [rdi], rsp",
    // The pinned register from the activation (`saved_sp[1]`); the activation's address is
    // kept in the alignment slot to store it back after a normal return.
    "mov r15, [rdi + 8]",
    "mov [rsp], rdi",
    // Call f(a0, a1, a2, a3): shift the arguments down by two registers.
    "mov rax, rsi",
    "mov rdi, rdx",
    "mov rsi, rcx",
    "mov rdx, r8",
    "mov rcx, r9",
    "call rax",
    // Normal return: the pinned register back into the activation, result 0.
    "mov rdi, [rsp]",
    "mov [rdi + 8], r15",
    "xor eax, eax",
    // Epilogue, shared with `sandboxrun_unwind` (which arrives with rsp = saved sp, eax = 1):
    // drop the alignment slot, restore the callee-saved registers and return to the caller
    // of `sandboxrun_enter`.
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
    "",
    ".globl sandboxrun_unwind",
    ".hidden sandboxrun_unwind",
    ".type sandboxrun_unwind,@function",
    ".p2align 4",
    "sandboxrun_unwind:",
    // Abandon every frame above `sandboxrun_enter`'s: rsp = sp (the first argument). Nothing
    // is pushed before this, so it works even on an overflowed stack.
    "mov rsp, rdi",
    // Result 1, then the shared epilogue.
    "mov eax, 1",
    "jmp .Lsandboxrun_restore",
    ".size sandboxrun_unwind, .-sandboxrun_unwind",
    ".popsection",
);

unsafe extern "C" {
    fn sandboxrun_enter(saved_sp: *mut usize, f: usize, a0: usize, a1: usize, a2: usize, a3: usize) -> u32;
    fn sandboxrun_unwind(sp: usize) -> !;
}

/// The stack pointer of this thread's outermost entry into compiled code: every frame of
/// compiled code (and of host functions it called) running on this thread lies below it.
/// `None` outside compiled code.
pub(crate) fn outermost_entry_sp() -> Option<usize> {
    let mut activation = CURRENT.with(|c| c.get());
    if activation.is_null() {
        return None;
    }
    loop {
        // SAFETY: activations live in the frames of `catch_traps` calls still running on this
        // thread (each unlinks itself before returning), so every one in the chain is valid.
        let (prev, sp) = unsafe { ((*activation).prev, (*activation).saved_sp) };
        if prev.is_null() {
            return Some(sp);
        }
        activation = prev;
    }
}

/// Calls `f(args[0], args[1], args[2], args[3])` (an `extern "C"` function pointer into
/// compiled code, normally a trampoline), catching traps at sites `lookup` knows and unwinds
/// by [`raise_host`]. Installs the signal handlers ([`init_traps`]) and, on a thread's first
/// use, an alternate signal stack. Calls nest: the innermost one catches.
///
/// # Errors
/// [`Unwind::Trap`] when the code trapped, [`Unwind::Host`] when a host function it called
/// raised.
///
/// # Safety
/// - `f` must be a function with that signature (four pointer-sized integer arguments; a
///   return value is ignored).
/// - Every frame between this call and a trap must be compiled code that owns nothing, and
///   `lookup` must know every trap site of code that can run under this call (calls into
///   compiled code made by host functions have their own `catch_traps`). Faults elsewhere are
///   not caught.
/// - Host functions called by that code may only leave it by returning or through
///   [`raise_host`]; a panic crossing it aborts the process.
pub unsafe fn catch_traps(lookup: &dyn TrapLookup, f: usize, args: [usize; 4]) -> Result<(), Unwind> {
    let mut pinned = 0;
    // SAFETY: the caller's obligations, passed on.
    unsafe { catch_traps_pinned(lookup, f, args, &mut pinned) }
}

/// [`catch_traps`], with the pinned register (r15: the instruction count of code compiled to
/// count, `translate::budget`) set to `*pinned` for the call. `*pinned` becomes the register's
/// value when the code returns or traps (read from the trap's signal context); when a host
/// function raised, it is left as it was (the host trampoline handed the count to the store
/// before calling the host).
///
/// # Errors
/// As [`catch_traps`].
///
/// # Safety
/// As [`catch_traps`].
pub unsafe fn catch_traps_pinned(
    lookup: &dyn TrapLookup,
    f: usize,
    args: [usize; 4],
    pinned: &mut u64,
) -> Result<(), Unwind> {
    init_traps();
    // Fails only during this thread's teardown; the handler then runs on the thread's stack.
    let _ = ALT_STACK.try_with(AltStack::ensure);
    let lookup: *const (dyn TrapLookup + '_) = lookup;
    // SAFETY: only the lifetime is erased; the activation is popped before this function
    // returns, so the pointer is never used after `lookup`'s borrow ends.
    let lookup: *const (dyn TrapLookup + 'static) = unsafe { std::mem::transmute(lookup) };
    let mut activation = Activation { saved_sp: 0, pinned: *pinned, lookup, outcome: None, prev: CURRENT.get() };
    // From here on every access goes through this pointer: the signal handler and
    // `raise_host` write through it too.
    let act: *mut Activation = &raw mut activation;
    CURRENT.set(act);
    // SAFETY: `sandboxrun_enter` follows the C ABI and returns exactly once (normally, or
    // through `sandboxrun_unwind` with every callee-saved register restored); `f` and the
    // frames it skips are the caller's obligation (see above).
    let entered = unsafe { sandboxrun_enter(&raw mut (*act).saved_sp, f, args[0], args[1], args[2], args[3]) };
    // SAFETY: `act` points to our local, which is live; nothing else uses it any more.
    let act = unsafe { &mut *act };
    CURRENT.set(act.prev);
    if entered == 0 {
        debug_assert!(act.outcome.is_none());
        *pinned = act.pinned;
        return Ok(());
    }
    let outcome = act.outcome.take().expect("an unwind records its reason");
    if matches!(outcome, Unwind::Trap { .. }) {
        *pinned = act.pinned;
    }
    Err(outcome)
}

/// Unwinds to the innermost [`catch_traps`] of this thread, which returns
/// `Err(Unwind::Host(payload))`. Called by host-function glue (Rust code called from compiled
/// code) to report an error or a caught panic.
///
/// # Panics
/// If no `catch_traps` is running on this thread (a bug of the caller).
///
/// # Safety
/// Every frame between the innermost `catch_traps` and this call is discarded without being
/// dropped, like `longjmp`: those frames must be compiled code and glue that own nothing that
/// needs dropping at this point (the caller moves what it owns into `payload`), and must not
/// hold anything whose correctness depends on running to completion (a lock guard, a
/// `std::thread::scope`, a pinned value on the stack).
pub unsafe fn raise_host(payload: Box<dyn Any + Send>) -> ! {
    let act = CURRENT.get();
    assert!(!act.is_null(), "raise_host called outside of compiled code");
    // SAFETY: a non-null CURRENT is a live activation further down this thread's stack,
    // whose `sandboxrun_enter` has stored `saved_sp` before calling into compiled code; the
    // frames skipped are the caller's obligation.
    unsafe {
        (*act).outcome = Some(Unwind::Host(payload));
        sandboxrun_unwind((*act).saved_sp)
    }
}

// ----- signal handlers ----------------------------------------------------------------------

/// The signals compiled code traps with.
const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// The actions that were installed before ours, by position in [`SIGNALS`].
struct PreviousActions(UnsafeCell<[MaybeUninit<libc::sigaction>; 4]>);

// SAFETY: each entry is written once, inside `init_traps`' `call_once`, before our handler for
// that signal is installed; afterwards it is only read.
unsafe impl Sync for PreviousActions {}

static PREVIOUS: PreviousActions = PreviousActions(UnsafeCell::new([MaybeUninit::uninit(); 4]));

/// Installs the trap signal handlers for SIGSEGV, SIGBUS, SIGILL and SIGFPE, once per
/// process (later calls do nothing), saving the actions they replace. [`catch_traps`] calls
/// it; embedders may call it early.
///
/// The flags are `SA_SIGINFO | SA_ONSTACK`, without `SA_NODEFER`: the handler always returns
/// (through `sigreturn`, which restores the interrupted signal mask), so there is nothing to
/// undo, and keeping the signal blocked while the handler runs makes a fault inside the
/// handler itself kill the process at once instead of recursing.
///
/// # Panics
/// If `sigaction` fails (it cannot for these signals).
pub fn init_traps() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        for (i, sig) in SIGNALS.iter().enumerate() {
            // Save the old action *before* installing ours: our handler may run on another
            // thread as soon as it is installed.
            let previous = sys::query_sigaction(*sig).expect("sigaction query of a trap signal");
            // SAFETY: the only write to this entry; no handler reads it before ours is
            // installed below.
            unsafe { (*PREVIOUS.0.get())[i].write(previous) };
            // SAFETY: all-zero is a valid sigaction; we fill the fields we use.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            action.sa_mask = sys::empty_sigset();
            // SAFETY: `handler` has the SA_SIGINFO signature and is sound anywhere: it only
            // acts on faults of compiled code and forwards everything else.
            if let Err(e) = unsafe { sys::set_sigaction(*sig, &action) } {
                panic!("failed to install the trap handler for signal {sig}: {e}");
            }
        }
    });
}

/// The action saved for `sig` by [`init_traps`].
fn previous_action(sig: libc::c_int) -> Option<&'static libc::sigaction> {
    let i = SIGNALS.iter().position(|s| *s == sig)?;
    // SAFETY: our handler (the only caller) is installed after the entry was written, and the
    // entry never changes afterwards.
    Some(unsafe { (*PREVIOUS.0.get())[i].assume_init_ref() })
}

/// The signal handler.
///
/// # Safety
/// Called by the kernel with a valid `siginfo_t` and `ucontext_t`.
unsafe extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes valid pointers to an SA_SIGINFO handler.
    let (info, uc) = unsafe { (&*info, &mut *context.cast::<libc::ucontext_t>()) };
    let act = CURRENT.get();
    // A signal sent by a process (si_code <= 0: kill, tkill, sigqueue) is never a trap, even
    // if it lands while compiled code runs.
    if !act.is_null() && info.si_code > 0 {
        let pc = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
        // SAFETY: a non-null CURRENT is a live activation of this thread (we interrupted code
        // running under it), and its lookup outlives it.
        let lookup = unsafe { &*(*act).lookup };
        if let Some(kind) = lookup.lookup(pc) {
            let fault_addr = if sig == libc::SIGSEGV || sig == libc::SIGBUS {
                // SAFETY: si_addr is valid for these signals.
                Some(unsafe { info.si_addr() } as usize)
            } else {
                None
            };
            // SAFETY: as above; the interrupted code is stopped, so nothing else accesses the
            // activation. Its outcome is `None` (it was not unwound yet), so `write` loses
            // nothing. The interrupted r15 is the instruction count at the trap (in counting
            // code; a meaningless value otherwise, which nobody reads).
            let saved_sp = unsafe {
                (&raw mut (*act).outcome).write(Some(Unwind::Trap { kind, pc, fault_addr }));
                (*act).pinned = uc.uc_mcontext.gregs[libc::REG_R15 as usize] as u64;
                (*act).saved_sp
            };
            // Resume in `sandboxrun_unwind(saved_sp)`, already on the saved stack, so no
            // instruction ever runs on the (possibly overflowed) faulting stack again.
            let gregs = &mut uc.uc_mcontext.gregs;
            gregs[libc::REG_RIP as usize] = sandboxrun_unwind as *const () as i64;
            gregs[libc::REG_RDI as usize] = saved_sp as i64;
            gregs[libc::REG_RSP as usize] = saved_sp as i64;
            return;
        }
    }
    // Not a trap of ours: behave as if we were not here.
    // SAFETY: forwarding exactly what we received.
    unsafe { forward(sig, info, context) }
}

/// Hands a signal that is not a trap of compiled code to the action installed before ours.
///
/// # Safety
/// Called from [`handler`] with what it received.
unsafe fn forward(sig: libc::c_int, info: &libc::siginfo_t, context: *mut libc::c_void) {
    let Some(previous) = previous_action(sig) else { return };
    let sent_by_process = info.si_code <= 0;
    match previous.sa_sigaction {
        libc::SIG_IGN if sent_by_process => {
            // Ignored, as it would have been without us.
        }
        libc::SIG_DFL | libc::SIG_IGN => {
            // Put the old disposition back and let it act. A fault recurs when the
            // instruction re-executes after we return, and the kernel then applies the
            // default action (terminate with a core dump; a fault that is ignored is forced
            // to the default). A signal sent by a process would not recur: raise it again (it
            // stays pending while we run and is delivered when we return).
            // SAFETY: restoring a disposition that was installed before.
            let _ = unsafe { sys::set_sigaction(sig, previous) };
            if sent_by_process {
                let _ = sys::raise(sig);
            }
        }
        target if previous.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous handler was installed for this signal with this signature.
            let f: unsafe extern "C" fn(libc::c_int, *const libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(target) };
            // SAFETY: forwarding exactly what we received.
            unsafe { f(sig, info, context) };
        }
        target => {
            // SAFETY: as above, for a plain handler.
            let f: unsafe extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(target) };
            // SAFETY: forwarding the signal number.
            unsafe { f(sig) };
        }
    }
}

// ----- alternate signal stacks --------------------------------------------------------------

/// Stack the handler (and a handler it forwards to) may use beyond the kernel's signal frame.
const HANDLER_HEADROOM: usize = 16 << 10;
/// Usable size of the alternate signal stacks we make (at least; see [`AltStack::ensure`]).
const ALT_STACK_SIZE: usize = 64 << 10;

/// The alternate signal stack of a thread, so the handler can run even when the fault is an
/// overflow of the thread's stack. Made lazily by [`catch_traps`]; freed at thread exit.
struct AltStack {
    /// Whether [`AltStack::ensure`] has run on this thread.
    checked: Cell<bool>,
    /// Our mapping (a guard page, then the stack) and its length, if we installed one.
    mapping: Cell<Option<(*mut u8, usize)>>,
}

impl AltStack {
    const fn new() -> Self {
        AltStack { checked: Cell::new(false), mapping: Cell::new(None) }
    }

    /// Gives this thread an alternate signal stack, once. An existing one is kept if it is
    /// large enough for the kernel's signal frame plus [`HANDLER_HEADROOM`]; a smaller one
    /// (such as the `SIGSTKSZ` stack Rust's runtime gives its threads, too small for the
    /// signal frame of CPUs with large register state) is replaced by ours:
    /// [`ALT_STACK_SIZE`] bytes, or more on such CPUs, above a guard page.
    fn ensure(&self) {
        if self.checked.replace(true) {
            return;
        }
        let Ok(current) = sys::current_sigaltstack() else { return };
        let needed = sys::min_signal_stack_size() + HANDLER_HEADROOM;
        let enabled = current.ss_flags & libc::SS_DISABLE == 0;
        if (enabled && current.ss_size >= needed) || current.ss_flags & libc::SS_ONSTACK != 0 {
            // Large enough, or in use right now (then it cannot be changed).
            return;
        }
        let page = sys::page_size();
        let size = ALT_STACK_SIZE.max(needed).next_multiple_of(page);
        let Ok(mapping) = sys::reserve(page + size) else { return };
        let stack = libc::stack_t { ss_sp: mapping.wrapping_add(page).cast(), ss_flags: 0, ss_size: size };
        // SAFETY: our fresh reservation, no references into it; the lowest page stays
        // inaccessible as a guard.
        let installed = unsafe { sys::protect(mapping.add(page), size, sys::Prot::ReadWrite) }
            // SAFETY: the stack stays mapped, unused by anything else, until `drop`
            // unregisters it.
            .and_then(|()| unsafe { sys::set_sigaltstack(&stack) });
        match installed {
            Ok(()) => self.mapping.set(Some((mapping, page + size))),
            Err(_) => {
                // SAFETY: never registered, so unused.
                let _ = unsafe { sys::unmap(mapping, page + size) };
            }
        }
    }
}

impl Drop for AltStack {
    /// At thread exit: unregisters our stack if it is still this thread's alternate stack,
    /// then unmaps it.
    fn drop(&mut self) {
        let Some((mapping, len)) = self.mapping.get() else { return };
        let ours = mapping.wrapping_add(sys::page_size()).cast::<libc::c_void>();
        let Ok(current) = sys::current_sigaltstack() else { return };
        if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_sp == ours {
            let disable = libc::stack_t { ss_sp: std::ptr::null_mut(), ss_flags: libc::SS_DISABLE, ss_size: 0 };
            // SAFETY: disabling registers no memory.
            if unsafe { sys::set_sigaltstack(&disable) }.is_err() {
                // Still registered (running on it?): leak rather than unmap.
                return;
            }
        }
        // SAFETY: our mapping, no longer registered, so nothing uses it.
        let _ = unsafe { sys::unmap(mapping, len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::code_memory::CodeMemory;
    use crate::vm::memory::{BoundsStrategy, LinearMemory, WASM_PAGE_SIZE};

    /// Hand-assembled machine code with its trap sites (offsets).
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

    impl Code {
        fn new(bytes: &[u8], traps: &[(usize, TrapKind)]) -> Code {
            Code { mem: CodeMemory::new(bytes, |_, _| Ok::<(), ()>(())).unwrap(), traps: traps.to_vec() }
        }

        fn at(&self, offset: usize) -> usize {
            self.mem.base() as usize + offset
        }

        fn run(&self, args: [usize; 4]) -> Result<(), Unwind> {
            // SAFETY: the test code follows the C ABI, owns nothing and traps only at listed
            // sites; callbacks it calls leave only by returning or `raise_host`.
            unsafe { catch_traps(self, self.at(0), args) }
        }
    }

    /// `ud2`
    fn ud2() -> Code {
        Code::new(&[0x0f, 0x0b], &[(0, TrapKind::Unreachable)])
    }

    /// `mov qword [rdi], rsi ; ret`: stores the second argument through the first.
    fn store() -> Code {
        Code::new(&[0x48, 0x89, 0x37, 0xc3], &[])
    }

    /// `mov eax, dword [rdi] ; ret`: a load that may hit a guard page.
    fn load() -> Code {
        Code::new(&[0x8b, 0x07, 0xc3], &[(0, TrapKind::MemoryOutOfBounds)])
    }

    /// `mov rdi, rdx ; sub rsp, 8 ; call rsi ; add rsp, 8 ; ret`: calls the host function in
    /// the second argument with the third.
    fn call_host() -> Code {
        Code::new(&[0x48, 0x89, 0xd7, 0x48, 0x83, 0xec, 0x08, 0xff, 0xd6, 0x48, 0x83, 0xc4, 0x08, 0xc3], &[])
    }

    fn no_activation() -> bool {
        CURRENT.get().is_null()
    }

    #[test]
    fn ud2_traps_as_unreachable_at_its_pc() {
        let code = ud2();
        let err = code.run([0; 4]).unwrap_err();
        assert!(
            matches!(err, Unwind::Trap { kind: TrapKind::Unreachable, pc, fault_addr: None } if pc == code.at(0)),
            "{err:?}"
        );
        assert!(no_activation());
    }

    #[test]
    fn divide_by_zero_traps_through_sigfpe() {
        // xor ecx, ecx ; div ecx ; ret
        let code = Code::new(&[0x31, 0xc9, 0xf7, 0xf1, 0xc3], &[(2, TrapKind::IntegerDivideByZero)]);
        let err = code.run([0; 4]).unwrap_err();
        assert!(
            matches!(err, Unwind::Trap { kind: TrapKind::IntegerDivideByZero, pc, .. } if pc == code.at(2)),
            "{err:?}"
        );
    }

    #[test]
    fn guard_page_load_is_out_of_bounds_with_fault_addr() {
        let load = load();
        let reserved = sys::reserve(1 << 16).unwrap();
        let addr = reserved as usize + 8;
        let err = load.run([addr, 0, 0, 0]).unwrap_err();
        assert!(
            matches!(err, Unwind::Trap { kind: TrapKind::MemoryOutOfBounds, pc, fault_addr: Some(a) }
                if pc == load.at(0) && a == addr),
            "{err:?}"
        );
        // SAFETY: our reservation, unused.
        unsafe { sys::unmap(reserved, 1 << 16) }.unwrap();

        // Just past the end of a guard-page memory faults; after growing, it reads zero.
        let mut memory = LinearMemory::new(1, None, 65536, BoundsStrategy::GuardPages).unwrap();
        let past_end = memory.base() as usize + WASM_PAGE_SIZE;
        let err = load.run([past_end, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, Unwind::Trap { fault_addr: Some(a), .. } if a == past_end), "{err:?}");
        assert_eq!(memory.grow(1), Some(1));
        load.run([past_end, 0, 0, 0]).unwrap();
    }

    #[test]
    fn normal_return_writes_through_pointer() {
        let mut out = 0usize;
        store().run([&raw mut out as usize, 99, 0, 0]).unwrap();
        assert_eq!(out, 99);
        assert!(no_activation());
    }

    extern "C" fn raise_seven(_: usize) {
        // SAFETY: called from compiled code under `catch_traps`; this frame owns nothing.
        unsafe { raise_host(Box::new(7u32)) }
    }

    #[test]
    fn host_raise_unwinds_with_payload() {
        let err = call_host().run([0, raise_seven as *const () as usize, 0, 0]).unwrap_err();
        match err {
            Unwind::Host(payload) => assert_eq!(payload.downcast_ref::<u32>(), Some(&7)),
            other => panic!("expected a host unwind, got {other:?}"),
        }
        assert!(no_activation());
    }

    #[test]
    #[should_panic(expected = "raise_host called outside of compiled code")]
    fn raise_host_without_activation_panics() {
        // SAFETY: there is no activation, so it panics before unwinding anything.
        unsafe { raise_host(Box::new(())) }
    }

    /// What `nested_host` saw, for the test to check after the outer call.
    #[derive(Default)]
    struct Nested {
        inner_trapped: bool,
        inner_raised: bool,
        restored: bool,
    }

    /// A host function that runs trapping and raising code itself, then returns normally.
    extern "C" fn nested_host(seen: usize) {
        // SAFETY: `seen` is a `&mut Nested` the test passes through the compiled code.
        let seen = unsafe { &mut *(seen as *mut Nested) };
        let outer = CURRENT.get();
        seen.inner_trapped = matches!(ud2().run([0; 4]), Err(Unwind::Trap { kind: TrapKind::Unreachable, .. }));
        let raised = call_host().run([0, raise_seven as *const () as usize, 0, 0]);
        seen.inner_raised = matches!(raised, Err(Unwind::Host(p)) if p.downcast_ref::<u32>() == Some(&7));
        seen.restored = CURRENT.get() == outer && !outer.is_null();
    }

    #[test]
    fn nested_catch_in_host_callback() {
        let mut seen = Nested::default();
        call_host().run([0, nested_host as *const () as usize, &raw mut seen as usize, 0]).unwrap();
        assert!(seen.inner_trapped && seen.inner_raised && seen.restored);
        assert!(no_activation());
    }

    #[test]
    fn repeated_traps_keep_the_thread_usable() {
        let (ud2, store) = (ud2(), store());
        ud2.run([0; 4]).unwrap_err();
        let alt_stack = sys::current_sigaltstack().unwrap();
        for i in 0..100 {
            assert!(matches!(ud2.run([0; 4]), Err(Unwind::Trap { kind: TrapKind::Unreachable, .. })));
            let mut out = 0usize;
            store.run([&raw mut out as usize, i, 0, 0]).unwrap();
            assert_eq!(out, i);
        }
        assert!(no_activation());
        let after = sys::current_sigaltstack().unwrap();
        assert_eq!((after.ss_sp, after.ss_size), (alt_stack.ss_sp, alt_stack.ss_size), "one alt stack per thread");
        assert!(after.ss_size >= sys::min_signal_stack_size() + HANDLER_HEADROOM);
    }

    #[test]
    fn traps_on_several_threads_at_once() {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let (ud2, store) = (ud2(), store());
                    (0..200).all(|i| {
                        let mut out = 0usize;
                        matches!(ud2.run([0; 4]), Err(Unwind::Trap { .. }))
                            && store.run([&raw mut out as usize, t * 1000 + i, 0, 0]).is_ok()
                            && out == t * 1000 + i
                    })
                })
            })
            .collect();
        assert!(threads.into_iter().all(|t| t.join().unwrap()));
    }

    #[test]
    fn stack_overflow_unwinds_on_the_alt_stack() {
        // call <self>: recurses until the thread's guard page.
        let recurse = std::sync::Arc::new(Code::new(&[0xe8, 0xfb, 0xff, 0xff, 0xff], &[(0, TrapKind::StackOverflow)]));
        let thread = std::thread::Builder::new().stack_size(256 << 10).spawn({
            let recurse = recurse.clone();
            move || {
                let first = recurse.run([0; 4]);
                let again = recurse.run([0; 4]);
                [first, again].map(|r| matches!(r, Err(Unwind::Trap { kind: TrapKind::StackOverflow, .. })))
            }
        });
        assert_eq!(thread.unwrap().join().unwrap(), [true, true]);
    }

    std::arch::global_asm!(
        ".pushsection .text",
        ".globl sandboxrun_test_callee_saved",
        ".hidden sandboxrun_test_callee_saved",
        "sandboxrun_test_callee_saved:",
        // (f: extern "C" fn(usize), arg) -> u32: calls f(arg) with known values in every
        // callee-saved register; returns 1 if they all survived.
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "sub rsp, 8",
        "mov rax, rdi",
        "mov rdi, rsi",
        "mov rbx, 0x1111111111111111",
        "mov rbp, 0x2222222222222222",
        "mov r12, 0x3333333333333333",
        "mov r13, 0x4444444444444444",
        "mov r14, 0x5555555555555555",
        "mov r15, 0x6666666666666666",
        "call rax",
        "xor eax, eax",
        "mov rcx, 0x1111111111111111",
        "cmp rbx, rcx",
        "jne 2f",
        "mov rcx, 0x2222222222222222",
        "cmp rbp, rcx",
        "jne 2f",
        "mov rcx, 0x3333333333333333",
        "cmp r12, rcx",
        "jne 2f",
        "mov rcx, 0x4444444444444444",
        "cmp r13, rcx",
        "jne 2f",
        "mov rcx, 0x5555555555555555",
        "cmp r14, rcx",
        "jne 2f",
        "mov rcx, 0x6666666666666666",
        "cmp r15, rcx",
        "jne 2f",
        "mov eax, 1",
        "2:",
        "add rsp, 8",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
        ".popsection",
    );

    unsafe extern "C" {
        fn sandboxrun_test_callee_saved(f: usize, arg: usize) -> u32;
    }

    /// Runs code that overwrites every callee-saved register, then traps; records in
    /// `*trapped` whether it trapped.
    extern "C" fn clobber_and_trap(trapped: usize) {
        // mov rbx, rdi ; mov rbp, rdi ; mov r12, rdi ; mov r13, rdi ; mov r14, rdi ;
        // mov r15, rdi ; ud2
        let code = Code::new(
            &[
                0x48, 0x89, 0xfb, 0x48, 0x89, 0xfd, 0x49, 0x89, 0xfc, 0x49, 0x89, 0xfd, 0x49, 0x89, 0xfe, 0x49, 0x89,
                0xff, 0x0f, 0x0b,
            ],
            &[(0x12, TrapKind::Unreachable)],
        );
        let result = code.run([0xdead_beef, 0, 0, 0]);
        // SAFETY: `trapped` is a `&mut bool` the test passes.
        unsafe { *(trapped as *mut bool) = matches!(result, Err(Unwind::Trap { kind: TrapKind::Unreachable, .. })) };
    }

    #[test]
    fn callee_saved_registers_survive_an_unwind() {
        let mut trapped = false;
        // SAFETY: the harness follows the C ABI and calls `clobber_and_trap(&mut trapped)`.
        let intact =
            unsafe { sandboxrun_test_callee_saved(clobber_and_trap as *const () as usize, &raw mut trapped as usize) };
        assert!(trapped);
        assert_eq!(intact, 1, "a callee-saved register was not restored");
    }

    /// Runs `child` in a forked child process that cannot dump core; returns the signal that
    /// killed it, or `Err` with its exit status.
    fn killed_by(child: impl FnOnce() -> i32) -> Result<i32, i32> {
        // Warm up this thread (handlers, alternate stack) so the child allocates nothing: it
        // is a copy of a multi-threaded process, where another thread may hold a lock.
        let mut scratch = 0usize;
        store().run([&raw mut scratch as usize, 0, 0, 0]).unwrap();
        // SAFETY: the child only runs `child` (with code prepared by the parent) and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: plain syscalls; `_exit` skips the parent's atexit handlers.
            unsafe {
                libc::prctl(libc::PR_SET_DUMPABLE, 0);
                libc::_exit(child());
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid out-pointer.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFSIGNALED(status) {
            Ok(libc::WTERMSIG(status))
        } else {
            Err(libc::WEXITSTATUS(status))
        }
    }

    #[test]
    fn faults_outside_compiled_code_still_kill() {
        // The same instructions as above, but no trap sites: host faults.
        let load = Code::new(&[0x8b, 0x07, 0xc3], &[]);
        let ud2 = Code::new(&[0x0f, 0x0b], &[]);
        let reserved = sys::reserve(1 << 16).unwrap() as usize;
        assert_eq!(killed_by(|| load.run([reserved, 0, 0, 0]).is_ok().into()), Ok(libc::SIGSEGV));
        assert_eq!(killed_by(|| ud2.run([0; 4]).is_ok().into()), Ok(libc::SIGILL));
        // SAFETY: the code is a complete C-ABI function.
        let f: extern "C" fn(usize) -> u32 = unsafe { std::mem::transmute(load.mem.base()) };
        assert_eq!(killed_by(|| f(reserved) as i32), Ok(libc::SIGSEGV), "outside any activation");
        // SAFETY: our reservation, unused.
        unsafe { sys::unmap(reserved as *mut u8, 1 << 16) }.unwrap();
    }

    #[test]
    fn signals_sent_by_a_process_are_not_traps() {
        // mov eax, SYS_getpid ; syscall ; mov edi, eax ; mov esi, eax ; mov edx, SIGILL ;
        // mov eax, SYS_tgkill ; syscall ; ret — the signal arrives at the `ret` (0x17),
        // listed as a trap site, but it was sent, not raised by the instruction.
        let code = Code::new(
            &[
                0xb8, 0x27, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x89, 0xc7, 0x89, 0xc6, 0xba, 0x04, 0x00, 0x00, 0x00, 0xb8,
                0xea, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xc3,
            ],
            &[(0x17, TrapKind::Unreachable)],
        );
        assert_eq!(killed_by(|| if code.run([0; 4]).is_err() { 1 } else { 2 }), Ok(libc::SIGILL));
    }

    #[test]
    fn small_alt_stacks_are_replaced_and_ours_released() {
        std::thread::spawn(|| {
            let small = sys::reserve(libc::SIGSTKSZ).unwrap();
            // SAFETY: our fresh reservation; it stays mapped (leaked) while registered.
            unsafe {
                sys::protect(small, libc::SIGSTKSZ, sys::Prot::ReadWrite).unwrap();
                let stack = libc::stack_t { ss_sp: small.cast(), ss_flags: 0, ss_size: libc::SIGSTKSZ };
                sys::set_sigaltstack(&stack).unwrap();
            }
            let alt = AltStack::new();
            alt.ensure();
            let (mapping, len) = alt.mapping.get().expect("a SIGSTKSZ stack is replaced");
            let current = sys::current_sigaltstack().unwrap();
            assert_eq!(current.ss_sp, mapping.wrapping_add(sys::page_size()).cast());
            assert_eq!(current.ss_size, len - sys::page_size());
            assert!(current.ss_size >= ALT_STACK_SIZE);
            drop(alt);
            assert!(sys::current_sigaltstack().unwrap().ss_flags & libc::SS_DISABLE != 0, "released");

            // A large enough stack is kept.
            let big = sys::reserve(ALT_STACK_SIZE).unwrap();
            // SAFETY: as above.
            unsafe {
                sys::protect(big, ALT_STACK_SIZE, sys::Prot::ReadWrite).unwrap();
                let stack = libc::stack_t { ss_sp: big.cast(), ss_flags: 0, ss_size: ALT_STACK_SIZE };
                sys::set_sigaltstack(&stack).unwrap();
            }
            let keep = AltStack::new();
            keep.ensure();
            assert!(keep.mapping.get().is_none());
            assert_eq!(sys::current_sigaltstack().unwrap().ss_sp, big.cast());
        })
        .join()
        .unwrap();
    }
}
