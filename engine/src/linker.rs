//! Resolving imports by name: a [`Linker`] maps `module.name` to externs (host functions,
//! or exports of instances registered under a module name) and instantiates modules with them.

use crate::instance::InstantiateError;
use crate::module::Module;
use crate::store::Store;
use crate::types::ExternType;
use crate::values::{Extern, Instance};
use std::collections::HashMap;

/// Why linking failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// No definition for an import.
    #[error("unknown import {module}.{name}: expected {expected}")]
    Missing {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// The type the module expects.
        expected: ExternType,
    },
    /// Instantiation failed (incompatible import, segment trap, start function trap).
    #[error(transparent)]
    Instantiate(#[from] InstantiateError),
}

/// Named definitions for resolving imports.
#[derive(Default, Debug, Clone)]
pub struct Linker {
    items: HashMap<(String, String), Extern>,
}

impl Linker {
    /// An empty linker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines `module.name` (replacing an earlier definition).
    pub fn define(&mut self, module: &str, name: &str, item: Extern) -> &mut Self {
        self.items.insert((module.to_string(), name.to_string()), item);
        self
    }

    /// Defines every export of `instance` under module name `module`.
    pub fn define_instance(&mut self, store: &Store, module: &str, instance: Instance) -> &mut Self {
        for name in store.export_names(instance) {
            if let Some(e) = store.get_export(instance, &name) {
                self.define(module, &name, e);
            }
        }
        self
    }

    /// The definition of `module.name`.
    pub fn get(&self, module: &str, name: &str) -> Option<Extern> {
        self.items.get(&(module.to_string(), name.to_string())).copied()
    }

    /// Resolves `module`'s imports and instantiates it.
    pub fn instantiate(&self, store: &mut Store, module: &Module) -> Result<Instance, LinkError> {
        let mut imports = Vec::with_capacity(module.info().imports.len());
        for (m, name, expected) in module.imports() {
            match self.get(&m, &name) {
                Some(e) => imports.push(e),
                None => return Err(LinkError::Missing { module: m, name, expected }),
            }
        }
        Ok(store.instantiate(module, &imports)?)
    }
}
