//! Exceptions at run time: tags, the exception objects a store owns, and the builtins compiled
//! code calls to make, drop and throw them.
//!
//! An exception object is a block of [`ValRaw`] slots (layout in [`crate::vm::vmctx`]: the
//! tag's identity and flags, then the payload) made by `throw` ([`builtin_exn_alloc`]); an
//! `exnref` is its address. Compiled code reads the payload and the tag itself, so a catch
//! costs no call into the runtime but the release. An object caught by a catch clause that
//! drops the reference (`catch`, `catch_all`) is freed there ([`builtin_exn_release`]) unless
//! its reference escaped (`catch_ref`, `catch_all_ref`, the legacy `catch` whose block may
//! `rethrow`: it may be in a local, global or table). Escaped objects are collected:
//!
//! - when the host's outermost call into the store returns ([`StoreInner::collect_exceptions`]):
//!   no wasm frame (no local) can hold one then, so those no global, table or kept payload
//!   refers to, and that the host never saw ([`Exceptions::pin`]), are freed;
//! - during a call, when the live objects have doubled since the last collection (and before
//!   refusing one at the store's memory limit): the roots are then also every word of this
//!   thread's stack from the allocating builtin up to the outermost entry into compiled code,
//!   and the callee-saved registers — where every value live across the builtin's call is
//!   (Cranelift keeps none in caller-saved registers across a call). A word counts when it
//!   points anywhere into an object (a derived pointer keeps it too). This is conservative: a
//!   dead word may keep an object, never the other way round.
//!
//! So a loop throwing and catching runs in constant memory either way, even one that rethrows
//! through cleanups (C++ destructors: `catch_all_ref` + `throw_ref`, or the legacy
//! `catch_all` + `rethrow`) and never returns to the host.
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
use std::collections::{BTreeMap, HashSet};

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
pub(crate) struct Exceptions {
    /// Address → length in slots, ordered (a word pointing into an object finds it).
    live: BTreeMap<usize, usize>,
    /// Slots of every live object together (what they occupy: 16 bytes each).
    live_slots: usize,
    /// A collection during a call is due when `live_slots` passes this.
    next_collection: usize,
    /// Whether an allocation was refused at the store's memory limit.
    pub(crate) refused_at_limit: bool,
    /// Objects the host got a reference to: kept as long as the store.
    pinned: RefCell<HashSet<usize>>,
}

/// Live slots before the first collection during a call (1 MiB of objects).
const FIRST_COLLECTION_SLOTS: usize = 1 << 16;

/// What an object costs beyond its slots, counted against the store's memory limit: the
/// allocator's header and rounding, and its entry in [`Exceptions::live`].
const OBJECT_OVERHEAD_BYTES: u64 = 64;

impl Default for Exceptions {
    fn default() -> Self {
        Exceptions {
            live: BTreeMap::new(),
            live_slots: 0,
            next_collection: FIRST_COLLECTION_SLOTS,
            refused_at_limit: false,
            pinned: RefCell::default(),
        }
    }
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

    /// Bytes the live objects occupy, with their overhead.
    pub(crate) fn bytes(&self) -> u64 {
        self.live_slots as u64 * u64::from(VALRAW_SIZE) + self.live.len() as u64 * OBJECT_OVERHEAD_BYTES
    }

    /// Whether a collection during a call is due before allocating `slots` more.
    fn collection_due(&self, slots: usize) -> bool {
        self.live_slots + slots > self.next_collection
    }

    /// The live object `word` points into (anywhere from its first byte to its last).
    fn containing(&self, word: usize) -> Option<usize> {
        let (&base, &len) = self.live.range(..=word).next_back()?;
        (word < base + len * VALRAW_SIZE as usize).then_some(base)
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

    /// Frees every object not reachable from `roots` (words that may point into objects:
    /// `exnref`s in globals and tables, and during a call the words of the stack), the pinned
    /// ones, or the payloads of those kept (`exnref_slots` gives, for a tag identity, the
    /// payload positions holding `exnref`s). The next collection during a call is due when the
    /// live objects have doubled.
    ///
    /// # Safety
    /// `roots` must include every place outside the objects that can hold a reference: the
    /// store's globals and tables, and every wasm frame's locals and operands if one is live.
    pub(crate) unsafe fn collect(
        &mut self,
        roots: impl Iterator<Item = usize>,
        exnref_slots: impl Fn(TagIdentity) -> Vec<usize>,
    ) {
        let mut kept: HashSet<usize> = HashSet::new();
        let mut work: Vec<usize> = roots.chain(self.pinned.borrow().iter().copied()).collect();
        while let Some(word) = work.pop() {
            let Some(ptr) = self.containing(word) else { continue };
            if !kept.insert(ptr) {
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
        self.next_collection = FIRST_COLLECTION_SLOTS.max(2 * self.live_slots);
    }

    /// Whether no object is live (collecting would do nothing).
    pub(crate) fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}

impl Drop for Exceptions {
    fn drop(&mut self) {
        for (ptr, len) in std::mem::take(&mut self.live) {
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
    let need = (1 + len as u64) * u64::from(VALRAW_SIZE) + OBJECT_OVERHEAD_BYTES;
    let memories: u64 = store.memories.iter().map(|m| u64::from(m.pages()) * WASM_PAGE_SIZE as u64).sum();
    let limit = u64::from(store.memory_limit_pages) * WASM_PAGE_SIZE as u64;
    let over = |store: &StoreInner| memories + store.exceptions.bytes() + need > limit;
    if store.exceptions.collection_due(1 + len) || over(store) {
        // SAFETY: called by compiled code (a builtin, in a `catch_traps` activation): every
        // wasm frame is on this thread's stack below its outermost entry.
        unsafe { store.collect_exceptions_during_call() };
    }
    if over(store) {
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
        // SAFETY: called with no wasm frame live (the outermost call returned): the globals
        // and tables are every place left that can hold an `exnref`.
        unsafe { self.collect_exceptions_from(std::iter::empty()) };
    }

    /// [`StoreInner::collect_exceptions`] while compiled code runs: this thread's stack up to
    /// its outermost entry into compiled code, and the callee-saved registers, are roots too
    /// (see the module's documentation).
    ///
    /// # Safety
    /// Called from a builtin that compiled code called (so `catch_traps` is on the stack), on
    /// the store's thread.
    pub(crate) unsafe fn collect_exceptions_during_call(&mut self) {
        let Some(top) = traps::outermost_entry_sp() else { return };
        let bounds = self
            .exceptions
            .live
            .first_key_value()
            .map(|(b, _)| *b)
            .zip(self.exceptions.live.last_key_value().map(|(b, l)| b + l * VALRAW_SIZE as usize));
        let Some((low, high)) = bounds else { return };
        // SAFETY: `top` is this thread's outermost activation's stack pointer, above every
        // frame between here and it (the caller's contract).
        let words = unsafe { stack_words(top, low..high) };
        // SAFETY: the words hold every wasm frame's locals and operands, live across the call
        // that reached this builtin; the globals and tables are added by the callee.
        unsafe { self.collect_exceptions_from(words.into_iter()) };
    }

    /// Collects with `roots` and the store's globals and tables holding `exnref`s.
    ///
    /// # Safety
    /// `roots` and the globals and tables must be every place outside the objects holding a
    /// reference ([`Exceptions::collect`]).
    unsafe fn collect_exceptions_from(&mut self, roots: impl Iterator<Item = usize>) {
        let globals = self.globals.iter().filter(|g| g.ty.ty.is_exn_ref()).map(|g| g.value.bits as usize);
        let tables = self.tables.iter().filter(|t| t.ty.element.is_exn_ref()).flat_map(|t| t.elements.iter().copied());
        let tags = &self.tags;
        let exnref_slots = |identity: TagIdentity| -> Vec<usize> {
            let tag = tags.iter().find(|t| t.identity() == identity);
            tag.map_or(Vec::new(), |t| {
                t.ty.params.iter().enumerate().filter(|(_, p)| p.is_exn_ref()).map(|(i, _)| i).collect()
            })
        };
        // SAFETY: the caller's contract.
        unsafe { self.exceptions.collect(roots.chain(globals).chain(tables), exnref_slots) };
    }
}

/// The words of this thread's stack from this frame up to `top` (exclusive), and the
/// callee-saved registers, that fall in `range` (where the live objects lie).
///
/// # Safety
/// `top` must be an address of this thread's stack above this frame (the stack between is
/// mapped and readable).
#[inline(never)]
unsafe fn stack_words(top: usize, range: std::ops::Range<usize>) -> Vec<usize> {
    let (rbx, rbp, r12, r13, r14, r15, sp): (usize, usize, usize, usize, usize, usize, usize);
    // SAFETY: reads registers only.
    unsafe {
        std::arch::asm!(
            "mov {0}, rbx", "mov {1}, rbp", "mov {2}, r12", "mov {3}, r13", "mov {4}, r14", "mov {5}, r15",
            "mov {6}, rsp",
            out(reg) rbx, out(reg) rbp, out(reg) r12, out(reg) r13, out(reg) r14, out(reg) r15, out(reg) sp,
            options(nomem, nostack, preserves_flags),
        )
    };
    let mut words: Vec<usize> = [rbx, rbp, r12, r13, r14, r15].into_iter().filter(|w| range.contains(w)).collect();
    let mut at = sp & !7;
    while at < top {
        // SAFETY: between this frame's stack pointer and `top`, on this thread's stack (the
        // caller's contract); a volatile read, as the words belong to other frames.
        let word = unsafe { std::ptr::read_volatile(at as *const usize) };
        if range.contains(&word) {
            words.push(word);
        }
        at += 8;
    }
    words
}
