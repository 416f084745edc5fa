//! Typed function references at the boundaries where a wrong type would be a hole: `call_ref`
//! checks nothing but null, so a reference of type `(ref $t)` must always be a function of
//! type `$t`. These tests try to smuggle a function of another type in through every door: a
//! function import, a global import (immutable, mutable), a table import, a tag, a host
//! function's result, the host's arguments, a host-made global, table and tag (and types the
//! engine never gave), and a cached artifact; they check that the same type declared by two
//! modules is one type (typed globals, tables and tags shared with shifted type indices),
//! that a module's own description (`Module::imports`) is in the store's canonical types, and
//! that a non-nullable table with an initialiser lives beside a lazily filled one. (Several
//! come from the adversarial review of this change.)

mod common;

use common::{call, trap_kind};
use engine::*;

fn engine() -> Engine {
    Engine::new(Config::default()).expect("engine")
}

fn module(engine: &Engine, wat: &str) -> Module {
    Module::new(engine, wat.as_bytes()).expect("module compiles")
}

/// Exports functions of two types of the same shape but different results, a function that
/// calls its typed argument, and typed globals and a typed table.
const PROVIDER: &str = r#"
(module
  (type $ri32 (func (result i32)))
  (type $ri64 (func (result i64)))
  (func $seven (type $ri32) (i32.const 7))
  (func $big (type $ri64) (i64.const 0x1_0000_0000))
  (elem declare func $seven $big)
  (func (export "seven") (type $ri32) (i32.const 7))
  (func (export "big") (type $ri64) (i64.const 0x1_0000_0000))
  ;; Calls its argument as a function returning i32: no signature check at run time.
  (func (export "run") (param (ref $ri32)) (result i32) (call_ref $ri32 (local.get 0)))
  (global (export "g_seven") (ref $ri32) (ref.func $seven))
  (global (export "g_mut") (mut (ref null $ri32)) (ref.null $ri32))
  (table (export "t") 2 (ref null $ri32))
  (func (export "from_table") (param i32) (result i32)
    (call_ref $ri32 (ref.as_non_null (table.get 0 (local.get 0)))))
)
"#;

fn provider(store: &mut Store, engine: &Engine) -> Instance {
    store.instantiate(&module(engine, PROVIDER), &[]).expect("provider instantiates")
}

fn export(store: &Store, instance: Instance, name: &str) -> Extern {
    store.get_export(instance, name).unwrap_or_else(|| panic!("export {name}"))
}

fn refused(r: Result<Instance, InstantiateError>) -> String {
    match r {
        Err(e @ InstantiateError::ImportType { .. }) => e.to_string(),
        Err(other) => panic!("expected an import type error, got {other}"),
        Ok(_) => panic!("a mistyped import was accepted"),
    }
}

#[test]
fn a_function_import_declared_with_another_typed_parameter_is_refused() {
    let engine = engine();
    let mut store = Store::new(&engine);
    let p = provider(&mut store, &engine);
    // The attacker declares `run` as taking a function returning i64, and passes `big`: were it
    // linked, `run` would call `big` as returning i32.
    let attacker = module(
        &engine,
        r#"(module
          (type $ri64 (func (result i64)))
          (import "p" "run" (func $run (param (ref $ri64)) (result i32)))
          (import "p" "big" (func $big (type $ri64)))
          (elem declare func $big)
          (func (export "go") (result i32) (call $run (ref.func $big))))"#,
    );
    let imports = [export(&store, p, "run"), export(&store, p, "big")];
    let message = refused(store.instantiate(&attacker, &imports));
    assert!(message.contains("p.run"), "{message}");
    // The same type spelt out by another module is the same type: it links and runs.
    let friend = module(
        &engine,
        r#"(module
          (type $f (func (result i32)))
          (import "p" "run" (func $run (param (ref $f)) (result i32)))
          (func $mine (type $f) (i32.const 41))
          (elem declare func $mine)
          (func (export "go") (result i32) (i32.add (call $run (ref.func $mine)) (i32.const 1))))"#,
    );
    let friend = store.instantiate(&friend, &[export(&store, p, "run")]).expect("same type links");
    assert_eq!(call(&mut store, friend, "go", &[]).unwrap(), [Val::I32(42)]);
}

#[test]
fn a_function_of_another_type_is_refused_where_a_typed_function_is_imported() {
    let engine = engine();
    let mut store = Store::new(&engine);
    let p = provider(&mut store, &engine);
    let wants = module(&engine, r#"(module (type $ri32 (func (result i32))) (import "p" "f" (func (type $ri32))))"#);
    refused(store.instantiate(&wants, &[export(&store, p, "big")]));
    store.instantiate(&wants, &[export(&store, p, "seven")]).expect("the right type links");
}

#[test]
fn global_imports_follow_subtyping_immutable_and_exact_types_mutable() {
    let engine = engine();
    let mut store = Store::new(&engine);
    let p = provider(&mut store, &engine);
    let g_seven = export(&store, p, "g_seven");
    let g_mut = export(&store, p, "g_mut");
    let import = |ty: &str| {
        module(
            &engine,
            &format!(
                r#"(module (type $ri32 (func (result i32))) (type $ri64 (func (result i64))) (import "p" "g" (global {ty})))"#
            ),
        )
    };
    // Immutable: a subtype is fine, another concrete type is not.
    for ok in ["(ref $ri32)", "(ref null $ri32)", "(ref func)", "funcref"] {
        store.instantiate(&import(ok), &[g_seven]).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["(ref $ri64)", "(ref null $ri64)", "(ref extern)", "externref"] {
        refused(store.instantiate(&import(bad), &[g_seven]));
    }
    // Mutable: exactly the type, or a store through one module breaks the other's type.
    store.instantiate(&import("(mut (ref null $ri32))"), &[g_mut]).expect("same type");
    for bad in ["(mut funcref)", "(mut (ref null $ri64))", "(mut (ref $ri32))", "(ref null $ri32)"] {
        refused(store.instantiate(&import(bad), &[g_mut]));
    }
}

#[test]
fn a_typed_table_is_imported_only_with_its_exact_element_type() {
    let engine = engine();
    let mut store = Store::new(&engine);
    let p = provider(&mut store, &engine);
    let t = export(&store, p, "t");
    // Were `funcref` accepted, the importer could store `big` where `from_table` calls `$ri32`.
    let attacker = module(
        &engine,
        r#"(module
          (import "p" "t" (table 2 funcref))
          (func $big (result i64) (i64.const 1))
          (elem declare func $big)
          (func (export "plant") (table.set 0 (i32.const 0) (ref.func $big))))"#,
    );
    refused(store.instantiate(&attacker, &[t]));
    let friend = module(
        &engine,
        r#"(module
          (type $f (func (result i32)))
          (import "p" "t" (table 2 (ref null $f)))
          (func $nine (type $f) (i32.const 9))
          (elem declare func $nine)
          (func (export "plant") (table.set 0 (i32.const 1) (ref.func $nine))))"#,
    );
    let friend = store.instantiate(&friend, &[t]).expect("same element type");
    call(&mut store, friend, "plant", &[]).unwrap();
    assert_eq!(call(&mut store, p, "from_table", &[Val::I32(1)]).unwrap(), [Val::I32(9)]);
    assert_eq!(trap_kind(call(&mut store, p, "from_table", &[Val::I32(0)])), TrapKind::NullReference);
}

#[test]
fn the_host_cannot_pass_null_or_a_function_of_another_type_as_a_typed_reference() {
    let engine = engine();
    let mut store = Store::new(&engine);
    let p = provider(&mut store, &engine);
    let Extern::Func(seven) = export(&store, p, "seven") else { panic!("a function") };
    let Extern::Func(big) = export(&store, p, "big") else { panic!("a function") };
    // Refused, and the message says what was given: null, or a function of which signature.
    match call(&mut store, p, "run", &[Val::FuncRef(None)]) {
        Err(CallError::Signature { got, .. }) => assert_eq!(got, "(ref.null func)"),
        other => panic!("expected a signature error, got {other:?}"),
    }
    match call(&mut store, p, "run", &[Val::FuncRef(Some(big))]) {
        Err(CallError::Signature { expected, got }) => {
            assert!(
                expected.starts_with("((ref sig") && got.starts_with("((ref sig") && expected != got,
                "{expected} {got}"
            )
        }
        other => panic!("expected a signature error, got {other:?}"),
    }
    assert_eq!(call(&mut store, p, "run", &[Val::FuncRef(Some(seven))]).unwrap(), [Val::I32(7)]);
    // A function of another store is refused too (its type is not even looked at).
    let mut other = Store::new(&engine);
    let q = provider(&mut other, &engine);
    let Extern::Func(foreign) = export(&other, q, "seven") else { panic!("a function") };
    assert!(call(&mut store, p, "run", &[Val::FuncRef(Some(foreign))]).is_err());
}

#[test]
fn a_host_function_returning_a_function_of_another_type_fails_the_call() {
    let engine = engine();
    let mut store = Store::new(&engine);
    let p = provider(&mut store, &engine);
    let Extern::Func(big) = export(&store, p, "big") else { panic!("a function") };
    let Extern::Func(seven) = export(&store, p, "seven") else { panic!("a function") };
    // Typed `() -> funcref`, a host function is not one returning `(ref $ri32)`: refused.
    let getter = |store: &mut Store, f: Func| {
        store.new_host_func(FuncType::new([], [ValType::FUNCREF]), move |_, _, results| {
            results[0] = Val::FuncRef(Some(f));
            Ok(())
        })
    };
    let module_typed = module(
        &engine,
        r#"(module (type $ri32 (func (result i32)))
          (import "h" "get" (func $get (result (ref $ri32))))
          (func (export "go") (result i32) (call_ref $ri32 (call $get))))"#,
    );
    let host = getter(&mut store, big);
    refused(store.instantiate(&module_typed, &[Extern::Func(host)]));
    // Typed by the canonical signature the engine gives `seven`, the host function links,
    // and a result of the wrong type fails the call instead of reaching `call_ref`.
    let ri32 = engine.signature_id(&store.func_type(seven));
    let typed_result = ValType::Ref(RefType { nullable: false, heap: HeapType::Sig(ri32) });
    let liar = store.new_host_func(FuncType::new([], [typed_result]), move |_, _, results| {
        results[0] = Val::FuncRef(Some(big));
        Ok(())
    });
    let i = store.instantiate(&module_typed, &[Extern::Func(liar)]).expect("the canonical type links");
    match call(&mut store, i, "go", &[]) {
        Err(CallError::Host(e)) => assert!(e.to_string().contains("host function returned"), "{e}"),
        other => panic!("expected the host function's error, got {other:?}"),
    }
    let honest = store.new_host_func(FuncType::new([], [typed_result]), move |_, _, results| {
        results[0] = Val::FuncRef(Some(seven));
        Ok(())
    });
    let i = store.instantiate(&module_typed, &[Extern::Func(honest)]).expect("links");
    assert_eq!(call(&mut store, i, "go", &[]).unwrap(), [Val::I32(7)]);
}

#[test]
fn host_made_globals_and_tables_hold_only_values_of_their_type() {
    let engine = engine();
    let mut store = Store::new(&engine);
    let p = provider(&mut store, &engine);
    let Extern::Func(seven) = export(&store, p, "seven") else { panic!("a function") };
    let Extern::Func(big) = export(&store, p, "big") else { panic!("a function") };
    let ri32 = HeapType::Sig(engine.signature_id(&store.func_type(seven)));
    let non_null = ValType::Ref(RefType { nullable: false, heap: ri32 });
    let global = |mutable| GlobalType { ty: non_null, mutable };
    assert!(store.new_global(global(false), Val::FuncRef(None)).is_err(), "null in a non-null global");
    assert!(store.new_global(global(false), Val::FuncRef(Some(big))).is_err(), "another type");
    let g = store.new_global(global(false), Val::FuncRef(Some(seven))).expect("its type");
    let table = |element| TableType { element, limits: Limits { min: 1, max: None }, table64: false };
    assert!(store.new_table(table(non_null), Val::FuncRef(None)).is_err(), "null in a non-null table");
    let nullable = ValType::Ref(RefType { nullable: true, heap: ri32 });
    assert!(store.new_table(table(nullable), Val::FuncRef(Some(big))).is_err(), "another type");
    let t = store.new_table(table(nullable), Val::FuncRef(None)).expect("null in a nullable table");
    // Both link where a module wants exactly these types, and work.
    let user = module(
        &engine,
        r#"(module (type $f (func (result i32)))
          (import "h" "g" (global $g (ref $f)))
          (import "h" "t" (table 1 (ref null $f)))
          (func (export "go") (result i32) (call_ref $f (global.get $g))))"#,
    );
    let i = store.instantiate(&user, &[Extern::Global(g), Extern::Table(t)]).expect("links");
    assert_eq!(call(&mut store, i, "go", &[]).unwrap(), [Val::I32(7)]);
}

#[test]
fn a_tag_with_typed_parameters_links_only_to_the_same_type() {
    let engine = engine();
    let mut store = Store::new(&engine);
    let a = module(&engine, r#"(module (type $ri32 (func (result i32))) (tag (export "e") (param (ref $ri32))))"#);
    let a = store.instantiate(&a, &[]).expect("instantiates");
    let e = export(&store, a, "e");
    let wrong =
        module(&engine, r#"(module (type $ri64 (func (result i64))) (import "a" "e" (tag (param (ref $ri64)))))"#);
    refused(store.instantiate(&wrong, &[e]));
    let loose = module(&engine, r#"(module (import "a" "e" (tag (param funcref))))"#);
    refused(store.instantiate(&loose, &[e]));
    let same = module(&engine, r#"(module (type $f (func (result i32))) (import "a" "e" (tag (param (ref $f)))))"#);
    store.instantiate(&same, &[e]).expect("the same type links");
}

#[test]
fn null_references_trap_with_their_own_kinds_and_typed_code_runs_from_the_cache() {
    let engine = engine();
    let wat = r#"(module
      (type $f (func (param i32) (result i32)))
      (func $double (type $f) (i32.mul (local.get 0) (i32.const 2)))
      (elem declare func $double)
      (table $t 1 (ref null $f))
      (func (export "call_null") (result i32) (call_ref $f (i32.const 1) (table.get $t (i32.const 0))))
      (func (export "as_non_null") (ref.as_non_null (table.get $t (i32.const 0))) (drop))
      ;; A tail-recursive countdown through return_call_ref, in constant stack.
      (func $down (export "down") (param i64) (result i64)
        (if (result i64) (i64.eqz (local.get 0)) (then (i64.const 0))
          (else (return_call_ref $g (i64.sub (local.get 0) (i64.const 1)) (ref.func $down)))))
      (type $g (func (param i64) (result i64)))
      (elem declare func $down)
      (func (export "pick") (param i32) (result i32)
        (block $null
          (return (call_ref $f (i32.const 21)
            (br_on_null $null (select (result (ref null $f)) (ref.func $double) (ref.null $f) (local.get 0))))))
        (i32.const -1))
      ;; A non-nullable local, set before it is read.
      (func (export "non_null") (param i32) (result i32) (local $r (ref $f))
        (block $some (result (ref $f))
          (br_on_non_null $some (select (result (ref null $f)) (ref.func $double) (ref.null $f) (local.get 0)))
          (return (i32.const -2)))
        (local.set $r)
        (call_ref $f (i32.const 5) (local.get $r))))
    "#;
    let (mut store, i) = common::instantiate(&engine, wat);
    assert_eq!(trap_kind(call(&mut store, i, "call_null", &[])), TrapKind::NullFunctionReference);
    assert_eq!(trap_kind(call(&mut store, i, "as_non_null", &[])), TrapKind::NullReference);
    assert_eq!(call(&mut store, i, "down", &[Val::I64(10_000_000)]).unwrap(), [Val::I64(0)]);
    assert_eq!(call(&mut store, i, "pick", &[Val::I32(1)]).unwrap(), [Val::I32(42)]);
    assert_eq!(call(&mut store, i, "pick", &[Val::I32(0)]).unwrap(), [Val::I32(-1)]);
    assert_eq!(call(&mut store, i, "non_null", &[Val::I32(1)]).unwrap(), [Val::I32(10)]);
    assert_eq!(call(&mut store, i, "non_null", &[Val::I32(0)]).unwrap(), [Val::I32(-2)]);
}

fn via_artifact(engine: &Engine, wat: &str) -> Result<Module, String> {
    let wasm = wat::parse_str(wat).map_err(|e| e.to_string())?;
    let (_, artifact) = Module::compile(engine, &wasm).map_err(|e| e.to_string())?;
    // SAFETY: compiled just above by this engine.
    unsafe { Module::from_artifact_bytes(engine, &artifact.to_bytes()) }.map_err(|e| e.to_string())
}

#[test]
fn non_nullable_table_with_initialiser_and_segment_beside_a_lazy_table() {
    let e = engine();
    let wat = r#"(module
      (type $t (func (result i32)))
      (func $a (type $t) (i32.const 1))
      (func $b (type $t) (i32.const 2))
      (table $tab 4 (ref $t) (ref.func $a))
      (elem (table $tab) (i32.const 1) (ref $t) (ref.func $b))
      (table $plain 4 funcref)
      (elem (table $plain) (i32.const 0) func $a $b)
      (func (export "get") (param i32) (result i32) (call_ref $t (table.get $tab (local.get 0))))
      (func (export "ind") (param i32) (result i32) (call_indirect $plain (type $t) (local.get 0))))"#;
    let m = via_artifact(&e, wat).expect("loads");
    let mut s = Store::new(&e);
    let i = s.instantiate(&m, &[]).unwrap();
    let got: Vec<_> = (0..4).map(|k| call(&mut s, i, "get", &[Val::I32(k)]).unwrap()[0]).collect();
    assert_eq!(got, [Val::I32(1), Val::I32(2), Val::I32(1), Val::I32(1)]);
    assert_eq!(call(&mut s, i, "ind", &[Val::I32(1)]).unwrap(), [Val::I32(2)]);
}

#[test]
fn host_objects_of_types_the_engine_does_not_know_are_refused() {
    let e = engine();
    let mut s = Store::new(&e);
    let bogus = ValType::Ref(RefType { nullable: false, heap: HeapType::Sig(999_999) });
    let modrel = ValType::Ref(RefType { nullable: true, heap: HeapType::Type(TypeIndex(0)) });
    let h = s.new_host_func(FuncType::new(vec![bogus, modrel], vec![bogus]), |_, _, _| Ok(()));
    assert!(matches!(s.call(h, &[Val::FuncRef(None), Val::FuncRef(None)]), Err(CallError::Signature { .. })));
    for ty in [bogus, modrel] {
        assert!(!e.is_canonical(ty));
        assert!(s.new_global(GlobalType { ty, mutable: false }, Val::FuncRef(None)).is_err(), "{ty}");
        let table = TableType { element: ty, limits: Limits { min: 0, max: None }, table64: false };
        assert!(s.new_table(table, Val::FuncRef(None)).is_err(), "{ty}");
        assert!(s.new_tag(FuncType::new(vec![ty], vec![])).is_err(), "{ty}");
    }
}

const A: &str = r#"(module
  (type $t (func (result i32)))
  (func $one (type $t) (i32.const 1))
  (func $two (type $t) (i32.const 2))
  (elem declare func $one $two)
  (global (export "g") (mut (ref null $t)) (ref.func $one))
  (table (export "tt") 3 (ref null $t))
  (table (export "ft") 3 funcref)
  (elem (table 1) (i32.const 0) func $one $two)
  (tag (export "e") (param (ref $t)))
  (func (export "one") (type $t) (i32.const 1)))"#;

const B: &str = r#"(module
  (type $pad (func (param i64)))
  (type $u (func (result i32)))
  (import "a" "g" (global $g (mut (ref null $u))))
  (import "a" "tt" (table $tt 3 (ref null $u)))
  (import "a" "ft" (table $ft 3 funcref))
  (import "a" "e" (tag $e (param (ref $u))))
  (func $three (type $u) (i32.const 3))
  (elem declare func $three)
  (elem $seg (ref $u) (ref.func $three) (ref.func $three))
  (func (export "set_g") (global.set $g (ref.func $three)))
  (func (export "call_g") (result i32) (call_ref $u (global.get $g)))
  (func (export "grow") (result i32) (table.grow $tt (ref.func $three) (i32.const 2)))
  (func (export "fill") (table.fill $tt (i32.const 0) (ref.func $three) (i32.const 1)))
  (func (export "init") (table.init $tt $seg (i32.const 1) (i32.const 0) (i32.const 2)))
  (func (export "copy_to_ft") (table.copy $ft $tt (i32.const 0) (i32.const 0) (i32.const 3)))
  (func (export "tt") (param i32) (result i32) (call_ref $u (table.get $tt (local.get 0))))
  (func (export "ft") (param i32) (result i32) (call_indirect $ft (type $u) (local.get 0)))
  (func (export "throw") (result i32)
    (block $h (result (ref $u))
      (try_table (catch $e $h) (throw $e (ref.func $three)))
      (unreachable))
    (call_ref $u)))"#;

#[test]
fn typed_global_table_and_tag_shared_across_modules_with_shifted_type_indices() {
    let e = engine();
    let mut s = Store::new(&e);
    let a = s.instantiate(&via_artifact(&e, A).unwrap(), &[]).unwrap();
    let b = via_artifact(&e, B).unwrap();
    let imports: Vec<Extern> = ["g", "tt", "ft", "e"].iter().map(|n| s.get_export(a, n).unwrap()).collect();
    let b = s.instantiate(&b, &imports).expect("B links");
    let c = |s: &mut Store, n: &str, args: &[Val]| call(s, b, n, args);
    let i32s = |r: Result<Vec<Val>, CallError>| r.unwrap();
    assert_eq!(i32s(c(&mut s, "call_g", &[])), [Val::I32(1)]);
    i32s(c(&mut s, "set_g", &[]));
    assert_eq!(i32s(c(&mut s, "call_g", &[])), [Val::I32(3)]);
    assert_eq!(i32s(c(&mut s, "ft", &[Val::I32(1)])), [Val::I32(2)]);
    assert_eq!(trap_kind(c(&mut s, "tt", &[Val::I32(0)])), TrapKind::NullFunctionReference);
    i32s(c(&mut s, "fill", &[]));
    i32s(c(&mut s, "init", &[]));
    assert_eq!(i32s(c(&mut s, "grow", &[])), [Val::I32(3)]);
    for k in 0..5 {
        assert_eq!(i32s(c(&mut s, "tt", &[Val::I32(k)])), [Val::I32(3)]);
    }
    i32s(c(&mut s, "copy_to_ft", &[]));
    for k in 0..3 {
        assert_eq!(i32s(c(&mut s, "ft", &[Val::I32(k)])), [Val::I32(3)]);
    }
    assert_eq!(i32s(c(&mut s, "throw", &[])), [Val::I32(3)]);
}

const GC: &str = r#"(module
  (tag $inner (param i32))
  (tag $outer (param (ref exn)))
  (tag $junk (param i64))
  (global $keep (mut exnref) (ref.null exn))
  (func (export "make") (local $x exnref)
    (block $o (result (ref exn) (ref exn))
      (try_table (catch_ref $outer $o)
        (block $i (result i32 (ref exn))
          (try_table (catch_ref $inner $i) (throw $inner (i32.const 42)))
          (unreachable))
        (local.set $x) (drop)
        (throw $outer (ref.as_non_null (local.get $x))))
      (unreachable))
    (global.set $keep)
    (drop))
  (func (export "junk") (param i32)
    (loop $l
      (drop (block $j (result i64) (try_table (catch $junk $j) (throw $junk (i64.const 0x7777))) (unreachable)))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1))))))
  (func (export "read") (result i32)
    (block $o (result (ref exn))
      (try_table (catch $outer $o) (throw_ref (ref.as_non_null (global.get $keep))))
      (unreachable))
    (block $i (param (ref exn)) (result i32)
      (try_table (param (ref exn)) (catch $inner $i) (throw_ref))
      (unreachable))))"#;

#[test]
fn a_non_nullable_exnref_payload_is_a_gc_root() {
    let e = engine();
    let mut s = Store::new(&e);
    let i = s.instantiate(&via_artifact(&e, GC).unwrap(), &[]).unwrap();
    call(&mut s, i, "make", &[]).unwrap();
    for _ in 0..20 {
        call(&mut s, i, "junk", &[Val::I32(50)]).unwrap();
    }
    assert_eq!(call(&mut s, i, "read", &[]).unwrap(), [Val::I32(42)]);
}

#[test]
fn a_host_function_typed_from_module_imports_links() {
    let e = engine();
    let m = module(&e, r#"(module (type $t (func)) (import "h" "f" (func (param (ref null $t)))))"#);
    let mut s = Store::new(&e);
    let imports: Vec<Extern> = m
        .imports()
        .into_iter()
        .map(|(_, _, ty)| match ty {
            ExternType::Func(ft) => Extern::Func(s.new_host_func(ft, |_, _, _| Ok(()))),
            _ => unreachable!(),
        })
        .collect();
    // `imports()` gives canonical types: a host function made from the module's own
    // description links (how a plugin host stubs imports).
    let r = s.instantiate(&m, &imports);
    assert!(r.is_ok(), "{:?}", r.err());
}
