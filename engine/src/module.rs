//! A loaded module: its description plus its machine code mapped executable.

use crate::artifact::{Artifact, ArtifactError, CodeLayout, RelocKind, RelocTarget};
use crate::compile::CompileError;
use crate::engine::Engine;
use crate::image::{ImageBytes, ModuleImage, IMAGE_PAGE_SIZE};
use crate::module_info::{self, EntityIndex, LoadError, ModuleInfo, SegmentMode};
use crate::table_image::TableImages;
use crate::trap::TrapKind;
use crate::types::*;
use crate::vm::code_memory::CodeMemory;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Why a module could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// Loading or validation failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Compilation failed.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The artifact is damaged or does not belong to this module.
    #[error("{0}")]
    Artifact(#[from] ArtifactError),
    /// The artifact does not fit the module.
    #[error("compiled artifact does not match the module: {0}")]
    Mismatch(&'static str),
    /// Mapping the code failed.
    #[error("failed to map compiled code: {0}")]
    Map(String),
}

/// Where a cache hit's artifact lies in a file (a sealed memfd, or a cache file): given to
/// [`Module::from_artifact_mapped`] so instances map the memory image from it copy-on-write
/// instead of copying it.
#[derive(Debug)]
pub struct ImageSource {
    /// A descriptor of the file, open for reading.
    pub fd: OwnedFd,
    /// Offset of the artifact's first byte in the file; a multiple of the page size (4096) for
    /// the image to be mapped (otherwise it is copied at load, as without a source).
    pub offset: u64,
}

/// Where an artifact's text comes from when it is loaded.
enum Text<'a> {
    /// These bytes: copied into executable memory.
    Bytes(&'a [u8]),
    /// A file holding `bytes` at the page-aligned `offset`: mapped (`bytes` are the fallback
    /// where the kernel refuses an executable mapping of the file).
    File {
        /// The file.
        file: &'a File,
        /// Where the text starts in it.
        offset: u64,
        /// The same bytes, mapped from the file.
        bytes: &'a [u8],
    },
}

/// A validated, compiled module ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct Module {
    inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) engine: Engine,
    pub(crate) info: ModuleInfo,
    pub(crate) code: CodeMemory,
    /// Start of each defined function in `code`.
    pub(crate) func_offsets: Vec<u32>,
    /// Per type: start of its array-call trampoline, if compiled.
    pub(crate) array_trampolines: Vec<Option<u32>>,
    /// Per type: start of its host trampoline, if compiled.
    pub(crate) host_trampolines: Vec<Option<u32>>,
    /// Trap sites: offset in `code` → trap, sorted.
    pub(crate) traps: Vec<(u32, TrapKind)>,
    /// Exception handlers: return address offset in `code` → handler offset, sorted.
    pub(crate) handlers: Vec<(u32, u32)>,
    /// Memory 0's initial image, if the module has one: instantiation applies it instead of
    /// the active data segments.
    pub(crate) image: Option<ModuleImage>,
    /// The defined tables' initial contents, if known from the module alone: instantiation
    /// then fills the tables on first use instead of applying the element segments.
    pub(crate) table_images: Option<TableImages>,
    /// Per data segment: whether it is active (dropped once instantiation applied it).
    pub(crate) active_data: Box<[bool]>,
    /// The memory host functions see ([`crate::Caller::memory`]): the one exported as
    /// `memory` (WASI's convention), else memory 0.
    pub(crate) host_memory: u32,
    /// The canonical signature id of each of the module's types (engine-wide).
    pub(crate) type_ids: Box<[u32]>,
}

impl Module {
    /// Validates, compiles and loads a module from `.wasm` or `.wat` bytes.
    pub fn new(engine: &Engine, bytes: &[u8]) -> Result<Module, ModuleError> {
        let wasm = module_info::wat_to_binary(bytes)?;
        let (info, artifact) = Self::compile(engine, &wasm)?;
        // SAFETY: the artifact was compiled just now from `wasm`, whose description `info` is,
        // by `engine`'s own compiler.
        unsafe { Self::load(engine, info, &artifact) }
    }

    /// Validates and compiles `wasm`, returning its description and compiled artifact.
    pub fn compile(engine: &Engine, wasm: &[u8]) -> Result<(ModuleInfo, Artifact), ModuleError> {
        engine.validate(wasm)?;
        let info = module_info::parse(wasm)?;
        let artifact = engine.compiler()?.compile_module(&info, wasm, engine.compile_threads())?;
        Ok((info, artifact))
    }

    /// Loads a module from its binary and the bytes of an artifact previously compiled from
    /// the very same binary. The binary is no longer parsed: the artifact describes the module
    /// ([`Module::from_artifact_bytes`]); only its length is checked against the artifact's.
    ///
    /// # Safety
    /// As for [`Module::from_artifact_bytes`], with the artifact compiled from exactly `wasm`.
    ///
    /// # Errors
    /// [`ModuleError`]: the artifact is damaged, does not fit `wasm`'s length, or does not fit.
    pub unsafe fn from_artifact(engine: &Engine, wasm: &[u8], artifact: &[u8]) -> Result<Module, ModuleError> {
        let (parsed, places) = Artifact::parse(artifact, false)?;
        if parsed.wasm_len != wasm.len() as u64 {
            return Err(ModuleError::Mismatch("module length"));
        }
        let image = places.image_at.map(|at| Self::image_from_bytes(&parsed, &artifact[at..]));
        let text = Text::Bytes(&artifact[places.text_at..][..parsed.layout.text_len as usize]);
        // SAFETY: the caller's contract, passed on.
        unsafe { Self::load_parts(engine, parsed.info, &parsed.identity, parsed.layout, text, image) }
    }

    /// Loads a module from the bytes of an artifact alone, without its binary: no parsing or
    /// validation of the module, no copy of it; the artifact's machine code is copied once
    /// into executable memory, and its memory image (if any) is copied once, here, to be copied
    /// into each instance's memory.
    ///
    /// # Safety
    /// `artifact` must be the bytes of [`Artifact::to_bytes`] of an artifact that
    /// [`Module::compile`] made, by an engine of `engine`'s identity (as a content-addressed
    /// cache, keyed by the module's hash and the engine identity, whose storage only trusted
    /// code writes, guarantees). The checks made here (format, engine identity, counts,
    /// indices) catch damage, not malice: any other bytes can run arbitrary code.
    ///
    /// # Errors
    /// [`ModuleError`]: the artifact is damaged or does not fit the engine.
    pub unsafe fn from_artifact_bytes(engine: &Engine, artifact: &[u8]) -> Result<Module, ModuleError> {
        let (parsed, places) = Artifact::parse(artifact, false)?;
        let image = places.image_at.map(|at| Self::image_from_bytes(&parsed, &artifact[at..]));
        let text = Text::Bytes(&artifact[places.text_at..][..parsed.layout.text_len as usize]);
        // SAFETY: the caller's contract, passed on.
        unsafe { Self::load_parts(engine, parsed.info, &parsed.identity, parsed.layout, text, image) }
    }

    /// [`Module::from_artifact_bytes`] for an artifact whose bytes also lie in a file at
    /// `source`: its machine code is mapped from the file (private; only the pages holding
    /// load-time relocations are copied, when written), not copied; the module keeps the
    /// descriptor, and each instance maps its memory image from the file copy-on-write
    /// (`MAP_PRIVATE`) instead of copying it (reading it with `pread` where mapping is refused).
    /// If `source.offset` is not page-aligned, or the file is shorter than the artifact, or the
    /// kernel refuses to map the code executable (a `noexec` mount), both are copied from
    /// `artifact` as without a source.
    ///
    /// # Safety
    /// As for [`Module::from_artifact_bytes`]; and the file's bytes from `source.offset` must
    /// be exactly `artifact`, and must not change nor the file shrink while the module or any
    /// memory instantiated from it lives (a sealed memfd, or a cache file only ever replaced
    /// by renaming, keeps this): unwritten memory pages read through to the file.
    ///
    /// # Errors
    /// As for [`Module::from_artifact_bytes`].
    pub unsafe fn from_artifact_mapped(
        engine: &Engine,
        artifact: &[u8],
        source: ImageSource,
    ) -> Result<Module, ModuleError> {
        let (parsed, places) = Artifact::parse(artifact, false)?;
        let file = File::from(source.fd);
        let long_enough = file.metadata().is_ok_and(|m| m.len() >= source.offset.saturating_add(artifact.len() as u64));
        let mappable = source.offset.is_multiple_of(IMAGE_PAGE_SIZE as u64) && long_enough;
        let text_bytes = &artifact[places.text_at..][..parsed.layout.text_len as usize];
        let text = match mappable {
            true => Text::File { file: &file, offset: source.offset + places.text_at as u64, bytes: text_bytes },
            false => Text::Bytes(text_bytes),
        };
        let image = places.image_at.map(|at| match (mappable, file.try_clone()) {
            (true, Ok(file)) => {
                let chunks = parsed.image.as_ref().map(|i| i.chunks.clone()).unwrap_or_default();
                ModuleImage { chunks, bytes: ImageBytes::File { file, offset: source.offset + at as u64 } }
            }
            _ => Self::image_from_bytes(&parsed, &artifact[at..]),
        });
        // SAFETY: the caller's contract, passed on (the file's part included).
        unsafe { Self::load_parts(engine, parsed.info, &parsed.identity, parsed.layout, text, image) }
    }

    /// The image of a parsed artifact whose image bytes (not kept by the parse) are `bytes`.
    fn image_from_bytes(parsed: &Artifact, bytes: &[u8]) -> ModuleImage {
        let chunks = parsed.image.as_ref().map(|i| i.chunks.clone()).unwrap_or_default();
        ModuleImage { chunks, bytes: ImageBytes::Bytes(bytes.into()) }
    }

    /// Maps compiled code and applies its relocations.
    ///
    /// # Safety
    /// `artifact` must have been made by [`Module::compile`] from the binary `info` describes,
    /// by an engine of `engine`'s identity (see [`Module::from_artifact`]): its code is mapped
    /// executable and run as it is.
    ///
    /// # Errors
    /// [`ModuleError`]: the artifact does not fit the module or engine, or mapping failed.
    pub unsafe fn load(engine: &Engine, info: ModuleInfo, artifact: &Artifact) -> Result<Module, ModuleError> {
        let image = artifact
            .image
            .as_ref()
            .map(|i| ModuleImage { chunks: i.chunks.clone(), bytes: ImageBytes::Bytes(i.data.clone()) });
        let text = Text::Bytes(&artifact.text);
        // SAFETY: the caller's contract, passed on.
        unsafe { Self::load_parts(engine, info, &artifact.identity, artifact.layout.clone(), text, image) }
    }

    /// [`Module::load`] from an artifact's parts.
    ///
    /// # Safety
    /// As for [`Module::load`]; `identity`, `layout`, `text` and `image` are the artifact's.
    unsafe fn load_parts(
        engine: &Engine,
        info: ModuleInfo,
        identity: &str,
        layout: CodeLayout,
        text: Text<'_>,
        memory_image: Option<ModuleImage>,
    ) -> Result<Module, ModuleError> {
        if memory_image.is_some() && (info.num_imported_memories != 0 || info.memories.is_empty()) {
            return Err(ModuleError::Mismatch("memory image without a defined memory"));
        }
        if identity != engine.identity() {
            return Err(ModuleError::Mismatch("engine identity (version, CPU features or bounds strategy)"));
        }
        if layout.func_offsets.len() != info.num_defined_funcs() {
            return Err(ModuleError::Mismatch("function count"));
        }
        if layout.array_trampolines.len() != info.types.len() || layout.host_trampolines.len() != info.types.len() {
            return Err(ModuleError::Mismatch("type count"));
        }
        for (t, ty) in info.functions.iter().enumerate() {
            let needs_host = t < info.num_imported_funcs as usize;
            let (array, host) = (layout.array_trampolines[ty.index()], layout.host_trampolines[ty.index()]);
            if array.is_none() || (needs_host && host.is_none()) {
                return Err(ModuleError::Mismatch("missing trampoline"));
            }
        }
        let num_imported = info.num_imported_funcs;
        let patch = |bytes: &mut [u8], base: usize| -> Result<(), ModuleError> {
            for r in &layout.relocs {
                let target = match r.target {
                    RelocTarget::Func(index) => {
                        let defined = index
                            .checked_sub(num_imported)
                            .and_then(|d| layout.func_offsets.get(d as usize))
                            .ok_or(ModuleError::Mismatch("relocation to an unknown function"))?;
                        base + *defined as usize
                    }
                    RelocTarget::LibCall(lc) => lc.address(),
                };
                let place = r.offset as usize;
                let value = (target as i64).wrapping_add(r.addend);
                match r.kind {
                    RelocKind::Abs8 => bytes[place..place + 8].copy_from_slice(&value.to_le_bytes()),
                    RelocKind::PcRel4 => {
                        let delta = value.wrapping_sub((base + place) as i64);
                        let delta =
                            i32::try_from(delta).map_err(|_| ModuleError::Mismatch("relocation out of range"))?;
                        bytes[place..place + 4].copy_from_slice(&delta.to_le_bytes());
                    }
                }
            }
            Ok(())
        };
        let mapped = match text {
            Text::File { file, offset, bytes } => {
                // SAFETY: the caller's contract: the file holds `bytes` at `offset` and they do
                // not change while the module lives; the artifact's format pads the text's last
                // page with `int3`.
                match unsafe { CodeMemory::map_file(file, offset, bytes.len(), patch) } {
                    Err(crate::vm::code_memory::CodeMemoryError::Map { .. }) => CodeMemory::new(bytes, patch),
                    other => other,
                }
            }
            Text::Bytes(bytes) => CodeMemory::new(bytes, patch),
        };
        let code = mapped.map_err(|e| match e {
            crate::vm::code_memory::CodeMemoryError::Patch(e) => e,
            other => ModuleError::Map(other.to_string()),
        })?;
        Ok(Module {
            inner: Arc::new(ModuleInner {
                engine: engine.clone(),
                code,
                func_offsets: layout.func_offsets,
                array_trampolines: layout.array_trampolines,
                host_trampolines: layout.host_trampolines,
                traps: layout.traps,
                handlers: layout.handlers,
                image: memory_image,
                table_images: TableImages::build(&info),
                active_data: info.data.iter().map(|d| matches!(d.mode, SegmentMode::Active { .. })).collect(),
                type_ids: engine.canonical_type_ids(&info.types),
                host_memory: match info.export("memory") {
                    Some(EntityIndex::Memory(m)) => m.0,
                    _ => 0,
                },
                info,
            }),
        })
    }

    /// The module's description. Loaded from an artifact alone, it has no function bodies'
    /// places, and, when the module has a memory image, no bytes for its active data segments
    /// (the image holds them; they are dropped at instantiation anyway).
    pub fn info(&self) -> &ModuleInfo {
        &self.inner.info
    }

    /// The engine it was compiled for.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Imports with their types, `(module, name, type)`, in the engine's canonical types (what
    /// the store's objects and the host's must match).
    pub fn imports(&self) -> Vec<(String, String, ExternType)> {
        let inner = &self.inner;
        inner.info.imports.iter().map(|i| (i.module.clone(), i.name.clone(), inner.import_type(&i.kind))).collect()
    }

    /// Exports with their types, in the engine's canonical types.
    pub fn exports(&self) -> Vec<(String, ExternType)> {
        let inner = &self.inner;
        let info = &inner.info;
        info.exports
            .iter()
            .map(|(name, e)| {
                let ty = match *e {
                    module_info::EntityIndex::Func(f) => ExternType::Func(inner.signature(info.functions[f.index()])),
                    module_info::EntityIndex::Table(t) => {
                        ExternType::Table(inner.canonical_table(info.tables[t.index()]))
                    }
                    module_info::EntityIndex::Memory(m) => ExternType::Memory(info.memories[m.index()]),
                    module_info::EntityIndex::Global(g) => {
                        ExternType::Global(inner.canonical_global(info.globals[g.index()]))
                    }
                    module_info::EntityIndex::Tag(t) => ExternType::Tag(inner.signature(info.tags[t.index()])),
                };
                (name.clone(), ty)
            })
            .collect()
    }

    pub(crate) fn inner(&self) -> &Arc<ModuleInner> {
        &self.inner
    }
}

impl ModuleInner {
    /// The canonical signature of the module's type `t`.
    pub(crate) fn signature(&self, t: TypeIndex) -> FuncType {
        self.engine.signature(self.type_ids[t.index()])
    }

    /// A table type of the module in canonical types.
    pub(crate) fn canonical_table(&self, t: TableType) -> TableType {
        TableType { element: t.element.canonical(&self.type_ids), ..t }
    }

    /// A global type of the module in canonical types.
    pub(crate) fn canonical_global(&self, g: GlobalType) -> GlobalType {
        GlobalType { ty: g.ty.canonical(&self.type_ids), ..g }
    }

    /// What an import must be, in canonical types.
    pub(crate) fn import_type(&self, kind: &module_info::ImportKind) -> ExternType {
        match kind {
            module_info::ImportKind::Func(t) => ExternType::Func(self.signature(*t)),
            module_info::ImportKind::Table(t) => ExternType::Table(self.canonical_table(*t)),
            module_info::ImportKind::Memory(m) => ExternType::Memory(*m),
            module_info::ImportKind::Global(g) => ExternType::Global(self.canonical_global(*g)),
            module_info::ImportKind::Tag(t) => ExternType::Tag(self.signature(*t)),
        }
    }

    /// Address of defined function `f`'s code.
    pub(crate) fn func_address(&self, f: DefinedFuncIndex) -> *const u8 {
        // SAFETY: offsets were laid out inside the mapped image.
        unsafe { self.code.base().add(self.func_offsets[f.index()] as usize) }
    }

    /// Address of a trampoline at `offset` in the image.
    pub(crate) fn code_address(&self, offset: u32) -> *const u8 {
        // SAFETY: trampoline offsets were laid out inside the mapped image.
        unsafe { self.code.base().add(offset as usize) }
    }

    /// The trap at `pc`, if `pc` is a trap site of this module.
    pub(crate) fn trap_at(&self, pc: usize) -> Option<TrapKind> {
        if !self.code.contains(pc) {
            return None;
        }
        let offset = (pc - self.code.base() as usize) as u32;
        self.traps.binary_search_by_key(&offset, |(o, _)| *o).ok().map(|i| self.traps[i].1)
    }

    /// Instructions executed since the count register was last charged, at the trap site `pc`
    /// of counting code (see `budget_sites`); `None` when `pc` is not in a defined function.
    pub(crate) fn pending_instructions_at(&self, pc: usize) -> Option<u32> {
        let (f, offset) = self.func_at(pc)?;
        let d = self.info.defined_func(f)?;
        let start = self.func_offsets[d.index()];
        let end = self.func_end(d.index()).min(self.code.len() as u32);
        // SAFETY: `start..end` is a function's bytes (code and table) in the mapped code, which
        // lives as long as `self` and is never written after loading.
        let bytes = unsafe { std::slice::from_raw_parts(self.code.base().add(start as usize), (end - start) as usize) };
        Some(crate::budget_sites::pending_at(bytes, offset))
    }

    /// Where defined function `i`'s bytes end: the next one's start, or the first trampoline's.
    fn func_end(&self, i: usize) -> u32 {
        self.func_offsets.get(i + 1).copied().unwrap_or_else(|| {
            self.array_trampolines.iter().chain(&self.host_trampolines).flatten().copied().min().unwrap_or(u32::MAX)
        })
    }

    /// What the unwinder needs to know of a return address `pc`: `None` when it is not in one
    /// of this module's functions; otherwise the handler of that call, if it has one.
    pub(crate) fn call_site(&self, pc: usize) -> Option<Option<usize>> {
        self.func_at(pc)?;
        let offset = (pc - self.code.base() as usize) as u32;
        let handler = self.handlers.binary_search_by_key(&offset, |(r, _)| *r).ok().map(|i| self.handlers[i].1);
        Some(handler.map(|h| self.code.base() as usize + h as usize))
    }

    /// The defined function containing `pc` and the offset of `pc` in it.
    pub(crate) fn func_at(&self, pc: usize) -> Option<(FuncIndex, u32)> {
        if !self.code.contains(pc) {
            return None;
        }
        let offset = (pc - self.code.base() as usize) as u32;
        let i = self.func_offsets.partition_point(|o| *o <= offset).checked_sub(1)?;
        // Trampolines follow the functions: a pc past the last function's code is not in it.
        let end = self.func_end(i);
        (offset < end).then(|| (self.info.func_index(DefinedFuncIndex(i as u32)), offset - self.func_offsets[i]))
    }
}
