//! Step 7, seccomp (last): exactly the system calls a confined run needs, for the rest the
//! process dies by SIGSYS with the call named for the parent.
//!
//! - [`list`]: the shape of the lists and the number-to-name lookup;
//! - [`calls`]: the lists, data reviewed like code, every architecture's numbers side by side;
//! - [`bpf`]: the code generator (a decision tree over the numbers) and an evaluator for tests;
//! - [`filter`]: compiling them (once, before forking) and installing them;
//! - [`report`]: the SIGSYS reporter and the page the parent reads the number from.

pub mod bpf;
mod calls;
pub mod filter;
pub mod list;
pub mod report;

pub use filter::{apply, compile_filter, Filter, SeccompError, PID_IN_NAMESPACE};
pub use list::{syscall_name, Arch, Denied, Entry, Rule};
pub use report::{Violation, ViolationSlot};
