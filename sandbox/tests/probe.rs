//! The native probe: a fully confined child (all namespaces, empty root, no privileges,
//! landlock, rlimits, seccomp) attempts, one per process, what a hostile run would try — each
//! must fail with an error or a seccomp death naming the call — and what a legitimate run needs
//! — each must still work.

mod common;

use common::{c, cvt, judge, openat, Attempt, Checks, Dirs, Expect, Fds};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// The test's pid, for the child to aim at (it cannot see it from its pid namespace).
static PARENT: AtomicI32 = AtomicI32::new(0);

const ENOENT: i32 = libc::ENOENT;
const EACCES: i32 = libc::EACCES;

/// Attempts a hostile run makes; every one must fail.
fn hostile() -> Vec<(&'static str, Attempt, Expect)> {
    vec![
        ("open /etc/passwd", |_| std::fs::read("/etc/passwd").map(drop).map_err(errno), Expect::Errno(&[ENOENT])),
        (
            "open a file outside the allowed dirs by its path",
            |_| std::fs::read(outside_secret()).map(drop).map_err(errno),
            Expect::Errno(&[ENOENT]),
        ),
        (
            "open a file outside through '..' of an allowed dir",
            |f| openat(&f.ro, "../outside/secret", libc::O_RDONLY).map(drop),
            Expect::Errno(&[EACCES]),
        ),
        (
            "follow a symlink made in the rw dir out of it",
            |f| {
                symlinkat("../outside/secret", &f.rw, "escape")?;
                openat(&f.rw, "escape", libc::O_RDONLY).map(drop)
            },
            Expect::Errno(&[EACCES]),
        ),
        (
            "create a file in the ro dir",
            |f| openat(&f.ro, "new", libc::O_WRONLY | libc::O_CREAT).map(drop),
            Expect::Errno(&[EACCES]),
        ),
        (
            "truncate a file of the ro dir",
            |f| openat(&f.ro, "file", libc::O_WRONLY | libc::O_TRUNC).map(drop),
            Expect::Errno(&[EACCES]),
        ),
        (
            "move a file from the rw dir into the ro dir",
            |f| {
                // SAFETY: valid descriptors and paths.
                cvt(unsafe {
                    libc::renameat(f.rw.as_raw_fd(), c("file").as_ptr(), f.ro.as_raw_fd(), c("moved").as_ptr())
                })
                .map(drop)
            },
            Expect::Errno(&[EACCES, libc::EXDEV]),
        ),
        (
            "reopen the ro file for writing through /proc/self/fd",
            |f| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(format!("/proc/self/fd/{}", f.ro_file.as_raw_fd()))
                    .map(drop)
                    .map_err(errno)
            },
            Expect::Errno(&[ENOENT]),
        ),
        (
            "read /proc/1/environ",
            |_| std::fs::read("/proc/1/environ").map(drop).map_err(errno),
            Expect::Errno(&[ENOENT]),
        ),
        (
            "socket(AF_INET) + connect 127.0.0.1",
            |_| {
                // SAFETY: plain socket calls; the address is a valid sockaddr_in.
                unsafe {
                    let s = cvt(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0))? as i32;
                    let addr = libc::sockaddr_in {
                        sin_family: libc::AF_INET as u16,
                        sin_port: 22u16.to_be(),
                        sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
                        sin_zero: [0; 8],
                    };
                    let len = size_of::<libc::sockaddr_in>() as u32;
                    cvt(libc::connect(s, (&raw const addr).cast(), len)).map(drop)
                }
            },
            Expect::Seccomp("socket"),
        ),
        (
            "socket(AF_UNIX)",
            // SAFETY: plain system call.
            |_| cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) }).map(drop),
            Expect::Seccomp("socket"),
        ),
        // SAFETY: fork in a single-threaded process; the child would exit at once.
        ("fork", |_| cvt(unsafe { libc::fork() }).map(|_| ()), Expect::Seccomp("clone")),
        (
            "clone a thread into a new user namespace",
            |_| {
                let flags = libc::CLONE_THREAD
                    | libc::CLONE_VM
                    | libc::CLONE_SIGHAND
                    | libc::CLONE_FS
                    | libc::CLONE_FILES
                    | libc::CLONE_NEWUSER;
                // SAFETY: the filter refuses these flags, so the call never runs.
                cvt(unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) }).map(drop)
            },
            Expect::Seccomp("clone"),
        ),
        (
            "clone3 a process (answered ENOSYS)",
            |_| {
                let mut args = [0u64; 11]; // struct clone_args, CLONE_ARGS_SIZE_VER2
                args[4] = libc::SIGCHLD as u64; // exit_signal
                                                // SAFETY: the filter answers ENOSYS before the kernel reads the arguments.
                cvt(unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), size_of_val(&args)) }).map(drop)
            },
            Expect::Errno(&[libc::ENOSYS]),
        ),
        (
            "execve /bin/sh",
            |_| {
                let sh = c("/bin/sh");
                let argv = [sh.as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null()];
                // SAFETY: valid NUL-terminated arrays.
                cvt(unsafe { libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) }).map(drop)
            },
            Expect::Seccomp("execve"),
        ),
        (
            "ptrace the parent",
            // SAFETY: plain system call.
            |_| cvt(unsafe { libc::ptrace(libc::PTRACE_ATTACH, PARENT.load(Ordering::Relaxed), 0, 0) }).map(drop),
            Expect::Seccomp("ptrace"),
        ),
        (
            "process_vm_readv the parent",
            |_| {
                // SAFETY: the filter refuses the call before the kernel reads the (null) vectors.
                cvt(unsafe { libc::syscall(libc::SYS_process_vm_readv, PARENT.load(Ordering::Relaxed), 0, 0, 0, 0, 0) })
                    .map(drop)
            },
            Expect::Seccomp("process_vm_readv"),
        ),
        (
            "mount a tmpfs",
            |_| {
                let (t, target) = (c("tmpfs"), c("/"));
                // SAFETY: valid strings.
                cvt(unsafe { libc::mount(t.as_ptr(), target.as_ptr(), t.as_ptr(), 0, std::ptr::null()) }).map(drop)
            },
            Expect::Seccomp("mount"),
        ),
        (
            "umount2 the root",
            // SAFETY: valid string.
            |_| cvt(unsafe { libc::umount2(c("/").as_ptr(), libc::MNT_DETACH) }).map(drop),
            Expect::Seccomp("umount2"),
        ),
        (
            "pivot_root",
            // SAFETY: valid strings.
            |_| cvt(unsafe { libc::syscall(libc::SYS_pivot_root, c(".").as_ptr(), c(".").as_ptr()) }).map(drop),
            Expect::Seccomp("pivot_root"),
        ),
        (
            "unshare(CLONE_NEWUSER)",
            // SAFETY: plain system call.
            |_| cvt(unsafe { libc::unshare(libc::CLONE_NEWUSER) }).map(drop),
            Expect::Seccomp("unshare"),
        ),
        (
            "setns",
            // SAFETY: plain system call.
            |_| cvt(unsafe { libc::setns(0, 0) }).map(drop),
            Expect::Seccomp("setns"),
        ),
        // SAFETY: plain system call.
        ("setuid(0)", |_| cvt(unsafe { libc::setuid(0) }).map(drop), Expect::Seccomp("setuid")),
        // SAFETY: plain system call.
        ("kill(1)", |_| cvt(unsafe { libc::kill(1, libc::SIGKILL) }).map(drop), Expect::Seccomp("kill")),
        (
            "tgkill another process",
            // SAFETY: plain system call.
            |_| cvt(unsafe { libc::syscall(libc::SYS_tgkill, 2, 2, libc::SIGKILL) }).map(drop),
            Expect::Seccomp("tgkill"),
        ),
        (
            "bpf",
            // SAFETY: the filter refuses the call before the kernel reads the (null) attributes.
            |_| cvt(unsafe { libc::syscall(libc::SYS_bpf, 0, 0, 0) }).map(drop),
            Expect::Seccomp("bpf"),
        ),
        (
            "userfaultfd",
            // SAFETY: plain system call.
            |_| cvt(unsafe { libc::syscall(libc::SYS_userfaultfd, 0) }).map(drop),
            Expect::Seccomp("userfaultfd"),
        ),
        (
            "io_uring_setup",
            |_| {
                let mut params = [0u8; 120];
                // SAFETY: a zeroed io_uring_params.
                cvt(unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) }).map(drop)
            },
            Expect::Seccomp("io_uring_setup"),
        ),
        (
            "keyctl",
            // SAFETY: KEYCTL_GET_KEYRING_ID of the session keyring, integers only.
            |_| cvt(unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0, 0, 0) }).map(drop),
            Expect::Seccomp("keyctl"),
        ),
        (
            "perf_event_open",
            |_| {
                let attr = [0u8; 128];
                // SAFETY: a zeroed perf_event_attr.
                cvt(unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 0) }).map(drop)
            },
            Expect::Seccomp("perf_event_open"),
        ),
        (
            "memfd_create",
            // SAFETY: valid string.
            |_| cvt(unsafe { libc::memfd_create(c("x").as_ptr(), 0) }).map(drop),
            Expect::Seccomp("memfd_create"),
        ),
        (
            "ioctl(TIOCSTI) on stdin",
            |_| {
                let byte = b'x';
                // SAFETY: TIOCSTI reads one byte.
                cvt(unsafe { libc::ioctl(0, libc::TIOCSTI, &byte) }).map(drop)
            },
            Expect::Seccomp("ioctl"),
        ),
        (
            "mknodat a FIFO in the rw dir",
            // SAFETY: valid descriptor and path.
            |f| cvt(unsafe { libc::mknodat(f.rw.as_raw_fd(), c("fifo").as_ptr(), libc::S_IFIFO | 0o644, 0) }).map(drop),
            Expect::Seccomp("mknodat"),
        ),
        (
            "mmap a shared mapping",
            |_| {
                // SAFETY: a fresh anonymous mapping.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ,
                        libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    Err(errno(std::io::Error::last_os_error()))
                } else {
                    Ok(())
                }
            },
            Expect::Seccomp("mmap"),
        ),
        (
            "prctl(PR_SET_DUMPABLE, 1)",
            // SAFETY: integer arguments.
            |_| cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) }).map(drop),
            Expect::Seccomp("prctl"),
        ),
        (
            "raise RLIMIT_NOFILE",
            |_| {
                let limit = libc::rlimit { rlim_cur: 1 << 20, rlim_max: 1 << 20 };
                // SAFETY: valid rlimit.
                cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }).map(drop)
            },
            Expect::Seccomp("prlimit64"),
        ),
        (
            "replace the SIGSYS handler (the kill list)",
            // SAFETY: SIG_IGN for SIGSYS; the filter kills first.
            |_| cvt(unsafe { libc::signal(libc::SIGSYS, libc::SIG_IGN) } as i64).map(drop),
            Expect::SeccompUnnamed,
        ),
        (
            "a system call through the i386 entry point (int 0x80)",
            |_| i386_getpid(),
            // SIGSEGV: a kernel without i386 emulation refuses the entry point itself.
            Expect::OneOf(&[Expect::SeccompUnnamed, Expect::Signal(libc::SIGSEGV)]),
        ),
        (
            "an x32 system call (bit 30)",
            // SAFETY: an x32 getpid, integers only.
            |_| cvt(unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) }).map(drop),
            Expect::SeccompNumber(0x4000_0000 | libc::SYS_getpid),
        ),
    ]
}

/// What a legitimate run needs; every one must work.
fn legitimate() -> Vec<(&'static str, Attempt, Expect)> {
    vec![
        ("read a file of the ro dir", |f| read_all(openat(&f.ro, "file", libc::O_RDONLY)?), Expect::Works),
        ("list the ro dir", |f| list(openat(&f.ro, ".", libc::O_RDONLY | libc::O_DIRECTORY)?), Expect::Works),
        (
            "read the ro file opened before confinement",
            // SAFETY: a descriptor the child owns.
            |f| read_all(cvt(unsafe { libc::dup(f.ro_file.as_raw_fd()) })? as i32),
            Expect::Works,
        ),
        ("create, write, rename, link, symlink, truncate, remove in the rw dir", rw_operations, Expect::Works),
        (
            "start and join a thread",
            |_| std::thread::spawn(|| 7).join().map_err(|_| 0).and_then(|v| if v == 7 { Ok(()) } else { Err(0) }),
            Expect::Works,
        ),
        (
            "clocks, random bytes, sleep",
            |_| {
                let t = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_millis(1));
                let mut buf = [0u8; 16];
                // SAFETY: a valid buffer.
                cvt(unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) } as i64)?;
                if t.elapsed().as_micros() >= 1000 {
                    Ok(())
                } else {
                    Err(0)
                }
            },
            Expect::Works,
        ),
        (
            "reserve 6 GiB of address space and make 1 MiB of it writable",
            |_| {
                // SAFETY: a fresh PROT_NONE reservation; the first MiB made writable is written.
                unsafe {
                    let size = 6usize << 30;
                    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
                    let p = libc::mmap(std::ptr::null_mut(), size, libc::PROT_NONE, flags, -1, 0);
                    if p == libc::MAP_FAILED {
                        return Err(errno(std::io::Error::last_os_error()));
                    }
                    cvt(libc::mprotect(p, 1 << 20, libc::PROT_READ | libc::PROT_WRITE))?;
                    p.cast::<u8>().write_bytes(1, 1 << 20);
                    cvt(libc::munmap(p, size)).map(drop)
                }
            },
            Expect::Works,
        ),
        // SAFETY: plain system call.
        ("is pid 1 of its namespace", |_| if unsafe { libc::getpid() } == 1 { Ok(()) } else { Err(0) }, Expect::Works),
        // tgkill to itself is allowed (else: SIGSYS), but a pid namespace's init ignores the
        // default action of SIGABRT: glibc's abort then executes hlt, a fault that kills.
        ("abort() kills the process (SIGSEGV as pid 1)", |_| std::process::abort(), Expect::Signal(libc::SIGSEGV)),
    ]
}

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn outside_secret() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sandbox-probe-{}", PARENT.load(Ordering::Relaxed))).join("outside/secret")
}

fn symlinkat(target: &str, dir: &std::os::fd::OwnedFd, name: &str) -> Result<(), i32> {
    // SAFETY: valid descriptor and strings.
    cvt(unsafe { libc::symlinkat(c(target).as_ptr(), dir.as_raw_fd(), c(name).as_ptr()) }).map(drop)
}

fn read_all(fd: i32) -> Result<(), i32> {
    let mut buf = [0u8; 16];
    // SAFETY: a valid buffer; the descriptor is ours.
    let n = cvt(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })?;
    if &buf[..n as usize] == b"data" {
        Ok(())
    } else {
        Err(0)
    }
}

fn list(fd: i32) -> Result<(), i32> {
    let mut buf = [0u8; 4096];
    // SAFETY: a valid buffer; the descriptor is ours.
    let n = cvt(unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) })?;
    // "file" must be among the entries.
    if buf[..n as usize].windows(5).any(|w| w == b"file\0") {
        Ok(())
    } else {
        Err(0)
    }
}

fn rw_operations(f: &Fds) -> Result<(), i32> {
    let rw = f.rw.as_raw_fd();
    let fd = openat(&f.rw, "new", libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
    // SAFETY: valid descriptors, buffers and NUL-terminated paths throughout.
    unsafe {
        cvt(libc::write(fd, b"hello".as_ptr().cast(), 5))?;
        cvt(libc::fsync(fd))?;
        cvt(libc::ftruncate(fd, 2))?;
        cvt(libc::close(fd))?;
        cvt(libc::mkdirat(rw, c("sub").as_ptr(), 0o755))?;
        cvt(libc::renameat(rw, c("new").as_ptr(), rw, c("sub/renamed").as_ptr()))?;
        cvt(libc::linkat(rw, c("sub/renamed").as_ptr(), rw, c("linked").as_ptr(), 0))?;
        cvt(libc::symlinkat(c("linked").as_ptr(), rw, c("symlink").as_ptr()))?;
        let mut target = [0u8; 16];
        let n = cvt(libc::readlinkat(rw, c("symlink").as_ptr(), target.as_mut_ptr().cast(), target.len()))?;
        if &target[..n as usize] != b"linked" {
            return Err(0);
        }
        cvt(libc::unlinkat(rw, c("symlink").as_ptr(), 0))?;
        cvt(libc::unlinkat(rw, c("linked").as_ptr(), 0))?;
        cvt(libc::unlinkat(rw, c("sub/renamed").as_ptr(), 0))?;
        cvt(libc::unlinkat(rw, c("sub").as_ptr(), libc::AT_REMOVEDIR))?;
    }
    Ok(())
}

/// getpid through the i386 entry point, which the filters' architecture check refuses.
#[cfg(target_arch = "x86_64")]
fn i386_getpid() -> Result<(), i32> {
    let mut eax: u32 = 20; // __NR_getpid on i386
                           // SAFETY: a system call with no memory arguments; the filter kills the process first.
    unsafe { std::arch::asm!("int 0x80", inout("eax") eax, options(nostack)) };
    if (eax as i32) < 0 {
        Err(-(eax as i32))
    } else {
        Ok(())
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn i386_getpid() -> Result<(), i32> {
    unreachable!("x86-64 only")
}

fn main() {
    let mut checks = Checks::new("probe: a confined child attempts escapes, one per process");
    common::machine_facts(&checks);
    PARENT.store(std::process::id() as i32, Ordering::Relaxed);
    let dirs = Dirs::create("probe");
    let confinement = dirs.confinement();
    let filter = sandbox::compile_filter(sandbox::Arch::X86_64, Some(sandbox::PID_IN_NAMESPACE)).expect("filter");
    let mut attempts = hostile();
    attempts.extend(legitimate());
    for (name, attempt, expect) in attempts {
        let got = common::run_confined(&confinement, &filter, &dirs, attempt);
        judge(&mut checks, name, expect, got);
    }
    // From outside: nothing leaked into the ro dir, the rw dir holds what was made there.
    checks.check(
        "the ro dir is unchanged",
        !dirs.ro.join("new").exists() && !dirs.ro.join("moved").exists(),
        "no new or moved file",
    );
    checks.check("the rw dir's files stayed in it", dirs.rw.join("file").exists(), "file still there");
    drop(dirs); // finish exits: no destructor runs after it
    checks.finish()
}
