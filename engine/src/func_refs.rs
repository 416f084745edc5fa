//! An instance's function references ([`VMFuncRef`]s), made on first use.
//!
//! Instantiating a module with tens of thousands of functions (Yosys has 34,000) writes none
//! of their references: the arrays start zeroed (fresh pages from the kernel), and a
//! reference is made when something names it — `ref.func` in compiled code (through the
//! `FuncRef` builtin when the slot is still null), a table element filled on first use
//! (`crate::table_image`), an export, a constant expression. Imported functions' references
//! are set at instantiation: compiled code calls imports through them without a check.
//!
//! A reference, once made, never changes or moves: compiled code, tables and the host hold
//! its address for the instance's life.

use crate::types::{DefinedFuncIndex, FuncIndex};
use crate::vm::vmctx::VMFuncRef;
use std::cell::{Cell, UnsafeCell};

/// One instance's function references: the array compiled code reads at `VMCTX_FUNC_REFS`
/// and the storage of the references the instance owns.
pub(crate) struct FuncRefs {
    /// Per function index: its reference, null while not yet made. `Cell<*const _>` has the
    /// layout of `*const _`, so compiled code reads this as an array of pointers.
    refs: Box<[Cell<*const VMFuncRef>]>,
    /// References this instance owns: its defined functions (by defined index), then the
    /// host functions it imports (in import order).
    storage: Box<[UnsafeCell<VMFuncRef>]>,
    num_imported: u32,
    /// Host imports placed in `storage` so far.
    host_imports: usize,
}

/// How to make the reference of a defined function: its code, its instance's context, its
/// array-call trampoline and its signature id.
pub(crate) type MakeRef<'a> = &'a dyn Fn(DefinedFuncIndex) -> VMFuncRef;

impl FuncRefs {
    /// References for `num_funcs` functions of which `num_imported` are imported, `num_host`
    /// of those host functions: all null, in zeroed memory.
    pub(crate) fn new(num_funcs: usize, num_imported: u32, num_host: usize) -> FuncRefs {
        let num_defined = num_funcs - num_imported as usize;
        // SAFETY: all-zero bytes are a null pointer in a `Cell` (a transparent wrapper).
        let refs = unsafe { Box::<[Cell<*const VMFuncRef>]>::new_zeroed_slice(num_funcs).assume_init() };
        // SAFETY: all-zero bytes are a valid `VMFuncRef` (null pointers and a zero id) in an
        // `UnsafeCell` (a transparent wrapper); a zeroed entry is never read before it is
        // made, since its slot in `refs` stays null until then.
        let storage = unsafe { Box::<[UnsafeCell<VMFuncRef>]>::new_zeroed_slice(num_defined + num_host).assume_init() };
        FuncRefs { refs, storage, num_imported, host_imports: 0 }
    }

    /// The array compiled code reads (`VMCTX_FUNC_REFS`).
    pub(crate) fn array(&self) -> *const *const VMFuncRef {
        self.refs.as_ptr().cast()
    }

    /// Sets imported function `f`'s reference to another instance's `r`.
    pub(crate) fn import_shared(&mut self, f: FuncIndex, r: *const VMFuncRef) {
        self.refs[f.index()].set(r);
    }

    /// Sets imported function `f`'s reference to `r`, which this instance owns (a host
    /// function wrapped for wasm callers).
    pub(crate) fn import_host(&mut self, f: FuncIndex, r: VMFuncRef) {
        let num_defined = self.refs.len() - self.num_imported as usize;
        let slot = self.storage[num_defined + self.host_imports].get_mut();
        *slot = r;
        self.host_imports += 1;
        self.refs[f.index()].set(slot);
    }

    /// Function `f`'s reference, made by `make` if it is a defined function whose reference
    /// was never asked for.
    pub(crate) fn get(&self, f: FuncIndex, make: MakeRef<'_>) -> *const VMFuncRef {
        let cell = &self.refs[f.index()];
        if cell.get().is_null() {
            // Imported functions' references are all set at instantiation: this is a defined one.
            let d = f.0 - self.num_imported;
            let slot = self.storage[d as usize].get();
            // SAFETY: the slot belongs to defined function `d` alone and its `refs` entry is
            // still null, so no pointer to it was ever handed out and nothing reads or writes
            // it now (the runtime is single-threaded). From here on it is only read.
            unsafe { slot.write(make(DefinedFuncIndex(d))) };
            cell.set(slot);
        }
        cell.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made(d: DefinedFuncIndex) -> VMFuncRef {
        VMFuncRef {
            wasm_call: std::ptr::null(),
            vmctx: std::ptr::null_mut(),
            array_call: std::ptr::null(),
            type_id: 100 + d.0,
        }
    }

    #[test]
    fn a_reference_is_made_once_on_first_use_and_never_moves() {
        let mut refs = FuncRefs::new(4, 2, 1);
        let host = VMFuncRef { type_id: 7, ..made(DefinedFuncIndex(0)) };
        refs.import_host(FuncIndex(0), host);
        let other = VMFuncRef { type_id: 9, ..made(DefinedFuncIndex(0)) };
        refs.import_shared(FuncIndex(1), &other);
        // SAFETY: `refs` is alive and its array has four entries.
        let array = |i: usize| unsafe { *refs.array().add(i) };
        assert!(array(2).is_null() && array(3).is_null(), "defined functions start unmade");
        let calls = Cell::new(0);
        let make = |d: DefinedFuncIndex| {
            calls.set(calls.get() + 1);
            made(d)
        };
        let first = refs.get(FuncIndex(3), &make);
        assert_eq!(refs.get(FuncIndex(3), &make), first);
        assert_eq!(calls.get(), 1);
        assert_eq!(array(3), first);
        assert!(array(2).is_null());
        // SAFETY: the references live in `refs`, or are `other`, both alive.
        unsafe {
            assert_eq!((*first).type_id, 101);
            assert_eq!((*refs.get(FuncIndex(0), &make)).type_id, 7);
            assert_eq!(refs.get(FuncIndex(1), &make), &other as *const VMFuncRef);
        }
        assert_eq!(calls.get(), 1, "imports are never made");
    }
}
