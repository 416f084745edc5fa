//! What the engine's test files share: instantiating WAT as a cache hit would, calling an
//! export, reading a trap's kind.

#![allow(dead_code)] // each test file uses its own part

use engine::*;

/// Instantiates `wat` as a cache hit would: compiled, serialized, and loaded from the
/// artifact's bytes alone (no binary).
pub fn instantiate(engine: &Engine, wat: &str) -> (Store, Instance) {
    let wasm = wat::parse_str(wat).expect("module parses");
    let (_, artifact) = Module::compile(engine, &wasm).expect("module compiles");
    // SAFETY: compiled just above by this engine.
    let module = unsafe { Module::from_artifact_bytes(engine, &artifact.to_bytes()) }.expect("artifact loads");
    let mut store = Store::new(engine);
    let instance = store.instantiate(&module, &[]).expect("instantiates");
    (store, instance)
}

/// Calls the export `name`.
pub fn call(store: &mut Store, instance: Instance, name: &str, args: &[Val]) -> Result<Vec<Val>, CallError> {
    let f = store.get_func(instance, name).unwrap_or_else(|| panic!("export {name}"));
    store.call(f, args)
}

/// The kind of the trap a call ended with.
pub fn trap_kind(r: Result<Vec<Val>, CallError>) -> TrapKind {
    match r {
        Err(CallError::Trap(t)) => t.kind,
        other => panic!("expected a trap, got {other:?}"),
    }
}
