//! Index newtypes for every WebAssembly index space, and value and function types.

use std::fmt;

macro_rules! index_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as a `usize`, for indexing vectors.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl From<u32> for $name {
            fn from(index: u32) -> Self {
                $name(index)
            }
        }
    )*};
}

index_type!(
    /// A function in the module's function index space (imports first).
    FuncIndex,
    /// A function defined by the module (index space without the imports).
    DefinedFuncIndex,
    /// A type in the module's type section.
    TypeIndex,
    /// A table in the module's table index space.
    TableIndex,
    /// A memory in the module's memory index space.
    MemoryIndex,
    /// A global in the module's global index space.
    GlobalIndex,
    /// An element segment.
    ElemIndex,
    /// A data segment.
    DataIndex,
    /// An exception tag in the module's tag index space (imports first).
    TagIndex,
);

/// A WebAssembly value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE float.
    F32,
    /// 64-bit IEEE float.
    F64,
    /// 128-bit vector (SIMD); its lanes' interpretation belongs to each operator.
    V128,
    /// Nullable reference to a function.
    FuncRef,
    /// Nullable reference to a host object.
    ExternRef,
    /// Nullable reference to a caught exception (exception handling).
    ExnRef,
}

impl ValType {
    /// Whether this is a reference type.
    pub fn is_ref(self) -> bool {
        matches!(self, ValType::FuncRef | ValType::ExternRef | ValType::ExnRef)
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
            ValType::FuncRef => "funcref",
            ValType::ExternRef => "externref",
            ValType::ExnRef => "exnref",
        })
    }
}

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct FuncType {
    /// Parameter types.
    pub params: Box<[ValType]>,
    /// Result types.
    pub results: Box<[ValType]>,
}

impl FuncType {
    /// Builds a signature from parameter and result types.
    pub fn new(params: impl Into<Box<[ValType]>>, results: impl Into<Box<[ValType]>>) -> Self {
        FuncType { params: params.into(), results: results.into() }
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |types: &[ValType]| types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
        write!(f, "func({}) -> ({})", list(&self.params), list(&self.results))
    }
}

/// Size limits of a memory (in 64 KiB pages) or a table (in elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Initial size.
    pub min: u32,
    /// Maximum size, if declared.
    pub max: Option<u32>,
}

impl Limits {
    /// Import matching: `self` (the provided object's current limits) fits `wanted`.
    pub fn matches(&self, wanted: &Limits) -> bool {
        self.min >= wanted.min
            && match (self.max, wanted.max) {
                (_, None) => true,
                (Some(have), Some(want)) => have <= want,
                (None, Some(_)) => false,
            }
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) => write!(f, "{{min {}, max {}}}", self.min, max),
            None => write!(f, "{{min {}}}", self.min),
        }
    }
}

/// The type of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableType {
    /// Element type (a reference type).
    pub element: ValType,
    /// Size limits in elements.
    pub limits: Limits,
    /// Whether element indices are 64-bit (memory64's tables) rather than 32-bit.
    pub table64: bool,
}

/// The type of a linear memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryType {
    /// Size limits in 64 KiB pages.
    pub limits: Limits,
    /// Whether addresses are 64-bit (memory64) rather than 32-bit.
    pub memory64: bool,
}

/// The type of a global.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GlobalType {
    /// Value type.
    pub ty: ValType,
    /// Whether `global.set` may change it.
    pub mutable: bool,
}

/// The type of an importable or exportable entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternType {
    /// A function.
    Func(FuncType),
    /// A table.
    Table(TableType),
    /// A memory.
    Memory(MemoryType),
    /// A global.
    Global(GlobalType),
    /// An exception tag: the types of its payload (a function type without results).
    Tag(FuncType),
}

impl fmt::Display for ExternType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExternType::Func(ty) => write!(f, "{ty}"),
            ExternType::Table(t) if t.table64 => write!(f, "table i64 {} {}", t.limits, t.element),
            ExternType::Table(t) => write!(f, "table {} {}", t.limits, t.element),
            ExternType::Memory(m) if m.memory64 => write!(f, "memory i64 {}", m.limits),
            ExternType::Memory(m) => write!(f, "memory {}", m.limits),
            ExternType::Global(g) if g.mutable => write!(f, "global (mut {})", g.ty),
            ExternType::Global(g) => write!(f, "global {}", g.ty),
            ExternType::Tag(ty) => write!(f, "tag {ty}"),
        }
    }
}
