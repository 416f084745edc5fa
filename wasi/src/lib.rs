//! WASI preview1 (and the legacy `wasi_unstable`) host functions over guest memory.
//!
//! The crate knows nothing of the engine: an embedder links each [`FuncSig`] of
//! [`Abi::functions`] as a host function and forwards calls to [`call`] with the caller's
//! memory. Paths resolve beneath their preopened directory with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so a guest cannot name a file outside
//! its mounts, whatever symlinks or `..` it uses (see `path.rs` for how each call does it).
//! Nothing a guest passes makes the host allocate in proportion to it (paths are at most
//! 4096 bytes, iovec lists and poll subscriptions are read in place), and every guest number
//! is checked or saturated before arithmetic.

mod abi;
mod ctx;
mod errno;
mod funcs;
mod memory;
mod path;
mod poll;
mod rights;
mod sys;

pub use abi::{Abi, FuncSig, ValType};
pub use ctx::{open_preopen, open_stdin, BuildError, Output, Stdin, Usage, WasiCtx, WasiCtxBuilder, WasiLimits};
pub use errno::Errno;
pub use funcs::{call, Exit};
pub use rights::ALL_RIGHTS;
