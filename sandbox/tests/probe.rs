//! The native probe: a confined process attempts, one at a time, everything a hostile run
//! might try; each attempt must fail (an error, or death by SIGSYS from seccomp). Reads and
//! writes inside the allowed directories and new threads must still work.
//!
//! Each attempt runs in a fresh process (this test binary re-executed with `SANDBOX_PROBE`
//! set), which spawns a child in new namespaces, confines it, and reports how it ended.

use std::path::PathBuf;
use std::process::Command;

const BLOCKED: i32 = 10;
const ALLOWED: i32 = 11;
const CONFINE_FAILED: i32 = 12;

fn dirs() -> (PathBuf, PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!(
        "sandbox-probe-{}",
        std::env::var("PROBE_PARENT").unwrap_or_else(|_| std::process::id().to_string())
    ));
    (base.join("ro"), base.join("rw"), base.join("outside"))
}

/// Makes one attempt; `ro` and `rw` are descriptors of the allowed directories, opened
/// before confinement (afterwards no host path resolves).
fn attempt(name: &str, ro_fd: i32, rw_fd: i32) -> bool {
    use std::ffi::CString;
    let (_, _, outside) = dirs();
    let c = |s: &str| CString::new(s).unwrap();
    // SAFETY: plain system calls with valid arguments; the probe process exits right after.
    unsafe {
        match name {
            "read_ro" => {
                let fd = libc::openat(ro_fd, c("file").as_ptr(), libc::O_RDONLY);
                let mut b = [0u8; 1];
                fd >= 0 && libc::read(fd, b.as_mut_ptr().cast(), 1) == 1
            }
            "write_rw" => {
                let fd = libc::openat(rw_fd, c("new").as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o644);
                fd >= 0 && libc::write(fd, b"x".as_ptr().cast(), 1) == 1
            }
            "dotdot_from_mount" => libc::openat(ro_fd, c("../outside/secret").as_ptr(), libc::O_RDONLY) >= 0,
            "thread" => std::thread::spawn(|| 7).join().ok() == Some(7),
            "open_etc_passwd" => std::fs::read("/etc/passwd").is_ok(),
            "open_outside" => std::fs::read(outside.join("secret")).is_ok(),
            "write_ro" => libc::openat(ro_fd, c("new").as_ptr(), libc::O_WRONLY | libc::O_CREAT, 0o644) >= 0,
            "connect" => {
                let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if s < 0 {
                    return false;
                }
                let addr = libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: 22u16.to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be() },
                    sin_zero: [0; 8],
                };
                libc::connect(s, &addr as *const _ as *const libc::sockaddr, size_of::<libc::sockaddr_in>() as u32) == 0
            }
            "fork" => libc::fork() >= 0,
            "execve" => {
                let path = c("/bin/true");
                let argv = [path.as_ptr(), std::ptr::null()];
                libc::execve(path.as_ptr(), argv.as_ptr(), [std::ptr::null()].as_ptr());
                false
            }
            "ptrace_parent" => libc::ptrace(libc::PTRACE_ATTACH, libc::getppid(), 0, 0) == 0,
            "mount" => {
                libc::mount(c("none").as_ptr(), c("/tmp").as_ptr(), c("tmpfs").as_ptr(), 0, std::ptr::null()) == 0
            }
            "unshare" => libc::unshare(libc::CLONE_NEWNET) == 0,
            "setuid_root" => {
                libc::setuid(0) == 0
                    && libc::geteuid() == 0
                    && libc::open(c("/etc/shadow").as_ptr(), libc::O_RDONLY) >= 0
            }
            "kill_init" => libc::kill(1, 0) == 0,
            "proc_1_environ" => std::fs::read("/proc/1/environ").is_ok(),
            "bpf" => libc::syscall(libc::SYS_bpf, 0, 0, 0) >= 0,
            "userfaultfd" => libc::syscall(libc::SYS_userfaultfd, 0) >= 0,
            "io_uring_setup" => libc::syscall(libc::SYS_io_uring_setup, 1, [0u8; 120].as_mut_ptr()) >= 0,
            "keyctl" => libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) >= 0,
            "perf_event_open" => libc::syscall(libc::SYS_perf_event_open, [0u8; 128].as_ptr(), 0, -1, -1, 0) >= 0,
            other => panic!("unknown attempt {other}"),
        }
    }
}

/// The entry point of a probe process (a no-op in the normal test run).
#[test]
fn probe_entry() {
    let Ok(name) = std::env::var("SANDBOX_PROBE") else { return };
    let filters = sandbox::compile_filters().expect("filters compile");
    let (ro, rw, _) = dirs();
    // SAFETY: the probe process runs this single test on one thread besides the harness's
    // main thread, which only waits.
    let open_dir = |p: &PathBuf| std::fs::File::open(p).map(std::os::fd::OwnedFd::from).expect("dir");
    let (ro_fd, rw_fd) = (open_dir(&ro), open_dir(&rw));
    let pid = unsafe {
        sandbox::spawn::spawn(true, move || {
            use std::os::fd::AsRawFd;
            let c = sandbox::Confinement {
                paths: vec![(ro, false), (rw, true)],
                require_landlock: true,
                rlimits: sandbox::Rlimits { open_files: Some(64), ..Default::default() },
                empty_root: true,
            };
            if let Err(e) = sandbox::confine(&c, &filters) {
                eprintln!("confine: {e}");
                return CONFINE_FAILED;
            }
            if attempt(&name, ro_fd.as_raw_fd(), rw_fd.as_raw_fd()) {
                ALLOWED
            } else {
                BLOCKED
            }
        })
    }
    .expect("spawn");
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 100 + libc::WTERMSIG(status) };
    std::process::exit(code);
}

fn probe(name: &str) -> i32 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "probe_entry", "--nocapture", "--test-threads=1"])
        .env("SANDBOX_PROBE", name)
        .env("PROBE_PARENT", std::process::id().to_string())
        .output()
        .unwrap();
    out.status.code().unwrap_or(-1)
}

#[test]
fn confined_process_can_do_its_job_and_nothing_else() {
    let (ro, rw, outside) = dirs();
    for d in [&ro, &rw, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(ro.join("file"), "x").unwrap();
    std::fs::write(outside.join("secret"), "x").unwrap();
    let sigsys = 100 + libc::SIGSYS;
    for (name, expected) in [("read_ro", vec![ALLOWED]), ("write_rw", vec![ALLOWED]), ("thread", vec![ALLOWED])] {
        assert_eq!(vec![probe(name)], expected, "{name}");
    }
    let blocked = [
        "dotdot_from_mount",
        "open_etc_passwd",
        "open_outside",
        "write_ro",
        "connect",
        "fork",
        "execve",
        "ptrace_parent",
        "mount",
        "unshare",
        "setuid_root",
        "kill_init",
        "proc_1_environ",
        "bpf",
        "userfaultfd",
        "io_uring_setup",
        "keyctl",
        "perf_event_open",
    ];
    for name in blocked {
        let code = probe(name);
        println!("{name}: {}", if code == sigsys { "killed by seccomp".to_string() } else { format!("exit {code}") });
        assert!(code == BLOCKED || code == sigsys, "{name} was not blocked (code {code})");
    }
    assert!(!ro.join("new").exists());
    assert!(rw.join("new").exists());
}

#[test]
fn filters_compile_and_name_syscalls() {
    assert!(sandbox::compile_filters().is_ok());
    assert_eq!(sandbox::seccomp::syscall_name(libc::SYS_openat2), Some("openat2"));
}

#[test]
fn a_panicking_child_exits_with_101() {
    // SAFETY: the child only panics (printing a message) and exits.
    let pid = unsafe { sandbox::spawn::spawn(false, || panic!("child panics")) }.unwrap();
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), sandbox::spawn::PANIC_EXIT);
}
