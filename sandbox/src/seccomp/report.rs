//! Naming the denied system call after a seccomp death.
//!
//! A process killed by `SECCOMP_RET_KILL_PROCESS` dies by SIGSYS, and the number is in neither
//! the wait status nor `/proc/<pid>/syscall` (the zombie's reads `-1`: its stack is gone). So a
//! denied call is a TRAP: the kernel does not run it and sends the thread SIGSYS with the
//! number in the siginfo. The handler here stores the architecture and number in a page shared
//! with the parent ([`ViolationSlot`], mapped before the fork), then calls
//! `rt_sigaction(SIGSYS)`, which the kill program answers with `SECCOMP_RET_KILL_PROCESS`: the
//! whole process dies by SIGSYS, as without the reporter.
//!
//! Robustness: the handler does two atomic stores and one system call, all async-signal-safe.
//! If SIGSYS is blocked or ignored when the trap fires, the kernel resets it to its default
//! action (death by SIGSYS, number unrecorded). Replacing the handler is itself fatal. Only
//! code that can already run native instructions could overwrite the page or the handler's
//! code: the number is then as trustworthy as that code (the parent only prints it), and the
//! denied call still never runs.

use super::list::{syscall_name, Arch};
use nix::sys::mman::{MapFlags, ProtFlags};
use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicPtr, AtomicU32, Ordering};

/// A denied system call, as recorded by the reporter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The `AUDIT_ARCH_*` value of the call.
    pub audit_arch: u32,
    /// The system call number.
    pub nr: i64,
}

impl Violation {
    /// The architecture, if known.
    pub fn arch(&self) -> Option<Arch> {
        Arch::from_audit(self.audit_arch)
    }

    /// The system call's name, where the lists know it.
    pub fn name(&self) -> Option<&'static str> {
        syscall_name(self.arch()?, self.nr)
    }
}

impl std::fmt::Display for Violation {
    /// The name, or `syscall <number>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "syscall {}", self.nr),
        }
    }
}

/// The record in the shared page.
#[repr(C)]
struct Record {
    /// 0 empty, 1 being written, 2 written.
    state: AtomicU32,
    audit_arch: AtomicU32,
    nr: AtomicI64,
}

const EMPTY: u32 = 0;
const WRITING: u32 = 1;
const WRITTEN: u32 = 2;

/// A page shared between a parent and the child it forks, where the child's reporter records
/// the first denied system call. Create it before forking; the child calls
/// [`ViolationSlot::arm`], the parent [`ViolationSlot::read`] after reaping the child.
#[derive(Debug)]
pub struct ViolationSlot {
    record: NonNull<Record>,
}

// SAFETY: the page holds only atomics, and stays mapped while the slot lives: sharing or
// moving the slot between threads is as safe as sharing the atomics.
unsafe impl Send for ViolationSlot {}
// SAFETY: as above.
unsafe impl Sync for ViolationSlot {}

const PAGE: NonZeroUsize = NonZeroUsize::new(4096).expect("non-zero");

impl ViolationSlot {
    /// Maps the shared page.
    ///
    /// # Errors
    /// The `mmap(2)` error.
    pub fn new() -> std::io::Result<ViolationSlot> {
        // SAFETY: a fresh anonymous mapping, overlapping nothing; zero-filled, which is a valid
        // `Record` (atomics of zero).
        let page = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                PAGE,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .map_err(crate::sys::io)?;
        Ok(ViolationSlot { record: page.cast() })
    }

    fn record(&self) -> &Record {
        // SAFETY: the page stays mapped as long as `self` lives, and holds a `Record`.
        unsafe { self.record.as_ref() }
    }

    /// In the child: the reporter records here from now on. The page must stay mapped for the
    /// rest of the process's life (the child never drops its copy: it exits with `_exit`).
    pub fn arm(&self) {
        SLOT.store(self.record.as_ptr(), Ordering::Release);
    }

    /// In the parent, after the child is reaped: the recorded violation, if any.
    pub fn read(&self) -> Option<Violation> {
        let record = self.record();
        (record.state.load(Ordering::Acquire) == WRITTEN).then(|| Violation {
            audit_arch: record.audit_arch.load(Ordering::Relaxed),
            nr: record.nr.load(Ordering::Relaxed),
        })
    }
}

impl Drop for ViolationSlot {
    fn drop(&mut self) {
        // SAFETY: the page was mapped by `new` and nothing refers to it past `self` (in this
        // process, `arm` is only called in a child).
        let _ = unsafe { nix::sys::mman::munmap(self.record.cast::<c_void>(), PAGE.get()) };
    }
}

/// Where the handler records (null: nowhere).
static SLOT: AtomicPtr<Record> = AtomicPtr::new(std::ptr::null_mut());

/// `si_code` of a SIGSYS sent by seccomp.
const SYS_SECCOMP: i32 = 1;

/// The start of a SIGSYS siginfo on 64-bit Linux (`_sigsys` member of the union).
#[repr(C)]
struct SigsysInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    call_addr: *mut c_void,
    syscall: i32,
    arch: u32,
}

extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo; for SIGSYS the union holds `_sigsys`.
    let info = unsafe { &*info.cast::<SigsysInfo>() };
    let slot = SLOT.load(Ordering::Acquire);
    if info.code == SYS_SECCOMP && !slot.is_null() {
        // SAFETY: `arm` stored a pointer to a page mapped for the process's whole life.
        let record = unsafe { &*slot };
        // The first violation wins (threads may race).
        if record.state.compare_exchange(EMPTY, WRITING, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            record.audit_arch.store(info.arch, Ordering::Relaxed);
            record.nr.store(i64::from(info.syscall), Ordering::Relaxed);
            record.state.store(WRITTEN, Ordering::Release);
        }
    }
    end_process()
}

/// Ends the process by SIGSYS from inside the handler.
fn end_process() -> ! {
    // SAFETY: async-signal-safe calls with valid arguments. Under the filter, this
    // rt_sigaction(SIGSYS) is SECCOMP_RET_KILL_PROCESS and does not return. Without it (a
    // SIGSYS sent by hand), SIGSYS's action is now the default: unblocked and raised, it kills;
    // _exit is the last resort.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(libc::SIGSYS, &default, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGSYS);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(libc::SIGSYS);
        libc::_exit(128 + libc::SIGSYS)
    }
}

/// Installs the reporter as the SIGSYS handler (on the signal stack where the thread has one)
/// and unblocks SIGSYS, so a trap is always reported rather than turned into a plain death.
pub(crate) fn install_handler() -> std::io::Result<()> {
    // SAFETY: `on_sigsys` has the SA_SIGINFO signature and is async-signal-safe; the sigaction
    // and mask structures are fully initialised.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGSYS);
        if libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
