//! The compile stage: every defined function (and the trampolines) to machine code, in
//! parallel, producing a relocatable [`Artifact`].

use crate::artifact::{Artifact, CompiledFunction, LibCall, RelocKind, RelocTarget, Relocation};
use crate::module_info::ModuleInfo;
use crate::translate::env::{ir_type, wasm_signature, FuncEnv};
use crate::translate::{translate_function, TranslateError};
use crate::trap::TrapKind;
use crate::types::*;
use crate::vm::memory::BoundsStrategy;
use crate::vm::vmctx::VALRAW_SIZE;
use cranelift_codegen::ir::{self, types, AbiParam, InstBuilder, MemFlagsData, Signature};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{binemit, control::ControlPlane, Context, FinalizedMachReloc, FinalizedRelocTarget};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Builds one trampoline for a function type; the flag says whether the code counts
/// instructions.
type TrampolineBuilder = fn(&mut ir::Function, &mut FunctionBuilderContext, &FuncType, &dyn TargetIsa, bool);

type UserFuncNames = cranelift_codegen::entity::PrimaryMap<ir::UserExternalNameRef, ir::UserExternalName>;

/// Why compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The host's code generator could not be set up.
    #[error("code generator unavailable: {0}")]
    Isa(String),
    /// A function could not be translated.
    #[error(transparent)]
    Translate(#[from] TranslateError),
    /// Cranelift rejected a function.
    #[error("function {func}: code generation failed: {message}")]
    Codegen {
        /// Function index (or `u32::MAX` for a trampoline).
        func: u32,
        /// Cranelift's message.
        message: String,
    },
}

/// The target's code generator and the settings that shape generated code.
pub struct Compiler {
    isa: OwnedTargetIsa,
    /// The same with frame pointers kept, for functions that make tail calls (Cranelift's x64
    /// tail calls rely on them) or throw to their callers (the unwinder starts from their
    /// frame pointer); other functions do without.
    isa_frame_pointers: OwnedTargetIsa,
    bounds: BoundsStrategy,
    count_instructions: bool,
    identity: String,
}

impl Compiler {
    /// A compiler for the host CPU with `bounds` as the memory strategy, counting instructions
    /// or not ([`crate::Config::count_instructions`]); its artifacts carry `identity` (the
    /// engine's, [`crate::Engine::identity`]).
    pub fn new(bounds: BoundsStrategy, count_instructions: bool, identity: String) -> Result<Self, CompileError> {
        let mut flags = settings::builder();
        if count_instructions {
            // The count lives in the pinned register (r15), which the register allocator then
            // never hands out (see `translate::budget`). Without counting, no flag changes.
            flags.set("enable_pinned_reg", "true").map_err(|e| CompileError::Isa(format!("enable_pinned_reg: {e}")))?;
        }
        for (name, value) in [
            ("opt_level", "speed"),
            ("enable_verifier", "false"),
            ("enable_multi_ret_implicit_sret", "true"),
            ("unwind_info", "false"),
        ] {
            flags.set(name, value).map_err(|e| CompileError::Isa(format!("{name}: {e}")))?;
        }
        let isa_with = |frame_pointers: &str| {
            let mut flags = flags.clone();
            flags
                .set("preserve_frame_pointers", frame_pointers)
                .map_err(|e| CompileError::Isa(format!("preserve_frame_pointers: {e}")))?;
            let isa_builder = cranelift_native::builder().map_err(|e| CompileError::Isa(e.to_string()))?;
            isa_builder.finish(settings::Flags::new(flags)).map_err(|e| CompileError::Isa(e.to_string()))
        };
        let (isa, isa_frame_pointers) = (isa_with("false")?, isa_with("true")?);
        Ok(Compiler { isa, isa_frame_pointers, bounds, count_instructions, identity })
    }

    /// The memory strategy compiled code assumes.
    pub fn bounds(&self) -> BoundsStrategy {
        self.bounds
    }

    /// Compiles every defined function of `module` (whose binary is `wasm`) and the
    /// trampolines, using up to `threads` threads.
    pub fn compile_module(&self, module: &ModuleInfo, wasm: &[u8], threads: usize) -> Result<Artifact, CompileError> {
        let num_funcs = module.num_defined_funcs();
        let num_types = module.types.len();
        // Jobs: functions, then an array trampoline and a host trampoline per type.
        let total = num_funcs + 2 * num_types;
        // Largest bodies first, trampolines last: a thread that takes a big function late would
        // leave the others idle at the end (hello's printf made 2 threads take 5 or 9 ms).
        let mut order: Vec<usize> = (0..total).collect();
        order[..num_funcs].sort_by_key(|&f| std::cmp::Reverse(module.bodies[f].len()));
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<CompiledFunction>>> = Mutex::new((0..total).map(|_| None).collect());
        let first_error: Mutex<Option<CompileError>> = Mutex::new(None);
        let used = used_types(module);
        let worker = || {
            let mut ctx = Context::new();
            let mut builder_ctx = FunctionBuilderContext::new();
            let mut env = FuncEnv::new(module, self.bounds, &*self.isa);
            env.count_instructions = self.count_instructions;
            while let Some(&job) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    break;
                }
                ctx.clear();
                let outcome = if job < num_funcs {
                    let func = module.func_index(DefinedFuncIndex(job as u32));
                    let range = module.bodies[job].clone();
                    let body = wasmparser::FunctionBody::new(wasmparser::BinaryReader::new(
                        &wasm[range.clone()],
                        range.start as u64,
                    ));
                    translate_function(&mut env, func, &body, &mut ctx.func, &mut builder_ctx)
                        .map_err(CompileError::from)
                        .and_then(|()| {
                            let isa = if env.frame_pointer { &*self.isa_frame_pointers } else { &*self.isa };
                            self.emit(&mut ctx, func.0, isa)
                        })
                } else {
                    let t = (job - num_funcs) / 2;
                    let ty = &module.types[t];
                    let (wanted, build): (bool, TrampolineBuilder) = if (job - num_funcs).is_multiple_of(2) {
                        (used.array[t], build_array_trampoline)
                    } else {
                        (used.host[t], build_host_trampoline)
                    };
                    if wanted {
                        build(&mut ctx.func, &mut builder_ctx, ty, &*self.isa, self.count_instructions);
                        self.emit(&mut ctx, u32::MAX, &*self.isa)
                    } else {
                        Ok(CompiledFunction::default())
                    }
                };
                match outcome {
                    Ok(compiled) => results.lock().expect("no panics while locked")[job] = Some(compiled),
                    Err(e) => {
                        let mut slot = first_error.lock().expect("no panics while locked");
                        slot.get_or_insert(e);
                    }
                }
            }
        };
        let threads = threads.clamp(1, 64).min(total.max(1));
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(worker);
            }
            worker();
        });
        if let Some(e) = first_error.into_inner().expect("no panics while locked") {
            return Err(e);
        }
        let mut results =
            results.into_inner().expect("no panics while locked").into_iter().map(|r| r.expect("every job ran"));
        let functions = results.by_ref().take(num_funcs).collect();
        let mut array_trampolines = Vec::with_capacity(num_types);
        let mut host_trampolines = Vec::with_capacity(num_types);
        for _ in 0..num_types {
            array_trampolines.push(results.next().expect("job"));
            host_trampolines.push(results.next().expect("job"));
        }
        Ok(Artifact::new(self.identity.clone(), wasm.len(), module, functions, array_trampolines, host_trampolines))
    }

    fn emit(&self, ctx: &mut Context, func: u32, isa: &dyn TargetIsa) -> Result<CompiledFunction, CompileError> {
        let codegen_error = |message: String| CompileError::Codegen { func, message };
        let names = ctx.func.params.user_named_funcs().clone();
        let compiled =
            ctx.compile(isa, &mut ControlPlane::default()).map_err(|e| codegen_error(format!("{:?}", e.inner)))?;
        let buffer = &compiled.buffer;
        let mut relocs = Vec::new();
        for reloc in buffer.relocs() {
            relocs.push(convert_reloc(&names, reloc).map_err(codegen_error)?);
        }
        let traps = buffer
            .traps()
            .iter()
            .map(|t| {
                TrapKind::from_trap_code(t.code)
                    .map(|k| (t.offset, k))
                    .ok_or_else(|| codegen_error(format!("unexpected trap code {}", t.code)))
            })
            .collect::<Result<_, _>>()?;
        // Calls in a `try_table`: each has one catch-all handler (the translator's dispatch
        // code compares tags itself, see `translate::exceptions`).
        let handlers = buffer
            .call_sites()
            .filter_map(|site| {
                site.exception_handlers.iter().find_map(|h| match h {
                    cranelift_codegen::FinalizedMachExceptionHandler::Default(offset) => Some((site.ret_addr, *offset)),
                    _ => None,
                })
            })
            .collect();
        let mut code = buffer.data().to_vec();
        if self.count_instructions && func != u32::MAX {
            // The instructions pending at each trap site, from the source locations the
            // translator set (see `budget_sites`).
            let srclocs = buffer.get_srclocs_sorted();
            let pending = |offset: u32| {
                let i = srclocs.partition_point(|s| s.start <= offset).checked_sub(1)?;
                let s = &srclocs[i];
                (offset < s.end && !s.loc.is_default()).then(|| s.loc.bits())
            };
            let sites = buffer.traps().iter().filter_map(|t| Some((t.offset, pending(t.offset)?)));
            crate::budget_sites::append(&mut code, sites);
        }
        Ok(CompiledFunction { code, relocs, traps, handlers })
    }
}

fn convert_reloc(names: &UserFuncNames, reloc: &FinalizedMachReloc) -> Result<Relocation, String> {
    let kind = match reloc.kind {
        binemit::Reloc::X86CallPCRel4 | binemit::Reloc::X86PCRel4 => RelocKind::PcRel4,
        binemit::Reloc::Abs8 => RelocKind::Abs8,
        other => return Err(format!("unsupported relocation {other:?}")),
    };
    let target = match &reloc.target {
        FinalizedRelocTarget::ExternalName(ir::ExternalName::User(r)) => {
            let name = &names[*r];
            RelocTarget::Func(name.index)
        }
        FinalizedRelocTarget::ExternalName(ir::ExternalName::LibCall(lc)) => {
            RelocTarget::LibCall(LibCall::from_cranelift(*lc).ok_or_else(|| format!("unsupported libcall {lc:?}"))?)
        }
        other => return Err(format!("unsupported relocation target {other:?}")),
    };
    Ok(Relocation { offset: reloc.offset, kind, target, addend: reloc.addend })
}

struct UsedTypes {
    array: Vec<bool>,
    host: Vec<bool>,
}

/// Types that need an array-call trampoline (any function's type) or a host trampoline
/// (imported functions' types).
fn used_types(module: &ModuleInfo) -> UsedTypes {
    let mut array = vec![false; module.types.len()];
    let mut host = vec![false; module.types.len()];
    for (i, ty) in module.functions.iter().enumerate() {
        array[ty.index()] = true;
        if i < module.num_imported_funcs as usize {
            host[ty.index()] = true;
        }
    }
    UsedTypes { array, host }
}

/// `extern "C" fn(callee_vmctx, wasm_call, caller_vmctx, values: *mut ValRaw)`: loads the
/// arguments from `values`, calls `wasm_call`, stores the results back into `values`. With
/// counting, the count register is set and read back by `vm::traps::catch_traps`, around it.
fn build_array_trampoline(
    func: &mut ir::Function,
    builder_ctx: &mut FunctionBuilderContext,
    ty: &FuncType,
    isa: &dyn TargetIsa,
    _count_instructions: bool,
) {
    let call_conv = isa.default_call_conv();
    let mut sig = Signature::new(call_conv);
    sig.params.extend([AbiParam::new(types::I64); 4]);
    func.signature = sig;
    let mut builder = FunctionBuilder::new(func, builder_ctx);
    let block = builder.create_block();
    builder.append_block_params_for_function_params(block);
    builder.switch_to_block(block);
    let p = builder.block_params(block).to_vec();
    let (callee_vmctx, code, caller_vmctx, values) = (p[0], p[1], p[2], p[3]);
    let mut args = vec![callee_vmctx, caller_vmctx];
    for (i, t) in ty.params.iter().enumerate() {
        let v = builder.ins().load(ir_type(*t), MemFlagsData::trusted(), values, (i as u32 * VALRAW_SIZE) as i32);
        args.push(v);
    }
    let wasm_sig = builder.import_signature(wasm_signature(ty));
    let call = builder.ins().call_indirect(wasm_sig, code, &args);
    let results = builder.inst_results(call).to_vec();
    for (i, r) in results.into_iter().enumerate() {
        builder.ins().store(MemFlagsData::trusted(), r, values, (i as u32 * VALRAW_SIZE) as i32);
    }
    builder.ins().return_(&[]);
    builder.seal_all_blocks();
    builder.finalize(isa.frontend_config());
}

/// A function with the wasm calling convention whose context is a host function's context:
/// spills the arguments to a stack array, calls the dispatcher stored at offset 0 of the
/// context as `extern "C" fn(host_ctx, caller_vmctx, values: *mut ValRaw, len)`, and returns
/// the results the dispatcher wrote back. With counting, the count is checked and handed to the
/// host around the dispatch ([`crate::translate::budget::around_host_call`]).
fn build_host_trampoline(
    func: &mut ir::Function,
    builder_ctx: &mut FunctionBuilderContext,
    ty: &FuncType,
    isa: &dyn TargetIsa,
    count_instructions: bool,
) {
    let call_conv = isa.default_call_conv();
    func.signature = wasm_signature(ty);
    let mut builder = FunctionBuilder::new(func, builder_ctx);
    let block = builder.create_block();
    builder.append_block_params_for_function_params(block);
    builder.switch_to_block(block);
    let p = builder.block_params(block).to_vec();
    let len = ty.params.len().max(ty.results.len()).max(1);
    let slot = builder.create_sized_stack_slot(ir::StackSlotData::new(
        ir::StackSlotKind::ExplicitSlot,
        len as u32 * VALRAW_SIZE,
        4,
    ));
    let values = builder.ins().stack_addr(types::I64, slot, 0);
    for (i, v) in p[2..].iter().enumerate() {
        builder.ins().store(MemFlagsData::trusted(), *v, values, (i as u32 * VALRAW_SIZE) as i32);
    }
    let mut dispatch_sig = Signature::new(call_conv);
    dispatch_sig.params.extend([AbiParam::new(types::I64); 4]);
    let dispatch_sig = builder.import_signature(dispatch_sig);
    let dispatch = builder.ins().load(types::I64, MemFlagsData::trusted(), p[0], 0);
    let len = builder.ins().iconst(types::I64, len as i64);
    if count_instructions {
        crate::translate::budget::around_host_call(&mut builder, p[1], |builder| {
            builder.ins().call_indirect(dispatch_sig, dispatch, &[p[0], p[1], values, len]);
        });
    } else {
        builder.ins().call_indirect(dispatch_sig, dispatch, &[p[0], p[1], values, len]);
    }
    let mut results = Vec::new();
    for (i, t) in ty.results.iter().enumerate() {
        results.push(builder.ins().load(ir_type(*t), MemFlagsData::trusted(), values, (i as u32 * VALRAW_SIZE) as i32));
    }
    builder.ins().return_(&results);
    builder.seal_all_blocks();
    builder.finalize(isa.frontend_config());
}
