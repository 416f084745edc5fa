//! The seccomp filter on its own (plain forked children, no namespaces): it compiles, the lists
//! are consistent, a denied call kills the child by SIGSYS and the parent names the call, and
//! what the allowlist grants still works.

mod common;

use common::Checks;
use sandbox::seccomp::{self, Arch, ViolationSlot};
use sandbox::Termination;

/// Forks a child that installs `filter` (compiled in the child when `None`, for its own pid),
/// with the reporter armed if `slot` is given, then runs `body`; returns how it ended.
fn under_filter(filter: Option<&sandbox::Filter>, slot: Option<&ViolationSlot>, body: fn() -> i32) -> Termination {
    // SAFETY: this test binary is single-threaded.
    let pid = unsafe {
        sandbox::spawn::fork(|| {
            if let Some(slot) = slot {
                slot.arm();
            }
            let own;
            let filter = match filter {
                Some(f) => f,
                None => {
                    own = seccomp::compile_filter(Arch::X86_64, Some(std::process::id() as i32)).unwrap();
                    &own
                }
            };
            if let Err(e) = seccomp::apply(filter) {
                eprintln!("child: {e}");
                return common::CONFINE_FAILED;
            }
            body()
        })
    }
    .expect("fork");
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS {
        Termination::Seccomp(slot.and_then(|s| s.read()))
    } else if libc::WIFSIGNALED(status) {
        Termination::Signaled(libc::WTERMSIG(status))
    } else {
        Termination::Exited(libc::WEXITSTATUS(status))
    }
}

fn lists_are_consistent(checks: &mut Checks) {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let allowed = arch.allowed();
        let mut numbers: Vec<i64> = allowed.iter().map(|e| e.nr).collect();
        numbers.sort();
        numbers.dedup();
        checks.check(
            &format!("{arch:?}: no number twice on the allowlist"),
            numbers.len() == allowed.len(),
            allowed.len(),
        );
        let overlap: Vec<&str> = arch.denied().iter().filter(|d| numbers.contains(&d.nr)).map(|d| d.name).collect();
        checks.check(&format!("{arch:?}: no denied call is allowed"), overlap.is_empty(), format!("{overlap:?}"));
        let must_deny = [
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
            "bpf",
            "userfaultfd",
            "perf_event_open",
            "keyctl",
            "mount",
            "umount2",
            "pivot_root",
            "unshare",
            "setns",
            "execve",
            "execveat",
            "socket",
            "kill",
        ];
        let missing: Vec<&&str> = must_deny.iter().filter(|n| !arch.denied().iter().any(|d| d.name == **n)).collect();
        checks.check(
            &format!("{arch:?}: the brief's denied calls are all listed"),
            missing.is_empty(),
            format!("missing {missing:?}"),
        );
        let unexplained = allowed.iter().filter(|e| e.needed_by.is_empty()).count();
        checks.check(&format!("{arch:?}: every allowed entry says who needs it"), unexplained == 0, unexplained);
    }
    // The x86-64 numbers against the kernel headers, where installed.
    let header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
    match std::fs::read_to_string(header) {
        Ok(text) => {
            let defined = |name: &str| {
                text.lines().find_map(|l| l.strip_prefix(&format!("#define __NR_{name} "))?.trim().parse::<i64>().ok())
            };
            let wrong: Vec<String> = Arch::X86_64
                .allowed()
                .iter()
                .map(|e| (e.nr, e.name))
                .chain(Arch::X86_64.denied().iter().map(|d| (d.nr, d.name)))
                .filter(|(nr, name)| defined(name) != Some(*nr))
                .map(|(nr, name)| format!("{name}={nr} (header: {:?})", defined(name)))
                .collect();
            checks.check("x86_64: every number matches asm/unistd_64.h", wrong.is_empty(), format!("{wrong:?}"));
        }
        Err(e) => checks.note(format!("{header}: {e}: the x86-64 numbers are not cross-checked on this machine")),
    }
}

fn main() {
    let mut checks = Checks::new("seccomp: the filter alone, in plain forked children");
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let compiled = seccomp::compile_filter(arch, Some(sandbox::PID_IN_NAMESPACE));
        let sizes = compiled.as_ref().map(|f| format!("{} instructions", f.program().len()));
        checks.check(&format!("the {arch:?} filter compiles"), compiled.is_ok(), format!("{sizes:?}"));
    }
    lists_are_consistent(&mut checks);
    checks.check("names: 101 is ptrace on x86-64", seccomp::syscall_name(Arch::X86_64, 101) == Some("ptrace"), "");
    checks.check(
        "a number no list knows prints as a number",
        sandbox::Violation { audit_arch: Arch::X86_64.audit(), nr: 999 }.to_string() == "syscall 999",
        "",
    );

    let slot = ViolationSlot::new().expect("slot");
    let got = under_filter(None, Some(&slot), || {
        // SAFETY: plain system call; the filter kills the process first.
        unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        0
    });
    checks.check(
        "a denied call kills a forked child by SIGSYS and the parent names it",
        matches!(got, Termination::Seccomp(Some(v)) if v.name() == Some("socket") && v.arch() == Some(Arch::X86_64)),
        common::describe(got),
    );

    let slot = ViolationSlot::new().expect("slot");
    let got = under_filter(None, Some(&slot), || {
        // SAFETY: plain system call; the filter kills the process first.
        unsafe { libc::getppid() };
        0
    });
    checks.check(
        "a call on no list is named by number",
        matches!(got, Termination::Seccomp(Some(v)) if v.nr == libc::SYS_getppid && v.to_string() == format!("syscall {}", libc::SYS_getppid)),
        common::describe(got),
    );

    let got = under_filter(None, None, || {
        // SAFETY: plain system call; the filter kills the process first.
        unsafe { libc::getppid() };
        0
    });
    checks.check(
        "without an armed slot the child still dies by SIGSYS",
        got == Termination::Seccomp(None),
        common::describe(got),
    );

    let slot = ViolationSlot::new().expect("slot");
    let got = under_filter(None, Some(&slot), || {
        // A thread denied a call kills the whole process.
        let t = std::thread::spawn(|| {
            // SAFETY: plain system call; the filter kills the process first.
            unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) };
        });
        let _ = t.join();
        std::thread::sleep(std::time::Duration::from_secs(5));
        0
    });
    checks.check(
        "a denied call in a thread kills the whole process",
        matches!(got, Termination::Seccomp(Some(v)) if v.name() == Some("ptrace")),
        common::describe(got),
    );

    let slot = ViolationSlot::new().expect("slot");
    let got = under_filter(None, Some(&slot), || {
        let handles: Vec<_> = (0..4).map(|i| std::thread::spawn(move || i * 2)).collect();
        let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let mut buf = [0u8; 8];
        // SAFETY: a valid buffer.
        let random = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
        if sum == 12 && random == 8 {
            0
        } else {
            1
        }
    });
    checks.check(
        "threads (clone3 answered ENOSYS, clone for threads) and getrandom work",
        got == Termination::Exited(0),
        common::describe(got),
    );

    let got = under_filter(None, Some(&slot), || std::process::abort());
    checks.check(
        "abort ends in SIGABRT: tgkill to its own pid is allowed",
        got == Termination::Signaled(libc::SIGABRT),
        common::describe(got),
    );

    let no_pid = seccomp::compile_filter(Arch::X86_64, None).unwrap();
    let slot = ViolationSlot::new().expect("slot");
    let got = under_filter(Some(&no_pid), Some(&slot), || std::process::abort());
    checks.check(
        "without a pid, tgkill is denied (abort ends in SIGSYS)",
        matches!(got, Termination::Seccomp(Some(v)) if v.name() == Some("tgkill")),
        common::describe(got),
    );

    let other_pid = seccomp::compile_filter(Arch::X86_64, Some(1)).unwrap();
    // SAFETY: this test binary is single-threaded.
    let pid = unsafe {
        sandbox::spawn::fork(move || match seccomp::apply(&other_pid) {
            Err(e)
                if e.to_string().starts_with("seccomp: the filter was compiled for pid 1 but this process is pid ") =>
            {
                0
            }
            Err(e) => {
                eprintln!("child: {e}");
                1
            }
            Ok(()) => 2,
        })
    }
    .unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    checks.check(
        "a filter compiled for another pid is refused",
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        format!("status {status:#x}"),
    );

    why_not_proc_syscall(&checks);
    checks.finish()
}

/// Records, as a note, why the reporter exists: after SECCOMP_RET_KILL_PROCESS, the zombie's
/// /proc/<pid>/syscall does not hold the number.
fn why_not_proc_syscall(checks: &Checks) {
    let body = || {
        let filter = seccomp::compile_filter(Arch::X86_64, None).unwrap();
        let _ = seccomp::apply(&filter);
        // SAFETY: on the kill list: SECCOMP_RET_KILL_PROCESS.
        unsafe { libc::signal(libc::SIGSYS, libc::SIG_DFL) };
        0
    };
    // SAFETY: this test binary is single-threaded.
    let pid = unsafe { sandbox::spawn::fork(body) }.unwrap();
    // SAFETY: siginfo_t is plain data, valid zeroed.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid with WNOWAIT fills `info` and leaves the zombie in place.
    unsafe { libc::waitid(libc::P_PID, pid as u32, &mut info, libc::WEXITED | libc::WNOWAIT) };
    let line = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_else(|e| e.to_string());
    checks.note(format!("after KILL_PROCESS, the zombie's /proc/{pid}/syscall reads {:?}", line.trim()));
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
}
