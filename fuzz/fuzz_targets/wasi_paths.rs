//! The `wasi_paths` target (see `src/targets/wasi_paths.rs`): a libFuzzer target under `cargo fuzz run wasi_paths`;
//! built without `cargo fuzz`, a program that runs the target on the files it is given.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::wasi_paths::target(data));

#[cfg(not(fuzzing))]
fn main() {
    fuzz::runner::replay_main(fuzz::targets::wasi_paths::target);
}
