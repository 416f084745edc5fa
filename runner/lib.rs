//! sandboxrun: run untrusted WebAssembly under a policy, in a supervised child process.
//!
//! - [`cli`]: the command line.
//! - [`run`]: the parent: fork, supervise, verdict ([`supervisor`], [`report`]).
//! - [`child`]: the child's pipeline: load, compile, WASI, link, instantiate, execute.
//! - [`wasi_link`]: WASI host functions linked into the engine.
//! - [`inspect`]: `sandboxrun inspect`.

pub mod child;
pub mod cli;
pub mod inspect;
pub mod report;
pub mod run;
pub mod supervisor;
pub mod wasi_link;
