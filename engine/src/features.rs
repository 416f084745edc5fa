//! WebAssembly features by name: which the engine implements, and which a module uses.

use crate::module_info::LoadError;
use wasmparser::{Validator, WasmFeatures};

/// A WebAssembly feature (a proposal merged into the standard, or still a proposal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    /// Its name, as the proposal's repository spells it.
    pub name: &'static str,
    /// Whether the engine implements it.
    pub implemented: bool,
    flags: WasmFeatures,
    /// Features that build on this one (a module using them uses this one too).
    needed_by: &'static [&'static str],
}

const fn feature(name: &'static str, flags: WasmFeatures, implemented: bool) -> Feature {
    Feature { name, implemented, flags, needed_by: &[] }
}

/// Every feature the engine knows by name: WebAssembly 2.0's additions to 1.0, then 3.0's and
/// later proposals'. GC (struct, array and i31 types) is named here only to be reported: it is
/// out of the engine's scope (issue 17).
pub const FEATURES: &[Feature] = &[
    feature("mutable-global", WasmFeatures::MUTABLE_GLOBAL, true),
    feature("saturating-float-to-int", WasmFeatures::SATURATING_FLOAT_TO_INT, true),
    feature("sign-extension", WasmFeatures::SIGN_EXTENSION, true),
    feature("multi-value", WasmFeatures::MULTI_VALUE, true),
    Feature {
        needed_by: &["function-references", "gc", "exceptions", "legacy-exceptions"],
        ..feature("reference-types", WasmFeatures::REFERENCE_TYPES, true)
    },
    feature("bulk-memory", WasmFeatures::BULK_MEMORY, true),
    Feature { needed_by: &["relaxed-simd"], ..feature("simd", WasmFeatures::SIMD, true) },
    feature("relaxed-simd", WasmFeatures::RELAXED_SIMD, true),
    feature("extended-const", WasmFeatures::EXTENDED_CONST, true),
    feature("tail-call", WasmFeatures::TAIL_CALL, true),
    feature("exceptions", WasmFeatures::EXCEPTIONS, true),
    feature("legacy-exceptions", WasmFeatures::LEGACY_EXCEPTIONS, true),
    Feature { needed_by: &["gc"], ..feature("function-references", WasmFeatures::FUNCTION_REFERENCES, true) },
    feature("multi-memory", WasmFeatures::MULTI_MEMORY, true),
    feature("memory64", WasmFeatures::MEMORY64, true),
    feature("threads", WasmFeatures::THREADS, false),
    feature("custom-page-sizes", WasmFeatures::CUSTOM_PAGE_SIZES, false),
    feature("wide-arithmetic", WasmFeatures::WIDE_ARITHMETIC, false),
    feature("gc", WasmFeatures::GC, false),
];

/// The features an engine accepts in the modules it compiles ([`crate::Config::features`]):
/// by default every feature it implements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Features {
    flags: WasmFeatures,
}

impl Default for Features {
    fn default() -> Self {
        Features { flags: implemented() }
    }
}

/// Why a list of feature names is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FeatureError {
    /// Not a feature this engine knows.
    #[error("unknown WebAssembly feature '{name}' (known: {known})")]
    Unknown {
        /// The name.
        name: String,
        /// The names known.
        known: String,
    },
    /// A feature the engine does not implement.
    #[error("the WebAssembly feature '{0}' is not implemented")]
    NotImplemented(String),
}

impl Features {
    /// Only the features `names` (and WebAssembly 1.0), each one the engine implements.
    ///
    /// # Errors
    /// A name unknown, or of a feature not implemented.
    pub fn only(names: &[impl AsRef<str>]) -> Result<Features, FeatureError> {
        let mut flags = base();
        for name in names {
            let name = name.as_ref();
            let Some(f) = FEATURES.iter().find(|f| f.name == name) else {
                let known: Vec<&str> = FEATURES.iter().map(|f| f.name).collect();
                return Err(FeatureError::Unknown { name: name.to_string(), known: known.join(", ") });
            };
            if !f.implemented {
                return Err(FeatureError::NotImplemented(name.to_string()));
            }
            flags |= f.flags;
        }
        Ok(Features { flags })
    }

    /// The names of the features accepted, in [`FEATURES`]' order.
    pub fn names(&self) -> Vec<&'static str> {
        FEATURES.iter().filter(|f| self.flags.contains(f.flags)).map(|f| f.name).collect()
    }

    /// The validator's features.
    pub(crate) fn flags(&self) -> WasmFeatures {
        self.flags
    }
}

/// What every module may use: WebAssembly 1.0's floats and types.
fn base() -> WasmFeatures {
    WasmFeatures::FLOATS | WasmFeatures::GC_TYPES
}

/// The validator's features for what the engine implements.
pub(crate) fn implemented() -> WasmFeatures {
    FEATURES.iter().filter(|f| f.implemented).fold(base(), |acc, f| acc | f.flags)
}

/// The features of [`FEATURES`] that `wasm` (a binary module) uses: it is validated with all
/// of them, then once per feature without it (and without those built on it): a module that
/// no longer validates uses it.
///
/// # Errors
/// The module does not validate even with every named feature (it is invalid, or uses one this
/// list does not name).
pub fn used(wasm: &[u8]) -> Result<Vec<Feature>, LoadError> {
    let all = FEATURES.iter().fold(base(), |acc, f| acc | f.flags);
    Validator::new_with_features(all).validate_all(wasm)?;
    Ok(FEATURES
        .iter()
        .filter(|f| {
            let without = FEATURES
                .iter()
                .filter(|other| other.name == f.name || f.needed_by.contains(&other.name))
                .fold(all, |acc, other| acc.difference(other.flags));
            Validator::new_with_features(without).validate_all(wasm).is_err()
        })
        .copied()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(wat: &str) -> Vec<&'static str> {
        used(&wat::parse_str(wat).unwrap()).unwrap().iter().map(|f| f.name).collect()
    }

    #[test]
    fn a_module_uses_exactly_the_features_it_needs() {
        assert!(names("(module (func))").is_empty());
        assert_eq!(
            names("(module (memory 1) (func (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))))"),
            ["bulk-memory"]
        );
        assert_eq!(names("(module (func (result i32 i32) (i32.const 1) (i32.const 2)))"), ["multi-value"]);
        assert_eq!(names("(module (func (drop (v128.const i64x2 0 0))))"), ["simd"]);
        let relaxed = "(module (func (param v128) (drop (i8x16.relaxed_swizzle (local.get 0) (local.get 0)))))";
        assert_eq!(names(relaxed), ["simd", "relaxed-simd"]);
        assert_eq!(names("(module (func $f (return_call $f)))"), ["tail-call"]);
        assert_eq!(names("(module (memory i64 1))"), ["memory64"]);
        assert_eq!(names("(module (global i32 (i32.add (i32.const 1) (i32.const 2))))"), ["extended-const"]);
        // Typed function references build on reference types.
        assert_eq!(
            names("(module (type $t (func)) (func (param (ref $t)) (call_ref $t (local.get 0))))"),
            ["reference-types", "function-references"]
        );
        // Exception handling builds on reference types (`exnref`).
        assert_eq!(names("(module (tag $e) (func (throw $e)))"), ["reference-types", "exceptions"]);
        // `throw` is the standard encoding's, `try` the legacy one's.
        assert_eq!(
            names("(module (tag $e) (func try (throw $e) catch_all end))"),
            ["reference-types", "exceptions", "legacy-exceptions"]
        );
        let implemented: Vec<&str> = FEATURES.iter().filter(|f| f.implemented).map(|f| f.name).collect();
        assert!(
            implemented.contains(&"tail-call")
                && implemented.contains(&"simd")
                && implemented.contains(&"relaxed-simd")
        );
        assert!(implemented.contains(&"exceptions") && implemented.contains(&"legacy-exceptions"));
        assert!(used(b"\0asm\x01\0\0\0\x01").is_err(), "an invalid module is an error");
    }

    #[test]
    fn a_feature_list_is_checked_by_name() {
        assert_eq!(Features::only(&["tail-call", "bulk-memory"]).unwrap().names(), ["bulk-memory", "tail-call"]);
        let none: &[&str] = &[];
        assert_eq!(Features::only(none).unwrap().names(), Vec::<&str>::new());
        assert!(matches!(Features::only(&["tail-calls"]), Err(FeatureError::Unknown { .. })));
        assert_eq!(Features::only(&["threads"]), Err(FeatureError::NotImplemented("threads".into())));
        assert_eq!(Features::only(&["simd"]).unwrap().names(), ["simd"]);
        assert_eq!(Features::default().names().len(), FEATURES.iter().filter(|f| f.implemented).count());
    }

    #[test]
    fn the_engine_implements_webassembly_2_and_all_of_3_but_gc() {
        assert!(WasmFeatures::WASM2.contains(WasmFeatures::SIMD));
        let expected = WasmFeatures::WASM2
            | WasmFeatures::EXTENDED_CONST
            | WasmFeatures::TAIL_CALL
            | WasmFeatures::RELAXED_SIMD
            | WasmFeatures::MULTI_MEMORY
            | WasmFeatures::MEMORY64
            | WasmFeatures::EXCEPTIONS
            | WasmFeatures::LEGACY_EXCEPTIONS
            | WasmFeatures::FUNCTION_REFERENCES;
        assert_eq!(implemented(), expected);
    }
}
