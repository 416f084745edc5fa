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
        let index = self.abi.functions().iter().position(|f| f.name == name).expect(name);
        call(&mut self.ctx, self.abi, index, &mut self.mem, args)
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

    /// path_open(dirfd, path) with the given oflags and rights; returns errno and new fd.
    pub fn open(&mut self, dir: u32, path: &str, oflags: u64, rights: u64, fdflags: u64) -> (u64, u32) {
        self.put(PATH, path.as_bytes());
        let e = self.errno(
            "path_open",
            &[dir as u64, 1, PATH as u64, path.len() as u64, oflags, rights, rights, fdflags, OUT as u64],
        );
        (e, self.u32(OUT))
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
pub const CREAT: u64 = 1;
pub const TRUNC: u64 = 8;
