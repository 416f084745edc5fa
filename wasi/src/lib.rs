//! WASI preview1 (and the legacy `wasi_unstable`) host functions over guest memory.
//!
//! The crate knows nothing of the engine: an embedder links each [`FuncSig`] of
//! [`Abi::functions`] as a host function and forwards calls to [`call`] with the caller's
//! memory. Paths resolve beneath their preopened directory with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so a guest cannot name a file outside
//! its mounts, whatever symlinks or `..` it uses.

mod abi;
mod ctx;
mod errno;
mod funcs;
mod memory;
mod path;
mod poll;
mod sys;

pub use abi::{Abi, FuncSig, ValType};
pub use ctx::{
    open_preopen, open_stdin, BuildError, Output, Stdin, Usage, WasiCtx, WasiCtxBuilder, WasiLimits, ALL_RIGHTS,
};
pub use errno::Errno;
pub use funcs::{call, Exit};
