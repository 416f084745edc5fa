//! The module description inside an artifact: everything of a [`ModuleInfo`] that loading and
//! instantiating need (all but the function bodies' places in the binary), so a cache hit
//! needs no binary. Reading checks every index against its space, so a damaged description is
//! an error here, never a panic at load or instantiation.
//!
//! Encoding (little-endian; lists are a u32 count then the items; strings a u32 length then
//! UTF-8): types (params, results: lists of value-type bytes), imports (module, name, kind
//! byte and its type), functions' type indices, tables, memories, globals, global and table
//! initialisers, the four imported counts, exports (name, kind byte, index), start (flag,
//! index), element segments (mode, type, items), data segments (mode, bytes), function names
//! (index, name), sorted by index, exception tags' type indices and the imported tag count.

use super::{ArtifactError, Reader};
use crate::module_info::*;
use crate::types::*;

fn corrupt(what: &'static str) -> ArtifactError {
    ArtifactError::Corrupt(what)
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u32(out, u32::try_from(n).expect("wasm limits keep lists below 2^32"));
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// A value type: one byte, except a reference type other than `funcref`, `externref` and
/// `exnref` (which have their own bytes, and only those: one spelling per type): byte 8, the
/// nullable flag, the heap type's byte and, for a module type, its index.
fn put_val_type(out: &mut Vec<u8>, t: ValType) {
    let byte = match t {
        ValType::I32 => 0,
        ValType::I64 => 1,
        ValType::F32 => 2,
        ValType::F64 => 3,
        ValType::FUNCREF => 4,
        ValType::EXTERNREF => 5,
        ValType::EXNREF => 6,
        ValType::V128 => 7,
        ValType::Ref(r) => {
            out.extend_from_slice(&[8, r.nullable as u8]);
            let (heap, index) = match r.heap {
                HeapType::Func => (0, None),
                HeapType::NoFunc => (1, None),
                HeapType::Extern => (2, None),
                HeapType::NoExtern => (3, None),
                HeapType::Exn => (4, None),
                HeapType::NoExn => (5, None),
                HeapType::Type(t) => (6, Some(t.0)),
                HeapType::Sig(_) => unreachable!("a module's description holds its own types"),
            };
            out.push(heap);
            if let Some(index) = index {
                put_u32(out, index);
            }
            return;
        }
    };
    out.push(byte);
}

fn put_limits(out: &mut Vec<u8>, l: Limits) {
    put_u32(out, l.min);
    out.push(l.max.is_some() as u8);
    put_u32(out, l.max.unwrap_or(0));
}

fn put_memory(out: &mut Vec<u8>, m: MemoryType) {
    put_limits(out, m.limits);
    out.push(m.memory64 as u8);
}

fn put_table(out: &mut Vec<u8>, t: TableType) {
    put_val_type(out, t.element);
    put_limits(out, t.limits);
    out.push(t.table64 as u8);
}

fn put_global(out: &mut Vec<u8>, g: GlobalType) {
    put_val_type(out, g.ty);
    out.push(g.mutable as u8);
}

fn put_const(out: &mut Vec<u8>, e: &ConstExpr) {
    match *e {
        ConstExpr::I32(v) => {
            out.push(0);
            out.extend_from_slice(&v.to_le_bytes());
        }
        ConstExpr::I64(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        ConstExpr::F32(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_le_bytes());
        }
        ConstExpr::F64(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_le_bytes());
        }
        ConstExpr::RefNull => out.push(4),
        ConstExpr::RefFunc(f) => {
            out.push(5);
            put_u32(out, f.0);
        }
        ConstExpr::GlobalGet(g) => {
            out.push(6);
            put_u32(out, g.0);
        }
        ConstExpr::V128(v) => {
            out.push(8);
            out.extend_from_slice(&v.to_le_bytes());
        }
        ConstExpr::Extended(ref ops) => {
            out.push(7);
            put_u32(out, ops.len() as u32);
            for op in ops.iter() {
                let (tag, operand) = match *op {
                    ConstOp::I32(v) => (0, Some(v as u32 as u64)),
                    ConstOp::I64(v) => (1, Some(v as u64)),
                    ConstOp::GlobalGet(g) => (2, Some(u64::from(g.0))),
                    ConstOp::I32Add => (3, None),
                    ConstOp::I32Sub => (4, None),
                    ConstOp::I32Mul => (5, None),
                    ConstOp::I64Add => (6, None),
                    ConstOp::I64Sub => (7, None),
                    ConstOp::I64Mul => (8, None),
                };
                out.push(tag);
                if let Some(v) = operand {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
}

fn put_mode(out: &mut Vec<u8>, m: &SegmentMode) {
    match m {
        SegmentMode::Passive => out.push(0),
        SegmentMode::Active { index, offset } => {
            out.push(1);
            put_u32(out, *index);
            put_const(out, offset);
        }
        SegmentMode::Declared => out.push(2),
    }
}

/// Appends `info`'s encoding (its `bodies` are not kept).
pub(super) fn write(out: &mut Vec<u8>, info: &ModuleInfo) {
    put_len(out, info.types.len());
    for t in &info.types {
        for list in [&t.params, &t.results] {
            put_len(out, list.len());
            list.iter().for_each(|t| put_val_type(out, *t));
        }
    }
    put_len(out, info.imports.len());
    for i in &info.imports {
        put_str(out, &i.module);
        put_str(out, &i.name);
        match &i.kind {
            ImportKind::Func(t) => {
                out.push(0);
                put_u32(out, t.0);
            }
            ImportKind::Table(t) => {
                out.push(1);
                put_table(out, *t);
            }
            ImportKind::Memory(m) => {
                out.push(2);
                put_memory(out, *m);
            }
            ImportKind::Global(g) => {
                out.push(3);
                put_global(out, *g);
            }
            ImportKind::Tag(t) => {
                out.push(4);
                put_u32(out, t.0);
            }
        }
    }
    put_len(out, info.functions.len());
    info.functions.iter().for_each(|t| put_u32(out, t.0));
    put_len(out, info.tables.len());
    info.tables.iter().for_each(|t| put_table(out, *t));
    put_len(out, info.memories.len());
    info.memories.iter().for_each(|m| put_memory(out, *m));
    put_len(out, info.globals.len());
    info.globals.iter().for_each(|g| put_global(out, *g));
    put_len(out, info.global_inits.len());
    info.global_inits.iter().for_each(|e| put_const(out, e));
    put_len(out, info.table_inits.len());
    for init in &info.table_inits {
        out.push(init.is_some() as u8);
        if let Some(e) = init {
            put_const(out, e);
        }
    }
    for n in [info.num_imported_funcs, info.num_imported_tables, info.num_imported_memories, info.num_imported_globals]
    {
        put_u32(out, n);
    }
    put_len(out, info.exports.len());
    for (name, e) in &info.exports {
        put_str(out, name);
        let (kind, index) = match e {
            EntityIndex::Func(i) => (0, i.0),
            EntityIndex::Table(i) => (1, i.0),
            EntityIndex::Memory(i) => (2, i.0),
            EntityIndex::Global(i) => (3, i.0),
            EntityIndex::Tag(i) => (4, i.0),
        };
        out.push(kind);
        put_u32(out, index);
    }
    out.push(info.start.is_some() as u8);
    put_u32(out, info.start.map_or(0, |f| f.0));
    put_len(out, info.elements.len());
    for seg in &info.elements {
        put_mode(out, &seg.mode);
        put_val_type(out, seg.ty);
        put_len(out, seg.items.len());
        seg.items.iter().for_each(|e| put_const(out, e));
    }
    put_len(out, info.data.len());
    for seg in &info.data {
        put_mode(out, &seg.mode);
        put_len(out, seg.bytes.len());
        out.extend_from_slice(&seg.bytes);
    }
    let mut names: Vec<(&u32, &String)> = info.func_names.iter().collect();
    names.sort_unstable();
    put_len(out, names.len());
    for (index, name) in names {
        put_u32(out, *index);
        put_str(out, name);
    }
    put_len(out, info.tags.len());
    info.tags.iter().for_each(|t| put_u32(out, t.0));
    put_u32(out, info.num_imported_tags);
}

impl Reader<'_> {
    fn string(&mut self) -> Result<String, ArtifactError> {
        let n = self.count(1)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt("name"))
    }

    fn val_type(&mut self) -> Result<ValType, ArtifactError> {
        Ok(match self.u8()? {
            0 => ValType::I32,
            1 => ValType::I64,
            2 => ValType::F32,
            3 => ValType::F64,
            4 => ValType::FUNCREF,
            5 => ValType::EXTERNREF,
            6 => ValType::EXNREF,
            7 => ValType::V128,
            8 => {
                let nullable = self.flag()?;
                let heap = match self.u8()? {
                    0 => HeapType::Func,
                    1 => HeapType::NoFunc,
                    2 => HeapType::Extern,
                    3 => HeapType::NoExtern,
                    4 => HeapType::Exn,
                    5 => HeapType::NoExn,
                    6 => HeapType::Type(TypeIndex(self.u32()?)),
                    _ => return Err(corrupt("heap type")),
                };
                let t = ValType::Ref(RefType { nullable, heap });
                if matches!(t, ValType::FUNCREF | ValType::EXTERNREF | ValType::EXNREF) {
                    return Err(corrupt("value type spelt long"));
                }
                t
            }
            _ => return Err(corrupt("value type")),
        })
    }

    fn flag(&mut self) -> Result<bool, ArtifactError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt("flag")),
        }
    }

    fn memory(&mut self) -> Result<MemoryType, ArtifactError> {
        let limits = self.limits()?;
        Ok(MemoryType { limits, memory64: self.flag()? })
    }

    fn limits(&mut self) -> Result<Limits, ArtifactError> {
        let min = self.u32()?;
        let max = self.optional_u32("limits")?;
        Ok(Limits { min, max })
    }

    /// A flag and a u32 that counts only when the flag is set, and is written 0 when it is
    /// not: one encoding per value (the cache's bytes are not accepted in two spellings).
    fn optional_u32(&mut self, what: &'static str) -> Result<Option<u32>, ArtifactError> {
        let present = self.flag()?;
        let value = self.u32()?;
        match (present, value) {
            (true, v) => Ok(Some(v)),
            (false, 0) => Ok(None),
            (false, _) => Err(corrupt(what)),
        }
    }

    fn table(&mut self) -> Result<TableType, ArtifactError> {
        let element = self.val_type()?;
        if !element.is_ref() {
            return Err(corrupt("table element type"));
        }
        let limits = self.limits()?;
        Ok(TableType { element, limits, table64: self.flag()? })
    }

    fn global(&mut self) -> Result<GlobalType, ArtifactError> {
        Ok(GlobalType { ty: self.val_type()?, mutable: self.flag()? })
    }

    fn u64(&mut self) -> Result<u64, ArtifactError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn const_expr(&mut self) -> Result<ConstExpr, ArtifactError> {
        Ok(match self.u8()? {
            0 => ConstExpr::I32(self.u32()? as i32),
            1 => ConstExpr::I64(self.u64()? as i64),
            2 => ConstExpr::F32(self.u32()?),
            3 => ConstExpr::F64(self.u64()?),
            4 => ConstExpr::RefNull,
            5 => ConstExpr::RefFunc(FuncIndex(self.u32()?)),
            6 => ConstExpr::GlobalGet(GlobalIndex(self.u32()?)),
            8 => ConstExpr::V128(u128::from_le_bytes(self.take(16)?.try_into().expect("16 bytes"))),
            7 => {
                let count = self.count(1)?;
                let mut ops = Vec::with_capacity(count);
                for _ in 0..count {
                    ops.push(match self.u8()? {
                        0 => ConstOp::I32(self.u64()? as u32 as i32),
                        1 => ConstOp::I64(self.u64()? as i64),
                        2 => ConstOp::GlobalGet(GlobalIndex(
                            u32::try_from(self.u64()?).map_err(|_| corrupt("global index"))?,
                        )),
                        3 => ConstOp::I32Add,
                        4 => ConstOp::I32Sub,
                        5 => ConstOp::I32Mul,
                        6 => ConstOp::I64Add,
                        7 => ConstOp::I64Sub,
                        8 => ConstOp::I64Mul,
                        _ => return Err(corrupt("constant expression")),
                    });
                }
                ConstExpr::Extended(ops.into())
            }
            _ => return Err(corrupt("constant expression")),
        })
    }

    fn mode(&mut self) -> Result<SegmentMode, ArtifactError> {
        Ok(match self.u8()? {
            0 => SegmentMode::Passive,
            1 => SegmentMode::Active { index: self.u32()?, offset: self.const_expr()? },
            2 => SegmentMode::Declared,
            _ => return Err(corrupt("segment mode")),
        })
    }

    fn list<T>(
        &mut self,
        min_size: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, ArtifactError>,
    ) -> Result<Vec<T>, ArtifactError> {
        let n = self.count(min_size)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }
}

/// Reads a description written by [`write`] and checks it is consistent.
pub(super) fn read(r: &mut Reader<'_>) -> Result<ModuleInfo, ArtifactError> {
    let mut info = ModuleInfo {
        types: r.list(8, |r| {
            let params = r.list(1, Reader::val_type)?;
            let results = r.list(1, Reader::val_type)?;
            Ok(FuncType::new(params, results))
        })?,
        imports: r.list(13, |r| {
            let module = r.string()?;
            let name = r.string()?;
            let kind = match r.u8()? {
                0 => ImportKind::Func(TypeIndex(r.u32()?)),
                1 => ImportKind::Table(r.table()?),
                2 => ImportKind::Memory(r.memory()?),
                3 => ImportKind::Global(r.global()?),
                4 => ImportKind::Tag(TypeIndex(r.u32()?)),
                _ => return Err(corrupt("import kind")),
            };
            Ok(Import { module, name, kind })
        })?,
        functions: r.list(4, |r| Ok(TypeIndex(r.u32()?)))?,
        tables: r.list(11, Reader::table)?,
        memories: r.list(10, |r| r.memory())?,
        globals: r.list(2, Reader::global)?,
        global_inits: r.list(1, Reader::const_expr)?,
        table_inits: r.list(1, |r| if r.flag()? { r.const_expr().map(Some) } else { Ok(None) })?,
        ..ModuleInfo::default()
    };
    info.num_imported_funcs = r.u32()?;
    info.num_imported_tables = r.u32()?;
    info.num_imported_memories = r.u32()?;
    info.num_imported_globals = r.u32()?;
    info.exports = r.list(9, |r| {
        let name = r.string()?;
        let entity = match (r.u8()?, r.u32()?) {
            (0, i) => EntityIndex::Func(FuncIndex(i)),
            (1, i) => EntityIndex::Table(TableIndex(i)),
            (2, i) => EntityIndex::Memory(MemoryIndex(i)),
            (3, i) => EntityIndex::Global(GlobalIndex(i)),
            (4, i) => EntityIndex::Tag(TagIndex(i)),
            _ => return Err(corrupt("export kind")),
        };
        Ok((name, entity))
    })?;
    info.start = r.optional_u32("start function")?.map(FuncIndex);
    info.elements = r.list(6, |r| {
        let mode = r.mode()?;
        let ty = r.val_type()?;
        let items = r.list(1, Reader::const_expr)?;
        Ok(ElemSegment { mode, ty, items })
    })?;
    info.data = r.list(5, |r| {
        let mode = r.mode()?;
        let n = r.count(1)?;
        Ok(DataSegment { mode, bytes: r.take(n)?.to_vec() })
    })?;
    let names = r.list(8, |r| Ok((r.u32()?, r.string()?)))?;
    if !names.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(corrupt("function names out of order"));
    }
    info.func_names = names.into_iter().collect();
    info.tags = r.list(4, |r| Ok(TypeIndex(r.u32()?)))?;
    info.num_imported_tags = r.u32()?;
    check(&info)?;
    Ok(info)
}

/// Every index in range, the import counts matching the imports, one initialiser per defined
/// global and table: what load and instantiation index by without further checks.
fn check(info: &ModuleInfo) -> Result<(), ArtifactError> {
    let count = |f: fn(&ImportKind) -> bool| info.imports.iter().filter(|i| f(&i.kind)).count() as u32;
    if count(|k| matches!(k, ImportKind::Func(_))) != info.num_imported_funcs
        || count(|k| matches!(k, ImportKind::Table(_))) != info.num_imported_tables
        || count(|k| matches!(k, ImportKind::Memory(_))) != info.num_imported_memories
        || count(|k| matches!(k, ImportKind::Global(_))) != info.num_imported_globals
        || count(|k| matches!(k, ImportKind::Tag(_))) != info.num_imported_tags
    {
        return Err(corrupt("import counts"));
    }
    let imported = |n: u32, len: usize| n as usize <= len;
    if !imported(info.num_imported_funcs, info.functions.len())
        || !imported(info.num_imported_tables, info.tables.len())
        || !imported(info.num_imported_memories, info.memories.len())
        || !imported(info.num_imported_globals, info.globals.len())
        || !imported(info.num_imported_tags, info.tags.len())
    {
        return Err(corrupt("index space sizes"));
    }
    // Imports come first in their index spaces, with the types they declare.
    let mut next = [0usize; 5];
    let mut take = |space: usize| {
        next[space] += 1;
        next[space] - 1
    };
    for i in &info.imports {
        let matches = match &i.kind {
            ImportKind::Func(ty) => info.functions.get(take(0)) == Some(ty),
            ImportKind::Table(ty) => info.tables.get(take(1)) == Some(ty),
            ImportKind::Memory(ty) => info.memories.get(take(2)) == Some(ty),
            ImportKind::Global(ty) => info.globals.get(take(3)) == Some(ty),
            ImportKind::Tag(ty) => info.tags.get(take(4)) == Some(ty),
        };
        if !matches {
            return Err(corrupt("imported types"));
        }
    }
    if info.functions.iter().chain(&info.tags).any(|t| t.index() >= info.types.len()) {
        return Err(corrupt("function or tag type index"));
    }
    // A type refers to earlier types only (no recursion groups); anything else to any.
    let refers_within = |t: ValType, bound: usize| match t {
        ValType::Ref(RefType { heap: HeapType::Type(i), .. }) => i.index() < bound,
        _ => true,
    };
    let types_ok = info.types.iter().enumerate().all(|(i, ty)| ty.types().all(|t| refers_within(t, i)));
    let n = info.types.len();
    let others_ok = info.tables.iter().all(|t| t.element.is_ref() && refers_within(t.element, n))
        && info.globals.iter().all(|g| refers_within(g.ty, n))
        && info.elements.iter().all(|s| s.ty.is_ref() && refers_within(s.ty, n));
    if !types_ok || !others_ok {
        return Err(corrupt("type index in a value type"));
    }
    if info.global_inits.len() != info.globals.len() - info.num_imported_globals as usize
        || info.table_inits.len() != info.tables.len() - info.num_imported_tables as usize
    {
        return Err(corrupt("initialiser count"));
    }
    // A constant expression may read the globals before `globals` (the imported ones, or the
    // earlier defined ones for a global's initialiser).
    let const_ok = |e: &ConstExpr, globals: usize| match e {
        ConstExpr::RefFunc(f) => f.index() < info.functions.len(),
        ConstExpr::GlobalGet(g) => g.index() < globals,
        ConstExpr::Extended(ops) => {
            well_formed(ops) && ops.iter().all(|op| !matches!(op, ConstOp::GlobalGet(g) if g.index() >= globals))
        }
        _ => true,
    };
    let all_globals = info.globals.len();
    let inits_ok =
        info.global_inits.iter().enumerate().all(|(d, e)| const_ok(e, info.num_imported_globals as usize + d))
            && info.table_inits.iter().flatten().all(|e| const_ok(e, all_globals));
    let mode_ok = |m: &SegmentMode, space: usize| match m {
        SegmentMode::Active { index, offset } => (*index as usize) < space && const_ok(offset, all_globals),
        _ => true,
    };
    let segments_ok = info
        .elements
        .iter()
        .all(|s| mode_ok(&s.mode, info.tables.len()) && s.items.iter().all(|e| const_ok(e, all_globals)))
        && info.data.iter().all(|s| mode_ok(&s.mode, info.memories.len()) && s.mode != SegmentMode::Declared);
    if !inits_ok || !segments_ok {
        return Err(corrupt("constant expression or segment index"));
    }
    let export_ok = |e: &EntityIndex| match e {
        EntityIndex::Func(i) => i.index() < info.functions.len(),
        EntityIndex::Table(i) => i.index() < info.tables.len(),
        EntityIndex::Memory(i) => i.index() < info.memories.len(),
        EntityIndex::Global(i) => i.index() < info.globals.len(),
        EntityIndex::Tag(i) => i.index() < info.tags.len(),
    };
    if !info.exports.iter().all(|(_, e)| export_ok(e)) || info.start.is_some_and(|s| s.index() >= info.functions.len())
    {
        return Err(corrupt("export or start index"));
    }
    Ok(())
}
