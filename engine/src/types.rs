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
    /// A reference (a pointer at run time, 0 for null).
    Ref(RefType),
}

impl ValType {
    /// `funcref`: a nullable reference to any function.
    pub const FUNCREF: ValType = ValType::Ref(RefType::FUNCREF);
    /// `externref`: a nullable reference to a host object.
    pub const EXTERNREF: ValType = ValType::Ref(RefType::EXTERNREF);
    /// `exnref`: a nullable reference to a caught exception (exception handling).
    pub const EXNREF: ValType = ValType::Ref(RefType::EXNREF);

    /// Whether this is a reference type.
    pub fn is_ref(self) -> bool {
        matches!(self, ValType::Ref(_))
    }

    /// The reference type, if this is one.
    pub fn as_ref(self) -> Option<RefType> {
        match self {
            ValType::Ref(r) => Some(r),
            _ => None,
        }
    }

    /// Whether this is a reference to an exception (`exnref`, nullable or not).
    pub fn is_exn_ref(self) -> bool {
        self.as_ref().is_some_and(|r| r.heap.top() == HeapType::Exn)
    }

    /// This type with each module type index replaced by its canonical id (`ids`, the
    /// module's, indexed by type index); see [`HeapType`].
    pub fn canonical(self, ids: &[u32]) -> ValType {
        match self {
            ValType::Ref(r) => ValType::Ref(r.canonical(ids)),
            other => other,
        }
    }

    /// Whether a value of type `self` may be used where `other` is expected (subtyping; both
    /// canonical).
    pub fn matches(self, other: ValType) -> bool {
        match (self, other) {
            (ValType::Ref(a), ValType::Ref(b)) => a.matches(b),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValType::I32 => f.write_str("i32"),
            ValType::I64 => f.write_str("i64"),
            ValType::F32 => f.write_str("f32"),
            ValType::F64 => f.write_str("f64"),
            ValType::V128 => f.write_str("v128"),
            ValType::Ref(r) => write!(f, "{r}"),
        }
    }
}

/// A reference type: whether null is a value of it, and what it refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RefType {
    /// Whether null is a value of the type.
    pub nullable: bool,
    /// What a non-null value refers to.
    pub heap: HeapType,
}

impl RefType {
    /// `funcref`.
    pub const FUNCREF: RefType = RefType { nullable: true, heap: HeapType::Func };
    /// `externref`.
    pub const EXTERNREF: RefType = RefType { nullable: true, heap: HeapType::Extern };
    /// `exnref`.
    pub const EXNREF: RefType = RefType { nullable: true, heap: HeapType::Exn };

    /// See [`ValType::canonical`].
    pub fn canonical(self, ids: &[u32]) -> RefType {
        RefType { heap: self.heap.canonical(ids), ..self }
    }

    /// Subtyping of canonical reference types: `(ref null? a) <: (ref null? b)` when null is
    /// allowed only if `b` allows it and `a`'s heap type matches `b`'s.
    pub fn matches(self, other: RefType) -> bool {
        (!self.nullable || other.nullable) && self.heap.matches(other.heap)
    }
}

impl fmt::Display for RefType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.nullable, self.heap) {
            (true, HeapType::Func) => f.write_str("funcref"),
            (true, HeapType::Extern) => f.write_str("externref"),
            (true, HeapType::Exn) => f.write_str("exnref"),
            (true, heap) => write!(f, "(ref null {heap})"),
            (false, heap) => write!(f, "(ref {heap})"),
        }
    }
}

/// What a reference refers to. Function types appear in two index spaces: a module's own
/// types ([`HeapType::Type`], as the module declares them) and the engine's canonical
/// signature ids ([`HeapType::Sig`], as the store, linking and the host see them: equal
/// function types have equal ids, whichever module declared them). Without GC's recursion
/// groups and subtypes, every function type is final and refers only to earlier types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HeapType {
    /// Any function.
    Func,
    /// No function (only null is of `(ref null nofunc)`).
    NoFunc,
    /// Any host object.
    Extern,
    /// No host object.
    NoExtern,
    /// Any exception.
    Exn,
    /// No exception.
    NoExn,
    /// Functions of the module's function type at this index (module-relative).
    Type(TypeIndex),
    /// Functions of the signature with this canonical id (engine-wide).
    Sig(u32),
}

impl HeapType {
    /// The top of the hierarchy this heap type belongs to: `Func`, `Extern` or `Exn`.
    pub fn top(self) -> HeapType {
        match self {
            HeapType::Extern | HeapType::NoExtern => HeapType::Extern,
            HeapType::Exn | HeapType::NoExn => HeapType::Exn,
            _ => HeapType::Func,
        }
    }

    /// Whether this is a bottom type (`nofunc`, `noextern`, `noexn`: only null refers to it).
    pub fn is_bottom(self) -> bool {
        matches!(self, HeapType::NoFunc | HeapType::NoExtern | HeapType::NoExn)
    }

    /// See [`ValType::canonical`]. A module type index without an id (not one of the module's)
    /// cannot occur in a loaded module; it is kept as it is, matching nothing canonical.
    pub fn canonical(self, ids: &[u32]) -> HeapType {
        match self {
            HeapType::Type(t) => ids.get(t.index()).map_or(self, |id| HeapType::Sig(*id)),
            other => other,
        }
    }

    /// Subtyping of canonical heap types: each hierarchy is its top above its concrete types
    /// above its bottom; a concrete function type matches only itself (every type is final).
    pub fn matches(self, other: HeapType) -> bool {
        self == other || (self.top() == other.top() && (other == other.top() || self.is_bottom()))
    }
}

impl fmt::Display for HeapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapType::Func => f.write_str("func"),
            HeapType::NoFunc => f.write_str("nofunc"),
            HeapType::Extern => f.write_str("extern"),
            HeapType::NoExtern => f.write_str("noextern"),
            HeapType::Exn => f.write_str("exn"),
            HeapType::NoExn => f.write_str("noexn"),
            HeapType::Type(t) => write!(f, "{}", t.0),
            HeapType::Sig(id) => write!(f, "sig{id}"),
        }
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

    /// The canonical form of a module's type: each type it refers to by its canonical id
    /// (`ids`, those of the module's types before it: without GC's recursion groups a function
    /// type refers only to earlier types).
    pub fn canonical(&self, ids: &[u32]) -> FuncType {
        let map = |t: &ValType| t.canonical(ids);
        FuncType { params: self.params.iter().map(map).collect(), results: self.results.iter().map(map).collect() }
    }

    /// Every value type of the signature: parameters, then results.
    pub fn types(&self) -> impl Iterator<Item = ValType> + '_ {
        self.params.iter().chain(self.results.iter()).copied()
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
