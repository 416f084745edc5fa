//! The module's SHA-256, for the report (`module_sha256`) and beside a stored artifact: known
//! from the cache on a hit (stored with the artifact), otherwise computed on a thread while
//! the run goes (off its critical path), and read by whoever needs it first.

use crate::plan::module_file::ModuleFile;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

/// The module's SHA-256 (hex), known or being computed; cheap to clone.
#[derive(Clone)]
pub(super) struct ModuleSha(Arc<Shared>);

struct Shared {
    value: OnceLock<String>,
    thread: Mutex<Option<JoinHandle<String>>>,
}

impl ModuleSha {
    /// `known` if the cache had it, else computed from `module` on a thread (or here, if no
    /// thread can start). Call only once no more processes are forked (a thread is running).
    pub(super) fn start(known: Option<String>, module: ModuleFile) -> ModuleSha {
        let shared = Shared { value: OnceLock::new(), thread: Mutex::new(None) };
        match known {
            Some(sha) => {
                let _ = shared.value.set(sha);
            }
            None => {
                let module = Arc::new(module);
                let theirs = Arc::clone(&module);
                let spawned =
                    std::thread::Builder::new().name("module-sha256".into()).spawn(move || theirs.sha256_hex());
                match spawned {
                    Ok(thread) => *shared.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread),
                    Err(_) => {
                        let _ = shared.value.set(module.sha256_hex());
                    }
                }
            }
        }
        ModuleSha(Arc::new(shared))
    }

    /// The hash, waiting for its thread if it is still at work (empty if it failed).
    pub(super) fn get(&self) -> String {
        self.0
            .value
            .get_or_init(|| {
                let thread = self.0.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
                thread.and_then(|t| t.join().ok()).unwrap_or_default()
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_hash_is_used_and_an_unknown_one_computed_once_for_every_reader() {
        let module = ModuleFile::from_bytes(b"abc").unwrap();
        assert_eq!(ModuleSha::start(Some("known".into()), module).get(), "known");
        let module = ModuleFile::from_bytes(b"abc").unwrap();
        let sha = ModuleSha::start(None, module);
        let other = sha.clone();
        let reader = std::thread::spawn(move || other.get());
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha.get(), abc);
        assert_eq!(reader.join().unwrap(), abc);
    }
}
