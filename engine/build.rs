//! Hashes the engine's sources (and the workspace's lock file, which pins Cranelift) into
//! `ENGINE_SOURCE_HASH`, part of the engine's identity: cached code made by another build of
//! the engine is never loaded by this one.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut inputs = Vec::new();
    files(&root.join("src"), &mut inputs);
    inputs.sort();
    inputs.push(root.join("../Cargo.lock"));
    let mut hasher = DefaultHasher::new();
    for path in &inputs {
        path.strip_prefix(&root).unwrap_or(path).hash(&mut hasher);
        std::fs::read(path).unwrap_or_default().hash(&mut hasher);
    }
    println!("cargo:rustc-env=ENGINE_SOURCE_HASH={:016x}", hasher.finish());
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=../Cargo.lock");
}
