//! The builtins compiled code calls for memory and table operations that are not inline
//! loads and stores (`memory.grow`, bulk memory and table operations), for what is made
//! on first use (function references, lazy tables' elements) and for exceptions (made,
//! freed and thrown in [`crate::exceptions`]), through the table at
//! `VMCTX_BUILTINS`. Each receives its instance's `VMContext` and reaches the runtime state
//! through it, for the duration of the call only (see [`crate::state`]).

use crate::exceptions;
use crate::state::InstanceData;
use crate::types::FuncIndex;
use crate::vm::vmctx::BUILTIN_COUNT;

/// The builtin table compiled code calls through (`VMCTX_BUILTINS`), in [`Builtin`] order.
#[repr(C)]
pub(crate) struct BuiltinTable {
    memory_grow: unsafe extern "C" fn(*mut u8, u32, u64) -> u64,
    memory_fill: unsafe extern "C" fn(*mut u8, u32, u64, u32, u64) -> u32,
    memory_copy: unsafe extern "C" fn(*mut u8, u32, u32, u64, u64, u64) -> u32,
    memory_init: unsafe extern "C" fn(*mut u8, u32, u32, u64, u32, u32) -> u32,
    data_drop: unsafe extern "C" fn(*mut u8, u32),
    table_grow: unsafe extern "C" fn(*mut u8, u32, u64, u64) -> u64,
    table_fill: unsafe extern "C" fn(*mut u8, u32, u64, u64, u64) -> u32,
    table_copy: unsafe extern "C" fn(*mut u8, u32, u32, u64, u64, u64) -> u32,
    table_init: unsafe extern "C" fn(*mut u8, u32, u32, u64, u32, u32) -> u32,
    elem_drop: unsafe extern "C" fn(*mut u8, u32),
    func_ref: unsafe extern "C" fn(*mut u8, u32) -> u64,
    table_element: unsafe extern "C" fn(*mut u8, u32, u32) -> u64,
    fill_table: unsafe extern "C" fn(*mut u8, u32),
    exn_alloc: unsafe extern "C" fn(*mut u8, u32) -> u64,
    exn_release: unsafe extern "C" fn(*mut u8, u64),
    throw: unsafe extern "C" fn(*mut u8, u64, usize, u64),
}

const _: () = assert!(std::mem::size_of::<BuiltinTable>() == 8 * BUILTIN_COUNT);

/// The one builtin table, shared by every instance.
pub(crate) static BUILTINS: BuiltinTable = BuiltinTable {
    memory_grow: builtin_memory_grow,
    memory_fill: builtin_memory_fill,
    memory_copy: builtin_memory_copy,
    memory_init: builtin_memory_init,
    data_drop: builtin_data_drop,
    table_grow: builtin_table_grow,
    table_fill: builtin_table_fill,
    table_copy: builtin_table_copy,
    table_init: builtin_table_init,
    elem_drop: builtin_elem_drop,
    func_ref: builtin_func_ref,
    table_element: builtin_table_element,
    fill_table: builtin_fill_table,
    exn_alloc: exceptions::builtin_exn_alloc,
    exn_release: exceptions::builtin_exn_release,
    throw: exceptions::builtin_throw,
};

/// The instance behind a builtin's `vmctx` argument.
///
/// # Safety
/// `vmctx` must be a live instance's context (compiled code passes its own).
unsafe fn instance<'a>(vmctx: *mut u8) -> &'a mut InstanceData {
    // SAFETY: guaranteed by the caller; builtins run on the store's thread while no other
    // reference to the instance is in use.
    unsafe { &mut *InstanceData::from_vmctx(vmctx) }
}

/// `Some(start..start+len)` if it lies within `size`.
fn range(start: impl Into<u64>, len: impl Into<u64>, size: usize) -> Option<std::ops::Range<usize>> {
    let start = start.into();
    let end = start.checked_add(len.into())?;
    (end <= size as u64).then_some(start as usize..end as usize)
}

unsafe extern "C" fn builtin_memory_grow(vmctx: *mut u8, memory: u32, delta: u64) -> u64 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    let index = data.memories[memory as usize];
    // No memory reaches 2^32 pages: a larger delta fails like any too large one.
    let Ok(delta) = u32::try_from(delta) else {
        data.store().memories[index as usize].refused(u32::MAX);
        return u64::MAX;
    };
    match data.store().grow_memory(index, delta) {
        u32::MAX => u64::MAX,
        old => u64::from(old),
    }
}

unsafe extern "C" fn builtin_memory_fill(vmctx: *mut u8, memory: u32, dst: u64, value: u32, len: u64) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    let Some(mem) = data.memory_mut(memory) else { return 1 };
    let bytes = mem.data_mut();
    match range(dst, len, bytes.len()) {
        Some(r) => {
            bytes[r].fill(value as u8);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn builtin_memory_copy(
    vmctx: *mut u8,
    dst_memory: u32,
    src_memory: u32,
    dst: u64,
    src: u64,
    len: u64,
) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    let (d, s) = (data.memories[dst_memory as usize] as usize, data.memories[src_memory as usize] as usize);
    let memories = &mut data.store().memories;
    if d == s {
        let bytes = memories[d].data_mut();
        return match (range(dst, len, bytes.len()), range(src, len, bytes.len())) {
            (Some(dr), Some(sr)) => {
                bytes.copy_within(sr, dr.start);
                0
            }
            _ => 1,
        };
    }
    let Ok([to, from]) = memories.get_disjoint_mut([d, s]) else { return 1 };
    let (to, from) = (to.data_mut(), from.data());
    match (range(dst, len, to.len()), range(src, len, from.len())) {
        (Some(dr), Some(sr)) => {
            to[dr].copy_from_slice(&from[sr]);
            0
        }
        _ => 1,
    }
}

/// `memory.init` (also applies active data segments at instantiation): 0, or 1 out of bounds.
pub(crate) fn memory_init(data: &mut InstanceData, memory: u32, segment: u32, dst: u64, src: u32, len: u32) -> u32 {
    let module = data.module.clone();
    let seg: &[u8] = if data.data_dropped[segment as usize] { &[] } else { &module.info.data[segment as usize].bytes };
    let Some(s) = range(src, len, seg.len()) else { return 1 };
    let Some(mem) = data.memory_mut(memory) else { return 1 };
    let bytes = mem.data_mut();
    match range(dst, len, bytes.len()) {
        Some(d) => {
            bytes[d].copy_from_slice(&seg[s]);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn builtin_memory_init(
    vmctx: *mut u8,
    memory: u32,
    segment: u32,
    dst: u64,
    src: u32,
    len: u32,
) -> u32 {
    // SAFETY: called by compiled code with its own context.
    memory_init(unsafe { instance(vmctx) }, memory, segment, dst, src, len)
}

unsafe extern "C" fn builtin_data_drop(vmctx: *mut u8, segment: u32) {
    // SAFETY: called by compiled code with its own context.
    unsafe { instance(vmctx) }.data_dropped[segment as usize] = true;
}

unsafe extern "C" fn builtin_table_grow(vmctx: *mut u8, table: u32, init: u64, delta: u64) -> u64 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    // No table reaches 2^32 elements: a larger delta fails like any too large one.
    let grown = u32::try_from(delta).ok().and_then(|delta| data.table(table).grow(delta, init as usize));
    grown.map_or(u64::MAX, u64::from)
}

unsafe extern "C" fn builtin_table_fill(vmctx: *mut u8, table: u32, dst: u64, value: u64, len: u64) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    fill_lazy(data, table);
    let t = data.table(table);
    match range(dst, len, t.elements.len()) {
        Some(r) => {
            t.elements[r].fill(value as usize);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn builtin_table_copy(
    vmctx: *mut u8,
    dst_table: u32,
    src_table: u32,
    dst: u64,
    src: u64,
    len: u64,
) -> u32 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    fill_lazy(data, src_table);
    fill_lazy(data, dst_table);
    let src_len = data.table(src_table).elements.len();
    let dst_len = data.table(dst_table).elements.len();
    let (Some(s), Some(d)) = (range(src, len, src_len), range(dst, len, dst_len)) else { return 1 };
    if data.tables[dst_table as usize] == data.tables[src_table as usize] {
        data.table(dst_table).elements.copy_within(s, d.start);
    } else {
        let items: Vec<usize> = data.table(src_table).elements[s].to_vec();
        data.table(dst_table).elements[d].copy_from_slice(&items);
    }
    0
}

/// `table.init` (also applies active element segments at instantiation): 0, or 1 out of
/// bounds.
pub(crate) fn table_init(data: &mut InstanceData, table: u32, segment: u32, dst: u64, src: u32, len: u32) -> u32 {
    let items: Vec<usize> = {
        let seg = data.elements[segment as usize].as_deref().unwrap_or(&[]);
        match range(src, len, seg.len()) {
            Some(s) => seg[s].to_vec(),
            None => return 1,
        }
    };
    fill_lazy(data, table);
    let t = data.table(table);
    match range(dst, len, t.elements.len()) {
        Some(d) => {
            t.elements[d].copy_from_slice(&items);
            0
        }
        None => 1,
    }
}

unsafe extern "C" fn builtin_table_init(vmctx: *mut u8, table: u32, segment: u32, dst: u64, src: u32, len: u32) -> u32 {
    // SAFETY: called by compiled code with its own context.
    table_init(unsafe { instance(vmctx) }, table, segment, dst, src, len)
}

unsafe extern "C" fn builtin_elem_drop(vmctx: *mut u8, segment: u32) {
    // SAFETY: called by compiled code with its own context.
    unsafe { instance(vmctx) }.elements[segment as usize] = None;
}

/// Fills the instance's table `table` from its image, if it is lazy, before it is written
/// (see [`crate::table_image`]).
fn fill_lazy(data: &mut InstanceData, table: u32) {
    let index = data.tables[table as usize];
    data.store().fill_table(index);
}

unsafe extern "C" fn builtin_func_ref(vmctx: *mut u8, function: u32) -> u64 {
    // SAFETY: called by compiled code with its own context.
    unsafe { instance(vmctx) }.func_ref(FuncIndex(function)) as u64
}

unsafe extern "C" fn builtin_table_element(vmctx: *mut u8, table: u32, index: u32) -> u64 {
    // SAFETY: called by compiled code with its own context.
    let data = unsafe { instance(vmctx) };
    let table = data.tables[table as usize];
    data.store().table_element(table, index) as u64
}

unsafe extern "C" fn builtin_fill_table(vmctx: *mut u8, table: u32) {
    // SAFETY: called by compiled code with its own context.
    fill_lazy(unsafe { instance(vmctx) }, table);
}
