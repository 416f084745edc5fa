//! The crate's error enums: one for loading a problem package, one for the executor, one for
//! the grading run. Messages are one lowercase line naming the file (and line) at fault.

use std::path::PathBuf;

/// A problem package (or a DMOJ `init.yml` directory) could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    /// A file or directory could not be read.
    #[error("failed to read '{path}': {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A YAML file does not parse or does not match the expected shape.
    #[error("{path}:{line}:{column}: {message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// What is wrong.
        message: String,
    },
    /// A file's content (or the package layout) is invalid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file or directory at fault.
        path: PathBuf,
        /// What is wrong and, where possible, how to fix it.
        message: String,
    },
}

impl PackageError {
    pub(crate) fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> PackageError {
        PackageError::Invalid { path: path.into(), message: message.into() }
    }

    pub(crate) fn read(path: impl Into<PathBuf>, e: &std::io::Error) -> PackageError {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            _ => e.to_string().to_lowercase(),
        };
        PackageError::Read { path: path.into(), message }
    }
}

/// The executor could not run a job at all (not the guest's doing).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("failed to run '{module}': {message}")]
pub struct ExecError {
    /// The module that could not be run.
    pub module: PathBuf,
    /// One line saying why.
    pub message: String,
}

/// The grading run itself failed (before or around the tests; a test's own trouble is an `IE`
/// verdict in its record, never this).
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    /// The scratch directory could not be created or removed.
    #[error("failed to prepare scratch directory '{path}': {message}")]
    Scratch {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// Nothing to grade.
    #[error("no submissions to grade")]
    NoSubmissions,
    /// Options that cannot work.
    #[error("invalid grading options: {0}")]
    Options(String),
}
