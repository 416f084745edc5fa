//! Step 3, privileges: `no_new_privs`, not dumpable, securebits locked, and every capability
//! set emptied — bounding, ambient, inheritable, permitted, effective — then read back.

use caps::CapSet;
use std::io;

/// Why a privilege could not be given up.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A `prctl(2)` failed.
    #[error("privileges: prctl({option}): {source}")]
    Prctl {
        /// The option.
        option: &'static str,
        /// The error.
        source: io::Error,
    },
    /// Emptying a capability set failed (`capset(2)` or `prctl(PR_CAP_AMBIENT)`).
    #[error("privileges: capset({set}): {source}")]
    Caps {
        /// The set.
        set: &'static str,
        /// The error.
        source: caps::errors::CapsError,
    },
    /// A set still holds capabilities after being emptied.
    #[error("privileges: the {set} capability set is not empty after dropping it")]
    NotEmpty {
        /// The set.
        set: &'static str,
    },
}

const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// The securebits set and locked: uid 0 grants nothing (`NOROOT`), uid changes never touch
/// capabilities (`NO_SETUID_FIXUP`), `KEEP_CAPS` stays off, ambient capabilities cannot be
/// raised.
pub const SECUREBITS: libc::c_ulong = SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

fn prctl(option: libc::c_int, name: &'static str, arg: libc::c_ulong) -> Result<libc::c_int, PrivilegeError> {
    crate::sys::prctl(option, arg).map_err(|source| PrivilegeError::Prctl { option: name, source })
}

/// Gives up every privilege. Needs `CAP_SETPCAP` (which `spawn` gives the child in its user
/// namespace) for the securebits and the bounding set.
pub fn drop_privileges() -> Result<(), PrivilegeError> {
    // Nothing the process does can gain privileges any more (setuid files, file capabilities);
    // landlock and seccomp require it of an unprivileged process.
    prctl(libc::PR_SET_NO_NEW_PRIVS, "PR_SET_NO_NEW_PRIVS", 1)?;
    // No core dumps, and no ptrace or /proc access by other processes of the same user.
    prctl(libc::PR_SET_DUMPABLE, "PR_SET_DUMPABLE", 0)?;
    // Before the capabilities go: changing securebits needs CAP_SETPCAP.
    prctl(libc::PR_SET_SECUREBITS, "PR_SET_SECUREBITS", SECUREBITS)?;
    // The bounding set, every capability the kernel knows (also those newer than the caps
    // crate): PR_CAPBSET_DROP needs CAP_SETPCAP, so before the effective set is emptied.
    for cap in 0.. {
        match crate::sys::prctl(libc::PR_CAPBSET_DROP, cap) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(source) => return Err(PrivilegeError::Prctl { option: "PR_CAPBSET_DROP", source }),
        }
    }
    let clear = |set, name| caps::clear(None, set).map_err(|source| PrivilegeError::Caps { set: name, source });
    clear(CapSet::Ambient, "ambient")?;
    clear(CapSet::Inheritable, "inheritable")?;
    clear(CapSet::Effective, "effective")?;
    clear(CapSet::Permitted, "permitted")?;
    verify()
}

/// Reads every set back: all must be empty.
fn verify() -> Result<(), PrivilegeError> {
    for cap in 0.. {
        match crate::sys::prctl(libc::PR_CAPBSET_READ, cap) {
            Ok(0) => {}
            Ok(_) => return Err(PrivilegeError::NotEmpty { set: "bounding" }),
            Err(_) => break, // EINVAL: past the last capability
        }
    }
    for (set, name) in [
        (CapSet::Ambient, "ambient"),
        (CapSet::Inheritable, "inheritable"),
        (CapSet::Effective, "effective"),
        (CapSet::Permitted, "permitted"),
    ] {
        let held = caps::read(None, set).map_err(|source| PrivilegeError::Caps { set: name, source })?;
        if !held.is_empty() {
            return Err(PrivilegeError::NotEmpty { set: name });
        }
    }
    Ok(())
}
