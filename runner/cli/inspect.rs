//! `sandboxrun inspect app.wasm`: the WebAssembly features a module uses, its imports, exports,
//! memories and tables. Names are the module's choice: escaped ([`crate::cli::output::escape`]).

use crate::cli::output::escape;
use engine::{Config, Engine, Module};
use std::fmt::Write;

/// Why a module cannot be described.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// It does not load (invalid, or the engine refuses it).
    #[error(transparent)]
    Module(#[from] engine::ModuleError),
    /// It uses features the engine does not implement.
    #[error("uses {}, which this engine does not implement (it implements {})", .0.join(", "), implemented())]
    Unimplemented(Vec<&'static str>),
}

fn implemented() -> String {
    let names: Vec<&str> = engine::features::FEATURES.iter().filter(|f| f.implemented).map(|f| f.name).collect();
    names.join(", ")
}

/// Validates and describes a module.
pub fn inspect(bytes: &[u8]) -> Result<String, InspectError> {
    let wasm = engine::module_info::wat_to_binary(bytes).map_err(engine::ModuleError::from)?;
    let used = engine::features::used(&wasm).map_err(engine::ModuleError::from)?;
    let missing: Vec<&str> = used.iter().filter(|f| !f.implemented).map(|f| f.name).collect();
    if !missing.is_empty() {
        return Err(InspectError::Unimplemented(missing));
    }
    let engine = Engine::new(Config::default()).map_err(engine::ModuleError::from)?;
    let module = Module::new(&engine, &wasm)?;
    let info = module.info();
    let mut out = String::new();
    let names: Vec<&str> = used.iter().map(|f| f.name).collect();
    let _ = writeln!(
        out,
        "features: {}",
        if names.is_empty() { "none beyond WebAssembly 1.0".into() } else { names.join(", ") }
    );
    let _ = writeln!(out, "imports:");
    for (m, name, ty) in module.imports() {
        let _ = writeln!(out, "  {}.{}: {ty}", escape(&m), escape(&name));
    }
    let _ = writeln!(out, "exports:");
    for (name, ty) in module.exports() {
        let _ = writeln!(out, "  {}: {ty}", escape(&name));
    }
    let _ = writeln!(out, "memories:");
    for (i, m) in info.memories.iter().enumerate() {
        let _ = writeln!(out, "  {i}: {} pages", m.limits);
    }
    let _ = writeln!(out, "tables:");
    for (i, t) in info.tables.iter().enumerate() {
        let _ = writeln!(out, "  {i}: {} {}", t.limits, t.element);
    }
    let _ = writeln!(out, "functions: {} defined, {} imported", info.num_defined_funcs(), info.num_imported_funcs);
    Ok(out)
}
