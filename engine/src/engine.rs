//! The engine: configuration, the compiler, and the engine-wide signature registry.

use crate::compile::{CompileError, Compiler};
use crate::types::FuncType;
use crate::vm::memory::{guard_reservation_possible, BoundsStrategy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Memory bounds strategy; `None` picks guard pages when the address space allows.
    pub bounds: Option<BoundsStrategy>,
    /// Compilation threads; `None` uses every available core.
    pub compile_threads: Option<usize>,
    /// Maximum bytes of native stack wasm code may use (default 512 KiB). The thread that
    /// calls into wasm must have this much stack left, plus room for host functions.
    pub max_wasm_stack: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { bounds: None, compile_threads: None, max_wasm_stack: 512 << 10 }
    }
}

/// A shareable engine: compiler plus signature registry. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: Config,
    compiler: Compiler,
    signatures: Mutex<Signatures>,
}

#[derive(Default)]
struct Signatures {
    ids: HashMap<FuncType, u32>,
    types: Vec<FuncType>,
}

impl Engine {
    /// Creates an engine for the host CPU.
    pub fn new(config: Config) -> Result<Self, CompileError> {
        let bounds = config.bounds.unwrap_or_else(default_bounds);
        let compiler = Compiler::new(bounds)?;
        Ok(Engine { inner: Arc::new(EngineInner { config, compiler, signatures: Mutex::default() }) })
    }

    /// What identifies the code an engine with `config` would generate on this host, for cache
    /// keys, computed without building a compiler (a supervisor that never compiles stays
    /// small and quick): the engine's version, the memory strategy it would choose, and the
    /// CPU's feature words, from which Cranelift derives its ISA flags. An artifact also
    /// carries the compiler's full fingerprint, checked when it is loaded.
    pub fn cache_identity(config: &Config) -> String {
        let bounds = config.bounds.unwrap_or_else(default_bounds);
        format!("sandboxrun-engine {} {bounds:?} {}", env!("CARGO_PKG_VERSION"), cpu_identity())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The compiler.
    pub fn compiler(&self) -> &Compiler {
        &self.inner.compiler
    }

    /// Threads to compile with.
    pub fn compile_threads(&self) -> usize {
        self.inner
            .config
            .compile_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }

    /// The canonical id of a signature (equal types get equal ids).
    pub fn signature_id(&self, ty: &FuncType) -> u32 {
        let mut sigs = self.inner.signatures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = sigs.ids.get(ty) {
            return *id;
        }
        let id = sigs.types.len() as u32;
        sigs.types.push(ty.clone());
        sigs.ids.insert(ty.clone(), id);
        id
    }

    /// The signature with canonical id `id`.
    pub fn signature(&self, id: u32) -> FuncType {
        let sigs = self.inner.signatures.lock().unwrap_or_else(|e| e.into_inner());
        sigs.types[id as usize].clone()
    }

    /// Whether two handles refer to the same engine.
    pub fn same(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Guard pages when the address space allows the reservations, explicit checks otherwise.
fn default_bounds() -> BoundsStrategy {
    if guard_reservation_possible() {
        BoundsStrategy::GuardPages
    } else {
        BoundsStrategy::Explicit
    }
}

/// The CPU's feature words (CPUID leaves 1, 7 and 0x8000_0001) and whether the OS saves the
/// AVX and AVX-512 registers: everything Cranelift's host detection reads.
#[cfg(target_arch = "x86_64")]
fn cpu_identity() -> String {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU and only reads identification registers.
    let (l1, l7, ext) = unsafe { (__cpuid(1), __cpuid_count(7, 0), __cpuid(0x8000_0001)) };
    format!(
        "x86_64 cpuid {:08x}{:08x} {:08x}{:08x}{:08x} {:08x} os-avx {} os-avx512 {}",
        l1.ecx,
        l1.edx,
        l7.ebx,
        l7.ecx,
        l7.edx,
        ext.ecx,
        std::arch::is_x86_feature_detected!("avx"),
        std::arch::is_x86_feature_detected!("avx512f"),
    )
}

/// Elsewhere, the compiler's own fingerprint (which builds the target's code generator).
#[cfg(not(target_arch = "x86_64"))]
fn cpu_identity() -> String {
    crate::compile::Compiler::new(default_bounds()).map(|c| c.fingerprint()).unwrap_or_default()
}
