//! The library's errors: building a plugin ([`BuildError`]) and calling it ([`CallError`]).
//! Nothing a plugin does reaches the host as anything but a [`CallError`].

/// Why a call failed. The instance that served it is replaced after every kind but
/// [`CallError::Overloaded`], [`CallError::Refused`], [`CallError::TooLarge`],
/// [`CallError::TooDeep`] and [`CallError::OutputLimit`] (its state is lost).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The guest trapped.
    #[error("the plugin trapped: {kind}{}", function.as_ref().map(|f| format!(" in {f}")).unwrap_or_default())]
    Trap {
        /// The trap, in the specification's words ("unreachable").
        kind: String,
        /// Where, when known.
        function: Option<String>,
    },
    /// The call took longer than the call timeout; the instance was killed at once.
    #[error("the call timed out; the instance was killed")]
    Timeout,
    /// The call used up its CPU budget (`PluginBuilder::call_cpu_limit`; the instance was
    /// killed at once), or the instance its CPU time over its life (`limits.cpu_time`).
    #[error("the plugin used up its CPU time")]
    CpuLimit,
    /// The guest needed more memory than `limits.memory` (a refused `memory.grow` that ended
    /// in a trap, or the instance killed for its memory).
    #[error("the plugin ran out of memory")]
    MemoryLimit,
    /// The call wrote more than `limits.output` (or the payload window) to stdout.
    #[error("the plugin's output passed its limit")]
    OutputLimit,
    /// The instance died otherwise: how.
    #[error("the plugin's process died: {verdict}")]
    Crashed {
        /// "killed by signal 11", "exited with status 3", "bad system call (socket)".
        verdict: String,
    },
    /// Every instance is busy and the queue is full (or the wait outlasted the timeout).
    #[error("every plugin instance is busy")]
    Overloaded,
    /// The instance broke the protocol (garbage on the channel); it was killed.
    #[error("the plugin broke the protocol: {0}")]
    Protocol(String),
    /// A host function failed (returned an error or panicked): the host's error, not the
    /// plugin's.
    #[error("host function {name} failed: {message}")]
    HostFunction {
        /// The host function.
        name: String,
        /// Its error, or the panic's message.
        message: String,
    },
    /// Host functions calling the plugin again went deeper than the cap.
    #[error("nested plugin calls deeper than {depth}")]
    TooDeep {
        /// The cap.
        depth: u32,
    },
    /// The request cannot be served: no such export, arguments of the wrong types, memory
    /// out of bounds.
    #[error("{0}")]
    Refused(String),
    /// A payload larger than the window.
    #[error("a payload of {len} bytes, more than the {max} a call may carry")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The window's size.
        max: usize,
    },
    /// No instance can be had: under `OnFailure::Fail` after a failure, past the restart
    /// budget, or the instance could not start.
    #[error("the plugin is unavailable: {0}")]
    Unavailable(String),
}

impl CallError {
    /// A short name of the kind, for statistics ("trap", "timeout", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Trap { .. } => "trap",
            CallError::Timeout => "timeout",
            CallError::CpuLimit => "cpu_limit",
            CallError::MemoryLimit => "memory_limit",
            CallError::OutputLimit => "output_limit",
            CallError::Crashed { .. } => "crashed",
            CallError::Overloaded => "overloaded",
            CallError::Protocol(_) => "protocol",
            CallError::HostFunction { .. } => "host_function",
            CallError::TooDeep { .. } => "too_deep",
            CallError::Refused(_) => "refused",
            CallError::TooLarge { .. } => "too_large",
            CallError::Unavailable(_) => "unavailable",
        }
    }

    /// Whether the instance that served the call must be replaced.
    pub(crate) fn replaces_instance(&self) -> bool {
        !matches!(
            self,
            CallError::Overloaded
                | CallError::Refused(_)
                | CallError::TooLarge { .. }
                | CallError::TooDeep { .. }
                | CallError::OutputLimit
                | CallError::Unavailable(_)
        )
    }
}

/// Why a plugin could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The instance keeper could not be started (the executable, the socket, the memfd).
    #[error("failed to start the instance keeper: {0}")]
    Keeper(String),
    /// The first instance did not start: the module does not compile or link, or confinement
    /// failed.
    #[error("the plugin's instance did not start: {0}")]
    Instance(String),
    /// `instances(0)`, or another setting out of range.
    #[error("{0}")]
    Config(String),
    /// Async host functions need a tokio runtime: none was given (`PluginBuilder::runtime`)
    /// and none was current at `build`.
    #[cfg(feature = "tokio")]
    #[error("async host functions need a tokio runtime: pass one with .runtime(handle), or build within one")]
    NoRuntime,
}
