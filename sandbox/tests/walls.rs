//! The second wall on its own: a run's directory reached through a detached mount of its own
//! (`sandbox::mounts::detach`) keeps every raw system call inside it — `..` chains, relative
//! symlinks climbing out, absolute symlinks — with no WASI layer, no landlock and no seccomp
//! in the way (the child only takes its namespaces, the empty root and drops its privileges:
//! `sandbox::prepare`). Writes through a read-only mount fail with EROFS from the kernel.
//!
//! Run as root (as CI does), it checks root's path, then runs itself again as uid 65534
//! (`setpriv`), where the test process first takes a user and mount namespace of its own
//! (`sandbox::mounts::own_mount_namespace`), as an unprivileged supervisor does.

mod common;

use common::{c, cvt, Checks};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The layout: `base/outside/{secret,link}` must stay untouched; `base/rw` and `base/ro` are
/// mounted, each holding `file`, `up -> ..`, `up2 -> ../..` and `abs -> base/outside`.
struct Layout {
    base: PathBuf,
    outside: PathBuf,
}

impl Layout {
    fn create(tag: &str) -> Layout {
        let base = std::env::temp_dir().join(format!("sandbox-walls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let outside = base.join("outside");
        for dir in [&base, &outside, &base.join("rw"), &base.join("ro")] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        std::fs::write(outside.join("secret"), "secret").unwrap();
        std::fs::set_permissions(outside.join("secret"), std::fs::Permissions::from_mode(0o666)).unwrap();
        std::os::unix::fs::symlink("secret", outside.join("link")).unwrap();
        for m in ["rw", "ro"] {
            let dir = base.join(m);
            std::fs::write(dir.join("file"), "inside").unwrap();
            std::fs::set_permissions(dir.join("file"), std::fs::Permissions::from_mode(0o666)).unwrap();
            std::os::unix::fs::symlink("..", dir.join("up")).unwrap();
            std::os::unix::fs::symlink("../..", dir.join("up2")).unwrap();
            std::os::unix::fs::symlink(&outside, dir.join("abs")).unwrap();
        }
        Layout { base, outside }
    }

    /// What must not change: the secret's contents, mode, owner, mtime and ctime (any change of
    /// its inode: times, mode, owner, links); nothing new beside it. (Not atime: reading the
    /// contents here moves it.)
    fn fingerprint(&self) -> String {
        let m = std::fs::metadata(self.outside.join("secret")).unwrap();
        let mut names: Vec<_> =
            std::fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        format!(
            "{} {:o} {}:{} {}.{} {}.{} {names:?}",
            std::fs::read_to_string(self.outside.join("secret")).unwrap(),
            m.mode(),
            m.uid(),
            m.gid(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        )
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The paths by which a call might leave a mount: `..` chains, a relative symlink climbing out
/// (to the mount's parent and beyond), an absolute symlink.
const ESCAPES: &[&str] = &[
    "../outside/secret",
    "../../outside/secret",
    "../../../../../../../../../../../..",
    "up/outside/secret",
    "up2/outside/secret",
    "abs/secret",
    "up/outside/link",
    "abs/link",
];

fn mode_of(dir: RawFd, path: &CString) -> Result<u32, i32> {
    // SAFETY: all-zero is a valid stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor, NUL-terminated path and out-pointer.
    cvt(unsafe { libc::fstatat(dir, path.as_ptr(), &mut st, 0) }).map(|_| st.st_ino as u32)
}

fn expect_fail(failures: &mut Vec<String>, name: &str, r: Result<i64, i32>) {
    if let Ok(v) = r {
        failures.push(format!("{name}: succeeded ({v})"));
    }
}

/// In the prepared child: every call through every escape path fails, `..` at a mount's root
/// is that root, and writes on the read-only mount fail with EROFS. Returns the failures.
fn attempts(rw: &OwnedFd, ro: &OwnedFd) -> Vec<String> {
    let mut failures = Vec::new();
    let times = [libc::timespec { tv_sec: 1, tv_nsec: 0 }, libc::timespec { tv_sec: 1, tv_nsec: 0 }];
    for (label, dir) in [("rw", rw.as_raw_fd()), ("ro", ro.as_raw_fd())] {
        for escape in ESCAPES {
            let p = c(escape);
            let name = |call: &str| format!("{call}({label}, {escape})");
            // SAFETY: every call below gets a valid descriptor, NUL-terminated paths and
            // valid buffers of the sizes passed, and only reads or writes those.
            unsafe {
                let fd = libc::openat(dir, p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    // The `..` chain lands on the mount's root itself: allowed, it is inside.
                    let mut here: libc::stat = std::mem::zeroed();
                    let mut root: libc::stat = std::mem::zeroed();
                    libc::fstat(fd, &mut here);
                    libc::fstat(dir, &mut root);
                    if here.st_ino != root.st_ino {
                        failures.push(format!("{}: opened something outside", name("openat")));
                    }
                    libc::close(fd);
                }
                let regular = escape.ends_with("secret") || escape.ends_with("link");
                if !regular {
                    continue;
                }
                expect_fail(
                    &mut failures,
                    &name("utimensat"),
                    cvt(libc::utimensat(dir, p.as_ptr(), times.as_ptr(), 0)),
                );
                expect_fail(
                    &mut failures,
                    &name("utimensat nofollow"),
                    cvt(libc::utimensat(dir, p.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW)),
                );
                expect_fail(&mut failures, &name("fstatat"), mode_of(dir, &p).map(i64::from));
                let mut stx: libc::statx = std::mem::zeroed();
                expect_fail(
                    &mut failures,
                    &name("statx"),
                    cvt(libc::statx(dir, p.as_ptr(), 0, libc::STATX_BASIC_STATS, &mut stx)),
                );
                expect_fail(&mut failures, &name("fchmodat"), cvt(libc::fchmodat(dir, p.as_ptr(), 0o777, 0)));
                expect_fail(
                    &mut failures,
                    &name("fchownat"),
                    cvt(libc::fchownat(dir, p.as_ptr(), u32::MAX, u32::MAX, 0)),
                );
                let stolen = c("stolen");
                expect_fail(
                    &mut failures,
                    &name("linkat"),
                    cvt(libc::linkat(dir, p.as_ptr(), dir, stolen.as_ptr(), 0)),
                );
                expect_fail(
                    &mut failures,
                    &name("linkat follow"),
                    cvt(libc::linkat(dir, p.as_ptr(), dir, stolen.as_ptr(), libc::AT_SYMLINK_FOLLOW)),
                );
                expect_fail(
                    &mut failures,
                    &name("renameat"),
                    cvt(libc::renameat(dir, p.as_ptr(), dir, stolen.as_ptr())),
                );
                expect_fail(
                    &mut failures,
                    &name("renameat into"),
                    cvt(libc::renameat(dir, c("file").as_ptr(), dir, p.as_ptr())),
                );
                let mut buf = [0u8; 256];
                expect_fail(
                    &mut failures,
                    &name("readlinkat"),
                    cvt(libc::readlinkat(dir, p.as_ptr(), buf.as_mut_ptr().cast(), buf.len())),
                );
                let fifo = c(&escape.replace("secret", "fifo").replace("link", "fifo"));
                expect_fail(
                    &mut failures,
                    &name("mknodat"),
                    cvt(libc::mknodat(dir, fifo.as_ptr(), libc::S_IFIFO | 0o666, 0)),
                );
                expect_fail(&mut failures, &name("unlinkat"), cvt(libc::unlinkat(dir, p.as_ptr(), 0)));
                // Path-based calls with no *at form: from inside the mount, by a relative path.
                if libc::fchdir(dir) == 0 {
                    let key = c("user.sandbox");
                    let mut value = [0u8; 16];
                    let got = libc::getxattr(p.as_ptr(), key.as_ptr(), value.as_mut_ptr().cast(), value.len());
                    // ENODATA means the call reached the file.
                    if got >= 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::ENODATA) {
                        failures.push(format!("{}: reached the file", name("getxattr")));
                    }
                    expect_fail(
                        &mut failures,
                        &name("setxattr"),
                        cvt(libc::setxattr(p.as_ptr(), key.as_ptr(), b"x".as_ptr().cast(), 1, 0)),
                    );
                    expect_fail(&mut failures, &name("truncate"), cvt(libc::truncate(p.as_ptr(), 0)));
                }
            }
        }
        // `..` at the root is the root.
        match (mode_of(dir, &c("..")), mode_of(dir, &c("."))) {
            (Ok(up), Ok(here)) if up == here => {}
            other => failures.push(format!("fstatat({label}, ..) is not the mount's root: {other:?}")),
        }
    }
    // Inside works: the failures above are the wall's, not blanket refusals.
    // SAFETY: valid descriptors and paths.
    unsafe {
        let fd = libc::openat(rw.as_raw_fd(), c("up/file").as_ptr(), libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC);
        if fd < 0 {
            failures.push(format!("openat(rw, up/file) for writing failed: {}", std::io::Error::last_os_error()));
        } else {
            libc::close(fd);
        }
        let r = cvt(libc::openat(ro.as_raw_fd(), c("file").as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC));
        if r.is_err() {
            failures.push(format!("openat(ro, file) failed: {r:?}"));
        }
        // The kernel keeps the read-only mount read-only.
        let erofs = |name: &str, r: Result<i64, i32>, failures: &mut Vec<String>| {
            if r != Err(libc::EROFS) {
                failures.push(format!("{name} on the ro mount: {r:?}, expected EROFS"));
            }
        };
        let ro = ro.as_raw_fd();
        erofs(
            "openat(O_CREAT)",
            cvt(libc::openat(ro, c("new").as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644)),
            &mut failures,
        );
        erofs("openat(file, O_WRONLY)", cvt(libc::openat(ro, c("file").as_ptr(), libc::O_WRONLY)), &mut failures);
        erofs("mkdirat", cvt(libc::mkdirat(ro, c("d").as_ptr(), 0o755)), &mut failures);
        erofs("utimensat", cvt(libc::utimensat(ro, c("file").as_ptr(), times.as_ptr(), 0)), &mut failures);
        erofs("fchmodat", cvt(libc::fchmodat(ro, c("file").as_ptr(), 0o600, 0)), &mut failures);
        erofs("unlinkat", cvt(libc::unlinkat(ro, c("file").as_ptr(), 0)), &mut failures);
        erofs("symlinkat", cvt(libc::symlinkat(c("x").as_ptr(), ro, c("l").as_ptr())), &mut failures);
    }
    failures
}

/// Detaches the two mounts, spawns a prepared child that makes the attempts; checks the
/// outside is untouched and the mounts' options.
fn check_walls(checks: &mut Checks, who: &str) {
    let layout = Layout::create(who);
    let before = layout.fingerprint();
    let open = |name: &str| OwnedFd::from(std::fs::File::open(layout.base.join(name)).unwrap());
    let (rw_dir, ro_dir) = (open("rw"), open("ro"));
    let rw = sandbox::mounts::detach(std::os::fd::AsFd::as_fd(&rw_dir), sandbox::Writable::Yes, None);
    let ro = sandbox::mounts::detach(std::os::fd::AsFd::as_fd(&ro_dir), sandbox::Writable::No, None);
    let (rw, ro) = match (rw, ro) {
        (Ok(rw), Ok(ro)) => (rw, ro),
        (rw, ro) => {
            checks.check(&format!("{who}: detach"), false, format!("{:?} {:?}", rw.err(), ro.err()));
            return;
        }
    };
    let flags = |fd: &OwnedFd| sandbox::mounts::mount_flags(std::os::fd::AsFd::as_fd(fd)).unwrap_or(0);
    let (rwf, rof) = (flags(&rw), flags(&ro));
    let want = libc::ST_NOSUID | libc::ST_NODEV | libc::ST_NOEXEC;
    checks.check(
        &format!("{who}: rw mount is nosuid,nodev,noexec, writable"),
        rwf & want == want && rwf & libc::ST_RDONLY == 0,
        format!("{rwf:#x}"),
    );
    checks.check(
        &format!("{who}: ro mount is nosuid,nodev,noexec,ro"),
        rof & (want | libc::ST_RDONLY) == want | libc::ST_RDONLY,
        format!("{rof:#x}"),
    );
    let confinement = sandbox::Confinement::default();
    // SAFETY: this test binary has no other thread (no libtest harness).
    let child = unsafe {
        sandbox::spawn(&confinement, None, || {
            if let Err(e) = sandbox::prepare(&confinement) {
                eprintln!("child: {e}");
                return common::CONFINE_FAILED;
            }
            let failures = attempts(&rw, &ro);
            for f in &failures {
                println!("     {f}");
            }
            i32::from(!failures.is_empty())
        })
    };
    let ended = child.expect("spawn").wait().expect("wait");
    checks.check(
        &format!("{who}: no raw call leaves a detached mount"),
        matches!(ended, sandbox::Termination::Exited(0)),
        format!("{ended:?}"),
    );
    let after = layout.fingerprint();
    checks.check(&format!("{who}: the outside is untouched"), before == after, format!("{before} -> {after}"));
    let _ = Path::new(&layout.base);
}

fn main() {
    let unprivileged = std::env::args().any(|a| a == "--unprivileged");
    let mut checks = Checks::new(if unprivileged { "the second wall (as uid 65534)" } else { "the second wall" });
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if let Err(e) = sandbox::mounts::own_mount_namespace() {
            checks.check("a mount namespace of its own", false, e);
            checks.finish();
        }
    }
    check_walls(&mut checks, if root { "root" } else { "unprivileged" });
    if root && !unprivileged {
        // The unprivileged path, from the same binary.
        let me = std::env::current_exe().unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&me)
            .arg("--unprivileged")
            .output();
        match out {
            Ok(o) => {
                print!("{}", String::from_utf8_lossy(&o.stdout));
                checks.check(
                    "as uid 65534 (setpriv)",
                    o.status.success(),
                    String::from_utf8_lossy(&o.stderr).trim().to_string(),
                );
            }
            Err(e) => checks.check("as uid 65534 (setpriv)", false, format!("cannot run setpriv: {e}")),
        }
    }
    checks.finish();
}
