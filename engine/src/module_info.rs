//! The load stage: validate a WebAssembly binary and describe it as a [`ModuleInfo`].
//!
//! Validation accepts exactly the features the engine implements ([`supported_features`]:
//! WebAssembly 2.0 — MVP, mutable globals, sign extension, non-trapping float-to-int,
//! multi-value, bulk memory, reference types, SIMD — and of 3.0 extended constant expressions,
//! tail calls, relaxed SIMD, multiple and 64-bit memories, exception handling with its legacy
//! encoding, and typed function references: all of 3.0 but GC). Anything else is rejected by
//! the validator with the feature and the byte offset.

use crate::types::*;
use std::collections::HashMap;
use std::ops::Range;
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Neither a binary module nor WebAssembly text.
    #[error(
        "not a WebAssembly module: neither the binary magic `\\0asm` nor WebAssembly text (which starts with `(`)"
    )]
    NotWasm,
    /// The text format did not parse.
    #[error("invalid text module: {0}")]
    Text(String),
    /// The binary is malformed or invalid.
    #[error("invalid module: {message} (at offset {offset:#x})")]
    Invalid {
        /// The validator's message.
        message: String,
        /// Byte offset of the problem in the binary.
        offset: usize,
    },
    /// The module uses a WebAssembly feature the engine does not support.
    #[error("unsupported feature: {message} (at offset {offset:#x})")]
    Unsupported {
        /// The validator's message naming the feature.
        message: String,
        /// Byte offset of the first use.
        offset: usize,
    },
}

impl From<wasmparser::BinaryReaderError> for LoadError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        let message = e.message().to_string();
        let offset = e.offset() as usize;
        if message.contains("not enabled") || message.contains("must be enabled") {
            LoadError::Unsupported { message, offset }
        } else {
            LoadError::Invalid { message, offset }
        }
    }
}

/// The features the engine implements ([`crate::features::FEATURES`]): WebAssembly 2.0, and all
/// of 3.0 but GC.
pub fn supported_features() -> WasmFeatures {
    crate::features::implemented()
}

/// A constant expression (global initialisers, segment offsets and element items).
#[derive(Clone, Debug, PartialEq)]
pub enum ConstExpr {
    /// `i32.const`.
    I32(i32),
    /// `i64.const`.
    I64(i64),
    /// `f32.const`, as bits.
    F32(u32),
    /// `f64.const`, as bits.
    F64(u64),
    /// `v128.const`, its bytes in little-endian order.
    V128(u128),
    /// `ref.null`.
    RefNull,
    /// `ref.func`.
    RefFunc(FuncIndex),
    /// `global.get` of an (imported) global.
    GlobalGet(GlobalIndex),
    /// An extended constant expression: integer constants and `global.get`s combined by
    /// `add`, `sub` and `mul` (wrapping), in the order of the binary (postfix).
    Extended(Box<[ConstOp]>),
}

/// One instruction of an extended constant expression ([`ConstExpr::Extended`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConstOp {
    /// `i32.const`.
    I32(i32),
    /// `i64.const`.
    I64(i64),
    /// `global.get` (of an integer global).
    GlobalGet(GlobalIndex),
    /// `i32.add`.
    I32Add,
    /// `i32.sub`.
    I32Sub,
    /// `i32.mul`.
    I32Mul,
    /// `i64.add`.
    I64Add,
    /// `i64.sub`.
    I64Sub,
    /// `i64.mul`.
    I64Mul,
}

impl ConstOp {
    /// How the operand stack's depth changes: +1 for a value, -1 for a binary operator.
    pub fn stack_effect(self) -> isize {
        match self {
            ConstOp::I32(_) | ConstOp::I64(_) | ConstOp::GlobalGet(_) => 1,
            _ => -1,
        }
    }
}

/// Whether `ops` is a well-formed postfix program: it never pops more than it pushed, and
/// leaves exactly one value.
pub fn well_formed(ops: &[ConstOp]) -> bool {
    let mut depth = 0isize;
    for op in ops {
        if op.stack_effect() < 0 && depth < 2 {
            return false;
        }
        depth += op.stack_effect();
    }
    depth == 1
}

/// What an import provides.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportKind {
    /// A function of this type.
    Func(TypeIndex),
    /// A table.
    Table(TableType),
    /// A memory.
    Memory(MemoryType),
    /// A global.
    Global(GlobalType),
    /// An exception tag whose payload has the parameters of this type.
    Tag(TypeIndex),
}

/// One import.
#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    /// Module name.
    pub module: String,
    /// Field name.
    pub name: String,
    /// What is imported.
    pub kind: ImportKind,
}

/// An entity in one of the module's index spaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntityIndex {
    /// A function.
    Func(FuncIndex),
    /// A table.
    Table(TableIndex),
    /// A memory.
    Memory(MemoryIndex),
    /// A global.
    Global(GlobalIndex),
    /// An exception tag.
    Tag(TagIndex),
}

/// Where an element segment goes.
#[derive(Clone, Debug, PartialEq)]
pub enum SegmentMode {
    /// Used by `table.init`/`memory.init` only.
    Passive,
    /// Copied into a table or memory at instantiation.
    Active {
        /// Table or memory index.
        index: u32,
        /// Offset expression.
        offset: ConstExpr,
    },
    /// Declares functions for `ref.func`; dropped at instantiation.
    Declared,
}

/// An element segment.
#[derive(Clone, Debug, PartialEq)]
pub struct ElemSegment {
    /// Where it goes.
    pub mode: SegmentMode,
    /// Element type.
    pub ty: ValType,
    /// The items.
    pub items: Vec<ConstExpr>,
}

/// A data segment.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSegment {
    /// Where it goes (never `Declared`).
    pub mode: SegmentMode,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Everything about a module except its compiled code.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModuleInfo {
    /// The type section.
    pub types: Vec<FuncType>,
    /// The imports, in order.
    pub imports: Vec<Import>,
    /// Type of every function (imports first).
    pub functions: Vec<TypeIndex>,
    /// Every table (imports first).
    pub tables: Vec<TableType>,
    /// Every memory (imports first).
    pub memories: Vec<MemoryType>,
    /// Every global (imports first).
    pub globals: Vec<GlobalType>,
    /// Initialisers of the defined globals.
    pub global_inits: Vec<ConstExpr>,
    /// Initialisers of defined tables (`None`: null).
    pub table_inits: Vec<Option<ConstExpr>>,
    /// Imported function count.
    pub num_imported_funcs: u32,
    /// Imported table count.
    pub num_imported_tables: u32,
    /// Imported memory count.
    pub num_imported_memories: u32,
    /// Imported global count.
    pub num_imported_globals: u32,
    /// Type of every exception tag (imports first): its parameters are the payload.
    pub tags: Vec<TypeIndex>,
    /// Imported tag count.
    pub num_imported_tags: u32,
    /// Exports in order, by name.
    pub exports: Vec<(String, EntityIndex)>,
    /// The start function.
    pub start: Option<FuncIndex>,
    /// Element segments.
    pub elements: Vec<ElemSegment>,
    /// Data segments.
    pub data: Vec<DataSegment>,
    /// Function names from the name section.
    pub func_names: HashMap<u32, String>,
    /// Byte range of each defined function's body in the module binary.
    pub bodies: Vec<Range<usize>>,
}

impl ModuleInfo {
    /// Defined function index → function index.
    pub fn func_index(&self, defined: DefinedFuncIndex) -> FuncIndex {
        FuncIndex(defined.0 + self.num_imported_funcs)
    }

    /// Function index → defined function index, `None` for imports.
    pub fn defined_func(&self, func: FuncIndex) -> Option<DefinedFuncIndex> {
        func.0.checked_sub(self.num_imported_funcs).map(DefinedFuncIndex)
    }

    /// Signature of a function.
    pub fn func_type(&self, func: FuncIndex) -> &FuncType {
        &self.types[self.functions[func.index()].index()]
    }

    /// Number of defined functions.
    pub fn num_defined_funcs(&self) -> usize {
        self.functions.len() - self.num_imported_funcs as usize
    }

    /// The export named `name`.
    pub fn export(&self, name: &str) -> Option<EntityIndex> {
        self.exports.iter().find(|(n, _)| n == name).map(|(_, e)| *e)
    }

    /// A function's name for reports: the name section's, else an export name, else `func[N]`.
    pub fn func_name(&self, func: FuncIndex) -> String {
        if let Some(name) = self.func_names.get(&func.0) {
            return name.clone();
        }
        for (name, entity) in &self.exports {
            if *entity == EntityIndex::Func(func) {
                return name.clone();
            }
        }
        format!("func[{}]", func.0)
    }
}

/// Turns `.wat` text into a binary; binaries pass through. A parse error is one line: the
/// message and its place (`wat`'s own rendering adds a source snippet on further lines).
pub fn wat_to_binary(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, LoadError> {
    if bytes.starts_with(b"\0asm") {
        return Ok(std::borrow::Cow::Borrowed(bytes));
    }
    let neither = || LoadError::NotWasm;
    let text = std::str::from_utf8(bytes).map_err(|_| neither())?;
    // Text has no NUL bytes, and begins (after blanks and comments) with `(`.
    let start = text.trim_start();
    if text.contains('\0')
        || !(start.is_empty() || start.starts_with('(') || start.starts_with(";;") || start.starts_with("(;"))
    {
        return Err(neither());
    }
    let one_line = |e: wast::Error| {
        let (line, col) = e.span().linecol_in(text);
        let message = e.message().replace('\n', " ");
        LoadError::Text(format!("{message} at line {}, column {}", line + 1, col + 1))
    };
    let buffer = wast::parser::ParseBuffer::new(text).map_err(one_line)?;
    let mut module = wast::parser::parse::<wast::Wat>(&buffer).map_err(one_line)?;
    module.encode().map(std::borrow::Cow::Owned).map_err(one_line)
}

/// Validates `wasm` completely (every function body included).
pub fn validate(wasm: &[u8]) -> Result<(), LoadError> {
    validate_with(wasm, &crate::features::Features::default())
}

/// [`validate`] with only `features` accepted.
///
/// # Errors
/// As [`validate`]; a feature used but not in `features` too.
pub fn validate_with(wasm: &[u8], features: &crate::features::Features) -> Result<(), LoadError> {
    Validator::new_with_features(features.flags()).validate_all(wasm)?;
    Ok(())
}

/// Parses a module the validator accepted into a [`ModuleInfo`]. On unvalidated input it
/// returns an error for anything it cannot represent, but does not check function bodies.
pub fn parse(wasm: &[u8]) -> Result<ModuleInfo, LoadError> {
    let mut info = ModuleInfo::default();
    let mut parser = Parser::new(0);
    parser.set_features(supported_features());
    for payload in parser.parse_all(wasm) {
        match payload? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    let ty = ty?;
                    let params = ty.params().iter().map(|t| val_type(*t)).collect::<Result<Vec<_>, _>>()?;
                    let results = ty.results().iter().map(|t| val_type(*t)).collect::<Result<Vec<_>, _>>()?;
                    info.types.push(FuncType::new(params, results));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let kind = match import.ty {
                        wasmparser::TypeRef::Func(ty) => {
                            info.functions.push(TypeIndex(ty));
                            info.num_imported_funcs += 1;
                            ImportKind::Func(TypeIndex(ty))
                        }
                        wasmparser::TypeRef::Table(t) => {
                            let t = table_type(t)?;
                            info.tables.push(t);
                            info.num_imported_tables += 1;
                            ImportKind::Table(t)
                        }
                        wasmparser::TypeRef::Memory(m) => {
                            let m = memory_type(m)?;
                            info.memories.push(m);
                            info.num_imported_memories += 1;
                            ImportKind::Memory(m)
                        }
                        wasmparser::TypeRef::Global(g) => {
                            let g = global_type(g)?;
                            info.globals.push(g);
                            info.num_imported_globals += 1;
                            ImportKind::Global(g)
                        }
                        wasmparser::TypeRef::Tag(t) => {
                            info.tags.push(TypeIndex(t.func_type_idx));
                            info.num_imported_tags += 1;
                            ImportKind::Tag(TypeIndex(t.func_type_idx))
                        }
                        _ => return Err(unsupported("this kind of import")),
                    };
                    info.imports.push(Import { module: import.module.into(), name: import.name.into(), kind });
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    info.functions.push(TypeIndex(ty?));
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table?;
                    info.tables.push(table_type(table.ty)?);
                    info.table_inits.push(match table.init {
                        wasmparser::TableInit::RefNull => None,
                        wasmparser::TableInit::Expr(e) => Some(const_expr(&e)?),
                    });
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    info.memories.push(memory_type(memory?)?);
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let global = global?;
                    info.globals.push(global_type(global.ty)?);
                    info.global_inits.push(const_expr(&global.init_expr)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    let entity = match export.kind {
                        wasmparser::ExternalKind::Func => EntityIndex::Func(FuncIndex(export.index)),
                        wasmparser::ExternalKind::Table => EntityIndex::Table(TableIndex(export.index)),
                        wasmparser::ExternalKind::Memory => EntityIndex::Memory(MemoryIndex(export.index)),
                        wasmparser::ExternalKind::Global => EntityIndex::Global(GlobalIndex(export.index)),
                        wasmparser::ExternalKind::Tag => EntityIndex::Tag(TagIndex(export.index)),
                        _ => return Err(unsupported("this kind of export")),
                    };
                    info.exports.push((export.name.into(), entity));
                }
            }
            Payload::TagSection(reader) => {
                for tag in reader {
                    info.tags.push(TypeIndex(tag?.func_type_idx));
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(FuncIndex(func)),
            Payload::ElementSection(reader) => {
                for element in reader {
                    let element = element?;
                    let mode = match element.kind {
                        wasmparser::ElementKind::Passive => SegmentMode::Passive,
                        wasmparser::ElementKind::Declared => SegmentMode::Declared,
                        wasmparser::ElementKind::Active { table_index, offset_expr } => {
                            SegmentMode::Active { index: table_index.unwrap_or(0), offset: const_expr(&offset_expr)? }
                        }
                    };
                    let (ty, items) = match element.items {
                        wasmparser::ElementItems::Functions(funcs) => (
                            ValType::FUNCREF,
                            funcs
                                .into_iter()
                                .map(|f| f.map(|f| ConstExpr::RefFunc(FuncIndex(f))))
                                .collect::<Result<Vec<_>, _>>()?,
                        ),
                        wasmparser::ElementItems::Expressions(ty, exprs) => {
                            let items = exprs.into_iter().map(|e| const_expr(&e?)).collect::<Result<Vec<_>, _>>()?;
                            (ValType::Ref(ref_type(ty)?), items)
                        }
                    };
                    info.elements.push(ElemSegment { mode, ty, items });
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data?;
                    let mode = match data.kind {
                        wasmparser::DataKind::Passive => SegmentMode::Passive,
                        wasmparser::DataKind::Active { memory_index, offset_expr } => {
                            SegmentMode::Active { index: memory_index, offset: const_expr(&offset_expr)? }
                        }
                    };
                    info.data.push(DataSegment { mode, bytes: data.data.to_vec() });
                }
            }
            Payload::CodeSectionEntry(body) => {
                let range = body.range();
                info.bodies.push(range.start as usize..range.end as usize);
            }
            Payload::CustomSection(reader) if reader.name() == "name" => {
                // The name section is advisory: a malformed one is ignored, as engines do.
                let names = wasmparser::NameSectionReader::new(wasmparser::BinaryReader::new(
                    reader.data(),
                    reader.data_offset(),
                ));
                for name in names.into_iter().flatten() {
                    if let wasmparser::Name::Function(map) = name {
                        for naming in map.into_iter().flatten() {
                            info.func_names.insert(naming.index, naming.name.to_string());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if info.bodies.len() != info.num_defined_funcs() {
        return Err(LoadError::Invalid {
            message: "function and code section have inconsistent lengths".into(),
            offset: wasm.len(),
        });
    }
    Ok(info)
}

fn unsupported(what: &str) -> LoadError {
    LoadError::Unsupported { message: format!("{what} is not supported"), offset: 0 }
}

/// The engine's value type for a wasm value type (a concrete heap type stays module-relative).
///
/// # Errors
/// A type of a feature the engine does not implement (GC's, or shared ones).
pub(crate) fn val_type(ty: wasmparser::ValType) -> Result<ValType, LoadError> {
    Ok(match ty {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::Ref(r) => ValType::Ref(ref_type(r)?),
        wasmparser::ValType::V128 => ValType::V128,
    })
}

fn ref_type(ty: wasmparser::RefType) -> Result<RefType, LoadError> {
    use wasmparser::{AbstractHeapType as A, HeapType as H};
    let heap = match ty.heap_type() {
        H::Abstract { shared: false, ty: A::Func } => HeapType::Func,
        H::Abstract { shared: false, ty: A::NoFunc } => HeapType::NoFunc,
        H::Abstract { shared: false, ty: A::Extern } => HeapType::Extern,
        H::Abstract { shared: false, ty: A::NoExtern } => HeapType::NoExtern,
        H::Abstract { shared: false, ty: A::Exn } => HeapType::Exn,
        H::Abstract { shared: false, ty: A::NoExn } => HeapType::NoExn,
        H::Concrete(wasmparser::UnpackedIndex::Module(t)) => HeapType::Type(TypeIndex(t)),
        _ => return Err(unsupported("this reference type")),
    };
    Ok(RefType { nullable: ty.is_nullable(), heap })
}

fn table_type(t: wasmparser::TableType) -> Result<TableType, LoadError> {
    if t.shared {
        return Err(unsupported("shared tables"));
    }
    // 32-bit tables have at most 2^32 elements (validated); 64-bit ones more, of which the
    // engine takes what fits a u32 (beyond any table it can make).
    let size = |n: u64| u32::try_from(n).map_err(|_| unsupported("tables declaring more than 2^32 elements"));
    let limits = Limits { min: size(t.initial)?, max: t.maximum.map(size).transpose()? };
    Ok(TableType { element: ValType::Ref(ref_type(t.element_type)?), limits, table64: t.table64 })
}

fn memory_type(m: wasmparser::MemoryType) -> Result<MemoryType, LoadError> {
    if m.shared || m.page_size_log2.is_some() {
        return Err(unsupported("shared or custom-page-size memories"));
    }
    // 32-bit memories have at most 65536 pages (validated); 64-bit ones up to 2^48, of which
    // the engine takes what fits a u32 (256 TiB, beyond any memory it can make).
    let pages = |p: u64| u32::try_from(p).map_err(|_| unsupported("memories declaring more than 2^32 pages"));
    let limits = Limits { min: pages(m.initial)?, max: m.maximum.map(pages).transpose()? };
    Ok(MemoryType { limits, memory64: m.memory64 })
}

fn global_type(g: wasmparser::GlobalType) -> Result<GlobalType, LoadError> {
    if g.shared {
        return Err(unsupported("shared globals"));
    }
    Ok(GlobalType { ty: val_type(g.content_type)?, mutable: g.mutable })
}

fn const_expr(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr, LoadError> {
    use wasmparser::Operator as O;
    let mut reader = expr.get_operators_reader();
    let value = match reader.read()? {
        O::F32Const { value } => ConstExpr::F32(value.bits()),
        O::F64Const { value } => ConstExpr::F64(value.bits()),
        O::V128Const { value } => ConstExpr::V128(value.i128() as u128),
        O::RefNull { .. } => ConstExpr::RefNull,
        O::RefFunc { function_index } => ConstExpr::RefFunc(FuncIndex(function_index)),
        first => {
            // Integers and globals: one instruction, or an extended expression.
            let mut ops = vec![const_op(&first)?];
            loop {
                match reader.read()? {
                    O::End => break,
                    op => ops.push(const_op(&op)?),
                }
            }
            if !well_formed(&ops) {
                return Err(unsupported("this constant expression"));
            }
            return Ok(match ops[..] {
                [ConstOp::I32(v)] => ConstExpr::I32(v),
                [ConstOp::I64(v)] => ConstExpr::I64(v),
                [ConstOp::GlobalGet(g)] => ConstExpr::GlobalGet(g),
                _ => ConstExpr::Extended(ops.into()),
            });
        }
    };
    match reader.read()? {
        O::End => Ok(value),
        _ => Err(unsupported("this constant expression")),
    }
}

/// One instruction of an integer constant expression.
fn const_op(op: &wasmparser::Operator<'_>) -> Result<ConstOp, LoadError> {
    use wasmparser::Operator as O;
    Ok(match *op {
        O::I32Const { value } => ConstOp::I32(value),
        O::I64Const { value } => ConstOp::I64(value),
        O::GlobalGet { global_index } => ConstOp::GlobalGet(GlobalIndex(global_index)),
        O::I32Add => ConstOp::I32Add,
        O::I32Sub => ConstOp::I32Sub,
        O::I32Mul => ConstOp::I32Mul,
        O::I64Add => ConstOp::I64Add,
        O::I64Sub => ConstOp::I64Sub,
        O::I64Mul => ConstOp::I64Mul,
        _ => return Err(unsupported("this constant expression")),
    })
}
