//! Links the `sandboxrun` binary with the warm path's functions first and together
//! (`runner/link-order.txt`, written by `bench/link_order.sh`): the kernel maps code 64 KiB
//! around each page fault, so packing the code a warm run touches keeps both processes' peak
//! RSS, and their page faults, down. Only for the target whose default linker (rust-lld)
//! takes an ordering file; a symbol the file names that a build lacks is skipped silently.

fn main() {
    let order = "runner/link-order.txt";
    println!("cargo::rerun-if-changed={order}");
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu") {
        let path = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join(order);
        println!("cargo::rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", path.display());
        println!("cargo::rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
        // Relative relocations as a bitmap (DT_RELR; glibc 2.36+ applies them, here the static
        // glibc linked in): 16,700 of them took 400 KiB read page by page at every start.
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
