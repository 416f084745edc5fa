//! Valid modules from fuzzer bytes: wasm-smith configured for what the engine supports
//! (WebAssembly 2.0 without SIMD, extended constant expressions; [`config_3`] adds SIMD and
//! the parts of 3.0 the engine implements), without imports, exporting everything, with small
//! memories and tables, canonical NaNs, and a fuel counter so every call terminates.

use arbitrary::Unstructured;

/// Fuel for a whole module (all its calls together): each function entry and loop
/// iteration costs one, and a module out of fuel traps with `unreachable`.
pub const FUEL: u32 = 1000;

/// The wasm-smith configuration.
pub fn config() -> wasm_smith::Config {
    wasm_smith::Config {
        // WebAssembly 2.0 without SIMD, with extended constant expressions.
        simd_enabled: false,
        relaxed_simd_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        exceptions_enabled: false,
        tail_call_enabled: false,
        gc_enabled: false,
        memory64_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        extended_const_enabled: true,
        multi_value_enabled: true,
        reference_types_enabled: true,
        bulk_memory_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        max_memories: 1,
        max_tables: 2,
        // Self-contained, every item observable.
        max_imports: 0,
        export_everything: true,
        // Small, so memories are cheap to compare.
        max_memory32_bytes: 4 << 16,
        max_table_elements: 100,
        min_funcs: 3,
        max_funcs: 20,
        max_instructions: 200,
        max_data_segments: 10,
        max_element_segments: 10,
        canonicalize_nans: true,
        ..wasm_smith::Config::default()
    }
}

/// [`config`] with SIMD and the parts of WebAssembly 3.0 the engine implements beyond it: tail
/// calls, multiple memories, 64-bit memories, exception handling and relaxed SIMD
/// (deterministic in this engine).
/// For the engine against itself (the differential
/// fuzzer against wasmi keeps [`config`], whose stored inputs mean what they meant).
pub fn config_3() -> wasm_smith::Config {
    wasm_smith::Config {
        tail_call_enabled: true,
        memory64_enabled: true,
        exceptions_enabled: true,
        simd_enabled: true,
        relaxed_simd_enabled: true,
        max_memories: 3,
        max_memory64_bytes: 4 << 16,
        ..config()
    }
}

/// A valid module from `data` with a fuel counter, or `None` if wasm-smith needs other bytes.
pub fn module(data: &[u8]) -> Option<Vec<u8>> {
    module_with(config(), data)
}

/// [`module`] under another configuration.
pub fn module_with(config: wasm_smith::Config, data: &[u8]) -> Option<Vec<u8>> {
    let mut u = Unstructured::new(data);
    let mut module = wasm_smith::Module::new(config, &mut u).ok()?;
    module.ensure_termination(FUEL).ok()?;
    let wasm = module.to_bytes();
    // To look at a reproducer's module: FUZZ_DUMP_WASM=out.wasm FUZZ_REPLAY=input cargo test ...
    if let Some(path) = std::env::var_os("FUZZ_DUMP_WASM") {
        let _ = std::fs::write(path, &wasm);
    }
    Some(wasm)
}
