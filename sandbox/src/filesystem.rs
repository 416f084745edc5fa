//! Landlock: the only files the process can reach by path are those beneath its mounts —
//! read-only mounts for reading, read-write mounts for everything.

use landlock::{
    Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};
use std::path::PathBuf;

/// Why landlock could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// The ruleset could not be built or applied.
    #[error("landlock: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    /// A path could not be opened for a rule.
    #[error("landlock rule for {path}: {message}")]
    Path {
        /// The path.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The kernel has no landlock and the policy requires it.
    #[error("landlock is not supported by this kernel (set require_landlock: false to run without it)")]
    Unsupported,
}

/// What landlock enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockStatus {
    /// Every requested right is enforced.
    Full,
    /// Some rights (newer than the kernel's ABI) are not.
    Partial,
    /// Nothing is enforced: the kernel lacks landlock.
    Unsupported,
}

/// A ruleset whose rules are built (their paths opened) but not yet enforced: build it while
/// the paths still resolve, enforce it after the root has changed.
pub struct Prepared(landlock::RulesetCreated);

/// Builds the ruleset allowing `paths` (`(path, writable)`) and nothing else.
pub fn prepare(paths: &[(PathBuf, bool)]) -> Result<Prepared, LandlockError> {
    let abi = ABI::V6;
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?
        .create()?;
    for (path, writable) in paths {
        let fd = PathFd::new(path).map_err(|e| LandlockError::Path { path: path.clone(), message: e.to_string() })?;
        let access = if *writable { AccessFs::from_all(abi) } else { AccessFs::from_read(abi) };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access))?;
    }
    Ok(Prepared(ruleset))
}

/// Enforces a prepared ruleset on the calling thread and its future threads.
pub fn restrict(prepared: Prepared, required: bool) -> Result<LandlockStatus, LandlockError> {
    let status = prepared.0.restrict_self()?;
    let status = match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockStatus::Full,
        RulesetStatus::PartiallyEnforced => LandlockStatus::Partial,
        RulesetStatus::NotEnforced => LandlockStatus::Unsupported,
    };
    if status == LandlockStatus::Unsupported && required {
        return Err(LandlockError::Unsupported);
    }
    Ok(status)
}
