//! Reading the YAML files of a package, with errors that name the file, line and column.

use crate::error::PackageError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::Path;

/// Reads `path` as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, PackageError> {
    let bytes = std::fs::read(path).map_err(|e| PackageError::read(path, &e))?;
    String::from_utf8(bytes)
        .map_err(|e| PackageError::invalid(path, format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to())))
}

/// Parses YAML text into `T`; an empty file is `T::default()`.
pub(crate) fn parse<T: DeserializeOwned + Default>(path: &Path, text: &str) -> Result<T, PackageError> {
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(T::default());
    }
    serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        // "error: line L column C: message" → "message".
        let message = first.split_once(": ").map(|(_, rest)| rest).unwrap_or(&first);
        let message = message.split_once(": ").filter(|(l, _)| l.starts_with("line ")).map_or(message, |(_, m)| m);
        PackageError::Yaml { path: path.to_path_buf(), line, column, message: message.to_string() }
    })
}

/// A YAML value that may be one string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    /// `key: value`
    One(String),
    /// `key: [a, b]`
    Many(Vec<String>),
}

impl OneOrMany {
    /// The words: a single string is split on whitespace.
    pub(crate) fn words(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s.split_whitespace().map(str::to_string).collect(),
            OneOrMany::Many(v) => v.iter().flat_map(|s| s.split_whitespace().map(str::to_string)).collect(),
        }
    }
}

/// A YAML number, accepted as an integer or a float.
pub(crate) fn positive(path: &Path, key: &str, v: f64) -> Result<f64, PackageError> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(PackageError::invalid(path, format!("{key} must be a positive number, not {v}")))
    }
}
