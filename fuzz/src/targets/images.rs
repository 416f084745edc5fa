//! `images`: a memory image must give exactly the memory that applying the data segments
//! gives (issue #16). The input describes a memory size and up to eight active segments (their
//! offsets aimed at page edges, the memory's end and past it); the same module is built twice —
//! with constant offsets (imaged at compile time when every segment fits) and with the offsets
//! in imported globals (which keeps the segment path) — and instantiated from the compiled
//! module, from the artifact's bytes, and mapped from a file. Every way must give the same
//! memory, or the same instantiation error.

use engine::{Config, Engine, Extern, GlobalType, ImageSource, Instance, Module, Store, Val, ValType};
use std::io::Write;
use std::os::fd::OwnedFd;

const PAGE: u32 = 65536;

/// A memory of `pages` pages and `(offset, bytes)` segments.
struct Layout {
    pages: u32,
    segments: Vec<(i32, Vec<u8>)>,
}

/// Reads a layout from the input (missing bytes read as zero).
fn layout(data: &[u8]) -> Layout {
    let mut at = 0;
    let mut byte = || {
        let b = data.get(at).copied().unwrap_or(0);
        at += 1;
        b
    };
    let pages = 1 + u32::from(byte() % 3);
    let count = byte() % 9;
    let mut segments = Vec::new();
    for _ in 0..count {
        let raw = u32::from_le_bytes([byte(), byte(), byte(), byte()]);
        let size = pages * PAGE;
        let jitter = i64::from(raw >> 24) - 128;
        let offset = match raw % 4 {
            0 => i64::from(raw / 4 % size),
            1 => i64::from(raw / 4 % (pages * 16)) * 4096 + jitter,
            2 => i64::from(size) - i64::from(raw / 4 % 300),
            _ => i64::from(raw as i32),
        };
        let len = usize::from(byte()) * (1 + usize::from(byte() % 4));
        let zeros = byte() % 5 == 0;
        let bytes = (0..len).map(|_| if zeros { 0 } else { byte() }).collect();
        segments.push((offset as i32, bytes));
    }
    Layout { pages, segments }
}

/// The module: `layout`'s memory and segments, offsets constant or imported.
fn module_text(layout: &Layout, imported_offsets: bool) -> String {
    let mut wat = String::from("(module\n");
    if imported_offsets {
        for i in 0..layout.segments.len() {
            wat += &format!("  (import \"o\" \"{i}\" (global $o{i} i32))\n");
        }
    }
    wat += &format!("  (memory (export \"mem\") {})\n", layout.pages);
    for (i, (offset, bytes)) in layout.segments.iter().enumerate() {
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        let offset = if imported_offsets { format!("(global.get $o{i})") } else { format!("(i32.const {offset})") };
        wat += &format!("  (data {offset} \"{escaped}\")\n");
    }
    wat + ")"
}

/// An unlinked temporary file holding a page of junk, then `bytes`.
fn file_with(bytes: &[u8]) -> OwnedFd {
    let path = std::env::temp_dir().join(format!("sandboxrun-fuzz-images-{}", std::process::id()));
    let mut file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("temporary file");
    let _ = std::fs::remove_file(&path);
    file.write_all(&[0xee; 4096]).expect("write");
    file.write_all(bytes).expect("write");
    file.into()
}

/// The memory after instantiating `module` (with `imports`), or the error's text.
fn memory(engine: &Engine, module: &Module, offsets: Option<&Layout>) -> Result<Vec<u8>, String> {
    let mut store = Store::new(engine);
    let imports: Vec<Extern> = match offsets {
        Some(layout) => layout
            .segments
            .iter()
            .map(|(o, _)| {
                let ty = GlobalType { ty: ValType::I32, mutable: false };
                Extern::Global(store.new_global(ty, Val::I32(*o)).expect("global"))
            })
            .collect(),
        None => Vec::new(),
    };
    let instance: Instance = store.instantiate(module, &imports).map_err(|e| e.to_string())?;
    match store.get_export(instance, "mem") {
        Some(Extern::Memory(m)) => Ok(store.memory_data(m).to_vec()),
        _ => panic!("no memory export"),
    }
}

/// The target.
pub fn target(data: &[u8]) {
    let layout = layout(data);
    let engine = Engine::new(Config::default()).expect("engine");
    let segments_wasm = wat::parse_str(module_text(&layout, true)).expect("segments module");
    let reference = memory(&engine, &Module::new(&engine, &segments_wasm).expect("compiles"), Some(&layout));

    let wasm = wat::parse_str(module_text(&layout, false)).expect("constant module");
    let (_, artifact) = Module::compile(&engine, &wasm).expect("compiles");
    let fits = layout.segments.iter().all(|(o, b)| {
        let start = u64::from(*o as u32);
        start + b.len() as u64 <= u64::from(layout.pages * PAGE)
    });
    assert_eq!(artifact.image().is_some(), fits, "imaged exactly when every segment fits");
    let bytes = artifact.to_bytes();
    // SAFETY: compiled just above by this engine.
    let from_bytes = unsafe { Module::from_artifact_bytes(&engine, &bytes) }.expect("loads");
    let source = ImageSource { fd: file_with(&bytes), offset: 4096 };
    // SAFETY: compiled just above by this engine; the memfd holds exactly these bytes at that
    // offset and nothing writes it.
    let mapped = unsafe { Module::from_artifact_mapped(&engine, &bytes, source) }.expect("loads");
    for (way, module) in
        [("compiled", Module::new(&engine, &wasm).expect("compiles")), ("bytes", from_bytes), ("mapped", mapped)]
    {
        let got = memory(&engine, &module, None);
        match (&reference, &got) {
            (Ok(want), Ok(got)) => assert!(want == got, "{way}: the image's memory differs from the segments'"),
            (Err(want), Err(got)) => assert_eq!(want, got, "{way}"),
            _ => panic!("{way}: {:?} against {:?}", reference.as_ref().err(), got.as_ref().err()),
        }
    }
}

/// Inputs for the bounded test: mutated corpus layouts and random ones.
pub fn generate(rng: &mut crate::runner::Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    crate::runner::mutate_or_random(rng, corpus, 512)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_images() {
        crate::runner::run(&crate::runner::Campaign {
            name: "images",
            target: super::target,
            generate: super::generate,
            seconds: 4.0,
        });
    }
}
