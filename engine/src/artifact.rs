//! The compiled artifact: the module's machine code laid out in one text (functions, then
//! array trampolines, then host trampolines; calls between them already resolved), where each
//! piece starts, its trap sites and the few relocations left for load time (runtime library
//! calls), serializable to bytes (the code cache stores exactly these bytes) and back.
//!
//! Format (little-endian): magic `SBRNART\0`, format version u32, the engine identity (u32
//! length, UTF-8), the binary's length u64, the module description ([`info`]'s encoding),
//! the memory image's runs (flag u8; if set, a u32 count of `(memory_offset u64, len u64)`),
//! the text's length u32, the functions' offsets (u32 count, u32 each), the array and host
//! trampolines' offsets (u32 count each, u32 each, `u32::MAX` for none), the trap sites (u32
//! count, `(offset u32, kind u8)` sorted), the exception handlers (u32 count, `(return address
//! u32, handler u32)` sorted by return address), the load-time relocations (u32 count, `(offset u32,
//! kind u8, target_kind u8, target u32, addend i64)`); then zero bytes up to a multiple of
//! [`IMAGE_PAGE_SIZE`] from the artifact's start, the text, `int3` bytes (0xcc) up to the
//! next multiple; last, if there is an image, the runs' bytes one after another. So the text
//! and each image run are page-aligned wherever the artifact is, and can be mapped from a
//! file holding the artifact at a page-aligned offset: loading maps the code, it does not copy
//! it. Deserialization checks every length, offset and index, so a damaged artifact is an
//! error, never an out-of-bounds write or a panic.

mod info;

use crate::image::{ImageChunk, MemoryImage, IMAGE_PAGE_SIZE};
use crate::module_info::ModuleInfo;
use crate::trap::TrapKind;
use crate::vm::memory::WASM_PAGE_SIZE;

const MAGIC: &[u8; 8] = b"SBRNART\0";
/// Bumped whenever the artifact's meaning changes.
pub const FORMAT_VERSION: u32 = 11;

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

/// One relocation inside a function's code (as the compiler makes it), or inside the text
/// (as the artifact keeps it for load time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relocation {
    /// Offset of the patched bytes in the function's code, or in the text.
    pub offset: u32,
    /// How to patch.
    pub kind: RelocKind,
    /// What to point at.
    pub target: RelocTarget,
    /// Added to the target address.
    pub addend: i64,
}

/// Machine code of one function or trampoline as the compiler makes it (empty when not
/// needed); [`Artifact::new`] lays them out into one text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompiledFunction {
    /// Machine code.
    pub code: Vec<u8>,
    /// Relocations to apply when loading.
    pub relocs: Vec<Relocation>,
    /// Trap sites: code offset → trap, sorted by offset.
    pub traps: Vec<(u32, TrapKind)>,
    /// Calls inside a `try_table` (or legacy `try`): the return address's offset → the
    /// offset of the code that handles an exception thrown by the callee, sorted.
    pub handlers: Vec<(u32, u32)>,
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
    /// Where each piece of code is in the text, its traps, what is left to relocate.
    pub(crate) layout: CodeLayout,
    /// The machine code, laid out (see [`CodeLayout`]); empty in an artifact parsed without
    /// its payloads ([`Artifact::parse`]).
    pub(crate) text: Vec<u8>,
}

/// Where the pieces of an artifact's text are. The text holds the defined functions in order,
/// then the array trampolines, then the host trampolines, each 16-byte aligned (gaps filled
/// with `int3`); calls from one to another are resolved when it is laid out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeLayout {
    /// The text's length.
    pub(crate) text_len: u32,
    /// Start of each defined function, non-decreasing.
    pub(crate) func_offsets: Vec<u32>,
    /// Per type index: start of `extern "C" fn(callee_vmctx, wasm_call, caller_vmctx,
    /// values)`, if compiled.
    pub(crate) array_trampolines: Vec<Option<u32>>,
    /// Per type index: start of the wasm-convention function forwarding to a host dispatcher,
    /// if compiled.
    pub(crate) host_trampolines: Vec<Option<u32>>,
    /// Trap sites: text offset → trap, sorted by offset.
    pub(crate) traps: Vec<(u32, TrapKind)>,
    /// Exception handlers: a call's return address → its handler (text offsets), sorted.
    pub(crate) handlers: Vec<(u32, u32)>,
    /// Relocations to apply when loading (offsets in the text): runtime library calls, whose
    /// addresses are the loading process's, and anything not resolved at layout.
    pub(crate) relocs: Vec<Relocation>,
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
        let (layout, text) = lay_out(&info, &functions, &array_trampolines, &host_trampolines);
        Artifact { identity, wasm_len: wasm_len as u64, info, image, layout, text }
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
        let l = &self.layout;
        out.extend_from_slice(&l.text_len.to_le_bytes());
        out.extend_from_slice(&(l.func_offsets.len() as u32).to_le_bytes());
        for o in &l.func_offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        for list in [&l.array_trampolines, &l.host_trampolines] {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for o in list {
                out.extend_from_slice(&o.unwrap_or(NONE).to_le_bytes());
            }
        }
        out.extend_from_slice(&(l.traps.len() as u32).to_le_bytes());
        for (offset, kind) in &l.traps {
            out.extend_from_slice(&offset.to_le_bytes());
            out.push(kind.to_byte());
        }
        out.extend_from_slice(&(l.handlers.len() as u32).to_le_bytes());
        for (ret, handler) in &l.handlers {
            out.extend_from_slice(&ret.to_le_bytes());
            out.extend_from_slice(&handler.to_le_bytes());
        }
        out.extend_from_slice(&(l.relocs.len() as u32).to_le_bytes());
        for r in &l.relocs {
            out.extend_from_slice(&r.offset.to_le_bytes());
            out.push(match r.kind {
                RelocKind::PcRel4 => 0,
                RelocKind::Abs8 => 1,
            });
            let (target_kind, target) = match r.target {
                RelocTarget::Func(f) => (0u8, f),
                RelocTarget::LibCall(lc) => (1u8, LibCall::ALL.iter().position(|l| *l == lc).expect("listed") as u32),
            };
            out.push(target_kind);
            out.extend_from_slice(&target.to_le_bytes());
            out.extend_from_slice(&r.addend.to_le_bytes());
        }
        out.resize(out.len().next_multiple_of(IMAGE_PAGE_SIZE), 0);
        out.extend_from_slice(&self.text);
        out.resize(out.len().next_multiple_of(IMAGE_PAGE_SIZE), INT3);
        if let Some(image) = &self.image {
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

    /// [`Artifact::from_bytes`], but the text and the image's bytes are copied only if
    /// `payloads` (otherwise they are empty); also returns where they start in `bytes`.
    pub(crate) fn parse(bytes: &[u8], payloads: bool) -> Result<(Artifact, Places), ArtifactError> {
        let mut r = Reader { bytes, pos: 0 };
        let identity = read_header(&mut r)?.to_string();
        let wasm_len = u64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let info = info::read(&mut r)?;
        let chunks = match r.u8()? {
            0 => None,
            1 => Some(read_chunks(&mut r, &info)?),
            _ => return Err(ArtifactError::Corrupt("image flag")),
        };
        let layout = read_layout(&mut r)?;
        let padding = r.pos.next_multiple_of(IMAGE_PAGE_SIZE) - r.pos;
        if r.take(padding)?.iter().any(|b| *b != 0) {
            return Err(ArtifactError::Corrupt("padding before the text"));
        }
        let text_at = r.pos;
        let text = r.take(layout.text_len as usize)?;
        let text = if payloads { text.to_vec() } else { Vec::new() };
        let padding = r.pos.next_multiple_of(IMAGE_PAGE_SIZE) - r.pos;
        if r.take(padding)?.iter().any(|b| *b != INT3) {
            return Err(ArtifactError::Corrupt("padding after the text"));
        }
        let mut image_at = None;
        let image = match chunks {
            None => None,
            Some(chunks) => {
                image_at = Some(r.pos);
                let len = chunks.iter().map(|c| c.len).sum::<u64>();
                let data = r.take(usize::try_from(len).map_err(|_| ArtifactError::Corrupt("truncated"))?)?;
                let data = if payloads { data.into() } else { Vec::new().into() };
                Some(MemoryImage { chunks, data })
            }
        };
        if r.pos != bytes.len() {
            return Err(ArtifactError::Corrupt("trailing bytes"));
        }
        Ok((Artifact { identity, wasm_len, info, image, layout, text }, Places { text_at, image_at }))
    }
}

/// Where an artifact's payloads start in its bytes ([`Artifact::parse`]): both page-aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Places {
    /// The text.
    pub(crate) text_at: usize,
    /// The memory image, if there is one.
    pub(crate) image_at: Option<usize>,
}

/// Marks a trampoline not compiled in the serialized offsets.
const NONE: u32 = u32::MAX;

/// `int3`: fills the gaps between pieces of code and the text's last page, so a stray jump
/// stops loudly.
const INT3: u8 = 0xcc;

/// Lays the compiler's pieces out into one text: each 16-byte aligned; calls between them
/// (PC-relative, to a defined function) resolved now, since their distance is fixed; the
/// rest (runtime library calls, anything unexpected) kept for load time. Trap sites become
/// text offsets.
fn lay_out(
    info: &ModuleInfo,
    functions: &[CompiledFunction],
    array_trampolines: &[CompiledFunction],
    host_trampolines: &[CompiledFunction],
) -> (CodeLayout, Vec<u8>) {
    let mut text = Vec::new();
    let mut place = |f: &CompiledFunction| -> u32 {
        text.resize(text.len().next_multiple_of(16), INT3);
        let at = text.len() as u32;
        text.extend_from_slice(&f.code);
        at
    };
    let func_offsets: Vec<u32> = functions.iter().map(&mut place).collect();
    let mut trampolines = |list: &[CompiledFunction]| -> Vec<Option<u32>> {
        list.iter().map(|f| (!f.code.is_empty()).then(|| place(f))).collect()
    };
    let array = trampolines(array_trampolines);
    let host = trampolines(host_trampolines);
    let placed = functions
        .iter()
        .zip(func_offsets.iter().map(|o| Some(*o)))
        .chain(array_trampolines.iter().zip(array.iter().copied()))
        .chain(host_trampolines.iter().zip(host.iter().copied()))
        .filter_map(|(f, at)| at.map(|at| (f, at)));
    let (mut traps, mut handlers, mut relocs) = (Vec::new(), Vec::new(), Vec::new());
    for (f, at) in placed {
        traps.extend(f.traps.iter().map(|(o, k)| (at + o, *k)));
        handlers.extend(f.handlers.iter().map(|(r, h)| (at + r, at + h)));
        for r in &f.relocs {
            let offset = at + r.offset;
            let target = match r.target {
                RelocTarget::Func(index) => {
                    index.checked_sub(info.num_imported_funcs).and_then(|d| func_offsets.get(d as usize)).copied()
                }
                RelocTarget::LibCall(_) => None,
            };
            let resolved = match (r.kind, target) {
                (RelocKind::PcRel4, Some(target)) => {
                    i32::try_from(i64::from(target) + r.addend - i64::from(offset)).ok()
                }
                _ => None,
            };
            match resolved {
                Some(delta) => text[offset as usize..offset as usize + 4].copy_from_slice(&delta.to_le_bytes()),
                None => relocs.push(Relocation { offset, ..*r }),
            }
        }
    }
    traps.sort_by_key(|(o, _)| *o);
    handlers.sort_unstable();
    let layout = CodeLayout {
        text_len: text.len() as u32,
        func_offsets,
        array_trampolines: array,
        host_trampolines: host,
        traps,
        handlers,
        relocs,
    };
    (layout, text)
}

/// Reads the layout, checking every offset against the text's length.
fn read_layout(r: &mut Reader<'_>) -> Result<CodeLayout, ArtifactError> {
    let text_len = r.u32()?;
    let inside = |o: u32| o < text_len;
    let func_offsets = (0..r.count(4)?).map(|_| r.u32()).collect::<Result<Vec<u32>, _>>()?;
    if !func_offsets.windows(2).all(|w| w[0] <= w[1]) || !func_offsets.iter().all(|o| *o <= text_len) {
        return Err(ArtifactError::Corrupt("function offsets"));
    }
    let mut trampolines = || -> Result<Vec<Option<u32>>, ArtifactError> {
        (0..r.count(4)?)
            .map(|_| match r.u32()? {
                NONE => Ok(None),
                o if inside(o) => Ok(Some(o)),
                _ => Err(ArtifactError::Corrupt("trampoline offset")),
            })
            .collect()
    };
    let array_trampolines = trampolines()?;
    let host_trampolines = trampolines()?;
    // Hundreds of thousands in a large program (CPython: 640,000): one pass over the bytes.
    let n = r.count(5)?;
    let mut traps = Vec::with_capacity(n);
    let mut last = 0;
    for site in r.take(5 * n)?.chunks_exact(5) {
        let offset = u32::from_le_bytes([site[0], site[1], site[2], site[3]]);
        let kind = TrapKind::from_byte(site[4]).ok_or(ArtifactError::Corrupt("trap kind"))?;
        if !inside(offset) {
            return Err(ArtifactError::Corrupt("trap site outside the text"));
        }
        if offset < last {
            return Err(ArtifactError::Corrupt("trap sites out of order"));
        }
        last = offset;
        traps.push((offset, kind));
    }
    let mut handlers = Vec::new();
    for _ in 0..r.count(8)? {
        let (ret, handler) = (r.u32()?, r.u32()?);
        if !inside(ret) || !inside(handler) {
            return Err(ArtifactError::Corrupt("exception handler outside the text"));
        }
        handlers.push((ret, handler));
    }
    if !handlers.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(ArtifactError::Corrupt("exception handlers out of order"));
    }
    let mut relocs = Vec::new();
    for _ in 0..r.count(18)? {
        let offset = r.u32()?;
        let kind = match r.u8()? {
            0 => RelocKind::PcRel4,
            1 => RelocKind::Abs8,
            _ => return Err(ArtifactError::Corrupt("relocation kind")),
        };
        let width = if kind == RelocKind::PcRel4 { 4 } else { 8 };
        if u64::from(offset) + width > u64::from(text_len) {
            return Err(ArtifactError::Corrupt("relocation outside the text"));
        }
        let target = match (r.u8()?, r.u32()?) {
            (0, f) => RelocTarget::Func(f),
            (1, l) => RelocTarget::LibCall(*LibCall::ALL.get(l as usize).ok_or(ArtifactError::Corrupt("libcall"))?),
            _ => return Err(ArtifactError::Corrupt("relocation target")),
        };
        let addend = i64::from_le_bytes(r.take(8)?.try_into().expect("8 bytes"));
        relocs.push(Relocation { offset, kind, target, addend });
    }
    Ok(CodeLayout { text_len, func_offsets, array_trampolines, host_trampolines, traps, handlers, relocs })
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
        let t = FuncType::new(vec![ValType::I32, ValType::F64], vec![ValType::EXTERNREF]);
        let exn = ValType::Ref(RefType { nullable: false, heap: HeapType::Exn });
        let typed = FuncType::new(
            vec![ValType::Ref(RefType { nullable: false, heap: HeapType::Type(TypeIndex(1)) })],
            vec![exn],
        );
        ModuleInfo {
            types: vec![t, FuncType::default(), typed],
            imports: vec![
                Import { module: "env".into(), name: "f".into(), kind: ImportKind::Func(TypeIndex(1)) },
                Import {
                    module: "env".into(),
                    name: "g".into(),
                    kind: ImportKind::Global(GlobalType { ty: ValType::I32, mutable: false }),
                },
                Import { module: "env".into(), name: "e".into(), kind: ImportKind::Tag(TypeIndex(1)) },
            ],
            functions: vec![TypeIndex(1), TypeIndex(0), TypeIndex(1)],
            tables: vec![TableType {
                // A typed reference: the long encoding.
                element: ValType::Ref(RefType { nullable: true, heap: HeapType::Type(TypeIndex(1)) }),
                limits: Limits { min: 2, max: Some(9) },
                table64: false,
            }],
            memories: vec![MemoryType { limits: Limits { min: 1, max: None }, memory64: false }],
            globals: vec![
                GlobalType { ty: ValType::I32, mutable: false },
                GlobalType { ty: ValType::I64, mutable: true },
                GlobalType { ty: ValType::F32, mutable: true },
                GlobalType { ty: ValType::F64, mutable: true },
                GlobalType { ty: ValType::V128, mutable: true },
            ],
            global_inits: vec![
                ConstExpr::I64(-5),
                ConstExpr::F32(7),
                ConstExpr::GlobalGet(GlobalIndex(0)),
                ConstExpr::V128(u128::MAX - 0x0102),
            ],
            table_inits: vec![Some(ConstExpr::RefFunc(FuncIndex(2)))],
            num_imported_funcs: 1,
            num_imported_tables: 0,
            num_imported_memories: 0,
            num_imported_globals: 1,
            exports: vec![
                ("run".into(), EntityIndex::Func(FuncIndex(1))),
                ("mem".into(), EntityIndex::Memory(MemoryIndex(0))),
                ("oops".into(), EntityIndex::Tag(TagIndex(1))),
            ],
            start: Some(FuncIndex(2)),
            elements: vec![
                ElemSegment {
                    mode: SegmentMode::Active { index: 0, offset: ConstExpr::GlobalGet(GlobalIndex(0)) },
                    ty: ValType::FUNCREF,
                    items: vec![ConstExpr::RefFunc(FuncIndex(0)), ConstExpr::RefNull],
                },
                ElemSegment { mode: SegmentMode::Declared, ty: ValType::FUNCREF, items: vec![] },
            ],
            data: vec![
                DataSegment { mode: SegmentMode::Passive, bytes: b"passive".to_vec() },
                DataSegment {
                    mode: SegmentMode::Active {
                        index: 0,
                        // An extended constant expression, as position-independent code has.
                        offset: ConstExpr::Extended(
                            vec![ConstOp::GlobalGet(GlobalIndex(0)), ConstOp::I32(5000), ConstOp::I32Add].into(),
                        ),
                    },
                    bytes: vec![],
                },
            ],
            func_names: [(1, "run".to_string()), (2, "start".to_string())].into_iter().collect(),
            bodies: vec![],
            tags: vec![TypeIndex(1), TypeIndex(0)],
            num_imported_tags: 1,
        }
    }

    fn sample() -> Artifact {
        let f = CompiledFunction {
            code: vec![0x90; 32],
            relocs: vec![
                // A call of defined function 0 (function 1: one import): resolved at layout.
                Relocation { offset: 4, kind: RelocKind::PcRel4, target: RelocTarget::Func(1), addend: -4 },
                Relocation {
                    offset: 8,
                    kind: RelocKind::Abs8,
                    target: RelocTarget::LibCall(LibCall::FmaF64),
                    addend: 0,
                },
            ],
            traps: vec![(2, TrapKind::Unreachable), (20, TrapKind::MemoryOutOfBounds)],
            handlers: vec![(12, 24)],
        };
        let mut data = vec![0u8; 2 * IMAGE_PAGE_SIZE];
        data[7] = 1;
        data[IMAGE_PAGE_SIZE + 9] = 2;
        let info = sample_info();
        let (layout, text) = lay_out(&info, &[f.clone(), CompiledFunction::default()], &[f], &[]);
        Artifact {
            identity: "test compiler".into(),
            wasm_len: 1234,
            info,
            image: Some(MemoryImage {
                chunks: vec![
                    ImageChunk { memory_offset: 4096, len: 4096 },
                    ImageChunk { memory_offset: 3 * 4096, len: 4096 },
                ],
                data: data.into(),
            }),
            layout,
            text,
        }
    }

    #[test]
    fn layout_resolves_calls_between_functions_and_keeps_library_calls() {
        let a = sample();
        let l = &a.layout;
        // Two functions (the second empty) and one array trampoline, each 16-byte aligned.
        assert_eq!((l.func_offsets.clone(), l.array_trampolines.clone()), (vec![0, 32], vec![Some(32)]));
        assert_eq!(l.text_len, 64);
        // Each piece's call of function 0 at its offset 4: `0 - (at + 4) - 4`.
        assert_eq!(a.text[4..8], (-8i32).to_le_bytes());
        assert_eq!(a.text[36..40], (-40i32).to_le_bytes());
        // The library calls stay for load time, at text offsets; traps too.
        let libcalls: Vec<u32> = l.relocs.iter().map(|r| r.offset).collect();
        assert_eq!(libcalls, vec![8, 40]);
        assert!(l.relocs.iter().all(|r| matches!(r.target, RelocTarget::LibCall(LibCall::FmaF64))));
        let traps: Vec<u32> = l.traps.iter().map(|t| t.0).collect();
        assert_eq!(traps, vec![2, 20, 34, 52]);
        // Exception handlers too, both ends.
        assert_eq!(l.handlers, vec![(12, 24), (44, 56)]);
    }

    #[test]
    fn round_trip() {
        let a = sample();
        let bytes = a.to_bytes();
        assert_eq!(Artifact::from_bytes(&bytes), Ok(a.clone()));
        let (parsed, places) = Artifact::parse(&bytes, false).unwrap();
        assert_eq!(places.text_at % IMAGE_PAGE_SIZE, 0, "the text is page-aligned in the artifact");
        assert_eq!(&bytes[places.text_at..][..a.text.len()], &a.text[..]);
        assert!(bytes[places.text_at + a.text.len()..][..IMAGE_PAGE_SIZE - a.text.len()].iter().all(|b| *b == INT3));
        let at = places.image_at.expect("an image");
        assert_eq!(at % IMAGE_PAGE_SIZE, 0, "the image is page-aligned in the artifact");
        assert_eq!(&bytes[at..], &a.image.as_ref().unwrap().data[..]);
        assert_eq!((parsed.info, parsed.layout.clone(), parsed.text.len()), (a.info.clone(), a.layout.clone(), 0));
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
        check(&|a| a.info.functions[2] = TypeIndex(3), "function type out of range");
        let to = |t: u32| ValType::Ref(RefType { nullable: true, heap: HeapType::Type(TypeIndex(t)) });
        check(&|a| a.info.types[2].params[0] = to(2), "a type referring to itself");
        check(&|a| a.info.types[1].results = vec![to(2)].into(), "a type referring to a later one");
        check(&|a| a.info.tables[0].element = to(3), "table element type out of range");
        check(&|a| a.info.globals[1].ty = to(3), "global type out of range");
        check(&|a| a.info.elements[1].ty = to(3), "segment type out of range");
        check(&|a| a.info.tables[0].element = ValType::I32, "table of numbers");
        check(&|a| a.info.functions[0] = TypeIndex(0), "import type differs");
        check(&|a| a.info.num_imported_globals = 0, "import count");
        check(&|a| a.info.global_inits[0] = ConstExpr::GlobalGet(GlobalIndex(1)), "global reads itself");
        check(&|a| a.info.global_inits.pop().map(drop).unwrap_or(()), "initialiser count");
        check(&|a| a.info.exports[0].1 = EntityIndex::Func(FuncIndex(3)), "export index");
        check(&|a| a.info.start = Some(FuncIndex(9)), "start index");
        let extended = |ops: Vec<ConstOp>| SegmentMode::Active { index: 0, offset: ConstExpr::Extended(ops.into()) };
        check(&|a| a.info.data[1].mode = extended(vec![ConstOp::I32(1), ConstOp::I32Add]), "extended: pops too much");
        check(&|a| a.info.data[1].mode = extended(vec![ConstOp::I32(1), ConstOp::I32(2)]), "extended: two results");
        check(
            &|a| a.info.data[1].mode = extended(vec![ConstOp::GlobalGet(GlobalIndex(a.info.globals.len() as u32))]),
            "extended: global",
        );
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
        let check = |change: &dyn Fn(&mut CodeLayout), what: &'static str| {
            let mut a = sample();
            change(&mut a.layout);
            assert_eq!(Artifact::from_bytes(&a.to_bytes()), Err(ArtifactError::Corrupt(what)));
        };
        check(&|l| l.relocs[0].offset = 60, "relocation outside the text");
        check(&|l| l.traps[3].0 = 64, "trap site outside the text");
        check(&|l| l.traps.swap(0, 1), "trap sites out of order");
        check(&|l| l.handlers[0].1 = 64, "exception handler outside the text");
        check(&|l| l.handlers.push(l.handlers[0]), "exception handlers out of order");
        check(&|l| l.func_offsets = vec![32, 0], "function offsets");
        check(&|l| l.array_trampolines[0] = Some(64), "trampoline offset");
        // Padding: zero before the text, int3 after it.
        let a = sample();
        let (_, places) = Artifact::parse(&a.to_bytes(), false).unwrap();
        let mut bytes = a.to_bytes();
        bytes[places.text_at - 1] = 1;
        assert_eq!(Artifact::from_bytes(&bytes), Err(ArtifactError::Corrupt("padding before the text")));
        let mut bytes = a.to_bytes();
        bytes[places.image_at.unwrap() - 1] = 0;
        assert_eq!(Artifact::from_bytes(&bytes), Err(ArtifactError::Corrupt("padding after the text")));
    }
}
