//! `compile`: arbitrary bytes (binary or text) through validation and compilation must never
//! panic nor hang (the runner's watchdog, or libFuzzer's `-timeout`, bounds each input).
//! Bytes that wasm-smith turns into a valid module must also compile.

use crate::exec::engine;
use engine::Module;

/// The target.
pub fn target(data: &[u8]) {
    let _ = Module::new(engine(None), data);
    // The same bytes as wasm-smith's choices: a module that must validate and compile.
    if let Some(wasm) = crate::smith::module(data) {
        if let Err(e) = Module::new(engine(None), &wasm) {
            panic!("a valid wasm-smith module failed to compile: {e}");
        }
    }
}

/// Inputs for the bounded test: mutated corpus entries, random bytes, and mutated
/// wasm-smith modules (which get past the header checks into the function bodies).
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(3) == 0 {
        let len = 64 + rng.below(2048);
        let choices = rng.bytes(len);
        if let Some(wasm) = crate::smith::module(&choices) {
            return crate::runner::mutate(rng, &wasm, &choices);
        }
    }
    crate::runner::mutate_or_random(rng, corpus, 512)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_compile() {
        crate::runner::run(&crate::runner::Campaign {
            name: "compile",
            target: super::target,
            generate: super::generate,
            seconds: 8.0,
        });
    }
}
