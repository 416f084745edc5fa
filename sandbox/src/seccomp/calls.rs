//! The system call lists, data reviewed like code: every allowed entry says who needs it once
//! the run is confined, every denied one what it would give an attacker. One entry per call,
//! with its number on each architecture: x86-64 from `arch/x86/entry/syscalls/syscall_64.tbl`
//! (a test checks them against the system's `asm/unistd_64.h`), AArch64 from
//! `include/uapi/asm-generic/unistd.h` as seccompiler's table has them (never run yet: the
//! engine targets x86-64 only). AArch64 lacks `dup2`, `poll`, `fork`, `vfork`, `modify_ldt`,
//! `iopl` and `ioperm`.

use super::list::Rule::{self, Always, Enosys, NotSigsys, OwnProcess, PrivateOnly, ThreadName, ThreadsOnly};

/// A system call's number on each architecture (`None`: it has no such call).
#[derive(Clone, Copy, Debug)]
pub(super) struct Nr {
    pub x86_64: Option<i64>,
    pub aarch64: Option<i64>,
}

impl Nr {
    const fn both(x86_64: i64, aarch64: i64) -> Nr {
        Nr { x86_64: Some(x86_64), aarch64: Some(aarch64) }
    }

    const fn x86_64_only(x86_64: i64) -> Nr {
        Nr { x86_64: Some(x86_64), aarch64: None }
    }
}

/// An allowed call, on every architecture that has it.
pub(super) struct Allow {
    pub nr: Nr,
    pub name: &'static str,
    pub rule: Rule,
    pub needed_by: &'static str,
}

impl Allow {
    const fn new(nr: Nr, name: &'static str, rule: Rule, needed_by: &'static str) -> Allow {
        Allow { nr, name, rule, needed_by }
    }
}

/// A call that must never be allowed, on every architecture that has it.
pub(super) struct Deny {
    pub nr: Nr,
    pub name: &'static str,
    pub why: &'static str,
}

impl Deny {
    const fn new(nr: Nr, name: &'static str, why: &'static str) -> Deny {
        Deny { nr, name, why }
    }
}

/// The allowlist: everything else is denied.
pub(super) const ALLOWED: &[Allow] = &[
    // Memory.
    Allow::new(
        Nr::both(9, 222),
        "mmap",
        PrivateOnly,
        "engine: linear memory reservations, compiled code; allocator; thread stacks",
    ),
    Allow::new(Nr::both(11, 215), "munmap", Always, "engine: dropping memories and code; allocator; thread stacks"),
    Allow::new(
        Nr::both(10, 226),
        "mprotect",
        Always,
        "engine: memory.grow (PROT_NONE to RW), code W^X (RW to RX); glibc: stack guards",
    ),
    Allow::new(
        Nr::both(28, 233),
        "madvise",
        Always,
        "engine: memory reset (MADV_DONTNEED); allocator; glibc: thread stack reuse",
    ),
    Allow::new(Nr::both(25, 216), "mremap", Always, "allocator: growing large blocks (realloc)"),
    Allow::new(Nr::both(12, 214), "brk", Always, "allocator: the main arena"),
    // Threads and synchronisation.
    Allow::new(
        Nr::both(56, 220),
        "clone",
        ThreadsOnly,
        "engine: parallel compilation threads (glibc's fallback from clone3)",
    ),
    Allow::new(Nr::both(435, 435), "clone3", Enosys, "glibc pthread_create tries it first; ENOSYS makes it use clone"),
    Allow::new(Nr::both(202, 98), "futex", Always, "std: locks, condition variables, thread join"),
    Allow::new(Nr::both(273, 99), "set_robust_list", Always, "glibc: every new thread"),
    Allow::new(Nr::both(334, 293), "rseq", Always, "glibc: every new thread registers restartable sequences"),
    Allow::new(Nr::both(204, 123), "sched_getaffinity", Always, "std: available_parallelism (compile thread count)"),
    Allow::new(Nr::both(24, 124), "sched_yield", Always, "WASI sched_yield; spin loops"),
    Allow::new(Nr::both(186, 178), "gettid", Always, "glibc, std: thread ids; abort"),
    Allow::new(Nr::both(39, 172), "getpid", Always, "glibc: abort (raise); std"),
    Allow::new(Nr::both(234, 131), "tgkill", OwnProcess, "glibc: abort raises SIGABRT on itself"),
    Allow::new(Nr::both(157, 167), "prctl", ThreadName, "std: thread names"),
    Allow::new(Nr::both(60, 93), "exit", Always, "thread exit"),
    Allow::new(Nr::both(231, 94), "exit_group", Always, "process exit"),
    Allow::new(
        Nr::both(219, 128),
        "restart_syscall",
        Always,
        "kernel: resuming a sleep interrupted by a handled signal",
    ),
    // Signals: the engine's trap handling (SIGSEGV, SIGBUS, SIGILL, SIGFPE) and the reporter.
    Allow::new(
        Nr::both(13, 134),
        "rt_sigaction",
        NotSigsys,
        "engine: trap handler installation; std: stack overflow handler",
    ),
    Allow::new(Nr::both(14, 135), "rt_sigprocmask", Always, "glibc: thread creation, abort; engine: trap handling"),
    Allow::new(Nr::both(15, 139), "rt_sigreturn", Always, "return from the trap handlers"),
    Allow::new(
        Nr::both(131, 132),
        "sigaltstack",
        Always,
        "engine, std: per-thread signal stacks (traps, stack overflow)",
    ),
    // Time and randomness.
    Allow::new(
        Nr::both(228, 113),
        "clock_gettime",
        Always,
        "WASI clock_time_get; timings (when the vDSO cannot answer)",
    ),
    Allow::new(Nr::both(229, 114), "clock_getres", Always, "WASI clock_res_get"),
    Allow::new(Nr::both(96, 169), "gettimeofday", Always, "glibc: vDSO fallback"),
    Allow::new(Nr::both(35, 101), "nanosleep", Always, "std: thread::sleep on older glibc"),
    Allow::new(
        Nr::both(230, 115),
        "clock_nanosleep",
        Always,
        "WASI poll_oneoff clock subscriptions; std: thread::sleep",
    ),
    Allow::new(Nr::both(318, 278), "getrandom", Always, "WASI random_get; std: hash map seeds"),
    // Descriptors already open (stdio, the report pipe, preopened directories and files).
    Allow::new(Nr::both(0, 63), "read", Always, "WASI fd_read; stdin; pipes"),
    Allow::new(Nr::both(1, 64), "write", Always, "WASI fd_write; stdout/stderr; the report pipe"),
    Allow::new(Nr::both(19, 65), "readv", Always, "WASI fd_read (iovecs)"),
    Allow::new(Nr::both(20, 66), "writev", Always, "WASI fd_write (iovecs)"),
    Allow::new(Nr::both(17, 67), "pread64", Always, "WASI fd_pread"),
    Allow::new(Nr::both(18, 68), "pwrite64", Always, "WASI fd_pwrite"),
    Allow::new(Nr::both(295, 69), "preadv", Always, "WASI fd_pread (iovecs)"),
    Allow::new(Nr::both(296, 70), "pwritev", Always, "WASI fd_pwrite (iovecs)"),
    Allow::new(Nr::both(8, 62), "lseek", Always, "WASI fd_seek, fd_tell"),
    Allow::new(Nr::both(3, 57), "close", Always, "WASI fd_close; std"),
    Allow::new(Nr::both(5, 80), "fstat", Always, "WASI fd_filestat_get; std"),
    Allow::new(Nr::both(72, 25), "fcntl", Always, "WASI fd_fdstat_get/set_flags; std: close-on-exec"),
    Allow::new(Nr::both(32, 23), "dup", Always, "WASI fd_renumber; std"),
    Allow::new(Nr::x86_64_only(33), "dup2", Always, "WASI fd_renumber; std"),
    Allow::new(Nr::both(292, 24), "dup3", Always, "WASI fd_renumber; std"),
    Allow::new(Nr::x86_64_only(7), "poll", Always, "WASI poll_oneoff fd subscriptions"),
    Allow::new(Nr::both(271, 73), "ppoll", Always, "WASI poll_oneoff fd subscriptions"),
    Allow::new(Nr::both(77, 46), "ftruncate", Always, "WASI fd_filestat_set_size"),
    Allow::new(Nr::both(285, 47), "fallocate", Always, "WASI fd_allocate"),
    Allow::new(Nr::both(74, 82), "fsync", Always, "WASI fd_sync"),
    Allow::new(Nr::both(75, 83), "fdatasync", Always, "WASI fd_datasync"),
    Allow::new(Nr::both(221, 223), "fadvise64", Always, "WASI fd_advise"),
    // Paths beneath preopened directories (landlock checks every one).
    Allow::new(Nr::both(257, 56), "openat", Always, "WASI path_open; std"),
    Allow::new(Nr::both(437, 437), "openat2", Always, "WASI path_open (RESOLVE_BENEATH)"),
    Allow::new(Nr::both(262, 79), "newfstatat", Always, "WASI path_filestat_get; std metadata"),
    Allow::new(Nr::both(332, 291), "statx", Always, "std metadata"),
    Allow::new(Nr::both(217, 61), "getdents64", Always, "WASI fd_readdir"),
    Allow::new(Nr::both(258, 34), "mkdirat", Always, "WASI path_create_directory"),
    Allow::new(Nr::both(263, 35), "unlinkat", Always, "WASI path_unlink_file, path_remove_directory"),
    Allow::new(Nr::both(264, 38), "renameat", Always, "WASI path_rename"),
    Allow::new(Nr::both(316, 276), "renameat2", Always, "WASI path_rename (glibc's renameat)"),
    Allow::new(Nr::both(265, 37), "linkat", Always, "WASI path_link"),
    Allow::new(Nr::both(266, 36), "symlinkat", Always, "WASI path_symlink"),
    Allow::new(Nr::both(267, 78), "readlinkat", Always, "WASI path_readlink"),
    Allow::new(Nr::both(280, 88), "utimensat", Always, "WASI path_filestat_set_times, fd_filestat_set_times"),
];

/// Never allowed (not on the allowlist; a test checks). Every other number is denied too; these
/// are the ones an attacker would reach for, named so reports can name them.
pub(super) const DENIED: &[Deny] = &[
    Deny::new(Nr::both(425, 425), "io_uring_setup", "a second system call interface seccomp does not see"),
    Deny::new(Nr::both(426, 426), "io_uring_enter", "a second system call interface seccomp does not see"),
    Deny::new(Nr::both(427, 427), "io_uring_register", "a second system call interface seccomp does not see"),
    Deny::new(Nr::both(101, 117), "ptrace", "controlling other processes"),
    Deny::new(Nr::both(310, 270), "process_vm_readv", "reading other processes' memory"),
    Deny::new(Nr::both(311, 271), "process_vm_writev", "writing other processes' memory"),
    Deny::new(Nr::both(321, 280), "bpf", "kernel attack surface, maps shared with other processes"),
    Deny::new(Nr::both(323, 282), "userfaultfd", "stalling the kernel mid-copy (exploit primitive)"),
    Deny::new(Nr::both(298, 241), "perf_event_open", "kernel attack surface, side channels"),
    Deny::new(Nr::both(250, 219), "keyctl", "kernel keyrings shared beyond the sandbox"),
    Deny::new(Nr::both(248, 217), "add_key", "kernel keyrings"),
    Deny::new(Nr::both(249, 218), "request_key", "kernel keyrings, upcalls"),
    Deny::new(Nr::both(165, 40), "mount", "changing the filesystem view"),
    Deny::new(Nr::both(166, 39), "umount2", "uncovering what mounts hide"),
    Deny::new(Nr::both(155, 41), "pivot_root", "changing the root"),
    Deny::new(Nr::both(161, 51), "chroot", "changing the root"),
    Deny::new(Nr::both(428, 428), "open_tree", "new mount API"),
    Deny::new(Nr::both(429, 429), "move_mount", "new mount API"),
    Deny::new(Nr::both(430, 430), "fsopen", "new mount API"),
    Deny::new(Nr::both(431, 431), "fsconfig", "new mount API"),
    Deny::new(Nr::both(432, 432), "fsmount", "new mount API"),
    Deny::new(Nr::both(442, 442), "mount_setattr", "new mount API"),
    Deny::new(Nr::both(272, 97), "unshare", "new namespaces (fresh capabilities in a new user namespace)"),
    Deny::new(Nr::both(308, 268), "setns", "entering other namespaces"),
    Deny::new(Nr::both(59, 221), "execve", "running another program"),
    Deny::new(Nr::both(322, 281), "execveat", "running another program"),
    Deny::new(Nr::x86_64_only(57), "fork", "new processes"),
    Deny::new(Nr::x86_64_only(58), "vfork", "new processes"),
    Deny::new(Nr::both(41, 198), "socket", "networking, netlink, UNIX sockets"),
    Deny::new(Nr::both(53, 199), "socketpair", "new sockets"),
    Deny::new(Nr::both(42, 203), "connect", "networking"),
    Deny::new(Nr::both(62, 129), "kill", "signalling other processes"),
    Deny::new(Nr::both(200, 130), "tkill", "signalling other threads by id"),
    Deny::new(Nr::both(129, 138), "rt_sigqueueinfo", "signalling other processes"),
    Deny::new(Nr::both(297, 240), "rt_tgsigqueueinfo", "signalling other processes"),
    Deny::new(Nr::both(434, 434), "pidfd_open", "handles on other processes"),
    Deny::new(Nr::both(438, 438), "pidfd_getfd", "stealing other processes' descriptors"),
    Deny::new(Nr::both(424, 424), "pidfd_send_signal", "signalling other processes"),
    Deny::new(Nr::both(105, 146), "setuid", "changing identity"),
    Deny::new(Nr::both(106, 144), "setgid", "changing identity"),
    Deny::new(Nr::both(113, 145), "setreuid", "changing identity"),
    Deny::new(Nr::both(114, 143), "setregid", "changing identity"),
    Deny::new(Nr::both(117, 147), "setresuid", "changing identity"),
    Deny::new(Nr::both(119, 149), "setresgid", "changing identity"),
    Deny::new(Nr::both(116, 159), "setgroups", "changing identity"),
    Deny::new(Nr::both(126, 91), "capset", "changing capabilities"),
    Deny::new(Nr::both(317, 277), "seccomp", "stacking filters (harmless) or probing them"),
    Deny::new(Nr::both(160, 164), "setrlimit", "changing limits"),
    Deny::new(Nr::both(302, 261), "prlimit64", "changing limits"),
    Deny::new(Nr::both(319, 279), "memfd_create", "memory outside RLIMIT_DATA, executable files"),
    Deny::new(Nr::both(303, 264), "name_to_handle_at", "file handles"),
    Deny::new(Nr::both(304, 265), "open_by_handle_at", "opening files by handle, bypassing paths (shocker)"),
    Deny::new(Nr::both(16, 29), "ioctl", "device and terminal control (TIOCSTI)"),
    Deny::new(Nr::both(259, 33), "mknodat", "creating devices and FIFOs"),
    Deny::new(Nr::both(135, 92), "personality", "changing the ABI (READ_IMPLIES_EXEC)"),
    Deny::new(Nr::x86_64_only(154), "modify_ldt", "kernel attack surface"),
    Deny::new(Nr::x86_64_only(172), "iopl", "I/O ports"),
    Deny::new(Nr::x86_64_only(173), "ioperm", "I/O ports"),
    Deny::new(Nr::both(175, 105), "init_module", "loading kernel code"),
    Deny::new(Nr::both(313, 273), "finit_module", "loading kernel code"),
    Deny::new(Nr::both(176, 106), "delete_module", "unloading kernel code"),
    Deny::new(Nr::both(246, 104), "kexec_load", "replacing the kernel"),
    Deny::new(Nr::both(320, 294), "kexec_file_load", "replacing the kernel"),
    Deny::new(Nr::both(169, 142), "reboot", "rebooting"),
    Deny::new(Nr::both(167, 224), "swapon", "swap"),
    Deny::new(Nr::both(168, 225), "swapoff", "swap"),
    Deny::new(Nr::both(163, 89), "acct", "process accounting"),
    Deny::new(Nr::both(103, 116), "syslog", "kernel log"),
    Deny::new(Nr::both(444, 444), "landlock_create_ruleset", "new rulesets (harmless) or probing them"),
];
