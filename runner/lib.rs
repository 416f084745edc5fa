//! sandboxrun: run untrusted WebAssembly under a policy, in a supervised child process.
//!
//! The rooms, in the order a run goes through them (`docs/architecture.md` follows a run):
//!
//! - [`cli`]: the command line — arguments, the policy with the command line's overrides,
//!   the run command from its arguments to its exit status, the other commands, and
//!   sandboxrun's own prints.
//! - [`plan`]: what a run is before it starts — its description for the child
//!   ([`plan::spec`]), its host files opened as the run may reach them
//!   ([`plan::host_files`]), its confinement from the policy ([`plan::confinement`]).
//! - [`supervise`]: the parent — start the child, answer it from the code cache, watch it
//!   ([`supervise::watch`]), decide the verdict ([`supervise::verdict`]) and the report
//!   ([`supervise::report`]).
//! - [`child`]: the child — confine, load or compile, link WASI, instantiate, run, report.
//! - [`channels`]: the two channels between them that are more than a message: the code
//!   cache's ([`channels::code`]) and messages with descriptors attached ([`channels::fds`]).
//!   Every message's format is the `protocol` crate's.
//! - [`server`]: `sandboxrun serve` — slots with children prepared ahead of time, and its
//!   clients.
//! - [`grading`]: `sandboxrun grade` — the `grade` crate's judging, its runs through a
//!   server of its own.
//! - [`worker`]: `sandboxrun worker` and `submit` — runs and gradings from a NATS JetStream
//!   queue, through the same server.

pub mod channels;
pub mod child;
pub mod cli;
pub mod grading;
pub mod plan;
pub mod server;
pub mod supervise;
pub mod worker;
