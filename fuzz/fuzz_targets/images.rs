//! The `images` target (see `src/targets/images.rs`): a libFuzzer target under `cargo fuzz run images`;
//! built without `cargo fuzz`, a program that runs the target on the files it is given.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::images::target(data));

#[cfg(not(fuzzing))]
fn main() {
    fuzz::runner::replay_main(fuzz::targets::images::target);
}
