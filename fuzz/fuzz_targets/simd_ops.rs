//! The `simd_ops` target (see `src/targets/simd_ops.rs`): a libFuzzer target under
//! `cargo fuzz run simd_ops`. Its oracle (wasmi) is only a dependency under `cargo fuzz` and
//! in tests, so without `cargo fuzz` this program only says how to replay an input.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::simd_ops::target(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("replay an input with: FUZZ_REPLAY=FILE cargo test -p fuzz --lib simd_ops");
    std::process::exit(2);
}
