//! Compiling the lists into one BPF program, once (before forking), and installing it (last
//! step of confinement).
//!
//! The program ([`super::bpf`]) checks the architecture (a mismatch, e.g. the i386 `int 0x80`
//! entry point on x86-64, is KILL_PROCESS), then finds the full number in a decision tree, so
//! x32 numbers (bit 30 set) never match an entry. Per entry:
//! - listed calls are ALLOW, with their argument rules where they have one;
//! - `rt_sigaction(SIGSYS, ...)` is KILL_PROCESS, so the reporter cannot be replaced, and the
//!   reporter ends the process by calling it;
//! - `clone3` answers ENOSYS (see [`Rule::Enosys`]);
//! - anything else is TRAP: the reporter's SIGSYS handler records the number, then ends the
//!   process.

use super::bpf::{self, BpfError, Condition, Leaf, RET_ALLOW, RET_KILL_PROCESS, RET_TRAP};
use super::list::{Arch, Rule};
use super::report;

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The lists do not make a program.
    #[error("seccomp: failed to generate the filter: {0}")]
    Generate(#[from] BpfError),
    /// The filter was compiled for another architecture or process.
    #[error("seccomp: the filter was compiled for {compiled} but this process is {actual}")]
    Mismatch {
        /// What the filter was compiled for.
        compiled: String,
        /// What this process is.
        actual: String,
    },
    /// Installing the SIGSYS reporter failed.
    #[error("seccomp: rt_sigaction(SIGSYS): {0}")]
    Reporter(std::io::Error),
    /// A system call of the installation failed.
    #[error("seccomp: {call}: {source}")]
    Install {
        /// The call.
        call: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// The compiled program, ready to install.
#[derive(Clone, Debug)]
pub struct Filter {
    arch: Arch,
    own_pid: Option<libc::pid_t>,
    program: Vec<libc::sock_filter>,
}

impl Filter {
    /// The architecture it checks.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The instructions.
    pub fn program(&self) -> &[libc::sock_filter] {
        &self.program
    }
}

/// The pid a child started by [`crate::spawn()`] (with a pid namespace) has in its own eyes: the
/// one to give [`compile_filter`] before forking.
pub const PID_IN_NAMESPACE: libc::pid_t = 1;

/// The `clone` flags a new thread carries, all of which `Rule::ThreadsOnly` requires.
pub const THREAD_FLAGS: u64 =
    (libc::CLONE_THREAD | libc::CLONE_VM | libc::CLONE_SIGHAND | libc::CLONE_FS | libc::CLONE_FILES) as u64;
const CLONE_NEWTIME: u64 = 0x80;
/// The `clone` flags that would create a namespace, none of which `Rule::ThreadsOnly` allows.
pub const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64
    | CLONE_NEWTIME;
const MAP_SHARED_BIT: u32 = libc::MAP_SHARED as u32; // also set in MAP_SHARED_VALIDATE

/// The leaf of an entry; `None` leaves it off the list (TRAP).
fn leaf(rule: Rule, own_pid: Option<libc::pid_t>) -> Option<Leaf> {
    let test = |alternatives, otherwise| Leaf::Test { alternatives, then: RET_ALLOW, otherwise };
    Some(match rule {
        Rule::Always => Leaf::Return(RET_ALLOW),
        Rule::Enosys => Leaf::Return(bpf::ret_errno(libc::ENOSYS)),
        Rule::ThreadsOnly => test(
            vec![vec![Condition::masked64(0, THREAD_FLAGS, THREAD_FLAGS), Condition::masked64(0, NAMESPACE_FLAGS, 0)]],
            RET_TRAP,
        ),
        Rule::PrivateOnly => {
            test(vec![vec![Condition { arg: 3, wide: false, mask: MAP_SHARED_BIT.into(), value: 0 }]], RET_TRAP)
        }
        Rule::ThreadName => test(
            vec![
                vec![Condition::eq32(0, libc::PR_SET_NAME as u32)],
                vec![Condition::eq32(0, libc::PR_GET_NAME as u32)],
            ],
            RET_TRAP,
        ),
        Rule::OwnProcess => test(vec![vec![Condition::eq32(0, own_pid? as u32)]], RET_TRAP),
        // Any signal but SIGSYS; changing SIGSYS's handler ends the process at once.
        Rule::NotSigsys => Leaf::Test {
            alternatives: vec![vec![Condition::eq32(0, libc::SIGSYS as u32)]],
            then: RET_KILL_PROCESS,
            otherwise: RET_ALLOW,
        },
    })
}

/// Compiles the filter for `arch`. `own_pid` is the pid the confined process will see as its
/// own (`getpid()`): [`PID_IN_NAMESPACE`] for a child of [`crate::spawn()`]; `tgkill` is
/// allowed only to it (`None`: not at all, and `abort()` ends in SIGSYS instead of SIGABRT).
///
/// # Errors
/// [`SeccompError::Generate`] if the lists do not make a program (a bug in them).
pub fn compile_filter(arch: Arch, own_pid: Option<libc::pid_t>) -> Result<Filter, SeccompError> {
    let leaves: Vec<(u32, Leaf)> =
        arch.allowed().iter().filter_map(|e| Some((e.nr as u32, leaf(e.rule, own_pid)?))).collect();
    let program = bpf::generate(arch.audit(), &leaves, RET_TRAP)?;
    Ok(Filter { arch, own_pid, program })
}

/// Installs the SIGSYS reporter, then the program, on the calling thread (threads started
/// later inherit it; [`crate::confine`] checks there are no others). After this, only the
/// allowlist runs. Sets no_new_privs first (which an unprivileged process needs to install a
/// filter; [`crate::confine`] has set it already).
///
/// # Errors
/// [`SeccompError::Mismatch`] if the filter was compiled for another architecture or pid;
/// [`SeccompError::Reporter`] or [`SeccompError::Install`] if a system call fails.
pub fn apply(filter: &Filter) -> Result<(), SeccompError> {
    if Arch::native() != Some(filter.arch) {
        return Err(SeccompError::Mismatch {
            compiled: format!("{:?}", filter.arch),
            actual: format!("{:?}", Arch::native()),
        });
    }
    let pid = nix::unistd::getpid().as_raw();
    if filter.own_pid.is_some_and(|own| own != pid) {
        return Err(SeccompError::Mismatch {
            compiled: format!("pid {}", filter.own_pid.unwrap_or_default()),
            actual: format!("pid {pid}"),
        });
    }
    // The handler first: once the program is in, rt_sigaction(SIGSYS) ends the process.
    report::install_handler().map_err(SeccompError::Reporter)?;
    crate::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
        .map_err(|source| SeccompError::Install { call: "prctl(PR_SET_NO_NEW_PRIVS)", source })?;
    crate::sys::seccomp_set_filter(&filter.program)
        .map_err(|source| SeccompError::Install { call: "seccomp(SECCOMP_SET_MODE_FILTER)", source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_for_every_architecture() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for pid in [None, Some(PID_IN_NAMESPACE)] {
                let filter = compile_filter(arch, pid).unwrap();
                let len = filter.program().len();
                assert!(len > 100 && len < 1024, "{arch:?}: {len} instructions");
            }
        }
    }

    #[test]
    fn the_pid_decides_whether_tgkill_is_listed() {
        let with = compile_filter(Arch::X86_64, Some(1)).unwrap();
        let without = compile_filter(Arch::X86_64, None).unwrap();
        assert!(with.program.len() > without.program.len());
    }
}
