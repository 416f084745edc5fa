//! Typed function references at the boundaries where a wrong type would be a hole: `call_ref`
//! checks nothing but null, so a reference of type `(ref $t)` must always be a function of
//! type `$t`. These tests try to smuggle a function of another type in through every door: a
//! function import, a global import (immutable, mutable), a table import, a tag, a host
//! function's result, the host's arguments, a host-made global and table, and a cached
//! artifact; and check that the same type declared by two modules is one type.

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
    assert!(matches!(call(&mut store, p, "run", &[Val::FuncRef(None)]), Err(CallError::Signature { .. })));
    assert!(matches!(call(&mut store, p, "run", &[Val::FuncRef(Some(big))]), Err(CallError::Signature { .. })));
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
