//! `wasi_paths`: random sequences of path operations through the wasi crate's host calls,
//! over guest memory, against a fresh temporary tree: a read-write preopen (fd 3), a
//! read-only one (fd 4), and a sentinel folder beside them that no sequence may reach.
//!
//! The tree holds symlinks that point out (`..`, `../sentinel/secret`, absolute paths), a
//! loop and an inner link; the operations (open with creat/excl/trunc/directory, mkdir,
//! symlink, link, rename, unlink, rmdir, readlink, stat, set-times, write, close) take paths
//! built from those names, `..`, `.`, leading and trailing slashes, against the preopens or
//! descriptors opened from them. Checked:
//! - after every sequence the sentinel, the read-only preopen and the folder holding them
//!   are exactly as before (names, types, sizes, contents, link counts, times, inodes);
//! - nothing opened or stat'ed is a sentinel inode or the folder holding the preopens;
//! - an absolute path, or one whose first component is `..`, never succeeds;
//! - no mutation on the read-only preopen succeeds;
//! - for a *plain* path (simple names, no symlink before the last component, no trailing
//!   slash, on a descriptor whose host folder is known) the result is what POSIX and WASI
//!   prescribe: `EEXIST`, `ENOENT`, `ENOTDIR`, `EISDIR`, `ENOTEMPTY`, or success with the
//!   effect visible on the host.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasi::{call, Abi, WasiCtx, WasiCtxBuilder};

const SUCCESS: u64 = 0;
const EEXIST: u64 = 20;
const EPERM: u64 = 63;
const EINVAL: u64 = 28;
const EISDIR: u64 = 31;
const ENOENT: u64 = 44;
const ENOTDIR: u64 = 54;
const ENOTEMPTY: u64 = 55;
const EROFS: u64 = 69;

const PATH: u32 = 1024;
const PATH2: u32 = 2048;
const OUT: u32 = 3072;
const IOV: u32 = 3584;
const BUF: u32 = 4096;

const RW: u32 = 3;
const RO: u32 = 4;

/// Names the paths are built from: the tree's own, new ones, and the tricky ones.
const NAMES: &[&str] = &[
    "f", "d", "g", "e", "n", "m", "up", "esc", "abs", "absdir", "loop", "dl", "..", ".", "sentinel", "secret", "r",
    "rd", "x", "rup", "",
];

/// One temporary tree: `base/{rw,ro,sentinel}`.
struct Tree {
    base: PathBuf,
}

impl Tree {
    fn new() -> Tree {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir().join(format!(
            "sandboxrun-fuzz-wasi-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&base);
        let tree = Tree { base };
        let b = &tree.base;
        let mkdir = |p: &str| std::fs::create_dir_all(b.join(p)).unwrap();
        let file = |p: &str, data: &str| std::fs::write(b.join(p), data).unwrap();
        let link = |target: &str, p: &str| std::os::unix::fs::symlink(target, b.join(p)).unwrap();
        mkdir("sentinel/sub");
        file("sentinel/secret", "secret");
        file("sentinel/sub/deep", "deep");
        mkdir("rw/d");
        mkdir("rw/e");
        file("rw/f", "data");
        file("rw/d/g", "g");
        link("..", "rw/up");
        link("../sentinel/secret", "rw/esc");
        link(&format!("{}/sentinel/secret", b.display()), "rw/abs");
        link(&format!("{}/sentinel", b.display()), "rw/absdir");
        link("loop", "rw/loop");
        link("d", "rw/dl");
        mkdir("ro/rd");
        file("ro/r", "r");
        file("ro/rd/x", "x");
        link("../sentinel", "ro/rup");
        tree
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Everything observable about a tree, without following symlinks.
type Snapshot = BTreeMap<PathBuf, (u32, u64, u64, u64, i64, i64, Vec<u8>)>;

fn snapshot(root: &Path, out: &mut Snapshot) {
    let Ok(meta) = std::fs::symlink_metadata(root) else { return };
    let content = if meta.file_type().is_symlink() {
        std::fs::read_link(root).map(|p| p.into_os_string().into_encoded_bytes()).unwrap_or_default()
    } else if meta.is_file() {
        std::fs::read(root).unwrap_or_default()
    } else {
        Vec::new()
    };
    out.insert(
        root.to_path_buf(),
        (meta.mode(), meta.nlink(), meta.ino(), meta.size(), meta.mtime(), meta.mtime_nsec(), content),
    );
    if meta.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(root).into_iter().flatten().flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            snapshot(&path, out);
        }
    }
}

/// What must never change: the sentinel, the read-only preopen, and the base's entries.
fn untouchable(tree: &Tree) -> (Snapshot, Vec<String>) {
    let mut s = Snapshot::new();
    snapshot(&tree.base.join("sentinel"), &mut s);
    snapshot(&tree.base.join("ro"), &mut s);
    let mut names: Vec<String> = std::fs::read_dir(&tree.base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    (s, names)
}

/// What the host has at a path, not following a final symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Missing,
    File,
    Dir { empty: bool },
    Symlink,
}

fn node(path: &Path) -> Node {
    match std::fs::symlink_metadata(path) {
        Err(_) => Node::Missing,
        Ok(m) if m.file_type().is_symlink() => Node::Symlink,
        Ok(m) if m.is_dir() => {
            Node::Dir { empty: std::fs::read_dir(path).map(|mut d| d.next().is_none()).unwrap_or(false) }
        }
        Ok(_) => Node::File,
    }
}

/// A plain path's meaning on the host: its parent's state and the final node.
#[derive(Debug)]
struct Plain {
    host: PathBuf,
    /// `Ok` if every component before the last is a directory; otherwise the errno the
    /// lookup must fail with.
    parent: Result<(), u64>,
    last: Node,
}

/// `path` relative to the host folder `dir`, if it is plain: simple names only (no `.`,
/// `..`, empty components, leading or trailing slash), and no symlink before the last.
fn plain(dir: &Path, path: &str) -> Option<Plain> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return None;
    }
    let mut host = dir.to_path_buf();
    let mut parent = Ok(());
    for (i, part) in parts.iter().enumerate() {
        host.push(part);
        if i + 1 < parts.len() && parent.is_ok() {
            match node(&host) {
                Node::Dir { .. } => {}
                Node::Missing => parent = Err(ENOENT),
                Node::File => parent = Err(ENOTDIR),
                Node::Symlink => return None,
            }
        }
    }
    let last = if parent.is_ok() { node(&host) } else { Node::Missing };
    Some(Plain { host, parent, last })
}

/// An open descriptor the sequence may use, with its host folder when known.
struct Open {
    fd: u32,
    host: Option<PathBuf>,
    writable: bool,
    /// The read-only preopen itself (whose number a new descriptor may take once it is closed).
    ro_preopen: bool,
}

/// Decodes choices from the input; zeros once it runs out.
struct Choices<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Choices<'_> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn below(&mut self, n: usize) -> usize {
        usize::from(self.byte()) % n.max(1)
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    /// A guest path from [`NAMES`], sometimes absolute, with a trailing slash, or doubled
    /// slashes.
    fn path(&mut self) -> String {
        let n = [1, 1, 1, 1, 1, 2, 2, 3][self.below(8)];
        let parts: Vec<&str> = (0..n).map(|_| NAMES[self.below(NAMES.len())]).collect();
        let flags = self.byte();
        let mut path = parts.join(if flags & 0x10 != 0 { "//" } else { "/" });
        if flags & 0x0f == 1 {
            path.insert(0, '/');
        }
        if flags & 0xe0 == 0xe0 {
            path.push('/');
        }
        path
    }
}

struct Guest {
    ctx: WasiCtx,
    mem: Vec<u8>,
}

impl Guest {
    fn call(&mut self, name: &str, args: &[u64]) -> u64 {
        let func = Abi::Preview1.lookup(name).expect(name);
        call(&mut self.ctx, Abi::Preview1, func, &mut self.mem, args).expect("path calls never exit")
    }
    fn put(&mut self, at: u32, s: &str) -> (u64, u64) {
        self.mem[at as usize..at as usize + s.len()].copy_from_slice(s.as_bytes());
        (u64::from(at), s.len() as u64)
    }
    fn u64_at(&self, at: u32) -> u64 {
        u64::from_le_bytes(self.mem[at as usize..at as usize + 8].try_into().expect("8 bytes"))
    }
    /// `(dev, ino)` of an open descriptor.
    /// Whether `fd` is a directory (its fdstat's file type).
    fn is_directory(&mut self, fd: u32) -> bool {
        self.call("fd_fdstat_get", &[u64::from(fd), u64::from(OUT)]) == SUCCESS && self.mem[OUT as usize] == 3
    }

    fn identity(&mut self, fd: u32) -> Option<(u64, u64)> {
        (self.call("fd_filestat_get", &[u64::from(fd), u64::from(OUT)]) == SUCCESS)
            .then(|| (self.u64_at(OUT), self.u64_at(OUT + 8)))
    }
}

/// Whether a path must fail wherever it is resolved: absolute, or `..` first.
fn escapes_at_once(path: &str) -> bool {
    path.starts_with('/') || path == ".." || path.starts_with("../") || path.starts_with("..//")
}

/// The target.
pub fn target(data: &[u8]) {
    let tree = Tree::new();
    let rw = tree.base.join("rw");
    let ro = tree.base.join("ro");
    let before = untouchable(&tree);
    let forbidden: Vec<(u64, u64)> = {
        let mut ids = vec![];
        let mut s = Snapshot::new();
        snapshot(&tree.base.join("sentinel"), &mut s);
        for p in s.keys().chain([&tree.base]) {
            let m = std::fs::symlink_metadata(p).expect("sentinel exists");
            ids.push((m.dev(), m.ino()));
        }
        ids
    };
    let ctx =
        WasiCtxBuilder::new().preopen(&rw, "/rw", true).preopen(&ro, "/ro", false).build().expect("preopens open");
    let mut g = Guest { ctx, mem: vec![0; 1 << 16] };
    let mut open = vec![
        Open { fd: RW, host: Some(rw.clone()), writable: true, ro_preopen: false },
        Open { fd: RO, host: Some(ro.clone()), writable: false, ro_preopen: true },
    ];
    let mut c = Choices { data, pos: 0 };
    let mut log = Vec::new();

    for _ in 0..32 {
        if c.done() {
            break;
        }
        let op = c.below(12);
        // A bad descriptor one time in 16; closing (op 11) spares the preopens 7 times in 8.
        let choice = c.byte();
        let candidates: Vec<&Open> = if op == 11 && choice & 0x70 != 0 {
            open.iter().filter(|o| o.fd != RW && o.fd != RO).collect()
        } else {
            open.iter().collect()
        };
        let (dir_fd, dir_host, writable, ro_preopen) = if choice & 0xf == 0xf || candidates.is_empty() {
            (99, None, false, false)
        } else {
            let o = candidates[usize::from(choice & 0xf) % candidates.len()];
            (o.fd, o.host.clone(), o.writable, o.ro_preopen)
        };
        let path = c.path();
        let (p, plen) = g.put(PATH, &path);
        let d = u64::from(dir_fd);
        let pl = dir_host.as_deref().and_then(|h| plain(h, &path));
        let mutates;
        let (name, e) = match op {
            0 => {
                // path_open
                let oflags = u64::from(c.byte() & 0x0f);
                // Every right (the model's operations then apply to the new descriptor), or a
                // few fd rights and no path right (every path call through it is ENOTCAPABLE).
                let rights = [0, 1 << 1, 1 << 6, (1 << 1) | (1 << 6), (1 << 30) - 1][c.below(5)];
                let lookup = u64::from(c.byte() & 1);
                let e = g.call("path_open", &[d, lookup, p, plen, oflags, rights, rights, 0, u64::from(OUT)]);
                let creat = oflags & 1 != 0;
                let directory = oflags & 2 != 0;
                let excl = oflags & 4 != 0;
                let trunc = oflags & 8 != 0;
                // Write rights on a folder are dropped at open (a folder opens read-only): only
                // a file opened with them could write.
                let new_fd = g.u64_at(OUT) as u32;
                let opened_folder = e == SUCCESS && g.is_directory(new_fd);
                mutates = creat || trunc || (rights & (1 << 6) != 0 && !opened_folder);
                if e == SUCCESS {
                    let fd = new_fd;
                    if let Some(id) = g.identity(fd) {
                        assert!(!forbidden.contains(&id), "path_open {path:?} opened a sentinel inode; ops: {log:?}");
                    }
                    // The host folder is known when a plain path named a folder.
                    let host = pl
                        .as_ref()
                        .filter(|pl| pl.last != Node::Symlink && matches!(node(&pl.host), Node::Dir { .. }))
                        .map(|pl| pl.host.clone());
                    // Rights are enforced: only a descriptor with every right is modelled as
                    // its folder's (one without path rights changes nothing: not writable).
                    open.push(Open { fd, host, writable: writable && rights == (1 << 30) - 1, ro_preopen: false });
                }
                // O_DIRECTORY with creat, excl or trunc is refused (EINVAL, as Wasmtime does)
                // before the descriptor or the path is looked at.
                let contradictory = directory && (creat || excl || trunc);
                if contradictory {
                    assert_eq!(e, EINVAL, "path_open {path:?} oflags {oflags}; ops: {log:?}");
                }
                if let Some(pl) = pl.as_ref().filter(|_| writable && !contradictory) {
                    match (pl.parent, pl.last) {
                        (Err(want), _) => assert_eq!(e, want, "path_open {path:?} oflags {oflags}; ops: {log:?}"),
                        (Ok(()), Node::Missing) if !creat => assert_eq!(e, ENOENT, "path_open {path:?}; ops: {log:?}"),
                        (Ok(()), Node::Missing) if !directory => {
                            assert_eq!(e, SUCCESS, "path_open creat {path:?}; ops: {log:?}");
                            assert_eq!(node(&pl.host), Node::File, "path_open creat {path:?} made no file");
                        }
                        (Ok(()), Node::File | Node::Dir { .. }) if creat && excl => {
                            assert_eq!(e, EEXIST, "path_open excl {path:?}; ops: {log:?}")
                        }
                        (Ok(()), Node::File) if trunc && !directory && e == SUCCESS => {
                            assert_eq!(std::fs::metadata(&pl.host).map(|m| m.len()).ok(), Some(0), "trunc {path:?}")
                        }
                        _ => {}
                    }
                }
                ("path_open", e)
            }
            1 => {
                mutates = true;
                let e = g.call("path_create_directory", &[d, p, plen]);
                if let Some(pl) = pl.as_ref().filter(|_| writable) {
                    let want = match (pl.parent, pl.last) {
                        (Err(want), _) => want,
                        (Ok(()), Node::Missing) => SUCCESS,
                        _ => EEXIST,
                    };
                    assert_eq!(e, want, "mkdir {path:?}; ops: {log:?}");
                    if e == SUCCESS {
                        assert!(matches!(node(&pl.host), Node::Dir { .. }), "mkdir {path:?} made no folder");
                    }
                }
                ("path_create_directory", e)
            }
            2 => {
                mutates = true;
                let target = match c.below(4) {
                    0 => format!("{}/sentinel/secret", tree.base.display()),
                    1 => "../sentinel".to_string(),
                    _ => c.path(),
                };
                let (t, tlen) = g.put(PATH2, &target);
                let e = g.call("path_symlink", &[t, tlen, d, p, plen]);
                if let Some(pl) = pl.as_ref().filter(|_| writable) {
                    let want = match (pl.parent, pl.last) {
                        // An absolute target is refused before the path is looked at (it
                        // would point outside the mount).
                        _ if target.starts_with('/') => EPERM,
                        (Err(want), _) => want,
                        // Linux refuses an empty target.
                        _ if target.is_empty() => ENOENT,
                        (Ok(()), Node::Missing) => SUCCESS,
                        _ => EEXIST,
                    };
                    assert_eq!(e, want, "symlink {target:?} {path:?}; ops: {log:?}");
                }
                ("path_symlink", e)
            }
            3 | 4 => {
                mutates = true;
                let (fd2, host2, writable2) = match open.get(c.below(open.len())) {
                    Some(o) => (o.fd, o.host.clone(), o.writable),
                    None => (99, None, false),
                };
                let path2 = c.path();
                let (p2, p2len) = g.put(PATH2, &path2);
                let pl2 = host2.as_deref().and_then(|h| plain(h, &path2));
                let follow = if op == 3 { u64::from(c.byte() & 1) } else { 0 };
                let (name, e) = if op == 3 {
                    ("path_link", g.call("path_link", &[d, follow, p, plen, u64::from(fd2), p2, p2len]))
                } else {
                    ("path_rename", g.call("path_rename", &[d, p, plen, u64::from(fd2), p2, p2len]))
                };
                if escapes_at_once(&path2) || !writable2 {
                    assert_ne!(e, SUCCESS, "{name} to {fd2} {path2:?} succeeded; ops: {log:?}");
                }
                if let (Some(a), Some(b)) = (&pl, &pl2) {
                    // Following a source symlink is EINVAL before anything else is looked at.
                    if writable && writable2 && follow == 0 {
                        if a.parent.is_ok() && a.last == Node::Missing && b.parent.is_ok() {
                            assert_eq!(e, ENOENT, "{name} {path:?} {path2:?}; ops: {log:?}");
                        }
                        if a.parent.is_ok() && a.last == Node::File && b.parent.is_ok() && b.last == Node::Missing {
                            assert_eq!(e, SUCCESS, "{name} {path:?} {path2:?}; ops: {log:?}");
                            assert_eq!(node(&b.host), Node::File, "{name} {path:?} {path2:?}: no new name");
                            assert_eq!(node(&a.host) == Node::Missing, op == 4, "{name} {path:?}: old name");
                        }
                        let both_exist = a.last != Node::Missing && b.last != Node::Missing;
                        if op == 3 && a.parent.is_ok() && b.parent.is_ok() && both_exist {
                            assert_eq!(e, EEXIST, "{name} {path:?} {path2:?}; ops: {log:?}");
                        }
                    }
                }
                log.push(format!("{name}({dir_fd}, {path:?}, {fd2}, {path2:?}) = {e}"));
                if e == SUCCESS {
                    forget_moved(&mut open);
                }
                (name, e)
            }
            5 | 6 => {
                mutates = true;
                let (name, is_dir) =
                    if op == 5 { ("path_unlink_file", false) } else { ("path_remove_directory", true) };
                let e = g.call(name, &[d, p, plen]);
                if let Some(pl) = pl.as_ref().filter(|_| writable) {
                    let want = match (pl.parent, pl.last, is_dir) {
                        (Err(want), _, _) => want,
                        (Ok(()), Node::Missing, _) => ENOENT,
                        (Ok(()), Node::File | Node::Symlink, false) => SUCCESS,
                        (Ok(()), Node::Dir { .. }, false) => EISDIR,
                        (Ok(()), Node::Dir { empty: true }, true) => SUCCESS,
                        (Ok(()), Node::Dir { empty: false }, true) => ENOTEMPTY,
                        (Ok(()), Node::File | Node::Symlink, true) => ENOTDIR,
                    };
                    assert_eq!(e, want, "{name} {path:?} ({pl:?}); ops: {log:?}");
                    if e == SUCCESS {
                        assert_eq!(node(&pl.host), Node::Missing, "{name} {path:?} left it");
                    }
                }
                if e == SUCCESS {
                    forget_moved(&mut open);
                }
                (name, e)
            }
            7 => {
                mutates = false;
                ("path_readlink", g.call("path_readlink", &[d, p, plen, u64::from(BUF), 256, u64::from(OUT)]))
            }
            8 => {
                mutates = false;
                let follow = u64::from(c.byte() & 1);
                let e = g.call("path_filestat_get", &[d, follow, p, plen, u64::from(OUT)]);
                if e == SUCCESS {
                    let id = (g.u64_at(OUT), g.u64_at(OUT + 8));
                    assert!(!forbidden.contains(&id), "path_filestat_get {path:?} reached a sentinel; ops: {log:?}");
                }
                ("path_filestat_get", e)
            }
            9 => {
                mutates = true;
                let follow = u64::from(c.byte() & 1);
                // Set the mtime to 0 (FSTFLAGS_MTIM).
                ("path_filestat_set_times", g.call("path_filestat_set_times", &[d, follow, p, plen, 0, 0, 4]))
            }
            10 => {
                mutates = false;
                // Write through any open descriptor (harmless inside; fatal outside).
                g.put(BUF, "x");
                g.mem[IOV as usize..IOV as usize + 4].copy_from_slice(&BUF.to_le_bytes());
                g.mem[IOV as usize + 4..IOV as usize + 8].copy_from_slice(&1u32.to_le_bytes());
                ("fd_write", g.call("fd_write", &[d, u64::from(IOV), 1, u64::from(OUT)]))
            }
            _ => {
                mutates = false;
                let e = g.call("fd_close", &[d]);
                if e == SUCCESS {
                    open.retain(|o| o.fd != dir_fd);
                }
                ("fd_close", e)
            }
        };
        if op != 3 && op != 4 {
            log.push(format!("{name}({dir_fd}, {path:?}) = {e}"));
        }
        if op <= 9 && escapes_at_once(&path) {
            assert_ne!(e, SUCCESS, "{name} {path:?} succeeded; ops: {log:?}");
        }
        if mutates && !writable && op <= 9 {
            assert_ne!(e, SUCCESS, "{name} {path:?} on a read-only descriptor succeeded; ops: {log:?}");
            if ro_preopen && op != 0 {
                assert_eq!(e, EROFS, "{name} {path:?} on the read-only preopen; ops: {log:?}");
            }
        }
    }
    drop(g);
    let after = untouchable(&tree);
    assert!(before == after, "the sentinel or read-only tree changed; ops: {log:?}");
}

/// After a rename or removal, the host folders of open descriptors may be stale: forget
/// them (the descriptors stay usable, only the plain-path model stops checking them).
fn forget_moved(open: &mut [Open]) {
    for o in open.iter_mut().filter(|o| o.fd != RW && o.fd != RO) {
        o.host = None;
    }
}

/// Inputs for the bounded test: random operation sequences, or mutated corpus sequences.
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if !corpus.is_empty() && rng.below(3) == 0 {
        return crate::runner::mutate_or_random(rng, corpus, 0);
    }
    let len = 8 + rng.below(120);
    rng.bytes(len)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_wasi_paths() {
        crate::runner::run(&crate::runner::Campaign {
            name: "wasi_paths",
            target: super::target,
            generate: super::generate,
            seconds: 8.0,
        });
    }
}
