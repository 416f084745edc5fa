//! Plugins (issue #19): each plugin — a WebAssembly module — runs in confined processes of
//! its own, and the host calls it in microseconds.
//!
//! ```no_run
//! use sandboxrun_plugin::{OnFailure, Plugin};
//! use std::time::Duration;
//!
//! fn main() {
//!     // First thing: in a keeper process this runs the keeper and never returns.
//!     sandboxrun_plugin::run_if_child();
//!     let wasm = std::fs::read("plugin.wasm").unwrap();
//!     let plugin = Plugin::builder(wasm)
//!         .call_timeout(Duration::from_millis(100))
//!         .instances(2)
//!         .on_failure(OnFailure::Restart { max_per_minute: 10 })
//!         .host_fn("log", |bytes| { eprintln!("{}", String::from_utf8_lossy(bytes)); Ok(Vec::new()) })
//!         .build()
//!         .unwrap();
//!     let out = plugin.call("render", b"input").unwrap();
//!     # drop(out);
//! }
//! ```
//!
//! # Processes
//!
//! The host never forks (it is multi-threaded; `sandbox::spawn` needs a single-threaded
//! process). [`PluginBuilder::build`] starts the host's own executable again
//! (`std::env::current_exe()`, with [`keeper::ENV_MARKER`] set and a control socket at fd 3),
//! once per instance slot: that fresh process, single-threaded because its `main` called
//! [`run_if_child`] first, is the *instance keeper*. The keeper starts confined children with
//! `sandbox::spawn` and keeps one ready ahead; each child confines itself as a run's child
//! does, compiles the module and waits on its call socket. The keeper hands the host the
//! child's call socket, its payload window (a sealed memfd) and a pidfd (SCM_RIGHTS), reaps
//! children and says how they ended. The host then talks to the child directly
//! (SOCK_SEQPACKET, frames of the `protocol` crate); a timeout kills the child through its
//! pidfd. See `docs/plugins.md`.
//!
//! # Modules
//!
//! [`messages`] (the frames), [`plugin`] (the API), [`instance`] (a slot, host side),
//! [`keeper`], [`child`] (the confined instance), [`confine`] (policy to confinement),
//! [`spin`] (spinning before blocking), [`cpu`] (the per-call CPU budget), [`sys`] (system
//! calls), [`error`]; with feature `tokio`, `asynchronous` (async host functions and calls).

#![deny(missing_docs)]

#[cfg(feature = "tokio")]
pub mod asynchronous;
pub mod child;
pub mod confine;
pub mod cpu;
pub mod error;
pub mod instance;
pub mod keeper;
pub mod messages;
pub mod plugin;
pub mod spin;
pub mod sys;

#[cfg(feature = "tokio")]
pub use asynchronous::{AsyncHostFn, HostFuture};
pub use error::{BuildError, CallError};
pub use messages::Val;
pub use plugin::{HostFn, InstanceStats, OnFailure, Plugin, PluginBuilder, Session, Stats};

/// Call first thing in `main`, before any thread starts. In the host it returns at once; in a
/// process the library started from the host's executable (an instance keeper) it runs the
/// keeper and exits, never returning.
pub fn run_if_child() {
    if std::env::var_os(keeper::ENV_MARKER).is_none() {
        return;
    }
    // A failed allocation in an instance would print a backtrace, whose symbol lookup the
    // instance's seccomp filter refuses (a death by SIGSYS instead of the memory verdict).
    // The keeper is single-threaded: no other thread reads the environment.
    std::env::remove_var("RUST_BACKTRACE");
    std::env::remove_var("RUST_LIB_BACKTRACE");
    // SAFETY: the keeper's control socket, placed at this number by the host before exec; no
    // other object owns it.
    let control = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(keeper::CONTROL_FD) };
    // Marked close-on-exec again: nothing the keeper starts may inherit it.
    // SAFETY: fcntl on our own descriptor.
    unsafe { libc::fcntl(keeper::CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    std::process::exit(keeper::main(control));
}
