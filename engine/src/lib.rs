//! sandboxrun's WebAssembly engine.
//!
//! The pipeline: [`module_info`] loads and validates a binary; [`compile`] translates every
//! function to Cranelift IR ([`translate`]) and compiles it, in parallel, into a relocatable
//! [`artifact::Artifact`]; [`Module`] maps that code executable; a [`Store`] instantiates
//! modules (imports resolved by a [`Linker`]) and calls their exports, turning traps into
//! [`Trap`] values. The engine knows nothing of policies, WASI or confinement.
//!
//! Only x86-64 Linux is supported for now (the trap handling is written for it).

// Errors carry the offending types and names for one-line messages; they are only built on
// cold paths, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod artifact;
mod budget_sites;
mod builtins;
pub mod compile;
mod engine;
mod exceptions;
pub mod features;
pub mod func;
mod func_refs;
pub mod image;
pub mod instance;
pub mod linker;
pub mod module;
pub mod module_info;
mod state;
pub mod store;
mod table_image;
pub mod translate;
pub mod trap;
pub mod types;
pub mod values;
pub mod vm;

pub use engine::{Config, Engine};
pub use func::Caller;
pub use instance::InstantiateError;
pub use linker::{LinkError, Linker};
pub use module::{ImageSource, Module, ModuleError};
pub use store::{BudgetError, CallError, HostError, Store, MAX_INSTRUCTION_BUDGET};
pub use trap::{Trap, TrapKind};
pub use types::*;
pub use values::{ExnRef, Extern, ExternRef, Func, Global, Instance, Memory, Table, Tag, Val};
pub use vm::memory::BoundsStrategy;
