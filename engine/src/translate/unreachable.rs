//! Walking code that cannot execute: after `br`, `br_table`, `return` and `unreachable`
//! until the `else` or `end` that makes control reachable again. Nothing is emitted, but
//! nesting is tracked so the right `end` closes the right frame.

use super::code::{begin_else, end_frame};
use super::state::TranslationState;
use cranelift_frontend::FunctionBuilder;
use wasmparser::Operator;

/// Handles one operator while the current position is unreachable.
pub fn skip_operator(builder: &mut FunctionBuilder, state: &mut TranslationState, op: &Operator) {
    match op {
        Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => state.unreachable_depth += 1,
        Operator::Else if state.unreachable_depth == 0 => begin_else(builder, state, false),
        Operator::End if state.unreachable_depth == 0 => end_frame(builder, state, false),
        Operator::End => state.unreachable_depth -= 1,
        _ => {}
    }
}
