//! `sandboxrun call [-p POLICY] MODULE EXPORT < input > output`: calls one export of a module
//! as a plugin (`sandboxrun_plugin`): stdin is the export's input, its stdout the output. The
//! module runs confined as a run is (the policy's limits, mounts and identity), in an instance
//! kept by a process this binary starts again; `policy.limits.wall_time` bounds the call.
//!
//! Exit status: 0; 124 timeout or CPU limit; 134 trap; 137 memory limit; 153 output limit;
//! 1 the plugin's process died or broke the protocol; 125 sandboxrun could not call it.

use crate::errln;
use clap::Args;
use sandboxrun_plugin::{CallError, OnFailure, Plugin};
use std::io::{Read, Write};
use std::path::PathBuf;

/// `sandboxrun call`'s arguments.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// The policy (YAML); without it: no mounts, empty environment, default limits.
    #[arg(short = 'p', long = "policy", value_name = "POLICY")]
    pub policy: Option<PathBuf>,
    /// The module (`.wasm` or `.wat`).
    pub module: PathBuf,
    /// The export to call: a function without parameters reading stdin, writing stdout.
    /// Example: `sandboxrun call -p p.yaml render.wasm render < page.md > page.html`.
    pub export: String,
}

/// Runs `sandboxrun call`; returns the exit status.
pub fn run(args: &CallArgs) -> i32 {
    let fail = |message: String| {
        errln!("sandboxrun: error: {message}");
        125
    };
    let policy = match &args.policy {
        Some(path) => policy::Policy::load(path),
        None => Ok(policy::Policy::default_policy()),
    };
    let policy = match policy {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    let module = match std::fs::read(&args.module) {
        Ok(m) => m,
        Err(e) => return fail(format!("failed to read '{}': {e}", args.module.display())),
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        return fail(format!("failed to read stdin: {e}"));
    }
    let window = (input.len() as u64).max(policy.limits.output).clamp(64 << 10, 1 << 30);
    let timeout = policy.limits.wall_time;
    let plugin = Plugin::builder(module)
        .policy(policy)
        .call_timeout(timeout)
        .on_failure(OnFailure::Fail)
        .max_payload(window)
        .build();
    let plugin = match plugin {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    match plugin.call(&args.export, &input) {
        Ok(output) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(&output).and_then(|()| stdout.flush()) {
                Ok(()) => 0,
                Err(e) => fail(format!("failed to write stdout: {e}")),
            }
        }
        Err(e) => {
            errln!("sandboxrun: {e}");
            match e {
                CallError::Timeout | CallError::CpuLimit => 124,
                CallError::Trap { .. } => 134,
                CallError::MemoryLimit => 137,
                CallError::OutputLimit => 153,
                CallError::Crashed { .. } | CallError::Protocol(_) => 1,
                _ => 125,
            }
        }
    }
}
