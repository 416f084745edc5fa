//! sandboxrun: run untrusted WebAssembly under a policy, in a supervised child process.
//!
//! - [`cli`]: the command line; [`command`]: a run command, from its arguments to its exit
//!   status.
//! - [`run`]: the parent: fork, supervise, verdict ([`supervisor`], [`report`]).
//! - [`server`]: `sandboxrun serve`, whose slots run commands for [`client`]s with a child
//!   [`prepared`] ahead of time; [`fd_passing`]: messages with descriptors attached;
//!   [`warm_text`]: the warm path's code mapped ahead.
//! - [`confinement`]: the run's confinement from its policy; [`verdict`]: how a run ended;
//!   [`oom`]: failed allocations end the process with a status the parent understands.
//! - [`code_channel`]: the code cache as the child sees it, through the supervisor.
//! - [`child`]: the child's pipeline: load, compile, WASI, link, instantiate, execute.
//! - [`wasi_link`]: WASI host functions linked into the engine.
//! - [`inspect`]: `sandboxrun inspect`.
//! - [`output`]: sandboxrun's own prints (a failed write never changes the exit status) and
//!   the escaping of text a module controls.

pub mod child;
pub mod cli;
pub mod client;
pub mod code_channel;
pub mod command;
pub mod confinement;
pub mod fd_passing;
pub mod host_files;
pub mod inspect;
pub mod oom;
pub mod output;
pub mod prepared;
pub mod report;
pub mod run;
pub mod server;
pub mod supervisor;
pub mod verdict;
pub mod warm_text;
pub mod wasi_link;
