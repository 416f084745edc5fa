//! The seccomp allowlist: exactly the system calls a confined run needs once confined.
//! Anything else kills the process (`SECCOMP_RET_KILL_PROCESS`). The list is data, one entry
//! per system call with who needs it; it is reviewed like code.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// x86-64 system calls allowed without conditions, each with its user.
pub const ALLOWED_X86_64: &[(i64, &str, &str)] = &[
    (libc::SYS_read, "read", "WASI fd_read, stdin"),
    (libc::SYS_write, "write", "WASI fd_write, the report pipe"),
    (libc::SYS_readv, "readv", "std I/O"),
    (libc::SYS_writev, "writev", "std I/O"),
    (libc::SYS_pread64, "pread64", "WASI fd_pread"),
    (libc::SYS_pwrite64, "pwrite64", "WASI fd_pwrite"),
    (libc::SYS_lseek, "lseek", "WASI fd_seek/fd_tell/fd_write"),
    (libc::SYS_close, "close", "WASI fd_close, std"),
    (libc::SYS_fstat, "fstat", "WASI filestat"),
    (libc::SYS_newfstatat, "newfstatat", "std metadata"),
    (libc::SYS_statx, "statx", "std metadata"),
    (libc::SYS_openat, "openat", "WASI path_open fallback, std"),
    (libc::SYS_openat2, "openat2", "WASI path resolution beneath preopens"),
    (libc::SYS_getdents64, "getdents64", "WASI fd_readdir"),
    (libc::SYS_mkdirat, "mkdirat", "WASI path_create_directory"),
    (libc::SYS_unlinkat, "unlinkat", "WASI path_unlink_file/path_remove_directory"),
    (libc::SYS_renameat, "renameat", "WASI path_rename"),
    (libc::SYS_renameat2, "renameat2", "WASI path_rename (glibc)"),
    (libc::SYS_linkat, "linkat", "WASI path_link"),
    (libc::SYS_symlinkat, "symlinkat", "WASI path_symlink"),
    (libc::SYS_readlinkat, "readlinkat", "WASI path_readlink"),
    (libc::SYS_utimensat, "utimensat", "WASI set_times"),
    (libc::SYS_ftruncate, "ftruncate", "WASI fd_filestat_set_size"),
    (libc::SYS_fallocate, "fallocate", "WASI fd_allocate"),
    (libc::SYS_fsync, "fsync", "WASI fd_sync"),
    (libc::SYS_fdatasync, "fdatasync", "WASI fd_datasync"),
    (libc::SYS_fcntl, "fcntl", "WASI fdstat flags, std"),
    (libc::SYS_dup, "dup", "std"),
    (libc::SYS_dup3, "dup3", "std"),
    (libc::SYS_mmap, "mmap", "linear memories, code, allocator, thread stacks"),
    (libc::SYS_munmap, "munmap", "the same"),
    (libc::SYS_mprotect, "mprotect", "memory.grow, W^X code loading"),
    (libc::SYS_madvise, "madvise", "allocator"),
    (libc::SYS_mremap, "mremap", "allocator"),
    (libc::SYS_brk, "brk", "allocator"),
    (libc::SYS_futex, "futex", "locks, thread joins"),
    (libc::SYS_set_robust_list, "set_robust_list", "new threads (glibc)"),
    (libc::SYS_rseq, "rseq", "new threads (glibc)"),
    (libc::SYS_sched_getaffinity, "sched_getaffinity", "compile thread count"),
    (libc::SYS_sched_yield, "sched_yield", "WASI sched_yield"),
    (libc::SYS_exit, "exit", "thread exit"),
    (libc::SYS_exit_group, "exit_group", "process exit"),
    (libc::SYS_rt_sigreturn, "rt_sigreturn", "trap handling returns from the signal handler"),
    (libc::SYS_rt_sigaction, "rt_sigaction", "trap handler installation"),
    (libc::SYS_rt_sigprocmask, "rt_sigprocmask", "threads, abort"),
    (libc::SYS_sigaltstack, "sigaltstack", "trap handling stack"),
    (libc::SYS_clock_gettime, "clock_gettime", "WASI clocks, timings"),
    (libc::SYS_clock_getres, "clock_getres", "WASI clock_res_get"),
    (libc::SYS_clock_nanosleep, "clock_nanosleep", "WASI poll_oneoff sleeps"),
    (libc::SYS_nanosleep, "nanosleep", "WASI poll_oneoff sleeps"),
    (libc::SYS_getrandom, "getrandom", "WASI random_get, hash seeds"),
    (libc::SYS_poll, "poll", "std"),
    (libc::SYS_ppoll, "ppoll", "std"),
    (libc::SYS_getpid, "getpid", "std, abort"),
    (libc::SYS_gettid, "gettid", "std, abort"),
    (libc::SYS_tgkill, "tgkill", "abort raises a signal on itself"),
    (libc::SYS_prctl, "prctl", "thread names (std)"),
    (libc::SYS_clone3, "clone3", "new threads: answered ENOSYS by the second filter, glibc falls back to clone"),
];

/// Why the filter could not be built or applied.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler rejected the filter.
    #[error("seccomp filter: {0}")]
    Build(#[from] seccompiler::BackendError),
    /// The kernel refused it.
    #[error("seccomp(SECCOMP_SET_MODE_FILTER): {0}")]
    Apply(#[from] seccompiler::Error),
}

/// The compiled filters (the allowlist, and the one answering `clone3` with ENOSYS).
pub struct Filters {
    allowlist: BpfProgram,
    clone3: BpfProgram,
}

/// Builds the filters (once, before forking).
pub fn compile_filters() -> Result<Filters, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        ALLOWED_X86_64.iter().map(|(nr, _, _)| (*nr, Vec::new())).collect();
    // clone only for threads (CLONE_THREAD set): no new processes, no new namespaces.
    let thread = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        libc::CLONE_THREAD as u64,
    )?;
    let no_namespaces = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(
            (libc::CLONE_NEWUSER
                | libc::CLONE_NEWPID
                | libc::CLONE_NEWNS
                | libc::CLONE_NEWNET
                | libc::CLONE_NEWIPC
                | libc::CLONE_NEWUTS
                | libc::CLONE_NEWCGROUP) as u64,
        ),
        0,
    )?;
    rules.insert(libc::SYS_clone, vec![SeccompRule::new(vec![thread, no_namespaces])?]);
    let allowlist =
        SeccompFilter::new(rules, SeccompAction::KillProcess, SeccompAction::Allow, TargetArch::x86_64)?.try_into()?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )?
    .try_into()?;
    Ok(Filters { allowlist, clone3 })
}

/// Installs the filters on the calling thread (threads created later inherit them).
/// Requires `no_new_privs`.
pub fn apply(filters: &Filters) -> Result<(), SeccompError> {
    seccompiler::apply_filter(&filters.clone3)?;
    seccompiler::apply_filter(&filters.allowlist)?;
    Ok(())
}

/// The name of an x86-64 system call number, where the allowlist or the denylist of the
/// documentation knows it.
pub fn syscall_name(nr: i64) -> Option<&'static str> {
    ALLOWED_X86_64.iter().find(|(n, _, _)| *n == nr).map(|(_, name, _)| *name)
}
