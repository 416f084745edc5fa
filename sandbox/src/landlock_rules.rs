//! Step 4, landlock: beneath the allowed paths the run may do what their rule says, and
//! nothing anywhere else — not through absolute paths, not through `..` from an open directory.
//! TCP bind/connect and signals or abstract UNIX sockets leaving the sandbox are denied too
//! (handled, with no rule granting them).
//!
//! The ABI targeted is pinned ([`TARGET_ABI`]); on an older kernel the crate's best-effort mode
//! enforces what the kernel knows (reported as partial). Rule handles are opened by
//! [`open_rules`] while the host's paths still resolve (before step 2), enforced by
//! [`enforce`] after `no_new_privs` (step 3).

use crate::config::{Access, PathRule};
use landlock::{
    Access as _, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use std::os::fd::BorrowedFd;
use std::path::PathBuf;

/// The landlock ABI whose rights this crate asks for: 6 (Linux 6.12) adds signal and abstract
/// UNIX socket scoping to 5's device ioctls, 4's TCP rules and 3's truncation. Raise it only
/// with a test of what the new rights change.
pub const TARGET_ABI: ABI = ABI::V6;

/// Why landlock could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// A rule's path could not be opened or inspected.
    #[error("landlock: failed to open rule path '{path}': {message}")]
    Path {
        /// The path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The ruleset could not be built or enforced.
    #[error("landlock: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    /// The kernel has no landlock and the confinement requires it.
    #[error("landlock is not supported by this kernel (CONFIG_SECURITY_LANDLOCK, and 'landlock' in the lsm= boot parameter); set require_landlock to false to run without it")]
    Unsupported,
}

/// What landlock enforces, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockApplied {
    /// The ruleset is enforced.
    Enforced {
        /// The kernel's landlock ABI version.
        abi: u32,
        /// Whether every right of [`TARGET_ABI`] is enforced (false on kernels older than it).
        full: bool,
    },
    /// The kernel has no landlock: nothing is enforced.
    Unsupported,
}

impl std::fmt::Display for LandlockApplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LandlockApplied::Enforced { abi, full: true } => write!(f, "abi {abi}"),
            LandlockApplied::Enforced { abi, full: false } => write!(f, "abi {abi} (partial)"),
            LandlockApplied::Unsupported => f.write_str("unsupported"),
        }
    }
}

/// A ruleset whose rules are built — their paths opened — but not yet enforced.
pub struct Rules(RulesetCreated);

/// The rights a rule grants beneath a directory or on a file.
fn rights(access: Access, is_dir: bool) -> BitFlags<AccessFs> {
    let read_file = BitFlags::from(AccessFs::ReadFile);
    let write_file = AccessFs::WriteFile | AccessFs::Truncate;
    let dir_write = AccessFs::RemoveDir
        | AccessFs::RemoveFile
        | AccessFs::MakeDir
        | AccessFs::MakeReg
        | AccessFs::MakeSym
        | AccessFs::Refer;
    match (access, is_dir) {
        (Access::ReadOnly, false) => read_file,
        (Access::ReadOnly, true) => read_file | AccessFs::ReadDir,
        (Access::ReadWrite, false) => read_file | write_file,
        (Access::ReadWrite, true) => read_file | AccessFs::ReadDir | write_file | dir_write,
    }
}

/// A rule on an already open file or directory (for a process that can no longer name the
/// host's paths, see [`crate::Prepared`]).
#[derive(Clone, Copy, Debug)]
pub struct FdRule<'a> {
    /// The file or directory.
    pub fd: BorrowedFd<'a>,
    /// What the run may do beneath it.
    pub access: Access,
}

/// An empty ruleset: every right of [`TARGET_ABI`] handled, so denied unless a rule grants it.
fn ruleset() -> Result<RulesetCreated, LandlockError> {
    Ok(Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(TARGET_ABI))?
        .handle_access(AccessNet::from_all(TARGET_ABI))?
        .scope(Scope::from_all(TARGET_ABI))?
        .create()?)
}

/// Builds the ruleset, one rule per path. Must run while the paths still resolve.
pub fn open_rules(paths: &[PathRule]) -> Result<Rules, LandlockError> {
    let mut ruleset = ruleset()?;
    for rule in paths {
        let fail = |message: String| LandlockError::Path { path: rule.path.clone(), message };
        let is_dir = std::fs::metadata(&rule.path).map_err(|e| fail(e.to_string()))?.is_dir();
        let fd = PathFd::new(&rule.path).map_err(|e| fail(e.to_string()))?;
        ruleset = ruleset.add_rule(PathBeneath::new(fd, rights(rule.access, is_dir)))?;
    }
    Ok(Rules(ruleset))
}

/// Builds the ruleset, one rule per open file or directory.
pub fn fd_rules(rules: &[FdRule<'_>]) -> Result<Rules, LandlockError> {
    let mut ruleset = ruleset()?;
    for (i, rule) in rules.iter().enumerate() {
        let fail = |message: String| LandlockError::Path { path: format!("descriptor of rule {i}").into(), message };
        let stat = nix::sys::stat::fstat(rule.fd).map_err(|e| fail(e.to_string()))?;
        let is_dir = stat.st_mode & libc::S_IFMT == libc::S_IFDIR;
        ruleset = ruleset.add_rule(PathBeneath::new(rule.fd, rights(rule.access, is_dir)))?;
    }
    Ok(Rules(ruleset))
}

/// Enforces the ruleset on the calling thread (and the threads and processes it starts later).
pub fn enforce(rules: Rules, required: bool) -> Result<LandlockApplied, LandlockError> {
    let status = rules.0.restrict_self()?;
    let full = match status.ruleset {
        RulesetStatus::FullyEnforced => true,
        RulesetStatus::PartiallyEnforced => false,
        RulesetStatus::NotEnforced if required => return Err(LandlockError::Unsupported),
        RulesetStatus::NotEnforced => return Ok(LandlockApplied::Unsupported),
    };
    match crate::sys::landlock_abi() {
        Some(abi) => Ok(LandlockApplied::Enforced { abi, full }),
        // Enforced, yet no version: cannot happen; report it as partial rather than guess.
        None => Ok(LandlockApplied::Enforced { abi: 0, full: false }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_rules_grant_no_write_right() {
        let write = AccessFs::from_write(TARGET_ABI);
        assert!((rights(Access::ReadOnly, true) & write).is_empty());
        assert!((rights(Access::ReadOnly, false) & write).is_empty());
    }

    #[test]
    fn no_rule_grants_execution_devices_sockets_or_fifos() {
        let never = AccessFs::Execute
            | AccessFs::MakeChar
            | AccessFs::MakeBlock
            | AccessFs::MakeSock
            | AccessFs::MakeFifo
            | AccessFs::IoctlDev;
        for access in [Access::ReadOnly, Access::ReadWrite] {
            for is_dir in [false, true] {
                assert!((rights(access, is_dir) & never).is_empty(), "{access:?} {is_dir}");
            }
        }
    }

    #[test]
    fn file_rules_hold_only_file_rights() {
        let file_rights = AccessFs::from_file(TARGET_ABI);
        for access in [Access::ReadOnly, Access::ReadWrite] {
            assert_eq!(rights(access, false) & !file_rights, BitFlags::EMPTY, "{access:?}");
        }
    }

    #[test]
    fn unsupported_is_reported_as_such() {
        assert_eq!(LandlockApplied::Unsupported.to_string(), "unsupported");
        assert_eq!(LandlockApplied::Enforced { abi: 7, full: true }.to_string(), "abi 7");
    }
}
