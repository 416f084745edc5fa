//! The two WASI ABIs: function signatures, and the layouts and constants that differ
//! between `wasi_snapshot_preview1` and the legacy `wasi_unstable` (snapshot 0).

/// Which WASI module the guest imports from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// `wasi_snapshot_preview1`.
    Preview1,
    /// `wasi_unstable` (snapshot 0).
    Unstable,
}

/// Parameter and result types of WASI functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValType {
    /// `i32`.
    I32,
    /// `i64`.
    I64,
}

/// A WASI function's name and signature.
#[derive(Clone, Copy, Debug)]
pub struct FuncSig {
    /// Import name.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [ValType],
    /// Result types (the errno, or nothing for `proc_exit`).
    pub results: &'static [ValType],
}

use ValType::{I32, I64};

const fn sig(name: &'static str, params: &'static [ValType]) -> FuncSig {
    FuncSig { name, params, results: &[I32] }
}

/// Every function, in the order [`crate::call`] indexes them.
pub(crate) static FUNCTIONS: &[FuncSig] = &[
    sig("args_get", &[I32, I32]),
    sig("args_sizes_get", &[I32, I32]),
    sig("environ_get", &[I32, I32]),
    sig("environ_sizes_get", &[I32, I32]),
    sig("clock_res_get", &[I32, I32]),
    sig("clock_time_get", &[I32, I64, I32]),
    sig("fd_advise", &[I32, I64, I64, I32]),
    sig("fd_allocate", &[I32, I64, I64]),
    sig("fd_close", &[I32]),
    sig("fd_datasync", &[I32]),
    sig("fd_fdstat_get", &[I32, I32]),
    sig("fd_fdstat_set_flags", &[I32, I32]),
    sig("fd_fdstat_set_rights", &[I32, I64, I64]),
    sig("fd_filestat_get", &[I32, I32]),
    sig("fd_filestat_set_size", &[I32, I64]),
    sig("fd_filestat_set_times", &[I32, I64, I64, I32]),
    sig("fd_pread", &[I32, I32, I32, I64, I32]),
    sig("fd_prestat_get", &[I32, I32]),
    sig("fd_prestat_dir_name", &[I32, I32, I32]),
    sig("fd_pwrite", &[I32, I32, I32, I64, I32]),
    sig("fd_read", &[I32, I32, I32, I32]),
    sig("fd_readdir", &[I32, I32, I32, I64, I32]),
    sig("fd_renumber", &[I32, I32]),
    sig("fd_seek", &[I32, I64, I32, I32]),
    sig("fd_sync", &[I32]),
    sig("fd_tell", &[I32, I32]),
    sig("fd_write", &[I32, I32, I32, I32]),
    sig("path_create_directory", &[I32, I32, I32]),
    sig("path_filestat_get", &[I32, I32, I32, I32, I32]),
    sig("path_filestat_set_times", &[I32, I32, I32, I32, I64, I64, I32]),
    sig("path_link", &[I32, I32, I32, I32, I32, I32, I32]),
    sig("path_open", &[I32, I32, I32, I32, I32, I64, I64, I32, I32]),
    sig("path_readlink", &[I32, I32, I32, I32, I32, I32]),
    sig("path_remove_directory", &[I32, I32, I32]),
    sig("path_rename", &[I32, I32, I32, I32, I32, I32]),
    sig("path_symlink", &[I32, I32, I32, I32, I32]),
    sig("path_unlink_file", &[I32, I32, I32]),
    sig("poll_oneoff", &[I32, I32, I32, I32]),
    FuncSig { name: "proc_exit", params: &[I32], results: &[] },
    sig("proc_raise", &[I32]),
    sig("random_get", &[I32, I32]),
    sig("sched_yield", &[]),
    sig("sock_accept", &[I32, I32, I32]),
    sig("sock_recv", &[I32, I32, I32, I32, I32, I32]),
    sig("sock_send", &[I32, I32, I32, I32, I32]),
    sig("sock_shutdown", &[I32, I32]),
];

impl Abi {
    /// The import module name.
    pub fn module_name(self) -> &'static str {
        match self {
            Abi::Preview1 => "wasi_snapshot_preview1",
            Abi::Unstable => "wasi_unstable",
        }
    }

    /// The ABI of an import module name.
    pub fn from_module_name(name: &str) -> Option<Abi> {
        [Abi::Preview1, Abi::Unstable].into_iter().find(|a| a.module_name() == name)
    }

    /// The functions; [`crate::call`] takes an index into this list.
    pub fn functions(self) -> &'static [FuncSig] {
        // Snapshot 0 has no sock_accept; the rest share names and wasm signatures.
        match self {
            Abi::Preview1 => FUNCTIONS,
            Abi::Unstable => FUNCTIONS,
        }
    }

    /// Host `lseek` whence for a guest whence, `None` if invalid. Preview1 numbers them
    /// set, cur, end; snapshot 0 cur, end, set.
    pub(crate) fn whence(self, w: u32) -> Option<i32> {
        let order = match self {
            Abi::Preview1 => [libc::SEEK_SET, libc::SEEK_CUR, libc::SEEK_END],
            Abi::Unstable => [libc::SEEK_CUR, libc::SEEK_END, libc::SEEK_SET],
        };
        order.get(w as usize).copied()
    }

    /// Encodes a filestat: preview1 has a u64 link count (64 bytes), snapshot 0 a u32 one
    /// (56 bytes).
    pub(crate) fn filestat(self, st: &libc::stat) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&st.st_dev.to_le_bytes());
        out.extend_from_slice(&st.st_ino.to_le_bytes());
        out.push(filetype(st.st_mode));
        match self {
            Abi::Preview1 => {
                out.extend_from_slice(&[0; 7]);
                out.extend_from_slice(&st.st_nlink.to_le_bytes());
            }
            Abi::Unstable => {
                out.extend_from_slice(&[0; 3]);
                out.extend_from_slice(&(st.st_nlink as u32).to_le_bytes());
            }
        }
        out.extend_from_slice(&(st.st_size as u64).to_le_bytes());
        // Saturating: a time before 1970 reads as 0, one past 2554 as u64::MAX.
        let ns = |s: i64, n: i64| match u64::try_from(s) {
            Err(_) => 0,
            Ok(s) => s.saturating_mul(1_000_000_000).saturating_add(n as u64),
        };
        out.extend_from_slice(&ns(st.st_atime, st.st_atime_nsec).to_le_bytes());
        out.extend_from_slice(&ns(st.st_mtime, st.st_mtime_nsec).to_le_bytes());
        out.extend_from_slice(&ns(st.st_ctime, st.st_ctime_nsec).to_le_bytes());
        out
    }

    /// Size of a `poll_oneoff` subscription: snapshot 0's clock subscription has an extra
    /// u64 identifier.
    pub(crate) fn subscription_size(self) -> u32 {
        match self {
            Abi::Preview1 => 48,
            Abi::Unstable => 56,
        }
    }
}

/// WASI file types.
pub(crate) mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const BLOCK_DEVICE: u8 = 1;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SOCKET_STREAM: u8 = 6;
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// The WASI file type of a host `st_mode`.
pub(crate) fn filetype(mode: u32) -> u8 {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => filetype::DIRECTORY,
        libc::S_IFREG => filetype::REGULAR_FILE,
        libc::S_IFLNK => filetype::SYMBOLIC_LINK,
        libc::S_IFCHR => filetype::CHARACTER_DEVICE,
        libc::S_IFBLK => filetype::BLOCK_DEVICE,
        libc::S_IFSOCK => filetype::SOCKET_STREAM,
        _ => filetype::UNKNOWN,
    }
}

/// The WASI file type of a `getdents64` `d_type`.
pub(crate) fn dirent_type(d_type: u8) -> u8 {
    match d_type {
        libc::DT_DIR => filetype::DIRECTORY,
        libc::DT_REG => filetype::REGULAR_FILE,
        libc::DT_LNK => filetype::SYMBOLIC_LINK,
        libc::DT_CHR => filetype::CHARACTER_DEVICE,
        libc::DT_BLK => filetype::BLOCK_DEVICE,
        libc::DT_SOCK => filetype::SOCKET_STREAM,
        _ => filetype::UNKNOWN,
    }
}
