//! The thin wrapper around the raw system calls `nix` does not cover: each turns -1/errno into
//! [`io::Error`] and carries the `// SAFETY:` argument for its one `unsafe` block. Everything
//! else in the crate calls `nix`, `caps` or `landlock`.

use std::io;

/// Turns a -1 return into the calling thread's errno.
fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `clone(2)` with fork semantics (no `CLONE_VM`, no new stack): returns 0 in the child and the
/// child's pid in the parent. `flags` are namespace flags; `SIGCHLD` is added.
///
/// # Safety
/// As for `fork`: the child gets a copy of the address space with only the calling thread. If
/// another thread held a lock (the allocator's), the child deadlocks when it takes it; call this
/// from a single-threaded process. glibc's `atfork` handlers do not run.
pub unsafe fn clone_fork(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: without CLONE_VM and with a null stack, clone behaves like fork: the child
    // continues on a copy of this stack. The remaining conditions are the caller's.
    let r = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    check(r).map(|pid| pid as libc::pid_t)
}

/// `prctl(option, arg2)` for the integer-only options this crate uses.
pub fn prctl(option: libc::c_int, arg2: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the options used here (securebits, capability bounding set) take integers only and
    // touch no memory of ours.
    let r = unsafe { libc::prctl(option, arg2, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    check(r as libc::c_long).map(|r| r as libc::c_int)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, program)`: installs a BPF program on the calling
/// thread (no_new_privs or CAP_SYS_ADMIN required).
pub fn seccomp_set_filter(program: &[libc::sock_filter]) -> io::Result<()> {
    let len = libc::c_ushort::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog { len, filter: program.as_ptr().cast_mut() };
    // SAFETY: `fprog` points to `len` valid instructions, which the kernel copies before
    // returning; it never writes through the pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    check(r).map(|_| ())
}

/// The kernel's landlock ABI version (`landlock_create_ruleset(NULL, 0,
/// LANDLOCK_CREATE_RULESET_VERSION)`), or `None` when landlock is not built in or not enabled.
pub fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer and size 0 the call only reports the version.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (r > 0).then_some(r as u32)
}

/// The number of threads of the calling process (`Threads:` in `/proc/self/status`).
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Threads: line in /proc/self/status"))
}

/// Converts a `nix` error into an [`io::Error`].
pub fn io(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}
