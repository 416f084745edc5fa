//! `policy`: arbitrary text through `Policy::parse` must never panic, every error's
//! `Display` must be exactly one line, and a policy that parses must parse again from its
//! own `to_yaml`.

use std::path::Path;

/// The target.
pub fn target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match policy::Policy::parse(&text, Path::new("/base"), "fuzz.yaml") {
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty(), "empty policy error");
            assert!(!message.contains(['\n', '\r']), "policy error of more than one line: {message:?}");
        }
        Ok(policy) => {
            let yaml = policy.to_yaml();
            if let Err(e) = policy::Policy::parse(&yaml, Path::new("/base"), "again.yaml") {
                panic!("a parsed policy's own YAML does not parse: {e}\n{yaml}");
            }
        }
    }
}

/// Inputs for the bounded test: mutated corpus policies, and policies spliced from lines of
/// the corpus with random edits.
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if !corpus.is_empty() && rng.below(2) == 0 {
        let lines: Vec<&[u8]> = corpus.iter().flat_map(|c| c.split(|b| *b == b'\n')).collect();
        let mut out = Vec::new();
        for _ in 0..1 + rng.below(12) {
            out.extend_from_slice(lines[rng.below(lines.len())]);
            out.push(b'\n');
        }
        if rng.below(2) == 0 {
            return crate::runner::mutate(rng, &out, &[]);
        }
        return out;
    }
    crate::runner::mutate_or_random(rng, corpus, 256)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_policy() {
        crate::runner::run(&crate::runner::Campaign {
            name: "policy",
            target: super::target,
            generate: super::generate,
            seconds: 4.0,
        });
    }
}
