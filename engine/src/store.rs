//! The store: owner of every runtime object (instances, memories, tables, globals, host
//! functions). Objects live as long as their store, so compiled code can hold raw pointers
//! between them; handles ([`Func`], [`Memory`], ...) are indices checked against the store.
//! Every method of [`Store`] is here; the state itself is [`crate::state`]'s, reached
//! through the raw pointer the store owns, one short-lived reference at a time.

use crate::engine::Engine;
use crate::func::{host_dispatch, Caller};
use crate::instance::InstantiateError;
use crate::module::Module;
use crate::state::{CodeRegistry, GlobalData, HostFuncData, StoreInner, TableData};
use crate::trap::Trap;
use crate::types::*;
use crate::values::*;
use crate::vm::traps::{self, TrapLookup, Unwind};
use crate::vm::vmctx::{VMFuncRef, VMGlobal, VMLimits, ValRaw};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Error from a host function (downcast it to find e.g. a WASI exit).
pub type HostError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a call into wasm did not return normally.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The wasm code trapped.
    #[error("{0}")]
    Trap(Trap),
    /// A host function returned an error, which unwound the wasm frames.
    #[error("{0}")]
    Host(HostError),
    /// The arguments do not fit the function's type.
    #[error("type mismatch: expected {expected}, got {got}")]
    Signature {
        /// The function's parameter types.
        expected: String,
        /// The argument types given.
        got: String,
    },
    /// A value from another store, or a host function where a function reference is needed.
    #[error("{0}")]
    BadValue(&'static str),
}

/// Largest table size the store allows (elements).
pub const MAX_TABLE_ELEMENTS: u32 = 10_000_000;

/// Largest instruction budget a store takes (2^62): the count cannot wrap, whatever a guest does.
pub const MAX_INSTRUCTION_BUDGET: u64 = 1 << 62;

/// Why an instruction budget was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    /// The engine's code does not count instructions.
    #[error("the engine does not count instructions (Config::count_instructions is off)")]
    NotCounting,
    /// The budget is beyond [`MAX_INSTRUCTION_BUDGET`].
    #[error("an instruction budget of {0} is more than the {MAX_INSTRUCTION_BUDGET} a store allows")]
    TooLarge(u64),
}

/// Owner of all runtime objects of one execution context; not thread-safe.
pub struct Store {
    /// Made by `Box::into_raw`, freed by `Drop`: the root every pointer to the state derives
    /// from (see [`crate::state`]). Held raw so that `&mut Store` across a call into compiled
    /// code claims nothing of the state that builtins and host functions then use.
    inner: NonNull<StoreInner>,
}

impl Drop for Store {
    fn drop(&mut self) {
        // SAFETY: made by `Box::into_raw` in `new`, freed once, here; no code of the store
        // runs any more.
        drop(unsafe { Box::from_raw(self.inner.as_ptr()) });
    }
}

impl Store {
    /// An empty store.
    pub fn new(engine: &Engine) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let inner = Box::new(StoreInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            engine: engine.clone(),
            limits: VMLimits { instructions_left: MAX_INSTRUCTION_BUDGET as i64, ..VMLimits::default() },
            instruction_budget: MAX_INSTRUCTION_BUDGET,
            memory_limit_pages: u32::MAX,
            memories: Vec::new(),
            tables: Vec::new(),
            globals: Vec::new(),
            host_funcs: Vec::new(),
            instances: Vec::new(),
            tags: Vec::new(),
            exceptions: Default::default(),
            registry: Box::default(),
        });
        Store { inner: NonNull::from(Box::leak(inner)) }
    }

    /// The state, shared, for the caller's short scope.
    fn state(&self) -> &StoreInner {
        // SAFETY: the state lives as long as `self`; no `&mut` to it outlives the method that
        // made it, and none is made while compiled code runs but by the builtin or host
        // function it called, whose reference ends before control returns here.
        unsafe { self.inner.as_ref() }
    }

    /// The state, exclusive, for the caller's short scope (never across a call into
    /// compiled code).
    fn state_mut(&mut self) -> &mut StoreInner {
        // SAFETY: as in `state`; `&mut self` excludes every other use through this store.
        unsafe { self.inner.as_mut() }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.state().engine
    }

    /// Caps the store's memories, all together and with its live exception objects, at `bytes`
    /// (rounded down to whole pages): `memory.grow` that would pass it returns -1, a module
    /// needing more fails to instantiate, and a throw needing more ends the call with
    /// [`crate::TrapKind::ExceptionsOutOfMemory`].
    pub fn set_memory_limit(&mut self, bytes: u64) {
        self.state_mut().memory_limit_pages = (bytes / 65536).min(u64::from(u32::MAX)) as u32;
    }

    /// Sets the instructions the store's wasm code may execute from now on (the count starts
    /// again from 0): past them, a check traps with [`crate::TrapKind::InstructionBudget`]
    /// (see `translate::budget` for where; the count may then exceed `budget` a little).
    /// Without a call, the budget is [`MAX_INSTRUCTION_BUDGET`].
    ///
    /// # Errors
    /// The engine does not count instructions, or `budget` is too large.
    pub fn set_instruction_budget(&mut self, budget: u64) -> Result<(), BudgetError> {
        if !self.engine().counts_instructions() {
            return Err(BudgetError::NotCounting);
        }
        if budget > MAX_INSTRUCTION_BUDGET {
            return Err(BudgetError::TooLarge(budget));
        }
        let inner = self.state_mut();
        inner.instruction_budget = budget;
        inner.limits.instructions_left = budget as i64;
        Ok(())
    }

    /// Instructions the store's wasm code executed (since the budget was last set), exact
    /// after any return, trap or host error; `None` when the engine does not count.
    pub fn instructions_used(&self) -> Option<u64> {
        let inner = self.state();
        inner.engine.counts_instructions().then(|| {
            let used = i128::from(inner.instruction_budget) - i128::from(inner.limits.instructions_left);
            u64::try_from(used.max(0)).unwrap_or(u64::MAX)
        })
    }

    // ----- objects ----------------------------------------------------------------------------

    /// Creates a memory.
    pub fn new_memory(&mut self, ty: MemoryType) -> Result<Memory, crate::vm::memory::MemoryError> {
        self.state_mut().new_memory(ty)
    }

    /// Creates a table with every element set to `init`.
    ///
    /// # Errors
    /// `init` is not a value of this store or of the element type, the element type is not
    /// canonical ([`Engine::is_canonical`]), or the table would have more than
    /// [`MAX_TABLE_ELEMENTS`] elements.
    pub fn new_table(&mut self, ty: TableType, init: Val) -> Result<Table, CallError> {
        if ty.limits.min > MAX_TABLE_ELEMENTS {
            return Err(CallError::BadValue("a table larger than MAX_TABLE_ELEMENTS"));
        }
        if !self.engine().is_canonical(ty.element) {
            return Err(CallError::BadValue("a table type naming a type this engine does not know"));
        }
        if !self.state().val_matches(&init, ty.element) {
            return Err(CallError::BadValue("table initial value of the wrong type"));
        }
        let raw = self.to_raw(init)? as usize;
        let inner = self.state_mut();
        inner.tables.push(Box::new(TableData::new(ty, raw)));
        Ok(Table { store: inner.id, index: inner.tables.len() as u32 - 1 })
    }

    /// Creates a global.
    ///
    /// # Errors
    /// `value` is not a value of this store or of the type, or the type is not canonical
    /// ([`Engine::is_canonical`]).
    pub fn new_global(&mut self, ty: GlobalType, value: Val) -> Result<Global, CallError> {
        if !self.engine().is_canonical(ty.ty) {
            return Err(CallError::BadValue("a global type naming a type this engine does not know"));
        }
        if !self.state().val_matches(&value, ty.ty) {
            return Err(CallError::BadValue("global value of the wrong type"));
        }
        let bits = self.to_raw(value)?;
        let inner = self.state_mut();
        inner.globals.push(Box::new(GlobalData { ty, value: VMGlobal { bits } }));
        Ok(Global { store: inner.id, index: inner.globals.len() as u32 - 1 })
    }

    /// Creates an exception tag whose payload has `ty`'s parameters, for modules to import;
    /// an exception of it reaching the host is named `host N` (N: its number among the
    /// store's tags).
    ///
    /// # Errors
    /// `ty` has results (a tag's type has none), or a parameter type that is not canonical
    /// ([`Engine::is_canonical`]).
    pub fn new_tag(&mut self, ty: FuncType) -> Result<Tag, CallError> {
        if !ty.results.is_empty() {
            return Err(CallError::BadValue("a tag's type has no results"));
        }
        if !ty.params.iter().all(|t| self.engine().is_canonical(*t)) {
            return Err(CallError::BadValue("a tag type naming a type this engine does not know"));
        }
        let inner = self.state_mut();
        let name = format!("host {}", inner.tags.len());
        inner.tags.push(Box::new(crate::exceptions::TagData { ty, name }));
        Ok(Tag { store: inner.id, index: inner.tags.len() as u32 - 1 })
    }

    /// Creates a host function of type `ty`.
    pub fn new_host_func(
        &mut self,
        ty: FuncType,
        func: impl Fn(&mut Caller, &[Val], &mut [Val]) -> Result<(), HostError> + 'static,
    ) -> Func {
        let store = self.inner.as_ptr();
        let inner = self.state_mut();
        inner.host_funcs.push(Box::new(HostFuncData { dispatch: host_dispatch, store, ty, func: Box::new(func) }));
        Func { store: inner.id, kind: FuncKind::Host(inner.host_funcs.len() as u32 - 1) }
    }

    /// A memory's bytes.
    pub fn memory_data(&self, memory: Memory) -> &[u8] {
        self.state().check(memory.store);
        self.state().memories[memory.index as usize].data()
    }

    /// A memory's bytes, writable.
    pub fn memory_data_mut(&mut self, memory: Memory) -> &mut [u8] {
        self.state().check(memory.store);
        self.state_mut().memories[memory.index as usize].data_mut()
    }

    /// Whether any memory of the store had a `memory.grow` within its declared maximum
    /// refused (by the limit of [`Store::set_memory_limit`], or the kernel), or an exception
    /// object was refused at that limit: a run that then fails ran out of memory, not into a
    /// bug of its own.
    pub fn memory_grow_refused(&self) -> bool {
        let state = self.state();
        state.memories.iter().any(|m| m.grow_refused_at_limit()) || state.exceptions.refused_at_limit
    }

    /// A memory's type (with its current size as minimum).
    pub fn memory_type(&self, memory: Memory) -> MemoryType {
        self.state().memory_type(memory)
    }

    /// A table's type (with its current size as minimum).
    pub fn table_type(&self, table: Table) -> TableType {
        self.state().table_type(table)
    }

    /// A global's type.
    pub fn global_type(&self, global: Global) -> GlobalType {
        self.state().global_type(global)
    }

    /// A global's current value.
    pub fn global_get(&self, global: Global) -> Val {
        let inner = self.state();
        inner.check(global.store);
        let g = &inner.globals[global.index as usize];
        let v = Val::from_raw(g.value.bits, g.ty.ty, inner.id);
        inner.exceptions.pin(&v);
        v
    }

    /// A function's type.
    pub fn func_type(&self, func: Func) -> FuncType {
        self.state().func_type(func)
    }

    /// The type of an extern.
    pub fn extern_type(&self, e: Extern) -> ExternType {
        self.state().extern_type(e)
    }

    /// Encodes a value as a raw slot.
    pub(crate) fn to_raw(&self, v: Val) -> Result<ValRaw, CallError> {
        crate::state::val_to_raw(self.state(), v)
    }

    // ----- instances ----------------------------------------------------------------------------

    /// Instantiates `module` with `imports` given in the module's import order, and runs its
    /// start function.
    pub fn instantiate(&mut self, module: &Module, imports: &[Extern]) -> Result<Instance, InstantiateError> {
        let store = self.inner.as_ptr();
        let (instance, start) = self.state_mut().instantiate(store, module, imports)?;
        if let Some(start) = start {
            self.call(start, &[]).map_err(|e| match e {
                CallError::Trap(t) => InstantiateError::Trap(t),
                other => InstantiateError::Start(other),
            })?;
        }
        Ok(instance)
    }

    /// The export `name` of `instance`.
    pub fn get_export(&self, instance: Instance, name: &str) -> Option<Extern> {
        self.state().get_export(instance, name)
    }

    /// The exported function `name`.
    pub fn get_func(&self, instance: Instance, name: &str) -> Option<Func> {
        match self.get_export(instance, name)? {
            Extern::Func(f) => Some(f),
            _ => None,
        }
    }

    /// The names of `instance`'s exports.
    pub fn export_names(&self, instance: Instance) -> Vec<String> {
        self.state().export_names(instance)
    }

    // ----- calls --------------------------------------------------------------------------------

    /// Calls `func` with `args`; returns its results.
    pub fn call(&mut self, func: Func, args: &[Val]) -> Result<Vec<Val>, CallError> {
        let ty = self.func_type(func);
        let state = self.state();
        if args.len() != ty.params.len() || args.iter().zip(ty.params.iter()).any(|(a, t)| !state.val_matches(a, *t)) {
            let list = |v: Vec<String>| format!("({})", v.join(", "));
            return Err(CallError::Signature {
                expected: list(ty.params.iter().map(|t| t.to_string()).collect()),
                got: list(args.iter().map(|a| state.describe(a)).collect()),
            });
        }
        match func.kind {
            FuncKind::Host(i) => {
                let mut results: Vec<Val> = ty.results.iter().map(|t| Val::default_for(*t)).collect();
                let host: *const HostFuncData = &*self.state().host_funcs[i as usize];
                let mut caller = Caller { store: self.inner.as_ptr(), instance: None };
                // SAFETY: host functions are boxed in the store and live as long as it; no
                // reference to the state is held here while the function runs (it reaches the
                // state through `caller`'s raw pointer).
                unsafe { ((*host).func)(&mut caller, args, &mut results) }.map_err(CallError::Host)?;
                Ok(results)
            }
            FuncKind::Ref(p) => {
                let mut values = vec![0 as ValRaw; ty.params.len().max(ty.results.len()).max(1)];
                for (slot, a) in values.iter_mut().zip(args) {
                    *slot = self.to_raw(*a)?;
                }
                // SAFETY: the reference belongs to this store (checked by func_type) and lives
                // as long as it.
                let f = unsafe { p.as_ref() };
                // SAFETY: `array_call` is the array trampoline of the function's own type,
                // `values` holds max(params, results) slots as it requires.
                unsafe { self.enter(f, values.as_mut_ptr()) }?;
                let inner = self.state();
                let results: Vec<Val> =
                    ty.results.iter().zip(values).map(|(t, raw)| Val::from_raw(raw, *t, inner.id)).collect();
                results.iter().for_each(|v| inner.exceptions.pin(v));
                Ok(results)
            }
        }
    }

    /// Runs `f`'s array trampoline with trap handling and the stack limit in place. No
    /// reference to the state is held while it runs.
    ///
    /// # Safety
    /// `values` must have room for `f`'s parameters and results.
    pub(crate) unsafe fn enter(&mut self, f: &VMFuncRef, values: *mut ValRaw) -> Result<(), CallError> {
        traps::init_traps();
        let outermost = self.state().limits.stack_limit == 0;
        if outermost {
            let here = &outermost as *const bool as usize;
            let max = self.state().engine.config().max_wasm_stack;
            self.state_mut().limits.stack_limit = here.saturating_sub(max);
        }
        let registry: *const CodeRegistry = &*self.state().registry;
        // SAFETY: the registry is a separate allocation, not changed while wasm runs.
        let lookup: &dyn TrapLookup = unsafe { &*registry };
        let counting = self.state().engine.counts_instructions();
        let mut left = self.state().limits.instructions_left as u64;
        // SAFETY: the trampoline and its arguments come from a live function reference; see
        // `catch_traps` for the unwinding contract.
        let result = unsafe {
            traps::catch_traps_pinned(
                lookup,
                f.array_call as usize,
                [f.vmctx as usize, f.wasm_call as usize, 0, values as usize],
                &mut left,
            )
        };
        if outermost {
            self.state_mut().limits.stack_limit = 0;
            self.state_mut().collect_exceptions();
        }
        if counting {
            // At a trap site, the instructions of the run in progress are not in the register
            // yet: the compiler recorded how many there are (see `budget_sites`).
            if let Err(Unwind::Trap { pc, .. }) = &result {
                let pending = self.state().registry.modules.iter().find_map(|m| m.pending_instructions_at(*pc));
                left = (left as i64).wrapping_sub(i64::from(pending.unwrap_or(0))) as u64;
            }
            // After a host function raised, the store's copy is already the count (the host
            // trampoline stored it); otherwise the register's value is.
            if !matches!(result, Err(Unwind::Host(_))) {
                self.state_mut().limits.instructions_left = left as i64;
            }
            // The last check: a run that went past its budget since the previous one does not
            // end normally.
            if result.is_ok() && self.state().limits.instructions_left < 0 {
                return Err(CallError::Trap(Trap::new(crate::TrapKind::InstructionBudget)));
            }
        }
        result.map_err(|unwind| self.unwind_to_error(unwind))
    }

    fn unwind_to_error(&self, unwind: Unwind) -> CallError {
        match unwind {
            Unwind::Trap { kind, pc, .. } => {
                let located =
                    self.state().registry.modules.iter().find_map(|m| m.func_at(pc).map(|(f, off)| (m, f, off)));
                match located {
                    Some((m, f, off)) => CallError::Trap(Trap {
                        kind,
                        function: Some((f.0, m.info.func_name(f))),
                        offset: Some(off),
                        tag: None,
                    }),
                    None => CallError::Trap(Trap::new(kind)),
                }
            }
            Unwind::Host(payload) => match payload.downcast::<crate::func::HostUnwind>() {
                Ok(h) => match *h {
                    crate::func::HostUnwind::Error(e) => CallError::Host(e),
                    crate::func::HostUnwind::Panic(p) => std::panic::resume_unwind(p),
                },
                Err(other) => match other.downcast::<crate::exceptions::Uncaught>() {
                    Ok(uncaught) => CallError::Trap(Trap {
                        tag: Some(uncaught.tag),
                        ..Trap::new(crate::TrapKind::UncaughtException)
                    }),
                    Err(other) => match other.downcast::<crate::exceptions::OutOfMemory>() {
                        Ok(_) => CallError::Trap(Trap::new(crate::TrapKind::ExceptionsOutOfMemory)),
                        Err(other) => std::panic::resume_unwind(other),
                    },
                },
            },
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.state();
        f.debug_struct("Store").field("id", &inner.id).field("instances", &inner.instances.len()).finish()
    }
}
