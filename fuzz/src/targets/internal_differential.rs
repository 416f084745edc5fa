//! `internal_differential`: one wasm-smith module run four ways in sandboxrun's engine —
//! guard-page memories and explicit bounds checks, each loaded fresh and through the artifact
//! round trip (`Artifact::to_bytes`, then `Module::from_artifact`, which parses and loads) —
//! must give identical traces (results, exact trap kinds, globals, memories, tables). The
//! round trip must also give back an equal artifact. Modules use the parts of WebAssembly 3.0
//! the engine implements (tail calls, several memories, 64-bit memories) and SIMD, relaxed SIMD
//! included (`smith::config_3`).

use crate::exec::{compare, engine, load_own_artifact, run_ours, Trace};
use engine::artifact::Artifact;
use engine::{BoundsStrategy, Module};

/// The fresh and round-tripped traces of `wasm` with bounds strategy `bounds`.
fn traces(wasm: &[u8], bounds: BoundsStrategy, seed: u64) -> [Trace; 2] {
    let engine = engine(Some(bounds));
    let (_, artifact) = Module::compile(engine, wasm).expect("a wasm-smith module compiles");
    let bytes = artifact.to_bytes();
    assert!(Artifact::from_bytes(&bytes).as_ref() == Ok(&artifact), "artifact round trip changed it");
    let fresh = Module::new(engine, wasm).expect("a wasm-smith module compiles");
    let loaded = load_own_artifact(engine, wasm, &bytes).expect("its own artifact loads");
    [run_ours(&fresh, seed), run_ours(&loaded, seed)]
}

/// The target.
pub fn target(data: &[u8]) {
    let Some(wasm) = crate::smith::module_with(crate::smith::config_3(), data) else { return };
    let seed = crate::runner::hash(&wasm);
    let [guard, guard_loaded] = traces(&wasm, BoundsStrategy::GuardPages, seed);
    let [explicit, explicit_loaded] = traces(&wasm, BoundsStrategy::Explicit, seed);
    for (what, other) in [
        ("guard pages loaded from the artifact", &guard_loaded),
        ("explicit checks", &explicit),
        ("explicit checks loaded from the artifact", &explicit_loaded),
    ] {
        if let Err(diff) = compare(&guard, other, true) {
            panic!("guard pages fresh vs {what}: {diff}");
        }
    }
}

/// Inputs for the bounded test: random wasm-smith choices, or mutated corpus entries.
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if !corpus.is_empty() && rng.below(3) == 0 {
        return crate::runner::mutate_or_random(rng, corpus, 0);
    }
    let len = 256 + rng.below(8192);
    rng.bytes(len)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_internal_differential() {
        crate::runner::run(&crate::runner::Campaign {
            name: "internal_differential",
            target: super::target,
            generate: super::generate,
            seconds: 12.0,
        });
    }
}
