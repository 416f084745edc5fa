//! The shape of the seccomp lists: one entry per system call with its number, name, argument
//! rule and who needs it (allowlist), or why it must never be allowed (denylist), for one
//! architecture. The lists themselves are data, in [`super::calls`], with every
//! architecture's number side by side.

use super::calls;
use std::sync::OnceLock;

/// A CPU architecture with a system call list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64 (the engine's only target so far).
    X86_64,
    /// AArch64 (lists kept, never run yet).
    Aarch64,
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

impl Arch {
    /// The architecture this crate is compiled for, if it has a list.
    pub const fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else {
            None
        }
    }

    /// The `AUDIT_ARCH_*` value the kernel reports (in `seccomp_data` and in SIGSYS's siginfo).
    pub const fn audit(self) -> u32 {
        match self {
            Arch::X86_64 => AUDIT_ARCH_X86_64,
            Arch::Aarch64 => AUDIT_ARCH_AARCH64,
        }
    }

    /// The architecture of an `AUDIT_ARCH_*` value.
    pub const fn from_audit(audit: u32) -> Option<Arch> {
        match audit {
            AUDIT_ARCH_X86_64 => Some(Arch::X86_64),
            AUDIT_ARCH_AARCH64 => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// A number of [`calls`] on this architecture.
    fn nr(self, nr: calls::Nr) -> Option<i64> {
        match self {
            Arch::X86_64 => nr.x86_64,
            Arch::Aarch64 => nr.aarch64,
        }
    }

    /// The allowlist (built from [`calls`] on first use).
    pub fn allowed(self) -> &'static [Entry] {
        static LISTS: [OnceLock<Vec<Entry>>; 2] = [OnceLock::new(), OnceLock::new()];
        LISTS[self as usize].get_or_init(|| {
            let entry = |c: &calls::Allow| {
                Some(Entry { nr: self.nr(c.nr)?, name: c.name, rule: c.rule, needed_by: c.needed_by })
            };
            calls::ALLOWED.iter().filter_map(entry).collect()
        })
    }

    /// System calls that must never be allowed (checked by tests; named in reports).
    pub fn denied(self) -> &'static [Denied] {
        static LISTS: [OnceLock<Vec<Denied>>; 2] = [OnceLock::new(), OnceLock::new()];
        LISTS[self as usize].get_or_init(|| {
            let entry = |c: &calls::Deny| Some(Denied { nr: self.nr(c.nr)?, name: c.name, why: c.why });
            calls::DENIED.iter().filter_map(entry).collect()
        })
    }
}

/// When an allowlisted system call is allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// With any arguments.
    Always,
    /// `clone`: only for a thread (`CLONE_THREAD`, `CLONE_VM`, `CLONE_SIGHAND`, `CLONE_FS`,
    /// `CLONE_FILES` all set) and never with a `CLONE_NEW*` flag. No new process, no namespace.
    ThreadsOnly,
    /// `mmap`: only private mappings (no `MAP_SHARED`/`MAP_SHARED_VALIDATE`), so every
    /// writable anonymous mapping counts against `RLIMIT_DATA`.
    PrivateOnly,
    /// `prctl`: only `PR_SET_NAME` and `PR_GET_NAME` (thread names).
    ThreadName,
    /// `tgkill`: only to a thread of the process itself (its pid given to
    /// [`super::compile_filter`]); denied when that pid is unknown.
    OwnProcess,
    /// `rt_sigaction`: any signal but SIGSYS, whose handler reports violations. Changing
    /// SIGSYS's disposition is `SECCOMP_RET_KILL_PROCESS`; the reporter
    /// itself ends the process that way.
    NotSigsys,
    /// `clone3`: answered ENOSYS without running, so glibc falls back to
    /// `clone`, whose flags — unlike `clone3`'s, behind a pointer — a filter can inspect.
    Enosys,
}

/// An allowlisted system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its number on the list's architecture.
    pub nr: i64,
    /// Its name.
    pub name: &'static str,
    /// When it is allowed.
    pub rule: Rule,
    /// Who needs it after confinement.
    pub needed_by: &'static str,
}

/// A system call that must never be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied {
    /// Its number on the list's architecture.
    pub nr: i64,
    /// Its name.
    pub name: &'static str,
    /// What it would give an attacker.
    pub why: &'static str,
}

/// The name of a system call number, where the lists know it.
pub fn syscall_name(arch: Arch, nr: i64) -> Option<&'static str> {
    let allowed = arch.allowed().iter().find(|e| e.nr == nr).map(|e| e.name);
    allowed.or_else(|| arch.denied().iter().find(|d| d.nr == nr).map(|d| d.name))
}
