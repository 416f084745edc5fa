//! Traps: the ways a WebAssembly computation can stop abnormally.
//!
//! [`TrapKind`] is the one trap enum of the engine. Its `Display` uses the wording of the
//! WebAssembly specification's test suite; [`TrapKind::to_byte`] / [`TrapKind::from_byte`] give
//! the compact form stored in compiled artifacts' trap tables.

use cranelift_codegen::ir::TrapCode;
use std::fmt;

/// Why WebAssembly code trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// The `unreachable` instruction was executed.
    Unreachable,
    /// Integer division or remainder by zero.
    IntegerDivideByZero,
    /// Integer overflow (`INT_MIN / -1`, or a float-to-int conversion out of range).
    IntegerOverflow,
    /// A float-to-int conversion of NaN.
    InvalidConversionToInteger,
    /// A load or store outside the linear memory (including in the guard region), or a bulk
    /// memory operation past its end.
    MemoryOutOfBounds,
    /// `call_indirect` found a function of another type.
    IndirectCallTypeMismatch,
    /// `call_indirect` found a null entry.
    UninitializedElement,
    /// `call_indirect` indexed past the end of its table.
    UndefinedElement,
    /// `table.get`/`set`/`fill`/`copy`/`init` out of the table's bounds.
    TableOutOfBounds,
    /// The wasm call stack exceeded its limit.
    StackOverflow,
    /// The store's instruction budget was exhausted (only in code compiled with
    /// [`crate::Config::count_instructions`]).
    InstructionBudget,
    /// `throw_ref` of a null exception reference.
    NullExceptionReference,
    /// An exception no handler caught reached the host (a call from the host, or a host
    /// function's call into wasm): [`Trap::tag`] names its tag.
    UncaughtException,
    /// A new exception object would pass the store's memory limit, which bounds exception
    /// objects and linear memories together (not a trap of the specification: the
    /// embedder's limit, like a refused `memory.grow`).
    ExceptionsOutOfMemory,
    /// `call_ref` or `return_call_ref` of a null function reference.
    NullFunctionReference,
    /// `ref.as_non_null` of null.
    NullReference,
}

impl TrapKind {
    /// Every trap kind, in byte order.
    pub const ALL: [TrapKind; 16] = [
        TrapKind::Unreachable,
        TrapKind::IntegerDivideByZero,
        TrapKind::IntegerOverflow,
        TrapKind::InvalidConversionToInteger,
        TrapKind::MemoryOutOfBounds,
        TrapKind::IndirectCallTypeMismatch,
        TrapKind::UninitializedElement,
        TrapKind::UndefinedElement,
        TrapKind::TableOutOfBounds,
        TrapKind::StackOverflow,
        TrapKind::InstructionBudget,
        TrapKind::NullExceptionReference,
        TrapKind::UncaughtException,
        TrapKind::ExceptionsOutOfMemory,
        TrapKind::NullFunctionReference,
        TrapKind::NullReference,
    ];

    /// The compact byte form stored in trap tables.
    pub fn to_byte(self) -> u8 {
        Self::ALL.iter().position(|k| *k == self).expect("listed") as u8
    }

    /// Decodes [`TrapKind::to_byte`]; `None` for a byte no kind has.
    pub fn from_byte(byte: u8) -> Option<TrapKind> {
        Self::ALL.get(usize::from(byte)).copied()
    }

    /// The Cranelift trap code the translator attaches to instructions that raise this trap.
    pub fn to_trap_code(self) -> TrapCode {
        match self {
            TrapKind::StackOverflow => TrapCode::STACK_OVERFLOW,
            TrapKind::MemoryOutOfBounds => TrapCode::HEAP_OUT_OF_BOUNDS,
            TrapKind::IntegerOverflow => TrapCode::INTEGER_OVERFLOW,
            TrapKind::IntegerDivideByZero => TrapCode::INTEGER_DIVISION_BY_ZERO,
            TrapKind::InvalidConversionToInteger => TrapCode::BAD_CONVERSION_TO_INTEGER,
            // User codes start at 1: the reserved ones are Cranelift's own.
            other => TrapCode::unwrap_user(other.to_byte() + 1),
        }
    }

    /// Maps a trap code found in Cranelift's trap metadata back to the trap kind.
    pub fn from_trap_code(code: TrapCode) -> Option<TrapKind> {
        Self::ALL.iter().copied().find(|k| k.to_trap_code() == code)
    }

    /// The specification's wording for this trap.
    pub fn message(self) -> &'static str {
        match self {
            TrapKind::Unreachable => "unreachable",
            TrapKind::IntegerDivideByZero => "integer divide by zero",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::InvalidConversionToInteger => "invalid conversion to integer",
            TrapKind::MemoryOutOfBounds => "out of bounds memory access",
            TrapKind::IndirectCallTypeMismatch => "indirect call type mismatch",
            TrapKind::UninitializedElement => "uninitialized element",
            TrapKind::UndefinedElement => "undefined element",
            TrapKind::TableOutOfBounds => "out of bounds table access",
            TrapKind::StackOverflow => "call stack exhausted",
            TrapKind::InstructionBudget => "instruction budget exhausted",
            TrapKind::NullExceptionReference => "null exception reference",
            TrapKind::UncaughtException => "uncaught exception",
            TrapKind::ExceptionsOutOfMemory => "out of memory for exception objects",
            TrapKind::NullFunctionReference => "null function reference",
            TrapKind::NullReference => "null reference",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_and_trap_code_round_trip() {
        for kind in TrapKind::ALL {
            assert_eq!(TrapKind::from_byte(kind.to_byte()), Some(kind));
            assert_eq!(TrapKind::from_trap_code(kind.to_trap_code()), Some(kind));
        }
        assert_eq!(TrapKind::from_byte(200), None);
    }
}

/// A trap as reported to the embedder: what happened and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    /// What happened.
    pub kind: TrapKind,
    /// The function that trapped (index and name), when the trap was in wasm code.
    pub function: Option<(u32, String)>,
    /// Offset of the trapping instruction in that function's machine code.
    pub offset: Option<u32>,
    /// For [`TrapKind::UncaughtException`]: the exception's tag, `'name'` by the name its
    /// defining module exports it under, else its index in that module (`host N` for a tag
    /// the host made).
    pub tag: Option<String>,
}

impl Trap {
    /// A trap with no location (raised by the runtime, e.g. during instantiation).
    pub fn new(kind: TrapKind) -> Self {
        Trap { kind, function: None, offset: None, tag: None }
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasm trap: {}", self.kind)?;
        if let Some(tag) = &self.tag {
            write!(f, " (tag {tag})")?;
        }
        if let Some((index, name)) = &self.function {
            write!(f, " in function {index} ({name})")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " at code offset {offset:#x}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}
