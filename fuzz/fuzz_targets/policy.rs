//! The `policy` target (see `src/targets/policy.rs`): a libFuzzer target under `cargo fuzz run policy`;
//! built without `cargo fuzz`, a program that runs the target on the files it is given.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::policy::target(data));

#[cfg(not(fuzzing))]
fn main() {
    fuzz::runner::replay_main(fuzz::targets::policy::target);
}
