//! Memory images: a module whose active data segments all have constant offsets inside its
//! defined memory gets an image at compile time; instantiating from it (copied, or mapped
//! copy-on-write from a file) must give byte-identical memory to applying the segments, and
//! segments that trap must trap as before. Plus the timings of issue 16 (ignored tests).

use engine::*;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Instant;

fn engine(bounds: BoundsStrategy) -> Engine {
    Engine::new(Config { bounds: Some(bounds), ..Config::default() }).expect("engine")
}

/// A module with a 4-page memory (at most 8), `poke`, `grow`, a passive segment and
/// `init_passive`, and `segments`: `(offset, bytes)`. With `imported_offsets`, each offset is
/// an imported global instead of an `i32.const` (which keeps the segment path).
fn module_text(segments: &[(i64, Vec<u8>)], imported_offsets: bool) -> String {
    let mut wat = String::from("(module\n");
    if imported_offsets {
        for i in 0..segments.len() {
            wat += &format!("  (import \"o\" \"{i}\" (global $o{i} i32))\n");
        }
    }
    wat += r#"  (memory (export "mem") 4 8)
  (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "init_passive") (param i32) (memory.init $p (local.get 0) (i32.const 0) (i32.const 5)))
  (data $p "hello")
"#;
    for (i, (offset, bytes)) in segments.iter().enumerate() {
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        let offset = if imported_offsets { format!("(global.get $o{i})") } else { format!("(i32.const {offset})") };
        wat += &format!("  (data {offset} \"{escaped}\")\n");
    }
    wat + ")"
}

/// A memfd holding `junk` bytes then `bytes`.
fn memfd(junk: usize, bytes: &[u8]) -> OwnedFd {
    // SAFETY: memfd_create takes a NUL-terminated name and flags.
    let fd = unsafe { libc::memfd_create(c"artifact".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: a fresh descriptor nothing else owns.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    file.write_all(&vec![0xee; junk]).unwrap();
    file.write_all(bytes).unwrap();
    file.into()
}

#[derive(Clone, Copy, Debug)]
enum Path {
    Segments,
    Image,
    ImageFromArtifactBytes,
    Mapped,
}

/// Instantiates the layout by `path`: its memory, or the instantiation error.
fn memory_after(engine: &Engine, segments: &[(i64, Vec<u8>)], path: Path) -> Result<(Store, Instance), String> {
    let wasm = wat::parse_str(module_text(segments, matches!(path, Path::Segments))).unwrap();
    let (_, artifact) = Module::compile(engine, &wasm).unwrap();
    let bytes = artifact.to_bytes();
    let module = match path {
        Path::Segments => {
            assert!(artifact.image().is_none());
            Module::new(engine, &wasm).unwrap()
        }
        Path::Image => Module::new(engine, &wasm).unwrap(),
        // SAFETY: compiled just above by this engine.
        Path::ImageFromArtifactBytes => unsafe { Module::from_artifact_bytes(engine, &bytes) }.unwrap(),
        Path::Mapped => {
            let source = ImageSource { fd: memfd(8192, &bytes), offset: 8192 };
            // SAFETY: compiled just above by this engine; the memfd holds exactly these bytes
            // at that offset and nobody writes it.
            unsafe { Module::from_artifact_mapped(engine, &bytes, source) }.unwrap()
        }
    };
    let mut store = Store::new(engine);
    let imports: Vec<Extern> = match path {
        Path::Segments => segments
            .iter()
            .map(|(o, _)| {
                let ty = GlobalType { ty: ValType::I32, mutable: false };
                Extern::Global(store.new_global(ty, Val::I32(*o as i32)).unwrap())
            })
            .collect(),
        _ => vec![],
    };
    let instance = store.instantiate(&module, &imports).map_err(|e| e.to_string())?;
    Ok((store, instance))
}

fn mem(store: &Store, i: Instance) -> Memory {
    match store.get_export(i, "mem") {
        Some(Extern::Memory(m)) => m,
        _ => panic!("no memory export"),
    }
}

const PAGE: i64 = 65536;

/// A named layout of `(offset, bytes)` segments, and whether it can be imaged.
type Layout = (&'static str, Vec<(i64, Vec<u8>)>, bool);

fn layouts() -> Vec<Layout> {
    let dense: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8 + 1).collect();
    vec![
        ("sparse", vec![(10, b"a".to_vec()), (70_000, b"bc".to_vec()), (200_000, vec![0xff])], true),
        ("dense", vec![(1000, dense)], true),
        (
            "overlapping",
            vec![
                (100, b"aaaaaaaa".to_vec()),
                (104, b"bb".to_vec()),
                (4090, b"xxxxxxxxxxxx".to_vec()),
                (4095, vec![0, 0]),
                (8192, vec![1]),
                (8192, vec![0]), // a page written back to zero
            ],
            true,
        ),
        ("zero-length", vec![(5, vec![]), (4 * PAGE, vec![]), (3, b"z".to_vec())], true),
        ("all zero", vec![(64, vec![0; 5000])], true),
        ("end of memory", vec![(4 * PAGE - 4, b"wxyz".to_vec())], true),
        ("past the end", vec![(0, b"first".to_vec()), (4 * PAGE - 3, b"wxyz".to_vec())], false),
        ("empty past the end", vec![(4 * PAGE + 1, vec![])], false),
        ("negative offset", vec![(-1, b"a".to_vec())], false),
    ]
}

fn images_match_segments(bounds: BoundsStrategy) {
    let engine = engine(bounds);
    for (name, segments, imageable) in layouts() {
        let wasm = wat::parse_str(module_text(&segments, false)).unwrap();
        let (_, artifact) = Module::compile(&engine, &wasm).unwrap();
        assert_eq!(artifact.image().is_some(), imageable, "{name}");
        let reference = memory_after(&engine, &segments, Path::Segments);
        for path in [Path::Image, Path::ImageFromArtifactBytes, Path::Mapped] {
            let got = memory_after(&engine, &segments, path);
            match (&reference, got) {
                (Ok((rs, ri)), Ok((mut s, i))) => {
                    let m = mem(&s, i);
                    assert!(s.memory_data(m) == rs.memory_data(mem(rs, *ri)), "{name} {path:?}: memory differs");
                    // Writes stay the instance's; growth and passive segments still work.
                    let f = s.get_func(i, "poke").unwrap();
                    s.call(f, &[Val::I32(11), Val::I32(0x5a)]).unwrap();
                    assert_eq!(s.memory_data(m)[11], 0x5a);
                    let grow = s.get_func(i, "grow").unwrap();
                    assert_eq!(s.call(grow, &[Val::I32(1)]).unwrap(), vec![Val::I32(4)], "{name} {path:?}");
                    assert!(s.memory_data(m)[4 * PAGE as usize..].iter().all(|b| *b == 0));
                    let init = s.get_func(i, "init_passive").unwrap();
                    s.call(init, &[Val::I32(300)]).unwrap();
                    assert_eq!(&s.memory_data(m)[300..305], b"hello");
                    // A second instance of the same module starts from the image again.
                    if let Ok((s2, i2)) = memory_after(&engine, &segments, path) {
                        assert!(s2.memory_data(mem(&s2, i2)) == rs.memory_data(mem(rs, *ri)), "{name} {path:?}");
                    }
                }
                (Err(want), Err(got)) => assert_eq!(want, &got, "{name} {path:?}"),
                (want, got) => panic!("{name} {path:?}: {:?} vs {:?}", want.as_ref().err(), got.err()),
            }
        }
        if !imageable {
            let Err(err) = reference else { panic!("{name} traps") };
            assert!(err.contains("out of bounds memory access"), "{name}: {err}");
        }
    }
}

#[test]
fn images_match_segments_with_guard_pages() {
    images_match_segments(BoundsStrategy::GuardPages);
}

#[test]
fn images_match_segments_with_explicit_checks() {
    images_match_segments(BoundsStrategy::Explicit);
}

#[test]
fn unaligned_or_short_sources_fall_back_to_copying() {
    let engine = engine(BoundsStrategy::GuardPages);
    let segments = vec![(70_000i64, b"bc".to_vec())];
    let wasm = wat::parse_str(module_text(&segments, false)).unwrap();
    let (_, artifact) = Module::compile(&engine, &wasm).unwrap();
    let bytes = artifact.to_bytes();
    let sources = [
        ImageSource { fd: memfd(100, &bytes), offset: 100 },
        ImageSource { fd: memfd(0, &bytes[..bytes.len() - 1]), offset: 0 },
    ];
    for source in sources {
        // SAFETY: compiled just above by this engine; the sources are refused by their checks
        // (alignment, length) before anything is mapped from them.
        let module = unsafe { Module::from_artifact_mapped(&engine, &bytes, source) }.unwrap();
        let mut store = Store::new(&engine);
        let i = store.instantiate(&module, &[]).unwrap();
        assert_eq!(&store.memory_data(mem(&store, i))[70_000..70_002], b"bc");
    }
    // The binary's length must be the artifact's.
    // SAFETY: the same artifact, refused before mapping.
    let err = unsafe { Module::from_artifact(&engine, &wasm[..wasm.len() - 1], &bytes) }.err().unwrap();
    assert!(err.to_string().contains("module length"), "{err}");
}

/// A module with a `size`-byte data segment of non-zero bytes at 1024 (an `i32.const`, or an
/// imported global) in a memory just large enough, and `funcs` small functions.
fn big_module(size: usize, funcs: usize, imported_offset: bool) -> Vec<u8> {
    let pages = (size + 1024).div_ceil(PAGE as usize);
    let import = if imported_offset { "(import \"o\" \"0\" (global $o i32))" } else { "" };
    let mut wat = format!("(module {import} (memory (export \"mem\") {pages})\n");
    for f in 0..funcs {
        wat += &format!(
            "(func (export \"f{f}\") (param i32) (result i32) (i32.add (i32.mul (local.get 0) (i32.const {f})) (i32.load (i32.const {})))) \n",
            f * 4
        );
    }
    let escaped: String = (0..size).map(|i| format!("\\{:02x}", (i % 255) as u8 + 1)).collect();
    let offset = if imported_offset { "(global.get $o)" } else { "(i32.const 1024)" };
    wat += &format!("(data {offset} \"{escaped}\"))");
    wat::parse_str(wat).unwrap()
}

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> f64 {
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(f());
    }
    t.elapsed().as_secs_f64() * 1000.0 / f64::from(runs)
}

/// `cargo test -p engine --release --test images -- --ignored --nocapture`
#[test]
#[ignore = "timing, run by hand"]
fn measure_instantiation_and_loading() {
    let engine = engine(BoundsStrategy::GuardPages);
    // Instantiation with a 16 MiB data segment.
    let wasm = big_module(16 << 20, 1, false);
    let (_, artifact) = Module::compile(&engine, &wasm).unwrap();
    let bytes = artifact.to_bytes();
    println!("16 MiB module: {} bytes, artifact {} bytes", wasm.len(), bytes.len());
    // SAFETY: compiled just above by this engine.
    let copied = unsafe { Module::from_artifact_bytes(&engine, &bytes) }.unwrap();
    let source = ImageSource { fd: memfd(0, &bytes), offset: 0 };
    // SAFETY: as above; the memfd holds exactly these bytes and nobody writes it.
    let mapped = unsafe { Module::from_artifact_mapped(&engine, &bytes, source) }.unwrap();
    // The segment path: the same data at an imported offset.
    let segments = Module::new(&engine, &big_module(16 << 20, 1, true)).unwrap();
    for (name, module) in [("segments (copy)", &segments), ("image, copied", &copied), ("image, mapped", &mapped)] {
        let ms = time(20, || {
            let mut store = Store::new(&engine);
            let ty = GlobalType { ty: ValType::I32, mutable: false };
            let imports = if module.imports().is_empty() {
                vec![]
            } else {
                vec![Extern::Global(store.new_global(ty, Val::I32(1024)).unwrap())]
            };
            let i = store.instantiate(module, &imports).unwrap();
            let m = mem(&store, i);
            assert_eq!(store.memory_data(m)[1024], 1);
            store
        });
        println!("instantiate, {name}: {ms:.3} ms");
    }
    // Loading a ~2 MB module: with its binary (length check) vs from the artifact alone, vs
    // what the old path did (parse the binary).
    let wasm = big_module(1 << 20, 8000, false);
    let (_, artifact) = Module::compile(&engine, &wasm).unwrap();
    let bytes = artifact.to_bytes();
    println!("2 MB module: {} bytes, artifact {} bytes", wasm.len(), bytes.len());
    // SAFETY: compiled just above by this engine, from `wasm`.
    let ms = time(20, || unsafe { Module::from_artifact(&engine, &wasm, &bytes) }.unwrap());
    println!("from_artifact: {ms:.3} ms");
    // SAFETY: as above.
    let ms = time(20, || unsafe { Module::from_artifact_bytes(&engine, &bytes) }.unwrap());
    println!("from_artifact_bytes: {ms:.3} ms");
    let ms = time(20, || engine::module_info::parse(&wasm).unwrap());
    println!("module_info::parse (what from_artifact did before): {ms:.3} ms");
    let ms = time(5, || engine::module_info::validate(&wasm).unwrap());
    println!("module_info::validate (a miss): {ms:.3} ms");
}
