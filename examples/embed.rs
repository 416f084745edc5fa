//! Embedding the engine without the CLI: compile a module, give it a host function, call an
//! export, and survive a trap.
//!
//! `cargo run --example embed`

use engine::{CallError, Config, Engine, Extern, FuncType, Linker, Module, Store, Val, ValType};

fn main() -> anyhow::Result<()> {
    let engine = Engine::new(Config::default())?;
    let module = Module::new(
        &engine,
        br#"(module
          (import "host" "log" (func $log (param i32)))
          (func (export "sum_to") (param i32) (result i32) (local i32)
            (loop $l
              (local.set 1 (i32.add (local.get 1) (local.get 0)))
              (local.set 0 (i32.sub (local.get 0) (i32.const 1)))
              (br_if $l (local.get 0)))
            (call $log (local.get 1))
            (local.get 1))
          (func (export "boom") (result i32) (i32.div_u (i32.const 1) (i32.const 0))))"#,
    )?;
    let mut store = Store::new(&engine);
    store.set_memory_limit(64 << 20);
    let log = store.new_host_func(FuncType::new([ValType::I32], []), |_caller, args, _results| {
        println!("guest says: {:?}", args[0]);
        Ok(())
    });
    let mut linker = Linker::new();
    linker.define("host", "log", Extern::Func(log));
    let instance = linker.instantiate(&mut store, &module)?;

    let sum_to = store.get_func(instance, "sum_to").expect("exported");
    println!("sum_to(100) = {:?}", store.call(sum_to, &[Val::I32(100)])?);

    let boom = store.get_func(instance, "boom").expect("exported");
    match store.call(boom, &[]) {
        Err(CallError::Trap(trap)) => println!("trapped as expected: {trap}"),
        other => println!("unexpected: {other:?}"),
    }
    // The instance is still usable after a trap.
    println!("sum_to(10) = {:?}", store.call(sum_to, &[Val::I32(10)])?);
    Ok(())
}
