//! Helpers shared by the integration tests: a guest whose memory is a plain byte vector,
//! calls by name, and temporary directories.

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::path::PathBuf;
use wasi::{call, Abi, Exit, WasiCtx, WasiCtxBuilder};

pub const MEM: usize = 1 << 16;
pub const PATH: u32 = 1024; // where tests put path strings
pub const OUT: u32 = 2048; // where results are written
pub const IOV: u32 = 3072; // iovec array
pub const BUF: u32 = 4096; // data buffers

/// A WASI context with its guest memory.
pub struct Guest {
    pub ctx: WasiCtx,
    pub abi: Abi,
    pub mem: Vec<u8>,
}

/// A fresh, empty temporary directory for this test process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandboxrun-wasi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Guest {
    pub fn new(builder: WasiCtxBuilder) -> Self {
        Self::with_memory(builder, MEM)
    }

    /// A guest with `size` bytes of (zeroed) memory.
    pub fn with_memory(builder: WasiCtxBuilder, size: usize) -> Self {
        Guest { ctx: builder.build().unwrap(), abi: Abi::Preview1, mem: vec![0; size] }
    }

    pub fn call(&mut self, name: &str, args: &[u64]) -> Result<u64, Exit> {
        let func = self.abi.lookup(name).expect(name);
        call(&mut self.ctx, self.abi, func, &mut self.mem, args)
    }

    pub fn errno(&mut self, name: &str, args: &[u64]) -> u64 {
        self.call(name, args).expect("no exit")
    }

    pub fn put(&mut self, at: u32, bytes: &[u8]) {
        self.mem[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    }

    pub fn u32(&self, at: u32) -> u32 {
        u32::from_le_bytes(self.mem[at as usize..at as usize + 4].try_into().unwrap())
    }

    pub fn u64(&self, at: u32) -> u64 {
        u64::from_le_bytes(self.mem[at as usize..at as usize + 8].try_into().unwrap())
    }

    /// path_open(dirfd, path) with the given oflags, following symlinks, asking the rights
    /// wasi-libc's `open` asks for an access mode of `READ` and/or `WRITE` (see
    /// [`libc_rights`]); returns errno and new fd.
    pub fn open(&mut self, dir: u32, path: &str, oflags: u64, rights: u64, fdflags: u64) -> (u64, u32) {
        let rights = libc_rights(rights);
        self.open_exact(dir, path, oflags, rights, rights, fdflags)
    }

    /// path_open(dirfd, path) with exactly these rights; returns errno and new fd.
    pub fn open_exact(
        &mut self,
        dir: u32,
        path: &str,
        oflags: u64,
        base: u64,
        inheriting: u64,
        fdflags: u64,
    ) -> (u64, u32) {
        self.put(PATH, path.as_bytes());
        self.put(OUT, &[0; 4]);
        let e = self.errno(
            "path_open",
            &[dir as u64, 1, PATH as u64, path.len() as u64, oflags, base, inheriting, fdflags, OUT as u64],
        );
        (e, self.u32(OUT))
    }

    /// fd_fdstat_get(fd): errno, fdflags, base and inheriting rights.
    pub fn fdstat(&mut self, fd: u32) -> (u64, u16, u64, u64) {
        let e = self.errno("fd_fdstat_get", &[fd as u64, OUT as u64]);
        let flags = u16::from_le_bytes([self.mem[OUT as usize + 2], self.mem[OUT as usize + 3]]);
        (e, flags, self.u64(OUT + 8), self.u64(OUT + 16))
    }

    /// fd_write(fd, data) returning errno and bytes written.
    pub fn write(&mut self, fd: u32, data: &[u8]) -> Result<(u64, u32), Exit> {
        self.put(BUF, data);
        self.put(IOV, &BUF.to_le_bytes());
        self.put(IOV + 4, &(data.len() as u32).to_le_bytes());
        let e = self.call("fd_write", &[fd as u64, IOV as u64, 1, OUT as u64])?;
        Ok((e, self.u32(OUT)))
    }

    pub fn read(&mut self, fd: u32, len: u32) -> (u64, Vec<u8>) {
        self.put(IOV, &BUF.to_le_bytes());
        self.put(IOV + 4, &len.to_le_bytes());
        let e = self.errno("fd_read", &[fd as u64, IOV as u64, 1, OUT as u64]);
        let n = self.u32(OUT) as usize;
        (e, self.mem[BUF as usize..BUF as usize + n].to_vec())
    }

    pub fn path_op(&mut self, name: &str, dir: u32, path: &str) -> u64 {
        self.put(PATH, path.as_bytes());
        self.errno(name, &[dir as u64, PATH as u64, path.len() as u64])
    }
}

pub const WRITE: u64 = 1 << 6;
pub const READ: u64 = 1 << 1;
pub const SEEK: u64 = 1 << 2;
pub const TELL: u64 = 1 << 5;
pub const ALL_RIGHTS: u64 = (1 << 30) - 1;

/// The rights wasi-libc's `open` asks for: every right no access mode excludes, plus those
/// of the access modes in `rights` (`READ`: read and readdir; `WRITE`: write, datasync,
/// allocate and set-size).
pub fn libc_rights(rights: u64) -> u64 {
    const DATASYNC: u64 = 1 << 0;
    const ALLOCATE: u64 = 1 << 8;
    const READDIR: u64 = 1 << 14;
    const SET_SIZE: u64 = 1 << 22;
    let mut r = ALL_RIGHTS & !(DATASYNC | READ | WRITE | ALLOCATE | READDIR | SET_SIZE);
    if rights & READ != 0 {
        r |= READ | READDIR;
    }
    if rights & WRITE != 0 {
        r |= WRITE | DATASYNC | ALLOCATE | SET_SIZE;
    }
    r
}
pub const CREAT: u64 = 1;
pub const TRUNC: u64 = 8;
