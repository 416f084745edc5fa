//! Giving up privileges: `no_new_privs`, every capability set emptied, securebits locked.

use caps::CapSet;

/// Why a privilege step failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("prctl(PR_SET_NO_NEW_PRIVS): {0}")]
    NoNewPrivs(std::io::Error),
    /// `prctl(PR_SET_SECUREBITS)` failed.
    #[error("prctl(PR_SET_SECUREBITS): {0}")]
    Securebits(std::io::Error),
    /// Dropping a capability set failed.
    #[error("capset ({set}): {source}")]
    Caps {
        /// Which set.
        set: &'static str,
        /// The error.
        source: caps::errors::CapsError,
    },
}

/// Sets `no_new_privs`: nothing the process does can gain privileges (setuid binaries,
/// file capabilities), and seccomp and landlock may be applied unprivileged.
pub fn no_new_privs() -> Result<(), PrivilegeError> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(PrivilegeError::NoNewPrivs(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Locks the securebits (no privileges regained through uid 0, no ambient raising), then
/// empties the bounding, ambient, inheritable, permitted and effective sets — in that order,
/// since dropping from the bounding set needs CAP_SETPCAP in the effective set.
pub fn drop_capabilities() -> Result<(), PrivilegeError> {
    const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
    const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
    const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
    const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
    const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
    const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;
    let bits = SECBIT_NOROOT
        | SECBIT_NOROOT_LOCKED
        | SECBIT_NO_SETUID_FIXUP
        | SECBIT_NO_SETUID_FIXUP_LOCKED
        | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE
        | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) } != 0 {
        return Err(PrivilegeError::Securebits(std::io::Error::last_os_error()));
    }
    for cap in caps::all() {
        if caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|source| PrivilegeError::Caps { set: "bounding", source })?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|source| PrivilegeError::Caps { set: "ambient", source })?;
    caps::clear(None, CapSet::Inheritable).map_err(|source| PrivilegeError::Caps { set: "inheritable", source })?;
    caps::clear(None, CapSet::Effective).map_err(|source| PrivilegeError::Caps { set: "effective", source })?;
    caps::clear(None, CapSet::Permitted).map_err(|source| PrivilegeError::Caps { set: "permitted", source })?;
    Ok(())
}
