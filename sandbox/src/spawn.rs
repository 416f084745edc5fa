//! Starting the child in new namespaces: `clone(2)` with namespace flags behaves like `fork`
//! and makes the child pid 1 of a new pid namespace (everything it could start dies with
//! it), with its own user, mount, network (no interfaces), IPC, UTS and cgroup namespaces.

use std::io;

/// The namespaces a spawned child gets.
pub const NAMESPACES: &[(&str, i32)] = &[
    ("user", libc::CLONE_NEWUSER),
    ("pid", libc::CLONE_NEWPID),
    ("mount", libc::CLONE_NEWNS),
    ("network", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

/// Exit status of a child whose function panicked.
pub const PANIC_EXIT: i32 = 101;

/// Forks into new namespaces (all of [`NAMESPACES`] when `isolate`, none otherwise); the
/// child runs `child` and exits with its value. Returns the child's pid in our namespace.
///
/// # Safety
/// As for `fork`: the calling process should be single-threaded.
pub unsafe fn spawn(isolate: bool, child: impl FnOnce() -> i32) -> io::Result<libc::pid_t> {
    let flags = if isolate { NAMESPACES.iter().fold(0, |f, (_, flag)| f | flag) } else { 0 };
    // SAFETY: clone without CLONE_VM and with a null stack has fork semantics: the child
    // continues on a copy of our stack. The caller guarantees a single-threaded process.
    let pid = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // Die with the supervisor: no orphan keeps running if the parent is killed.
            // SAFETY: plain prctl.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            // A panic must never unwind out of here: the child would go on running its
            // parent's code.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(PANIC_EXIT);
            // SAFETY: leaves without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid as libc::pid_t),
    }
}
