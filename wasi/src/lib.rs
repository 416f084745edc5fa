//! WASI preview1 (and the legacy `wasi_unstable`) host functions over guest memory.
//!
//! The crate knows nothing of the engine: an embedder looks each WASI import up once
//! ([`Abi::lookup`] gives a typed [`Func`], whose [`Func::sig`] is its wasm signature), links
//! a host function for it, and forwards calls to [`call`] with the caller's memory: the
//! dispatch is a match on the function, with no name compared and nothing allocated per call. Paths resolve beneath their preopened directory with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so a guest cannot name a file outside
//! its mounts, whatever symlinks or `..` it uses (see `path.rs` for how each call does it).
//! Nothing a guest passes makes the host allocate in proportion to it (paths are at most
//! 4096 bytes, iovec lists and poll subscriptions are read in place), and every guest number
//! is checked or saturated before arithmetic.
//!
//! # Descriptor numbers
//!
//! Stdio is 0, 1 and 2, the preopens 3, 4, ... in the order they were added. A new
//! descriptor (`path_open`) takes the number Wasmtime's preview1 would give it
//! (`crates/wasi/src/p1.rs`, `Descriptors::push`): the *highest* number freed and not reused
//! yet, else one past the highest number in use. A number is freed by `fd_close`, and by
//! `fd_renumber(from, to)`, which frees `from` (and reuses `to`). Never the lowest free
//! number, as POSIX would: a program that moves stdout with `fd_renumber(1, n)` and then
//! opens a file after closing another gets that other number, not 1 (the file's text would
//! otherwise go where stdout went before). With nothing freed but 1, 1 is reused, as in
//! Wasmtime.
//!
//! # Rights
//!
//! Preview1 rights are enforced as the standard says (`ENOTCAPABLE`; only ever reduced), with
//! the starting rights Wasmtime reports: see `rights.rs`. Wasmtime itself no longer checks
//! them.

mod abi;
mod ctx;
mod errno;
mod funcs;
mod memory;
mod path;
mod poll;
mod rights;
mod sys;

pub use abi::{Abi, Func, FuncSig, ValType, MAX_PARAMS};
pub use ctx::{open_preopen, open_stdin, BuildError, Output, Stdin, Usage, WasiCtx, WasiCtxBuilder, WasiLimits};
pub use errno::Errno;
pub use funcs::{call, Exit};
pub use rights::ALL_RIGHTS;
