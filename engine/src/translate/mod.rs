//! The wasm → Cranelift IR translator.
//!
//! - [`state`]: operand stack, control stack, reachability.
//! - [`env`]: the runtime layout as the translator sees it (one method per operation).
//! - [`heap`]: the memory sandbox (address computation and bounds checks).
//! - [`code`]: the opcode match.
//! - [`simd`]: the opcode match of SIMD128 and relaxed SIMD (`v128` values).
//! - [`unreachable`]: skipping code after `br`, `return` and `unreachable`.
//! - [`exceptions`]: exception handlers, `throw` and the legacy exception instructions.
//! - [`budget`]: the instruction count, when the engine counts.
//!
//! [`translate_function`] drives one function body.

pub mod budget;
pub mod code;
pub mod env;
pub mod exceptions;
pub mod heap;
pub mod simd;
pub mod state;
pub mod unreachable;

#[cfg(test)]
mod tests;

use crate::types::*;
use cranelift_codegen::ir::{self, InstBuilder};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use env::{ir_type, wasm_signature, FuncEnv};
use state::{ControlFrame, TranslationState};

/// Why a function body could not be translated (the validator accepted it, so this means
/// the body uses something the translator does not implement).
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The body did not decode.
    #[error("function {func}: {source}")]
    Decode {
        /// Function index.
        func: u32,
        /// The decoder's error.
        source: wasmparser::BinaryReaderError,
    },
    /// An operator the engine does not implement.
    #[error("function {func}: unsupported operator {operator} at offset {offset:#x}")]
    Unsupported {
        /// Function index.
        func: u32,
        /// The operator's name.
        operator: String,
        /// Byte offset in the module.
        offset: usize,
    },
}

/// Translates the body of defined function `func` into `func_ir`.
pub fn translate_function(
    env: &mut FuncEnv,
    func: FuncIndex,
    body: &wasmparser::FunctionBody,
    func_ir: &mut ir::Function,
    builder_ctx: &mut FunctionBuilderContext,
) -> Result<(), TranslateError> {
    let decode = |source| TranslateError::Decode { func: func.0, source };
    let ty = env.module.func_type(func).clone();
    func_ir.signature = wasm_signature(&ty);
    env.begin_ir(func_ir);
    let mut builder = FunctionBuilder::new(func_ir, builder_ctx);

    let entry = builder.create_block();
    builder.append_block_params_for_function_params(entry);
    builder.switch_to_block(entry);
    builder.seal_block(entry);
    let params = builder.block_params(entry).to_vec();
    env.begin_function(params[0]);
    if env.count_instructions {
        builder.set_srcloc(ir::SourceLoc::new(0));
        budget::check(&mut builder);
    }

    // Locals: the parameters, then the declared locals, zero-initialised.
    let mut locals: Vec<Variable> = Vec::new();
    for (i, t) in ty.params.iter().enumerate() {
        let var = builder.declare_var(ir_type(*t));
        builder.def_var(var, params[i + 2]);
        locals.push(var);
    }
    let mut reader = body.get_locals_reader().map_err(decode)?;
    for _ in 0..reader.get_count() {
        let (count, t) = reader.read().map_err(decode)?;
        let t = crate::module_info::val_type(t).map_err(|e| TranslateError::Unsupported {
            func: func.0,
            operator: e.to_string(),
            offset: 0,
        })?;
        let zero = code::zero(&mut builder, t);
        for _ in 0..count {
            let var = builder.declare_var(ir_type(t));
            builder.def_var(var, zero);
            locals.push(var);
        }
    }

    // The body is a block whose "next" block returns the results.
    let exit = builder.create_block();
    for t in ty.results.iter() {
        builder.append_block_param(exit, ir_type(*t));
    }
    let mut state = TranslationState { reachable: true, ..Default::default() };
    state.control.push(ControlFrame::Block {
        next: exit,
        stack_base: 0,
        num_results: ty.results.len(),
        exit_reachable: false,
    });

    let mut ops = body.get_operators_reader().map_err(decode)?;
    while !ops.eof() {
        let offset = ops.original_position();
        let op = ops.read().map_err(decode)?;
        if state.reachable {
            if env.count_instructions {
                state.pending += 1;
                if budget::charges_before_in(&op, &state) {
                    budget::flush(&mut builder, &mut state);
                }
                // A trap in this operator's code finds the instructions not charged yet here.
                builder.set_srcloc(ir::SourceLoc::new(state.pending));
            }
            code::translate_operator(env, &mut builder, &mut state, &locals, &op)
                .map_err(|operator| TranslateError::Unsupported { func: func.0, operator, offset: offset as usize })?;
        } else {
            unreachable::skip_operator(env, &mut builder, &mut state, &op);
        }
    }
    // The final `end` switched to the exit block (or left it unreachable).
    if state.reachable {
        budget::flush(&mut builder, &mut state);
        let results = state.stack.clone();
        builder.ins().return_(&results);
    }
    exceptions::emit(&mut builder, env, &mut state);
    builder.seal_all_blocks();
    builder.finalize(env.frontend_config);
    Ok(())
}
