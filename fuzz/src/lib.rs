//! Fuzz targets for sandboxrun (issue #14).
//!
//! Each target is a `fn target(data: &[u8])` in its own module of [`targets`] that panics
//! when it finds a bug. Each runs two ways:
//! - under `cargo fuzz run NAME` (nightly; `fuzz_targets/NAME.rs`, built with
//!   `--cfg fuzzing`), and
//! - as a `cargo test` test on stable, for a few seconds over the committed seed corpus
//!   (`corpus/NAME`) and seeded pseudo-random inputs ([`runner`]).
//!
//! See `fuzz/README.md` for what each target checks.

pub mod exec;
pub mod runner;
pub mod smith;
pub mod targets;

#[cfg(test)]
mod seeds;
