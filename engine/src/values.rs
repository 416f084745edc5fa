//! Values crossing the host boundary, and handles to store objects.

use crate::types::{HeapType, ValType};
use crate::vm::vmctx::{VMFuncRef, ValRaw};
use std::num::NonZeroUsize;
use std::ptr::NonNull;

/// An opaque, non-null host reference (`externref`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExternRef(pub NonZeroUsize);

/// A caught exception (`exnref`): an exception object of the store, handed out only by the
/// engine (a host cannot make one up).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExnRef(pub(crate) NonZeroUsize);

/// A function in a store: a host function, or a function reference compiled code can call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Func {
    pub(crate) store: u64,
    pub(crate) kind: FuncKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FuncKind {
    /// A host function not (yet) seen by wasm: index into the store's host functions.
    Host(u32),
    /// A function reference.
    Ref(NonNull<VMFuncRef>),
}

macro_rules! handle {
    ($(#[$doc:meta] $name:ident),*) => {$(
        #[$doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            pub(crate) store: u64,
            pub(crate) index: u32,
        }
    )*};
}

handle!(
    /// A table in a store.
    Table,
    /// A linear memory in a store.
    Memory,
    /// A global in a store.
    Global,
    /// An instance in a store.
    Instance,
    /// An exception tag in a store.
    Tag
);

/// Something an instance can import or export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A table.
    Table(Table),
    /// A memory.
    Memory(Memory),
    /// A global.
    Global(Global),
    /// An exception tag.
    Tag(Tag),
}

/// A WebAssembly value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    /// `i32`.
    I32(i32),
    /// `i64`.
    I64(i64),
    /// `f32`, as bits (NaN payloads are preserved).
    F32(u32),
    /// `f64`, as bits.
    F64(u64),
    /// `v128`, as its 16 bytes in little-endian order (lane 0 in the lowest bits).
    V128(u128),
    /// `funcref`.
    FuncRef(Option<Func>),
    /// `externref`.
    ExternRef(Option<ExternRef>),
    /// `exnref`.
    ExnRef(Option<ExnRef>),
}

impl Val {
    /// The value's type.
    pub fn ty(&self) -> ValType {
        match self {
            Val::I32(_) => ValType::I32,
            Val::I64(_) => ValType::I64,
            Val::F32(_) => ValType::F32,
            Val::F64(_) => ValType::F64,
            Val::V128(_) => ValType::V128,
            Val::FuncRef(_) => ValType::FUNCREF,
            Val::ExternRef(_) => ValType::EXTERNREF,
            Val::ExnRef(_) => ValType::EXNREF,
        }
    }

    /// The zero (or null) value of a type (null even for a non-nullable reference type: a
    /// placeholder to overwrite, as for a host function's results).
    pub fn default_for(ty: ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::V128 => Val::V128(0),
            ValType::Ref(r) => match r.heap.top() {
                HeapType::Extern => Val::ExternRef(None),
                HeapType::Exn => Val::ExnRef(None),
                _ => Val::FuncRef(None),
            },
        }
    }

    /// Decodes a raw slot of type `ty` (function references belong to store `store`).
    pub(crate) fn from_raw(raw: ValRaw, ty: ValType, store: u64) -> Val {
        match ty {
            ValType::I32 => Val::I32(raw as u32 as i32),
            ValType::I64 => Val::I64(raw as u64 as i64),
            ValType::F32 => Val::F32(raw as u32),
            ValType::F64 => Val::F64(raw as u64),
            ValType::V128 => Val::V128(raw),
            ValType::Ref(r) => match r.heap.top() {
                HeapType::Extern => Val::ExternRef(NonZeroUsize::new(raw as usize).map(ExternRef)),
                HeapType::Exn => Val::ExnRef(NonZeroUsize::new(raw as usize).map(ExnRef)),
                _ => Val::FuncRef(
                    NonNull::new(raw as usize as *mut VMFuncRef).map(|p| Func { store, kind: FuncKind::Ref(p) }),
                ),
            },
        }
    }
}
