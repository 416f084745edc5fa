//! The layout of the data compiled code reads: the per-instance `VMContext` and the structures
//! it points to. The translator reads offsets from here and the runtime writes the data, so this
//! file is the single contract between them.
//!
//! A `VMContext` is a block of pointer-sized slots:
//!
//! | offset            | slot                                                   |
//! |-------------------|--------------------------------------------------------|
//! | 0                 | `*mut Instance` (runtime back-pointer, used by builtins) |
//! | 8                 | `*const VMLimits` (the store's stack limit)            |
//! | 16                | `*const [usize; BUILTIN_COUNT]` (builtin functions)    |
//! | 24                | `*const u32` (canonical signature id per type index)   |
//! | 32                | base address of memory 0 (never moves)                 |
//! | 40                | `*mut VMMemoryDefinition` of memory 0                  |
//! | 48                | `*const *const VMFuncRef` (one per function index)     |
//! | 56 + 8·t          | `*mut VMTableDefinition` of table t                    |
//! | 56 + 8·T + 8·g    | `*mut VMGlobal` of global g                            |
//! | 56 + 8·T + 8·G + 8·x | identity of exception tag x (see [`TagIdentity`])   |
//! | 56 + 8·(T+G+X) + 16·(m−1) | base address of memory m ≥ 1 (never moves)     |
//! | … + 8             | `*mut VMMemoryDefinition` of memory m ≥ 1              |
//!
//! Memory 0 (the only one before multi-memory, and the one WASI programs use) keeps its two
//! slots at fixed offsets.

use crate::module_info::ModuleInfo;
use crate::types::{GlobalIndex, MemoryIndex, TableIndex, TagIndex};
use cranelift_codegen::ir::types as ir_types;

/// Offset of the instance back-pointer.
pub const VMCTX_INSTANCE: i32 = 0;
/// Offset of the `*const VMLimits` slot.
pub const VMCTX_LIMITS: i32 = 8;
/// Offset of the builtin-function table pointer.
pub const VMCTX_BUILTINS: i32 = 16;
/// Offset of the signature-id array pointer.
pub const VMCTX_TYPE_IDS: i32 = 24;
/// Offset of memory 0's base address.
pub const VMCTX_MEMORY_BASE: i32 = 32;
/// Offset of memory 0's `*mut VMMemoryDefinition`.
pub const VMCTX_MEMORY_DEF: i32 = 40;
/// Offset of the function-reference array pointer.
pub const VMCTX_FUNC_REFS: i32 = 48;
const VMCTX_TABLES: i32 = 56;

/// Offsets of the module-dependent slots of a `VMContext`.
#[derive(Clone, Copy, Debug)]
pub struct VMOffsets {
    num_tables: u32,
    num_globals: u32,
    num_tags: u32,
    num_memories: u32,
}

impl VMOffsets {
    /// Layout for instances of `module`.
    pub fn new(module: &ModuleInfo) -> Self {
        VMOffsets {
            num_tables: module.tables.len() as u32,
            num_globals: module.globals.len() as u32,
            num_tags: module.tags.len() as u32,
            num_memories: module.memories.len() as u32,
        }
    }

    /// Slot of table `t`'s definition pointer.
    pub fn table(&self, t: TableIndex) -> i32 {
        VMCTX_TABLES + 8 * t.0 as i32
    }

    /// Slot of global `g`'s pointer.
    pub fn global(&self, g: GlobalIndex) -> i32 {
        VMCTX_TABLES + 8 * (self.num_tables + g.0) as i32
    }

    /// Slot of tag `x`'s identity.
    pub fn tag(&self, x: TagIndex) -> i32 {
        VMCTX_TABLES + 8 * (self.num_tables + self.num_globals + x.0) as i32
    }

    /// Slot of memory `m`'s base address.
    pub fn memory_base(&self, m: MemoryIndex) -> i32 {
        match m.0 {
            0 => VMCTX_MEMORY_BASE,
            m => VMCTX_TABLES + 8 * (self.num_tables + self.num_globals + self.num_tags) as i32 + 16 * (m as i32 - 1),
        }
    }

    /// Slot of memory `m`'s `*mut VMMemoryDefinition`.
    pub fn memory_def(&self, m: MemoryIndex) -> i32 {
        match m.0 {
            0 => VMCTX_MEMORY_DEF,
            _ => self.memory_base(m) + 8,
        }
    }

    /// Size of the whole context in bytes.
    pub fn size(&self) -> usize {
        let extra_memories = self.num_memories.saturating_sub(1) as usize;
        (VMCTX_TABLES as usize)
            + 8 * (self.num_tables + self.num_globals + self.num_tags) as usize
            + 16 * extra_memories
    }
}

/// Per-store execution limits read by function prologues.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VMLimits {
    /// Lowest stack address wasm code may use; the prologue traps below it.
    pub stack_limit: usize,
    /// Instructions the store may still execute, negative past its budget, while host code
    /// runs (compiled code keeps it in a register: see `translate::budget`). Unused without
    /// counting.
    pub instructions_left: i64,
}

/// Offset of `VMLimits::stack_limit`.
pub const VMLIMITS_STACK_LIMIT: i32 = 0;
/// Offset of `VMLimits::instructions_left`.
pub const VMLIMITS_INSTRUCTIONS: i32 = 8;

/// A function as compiled code sees it: what `ref.func`, tables and imports point to.
#[repr(C)]
#[derive(Debug)]
pub struct VMFuncRef {
    /// Code with the wasm calling convention `(callee_vmctx, caller_vmctx, params...)`.
    pub wasm_call: *const u8,
    /// The callee's context: its instance's `VMContext`, or a host function's context.
    pub vmctx: *mut u8,
    /// Trampoline `extern "C" fn(callee_vmctx, wasm_call, caller_vmctx, values: *mut ValRaw)`.
    pub array_call: *const u8,
    /// Canonical signature id (engine-wide).
    pub type_id: u32,
}

/// Offset of `VMFuncRef::wasm_call`.
pub const FUNCREF_WASM_CALL: i32 = 0;
/// Offset of `VMFuncRef::vmctx`.
pub const FUNCREF_VMCTX: i32 = 8;
/// Offset of `VMFuncRef::type_id`.
pub const FUNCREF_TYPE_ID: i32 = 24;

/// A table's storage as compiled code sees it.
#[repr(C)]
#[derive(Debug)]
pub struct VMTableDefinition {
    /// Elements: `*const VMFuncRef` or extern handles, 0 = null.
    pub base: *mut usize,
    /// Current number of elements.
    pub current_elements: u32,
    /// Non-zero while elements not yet read come from an image (see `crate::table_image`):
    /// `table.set` fills the table before writing.
    pub lazy: u32,
}

/// Offset of `VMTableDefinition::base`.
pub const TABLE_BASE: i32 = 0;
/// Offset of `VMTableDefinition::current_elements`.
pub const TABLE_LENGTH: i32 = 8;
/// Offset of `VMTableDefinition::lazy`.
pub const TABLE_LAZY: i32 = 12;

/// Offset of `VMMemoryDefinition::current_length`.
pub const MEMORY_LENGTH: i32 = 8;

/// A global's storage: the value in little-endian at offset 0.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, Default)]
pub struct VMGlobal {
    /// Raw bytes of the value.
    pub bits: u128,
}

/// What makes an exception tag itself (two imports of one tag are the same tag): the address
/// of the store's record of the tag, never 0. Compiled code compares a thrown exception's
/// identity with those of its catch clauses.
pub type TagIdentity = u64;

/// An exception object (an `exnref` points to it): a header of one [`ValRaw`] slot, whose low
/// 64 bits are the tag's [`TagIdentity`] and high 64 bits flags ([`EXN_ESCAPED`]), then the
/// payload, one slot per parameter of the tag's type.
pub const EXN_TAG: i32 = 0;
/// Offset of the flags word of an exception object.
pub const EXN_FLAGS: i32 = 8;
/// Flag: an `exnref` to the exception was handed out (`catch_ref`, `catch_all_ref`, a legacy
/// `catch` whose body rethrows), so the object lives as long as its store.
pub const EXN_ESCAPED: i64 = 1;

/// Offset of payload value `i` in an exception object.
pub fn exn_value(i: usize) -> i32 {
    (VALRAW_SIZE as usize * (1 + i)) as i32
}

/// One value crossing the host boundary through the array-call trampolines.
pub type ValRaw = u128;

/// Size of a [`ValRaw`] slot.
pub const VALRAW_SIZE: u32 = 16;

/// The runtime functions compiled code calls through the builtin table, in table order.
/// Every one takes the caller's `VMContext` first; the ones returning a status return 0 on
/// success and non-zero when the operation is out of bounds (the code then traps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Builtin {
    /// `(vmctx, memory: i32, delta: i64) -> i64` old size in pages or -1 (addresses, sizes
    /// and lengths of memory builtins are i64: a 32-bit memory's zero-extended).
    MemoryGrow,
    /// `(vmctx, memory: i32, dst: i64, value: i32, len: i64) -> i32` status.
    MemoryFill,
    /// `(vmctx, dst_memory: i32, src_memory: i32, dst: i64, src: i64, len: i64) -> i32` status.
    MemoryCopy,
    /// `(vmctx, memory: i32, segment: i32, dst: i64, src: i32, len: i32) -> i32` status.
    MemoryInit,
    /// `(vmctx, segment: i32)`.
    DataDrop,
    /// `(vmctx, table: i32, init: i64, delta: i64) -> i64` old size or -1 (indices, sizes
    /// and lengths of table builtins are i64: a 32-bit table's zero-extended).
    TableGrow,
    /// `(vmctx, table: i32, dst: i64, value: i64, len: i64) -> i32` status.
    TableFill,
    /// `(vmctx, dst_table: i32, src_table: i32, dst: i64, src: i64, len: i64) -> i32` status.
    TableCopy,
    /// `(vmctx, table: i32, segment: i32, dst: i64, src: i32, len: i32) -> i32` status.
    TableInit,
    /// `(vmctx, segment: i32)`.
    ElemDrop,
    /// `(vmctx, function: i32) -> i64` the reference of a defined function whose slot in the
    /// function-reference array is still null (made now: see `crate::func_refs`).
    FuncRef,
    /// `(vmctx, table: i32, index: i32) -> i64` element `index` (in bounds) of a table, read
    /// as zero: null, or filled now from the table's image (see `crate::table_image`).
    TableElement,
    /// `(vmctx, table: i32)`: fills every element of a lazy table from its image before a
    /// write.
    FillTable,
    /// `(vmctx, tag: i32) -> i64`: a new exception object of the tag, payload unset.
    ExnAlloc,
    /// `(vmctx, exn: i64)`: the exception was caught without its reference escaping: freed
    /// unless [`EXN_ESCAPED`].
    ExnRelease,
    /// `(vmctx, exn: i64, frame_pointer: i64, count: i64) -> !`: throws the (non-null)
    /// exception from the wasm frame whose frame pointer is given, with the instruction count
    /// register's value (0 without counting). Never returns.
    Throw,
}

/// Number of builtins.
pub const BUILTIN_COUNT: usize = 16;

impl Builtin {
    /// Byte offset of this builtin's pointer in the builtin table.
    pub fn offset(self) -> i32 {
        8 * self as i32
    }

    /// Its result's type: i32 (a status, a size), i64 (a page count or size of a 64-bit
    /// memory or table, a pointer), or none.
    pub fn result(self) -> Option<ir_types::Type> {
        match self {
            Builtin::DataDrop | Builtin::ElemDrop | Builtin::FillTable | Builtin::ExnRelease | Builtin::Throw => None,
            Builtin::MemoryGrow | Builtin::TableGrow | Builtin::FuncRef | Builtin::TableElement | Builtin::ExnAlloc => {
                Some(ir_types::I64)
            }
            _ => Some(ir_types::I32),
        }
    }
}
