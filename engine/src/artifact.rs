//! The compiled artifact: per-function machine code with relocations and trap sites,
//! serializable to bytes (the code cache stores exactly these bytes) and back.
//!
//! Format (little-endian): magic `SBRNART\0`, format version u32, the engine identity (u32
//! length, UTF-8), the binary's length u64, the module description ([`info`]'s encoding),
//! the memory image's runs (flag u8; if set, a u32 count of `(memory_offset u64, len u64)`),
//! then three lists (functions, array trampolines, host trampolines), each a u32 count of
//! entries `code_len u32, code, reloc_count u32, (offset u32, kind u8, target_kind u8,
//! target u32, addend i64)*, trap_count u32, (offset u32, kind u8)*`; last, if there is an
//! image, zero bytes up to a multiple of [`IMAGE_PAGE_SIZE`] from the artifact's start and the
//! runs' bytes, one after another (so each run is page-aligned wherever the artifact is, and
//! can be mapped from a file holding the artifact at a page-aligned offset). Deserialization
//! checks every length, offset and index, so a damaged artifact is an error, never an
//! out-of-bounds write or a panic.

mod info;

use crate::image::{ImageChunk, MemoryImage, IMAGE_PAGE_SIZE};
use crate::module_info::ModuleInfo;
use crate::trap::TrapKind;
use crate::vm::memory::WASM_PAGE_SIZE;

const MAGIC: &[u8; 8] = b"SBRNART\0";
/// Bumped whenever the artifact's meaning changes.
pub const FORMAT_VERSION: u32 = 4;

/// How a relocation is patched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocKind {
    /// 32-bit PC-relative: `target + addend - place`.
    PcRel4,
    /// 64-bit absolute: `target + addend`.
    Abs8,
}

/// Runtime library functions Cranelift may call (float rounding without SSE4.1, fma).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum LibCall {
    CeilF32,
    CeilF64,
    FloorF32,
    FloorF64,
    TruncF32,
    TruncF64,
    NearestF32,
    NearestF64,
    FmaF32,
    FmaF64,
}

impl LibCall {
    const ALL: [LibCall; 10] = [
        LibCall::CeilF32,
        LibCall::CeilF64,
        LibCall::FloorF32,
        LibCall::FloorF64,
        LibCall::TruncF32,
        LibCall::TruncF64,
        LibCall::NearestF32,
        LibCall::NearestF64,
        LibCall::FmaF32,
        LibCall::FmaF64,
    ];

    /// Maps Cranelift's libcall; `None` for ones the engine does not provide.
    pub fn from_cranelift(lc: cranelift_codegen::ir::LibCall) -> Option<Self> {
        use cranelift_codegen::ir::LibCall as C;
        Some(match lc {
            C::CeilF32 => LibCall::CeilF32,
            C::CeilF64 => LibCall::CeilF64,
            C::FloorF32 => LibCall::FloorF32,
            C::FloorF64 => LibCall::FloorF64,
            C::TruncF32 => LibCall::TruncF32,
            C::TruncF64 => LibCall::TruncF64,
            C::NearestF32 => LibCall::NearestF32,
            C::NearestF64 => LibCall::NearestF64,
            C::FmaF32 => LibCall::FmaF32,
            C::FmaF64 => LibCall::FmaF64,
            _ => return None,
        })
    }

    /// Address of the implementation.
    pub fn address(self) -> usize {
        extern "C" fn ceil_f32(x: f32) -> f32 {
            x.ceil()
        }
        extern "C" fn ceil_f64(x: f64) -> f64 {
            x.ceil()
        }
        extern "C" fn floor_f32(x: f32) -> f32 {
            x.floor()
        }
        extern "C" fn floor_f64(x: f64) -> f64 {
            x.floor()
        }
        extern "C" fn trunc_f32(x: f32) -> f32 {
            x.trunc()
        }
        extern "C" fn trunc_f64(x: f64) -> f64 {
            x.trunc()
        }
        extern "C" fn nearest_f32(x: f32) -> f32 {
            x.round_ties_even()
        }
        extern "C" fn nearest_f64(x: f64) -> f64 {
            x.round_ties_even()
        }
        extern "C" fn fma_f32(a: f32, b: f32, c: f32) -> f32 {
            a.mul_add(b, c)
        }
        extern "C" fn fma_f64(a: f64, b: f64, c: f64) -> f64 {
            a.mul_add(b, c)
        }
        match self {
            LibCall::CeilF32 => ceil_f32 as *const () as usize,
            LibCall::CeilF64 => ceil_f64 as *const () as usize,
            LibCall::FloorF32 => floor_f32 as *const () as usize,
            LibCall::FloorF64 => floor_f64 as *const () as usize,
            LibCall::TruncF32 => trunc_f32 as *const () as usize,
            LibCall::TruncF64 => trunc_f64 as *const () as usize,
            LibCall::NearestF32 => nearest_f32 as *const () as usize,
            LibCall::NearestF64 => nearest_f64 as *const () as usize,
            LibCall::FmaF32 => fma_f32 as *const () as usize,
            LibCall::FmaF64 => fma_f64 as *const () as usize,
        }
    }
}

/// What a relocation points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocTarget {
    /// A function of the module, by function index (always a defined one).
    Func(u32),
    /// A runtime library function.
    LibCall(LibCall),
}

/// One relocation inside a function's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocation {
    /// Offset of the patched bytes in the function's code.
    pub offset: u32,
    /// How to patch.
    pub kind: RelocKind,
    /// What to point at.
    pub target: RelocTarget,
    /// Added to the target address.
    pub addend: i64,
}

/// Machine code of one function or trampoline (empty when not needed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompiledFunction {
    /// Machine code.
    pub code: Vec<u8>,
    /// Relocations to apply when loading.
    pub relocs: Vec<Relocation>,
    /// Trap sites: code offset → trap, sorted by offset.
    pub traps: Vec<(u32, TrapKind)>,
}

/// Everything compiled for one module.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    /// The identity of the engine that made it ([`crate::Engine::identity`]: version, memory
    /// strategy, CPU features). Code is only loaded by an engine of the same identity: code
    /// relying on guard pages must never run against memories without them, nor AVX code on
    /// a CPU without AVX.
    pub(crate) identity: String,
    /// Length of the binary it was compiled from (a cheap check that a binary given with it
    /// is the one).
    pub(crate) wasm_len: u64,
    /// The module's description, without its function bodies' places and, when there is an
    /// image, without the bytes of the active data segments (the image holds them).
    pub(crate) info: ModuleInfo,
    /// Memory 0's initial image, if the module qualifies ([`MemoryImage::build`]).
    pub(crate) image: Option<MemoryImage>,
    /// Defined functions, in order.
    pub(crate) functions: Vec<CompiledFunction>,
    /// Per type index: `extern "C" fn(callee_vmctx, wasm_call, caller_vmctx, values)`.
    pub(crate) array_trampolines: Vec<CompiledFunction>,
    /// Per type index: wasm-convention function forwarding to a host dispatcher.
    pub(crate) host_trampolines: Vec<CompiledFunction>,
}

/// Why bytes are not a valid artifact.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArtifactError {
    /// Wrong magic number.
    #[error("not a compiled artifact")]
    BadMagic,
    /// Another format version.
    #[error("artifact format version {0} (expected {FORMAT_VERSION})")]
    Version(u32),
    /// Truncated or inconsistent contents.
    #[error("corrupt artifact: {0}")]
    Corrupt(&'static str),
}

impl Artifact {
    /// The identity of the engine that made it.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The module's description (see [`Artifact`]'s fields for what it leaves out).
    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    /// Memory 0's initial image, if the module has one.
    pub fn image(&self) -> Option<&MemoryImage> {
        self.image.as_ref()
    }

    /// Builds an artifact from compiled code and the module's description: computes the
    /// memory image and keeps what loading needs of `info`.
    pub(crate) fn new(
        identity: String,
        wasm_len: usize,
        info: &ModuleInfo,
        functions: Vec<CompiledFunction>,
        array_trampolines: Vec<CompiledFunction>,
        host_trampolines: Vec<CompiledFunction>,
    ) -> Artifact {
        let image = MemoryImage::build(info);
        let mut info = info.clone();
        info.bodies = Vec::new();
        if image.is_some() {
            // Active segments are dropped at instantiation, right after the image is applied:
            // their bytes are never read again.
            for seg in &mut info.data {
                if matches!(seg.mode, crate::module_info::SegmentMode::Active { .. }) {
                    seg.bytes = Vec::new();
                }
            }
        }
        Artifact { identity, wasm_len: wasm_len as u64, info, image, functions, array_trampolines, host_trampolines }
    }

    /// Serializes the artifact.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.identity.len() as u32).to_le_bytes());
        out.extend_from_slice(self.identity.as_bytes());
        out.extend_from_slice(&self.wasm_len.to_le_bytes());
        info::write(&mut out, &self.info);
        out.push(self.image.is_some() as u8);
        if let Some(image) = &self.image {
            out.extend_from_slice(&(image.chunks.len() as u32).to_le_bytes());
            for c in &image.chunks {
                out.extend_from_slice(&c.memory_offset.to_le_bytes());
                out.extend_from_slice(&c.len.to_le_bytes());
            }
        }
        for list in [&self.functions, &self.array_trampolines, &self.host_trampolines] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for f in list {
                out.extend_from_slice(&(f.code.len() as u32).to_le_bytes());
                out.extend_from_slice(&f.code);
                out.extend_from_slice(&(f.relocs.len() as u32).to_le_bytes());
                for r in &f.relocs {
                    out.extend_from_slice(&r.offset.to_le_bytes());
                    out.push(match r.kind {
                        RelocKind::PcRel4 => 0,
                        RelocKind::Abs8 => 1,
                    });
                    let (target_kind, target) = match r.target {
                        RelocTarget::Func(f) => (0u8, f),
                        RelocTarget::LibCall(lc) => {
                            (1u8, LibCall::ALL.iter().position(|l| *l == lc).expect("listed") as u32)
                        }
                    };
                    out.push(target_kind);
                    out.extend_from_slice(&target.to_le_bytes());
                    out.extend_from_slice(&r.addend.to_le_bytes());
                }
                out.extend_from_slice(&(f.traps.len() as u32).to_le_bytes());
                for (offset, kind) in &f.traps {
                    out.extend_from_slice(&offset.to_le_bytes());
                    out.push(kind.to_byte());
                }
            }
        }
        if let Some(image) = &self.image {
            out.resize(out.len().next_multiple_of(IMAGE_PAGE_SIZE), 0);
            out.extend_from_slice(&image.data);
        }
        out
    }

    /// The identity of the engine that made the artifact whose first bytes are `head` (its
    /// header only: magic, format version, identity), without reading the rest.
    ///
    /// # Errors
    /// Not an artifact, another format version, or a header cut short or malformed.
    pub fn identity_in_header(head: &[u8]) -> Result<&str, ArtifactError> {
        read_header(&mut Reader { bytes: head, pos: 0 })
    }

    /// Parses bytes made by [`Artifact::to_bytes`], checking every length and offset.
    pub fn from_bytes(bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        Self::parse(bytes, true).map(|(a, _)| a)
    }

    /// [`Artifact::from_bytes`], but the image's bytes are copied only if `image_bytes`
    /// (otherwise the image's `data` is empty); also returns where they start in `bytes`.
    pub(crate) fn parse(bytes: &[u8], image_bytes: bool) -> Result<(Artifact, Option<usize>), ArtifactError> {
        let mut r = Reader { bytes, pos: 0 };
        let identity = read_header(&mut r)?.to_string();
        let wasm_len = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let info = info::read(&mut r)?;
        let chunks = match r.u8()? {
            0 => None,
            1 => Some(read_chunks(&mut r, &info)?),
            _ => return Err(ArtifactError::Corrupt("image flag")),
        };
        let mut lists = Vec::with_capacity(3);
        for _ in 0..3 {
            let count = r.count(4)?;
            let mut list = Vec::with_capacity(count);
            for _ in 0..count {
                let code_len = r.count(1)?;
                let code = r.take(code_len)?.to_vec();
                let mut relocs = Vec::new();
                for _ in 0..r.count(18)? {
                    let offset = r.u32()?;
                    let kind = match r.u8()? {
                        0 => RelocKind::PcRel4,
                        1 => RelocKind::Abs8,
                        _ => return Err(ArtifactError::Corrupt("relocation kind")),
                    };
                    let width = if kind == RelocKind::PcRel4 { 4 } else { 8 };
                    if offset as usize + width > code.len() {
                        return Err(ArtifactError::Corrupt("relocation outside its function"));
                    }
                    let target = match (r.u8()?, r.u32()?) {
                        (0, f) => RelocTarget::Func(f),
                        (1, l) => RelocTarget::LibCall(
                            *LibCall::ALL.get(l as usize).ok_or(ArtifactError::Corrupt("libcall"))?,
                        ),
                        _ => return Err(ArtifactError::Corrupt("relocation target")),
                    };
                    let addend = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
                    relocs.push(Relocation { offset, kind, target, addend });
                }
                let mut traps = Vec::new();
                for _ in 0..r.count(5)? {
                    let offset = r.u32()?;
                    let kind = TrapKind::from_byte(r.u8()?).ok_or(ArtifactError::Corrupt("trap kind"))?;
                    if offset as usize >= code.len().max(1) {
                        return Err(ArtifactError::Corrupt("trap site outside its function"));
                    }
                    traps.push((offset, kind));
                }
                if !traps.windows(2).all(|w| w[0].0 <= w[1].0) {
                    return Err(ArtifactError::Corrupt("trap sites out of order"));
                }
                list.push(CompiledFunction { code, relocs, traps });
            }
            lists.push(list);
        }
        let mut image_at = None;
        let image = match chunks {
            None => None,
            Some(chunks) => {
                let padding = r.pos.next_multiple_of(IMAGE_PAGE_SIZE) - r.pos;
                if r.take(padding)?.iter().any(|b| *b != 0) {
                    return Err(ArtifactError::Corrupt("image padding"));
                }
                image_at = Some(r.pos);
                let len = chunks.iter().map(|c| c.len).sum::<u64>();
                let data = r.take(usize::try_from(len).map_err(|_| ArtifactError::Corrupt("truncated"))?)?;
                let data = if image_bytes { data.into() } else { Vec::new().into() };
                Some(MemoryImage { chunks, data })
            }
        };
        if r.pos != bytes.len() {
            return Err(ArtifactError::Corrupt("trailing bytes"));
        }
        let host_trampolines = lists.pop().expect("3 lists");
        let array_trampolines = lists.pop().expect("3 lists");
        let functions = lists.pop().expect("3 lists");
        let artifact = Artifact { identity, wasm_len, info, image, functions, array_trampolines, host_trampolines };
        Ok((artifact, image_at))
    }
}

/// Reads an image's runs: page-aligned, non-empty, in order without overlap, inside memory 0's
/// initial size, which must be a defined memory.
fn read_chunks(r: &mut Reader<'_>, info: &ModuleInfo) -> Result<Vec<ImageChunk>, ArtifactError> {
    let size = match info.memories.first() {
        Some(m) if info.num_imported_memories == 0 => u64::from(m.limits.min) * WASM_PAGE_SIZE as u64,
        _ => return Err(ArtifactError::Corrupt("image without a defined memory")),
    };
    let page = IMAGE_PAGE_SIZE as u64;
    let count = r.count(16)?;
    let mut chunks = Vec::with_capacity(count);
    let mut end = 0u64;
    for _ in 0..count {
        let memory_offset = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let aligned = memory_offset % page == 0 && len % page == 0 && len > 0;
        let chunk_end = memory_offset.checked_add(len).filter(|e| *e <= size);
        if !aligned || chunk_end.is_none() || memory_offset < end {
            return Err(ArtifactError::Corrupt("image run"));
        }
        end = chunk_end.unwrap_or(size);
        chunks.push(ImageChunk { memory_offset, len });
    }
    Ok(chunks)
}

/// The header: magic, format version, the engine identity (returned).
fn read_header<'a>(r: &mut Reader<'a>) -> Result<&'a str, ArtifactError> {
    if r.take(8)? != MAGIC {
        return Err(ArtifactError::BadMagic);
    }
    let version = r.u32()?;
    if version != FORMAT_VERSION {
        return Err(ArtifactError::Version(version));
    }
    let identity_len = r.count(1)?;
    std::str::from_utf8(r.take(identity_len)?).map_err(|_| ArtifactError::Corrupt("engine identity"))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ArtifactError> {
        let end =
            self.pos.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or(ArtifactError::Corrupt("truncated"))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ArtifactError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ArtifactError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    /// A count of items at least `min_size` bytes each: bounded by the bytes left, so a
    /// corrupt count cannot make us allocate gigabytes.
    fn count(&mut self, min_size: usize) -> Result<usize, ArtifactError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() - self.pos {
            return Err(ArtifactError::Corrupt("count larger than the data"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module_info::*;
    use crate::types::*;

    /// A description touching every part of the encoding.
    fn sample_info() -> ModuleInfo {
        let t = FuncType::new(vec![ValType::I32, ValType::F64], vec![ValType::ExternRef]);
        ModuleInfo {
            types: vec![t, FuncType::default()],
            imports: vec![
                Import { module: "env".into(), name: "f".into(), kind: ImportKind::Func(TypeIndex(1)) },
                Import {
                    module: "env".into(),
                    name: "g".into(),
                    kind: ImportKind::Global(GlobalType { ty: ValType::I32, mutable: false }),
                },
            ],
            functions: vec![TypeIndex(1), TypeIndex(0), TypeIndex(1)],
            tables: vec![TableType { element: ValType::FuncRef, limits: Limits { min: 2, max: Some(9) } }],
            memories: vec![MemoryType { limits: Limits { min: 1, max: None } }],
            globals: vec![
                GlobalType { ty: ValType::I32, mutable: false },
                GlobalType { ty: ValType::I64, mutable: true },
                GlobalType { ty: ValType::F32, mutable: true },
                GlobalType { ty: ValType::F64, mutable: true },
            ],
            global_inits: vec![ConstExpr::I64(-5), ConstExpr::F32(7), ConstExpr::GlobalGet(GlobalIndex(0))],
            table_inits: vec![Some(ConstExpr::RefFunc(FuncIndex(2)))],
            num_imported_funcs: 1,
            num_imported_tables: 0,
            num_imported_memories: 0,
            num_imported_globals: 1,
            exports: vec![
                ("run".into(), EntityIndex::Func(FuncIndex(1))),
                ("mem".into(), EntityIndex::Memory(MemoryIndex(0))),
            ],
            start: Some(FuncIndex(2)),
            elements: vec![
                ElemSegment {
                    mode: SegmentMode::Active { index: 0, offset: ConstExpr::GlobalGet(GlobalIndex(0)) },
                    ty: ValType::FuncRef,
                    items: vec![ConstExpr::RefFunc(FuncIndex(0)), ConstExpr::RefNull],
                },
                ElemSegment { mode: SegmentMode::Declared, ty: ValType::FuncRef, items: vec![] },
            ],
            data: vec![
                DataSegment { mode: SegmentMode::Passive, bytes: b"passive".to_vec() },
                DataSegment { mode: SegmentMode::Active { index: 0, offset: ConstExpr::I32(5000) }, bytes: vec![] },
            ],
            func_names: [(1, "run".to_string()), (2, "start".to_string())].into_iter().collect(),
            bodies: vec![],
        }
    }

    fn sample() -> Artifact {
        let f = CompiledFunction {
            code: vec![0x90; 32],
            relocs: vec![
                Relocation { offset: 4, kind: RelocKind::PcRel4, target: RelocTarget::Func(3), addend: -4 },
                Relocation {
                    offset: 8,
                    kind: RelocKind::Abs8,
                    target: RelocTarget::LibCall(LibCall::FmaF64),
                    addend: 0,
                },
            ],
            traps: vec![(2, TrapKind::Unreachable), (20, TrapKind::MemoryOutOfBounds)],
        };
        let mut data = vec![0u8; 2 * IMAGE_PAGE_SIZE];
        data[7] = 1;
        data[IMAGE_PAGE_SIZE + 9] = 2;
        Artifact {
            identity: "test compiler".into(),
            wasm_len: 1234,
            info: sample_info(),
            image: Some(MemoryImage {
                chunks: vec![
                    ImageChunk { memory_offset: 4096, len: 4096 },
                    ImageChunk { memory_offset: 3 * 4096, len: 4096 },
                ],
                data: data.into(),
            }),
            functions: vec![f.clone(), CompiledFunction::default()],
            array_trampolines: vec![f],
            host_trampolines: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let a = sample();
        let bytes = a.to_bytes();
        assert_eq!(Artifact::from_bytes(&bytes), Ok(a.clone()));
        let (parsed, at) = Artifact::parse(&bytes, false).unwrap();
        let at = at.expect("an image");
        assert_eq!(at % IMAGE_PAGE_SIZE, 0, "the image is page-aligned in the artifact");
        assert_eq!(&bytes[at..], &a.image.as_ref().unwrap().data[..]);
        assert_eq!(parsed.info, a.info);
        let no_image = Artifact { image: None, ..a };
        assert_eq!(Artifact::from_bytes(&no_image.to_bytes()), Ok(no_image));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for a in [sample(), Artifact { image: None, ..sample() }] {
            let bytes = a.to_bytes();
            for len in 0..bytes.len() {
                assert!(Artifact::from_bytes(&bytes[..len]).is_err(), "length {len}");
            }
        }
    }

    #[test]
    fn every_byte_changed_is_an_error_or_harmless() {
        // No change to any one byte panics; most are caught (the rest change a value the
        // format cannot tell from another valid one: code bytes, a constant, a name).
        let bytes = sample().to_bytes();
        let mut caught = 0;
        for at in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= flip;
                caught += Artifact::from_bytes(&damaged).is_err() as usize;
            }
        }
        assert!(caught > 0);
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(Artifact::from_bytes(&longer), Err(ArtifactError::Corrupt("trailing bytes")));
    }

    #[test]
    fn inconsistent_descriptions_and_images_are_errors() {
        let check = |change: &dyn Fn(&mut Artifact), what: &str| {
            let mut a = sample();
            change(&mut a);
            assert!(Artifact::from_bytes(&a.to_bytes()).is_err(), "{what}");
        };
        check(&|a| a.info.functions[2] = TypeIndex(2), "function type out of range");
        check(&|a| a.info.functions[0] = TypeIndex(0), "import type differs");
        check(&|a| a.info.num_imported_globals = 0, "import count");
        check(&|a| a.info.global_inits[0] = ConstExpr::GlobalGet(GlobalIndex(1)), "global reads itself");
        check(&|a| a.info.global_inits.pop().map(drop).unwrap_or(()), "initialiser count");
        check(&|a| a.info.exports[0].1 = EntityIndex::Func(FuncIndex(3)), "export index");
        check(&|a| a.info.start = Some(FuncIndex(9)), "start index");
        check(&|a| a.info.elements[0].items[0] = ConstExpr::RefFunc(FuncIndex(3)), "element item");
        check(
            &|a| a.info.data[1].mode = SegmentMode::Active { index: 1, offset: ConstExpr::I32(0) },
            "data segment memory",
        );
        let chunk = |a: &mut Artifact, c: ImageChunk| a.image.as_mut().unwrap().chunks[1] = c;
        check(&|a| chunk(a, ImageChunk { memory_offset: 3 * 4096 + 1, len: 4096 }), "unaligned run");
        check(&|a| chunk(a, ImageChunk { memory_offset: 4096, len: 4096 }), "overlapping runs");
        check(&|a| chunk(a, ImageChunk { memory_offset: 65536, len: 4096 }), "run past the memory");
        check(&|a| chunk(a, ImageChunk { memory_offset: u64::MAX - 4095, len: 4096 }), "overflowing run");
        check(&|a| a.info.memories[0].limits.min = 0, "memory smaller than the image");
    }

    #[test]
    fn bad_magic_version_and_offsets_are_errors() {
        let mut bytes = sample().to_bytes();
        bytes[0] ^= 1;
        assert_eq!(Artifact::from_bytes(&bytes), Err(ArtifactError::BadMagic));
        let mut bytes = sample().to_bytes();
        bytes[8] = 99;
        assert_eq!(Artifact::from_bytes(&bytes), Err(ArtifactError::Version(99)));
        // First relocation's offset: after the code of the first function.
        let a = sample();
        let mut bytes = a.to_bytes();
        let code = &a.functions[0].code;
        let at = bytes.windows(code.len()).position(|w| w == &code[..]).unwrap() + code.len() + 4;
        assert_eq!(bytes[at..at + 4], 4u32.to_le_bytes());
        bytes[at..at + 4].copy_from_slice(&30u32.to_le_bytes());
        assert_eq!(Artifact::from_bytes(&bytes), Err(ArtifactError::Corrupt("relocation outside its function")));
        // Non-zero padding before the image.
        let mut bytes = a.to_bytes();
        let (_, image_at) = Artifact::parse(&bytes, false).unwrap();
        bytes[image_at.unwrap() - 1] = 1;
        assert_eq!(Artifact::from_bytes(&bytes), Err(ArtifactError::Corrupt("image padding")));
    }
}
