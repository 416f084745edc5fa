//! The fuzz targets, one a module, each with its bounded test.

pub mod artifact;
pub mod compile;
#[cfg(any(test, fuzzing))]
pub mod differential;
#[cfg(any(test, fuzzing))]
pub mod differential_wasmtime;
pub mod images;
pub mod internal_differential;
pub mod policy;
#[cfg(any(test, fuzzing))]
pub mod simd_ops;
pub mod wasi_paths;
