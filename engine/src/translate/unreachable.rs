//! Walking code that cannot execute: after `br`, `br_table`, `return`, `unreachable` and
//! `throw` until the `else`, `catch` or `end` that makes control reachable again. Nothing is emitted, but
//! nesting is tracked so the right `end` closes the right frame.

use super::code::{begin_else, end_frame};
use super::env::FuncEnv;
use super::exceptions;
use super::state::TranslationState;
use crate::types::TagIndex;
use cranelift_frontend::FunctionBuilder;
use wasmparser::Operator;

/// Handles one operator while the current position is unreachable.
pub fn skip_operator(env: &FuncEnv, builder: &mut FunctionBuilder, state: &mut TranslationState, op: &Operator) {
    let outermost = state.unreachable_depth == 0;
    match op {
        Operator::Block { .. }
        | Operator::Loop { .. }
        | Operator::If { .. }
        | Operator::TryTable { .. }
        | Operator::Try { .. } => state.unreachable_depth += 1,
        Operator::Else if outermost => begin_else(builder, state, false),
        // A legacy catch body is reachable through its handler.
        Operator::Catch { tag_index } if outermost => {
            exceptions::legacy_catch(builder, env, state, Some(TagIndex(*tag_index)), false)
        }
        Operator::CatchAll if outermost => exceptions::legacy_catch(builder, env, state, None, false),
        Operator::End if outermost => end_frame(builder, state, false),
        Operator::Delegate { relative_depth } if outermost => {
            exceptions::delegate(state, *relative_depth);
            end_frame(builder, state, false)
        }
        Operator::End | Operator::Delegate { .. } => state.unreachable_depth -= 1,
        _ => {}
    }
}
