//! Resource limits, the kernel's backstops behind the supervisor's own checks.

/// The limits to set (each `None` leaves the inherited limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rlimits {
    /// CPU seconds: SIGXCPU at the limit, SIGKILL a second later.
    pub cpu_seconds: Option<u64>,
    /// Largest file the process may write, in bytes.
    pub file_size: Option<u64>,
    /// Open descriptors.
    pub open_files: Option<u64>,
    /// Private writable memory in bytes (RLIMIT_DATA): counts memory made accessible, not the
    /// PROT_NONE guard reservations of linear memories, which RLIMIT_AS would.
    pub data: Option<u64>,
}

/// Why a limit could not be set.
#[derive(Debug, thiserror::Error)]
#[error("setrlimit({resource}): {source}")]
pub struct RlimitError {
    /// Which limit.
    pub resource: &'static str,
    /// The error.
    pub source: std::io::Error,
}

fn set(resource: libc::__rlimit_resource_t, name: &'static str, soft: u64, hard: u64) -> Result<(), RlimitError> {
    let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: valid rlimit for our own process.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(RlimitError { resource: name, source: std::io::Error::last_os_error() });
    }
    Ok(())
}

/// Sets the limits, and no core dumps.
pub fn apply(limits: &Rlimits) -> Result<(), RlimitError> {
    set(libc::RLIMIT_CORE, "RLIMIT_CORE", 0, 0)?;
    if let Some(s) = limits.cpu_seconds {
        set(libc::RLIMIT_CPU, "RLIMIT_CPU", s, s + 1)?;
    }
    if let Some(b) = limits.file_size {
        set(libc::RLIMIT_FSIZE, "RLIMIT_FSIZE", b, b)?;
    }
    if let Some(n) = limits.open_files {
        set(libc::RLIMIT_NOFILE, "RLIMIT_NOFILE", n, n)?;
    }
    if let Some(b) = limits.data {
        set(libc::RLIMIT_DATA, "RLIMIT_DATA", b, b)?;
    }
    Ok(())
}
