//! WASI functions called directly over a plain byte vector as guest memory, against real
//! temporary directories: success and failure paths, limits, and the legacy ABI's layouts.

mod common;

use common::*;
use wasi::{Abi, Errno, Exit, Output, WasiCtxBuilder, WasiLimits};

#[test]
fn args_environ_clock_random() {
    let mut g = Guest::new(WasiCtxBuilder::new().args(["prog", "a"]).env([("K".into(), "V".into())]));
    assert_eq!(g.errno("args_sizes_get", &[OUT as u64, OUT as u64 + 4]), 0);
    assert_eq!((g.u32(OUT), g.u32(OUT + 4)), (2, 7));
    assert_eq!(g.errno("args_get", &[OUT as u64, BUF as u64]), 0);
    assert_eq!(&g.mem[BUF as usize..BUF as usize + 7], b"prog\0a\0");
    assert_eq!(g.errno("environ_get", &[OUT as u64, BUF as u64]), 0);
    assert_eq!(&g.mem[BUF as usize..BUF as usize + 4], b"K=V\0");
    assert_eq!(g.errno("clock_time_get", &[1, 0, OUT as u64]), 0);
    assert!(g.u64(OUT) > 0);
    assert_eq!(g.errno("clock_time_get", &[9, 0, OUT as u64]), Errno::Inval as u64);
    assert_eq!(g.errno("random_get", &[BUF as u64, 64]), 0);
    assert_eq!(g.errno("random_get", &[MEM as u64 - 8, 64]), Errno::Fault as u64);
    assert_eq!(g.errno("args_get", &[MEM as u64 - 2, BUF as u64]), Errno::Fault as u64);
    assert_eq!(g.errno("sched_yield", &[]), 0);
    assert_eq!(g.call("proc_exit", &[7]), Err(Exit::Code(7)));
}

#[test]
fn files_in_a_rw_mount() {
    let dir = temp_dir("rw");
    let mut g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/rw", true));
    assert_eq!(g.errno("fd_prestat_get", &[3, OUT as u64]), 0);
    assert_eq!(g.u32(OUT + 4), 3);
    assert_eq!(g.errno("fd_prestat_dir_name", &[3, BUF as u64, 3]), 0);
    assert_eq!(&g.mem[BUF as usize..BUF as usize + 3], b"/rw");
    assert_eq!(g.errno("fd_prestat_get", &[1, OUT as u64]), Errno::Badf as u64);

    let (e, fd) = g.open(3, "f.txt", CREAT | TRUNC, READ | WRITE, 0);
    assert_eq!(e, 0);
    assert_eq!(g.write(fd, b"hello world").unwrap(), (0, 11));
    assert_eq!(g.errno("fd_seek", &[fd as u64, 6, 0, OUT as u64]), 0, "SEEK_SET is 0 in preview1");
    assert_eq!(g.read(fd, 100), (0, b"world".to_vec()));
    assert_eq!(g.errno("fd_tell", &[fd as u64, OUT as u64]), 0);
    assert_eq!(g.u64(OUT), 11);
    assert_eq!(g.errno("fd_filestat_get", &[fd as u64, OUT as u64]), 0);
    assert_eq!(g.mem[OUT as usize + 16], 4, "regular file");
    assert_eq!(g.u64(OUT + 32), 11, "size at offset 32 in preview1");
    assert_eq!(g.errno("fd_filestat_set_size", &[fd as u64, 5]), 0);
    assert_eq!(std::fs::read(dir.join("f.txt")).unwrap(), b"hello");
    assert_eq!(g.errno("fd_close", &[fd as u64]), 0);
    assert_eq!(g.errno("fd_close", &[fd as u64]), Errno::Badf as u64);

    assert_eq!(g.path_op("path_create_directory", 3, "d"), 0);
    assert_eq!(g.path_op("path_create_directory", 3, "d"), Errno::Exist as u64);
    assert_eq!(g.open(3, "missing", 0, READ, 0).0, Errno::Noent as u64);
    assert_eq!(g.open(3, "f.txt/", 0, READ, 0).0, Errno::Notdir as u64, "trailing slash on a file");
    assert_eq!(g.open(3, "../x", 0, READ, 0).0, Errno::Notcapable as u64);
    assert_eq!(g.open(3, "/etc/passwd", 0, READ, 0).0, Errno::Notcapable as u64);
    assert_eq!(g.open(3, "d/../../x", 0, READ, 0).0, Errno::Notcapable as u64);
    std::os::unix::fs::symlink("/etc/passwd", dir.join("abs")).unwrap();
    assert_eq!(g.open(3, "abs", 0, READ, 1).0 /* follow */, Errno::Notcapable as u64);
    std::os::unix::fs::symlink("d/../..", dir.join("up")).unwrap();
    assert_eq!(g.open(3, "up/x", 0, READ, 0).0, Errno::Notcapable as u64);

    // Rename into the directory, list it, remove everything.
    g.put(PATH, b"f.txt");
    g.put(PATH + 100, b"d/g.txt");
    assert_eq!(g.errno("path_rename", &[3, PATH as u64, 5, 3, PATH as u64 + 100, 7]), 0);
    let (e, dfd) = g.open(3, "d", 2, READ, 0);
    assert_eq!(e, 0);
    assert_eq!(g.errno("fd_readdir", &[dfd as u64, BUF as u64, 1024, 0, OUT as u64]), 0);
    let used = g.u32(OUT) as usize;
    let listing = &g.mem[BUF as usize..BUF as usize + used];
    assert!(listing.windows(5).any(|w| w == b"g.txt"));
    // A buffer too small is filled completely (the guest then retries larger).
    assert_eq!(g.errno("fd_readdir", &[dfd as u64, BUF as u64, 10, 0, OUT as u64]), 0);
    assert_eq!(g.u32(OUT), 10);
    assert_eq!(g.path_op("path_remove_directory", 3, "d"), Errno::Notempty as u64);
    assert_eq!(g.path_op("path_unlink_file", 3, "d/g.txt"), 0);
    assert_eq!(g.path_op("path_remove_directory", 3, "d"), 0);
    // Sockets: none exist.
    assert_eq!(g.errno("sock_shutdown", &[3, 0]), Errno::Notsock as u64);
    assert_eq!(g.errno("sock_shutdown", &[99, 0]), Errno::Badf as u64);
}

#[test]
fn read_only_mounts_refuse_mutation() {
    let dir = temp_dir("ro");
    std::fs::write(dir.join("f"), "x").unwrap();
    std::fs::create_dir(dir.join("d")).unwrap();
    let mut g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/ro", false));
    assert_eq!(g.open(3, "f", 0, READ, 0).0, 0);
    assert_eq!(g.open(3, "f", 0, WRITE, 0).0, Errno::Rofs as u64);
    assert_eq!(g.open(3, "new", CREAT, READ, 0).0, Errno::Rofs as u64);
    assert_eq!(g.open(3, "f", TRUNC, READ, 0).0, Errno::Rofs as u64);
    assert_eq!(g.path_op("path_create_directory", 3, "x"), Errno::Rofs as u64);
    assert_eq!(g.path_op("path_unlink_file", 3, "f"), Errno::Rofs as u64);
    assert_eq!(g.path_op("path_remove_directory", 3, "d"), Errno::Rofs as u64);
    g.put(PATH, b"f");
    g.put(PATH + 100, b"g");
    assert_eq!(g.errno("path_rename", &[3, PATH as u64, 1, 3, PATH as u64 + 100, 1]), Errno::Rofs as u64);
    assert_eq!(g.errno("path_symlink", &[PATH as u64, 1, 3, PATH as u64 + 100, 1]), Errno::Rofs as u64);
    assert!(dir.join("f").exists() && dir.join("d").exists());
}

#[test]
fn limits_open_files_size_disk_and_quota() {
    let dir = temp_dir("limits");
    let limits = WasiLimits { open_files: 6, file_size: 100, disk_bytes: 150, files_created: 3, output_bytes: 10 };
    let mut g = Guest::new(
        WasiCtxBuilder::new().preopen(&dir, "/rw", true).limits(limits).output(Output::Capture, Output::Capture),
    );
    let (e, a) = g.open(3, "a", CREAT, WRITE, 0);
    assert_eq!(e, 0);
    assert_eq!(g.open(3, "a", 0, READ, 0).0, 0, "fd 5 is the last one allowed");
    assert_eq!(g.open(3, "a", 0, READ, 0).0, Errno::Mfile as u64);
    // File size: 100 bytes at most; the write is cut there, the next one fails.
    assert_eq!(g.write(a, &[1; 120]).unwrap(), (0, 100));
    assert_eq!(g.write(a, &[1; 10]).unwrap().0, Errno::Fbig as u64);
    g.errno("fd_close", &[5]);
    let (_, b) = g.open(3, "b", CREAT, WRITE, 0);
    assert_eq!(g.write(b, &[1; 50]).unwrap(), (0, 50), "disk: 150 bytes in all");
    assert_eq!(g.write(b, &[1; 10]).unwrap().0, Errno::Nospc as u64);
    // Quota of created entries: a, b, and one more.
    assert_eq!(g.path_op("path_create_directory", 3, "c"), 0);
    assert_eq!(g.path_op("path_create_directory", 3, "e"), Errno::Dquot as u64);
    // Output: 10 bytes, then the run ends.
    assert_eq!(g.write(1, b"12345").unwrap(), (0, 5));
    assert_eq!(g.write(2, b"abcdefgh"), Err(Exit::OutputLimit));
    assert_eq!(g.ctx.take_captured(), (b"12345".to_vec(), b"abcde".to_vec()));
}

/// Sequential writes reuse the offset and size the previous write left (no fstat, fcntl or
/// lseek each): the disk quota must count exactly what it counted before, whatever moved the
/// offset or shrank the file in between.
#[test]
fn disk_accounting_survives_seeks_reads_flags_and_truncations() {
    let dir = temp_dir("accounting");
    let limits = WasiLimits { disk_bytes: 250, ..WasiLimits::default() };
    let mut g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/rw", true).limits(limits));
    let (_, f) = g.open(3, "f", CREAT, READ | WRITE, 0);
    assert_eq!(g.write(f, &[1; 200]).unwrap(), (0, 200));
    // After a seek the write overwrites: no growth (counted from the old offset, 200..300,
    // it would exceed the quota).
    assert_eq!(g.errno("fd_seek", &[f as u64, 0, 0, OUT as u64]), 0);
    assert_eq!(g.write(f, &[2; 100]).unwrap(), (0, 100), "0..100: no growth");
    // After a read the write starts where the read ended: 150..250 grows the file by 50
    // (counted from 100 it would grow it by nothing, and the quota would be short by 50).
    assert_eq!(g.read(f, 50).1.len(), 50);
    assert_eq!(g.write(f, &[3; 100]).unwrap(), (0, 100), "150..250: 50 bytes of growth");
    assert_eq!(g.write(f, &[4; 1]).unwrap().0, Errno::Nospc as u64, "250 of 250 used");
    // Append mode switched on after a seek: the write lands at the end, still no room.
    assert_eq!(g.errno("fd_seek", &[f as u64, 0, 0, OUT as u64]), 0);
    assert_eq!(g.errno("fd_fdstat_set_flags", &[f as u64, 1]), 0);
    assert_eq!(g.write(f, &[5; 1]).unwrap().0, Errno::Nospc as u64);
    assert_eq!(std::fs::metadata(dir.join("f")).unwrap().len(), 250);

    // A file truncated through another descriptor: the first one's cached size is stale, and
    // its next write past the old end grows the file from zero (the hole counts, as without
    // the cache).
    let limits = WasiLimits { disk_bytes: 1000, ..WasiLimits::default() };
    let mut g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/rw", true).limits(limits));
    let (_, a) = g.open(3, "g", CREAT, WRITE, 0);
    assert_eq!(g.write(a, &[1; 400]).unwrap(), (0, 400));
    let (e, _) = g.open(3, "g", TRUNC, WRITE, 0);
    assert_eq!(e, 0);
    assert_eq!(g.write(a, &[1; 400]).unwrap().0, Errno::Nospc as u64, "400..800 from an empty file: 800 > 600 left");
    // The same through fd_filestat_set_size.
    let (_, b) = g.open(3, "h", CREAT, WRITE, 0);
    assert_eq!(g.write(b, &[1; 300]).unwrap(), (0, 300), "700 of 1000 used");
    let (_, c) = g.open(3, "h", 0, WRITE, 0);
    assert_eq!(g.errno("fd_filestat_set_size", &[c as u64, 0]), 0);
    assert_eq!(g.write(b, &[1; 100]).unwrap().0, Errno::Nospc as u64, "300..400 from an empty file: 400 > 300 left");
    assert_eq!(g.write(b, &[1; 0]).unwrap(), (0, 0));
}

#[test]
fn legacy_abi_layouts() {
    let dir = temp_dir("legacy");
    std::fs::write(dir.join("f"), "0123456789").unwrap();
    let mut g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/d", false));
    g.abi = Abi::Unstable;
    assert_eq!(Abi::from_module_name("wasi_unstable"), Some(Abi::Unstable));
    let (e, fd) = g.open(3, "f", 0, READ, 0);
    assert_eq!(e, 0);
    // whence: snapshot 0 numbers them cur=0, end=1, set=2.
    assert_eq!(g.errno("fd_seek", &[fd as u64, (-3i64) as u64, 1, OUT as u64]), 0);
    assert_eq!(g.u64(OUT), 7, "END");
    assert_eq!(g.errno("fd_seek", &[fd as u64, 2, 2, OUT as u64]), 0);
    assert_eq!(g.u64(OUT), 2, "SET");
    // filestat: u32 nlink at 20, size at 24.
    assert_eq!(g.errno("fd_filestat_get", &[fd as u64, OUT as u64]), 0);
    assert_eq!(g.u32(OUT + 20), 1);
    assert_eq!(g.u64(OUT + 24), 10);
}

#[test]
fn renumber_and_stdio() {
    let mut g = Guest::new(WasiCtxBuilder::new().output(Output::Capture, Output::Capture));
    assert_eq!(g.read(0, 10), (0, vec![]), "null stdin reads end-of-file");
    assert_eq!(g.errno("fd_fdstat_get", &[1, OUT as u64]), 0);
    assert_eq!(g.errno("fd_renumber", &[2, 1]), 0);
    assert_eq!(g.write(1, b"to stderr").unwrap(), (0, 9));
    assert_eq!(g.ctx.take_captured().1, b"to stderr".to_vec());
    assert_eq!(g.errno("fd_renumber", &[7, 1]), Errno::Badf as u64);
    assert_eq!(g.errno("fd_seek", &[1, 0, 0, OUT as u64]), Errno::Spipe as u64);
    assert_eq!(g.errno("poll_oneoff", &[0, 0, 0, OUT as u64]), Errno::Inval as u64);
}

/// Regression (found by `fuzz` target `wasi_paths`): `path_open` with `creat | excl` on an
/// existing file opened it instead of failing with `EEXIST`.
#[test]
fn excl_refuses_an_existing_file() {
    const EXCL: u64 = 4;
    let dir = temp_dir("excl");
    std::fs::write(dir.join("f"), "data").unwrap();
    std::os::unix::fs::symlink("f", dir.join("l")).unwrap();
    let mut g = Guest::new(WasiCtxBuilder::new().preopen(&dir, "/d", true));
    for name in ["f", "l"] {
        assert_eq!(g.open(3, name, CREAT | EXCL, READ | WRITE, 0).0, Errno::Exist as u64, "{name}");
        assert_eq!(g.open(3, name, CREAT | EXCL | TRUNC, READ, 0).0, Errno::Exist as u64, "{name}");
    }
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"data");
    assert_eq!(g.open(3, "new", CREAT | EXCL, READ | WRITE, 0).0, 0);
    assert!(dir.join("new").is_file());
}
