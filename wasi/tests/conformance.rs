//! Issue #14: preview1 as the standard says, and as `wasmtime run` does where it is silent.
//! Where a case follows Wasmtime, the comment names the source it was read from (Wasmtime
//! `crates/wasi/src/p1.rs` and `filesystem.rs`, cap-std `cap-primitives/src/fs`): no
//! `wasmtime` binary ran side by side.

mod common;

use common::*;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};
use wasi::{open_stdin, Errno, Output, Stdin, WasiCtxBuilder};

const DIRECTORY: u64 = 2;
const EXCL: u64 = 4;
const FDFLAGS_APPEND: u64 = 1;
const FDFLAGS_DSYNC: u64 = 2;
const FDFLAGS_NONBLOCK: u64 = 4;
const FDFLAGS_RSYNC: u64 = 8;
const FDFLAGS_SYNC: u64 = 16;
const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
const PATH_OPEN: u64 = 1 << 13;
const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;

fn rw_guest(name: &str) -> (std::path::PathBuf, Guest) {
    let dir = temp_dir(name);
    let g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/rw", true).output(Output::Capture, Output::Capture));
    (dir, g)
}

fn set_rights(g: &mut Guest, fd: u32, base: u64, inheriting: u64) -> u64 {
    g.errno("fd_fdstat_set_rights", &[fd as u64, base, inheriting])
}

fn two_paths(g: &mut Guest, name: &str, old: &str, new: &str) -> u64 {
    g.put(PATH, old.as_bytes());
    g.put(PATH + 100, new.as_bytes());
    let (o, n) = (PATH as u64, PATH as u64 + 100);
    match name {
        "path_rename" => g.errno(name, &[3, o, old.len() as u64, 3, n, new.len() as u64]),
        "path_link" => g.errno(name, &[3, 0, o, old.len() as u64, 3, n, new.len() as u64]),
        "path_symlink" => g.errno(name, &[o, old.len() as u64, 3, n, new.len() as u64]),
        _ => unreachable!("{name}"),
    }
}

#[test]
fn create_exclusive_on_an_existing_file_is_eexist_and_truncates_nothing() {
    let (dir, mut g) = rw_guest("conf-excl");
    std::fs::write(dir.join("f"), "keep me").unwrap();
    for oflags in [CREAT | EXCL, CREAT | EXCL | TRUNC] {
        assert_eq!(g.open(3, "f", oflags, READ | WRITE, 0).0, Errno::Exist as u64, "oflags {oflags}");
    }
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"keep me");
    assert_eq!(g.ctx.usage().files_created, 0, "nothing was created");
    assert_eq!(g.open(3, "new", CREAT | EXCL, READ | WRITE, 0).0, 0);
    assert_eq!(g.ctx.usage().files_created, 1);
}

#[test]
fn rights_are_checked_and_only_ever_reduced() {
    let (dir, mut g) = rw_guest("conf-rights");
    std::fs::write(dir.join("f"), "0123456789").unwrap();
    let (e, fd) = g.open(3, "f", 0, READ | WRITE, 0);
    assert_eq!(e, 0);
    let (_, _, base, inheriting) = g.fdstat(fd);
    assert_eq!(g.read(fd, 2), (0, b"01".to_vec()));
    assert_eq!(set_rights(&mut g, fd, base & !READ, inheriting), 0);
    assert_eq!(g.read(fd, 2).0, Errno::Notcapable as u64, "FD_READ dropped");
    assert_eq!(g.fdstat(fd).2 & READ, 0);
    assert_eq!(set_rights(&mut g, fd, base, inheriting), Errno::Notcapable as u64, "rights cannot come back");
    assert_eq!(g.write(fd, b"x").unwrap(), (0, 1), "FD_WRITE kept");

    // Seeking needs FD_SEEK; asking the offset only FD_TELL.
    let (e, fd) = g.open_exact(3, "f", 0, READ | TELL, 0, 0);
    assert_eq!(e, 0);
    assert_eq!(g.errno("fd_seek", &[fd as u64, 3, 0, OUT as u64]), Errno::Notcapable as u64);
    assert_eq!(g.errno("fd_seek", &[fd as u64, 0, 1, OUT as u64]), 0, "SEEK_CUR 0 is fd_tell");
    assert_eq!(g.errno("fd_tell", &[fd as u64, OUT as u64]), 0);
    assert_eq!(g.errno("fd_filestat_get", &[fd as u64, OUT as u64]), Errno::Notcapable as u64);
    assert_eq!(g.write(fd, b"x").unwrap().0, Errno::Notcapable as u64);

    // A directory without PATH_FILESTAT_SET_SIZE cannot truncate; without PATH_OPEN, open.
    let (_, _, dbase, dinheriting) = g.fdstat(3);
    assert_eq!(set_rights(&mut g, 3, dbase & !PATH_FILESTAT_SET_SIZE, dinheriting), 0);
    assert_eq!(g.open(3, "f", TRUNC, READ | WRITE, 0).0, Errno::Notcapable as u64);
    assert_eq!(std::fs::metadata(dir.join("f")).unwrap().len(), 10, "not truncated");
    assert_eq!(g.open(3, "f", 0, READ | WRITE, 0).0, 0);
    // Inheriting rights bound what a new descriptor gets.
    assert_eq!(set_rights(&mut g, 3, dbase & !PATH_FILESTAT_SET_SIZE, dinheriting & !WRITE), 0);
    let (e, fd) = g.open(3, "f", 0, READ | WRITE, 0);
    assert_eq!(e, 0);
    assert_eq!(g.fdstat(fd).2 & WRITE, 0, "FD_WRITE not inheritable any more");
    assert_eq!(g.write(fd, b"x").unwrap().0, Errno::Notcapable as u64);
    assert_eq!(set_rights(&mut g, 3, dbase & !PATH_FILESTAT_SET_SIZE & !PATH_OPEN, 0), 0);
    assert_eq!(g.open(3, "f", 0, READ, 0).0, Errno::Notcapable as u64);
    assert_eq!(set_rights(&mut g, 3, dbase, dinheriting), Errno::Notcapable as u64);
}

#[test]
fn directories_have_no_seek_right_and_open_read_only_whatever_is_asked() {
    let dir = temp_dir("conf-dirs");
    std::fs::create_dir(dir.join("sub")).unwrap();
    for writable in [true, false] {
        let mut g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/d", writable));
        let (e, _, base, inheriting) = g.fdstat(3);
        assert_eq!(e, 0);
        assert_eq!(base & (SEEK | TELL | WRITE), 0, "a directory cannot seek or write");
        assert_eq!(inheriting, ALL_RIGHTS);
        // path_open(".") with the preopen's own rights, either set as the base.
        for asked in [base, inheriting] {
            let (e, fd) = g.open_exact(3, ".", 0, asked, inheriting, 0);
            assert_eq!(e, 0, "writable {writable}, rights {asked:#x}");
            let (_, _, new_base, _) = g.fdstat(fd);
            assert_eq!(new_base & (SEEK | WRITE), 0, "rights that do not apply are dropped");
            assert_ne!(new_base & PATH_OPEN, 0);
            g.errno("fd_close", &[fd as u64]);
        }
        // Explicitly a directory, asked read/write: still opened (Wasmtime: EISDIR).
        assert_eq!(g.open_exact(3, "sub", DIRECTORY, READ | WRITE, 0, 0).0, 0);
        assert_eq!(g.open_exact(3, "sub/", 0, ALL_RIGHTS, ALL_RIGHTS, 0).0, 0);
        assert_eq!(g.open_exact(3, "sub", DIRECTORY | TRUNC, READ, 0, 0).0, Errno::Inval as u64);
    }
}

#[test]
fn sync_fdflags_are_kept_and_reported() {
    let (dir, mut g) = rw_guest("conf-sync");
    for flags in [FDFLAGS_SYNC, FDFLAGS_DSYNC, FDFLAGS_RSYNC, FDFLAGS_SYNC | FDFLAGS_RSYNC | FDFLAGS_APPEND] {
        let (e, fd) = g.open(3, "f", CREAT, READ | WRITE, flags);
        assert_eq!(e, 0);
        assert_eq!(u64::from(g.fdstat(fd).1), flags, "fdflags {flags}");
        // Changing other flags with the same sync flags works; dropping them does not.
        assert_eq!(g.errno("fd_fdstat_set_flags", &[fd as u64, (flags & !FDFLAGS_APPEND) | FDFLAGS_NONBLOCK]), 0);
        assert_eq!(u64::from(g.fdstat(fd).1), (flags & !FDFLAGS_APPEND) | FDFLAGS_NONBLOCK);
        assert_eq!(g.errno("fd_fdstat_set_flags", &[fd as u64, 0]), Errno::Inval as u64);
    }
    let (_, fd) = g.open(3, "f", 0, READ | WRITE, FDFLAGS_SYNC);
    assert_eq!(g.write(fd, b"synced").unwrap(), (0, 6));
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"synced");
}

#[test]
fn symlinks_to_absolute_paths_are_refused_with_eperm() {
    let (dir, mut g) = rw_guest("conf-symlink-abs");
    // Wasmtime: cap-std's `symlink` returns an escape attempt (PermissionDenied -> EPERM).
    assert_eq!(two_paths(&mut g, "path_symlink", "/etc/passwd", "l"), Errno::Perm as u64);
    assert_eq!(two_paths(&mut g, "path_symlink", "/", "l"), Errno::Perm as u64);
    assert!(std::fs::symlink_metadata(dir.join("l")).is_err(), "nothing created");
    assert_eq!(two_paths(&mut g, "path_symlink", "a/b", "l"), 0, "relative targets are fine");
}

/// Wasmtime's errnos for trailing slashes (cap-std `via_parent`: the last component is
/// opened as a directory and the call acts on `.` in it), and Wasmtime's own tests
/// `p1_unlink_file_trailing_slashes`, `p1_path_link`, `p1_path_symlink_trailing_slashes`,
/// `p1_remove_directory`, `p1_path_rename_dir_trailing_slashes`, `p1_interesting_paths`.
#[test]
fn trailing_slashes_give_wasmtimes_errnos() {
    let (dir, mut g) = rw_guest("conf-slashes");
    std::fs::create_dir(dir.join("dir")).unwrap();
    std::fs::write(dir.join("file"), "x").unwrap();
    let e = |e: Errno| e as u64;
    // path_unlink_file
    assert_eq!(g.path_op("path_unlink_file", 3, "dir/"), e(Errno::Isdir));
    assert_eq!(g.path_op("path_unlink_file", 3, "dir"), e(Errno::Isdir));
    assert_eq!(g.path_op("path_unlink_file", 3, "file/"), e(Errno::Notdir));
    assert_eq!(g.path_op("path_unlink_file", 3, "missing/"), e(Errno::Noent));
    // path_remove_directory ("dir/" removes: Linux's rmdir; see path.rs)
    assert_eq!(g.path_op("path_remove_directory", 3, "file/"), e(Errno::Notdir));
    assert_eq!(g.path_op("path_remove_directory", 3, "file"), e(Errno::Notdir));
    // path_link
    assert_eq!(two_paths(&mut g, "path_link", "file", "link/"), e(Errno::Noent));
    assert_eq!(two_paths(&mut g, "path_link", "file", "dir/"), e(Errno::Exist));
    assert_eq!(two_paths(&mut g, "path_link", "file", "file/"), e(Errno::Notdir));
    assert_eq!(two_paths(&mut g, "path_link", "dir/", "link"), e(Errno::Perm));
    assert_eq!(two_paths(&mut g, "path_link", "file/", "link"), e(Errno::Notdir));
    assert!(!dir.join("link").exists());
    // path_symlink
    assert_eq!(two_paths(&mut g, "path_symlink", "source", "target/"), e(Errno::Noent));
    assert_eq!(two_paths(&mut g, "path_symlink", "source", "dir/"), e(Errno::Exist));
    assert_eq!(two_paths(&mut g, "path_symlink", "source", "file/"), e(Errno::Notdir));
    // path_rename: a slash on the source asks for a directory; on the target it is ignored.
    assert_eq!(two_paths(&mut g, "path_rename", "file/", "other"), e(Errno::Notdir));
    assert_eq!(two_paths(&mut g, "path_rename", "missing/", "other"), e(Errno::Noent));
    assert_eq!(two_paths(&mut g, "path_rename", "dir/", "dir2"), 0);
    assert_eq!(two_paths(&mut g, "path_rename", "dir2", "dir/"), 0);
    assert_eq!(two_paths(&mut g, "path_rename", "file", "file2/"), 0);
    assert!(dir.join("file2").is_file());
    // path_open and path_create_directory
    assert_eq!(g.open(3, "file2/", 0, READ, 0).0, e(Errno::Notdir));
    assert_eq!(g.open(3, "dir/", 0, READ, 0).0, 0);
    assert_eq!(g.open(3, "new/", CREAT, READ | WRITE, 0).0, e(Errno::Isdir));
    assert_eq!(g.path_op("path_create_directory", 3, "made/"), 0);
    assert!(dir.join("made").is_dir());
    assert_eq!(g.path_op("path_remove_directory", 3, "made/"), 0);
}

#[test]
fn stdio_is_not_a_writable_file() {
    let dir = temp_dir("conf-stdio");
    let input = dir.join("input.txt");
    std::fs::write(&input, "read only").unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    std::fs::File::options().write(true).open(&input).unwrap().set_modified(old).unwrap();
    let stdin = Stdin::File(open_stdin(&input).unwrap());
    let mut g = Guest::new(WasiCtxBuilder::new().stdin(stdin).output(Output::Capture, Output::Capture));
    let (e, _, base, _) = g.fdstat(0);
    assert_eq!(e, 0);
    assert_ne!(base & READ, 0);
    assert_eq!(base & (WRITE | FD_FILESTAT_SET_TIMES), 0, "stdin cannot change its file");
    let (_, _, out_base, _) = g.fdstat(1);
    assert_eq!(out_base & (READ | FD_FILESTAT_SET_TIMES), 0);
    assert_ne!(out_base & WRITE, 0);
    // Wasmtime: stdio is not a file for fd_filestat_set_times (EBADF, p1.rs get_fd).
    const MTIM_NOW: u64 = 8;
    assert_eq!(g.errno("fd_filestat_set_times", &[0, 0, 0, MTIM_NOW]), Errno::Badf as u64);
    assert_eq!(std::fs::metadata(&input).unwrap().mtime(), 1_000_000_000, "times unchanged");
    assert_eq!(g.errno("fd_filestat_get", &[0, OUT as u64]), 0, "fstat still works");
    assert_eq!(g.read(0, 4), (0, b"read".to_vec()));
}

/// Wasmtime's table (p1.rs `Descriptors::push`, `fd_close`, `fd_renumber`): a closed or
/// renumbered-away number joins a free set; a new descriptor takes the highest free number,
/// or one past the highest in use.
#[test]
fn descriptor_numbers_follow_wasmtime() {
    let (_, mut g) = rw_guest("conf-numbers");
    let open = |g: &mut Guest| {
        let (e, fd) = g.open(3, "f", CREAT, READ | WRITE, 0);
        assert_eq!(e, 0);
        fd
    };
    assert_eq!([open(&mut g), open(&mut g), open(&mut g)], [4, 5, 6]);
    g.errno("fd_close", &[4]);
    g.errno("fd_close", &[6]);
    assert_eq!(open(&mut g), 6, "the highest free number, not the lowest");
    assert_eq!(open(&mut g), 4);
    assert_eq!(open(&mut g), 7, "none free: past the highest");

    // The yosys case: stdout renumbered onto a log descriptor, then a file opened. Its text
    // must not reach stdout: the file gets the highest free number, 5, not stdout's old 1.
    let (_, mut g) = rw_guest("conf-yosys");
    let (log, spare) = (open(&mut g), open(&mut g));
    assert_eq!((log, spare), (4, 5));
    g.errno("fd_close", &[5]);
    assert_eq!(g.errno("fd_renumber", &[1, 4]), 0);
    let out = open(&mut g);
    assert_eq!(out, 5);
    assert_eq!(g.write(out, b"to the file").unwrap(), (0, 11));
    assert_eq!(g.write(4, b"to stdout").unwrap(), (0, 9));
    assert_eq!(g.ctx.take_captured().0, b"to stdout".to_vec());
    assert_eq!(open(&mut g), 1, "1 is reused last");
    assert_eq!(g.errno("fd_renumber", &[4, 4]), 0, "onto itself: nothing changes");
    assert_eq!(g.write(4, b"!").unwrap(), (0, 1));
}
