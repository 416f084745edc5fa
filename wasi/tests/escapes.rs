//! Issue #13, first wall: every path call resolves beneath its mount. A guest-made symlink
//! pointing out of a writable mount (a `..` chain or an absolute path) must never let a call
//! touch — or reveal — a host file outside it, while symlinks inside the mount still work.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use wasi::{Errno, WasiCtxBuilder};

const FOLLOW: u64 = 1;
const FST_MTIM: u64 = 4;
/// An mtime no test file has: 2001-09-09.
const MARK_NS: u64 = 1_000_000_000 * 1_000_000_000;

/// A host tree `root/{outside.txt, a/b/c/mount/}`, the mount holding symlinks out of it.
struct Tree {
    root: PathBuf,
    outside: PathBuf,
    mount: PathBuf,
}

fn tree(name: &str) -> Tree {
    let root = temp_dir(name);
    let outside = root.join("outside.txt");
    std::fs::write(&outside, "host secret").unwrap();
    let mount = root.join("a/b/c/mount");
    std::fs::create_dir_all(mount.join("sub")).unwrap();
    std::fs::write(mount.join("sub/target.txt"), "inside").unwrap();
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, mount.join(name)).unwrap();
    link("../../../..", "up"); // the directory holding `outside.txt`
    link("../../../../outside.txt", "rel");
    link(outside.to_str().unwrap(), "abs");
    link("/etc/passwd", "passwd");
    link("/nonexistent-sandboxrun-probe", "ghost");
    link("sub/target.txt", "inner");
    link("sub/../sub/target.txt", "inner_dots");
    Tree { root, outside, mount }
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::symlink_metadata(p).unwrap().modified().unwrap()
}

fn set_mtime(g: &mut Guest, path: &str, lookup: u64) -> u64 {
    g.put(PATH, path.as_bytes());
    g.errno("path_filestat_set_times", &[3, lookup, PATH as u64, path.len() as u64, 0, MARK_NS, FST_MTIM])
}

fn guest(t: &Tree) -> Guest {
    Guest::new(WasiCtxBuilder::new().preopen(&t.mount, "/rw", true))
}

#[test]
fn set_times_following_a_symlink_out_of_the_mount_is_refused() {
    let t = tree("escape-times");
    let before = [mtime(&t.outside), mtime(&t.root)];
    let mut g = guest(&t);
    // (Never `passwd` here: a regression run as root would touch the real /etc/passwd.)
    for path in ["rel", "abs", "up", "up/outside.txt", "ghost"] {
        assert_eq!(set_mtime(&mut g, path, FOLLOW), Errno::Notcapable as u64, "{path}");
    }
    assert_eq!(before, [mtime(&t.outside), mtime(&t.root)]);
}

#[test]
fn errno_does_not_reveal_whether_a_host_path_exists() {
    let t = tree("escape-oracle");
    let mut g = guest(&t);
    // `abs` names an existing host file, `ghost` a missing one: the guest cannot tell.
    for lookup in [0, FOLLOW] {
        g.put(PATH, b"abs");
        let exists = g.errno("path_filestat_get", &[3, lookup, PATH as u64, 3, OUT as u64]);
        g.put(PATH, b"ghost");
        let missing = g.errno("path_filestat_get", &[3, lookup, PATH as u64, 5, OUT as u64]);
        assert_eq!(exists, missing, "lookup flags {lookup}");
    }
    assert_eq!(set_mtime(&mut g, "abs", FOLLOW), set_mtime(&mut g, "ghost", FOLLOW));
}

#[test]
fn symlinks_inside_the_mount_still_work_when_followed() {
    let t = tree("escape-inner");
    let target = t.mount.join("sub/target.txt");
    let link_before = mtime(&t.mount.join("inner"));
    let mut g = guest(&t);
    assert_eq!(set_mtime(&mut g, "inner", FOLLOW), 0);
    assert_eq!(mtime(&target), SystemTime::UNIX_EPOCH + Duration::from_nanos(MARK_NS));
    assert_eq!(mtime(&t.mount.join("inner")), link_before, "the link itself is untouched");
    std::fs::File::open(&target).unwrap().set_modified(SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(set_mtime(&mut g, "inner_dots", FOLLOW), 0);
    assert_eq!(mtime(&target), SystemTime::UNIX_EPOCH + Duration::from_nanos(MARK_NS));
    // Without FOLLOW the link's own times change, wherever it points.
    assert_eq!(set_mtime(&mut g, "abs", 0), 0);
    assert_eq!(mtime(&t.mount.join("abs")), SystemTime::UNIX_EPOCH + Duration::from_nanos(MARK_NS));
    assert_ne!(mtime(&t.outside), SystemTime::UNIX_EPOCH + Duration::from_nanos(MARK_NS));
    // Plain files and directories, and the mount itself.
    assert_eq!(set_mtime(&mut g, "sub", FOLLOW), 0);
    assert_eq!(set_mtime(&mut g, "sub/", FOLLOW), 0);
    assert_eq!(set_mtime(&mut g, ".", FOLLOW), 0);
    assert_eq!(mtime(&t.mount), SystemTime::UNIX_EPOCH + Duration::from_nanos(MARK_NS));
    assert_eq!(set_mtime(&mut g, "missing", FOLLOW), Errno::Noent as u64);
}

#[test]
fn filestat_and_open_follow_only_beneath_the_mount() {
    let t = tree("escape-stat");
    let mut g = guest(&t);
    for path in ["rel", "abs", "passwd", "up/outside.txt"] {
        g.put(PATH, path.as_bytes());
        let e = g.errno("path_filestat_get", &[3, FOLLOW, PATH as u64, path.len() as u64, OUT as u64]);
        assert_eq!(e, Errno::Notcapable as u64, "{path}");
        assert_eq!(g.open(3, path, 0, READ, 0).0, Errno::Notcapable as u64, "{path}");
    }
    g.put(PATH, b"inner");
    assert_eq!(g.errno("path_filestat_get", &[3, FOLLOW, PATH as u64, 5, OUT as u64]), 0);
    assert_eq!(g.u64(OUT + 32), 6, "the target's size");
    assert_eq!(g.errno("path_filestat_get", &[3, 0, PATH as u64, 5, OUT as u64]), 0);
    assert_eq!(g.mem[OUT as usize + 16], 7, "no-follow: a symlink");
}

/// `path_link` with `SYMLINK_FOLLOW` is refused (`EINVAL`, as Wasmtime does): linking the
/// target of a symlink would need `linkat(AT_EMPTY_PATH)` privileges. Without it, the link
/// itself is linked, never its target.
#[test]
fn link_never_follows_out_of_the_mount() {
    let t = tree("escape-link");
    let mut g = guest(&t);
    g.put(PATH, b"abs");
    g.put(PATH + 100, b"hard");
    assert_eq!(g.errno("path_link", &[3, FOLLOW, PATH as u64, 3, 3, PATH as u64 + 100, 4]), Errno::Inval as u64);
    assert!(!t.mount.join("hard").exists() && std::fs::symlink_metadata(t.mount.join("hard")).is_err());
    assert_eq!(g.errno("path_link", &[3, 0, PATH as u64, 3, 3, PATH as u64 + 100, 4]), 0);
    assert!(std::fs::symlink_metadata(t.mount.join("hard")).unwrap().file_type().is_symlink());
    assert_eq!(std::fs::metadata(&t.outside).unwrap().nlink(), 1);
    g.put(PATH, b"up/outside.txt");
    assert_eq!(g.errno("path_link", &[3, 0, PATH as u64, 14, 3, PATH as u64 + 100, 4]), Errno::Notcapable as u64);
}

/// Calls that act on a final component without following it act on the link; a parent
/// reached through a symlink out of the mount is refused.
#[test]
fn no_follow_calls_act_on_the_link_and_refuse_parents_outside() {
    let t = tree("escape-nofollow");
    let mut g = guest(&t);
    g.put(PATH, b"abs");
    assert_eq!(g.errno("path_readlink", &[3, PATH as u64, 3, BUF as u64, 1000, OUT as u64]), 0);
    assert_eq!(&g.mem[BUF as usize..BUF as usize + g.u32(OUT) as usize], t.outside.to_str().unwrap().as_bytes());
    assert_eq!(g.path_op("path_create_directory", 3, "abs"), Errno::Exist as u64);
    g.put(PATH, b"rel");
    g.put(PATH + 100, b"moved");
    assert_eq!(g.errno("path_rename", &[3, PATH as u64, 3, 3, PATH as u64 + 100, 5]), 0);
    assert!(std::fs::symlink_metadata(t.mount.join("moved")).unwrap().file_type().is_symlink());
    assert_eq!(g.path_op("path_unlink_file", 3, "moved"), 0);
    assert_eq!(g.path_op("path_unlink_file", 3, "abs"), 0);
    let absolute = t.outside.to_str().unwrap(); // never a real host file: these calls mutate
    for path in ["up/outside.txt", "up/a", "up/..", "sub/../../x", absolute] {
        assert_eq!(g.path_op("path_unlink_file", 3, path), Errno::Notcapable as u64, "unlink {path}");
        assert_eq!(g.path_op("path_create_directory", 3, path), Errno::Notcapable as u64, "mkdir {path}");
        g.put(PATH, path.as_bytes());
        g.put(PATH + 100, b"sub/x");
        let e = g.errno("path_rename", &[3, PATH as u64, path.len() as u64, 3, PATH as u64 + 100, 5]);
        assert_eq!(e, Errno::Notcapable as u64, "rename {path}");
        let e = g.errno("path_symlink", &[PATH as u64 + 100, 5, 3, PATH as u64, path.len() as u64]);
        assert_eq!(e, Errno::Notcapable as u64, "symlink {path}");
        let e = g.errno("path_readlink", &[3, PATH as u64, path.len() as u64, BUF as u64, 100, OUT as u64]);
        assert_eq!(e, Errno::Notcapable as u64, "readlink {path}");
    }
    assert!(t.outside.exists() && t.root.join("a").is_dir());
    assert_eq!(std::fs::read(&t.outside).unwrap(), b"host secret");
}

/// The test seam turns the first wall off: paths then resolve as a naive implementation's
/// would, so the same attacks reach the host (here, a file of the test's own). The
/// second-wall test runs these with each mount its own detached mount, where they must fail.
#[test]
fn the_test_seam_turns_beneath_resolution_off() {
    let t = tree("escape-seam");
    let mut g =
        Guest::new(WasiCtxBuilder::new().preopen(&t.mount, "/rw", true).insecure_unchecked_paths_for_testing(true));
    assert_eq!(set_mtime(&mut g, "rel", FOLLOW), 0);
    assert_eq!(mtime(&t.outside), SystemTime::UNIX_EPOCH + Duration::from_nanos(MARK_NS));
    let (e, fd) = g.open(3, "../../../../outside.txt", 0, READ, 0);
    assert_eq!(e, 0);
    assert_eq!(g.read(fd, 100).1, b"host secret");
    assert_eq!(g.open(3, t.outside.to_str().unwrap(), 0, READ, 0).0, 0, "absolute paths too");
    assert_eq!(g.path_op("path_create_directory", 3, "up/made-by-guest"), 0);
    assert!(t.root.join("made-by-guest").is_dir());
    // Off by default, and `false` keeps it off.
    let mut g =
        Guest::new(WasiCtxBuilder::new().preopen(&t.mount, "/rw", true).insecure_unchecked_paths_for_testing(false));
    assert_eq!(g.open(3, "../../../../outside.txt", 0, READ, 0).0, Errno::Notcapable as u64);
}
