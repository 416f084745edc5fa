//! Choosing a format by name and rendering a result in it.

use crate::result::GradeResult;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned text: one table per submission, or a matrix for several.
    Table,
    /// The result as JSON (`grade/schema/result.schema.json`).
    Json,
    /// JUnit XML: a test suite per submission, a test case per test.
    Junit,
    /// Gradescope's `results.json` (for the first submission).
    Gradescope,
    /// One self-contained HTML page.
    Html,
}

impl Format {
    /// The format named `name` (`table`, `json`, `junit`, `gradescope`, `html`).
    pub fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "table" => Format::Table,
            "json" => Format::Json,
            "junit" => Format::Junit,
            "gradescope" => Format::Gradescope,
            "html" => Format::Html,
            _ => return None,
        })
    }
}

/// Renders `result` in `format`.
pub fn render(result: &GradeResult, format: Format) -> String {
    match format {
        Format::Table => super::table::render(result),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(result).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Junit => super::junit::render(result),
        Format::Gradescope => super::gradescope::render(result),
        Format::Html => super::html::render(result),
    }
}
