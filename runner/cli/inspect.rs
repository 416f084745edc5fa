//! `sandboxrun inspect app.wasm`: a module's imports, exports, memories and tables. Names are
//! the module's choice: escaped ([`crate::cli::output::escape`]).

use crate::cli::output::escape;
use engine::{Config, Engine, Module};
use std::fmt::Write;

/// Validates and describes a module.
pub fn inspect(bytes: &[u8]) -> Result<String, engine::ModuleError> {
    let engine = Engine::new(Config::default())?;
    let module = Module::new(&engine, bytes)?;
    let info = module.info();
    let mut out = String::new();
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
