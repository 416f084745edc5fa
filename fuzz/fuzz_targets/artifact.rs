//! The `artifact` target (see `src/targets/artifact.rs`): a libFuzzer target under `cargo fuzz run artifact`;
//! built without `cargo fuzz`, a program that runs the target on the files it is given.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::artifact::target(data));

#[cfg(not(fuzzing))]
fn main() {
    fuzz::runner::replay_main(fuzz::targets::artifact::target);
}
