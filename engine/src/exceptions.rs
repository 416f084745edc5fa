//! Exceptions at run time: tags, the exception objects a store owns, and the builtins compiled
//! code calls to make, drop and throw them.
//!
//! An exception object is a block of [`ValRaw`] slots (layout in [`crate::vm::vmctx`]: the
//! tag's identity and flags, then the payload) made by `throw` ([`builtin_exn_alloc`]); an
//! `exnref` is its address. Compiled code reads the payload and the tag itself, so a catch
//! costs no call into the runtime but the release. An object caught by a catch clause that
//! drops the reference (`catch`, `catch_all`) is freed there ([`builtin_exn_release`]); one
//! whose reference escaped (`catch_ref`, `catch_all_ref`: it may be stored in a local, global
//! or table) is kept until the host's outermost call into the store returns, when no wasm
//! frame (no local) can hold it any more: [`Exceptions::collect`] then frees those no global,
//! table or kept payload refers to, and that the host never saw ([`Exceptions::pin`]). So a
//! loop throwing and catching runs in constant memory either way.
//!
//! Throwing ([`builtin_throw`]) walks the wasm frames by frame pointer (`vm::unwind`): the
//! first call site with a handler gets control with the exception; when none has one before
//! the host's entry, the call from the host ends with `TrapKind::UncaughtException` naming
//! the tag ([`Uncaught`]).

use crate::state::{InstanceData, StoreInner};
use crate::types::FuncType;
use crate::values::Val;
use crate::vm::memory::WASM_PAGE_SIZE;
use crate::vm::traps;
use crate::vm::unwind::{self, Frames};
use crate::vm::vmctx::{TagIdentity, ValRaw, EXN_ESCAPED, VALRAW_SIZE};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// An exception tag of a store: the type of its payload and a name for reports.
pub(crate) struct TagData {
    /// Parameters: the payload's types.
    pub(crate) ty: FuncType,
    /// For reports: `'name'`, the name its module exports it under, else its index in that
    /// module; `host N` for a tag the host made ([`crate::Store::new_tag`]).
    pub(crate) name: String,
}

impl TagData {
    /// The tag's identity: the address of its record, boxed in the store.
    pub(crate) fn identity(&self) -> TagIdentity {
        self as *const TagData as TagIdentity
    }
}

/// The exception objects of a store that are not freed yet, by address, with their length in
/// slots. Dropping it frees them all.
#[derive(Default)]
pub(crate) struct Exceptions {
    live: HashMap<usize, usize>,
    /// Slots of every live object together (what they occupy: 16 bytes each).
    live_slots: usize,
    /// Whether an allocation was refused at the store's memory limit.
    pub(crate) refused_at_limit: bool,
    /// Objects the host got a reference to: kept as long as the store.
    pinned: RefCell<HashSet<usize>>,
}

impl Exceptions {
    /// A new exception object of the tag `tag` with `len` payload slots (zeroed).
    fn alloc(&mut self, tag: TagIdentity, len: usize) -> *mut ValRaw {
        let mut slots = vec![0 as ValRaw; 1 + len].into_boxed_slice();
        slots[0] = ValRaw::from(tag);
        let ptr = Box::into_raw(slots) as *mut ValRaw;
        self.live.insert(ptr as usize, 1 + len);
        self.live_slots += 1 + len;
        ptr
    }

    /// Bytes the live objects occupy.
    pub(crate) fn bytes(&self) -> u64 {
        self.live_slots as u64 * u64::from(VALRAW_SIZE)
    }

    /// Frees the exception object at `ptr` unless its reference escaped.
    ///
    /// # Safety
    /// No compiled code may use `ptr` afterwards, unless it escaped.
    unsafe fn release(&mut self, ptr: usize) {
        // SAFETY: a live object (checked below) has at least its header slot.
        if !self.live.contains_key(&ptr) || unsafe { escaped(ptr) } {
            return;
        }
        let len = self.live.remove(&ptr).expect("checked");
        self.live_slots -= len;
        // SAFETY: made by `alloc` with this length, removed from `live` so freed once.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr as *mut ValRaw, len)) });
    }

    /// Whether `ptr` is a live exception object of this store (an `exnref` the host gives
    /// back).
    pub(crate) fn contains(&self, ptr: usize) -> bool {
        self.live.contains_key(&ptr)
    }

    /// The host got `v`: if it is an exception, it is kept as long as the store.
    pub(crate) fn pin(&self, v: &Val) {
        if let Val::ExnRef(Some(e)) = v {
            self.pinned.borrow_mut().insert(e.0.get());
        }
    }

    /// Frees every object not reachable from `roots` (`exnref`s in globals and tables), the
    /// pinned ones, or the payloads of those kept (`exnref_slots` gives, for a tag identity,
    /// the payload positions holding `exnref`s).
    ///
    /// # Safety
    /// No wasm frame may be live in the store (nothing else can hold a reference), and `roots`
    /// must be every `exnref` stored in the store's globals and tables.
    pub(crate) unsafe fn collect(
        &mut self,
        roots: impl Iterator<Item = usize>,
        exnref_slots: impl Fn(TagIdentity) -> Vec<usize>,
    ) {
        let mut kept: HashSet<usize> = HashSet::new();
        let mut work: Vec<usize> = roots.chain(self.pinned.borrow().iter().copied()).collect();
        while let Some(ptr) = work.pop() {
            if !self.live.contains_key(&ptr) || !kept.insert(ptr) {
                continue;
            }
            // SAFETY: a live object: its header, then one slot per payload value.
            let identity = unsafe { *(ptr as *const u64) };
            for i in exnref_slots(identity) {
                // SAFETY: payload slot `i` of a live object whose tag has an `exnref` there.
                work.push(unsafe { *(ptr as *const ValRaw).add(1 + i) } as usize);
            }
        }
        let dead: Vec<(usize, usize)> =
            self.live.iter().filter(|(p, _)| !kept.contains(*p)).map(|(p, l)| (*p, *l)).collect();
        for (ptr, len) in dead {
            self.live.remove(&ptr);
            self.live_slots -= len;
            // SAFETY: made by `alloc` with this length, unreachable (the caller's contract), and
            // removed from `live`, so freed once.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr as *mut ValRaw, len)) });
        }
    }

    /// Whether no object is live (collecting would do nothing).
    pub(crate) fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

impl Drop for Exceptions {
    fn drop(&mut self) {
        for (ptr, len) in self.live.drain() {
            // SAFETY: made by `alloc` with this length; the store is being dropped, so no code
            // of it runs any more.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr as *mut ValRaw, len)) });
        }
    }
}

/// Whether the object at `ptr` escaped.
///
/// # Safety
/// `ptr` must be a live exception object.
unsafe fn escaped(ptr: usize) -> bool {
    // SAFETY: the caller's contract; the flags word is the header's high half.
    unsafe { *(ptr as *const u64).add(1) & EXN_ESCAPED as u64 != 0 }
}

/// What an uncaught exception unwinds to the host's entry with: its tag's name.
pub(crate) struct Uncaught {
    /// The tag's [`TagData::name`].
    pub(crate) tag: String,
}

/// The store of the instance whose context is `vmctx`.
///
/// # Safety
/// `vmctx` must be a live instance's context (compiled code passes its own), and no other
/// reference to the store may be in use.
unsafe fn store<'a>(vmctx: *mut u8) -> &'a mut StoreInner {
    // SAFETY: the caller's contract; builtins run on the store's thread while no other
    // reference to the state is in use.
    unsafe { &mut *(*InstanceData::from_vmctx(vmctx)).store }
}

/// `ExnAlloc`: a new exception object of tag `tag` of the calling instance.
pub(crate) unsafe extern "C" fn builtin_exn_alloc(vmctx: *mut u8, tag: u32) -> u64 {
    // SAFETY: called by compiled code with its own context.
    let instance = unsafe { &*InstanceData::from_vmctx(vmctx) };
    let index = instance.tags[tag as usize] as usize;
    // SAFETY: as above.
    let store = unsafe { store(vmctx) };
    let data = &store.tags[index];
    let (identity, len) = (data.identity(), data.ty.params.len());
    // Exception objects and linear memories share the store's memory limit: a guest catching
    // by reference in a loop that never returns to the host keeps every object alive.
    let need = (1 + len as u64) * u64::from(VALRAW_SIZE);
    let memories: u64 = store.memories.iter().map(|m| u64::from(m.pages()) * WASM_PAGE_SIZE as u64).sum();
    let limit = u64::from(store.memory_limit_pages) * WASM_PAGE_SIZE as u64;
    if memories + store.exceptions.bytes() + need > limit {
        store.exceptions.refused_at_limit = true;
        // SAFETY: called by compiled code, so a `catch_traps` activation is on the stack; this
        // frame owns nothing that needs dropping.
        unsafe { traps::raise_host(Box::new(OutOfMemory)) }
    }
    store.exceptions.alloc(identity, len) as u64
}

/// What a refused exception allocation unwinds to the host's entry with: the call ends with
/// `TrapKind::ExceptionsOutOfMemory`.
pub(crate) struct OutOfMemory;

/// `ExnRelease`: the exception was caught by a clause that drops its reference.
pub(crate) unsafe extern "C" fn builtin_exn_release(vmctx: *mut u8, exn: u64) {
    // SAFETY: called by compiled code with its own context; the code reads nothing of the
    // object after this call (it loaded the payload before).
    unsafe { store(vmctx).exceptions.release(exn as usize) }
}

/// `Throw`: throws the (non-null) exception `exn` from the wasm frame with frame pointer `fp`:
/// resumes at the innermost handler of a call on the stack, or ends the host's call with
/// `TrapKind::UncaughtException`. `count` is the instruction count register's value.
pub(crate) unsafe extern "C" fn builtin_throw(vmctx: *mut u8, exn: u64, fp: usize, count: u64) {
    let target = {
        // SAFETY: called by compiled code with its own context.
        let store = unsafe { store(vmctx) };
        // SAFETY: `fp` is the frame pointer of the wasm frame that called us; every frame up to
        // the host's entry is compiled code with a frame pointer (see `vm::unwind`).
        match unsafe { unwind::find_handler(&*store.registry, fp) } {
            Some(target) => Ok(target),
            None => {
                // Counting code hands the count to the store when it unwinds to the host
                // (like a host function's error, see `Store::enter`).
                store.limits.instructions_left = count as i64;
                // SAFETY: `exn` is a live exception object (compiled code checked for null).
                let identity = unsafe { *(exn as *const u64) };
                let tag = store.tags.iter().find(|t| t.identity() == identity).map(|t| t.name.clone());
                // SAFETY: nothing reads the object any more.
                unsafe { store.exceptions.release(exn as usize) };
                Err(Uncaught { tag: tag.unwrap_or_else(|| "?".into()) })
            }
        }
    };
    match target {
        // SAFETY: the handler's frame is live (it is below us on the stack); this frame owns
        // nothing that needs dropping (`target` is `Copy`).
        Ok(target) => unsafe { unwind::resume(target, exn, count) },
        // SAFETY: everything this frame owned moved into the payload; the frames skipped up to
        // `catch_traps` are compiled code.
        Err(uncaught) => unsafe { traps::raise_host(Box::new(uncaught)) },
    }
}

impl Frames for crate::state::CodeRegistry {
    fn call_site(&self, return_address: usize) -> Option<Option<usize>> {
        self.modules.iter().find_map(|m| m.call_site(return_address))
    }
}

impl StoreInner {
    /// Frees the exception objects nothing can reach any more ([`Exceptions::collect`]); called
    /// when the host's outermost call into the store returns. Free when no exception is live.
    pub(crate) fn collect_exceptions(&mut self) {
        if self.exceptions.is_empty() {
            return;
        }
        let globals = self.globals.iter().filter(|g| g.ty.ty.is_exn_ref()).map(|g| g.value.bits as usize);
        let tables = self.tables.iter().filter(|t| t.ty.element.is_exn_ref()).flat_map(|t| t.elements.iter().copied());
        let tags = &self.tags;
        let exnref_slots = |identity: TagIdentity| -> Vec<usize> {
            let tag = tags.iter().find(|t| t.identity() == identity);
            tag.map_or(Vec::new(), |t| {
                t.ty.params.iter().enumerate().filter(|(_, p)| p.is_exn_ref()).map(|(i, _)| i).collect()
            })
        };
        // SAFETY: called with no wasm frame live (the outermost call returned); the roots are
        // every global and table that can hold an `exnref`.
        unsafe { self.exceptions.collect(globals.chain(tables), exnref_slots) };
    }
}
