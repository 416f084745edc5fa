//! What to confine a run to: plain data, built by the runner from its policy (this crate knows
//! nothing of policies). [`crate::spawn()`] reads the namespaces and identity; [`crate::confine`]
//! reads the rest.

use std::path::PathBuf;

/// What the run may do beneath a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read files, list directories.
    ReadOnly,
    /// Also create, write, truncate, rename, link and remove files and directories (never
    /// devices, sockets, FIFOs or execution).
    ReadWrite,
}

/// A path (directory or file) the run may still reach, enforced by landlock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRule {
    /// The host path; it must exist when [`crate::confine`] runs.
    pub path: PathBuf,
    /// What the run may do beneath it.
    pub access: Access,
}

impl PathRule {
    /// A read-only rule (a mount, or a single file such as the code cache database).
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        PathRule { path: path.into(), access: Access::ReadOnly }
    }

    /// A read-write rule.
    pub fn read_write(path: impl Into<PathBuf>) -> Self {
        PathRule { path: path.into(), access: Access::ReadWrite }
    }
}

/// The namespaces [`crate::spawn()`] creates besides the user namespace, which it always
/// creates: the user namespace owns the others, lets an unprivileged caller create them, and
/// confines the child's capabilities to resources it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Namespaces {
    /// A pid namespace: the run is its pid 1 and sees no other process; when it dies, the
    /// kernel kills everything left in it.
    pub pid: bool,
    /// A mount namespace (required by the empty root).
    pub mount: bool,
    /// A network namespace: no interfaces but a down loopback.
    pub network: bool,
    /// An IPC namespace: no System V IPC objects or POSIX message queues of the host.
    pub ipc: bool,
    /// A UTS namespace: host and domain names are the run's own.
    pub uts: bool,
    /// A cgroup namespace: the run's cgroup is its root.
    pub cgroup: bool,
}

impl Namespaces {
    /// Every namespace (the default).
    pub const ALL: Namespaces =
        Namespaces { pid: true, mount: true, network: true, ipc: true, uts: true, cgroup: true };
    /// Only the user namespace. The one value [`crate::confine`] accepts in a process
    /// [`crate::spawn()`] did not start (which is in no new namespace at all).
    pub const USER_ONLY: Namespaces =
        Namespaces { pid: false, mount: false, network: false, ipc: false, uts: false, cgroup: false };

    /// The `CLONE_NEW*` flags, the user namespace's included.
    pub(crate) fn clone_flags(&self) -> libc::c_int {
        self.list().iter().fold(0, |flags, (_, flag)| flags | flag)
    }

    /// The names of the namespaces, `"user"` first (for reports).
    pub fn names(&self) -> Vec<&'static str> {
        self.list().iter().map(|(name, _)| *name).collect()
    }

    fn list(&self) -> Vec<(&'static str, libc::c_int)> {
        let all = [
            (true, "user", libc::CLONE_NEWUSER),
            (self.pid, "pid", libc::CLONE_NEWPID),
            (self.mount, "mount", libc::CLONE_NEWNS),
            (self.network, "network", libc::CLONE_NEWNET),
            (self.ipc, "ipc", libc::CLONE_NEWIPC),
            (self.uts, "uts", libc::CLONE_NEWUTS),
            (self.cgroup, "cgroup", libc::CLONE_NEWCGROUP),
        ];
        all.into_iter().filter(|(on, _, _)| *on).map(|(_, name, flag)| (name, flag)).collect()
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces::ALL
    }
}

/// The unprivileged identity a run takes when the caller is root (a caller that is not root
/// keeps its own uid and gid). Neither may be 0. Read-write directories must be writable by it:
/// a runner may pick the owner of its read-write mounts instead of the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// The user id, the same inside the user namespace and outside.
    pub uid: u32,
    /// The group id; supplementary groups are dropped.
    pub gid: u32,
}

impl Default for RunAs {
    /// `nobody`/`nogroup` (65534): owns nothing on a normal system.
    fn default() -> Self {
        RunAs { uid: 65534, gid: 65534 }
    }
}

/// Resource limits (each `None` keeps the inherited limit). Each is set as both the soft and
/// the hard limit; a value above the inherited hard limit is lowered to it (stricter, never
/// laxer), and [`crate::Applied::rlimits`] reports what was set. `RLIMIT_CORE` and
/// `RLIMIT_MEMLOCK` are always 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rlimits {
    /// CPU seconds (`RLIMIT_CPU`): the hard limit, a second later, is SIGKILL (the soft limit's
    /// SIGXCPU is ignored by a pid namespace's init). A backstop: the supervisor compares the
    /// run's CPU time to the limit to name the verdict.
    pub cpu_seconds: Option<u64>,
    /// Bytes of private writable memory (`RLIMIT_DATA`): heap, anonymous mappings made
    /// writable, thread stacks. The PROT_NONE reservations of linear memories do not count;
    /// the part `memory.grow` makes accessible does (its `mprotect` fails past the limit). Set
    /// it to the guest's memory limit plus headroom for the compiler and runtime.
    pub data: Option<u64>,
    /// Bytes of address space (`RLIMIT_AS`). Leave it `None`: each linear memory reserves
    /// 6 GiB of address space, so any value that fits them limits nothing useful.
    pub address_space: Option<u64>,
    /// Largest file the run may write (`RLIMIT_FSIZE`); a write past it fails with EFBIG
    /// (SIGXFSZ is ignored).
    pub file_size: Option<u64>,
    /// Open descriptors (`RLIMIT_NOFILE`), counting those already open.
    pub open_files: Option<u64>,
    /// Tasks of the run's user in its user namespace (`RLIMIT_NPROC`): with seccomp allowing
    /// only threads, this bounds the threads (compile threads count).
    pub processes: Option<u64>,
    /// The main thread's stack (`RLIMIT_STACK`, soft and hard): it grows on demand up to this
    /// (the kernel checks the limit at each growth), so raising it in the process itself
    /// lets deep recursion through. Never above the inherited hard limit: read the applied
    /// value back to know what the run may use.
    pub stack: Option<u64>,
}

/// What to confine a run to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confinement {
    /// The namespaces [`crate::spawn()`] creates (and [`crate::confine`] checks were entered).
    pub namespaces: Namespaces,
    /// The identity a run started by root takes.
    pub run_as: RunAs,
    /// The paths the run may still reach, for landlock. With [`Confinement::empty_root`], they
    /// are reachable only through descriptors opened before [`crate::confine`].
    pub paths: Vec<PathRule>,
    /// Replace the root with an empty read-only tmpfs (needs the mount namespace): no host path
    /// can be named at all after confinement.
    pub empty_root: bool,
    /// Fail when the kernel lacks landlock (otherwise the run goes on, reported unconfined by
    /// landlock).
    pub require_landlock: bool,
    /// Resource limits.
    pub rlimits: Rlimits,
}

impl Default for Confinement {
    /// Everything on, nothing reachable.
    fn default() -> Self {
        Confinement {
            namespaces: Namespaces::ALL,
            run_as: RunAs::default(),
            paths: Vec::new(),
            empty_root: true,
            require_landlock: true,
            rlimits: Rlimits::default(),
        }
    }
}
