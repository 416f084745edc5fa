//! EXCEPTIONS: `try_table`, `throw`, `throw_ref`, and the legacy `try`, `catch`, `catch_all`,
//! `rethrow`, `delegate`, on one mechanism.
//!
//! **Handlers.** Every `try_table` (and legacy `try`) gets a *dispatch block*, taking the
//! exception object, which tries the catch clauses in order: a clause with a tag compares the
//! exception's tag identity with the tag's (both loaded, never called for), loads the payload
//! and branches to the clause's label; an exception no clause matches goes on to the enclosing
//! handler's dispatch block, or, with none in this function, to the callers
//! ([`FuncEnv::throw_to_caller`]). Dispatch code is emitted after the body ([`emit`]), only
//! for handlers something can reach.
//!
//! **Reaching a handler.** A `throw` (or `throw_ref`, `rethrow`) inside a handler's scope
//! branches to its dispatch block directly: no unwinding within a function. A call inside it is
//! a Cranelift `try_call` whose exceptional edge goes to the dispatch block; the unwinder
//! (`vm::unwind`) resumes there when the callee, or anything it calls, throws. A function
//! without handlers makes plain calls: code that uses no exceptions compiles exactly as before,
//! and a call in a handler's scope costs nothing until something throws (the handler table is
//! metadata beside the code).
//!
//! **The exception object's life.** Clauses that drop the reference (`catch`, `catch_all`)
//! release the object once the payload is read; clauses that hand it on (`catch_ref`,
//! `catch_all_ref`, a legacy `catch` whose body can `rethrow`) mark it escaped (see
//! `crate::exceptions`).

use super::code::{block_signature, block_with_params};
use super::env::FuncEnv;
use super::state::{ControlFrame, TranslationState};
use crate::trap::TrapKind;
use crate::types::*;
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types, BlockArg, ExceptionTableData, ExceptionTableItem, InstBuilder, Value,
};
use cranelift_frontend::FunctionBuilder;
use std::collections::HashSet;

/// One catch clause, resolved where it is declared.
#[derive(Clone, Debug)]
struct Clause {
    /// The tag it catches; `None` catches every exception.
    tag: Option<TagIndex>,
    /// Where it branches, with the payload and, if `pass_ref`, the exception after it.
    dest: ir::Block,
    /// Whether the exception goes along (`catch_ref`, `catch_all_ref`, a legacy catch body).
    pass_ref: bool,
    /// Whether the clause hands out a reference to the exception (so it must not be freed).
    escapes: bool,
}

/// Where an exception no clause of a handler matches goes.
#[derive(Clone, Copy, Debug)]
enum Outer {
    /// An enclosing handler of this function: its dispatch block.
    Handler(ir::Block),
    /// This function's callers.
    Caller,
}

/// A `try_table` or legacy `try` of the function being translated.
#[derive(Debug)]
pub struct Handler {
    /// Index of its frame in the control stack.
    frame: usize,
    /// Its dispatch block (one parameter: the exception).
    dispatch: ir::Block,
    /// Whether it covers calls and throws at the current position (a legacy `try` does not
    /// in its catch bodies).
    active: bool,
    /// Its clauses, in order.
    clauses: Vec<Clause>,
    /// Where unmatched exceptions go.
    outer: Outer,
    /// Legacy `try`: the exception caught by the current catch body (for `rethrow`).
    caught: Option<Value>,
    /// Legacy `try`: whether a `rethrow` in a catch body names it (its exceptions escape).
    rethrown: bool,
}

/// The handlers of the function being translated.
#[derive(Debug, Default)]
pub struct Handlers {
    /// Those whose frames are open, innermost last.
    open: Vec<Handler>,
    /// Those whose frames ended, in the order they ended (inner before outer).
    ended: Vec<Handler>,
    /// Dispatch blocks something branches to.
    used: HashSet<ir::Block>,
}

impl Handlers {
    /// The innermost handler covering the current position.
    fn innermost(&self) -> Option<&Handler> {
        self.open.iter().rev().find(|h| h.active)
    }

    /// The innermost handler covering the current position, for code about to branch to it.
    fn target(&mut self) -> Outer {
        match self.innermost().map(|h| h.dispatch) {
            Some(dispatch) => {
                self.used.insert(dispatch);
                Outer::Handler(dispatch)
            }
            None => Outer::Caller,
        }
    }

    /// The dispatch block a call at the current position hands exceptions to, if any.
    pub fn for_call(&mut self) -> Option<ir::Block> {
        match self.target() {
            Outer::Handler(dispatch) => Some(dispatch),
            Outer::Caller => None,
        }
    }

    /// The control frame at `frame` ended: its handler, if it has one, is done.
    pub fn end_frame(&mut self, frame: usize) {
        if self.open.last().is_some_and(|h| h.frame == frame) {
            let h = self.open.pop().expect("checked");
            self.ended.push(h);
        }
    }

    fn open_at(&mut self, frame: usize) -> Option<&mut Handler> {
        self.open.iter_mut().rev().find(|h| h.frame == frame)
    }
}

/// Emits a `try_call` (made by `emit` with the exception table): a normal return continues
/// in a new block, with the results; an exception goes to `dispatch`. Returns the results.
pub fn try_call(
    builder: &mut FunctionBuilder,
    dispatch: ir::Block,
    sig: ir::SigRef,
    emit: impl FnOnce(&mut FunctionBuilder, ir::ExceptionTable) -> ir::Inst,
) -> Vec<Value> {
    let returns: Vec<ir::Type> = builder.func.dfg.signatures[sig].returns.iter().map(|p| p.value_type).collect();
    let normal = builder.create_block();
    for ty in &returns {
        builder.append_block_param(normal, *ty);
    }
    // A landing block per call site: the exception arrives in a payload register.
    let landing = builder.create_block();
    builder.append_block_param(landing, types::I64);
    let rets: Vec<BlockArg> = (0..returns.len() as u32).map(BlockArg::TryCallRet).collect();
    let normal_call = builder.func.dfg.block_call(normal, &rets);
    let landing_call = builder.func.dfg.block_call(landing, &[BlockArg::TryCallExn(0)]);
    let table = ExceptionTableData::new(sig, normal_call, [ExceptionTableItem::Default(landing_call)]);
    let table = builder.func.dfg.exception_tables.push(table);
    emit(builder, table);
    builder.switch_to_block(landing);
    let exn = builder.block_params(landing)[0];
    builder.ins().jump(dispatch, &[BlockArg::Value(exn)]);
    builder.switch_to_block(normal);
    builder.block_params(normal).to_vec()
}

/// Opens a block (`try_table`'s or legacy `try`'s) with a handler, without clauses yet.
fn open(builder: &mut FunctionBuilder, env: &FuncEnv, state: &mut TranslationState, ty: wasmparser::BlockType) {
    let (params, results) = block_signature(env, ty);
    let next = block_with_params(builder, &results);
    let stack_base = state.stack.len() - params.len();
    state.control.push(ControlFrame::Block { next, stack_base, num_results: results.len(), exit_reachable: false });
    let dispatch = builder.create_block();
    builder.append_block_param(dispatch, types::I64);
    // Unmatched exceptions go where they would have gone without this handler.
    let outer = match state.handlers.innermost() {
        Some(h) => Outer::Handler(h.dispatch),
        None => Outer::Caller,
    };
    state.handlers.open.push(Handler {
        frame: state.control.len() - 1,
        dispatch,
        active: true,
        clauses: Vec::new(),
        outer,
        caught: None,
        rethrown: false,
    });
}

/// `try_table`: a block whose catch clauses branch to labels outside it.
pub fn try_table(builder: &mut FunctionBuilder, env: &FuncEnv, state: &mut TranslationState, t: &wasmparser::TryTable) {
    // Labels of the clauses are relative to the block around the `try_table`.
    let clauses: Vec<Clause> = t
        .catches
        .iter()
        .map(|c| {
            use wasmparser::Catch;
            let (tag, label, with_ref) = match *c {
                Catch::One { tag, label } => (Some(TagIndex(tag)), label, false),
                Catch::OneRef { tag, label } => (Some(TagIndex(tag)), label, true),
                Catch::All { label } => (None, label, false),
                Catch::AllRef { label } => (None, label, true),
            };
            let frame = state.frame_mut(label);
            frame.mark_branched_to();
            Clause { tag, dest: frame.br_destination(), pass_ref: with_ref, escapes: with_ref }
        })
        .collect();
    open(builder, env, state, t.ty);
    state.handlers.open.last_mut().expect("just opened").clauses = clauses;
}

/// Legacy `try`: a block whose `catch` clauses follow its body.
pub fn legacy_try(
    builder: &mut FunctionBuilder,
    env: &FuncEnv,
    state: &mut TranslationState,
    ty: wasmparser::BlockType,
) {
    open(builder, env, state, ty);
}

/// Legacy `catch` / `catch_all` (`tag` `None`): ends the `try` body or the previous catch body
/// (`fallthrough`: whether its end is reachable) and starts this clause's body, which receives
/// the payload.
pub fn legacy_catch(
    builder: &mut FunctionBuilder,
    env: &FuncEnv,
    state: &mut TranslationState,
    tag: Option<TagIndex>,
    fallthrough: bool,
) {
    let frame = state.control.len() - 1;
    let (next, stack_base, num_results) = {
        let f = &mut state.control[frame];
        if fallthrough {
            f.mark_branched_to();
        }
        (f.next(), f.stack_base(), f.num_results())
    };
    if fallthrough {
        let results = state.peekn(num_results).to_vec();
        let args: Vec<BlockArg> = results.into_iter().map(BlockArg::Value).collect();
        builder.ins().jump(next, &args);
    }
    state.stack.truncate(stack_base);
    let params = tag.map_or(Vec::new(), |t| payload_types(env, t));
    let body = block_with_params(builder, &params);
    let exn = builder.append_block_param(body, types::I64);
    let handler = state.handlers.open_at(frame).expect("validated: catch inside try");
    handler.active = false;
    handler.caught = Some(exn);
    handler.clauses.push(Clause { tag, dest: body, pass_ref: true, escapes: false });
    builder.switch_to_block(body);
    let payload = builder.block_params(body);
    let payload = payload[..payload.len() - 1].to_vec();
    state.stack.extend(payload);
    state.reachable = true;
}

/// Legacy `delegate`: the `try` ends (like `end`); exceptions from its body go to the handler
/// around the label `depth` (relative to the block around the `try`), or to the callers.
pub fn delegate(state: &mut TranslationState, depth: u32) {
    let frame = state.control.len() - 1;
    let target = frame.checked_sub(1 + depth as usize).expect("validated: delegate label");
    let outer = state
        .handlers
        .open
        .iter()
        .rev()
        .find(|h| h.frame <= target && h.active)
        .map_or(Outer::Caller, |h| Outer::Handler(h.dispatch));
    let handler = state.handlers.open_at(frame).expect("validated: delegate ends a try");
    handler.outer = outer;
}

/// `throw`: a new exception of tag `t` with the payload from the stack, thrown.
pub fn throw(builder: &mut FunctionBuilder, env: &mut FuncEnv, state: &mut TranslationState, t: TagIndex) {
    let n = payload_types(env, t).len();
    let values = state.peekn(n).to_vec();
    state.popn(n);
    let exn = env.new_exception(builder, t);
    for (i, v) in values.into_iter().enumerate() {
        env.store_payload(builder, exn, i, v);
    }
    throw_exception(builder, env, state, exn);
}

/// `throw_ref`: throws the exception on the stack (traps on null).
pub fn throw_ref(builder: &mut FunctionBuilder, env: &mut FuncEnv, state: &mut TranslationState) {
    let exn = state.pop1();
    builder.ins().trapz(exn, TrapKind::NullExceptionReference.to_trap_code());
    throw_exception(builder, env, state, exn);
}

/// Legacy `rethrow`: throws again the exception caught by the catch body of the `try` at label
/// `depth`.
pub fn rethrow(builder: &mut FunctionBuilder, env: &mut FuncEnv, state: &mut TranslationState, depth: u32) {
    let frame = state.control.len() - 1 - depth as usize;
    let handler = state.handlers.open_at(frame).expect("validated: rethrow names a catch");
    handler.rethrown = true;
    let exn = handler.caught.expect("validated: rethrow inside a catch body");
    throw_exception(builder, env, state, exn);
}

/// Throws `exn` from the current position: to the innermost handler covering it, or to the
/// callers. Control does not go on.
fn throw_exception(builder: &mut FunctionBuilder, env: &mut FuncEnv, state: &mut TranslationState, exn: Value) {
    match state.handlers.target() {
        Outer::Handler(dispatch) => {
            builder.ins().jump(dispatch, &[BlockArg::Value(exn)]);
        }
        Outer::Caller => env.throw_to_caller(builder, exn),
    }
    state.reachable = false;
}

/// The payload's types of tag `t`.
fn payload_types(env: &FuncEnv, t: TagIndex) -> Vec<ValType> {
    env.module.types[env.module.tags[t.index()].index()].params.to_vec()
}

/// Emits the dispatch code of every handler something reaches, after the function's body.
pub fn emit(builder: &mut FunctionBuilder, env: &mut FuncEnv, state: &mut TranslationState) {
    let handlers = std::mem::take(&mut state.handlers.ended);
    for h in handlers {
        if !state.handlers.used.contains(&h.dispatch) {
            continue;
        }
        builder.switch_to_block(h.dispatch);
        let exn = builder.block_params(h.dispatch)[0];
        let mut caught_all = false;
        for clause in &h.clauses {
            let payload = match clause.tag {
                Some(t) => {
                    let thrown = env.exception_tag(builder, exn);
                    let wanted = env.tag_identity(builder, t);
                    let same = builder.ins().icmp(IntCC::Equal, thrown, wanted);
                    let (matched, other) = (builder.create_block(), builder.create_block());
                    builder.ins().brif(same, matched, &[], other, &[]);
                    builder.switch_to_block(matched);
                    let types = payload_types(env, t);
                    let values: Vec<Value> =
                        types.iter().enumerate().map(|(i, ty)| env.load_payload(builder, exn, i, *ty)).collect();
                    catch(builder, env, clause, exn, values, h.rethrown);
                    builder.switch_to_block(other);
                    continue;
                }
                None => Vec::new(),
            };
            catch(builder, env, clause, exn, payload, h.rethrown);
            caught_all = true;
            break;
        }
        if !caught_all {
            match h.outer {
                Outer::Handler(dispatch) => {
                    state.handlers.used.insert(dispatch);
                    builder.ins().jump(dispatch, &[BlockArg::Value(exn)]);
                }
                Outer::Caller => env.throw_to_caller(builder, exn),
            }
        }
    }
}

/// A clause caught `exn` (whose payload is `payload`): keeps or releases the object and
/// branches to the clause's destination. `rethrown`: a legacy catch body may rethrow it.
fn catch(
    builder: &mut FunctionBuilder,
    env: &mut FuncEnv,
    clause: &Clause,
    exn: Value,
    mut payload: Vec<Value>,
    rethrown: bool,
) {
    if clause.escapes || rethrown {
        env.mark_escaped(builder, exn);
    } else {
        env.release_exception(builder, exn);
    }
    if clause.pass_ref {
        payload.push(exn);
    }
    let args: Vec<BlockArg> = payload.into_iter().map(BlockArg::Value).collect();
    builder.ins().jump(clause.dest, &args);
}
