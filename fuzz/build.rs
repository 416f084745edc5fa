//! Declares `cfg(fuzzing)`, which `cargo fuzz` sets, so the check-cfg lint knows it.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
