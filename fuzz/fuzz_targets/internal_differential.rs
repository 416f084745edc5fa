//! The `internal_differential` target (see `src/targets/internal_differential.rs`): a libFuzzer target under `cargo fuzz run internal_differential`;
//! built without `cargo fuzz`, a program that runs the target on the files it is given.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::internal_differential::target(data));

#[cfg(not(fuzzing))]
fn main() {
    fuzz::runner::replay_main(fuzz::targets::internal_differential::target);
}
