//! The runtime's low level: the layout compiled code reads (`vmctx`), memory mappings
//! (`sys`), linear memories, executable code, trap handling, and unwinding to exception
//! handlers (`unwind`).

pub mod code_memory;
pub mod memory;
pub mod sys;
pub mod traps;
pub mod unwind;
pub mod vmctx;
