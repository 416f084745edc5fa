//! The `differential_wasmtime` target (see `src/targets/differential_wasmtime.rs`): a libFuzzer target under
//! `cargo fuzz run differential_wasmtime`. Its oracle (Wasmtime) is only a dependency under `cargo fuzz`
//! and in tests, so without `cargo fuzz` this program only says how to replay an input.

#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::targets::differential_wasmtime::target(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("replay an input with: FUZZ_REPLAY=FILE cargo test -p fuzz --lib differential_wasmtime");
    std::process::exit(2);
}
