//! `artifact`: bytes as a compiled artifact. `Artifact::from_bytes` must never panic, must
//! give back exactly the bytes it parsed through `to_bytes`, and what it accepts must load
//! (against a few real modules, with the engine's identity patched in so loading gets past
//! that check) or be refused, without panicking. Nothing loaded is ever run.
//!
//! The input is used twice: as artifact bytes as they are, and as a list of edits to the
//! artifact of one of the base modules (the first byte picks it), so the mutations land in
//! real code, relocations and trap tables.

use crate::exec::{engine, load_corrupt_artifact_never_run};
use engine::artifact::Artifact;
use engine::Module;
use std::sync::OnceLock;

/// Modules whose artifacts have calls between functions (relocations), traps, memories,
/// tables and indirect calls.
const BASES: &[&str] = &[
    r#"(module
        (memory 1)
        (func $f (param i32) (result i32) (i32.load (local.get 0)))
        (func (export "g") (param i32 i32) (result i32)
          (i32.div_s (call $f (local.get 0)) (local.get 1)))
        (func (export "h") (param f64) (result f64) (f64.nearest (f64.floor (local.get 0)))))"#,
    r#"(module
        (type $t (func (result i32)))
        (table 2 funcref) (elem (i32.const 0) $a $b)
        (global $g (mut i32) (i32.const 7))
        (func $a (result i32) (global.get $g))
        (func $b (result i32) (unreachable))
        (func (export "c") (param i32) (result i32) (call_indirect (type $t) (local.get 0)))
        (func (export "grow") (result i32) (memory.grow (i32.const 1)))
        (memory 0 3))"#,
    r#"(module (func (export "loop") (param i32) (result i32)
        (loop $l (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))) (local.get 0)))"#,
];

/// The base modules' binaries and artifact bytes, compiled once.
fn bases() -> &'static [(Vec<u8>, Vec<u8>)] {
    static BASES_COMPILED: OnceLock<Vec<(Vec<u8>, Vec<u8>)>> = OnceLock::new();
    BASES_COMPILED.get_or_init(|| {
        BASES
            .iter()
            .map(|wat| {
                let wasm = engine::module_info::wat_to_binary(wat.as_bytes()).expect("valid text").into_owned();
                let (_, artifact) = Module::compile(engine(None), &wasm).expect("base module compiles");
                (wasm, artifact.to_bytes())
            })
            .collect()
    })
}

/// `bytes` with its identity replaced by `identity`, if it is long enough to have one.
fn with_identity(bytes: &[u8], identity: &str) -> Option<Vec<u8>> {
    let len = u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?) as usize;
    let rest = bytes.get(16usize.checked_add(len)?..)?;
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(identity.len() as u32).to_le_bytes());
    out.extend_from_slice(identity.as_bytes());
    out.extend_from_slice(rest);
    Some(out)
}

/// Applies edits: each 4 bytes of `edits` are (operation, position as two bytes, value).
fn edit(base: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    for e in edits.chunks_exact(4) {
        if out.is_empty() {
            break;
        }
        let at = usize::from(u16::from_le_bytes([e[1], e[2]])) % out.len();
        match e[0] % 5 {
            0 => out[at] = e[3],
            1 => out[at] ^= e[3],
            2 => out.insert(at, e[3]),
            3 => drop(out.remove(at)),
            _ => out.truncate(at),
        }
    }
    out
}

/// Parses `bytes`; if they are an artifact, checks the round trip and loads them.
fn check(bytes: &[u8]) {
    let Ok(artifact) = Artifact::from_bytes(bytes) else { return };
    let again = artifact.to_bytes();
    if again != bytes {
        if let Some(path) = std::env::var_os("FUZZ_DUMP_ARTIFACT") {
            let _ = std::fs::write(path, bytes);
        }
        let at = again.iter().zip(bytes).position(|(x, y)| x != y).unwrap_or(again.len().min(bytes.len()));
        let window = |b: &[u8]| b[at.saturating_sub(8)..(at + 8).min(b.len())].to_vec();
        panic!(
            "from_bytes then to_bytes changed the bytes: {} → {} bytes, first difference at {at}: {:?} → {:?}",
            bytes.len(),
            again.len(),
            window(bytes),
            window(&again)
        );
    }
    let engine = engine(None);
    let patched = with_identity(bytes, engine.identity()).expect("an artifact has an identity");
    for (wasm, _) in bases() {
        let _ = load_corrupt_artifact_never_run(engine, wasm, &patched);
    }
}

/// The target.
pub fn target(data: &[u8]) {
    check(data);
    if let Some((pick, edits)) = data.split_first() {
        let (_, base) = &bases()[usize::from(*pick) % bases().len()];
        check(&edit(base, edits));
    }
}

/// Inputs for the bounded test: mostly edit lists (the raw use of the same bytes rarely
/// parses), sometimes mutated corpus artifacts.
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(4) == 0 {
        return crate::runner::mutate_or_random(rng, corpus, 64);
    }
    let n = 1 + rng.below(4);
    let mut out = vec![rng.next_u64() as u8];
    for _ in 0..n {
        out.extend_from_slice(&rng.bytes(4));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_artifacts_load_and_patching_keeps_them_valid() {
        for (wasm, bytes) in bases() {
            let patched = with_identity(bytes, engine(None).identity()).unwrap();
            assert_eq!(&patched, bytes);
            load_corrupt_artifact_never_run(engine(None), wasm, bytes).expect("an intact artifact loads");
        }
    }

    #[test]
    fn fuzz_artifact() {
        crate::runner::run(&crate::runner::Campaign {
            name: "artifact",
            target: super::target,
            generate: super::generate,
            seconds: 6.0,
        });
    }
}
