//! Step 1, namespaces: the run is created by `clone(2)` in a new user namespace (and pid, mount,
//! network, IPC, UTS and cgroup namespaces, see [`Namespaces`]), so it is pid 1 of its own pid
//! namespace. A pid namespace can only be entered by a new process, which is why this step is
//! split: [`crate::spawn()`] creates the namespaces and writes the id maps from the parent, and
//! [`crate::confine`] checks, in the child, that they were entered.
//!
//! Identity: a caller that is not root is mapped to itself (uid U inside is uid U outside; its
//! supplementary groups stay, it cannot drop them). A root caller's child maps and switches to
//! [`RunAs`] (65534 by default) and drops its supplementary groups, so it is never root inside
//! and owns nothing outside. Either way the child holds capabilities only in its own user
//! namespace, until step 3 drops them.

use crate::config::{Namespaces, RunAs};
use nix::unistd::{Gid, Uid};
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

/// Why the namespaces or the identity could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// `clone(2)` with the namespace flags failed.
    #[error("failed to create namespaces: clone({flags}): {source}")]
    Clone {
        /// The flags, spelled out.
        flags: String,
        /// The error (EPERM or ENOSPC when unprivileged user namespaces are disabled or
        /// exhausted: see `user.max_user_namespaces` and distribution restrictions).
        source: io::Error,
    },
    /// Writing an id map of the child failed.
    #[error("failed to write '{file}': {source}")]
    IdMap {
        /// The `/proc/<pid>/...` file.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Switching the child to its identity failed.
    #[error("failed to switch to uid {uid} gid {gid}: {call}: {source}")]
    Identity {
        /// The target uid.
        uid: u32,
        /// The target gid.
        gid: u32,
        /// The system call.
        call: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A root caller asked for a run as root.
    #[error("refusing to run as uid {uid} gid {gid}: a run started by root takes an unprivileged identity (RunAs)")]
    RootIdentity {
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
    },
    /// [`crate::confine`] was asked for namespaces this process is not in.
    #[error("namespaces {missing:?} were not entered: start the process with sandbox::spawn (a pid namespace needs a new process)")]
    NotEntered {
        /// The namespaces asked for but not entered.
        missing: Vec<&'static str>,
    },
}

/// The identity of a spawned child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The uid, inside and outside.
    pub uid: u32,
    /// The gid, inside and outside.
    pub gid: u32,
    /// Whether the child must switch to it (the caller is root).
    pub switch: bool,
}

/// The identity a child of this process takes; never root.
pub(crate) fn identity(run_as: &RunAs) -> Result<Identity, NamespaceError> {
    let (euid, egid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
    if euid != 0 {
        return Ok(Identity { uid: euid, gid: egid, switch: false });
    }
    if run_as.uid == 0 || run_as.gid == 0 {
        return Err(NamespaceError::RootIdentity { uid: run_as.uid, gid: run_as.gid });
    }
    Ok(Identity { uid: run_as.uid, gid: run_as.gid, switch: true })
}

/// The flags of `clone(2)`, spelled out for messages.
pub(crate) fn describe_flags(namespaces: &Namespaces) -> String {
    namespaces.names().iter().map(|n| format!("CLONE_NEW{}", short_name(n))).collect::<Vec<_>>().join("|")
}

fn short_name(name: &str) -> &'static str {
    match name {
        "user" => "USER",
        "pid" => "PID",
        "mount" => "NS",
        "network" => "NET",
        "ipc" => "IPC",
        "uts" => "UTS",
        _ => "CGROUP",
    }
}

/// Parent side: writes the child's uid and gid maps (one line each: the identity mapped to
/// itself). A caller that is not root may only map its own ids, and must deny `setgroups` first.
pub(crate) fn write_id_maps(pid: libc::pid_t, id: &Identity) -> Result<(), NamespaceError> {
    let write = |name: &str, content: String| {
        let file = PathBuf::from(format!("/proc/{pid}/{name}"));
        std::fs::write(&file, content).map_err(|source| NamespaceError::IdMap { file, source })
    };
    write("uid_map", format!("{0} {0} 1\n", id.uid))?;
    if !id.switch {
        write("setgroups", "deny\n".into())?;
    }
    write("gid_map", format!("{0} {0} 1\n", id.gid))
}

/// Child side: a root caller's child drops its supplementary groups and takes its identity (in
/// that order: `setgroups` needs the capability `setresuid` would otherwise cost). Its
/// capabilities in the user namespace survive: uid 0 is not mapped in it, so the kernel's
/// root-to-user capability fixup does not apply.
pub(crate) fn become_identity(id: &Identity) -> Result<(), NamespaceError> {
    if !id.switch {
        return Ok(());
    }
    let fail = |call| move |e| NamespaceError::Identity { uid: id.uid, gid: id.gid, call, source: crate::sys::io(e) };
    let (uid, gid) = (Uid::from_raw(id.uid), Gid::from_raw(id.gid));
    nix::unistd::setgroups(&[]).map_err(fail("setgroups"))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(fail("setresgid"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(fail("setresuid"))?;
    Ok(())
}

/// What [`crate::spawn()`] set up for this process (recorded in the child).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spawned {
    /// The namespaces entered (the user namespace always).
    pub namespaces: Namespaces,
    /// The identity.
    pub identity: Identity,
    /// Whether the parent moved the child into a cgroup.
    pub cgroup: bool,
}

static SPAWNED: Mutex<Option<Spawned>> = Mutex::new(None);

/// Records, in the child, what `spawn` set up.
pub(crate) fn record(spawned: Spawned) {
    *SPAWNED.lock().unwrap_or_else(|e| e.into_inner()) = Some(spawned);
}

/// What `spawn` set up for this process, if it started it.
pub(crate) fn spawned() -> Option<Spawned> {
    *SPAWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Step 1 as [`crate::confine`] sees it: checks that every namespace asked for was entered, and
/// returns the names of those entered (empty for a process `spawn` did not start).
pub fn check(requested: &Namespaces) -> Result<Vec<&'static str>, NamespaceError> {
    let entered = spawned().map(|s| s.namespaces.names()).unwrap_or_default();
    let missing: Vec<&'static str> = match spawned() {
        None if *requested == Namespaces::USER_ONLY => Vec::new(),
        _ => requested.names().into_iter().filter(|n| !entered.contains(n)).collect(),
    };
    if missing.is_empty() {
        Ok(entered)
    } else {
        Err(NamespaceError::NotEntered { missing })
    }
}
