//! The runtime's low level: the layout compiled code reads (`vmctx`), memory mappings
//! (`sys`), linear memories, executable code, and trap handling.

pub mod code_memory;
pub mod memory;
pub mod sys;
pub mod traps;
pub mod vmctx;
