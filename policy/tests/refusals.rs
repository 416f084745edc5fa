//! Mounts a policy refuses whatever the file or the command line says: the kernel's interfaces
//! (`/proc`, `/sys`, `/dev` and anything beneath them, by the path as written) and `/`
//! read-write. Symlinks are the runner's to resolve and refuse.

use policy::{Mode, Policy, PolicyError};
use std::path::PathBuf;

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandboxrun-policy-refusals-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The one-line error of `--dir spec`.
fn cli_refusal(spec: &str) -> String {
    let err = Policy::default_policy().add_cli_mount(spec, &dir("cli")).expect_err(spec).to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with(&format!("--dir {spec}: ")), "{err}");
    err
}

#[test]
fn kernel_interfaces_are_refused_from_the_command_line() {
    for (spec, kernel) in [
        ("/proc::/p", "/proc"),
        ("/proc/self::/p", "/proc"),
        ("/sys::/s:ro", "/sys"),
        ("/sys/fs/cgroup::/c", "/sys"),
        ("/dev::/d", "/dev"),
        ("/dev/shm::/d:rw", "/dev"),
    ] {
        if !std::path::Path::new(spec.split("::").next().unwrap()).is_dir() {
            continue; // not on this host (e.g. no /dev/shm)
        }
        let err = cli_refusal(spec);
        assert!(err.contains(&format!("is {kernel} or beneath it: kernel interfaces cannot be mounted")), "{err}");
    }
}

/// The policy checks paths as written (`..` folded), never where symlinks lead: it does no
/// I/O. A symlink to a kernel interface passes here and is refused by the runner when it opens
/// the directory (`tests/host.rs`, `tests/trust.rs`).
#[test]
fn paths_are_checked_as_written_and_symlinks_left_to_the_runner() {
    let d = dir("symlinks");
    std::os::unix::fs::symlink("/sys", d.join("innocent")).unwrap();
    let mut p = Policy::default_policy();
    p.add_cli_mount("innocent::/x", &d).unwrap();
    assert_eq!(p.mounts[0].host, d.join("innocent"), "kept as written, not resolved");
    let err = Policy::default_policy().add_cli_mount("/tmp/../proc/1::/x", &d).unwrap_err().to_string();
    assert!(err.contains("is /proc or beneath it"), "{err}");
    let err =
        Policy::parse("version: 1\nmounts:\n  - {host: ../../../../../../sys, guest: /x}\n", &d, "p.yaml").unwrap_err();
    assert!(matches!(err, PolicyError::At { line: 3, .. }), "{err}");
    assert!(err.to_string().contains("is /sys or beneath it"), "{err}");
}

#[test]
fn root_only_read_only() {
    let err = cli_refusal("/::/host:rw");
    assert!(err.ends_with("'/' can only be mounted read-only (mode: ro)"), "{err}");
    let d = dir("root");
    let err = Policy::default_policy().add_cli_mount("/tmp/..::/h:rw", &d).unwrap_err().to_string();
    assert!(err.contains("read-only"), "{err}");
    let err = Policy::parse("version: 1\nmounts:\n  - {host: /, guest: /h, mode: rw}\n", &d, "p.yaml").unwrap_err();
    assert!(err.to_string().starts_with("p.yaml:3:"), "{err}");
    let mut p = Policy::default_policy();
    p.add_cli_mount("/::/host", &d).unwrap();
    assert_eq!(p.mounts[0].mode, Mode::Ro);
    // Names that only start like a kernel directory are ordinary.
    std::fs::create_dir_all(d.join("proc")).unwrap();
    std::fs::create_dir_all(d.join("sysroot")).unwrap();
    p.add_cli_mount("proc::/a", &d).unwrap();
    p.add_cli_mount("sysroot::/b:rw", &d).unwrap();
}
