//! The WASI instance state: arguments, environment, the descriptor table (stdio and one
//! preopened directory per mount), limits and usage counters.

use crate::path::Resolve;
use crate::rights::{ALL_RIGHTS, DIR_RIGHTS, STDIN_RIGHTS, STDOUT_RIGHTS};
use crate::sys;
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where the guest's standard input comes from.
#[derive(Debug)]
pub enum Stdin {
    /// Reads return end-of-file.
    Null,
    /// The host process's standard input.
    Inherit,
    /// A host file, already open (by [`open_stdin`], say, while the host's paths resolve).
    File(OwnedFd),
}

/// Opens the host directory of a preopen, as [`WasiCtxBuilder::build`] does: for a caller
/// that must open it early and pass it on ([`WasiCtxBuilder::preopen_dir`]).
///
/// # Errors
/// [`BuildError::Preopen`]: it cannot be opened or is not a directory.
pub fn open_preopen(host: &Path, guest: &str) -> Result<OwnedFd, BuildError> {
    std::fs::File::open(host)
        .and_then(
            |f| if f.metadata()?.is_dir() { Ok(f.into()) } else { Err(io::Error::from_raw_os_error(libc::ENOTDIR)) },
        )
        .map_err(|source| BuildError::Preopen { guest: guest.to_string(), host: host.to_path_buf(), source })
}

/// Opens a stdin file for [`Stdin::File`].
///
/// # Errors
/// [`BuildError::Stdin`].
pub fn open_stdin(path: &Path) -> Result<OwnedFd, BuildError> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| BuildError::Stdin { path: path.to_path_buf(), source })
}

/// A preopen's host directory: a path to open, or a directory already open.
#[derive(Debug)]
enum HostDir {
    Path(PathBuf),
    Open(OwnedFd),
}

/// Where the guest's standard output or error goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The host process's stream.
    Inherit,
    /// Kept in memory (up to the output limit) for the embedder to take.
    Capture,
}

/// Resource limits (each `u64::MAX` for "none").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WasiLimits {
    /// Open guest descriptors, stdio and preopens included (`EMFILE` beyond).
    pub open_files: u64,
    /// Largest size a written file may reach (`EFBIG` beyond).
    pub file_size: u64,
    /// Bytes the run may add to files (writes and size extensions; `ENOSPC` beyond).
    pub disk_bytes: u64,
    /// Files, directories and links the run may create (`EDQUOT` beyond).
    pub files_created: u64,
    /// Bytes to stdout and stderr together (the run ends with [`crate::Exit::OutputLimit`]).
    pub output_bytes: u64,
}

impl Default for WasiLimits {
    fn default() -> Self {
        WasiLimits {
            open_files: u64::MAX,
            file_size: u64::MAX,
            disk_bytes: u64::MAX,
            files_created: u64::MAX,
            output_bytes: u64::MAX,
        }
    }
}

/// What a descriptor is.
#[derive(Debug)]
pub(crate) enum Kind {
    Stdin,
    Stdout,
    Stderr,
    File,
    Dir { preopen: Option<String> },
}

/// One guest descriptor.
#[derive(Debug)]
pub(crate) struct FdEntry {
    pub(crate) kind: Kind,
    /// The host descriptor (`None` for null stdin and captured output).
    pub(crate) host: Option<OwnedFd>,
    /// Whether it lies in a writable mount (stdio counts as writable).
    pub(crate) writable: bool,
    pub(crate) rights_base: u64,
    pub(crate) rights_inheriting: u64,
    /// The `DSYNC`/`RSYNC`/`SYNC` fdflags it was opened with (Linux's `F_GETFL` cannot tell
    /// `O_RSYNC` from `O_SYNC`, so they are kept here for `fd_fdstat_get`).
    pub(crate) sync_flags: u16,
    /// What the last sequential `fd_write` through this entry left behind, so the next one
    /// needs no `fstat`/`fcntl`/`lseek` to account the file's growth (see [`WriteState`]).
    pub(crate) write_state: Cell<Option<WriteState>>,
}

/// A file descriptor's offset, its file's size and its append flag, as known after a
/// sequential write. Valid while nothing else moved the offset (any read or seek through the
/// entry, or a flag change, clears it) and no file shrank (`WasiCtx::shrinks`, bumped by every
/// truncation, must still equal `shrinks`). Only under-estimating growth would let a guest
/// exceed its disk quota: the offset is never stale (only this entry moves it), and the size
/// can only be stale-low (another descriptor extended the file), which over-counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WriteState {
    pub(crate) pos: u64,
    pub(crate) size: u64,
    pub(crate) append: bool,
    pub(crate) shrinks: u64,
}

impl FdEntry {
    /// An entry without a known write state.
    pub(crate) fn new(
        kind: Kind,
        host: Option<OwnedFd>,
        writable: bool,
        rights_base: u64,
        rights_inheriting: u64,
    ) -> Self {
        FdEntry { kind, host, writable, rights_base, rights_inheriting, sync_flags: 0, write_state: Cell::new(None) }
    }

    /// `ENOTCAPABLE` unless the entry holds every right in `rights`.
    pub(crate) fn require(&self, rights: u64) -> crate::errno::WasiResult<()> {
        crate::rights::require(self.rights_base, rights)
    }

    /// `ENOTCAPABLE` unless the entry holds at least one right in `rights`.
    pub(crate) fn require_any(&self, rights: u64) -> crate::errno::WasiResult<()> {
        if self.rights_base & rights != 0 {
            Ok(())
        } else {
            Err(crate::errno::Errno::Notcapable)
        }
    }

    pub(crate) fn fd(&self) -> io::Result<BorrowedFd<'_>> {
        self.host.as_ref().map(|f| f.as_fd()).ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }
}

/// Why a WASI context could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A preopened directory could not be opened.
    #[error("failed to open mount '{guest}' ({host}): {source}")]
    Preopen {
        /// Guest path.
        guest: String,
        /// Host path.
        host: PathBuf,
        /// The host's error.
        source: io::Error,
    },
    /// The stdin file could not be opened.
    #[error("failed to open stdin file {path}: {source}")]
    Stdin {
        /// Host path.
        path: PathBuf,
        /// The host's error.
        source: io::Error,
    },
    /// An argument or environment entry contains a NUL byte.
    #[error("argument or environment entry contains a NUL byte: {0:?}")]
    Nul(String),
}

/// Builds a [`WasiCtx`].
#[derive(Debug, Default)]
pub struct WasiCtxBuilder {
    args: Vec<String>,
    env: Vec<(String, String)>,
    preopens: Vec<(HostDir, String, bool)>,
    stdin: Option<Stdin>,
    stdout: Option<Output>,
    stderr: Option<Output>,
    limits: WasiLimits,
    unchecked_paths: bool,
}

impl WasiCtxBuilder {
    /// An empty builder: no args, no env, no preopens, null stdin, inherited output.
    pub fn new() -> Self {
        Self::default()
    }

    /// The guest's argv (`argv[0]` included).
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// The guest's whole environment.
    pub fn env(mut self, env: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = env.into_iter().collect();
        self
    }

    /// Preopens host directory `host` as `guest` (descriptors 3, 4, ... in call order).
    pub fn preopen(mut self, host: impl AsRef<Path>, guest: impl Into<String>, writable: bool) -> Self {
        self.preopens.push((HostDir::Path(host.as_ref().to_path_buf()), guest.into(), writable));
        self
    }

    /// Preopens an already open host directory as `guest` (see [`open_preopen`]).
    pub fn preopen_dir(mut self, dir: OwnedFd, guest: impl Into<String>, writable: bool) -> Self {
        self.preopens.push((HostDir::Open(dir), guest.into(), writable));
        self
    }

    /// Standard input.
    pub fn stdin(mut self, stdin: Stdin) -> Self {
        self.stdin = Some(stdin);
        self
    }

    /// Standard output and error.
    pub fn output(mut self, stdout: Output, stderr: Output) -> Self {
        self.stdout = Some(stdout);
        self.stderr = Some(stderr);
        self
    }

    /// Limits.
    pub fn limits(mut self, limits: WasiLimits) -> Self {
        self.limits = limits;
        self
    }

    /// **Test seam: never use outside that test.** With `true`, WASI stops resolving guest
    /// paths beneath their mount: they go to plain `openat` and `*at` calls relative to the
    /// mount's descriptor, following `..`, absolute paths and symlinks as a naive
    /// implementation would. It exists only for the test that turns this first wall off to
    /// show that the kernel's (each mount its own detached mount) stops escapes on its own.
    /// No policy reaches it; the default is `false`.
    #[doc(hidden)]
    pub fn insecure_unchecked_paths_for_testing(mut self, unchecked: bool) -> Self {
        self.unchecked_paths = unchecked;
        self
    }

    /// Opens the preopens and stdio and builds the context.
    pub fn build(self) -> Result<WasiCtx, BuildError> {
        let nul = |s: &str| if s.contains('\0') { Err(BuildError::Nul(s.to_string())) } else { Ok(()) };
        for a in &self.args {
            nul(a)?;
        }
        for (k, v) in &self.env {
            nul(k)?;
            nul(v)?;
        }
        let dup_std = |fd: i32| {
            // SAFETY: descriptors 0-2 are open for the life of the process (or the dup fails).
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            sys::dup(borrowed).ok()
        };
        let mut fds = BTreeMap::new();
        let stdin_host = match self.stdin.unwrap_or(Stdin::Null) {
            Stdin::Null => None,
            Stdin::Inherit => dup_std(0),
            Stdin::File(fd) => Some(fd),
        };
        // Stdio gets the rights Wasmtime reports for it (see `rights.rs`), never a file's.
        let stdio = |kind, host, rights| FdEntry::new(kind, host, true, rights, rights);
        fds.insert(0, stdio(Kind::Stdin, stdin_host, STDIN_RIGHTS));
        let stdout = self.stdout.unwrap_or(Output::Inherit);
        let stderr = self.stderr.unwrap_or(Output::Inherit);
        let host = |mode, fd| if mode == Output::Inherit { dup_std(fd) } else { None };
        fds.insert(1, stdio(Kind::Stdout, host(stdout, 1), STDOUT_RIGHTS));
        fds.insert(2, stdio(Kind::Stderr, host(stderr, 2), STDOUT_RIGHTS));
        for (i, (host, guest, writable)) in self.preopens.into_iter().enumerate() {
            let dir = match host {
                HostDir::Path(path) => open_preopen(&path, &guest)?,
                HostDir::Open(fd) => fd,
            };
            fds.insert(
                3 + i as u32,
                FdEntry::new(Kind::Dir { preopen: Some(guest) }, Some(dir), writable, DIR_RIGHTS, ALL_RIGHTS),
            );
        }
        Ok(WasiCtx {
            args: self.args.into_iter().map(String::into_bytes).collect(),
            env: self.env.into_iter().map(|(k, v)| format!("{k}={v}").into_bytes()).collect(),
            fds,
            free: BTreeSet::new(),
            limits: self.limits,
            stdout,
            stderr,
            captured: [Vec::new(), Vec::new()],
            usage: Usage::default(),
            shrinks: 0,
            resolve: if self.unchecked_paths { Resolve::Unchecked } else { Resolve::Beneath },
        })
    }
}

/// What the run has consumed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes written to stdout.
    pub stdout_bytes: u64,
    /// Bytes written to stderr.
    pub stderr_bytes: u64,
    /// Bytes added to files.
    pub disk_bytes: u64,
    /// Entries created.
    pub files_created: u64,
}

/// The state of one WASI instance.
#[derive(Debug)]
pub struct WasiCtx {
    pub(crate) args: Vec<Vec<u8>>,
    pub(crate) env: Vec<Vec<u8>>,
    pub(crate) fds: BTreeMap<u32, FdEntry>,
    /// Numbers freed by `fd_close` or `fd_renumber` and not reused yet (see the crate docs
    /// on descriptor numbers).
    pub(crate) free: BTreeSet<u32>,
    pub(crate) limits: WasiLimits,
    pub(crate) stdout: Output,
    pub(crate) stderr: Output,
    pub(crate) captured: [Vec<u8>; 2],
    pub(crate) usage: Usage,
    /// Truncations so far (they invalidate every cached [`WriteState`]).
    pub(crate) shrinks: u64,
    /// How guest paths resolve (beneath their mount, except in one test).
    pub(crate) resolve: Resolve,
}

impl WasiCtx {
    /// What the run consumed.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    /// Takes the captured stdout and stderr.
    pub fn take_captured(&mut self) -> (Vec<u8>, Vec<u8>) {
        let [out, err] = std::mem::take(&mut self.captured);
        (out, err)
    }
}
