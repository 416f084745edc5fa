//! The compiled artifact: per-function machine code with relocations and trap sites,
//! serializable to bytes (the code cache stores exactly these bytes) and back.
//!
//! Format (little-endian): magic `SBRNART\0`, format version u32, then three lists (functions,
//! array trampolines, host trampolines), each a u32 count of entries
//! `code_len u32, code, reloc_count u32, (offset u32, kind u8, target_kind u8, target u32,
//! addend i64)*, trap_count u32, (offset u32, kind u8)*`. Deserialization checks every
//! length and offset, so a damaged artifact is an error, never an out-of-bounds write.

use crate::trap::TrapKind;

const MAGIC: &[u8; 8] = b"SBRNART\0";
/// Bumped whenever the artifact's meaning changes.
pub const FORMAT_VERSION: u32 = 3;

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

    /// Serializes the artifact.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.identity.len() as u32).to_le_bytes());
        out.extend_from_slice(self.identity.as_bytes());
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
        out
    }

    /// Parses bytes made by [`Artifact::to_bytes`], checking every length and offset.
    pub fn from_bytes(bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(ArtifactError::BadMagic);
        }
        let version = r.u32()?;
        if version != FORMAT_VERSION {
            return Err(ArtifactError::Version(version));
        }
        let identity_len = r.count(1)?;
        let identity =
            String::from_utf8(r.take(identity_len)?.to_vec()).map_err(|_| ArtifactError::Corrupt("engine identity"))?;
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
        if r.pos != bytes.len() {
            return Err(ArtifactError::Corrupt("trailing bytes"));
        }
        let host_trampolines = lists.pop().expect("3 lists");
        let array_trampolines = lists.pop().expect("3 lists");
        let functions = lists.pop().expect("3 lists");
        Ok(Artifact { identity, functions, array_trampolines, host_trampolines })
    }
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
        Artifact {
            identity: "test compiler".into(),
            functions: vec![f.clone(), CompiledFunction::default()],
            array_trampolines: vec![f],
            host_trampolines: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let a = sample();
        assert_eq!(Artifact::from_bytes(&a.to_bytes()), Ok(a));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().to_bytes();
        for len in 0..bytes.len() {
            assert!(Artifact::from_bytes(&bytes[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn bad_magic_version_and_offsets_are_errors() {
        let mut bytes = sample().to_bytes();
        bytes[0] ^= 1;
        assert_eq!(Artifact::from_bytes(&bytes), Err(ArtifactError::BadMagic));
        let mut bytes = sample().to_bytes();
        bytes[8] = 99;
        assert_eq!(Artifact::from_bytes(&bytes), Err(ArtifactError::Version(99)));
        // First relocation's offset (after magic, version, identity, count, code_len, code,
        // reloc count).
        let mut bytes = sample().to_bytes();
        let at = 8 + 4 + 4 + "test compiler".len() + 4 + 4 + 32 + 4;
        bytes[at..at + 4].copy_from_slice(&30u32.to_le_bytes());
        assert!(Artifact::from_bytes(&bytes).is_err());
    }
}
