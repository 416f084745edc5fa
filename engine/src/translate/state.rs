//! The translator's state: the operand stack, the control stack and reachability.
//!
//! WebAssembly's structured control flow maps onto Cranelift blocks: every `block`, `loop` and
//! `if` gets a "next" block whose parameters carry the construct's results; a `loop` also gets a
//! header block whose parameters carry its inputs. Values stay on the operand stack as SSA
//! values; they are passed as block arguments only where control flow merges.

use cranelift_codegen::ir::{Block, Value};

/// One entry of the control stack.
#[derive(Debug)]
pub enum ControlFrame {
    /// A `block` (and the function body itself).
    Block {
        /// Where control continues after `end`; its parameters are the results.
        next: Block,
        /// Operand stack height below the block's parameters.
        stack_base: usize,
        /// Number of results.
        num_results: usize,
        /// Whether some branch targets `next`.
        exit_reachable: bool,
    },
    /// A `loop`.
    Loop {
        /// The header, target of branches to the loop; its parameters are the inputs.
        header: Block,
        /// Where control continues after `end`.
        next: Block,
        /// Operand stack height below the loop's parameters.
        stack_base: usize,
        /// Number of parameters (the arity of a branch to the loop).
        num_params: usize,
        /// Number of results.
        num_results: usize,
    },
    /// An `if` (with or without `else`).
    If {
        /// Entry of the else arm (or of the implicit empty one).
        else_block: Block,
        /// Where control continues after `end`.
        next: Block,
        /// Operand stack height below the parameters.
        stack_base: usize,
        /// The parameter values, re-pushed at `else`.
        params: Vec<Value>,
        /// Number of results.
        num_results: usize,
        /// Whether the `if` itself was reachable (so its else arm is).
        head_reachable: bool,
        /// Whether an `else` was seen.
        seen_else: bool,
        /// Whether some branch (or an arm's fallthrough) targets `next`.
        exit_reachable: bool,
    },
}

impl ControlFrame {
    /// The block a branch to this frame jumps to.
    pub fn br_destination(&self) -> Block {
        match self {
            ControlFrame::Block { next, .. } | ControlFrame::If { next, .. } => *next,
            ControlFrame::Loop { header, .. } => *header,
        }
    }

    /// How many values a branch to this frame carries.
    pub fn br_arity(&self) -> usize {
        match self {
            ControlFrame::Block { num_results, .. } | ControlFrame::If { num_results, .. } => *num_results,
            ControlFrame::Loop { num_params, .. } => *num_params,
        }
    }

    /// The block after `end`.
    pub fn next(&self) -> Block {
        match self {
            ControlFrame::Block { next, .. } | ControlFrame::If { next, .. } | ControlFrame::Loop { next, .. } => *next,
        }
    }

    /// Operand stack height at entry, below the parameters.
    pub fn stack_base(&self) -> usize {
        match self {
            ControlFrame::Block { stack_base, .. }
            | ControlFrame::If { stack_base, .. }
            | ControlFrame::Loop { stack_base, .. } => *stack_base,
        }
    }

    /// Number of results.
    pub fn num_results(&self) -> usize {
        match self {
            ControlFrame::Block { num_results, .. }
            | ControlFrame::If { num_results, .. }
            | ControlFrame::Loop { num_results, .. } => *num_results,
        }
    }

    /// Records that a branch targets this frame.
    pub fn mark_branched_to(&mut self) {
        match self {
            ControlFrame::Block { exit_reachable, .. } | ControlFrame::If { exit_reachable, .. } => {
                *exit_reachable = true
            }
            ControlFrame::Loop { .. } => {}
        }
    }
}

/// Operand stack, control stack and reachability of one function being translated.
#[derive(Debug, Default)]
pub struct TranslationState {
    /// The operand stack.
    pub stack: Vec<Value>,
    /// The control stack; the function body is the bottom frame.
    pub control: Vec<ControlFrame>,
    /// Whether the current position is reachable.
    pub reachable: bool,
    /// While unreachable: how many nested constructs were entered (and must be skipped).
    pub unreachable_depth: usize,
    /// Instructions counted since the count was last charged (see `budget.rs`); always 0 when
    /// the engine does not count.
    pub pending: u32,
    /// The exception handlers (`try_table`, legacy `try`) of the function.
    pub handlers: super::exceptions::Handlers,
}

impl TranslationState {
    /// Pops one value.
    pub fn pop1(&mut self) -> Value {
        self.stack.pop().expect("validated: operand stack underflow")
    }

    /// Pops two values, returning them in push order.
    pub fn pop2(&mut self) -> (Value, Value) {
        let b = self.pop1();
        let a = self.pop1();
        (a, b)
    }

    /// Pops three values, returning them in push order.
    pub fn pop3(&mut self) -> (Value, Value, Value) {
        let c = self.pop1();
        let (a, b) = self.pop2();
        (a, b, c)
    }

    /// The top `n` values, in push order.
    pub fn peekn(&self, n: usize) -> &[Value] {
        &self.stack[self.stack.len() - n..]
    }

    /// Removes the top `n` values.
    pub fn popn(&mut self, n: usize) {
        let len = self.stack.len() - n;
        self.stack.truncate(len);
    }

    /// The frame a branch of relative depth `depth` targets.
    pub fn frame_mut(&mut self, depth: u32) -> &mut ControlFrame {
        let i = self.control.len() - 1 - depth as usize;
        &mut self.control[i]
    }
}
