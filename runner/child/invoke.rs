//! `--invoke NAME VALUES...`: call an export with values from the command line and print its
//! results, instead of running `_start`.

use super::stages::StageError;
use engine::{Instance, Store, Val, ValType};

/// Parses `text` as a value of type `ty`.
fn parse_value(text: &str, ty: ValType) -> Result<Val, StageError> {
    let bad = || StageError::Invoke(format!("'{text}' is not a valid {ty}"));
    Ok(match ty {
        ValType::I32 => {
            Val::I32(text.parse::<i32>().or_else(|_| text.parse::<u32>().map(|u| u as i32)).map_err(|_| bad())?)
        }
        ValType::I64 => {
            Val::I64(text.parse::<i64>().or_else(|_| text.parse::<u64>().map(|u| u as i64)).map_err(|_| bad())?)
        }
        ValType::F32 => Val::F32(text.parse::<f32>().map_err(|_| bad())?.to_bits()),
        ValType::F64 => Val::F64(text.parse::<f64>().map_err(|_| bad())?.to_bits()),
        _ => return Err(StageError::Invoke(format!("cannot pass a {ty} from the command line"))),
    })
}

/// How a result is printed.
fn format_value(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::V128(b) => format!("{b:#034x}"),
        Val::FuncRef(f) => if f.is_some() { "funcref" } else { "null" }.to_string(),
        Val::ExternRef(r) => if r.is_some() { "externref" } else { "null" }.to_string(),
        Val::ExnRef(r) => if r.is_some() { "exnref" } else { "null" }.to_string(),
    }
}

/// The export `name` of `instance` and its arguments, parsed from `values`.
pub(super) fn prepare(
    store: &Store,
    instance: Instance,
    name: &str,
    values: &[String],
) -> Result<(engine::Func, Vec<Val>), StageError> {
    let func = store
        .get_func(instance, name)
        .ok_or_else(|| StageError::Invoke(format!("module exports no function named '{name}'")))?;
    let ty = store.func_type(func);
    if values.len() != ty.params.len() {
        return Err(StageError::Invoke(format!(
            "'{name}' takes {} arguments ({ty}), got {}",
            ty.params.len(),
            values.len()
        )));
    }
    let args = values.iter().zip(ty.params.iter()).map(|(v, t)| parse_value(v, *t)).collect::<Result<Vec<_>, _>>()?;
    Ok((func, args))
}

/// Prints an invoked export's results, one a line (a failed write changes nothing).
pub(super) fn print_results(results: &[Val]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for r in results {
        let _ = writeln!(out, "{}", format_value(r));
    }
    let _ = out.flush();
}
