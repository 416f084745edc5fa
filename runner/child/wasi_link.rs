//! Links WASI into the engine: one host function per imported WASI function, forwarding to
//! `wasi::call` with the caller's memory.

use engine::{Extern, FuncType, Linker, Module, Store, Val, ValType};
use std::cell::RefCell;
use std::rc::Rc;

fn val_type(t: wasi::ValType) -> ValType {
    match t {
        wasi::ValType::I32 => ValType::I32,
        wasi::ValType::I64 => ValType::I64,
    }
}

/// Defines, in `linker`, every WASI function `module` imports (from either ABI). Imports
/// naming no WASI function are left for the linker to report.
pub fn define_wasi(linker: &mut Linker, store: &mut Store, module: &Module, ctx: &Rc<RefCell<wasi::WasiCtx>>) {
    for (import_module, name, _) in module.imports() {
        let Some(abi) = wasi::Abi::from_module_name(&import_module) else { continue };
        // Looked up once, here; a call dispatches on the typed function, allocating nothing.
        let Some(func) = abi.lookup(&name) else { continue };
        let sig = func.sig();
        let ty = FuncType::new(
            sig.params.iter().map(|t| val_type(*t)).collect::<Vec<_>>(),
            sig.results.iter().map(|t| val_type(*t)).collect::<Vec<_>>(),
        );
        let ctx = ctx.clone();
        let host = store.new_host_func(ty, move |caller, params, results| {
            let mut raw = [0u64; wasi::MAX_PARAMS];
            for (slot, v) in raw.iter_mut().zip(params) {
                *slot = match v {
                    Val::I32(x) => *x as u32 as u64,
                    Val::I64(x) => *x as u64,
                    _ => 0,
                };
            }
            let mut empty = [];
            let memory = caller.memory().unwrap_or(&mut empty);
            let errno = wasi::call(&mut ctx.borrow_mut(), abi, func, memory, &raw[..params.len()])?;
            if let Some(r) = results.first_mut() {
                *r = Val::I32(errno as i32);
            }
            Ok(())
        });
        linker.define(&import_module, &name, Extern::Func(host));
    }
}
