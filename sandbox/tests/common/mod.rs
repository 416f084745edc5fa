//! Shared helpers of the confinement tests. Each test binary is a plain `main` (no libtest
//! harness, so no other thread exists when it forks): it runs every attempt in its own forked,
//! confined child — seccomp kills a process at its first denied call — and prints one line per
//! check. A feature missing on the machine is printed with the reason, never skipped silently.

#![allow(dead_code)] // each test binary uses a different part

use sandbox::{Confinement, PathRule, Termination};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Exit status of a child whose confinement failed (it prints why on stderr).
pub const CONFINE_FAILED: i32 = 121;

/// The results of one test binary.
pub struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    /// Starts a test binary's report.
    pub fn new(title: &str) -> Checks {
        println!("\n== {title}");
        Checks { failures: Vec::new(), count: 0 }
    }

    /// Records one check.
    pub fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        self.count += 1;
        println!("{} {name}: {detail}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.failures.push(format!("{name}: {detail}"));
        }
    }

    /// Prints a fact about the machine or a reason something could not be checked.
    pub fn note(&self, message: impl std::fmt::Display) {
        println!("note {message}");
    }

    /// Exits: 0 if every check passed.
    pub fn finish(self) -> ! {
        println!("{} checks, {} failed", self.count, self.failures.len());
        for f in &self.failures {
            println!("  failed: {f}");
        }
        std::process::exit(if self.failures.is_empty() { 0 } else { 1 })
    }
}

/// What an attempt is expected to end in.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// It succeeded (exit 0).
    Works,
    /// It failed with one of these errnos.
    Errno(&'static [i32]),
    /// Seccomp killed the process (SIGSYS) on this system call, named by the reporter.
    Seccomp(&'static str),
    /// Seccomp killed the process on this system call number (one the lists do not name).
    SeccompNumber(i64),
    /// Seccomp killed the process without a recorded number (arch mismatch, the kill list).
    SeccompUnnamed,
    /// This signal killed it.
    Signal(i32),
    /// Any of these (where the machine decides, e.g. a kernel without i386 emulation).
    OneOf(&'static [Expect]),
}

fn matches(expect: Expect, got: Termination) -> bool {
    match (expect, got) {
        (Expect::Works, Termination::Exited(0)) => true,
        (Expect::Errno(errnos), Termination::Exited(code)) => errnos.contains(&code),
        (Expect::Seccomp(syscall), Termination::Seccomp(Some(v))) => v.name() == Some(syscall),
        (Expect::SeccompNumber(nr), Termination::Seccomp(Some(v))) => v.nr == nr && v.name().is_none(),
        (Expect::SeccompUnnamed, Termination::Seccomp(None)) => true,
        (Expect::Signal(s), Termination::Signaled(got)) => s == got,
        (Expect::OneOf(any), got) => any.iter().any(|e| matches(*e, got)),
        _ => false,
    }
}

/// Checks a termination against what was expected.
pub fn judge(checks: &mut Checks, name: &str, expect: Expect, got: Termination) {
    checks.check(name, matches(expect, got), format!("expected {expect:?}, got {}", describe(got)));
}

/// A termination in words.
pub fn describe(t: Termination) -> String {
    match t {
        Termination::Exited(0) => "succeeded".into(),
        Termination::Exited(CONFINE_FAILED) => "confinement failed (see stderr)".into(),
        Termination::Exited(sandbox::spawn::PANIC_EXIT) => "exited 101 (panicked)".into(),
        Termination::Exited(code) => format!("failed with {}", std::io::Error::from_raw_os_error(code)),
        Termination::Signaled(s) => format!("killed by signal {s}"),
        Termination::Seccomp(Some(v)) => format!("killed by seccomp on {v}"),
        Termination::Seccomp(None) => "killed by SIGSYS (no number recorded)".into(),
    }
}

/// The directories a probe child may use, and one it may not.
pub struct Dirs {
    /// Everything below is removed at the end.
    pub base: PathBuf,
    /// Read-only for the child; holds `file`.
    pub ro: PathBuf,
    /// Read-write for the child; holds `file`.
    pub rw: PathBuf,
    /// Not allowed; holds `secret` (world-readable: only confinement keeps the child out).
    pub outside: PathBuf,
    /// A single read-only file outside the directories (like the code cache database).
    pub ro_file: PathBuf,
}

impl Dirs {
    /// Creates the directories; permissions let any uid in (confinement, not DAC, must stop it).
    pub fn create(name: &str) -> Dirs {
        use std::os::unix::fs::PermissionsExt;
        let base = std::env::temp_dir().join(format!("sandbox-{name}-{}", std::process::id()));
        let dirs = Dirs {
            ro: base.join("ro"),
            rw: base.join("rw"),
            outside: base.join("outside"),
            ro_file: base.join("cache.db"),
            base,
        };
        for (dir, mode) in [(&dirs.base, 0o755), (&dirs.ro, 0o777), (&dirs.rw, 0o777), (&dirs.outside, 0o777)] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        for file in [dirs.ro.join("file"), dirs.rw.join("file"), dirs.outside.join("secret"), dirs.ro_file.clone()] {
            std::fs::write(&file, "data").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        dirs
    }

    /// The confinement of a probe child: everything on, these paths allowed.
    pub fn confinement(&self) -> Confinement {
        Confinement {
            paths: vec![
                PathRule::read_only(&self.ro),
                PathRule::read_write(&self.rw),
                PathRule::read_only(&self.ro_file),
            ],
            ..Confinement::default()
        }
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Descriptors a child opened before confinement.
pub struct Fds {
    /// The read-only directory.
    pub ro: OwnedFd,
    /// The read-write directory.
    pub rw: OwnedFd,
    /// The read-only file.
    pub ro_file: OwnedFd,
}

impl Fds {
    fn open(dirs: &Dirs) -> std::io::Result<Fds> {
        let open = |p: &Path| std::fs::File::open(p).map(OwnedFd::from);
        Ok(Fds { ro: open(&dirs.ro)?, rw: open(&dirs.rw)?, ro_file: open(&dirs.ro_file)? })
    }
}

/// An attempt: `Ok` if the operation succeeded, `Err(errno)` if it failed.
pub type Attempt = fn(&Fds) -> Result<(), i32>;

/// Spawns a child in new namespaces that opens the directories, confines itself with `c` and
/// `filter`, and makes the attempt; returns how it ended.
pub fn run_confined(c: &Confinement, filter: &sandbox::Filter, dirs: &Dirs, attempt: Attempt) -> Termination {
    // SAFETY: test binaries are single-threaded (no libtest harness).
    let child = unsafe {
        sandbox::spawn(c, None, || {
            let fds = match Fds::open(dirs) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("child: opening the test directories: {e}");
                    return CONFINE_FAILED;
                }
            };
            if let Err(e) = sandbox::confine_with(c, filter) {
                eprintln!("child: {e}");
                return CONFINE_FAILED;
            }
            match attempt(&fds) {
                Ok(()) => 0,
                Err(errno) => errno,
            }
        })
    }
    .expect("spawn");
    child.wait().expect("wait")
}

/// A system call's return value.
pub trait Ret {
    /// As an `i64`.
    fn wide(self) -> i64;
}

impl Ret for i32 {
    fn wide(self) -> i64 {
        self.into()
    }
}

impl Ret for i64 {
    fn wide(self) -> i64 {
        self
    }
}

impl Ret for isize {
    fn wide(self) -> i64 {
        self as i64
    }
}

/// `-1` → the errno.
pub fn cvt(r: impl Ret) -> Result<i64, i32> {
    let r = r.wide();
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// A C string.
pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// `openat(dir, path, flags, 0o644)`.
pub fn openat(dir: &OwnedFd, path: &str, flags: i32) -> Result<RawFd, i32> {
    // SAFETY: valid descriptor and NUL-terminated path.
    cvt(unsafe { libc::openat(dir.as_raw_fd(), c(path).as_ptr(), flags | libc::O_CLOEXEC, 0o644) })
        .map(|fd| fd as RawFd)
}

/// Facts about the machine the tests depend on.
pub fn machine_facts(checks: &Checks) {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_else(|e| format!("({e})"));
    // SAFETY: uname fills the zeroed struct with NUL-terminated fields.
    let u = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        libc::uname(&mut u);
        u
    };
    let field = |f: &[libc::c_char]| f.iter().take_while(|c| **c != 0).map(|c| *c as u8 as char).collect::<String>();
    checks.note(format!(
        "kernel: {} {} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.version),
        field(&u.machine)
    ));
    checks.note(format!("uid {} (tests expect the same results as root or not)", nix::unistd::geteuid()));
    checks.note(format!("kernel.unprivileged_userns_clone: {}", read("/proc/sys/kernel/unprivileged_userns_clone")));
    checks.note(format!("user.max_user_namespaces: {}", read("/proc/sys/user/max_user_namespaces")));
    checks.note(format!("/sys/kernel/security/lsm: {}", read("/sys/kernel/security/lsm")));
    checks.note(format!(
        "landlock ABI: {}",
        match landlock_abi() {
            Some(v) => v.to_string(),
            None => "unsupported".into(),
        }
    ));
}

/// The kernel's landlock ABI version.
pub fn landlock_abi() -> Option<u32> {
    // SAFETY: with a null attribute and size 0 the call only reports the version.
    let r = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32) };
    (r > 0).then_some(r as u32)
}
