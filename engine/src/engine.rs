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
        let bounds = config.bounds.unwrap_or_else(|| {
            if guard_reservation_possible() {
                BoundsStrategy::GuardPages
            } else {
                BoundsStrategy::Explicit
            }
        });
        let compiler = Compiler::new(bounds)?;
        Ok(Engine { inner: Arc::new(EngineInner { config, compiler, signatures: Mutex::default() }) })
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
