//! Compiling the lists into BPF, once (before forking), and installing the result (last step
//! of confinement).
//!
//! Three programs, because a seccompiler filter has one action for its matches and one for the
//! rest, and the kernel runs every installed program and keeps the most severe answer
//! (KILL_PROCESS > TRAP > ERRNO > ALLOW):
//!
//! 1. the allowlist: listed calls (with their argument rules) ALLOW, anything else TRAP — the
//!    reporter's SIGSYS handler records the number, then ends the process (below);
//! 2. the kill list: `rt_sigaction(SIGSYS, ...)` is KILL_PROCESS, so the reporter cannot be
//!    replaced, and the reporter ends the process by calling it;
//! 3. `clone3` answers ENOSYS (see [`Rule::Enosys`]).
//!
//! Each program first checks the architecture (a mismatch, e.g. the i386 `int 0x80` entry
//! point on x86-64, is KILL_PROCESS) and compares the full number, so x32 numbers (bit 30 set)
//! never match an entry.

use super::list::{Arch, Rule};
use super::report;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};
use std::collections::BTreeMap;

/// Why the filter could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler rejected a program.
    #[error("seccomp: failed to compile the {program} filter: {source}")]
    Compile {
        /// Which program.
        program: &'static str,
        /// The error.
        source: seccompiler::BackendError,
    },
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
    /// The kernel refused a program.
    #[error("seccomp: seccomp(SECCOMP_SET_MODE_FILTER) for the {program} filter: {source}")]
    Install {
        /// Which program.
        program: &'static str,
        /// The error.
        source: seccompiler::Error,
    },
}

/// The compiled programs, ready to install.
#[derive(Clone, Debug)]
pub struct Filter {
    arch: Arch,
    own_pid: Option<libc::pid_t>,
    allowlist: BpfProgram,
    kill: BpfProgram,
    enosys: BpfProgram,
}

impl Filter {
    /// The architecture it checks.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The programs in the order [`apply`] installs them, with their names.
    pub fn programs(&self) -> [(&'static str, &BpfProgram); 3] {
        [("clone3", &self.enosys), ("kill", &self.kill), ("allowlist", &self.allowlist)]
    }
}

/// The pid a child started by [`crate::spawn()`] (with a pid namespace) has in its own eyes: the
/// one to give [`compile_filter`] before forking.
pub const PID_IN_NAMESPACE: libc::pid_t = 1;

const SIGSYS: u64 = libc::SIGSYS as u64;
const PR_SET_NAME: u64 = libc::PR_SET_NAME as u64;
const PR_GET_NAME: u64 = libc::PR_GET_NAME as u64;
const MAP_SHARED_BIT: u64 = libc::MAP_SHARED as u64; // also set in MAP_SHARED_VALIDATE
const THREAD_FLAGS: u64 =
    (libc::CLONE_THREAD | libc::CLONE_VM | libc::CLONE_SIGHAND | libc::CLONE_FS | libc::CLONE_FILES) as u64;
const CLONE_NEWTIME: u64 = 0x80;
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64
    | CLONE_NEWTIME;

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, len, op, value).expect("argument index below 6")
}

/// The rules of an entry for the allowlist program; `None` leaves it off the list.
fn allow_rules(rule: Rule, own_pid: Option<libc::pid_t>) -> Option<Vec<SeccompRule>> {
    use SeccompCmpArgLen::{Dword, Qword};
    let one = |conditions| SeccompRule::new(conditions).expect("non-empty");
    Some(match rule {
        // An empty rule list matches unconditionally.
        Rule::Always | Rule::NotSigsys | Rule::Enosys => Vec::new(),
        Rule::ThreadsOnly => vec![one(vec![
            cond(0, Qword, SeccompCmpOp::MaskedEq(THREAD_FLAGS), THREAD_FLAGS),
            cond(0, Qword, SeccompCmpOp::MaskedEq(NAMESPACE_FLAGS), 0),
        ])],
        Rule::PrivateOnly => vec![one(vec![cond(3, Dword, SeccompCmpOp::MaskedEq(MAP_SHARED_BIT), 0)])],
        Rule::ThreadName => vec![
            one(vec![cond(0, Dword, SeccompCmpOp::Eq, PR_SET_NAME)]),
            one(vec![cond(0, Dword, SeccompCmpOp::Eq, PR_GET_NAME)]),
        ],
        Rule::OwnProcess => vec![one(vec![cond(0, Dword, SeccompCmpOp::Eq, own_pid? as u64)])],
    })
}

fn program(
    program: &'static str,
    arch: Arch,
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    otherwise: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SeccompError> {
    let compile = || SeccompFilter::new(rules, otherwise, matched, arch.target())?.try_into();
    compile().map_err(|source| SeccompError::Compile { program, source })
}

/// Compiles the filter for `arch`. `own_pid` is the pid the confined process will see as its
/// own (`getpid()`): [`PID_IN_NAMESPACE`] for a child of [`crate::spawn()`]; `tgkill` is
/// allowed only to it (`None`: not at all, and `abort()` ends in SIGSYS instead of SIGABRT).
///
/// # Errors
/// [`SeccompError::Compile`] if seccompiler rejects a program (a bug in the lists).
pub fn compile_filter(arch: Arch, own_pid: Option<libc::pid_t>) -> Result<Filter, SeccompError> {
    let entries = arch.allowed();
    let allowed = entries.iter().filter_map(|e| Some((e.nr, allow_rules(e.rule, own_pid)?))).collect();
    let allowlist = program("allowlist", arch, allowed, SeccompAction::Trap, SeccompAction::Allow)?;
    let with_rule = |rule| entries.iter().filter(move |e| e.rule == rule).map(|e| e.nr);
    let kill_rules = with_rule(Rule::NotSigsys)
        .map(|nr| {
            let sigsys = cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, SIGSYS);
            (nr, vec![SeccompRule::new(vec![sigsys]).expect("non-empty")])
        })
        .collect();
    let kill = program("kill", arch, kill_rules, SeccompAction::Allow, SeccompAction::KillProcess)?;
    let enosys_rules = with_rule(Rule::Enosys).map(|nr| (nr, Vec::new())).collect();
    let enosys =
        program("clone3", arch, enosys_rules, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32))?;
    Ok(Filter { arch, own_pid, allowlist, kill, enosys })
}

/// Installs the SIGSYS reporter, then the programs, on the calling thread (threads started
/// later inherit them; [`crate::confine`] checks there are no others). After this, only the
/// allowlist runs.
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
    // The handler first: once the kill program is in, rt_sigaction(SIGSYS) ends the process.
    report::install_handler().map_err(SeccompError::Reporter)?;
    // The allowlist last: seccompiler's install calls prctl and seccomp, which it refuses.
    for (program, bpf) in filter.programs() {
        seccompiler::apply_filter(bpf).map_err(|source| SeccompError::Install { program, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_for_every_architecture() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for pid in [None, Some(PID_IN_NAMESPACE)] {
                let filter = compile_filter(arch, pid).unwrap();
                for (name, bpf) in filter.programs() {
                    assert!(!bpf.is_empty() && bpf.len() < 4096, "{arch:?} {name}: {} instructions", bpf.len());
                }
            }
        }
    }

    #[test]
    fn the_pid_decides_whether_tgkill_is_listed() {
        let with = compile_filter(Arch::X86_64, Some(1)).unwrap();
        let without = compile_filter(Arch::X86_64, None).unwrap();
        assert!(with.allowlist.len() > without.allowlist.len());
    }
}
