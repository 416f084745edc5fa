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

/// Defines [`Func`] — one variant per WASI function — and its signature table, from one list:
/// the dispatch in [`crate::call`] matches on the variant (exhaustively), and the linker
/// looks imports up by name once, when a module is linked, never per call.
macro_rules! wasi_functions {
    ($($variant:ident = $name:literal ($($param:ident),*) -> [$($result:ident)?];)*) => {
        /// A WASI function (both ABIs share names and wasm signatures).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Func {
            $(
                #[doc = concat!("`", $name, "`.")]
                $variant,
            )*
        }

        impl Func {
            /// Every function.
            pub const ALL: &'static [Func] = &[$(Func::$variant),*];

            /// Its import name and wasm signature.
            pub fn sig(self) -> FuncSig {
                match self {
                    $(Func::$variant => FuncSig { name: $name, params: &[$($param),*], results: &[$($result)?] },)*
                }
            }

            /// The function an import names, if any.
            pub fn from_name(name: &str) -> Option<Func> {
                match name {
                    $($name => Some(Func::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

wasi_functions! {
    ArgsGet = "args_get" (I32, I32) -> [I32];
    ArgsSizesGet = "args_sizes_get" (I32, I32) -> [I32];
    EnvironGet = "environ_get" (I32, I32) -> [I32];
    EnvironSizesGet = "environ_sizes_get" (I32, I32) -> [I32];
    ClockResGet = "clock_res_get" (I32, I32) -> [I32];
    ClockTimeGet = "clock_time_get" (I32, I64, I32) -> [I32];
    FdAdvise = "fd_advise" (I32, I64, I64, I32) -> [I32];
    FdAllocate = "fd_allocate" (I32, I64, I64) -> [I32];
    FdClose = "fd_close" (I32) -> [I32];
    FdDatasync = "fd_datasync" (I32) -> [I32];
    FdFdstatGet = "fd_fdstat_get" (I32, I32) -> [I32];
    FdFdstatSetFlags = "fd_fdstat_set_flags" (I32, I32) -> [I32];
    FdFdstatSetRights = "fd_fdstat_set_rights" (I32, I64, I64) -> [I32];
    FdFilestatGet = "fd_filestat_get" (I32, I32) -> [I32];
    FdFilestatSetSize = "fd_filestat_set_size" (I32, I64) -> [I32];
    FdFilestatSetTimes = "fd_filestat_set_times" (I32, I64, I64, I32) -> [I32];
    FdPread = "fd_pread" (I32, I32, I32, I64, I32) -> [I32];
    FdPrestatGet = "fd_prestat_get" (I32, I32) -> [I32];
    FdPrestatDirName = "fd_prestat_dir_name" (I32, I32, I32) -> [I32];
    FdPwrite = "fd_pwrite" (I32, I32, I32, I64, I32) -> [I32];
    FdRead = "fd_read" (I32, I32, I32, I32) -> [I32];
    FdReaddir = "fd_readdir" (I32, I32, I32, I64, I32) -> [I32];
    FdRenumber = "fd_renumber" (I32, I32) -> [I32];
    FdSeek = "fd_seek" (I32, I64, I32, I32) -> [I32];
    FdSync = "fd_sync" (I32) -> [I32];
    FdTell = "fd_tell" (I32, I32) -> [I32];
    FdWrite = "fd_write" (I32, I32, I32, I32) -> [I32];
    PathCreateDirectory = "path_create_directory" (I32, I32, I32) -> [I32];
    PathFilestatGet = "path_filestat_get" (I32, I32, I32, I32, I32) -> [I32];
    PathFilestatSetTimes = "path_filestat_set_times" (I32, I32, I32, I32, I64, I64, I32) -> [I32];
    PathLink = "path_link" (I32, I32, I32, I32, I32, I32, I32) -> [I32];
    PathOpen = "path_open" (I32, I32, I32, I32, I32, I64, I64, I32, I32) -> [I32];
    PathReadlink = "path_readlink" (I32, I32, I32, I32, I32, I32) -> [I32];
    PathRemoveDirectory = "path_remove_directory" (I32, I32, I32) -> [I32];
    PathRename = "path_rename" (I32, I32, I32, I32, I32, I32) -> [I32];
    PathSymlink = "path_symlink" (I32, I32, I32, I32, I32) -> [I32];
    PathUnlinkFile = "path_unlink_file" (I32, I32, I32) -> [I32];
    PollOneoff = "poll_oneoff" (I32, I32, I32, I32) -> [I32];
    ProcExit = "proc_exit" (I32) -> [];
    ProcRaise = "proc_raise" (I32) -> [I32];
    RandomGet = "random_get" (I32, I32) -> [I32];
    SchedYield = "sched_yield" () -> [I32];
    SockAccept = "sock_accept" (I32, I32, I32) -> [I32];
    SockRecv = "sock_recv" (I32, I32, I32, I32, I32, I32) -> [I32];
    SockSend = "sock_send" (I32, I32, I32, I32, I32) -> [I32];
    SockShutdown = "sock_shutdown" (I32, I32) -> [I32];
}

/// The most parameters a WASI function takes (`path_open`'s nine).
pub const MAX_PARAMS: usize = 9;

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

    /// The function `name` imported from this ABI's module, if it is one.
    pub fn lookup(self, name: &str) -> Option<Func> {
        // Snapshot 0 shares names and wasm signatures with preview1.
        Func::from_name(name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_found_by_its_name_and_fits_the_argument_buffer() {
        assert_eq!(Func::ALL.len(), 46);
        for f in Func::ALL {
            let sig = f.sig();
            assert_eq!(Abi::Preview1.lookup(sig.name), Some(*f));
            assert!(sig.params.len() <= MAX_PARAMS, "{}", sig.name);
            assert!(sig.results.len() <= 1, "{}", sig.name);
        }
        assert_eq!(Abi::Unstable.lookup("fd_write"), Some(Func::FdWrite));
        assert_eq!(Abi::Preview1.lookup("fd_writ"), None);
        assert_eq!(Func::ProcExit.sig().results, &[] as &[ValType]);
    }
}
