//! The engine: configuration, the compiler, and the engine-wide signature registry.

use crate::compile::{CompileError, Compiler};
use crate::types::FuncType;
use crate::vm::memory::{guard_reservation_possible, BoundsStrategy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

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
    /// Count executed wasm instructions (see [`crate::translate::budget`]): the code keeps the
    /// count in a reserved register, checks it against the store's budget
    /// ([`crate::Store::set_instruction_budget`]) and traps with
    /// [`crate::TrapKind::InstructionBudget`]. Part of the engine's identity: counting and
    /// non-counting code never share a cache entry. Off: the code is exactly as without it.
    pub count_instructions: bool,
    /// The WebAssembly features modules may use (default: every one implemented). Part of the
    /// engine's identity when restricted: a module cached under all features is never loaded
    /// by an engine that would have refused it.
    pub features: crate::features::Features,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bounds: None,
            compile_threads: None,
            max_wasm_stack: 512 << 10,
            count_instructions: false,
            features: crate::features::Features::default(),
        }
    }
}

/// A shareable engine: compiler plus signature registry. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: Config,
    bounds: BoundsStrategy,
    identity: String,
    /// Built on first use: an engine that only loads cached code never needs it.
    compiler: OnceLock<Compiler>,
    signatures: Mutex<Signatures>,
}

#[derive(Default)]
struct Signatures {
    ids: HashMap<FuncType, u32>,
    types: Vec<FuncType>,
}

impl Engine {
    /// Creates an engine for the host CPU.
    ///
    /// # Errors
    /// Cranelift has no code generator for this host (never on x86-64, where it is not
    /// checked; elsewhere checked here).
    pub fn new(config: Config) -> Result<Self, CompileError> {
        // On x86-64 Cranelift supports every host (SSE2 is baseline), and detecting the CPU's
        // features takes a dozen CPUID instructions, each a trap to the hypervisor in a VM
        // (3.5 µs here): a run whose code comes from the cache never pays for it.
        #[cfg(not(target_arch = "x86_64"))]
        cranelift_native::builder().map_err(|e| CompileError::Isa(e.to_string()))?;
        let bounds = config.bounds.unwrap_or_else(default_bounds);
        let identity = identity(bounds, config.count_instructions, &config.features);
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config,
                bounds,
                identity,
                compiler: OnceLock::new(),
                signatures: Mutex::default(),
            }),
        })
    }

    /// What identifies the code an engine with `config` would generate on this host, computed
    /// without building a compiler (a supervisor that never compiles stays small and quick):
    /// see [`Engine::identity`].
    pub fn cache_identity(config: &Config) -> String {
        identity(config.bounds.unwrap_or_else(default_bounds), config.count_instructions, &config.features)
    }

    /// What identifies the code this engine generates, for cache keys and artifacts: the
    /// engine's version and a hash of its sources, the memory strategy, whether it counts
    /// instructions, and the CPU's feature words, from which Cranelift derives its ISA flags. An artifact made by an engine of
    /// another identity is refused when loaded.
    pub fn identity(&self) -> &str {
        &self.inner.identity
    }

    /// The memory strategy compiled code assumes.
    pub fn bounds(&self) -> BoundsStrategy {
        self.inner.bounds
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Validates `wasm` (a binary module) with the features this engine accepts.
    ///
    /// # Errors
    /// The module is invalid, or uses a feature not accepted.
    pub fn validate(&self, wasm: &[u8]) -> Result<(), crate::module_info::LoadError> {
        crate::module_info::validate_with(wasm, &self.inner.config.features)
    }

    /// The compiler, built on first use.
    ///
    /// # Errors
    /// Cranelift rejected the host's settings.
    pub fn compiler(&self) -> Result<&Compiler, CompileError> {
        if let Some(compiler) = self.inner.compiler.get() {
            return Ok(compiler);
        }
        let compiler =
            Compiler::new(self.inner.bounds, self.inner.config.count_instructions, self.inner.identity.clone())?;
        Ok(self.inner.compiler.get_or_init(|| compiler))
    }

    /// Whether the code counts instructions ([`Config::count_instructions`]).
    pub fn counts_instructions(&self) -> bool {
        self.inner.config.count_instructions
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

    /// The canonical ids of a module's function types (`types`, in its type index order):
    /// each type is canonicalized with the ids of the types before it ([`FuncType::canonical`]),
    /// so two modules' types get one id exactly when they are the same type.
    pub fn canonical_type_ids(&self, types: &[FuncType]) -> Box<[u32]> {
        let mut ids = Vec::with_capacity(types.len());
        for ty in types {
            let id = self.signature_id(&ty.canonical(&ids));
            ids.push(id);
        }
        ids.into_boxed_slice()
    }

    /// Whether `ty` is a type of this engine's canonical space: no module-relative type index
    /// ([`crate::types::HeapType::Type`]), and each signature id one it gave. Host-made objects
    /// must have such types (no module's value could match another).
    pub fn is_canonical(&self, ty: crate::types::ValType) -> bool {
        use crate::types::{HeapType, ValType};
        match ty {
            ValType::Ref(r) => match r.heap {
                HeapType::Type(_) => false,
                HeapType::Sig(id) => {
                    (id as usize) < self.inner.signatures.lock().unwrap_or_else(|e| e.into_inner()).types.len()
                }
                _ => true,
            },
            _ => true,
        }
    }

    /// The signature with canonical id `id` (one this engine gave: a module's, or a host
    /// function's).
    pub(crate) fn signature(&self, id: u32) -> FuncType {
        let sigs = self.inner.signatures.lock().unwrap_or_else(|e| e.into_inner());
        sigs.types[id as usize].clone()
    }

    /// Whether two handles refer to the same engine.
    pub fn same(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// See [`Engine::identity`]. Counting adds a word; without it the identity is what it was
/// before counting existed (cache entries of non-counting code stay valid).
fn identity(bounds: BoundsStrategy, count_instructions: bool, features: &crate::features::Features) -> String {
    let counting = if count_instructions { " count-instructions" } else { "" };
    // Restricted features add their list; the default adds nothing (earlier entries stay valid).
    let features = match *features != crate::features::Features::default() {
        true => format!(" features={}", features.names().join(",")),
        false => String::new(),
    };
    format!(
        "sandboxrun-engine {} source {} {bounds:?}{counting}{features} {}",
        env!("CARGO_PKG_VERSION"),
        env!("ENGINE_SOURCE_HASH"),
        cpu_identity()
    )
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
/// AVX and AVX-512 registers: everything Cranelift's host detection reads. Computed once a
/// process (a CPUID costs microseconds in a VM), so a child forked after the supervisor asked
/// inherits it.
#[cfg(target_arch = "x86_64")]
fn cpu_identity() -> &'static str {
    static IDENTITY: OnceLock<String> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86-64 CPU and only reads identification registers.
        let (l1, l7, ext) = unsafe { (__cpuid(1), __cpuid_count(7, 0), __cpuid(0x8000_0001)) };
        // The register state the OS saves (XCR0), readable only once it enabled XSAVE.
        let osxsave = l1.ecx & 1 << 27 != 0;
        #[allow(unused_unsafe)]
        // SAFETY: XGETBV is available when CPUID reports OSXSAVE, checked first.
        let xcr0 = if osxsave { unsafe { std::arch::x86_64::_xgetbv(0) } } else { 0 };
        let os_avx = l1.ecx & 1 << 28 != 0 && xcr0 & 0b110 == 0b110;
        let os_avx512 = os_avx && l7.ebx & 1 << 16 != 0 && xcr0 & 0b1110_0000 == 0b1110_0000;
        format!(
            "x86_64 cpuid {:08x}{:08x} {:08x}{:08x}{:08x} {:08x} os-avx {os_avx} os-avx512 {os_avx512}",
            l1.ecx, l1.edx, l7.ebx, l7.ecx, l7.edx, ext.ecx,
        )
    })
}

/// Elsewhere, the ISA flags Cranelift detects (which builds the target's code generator).
#[cfg(not(target_arch = "x86_64"))]
fn cpu_identity() -> String {
    use cranelift_codegen::settings;
    match cranelift_native::builder().map(|b| b.finish(settings::Flags::new(settings::builder()))) {
        Ok(Ok(isa)) => isa.isa_flags().iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
        _ => "no code generator".into(),
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::cpu_identity;

    /// The identity's OS-support flags are read from XCR0 by hand: they must agree with the
    /// standard library's detection, which Cranelift's host detection uses.
    #[test]
    fn cpu_identity_agrees_with_std_detect() {
        let identity = cpu_identity();
        let avx = std::arch::is_x86_feature_detected!("avx");
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        assert!(identity.ends_with(&format!("os-avx {avx} os-avx512 {avx512}")), "{identity}");
        assert!(std::ptr::eq(identity, cpu_identity()), "computed once a process");
    }
}
