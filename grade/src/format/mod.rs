//! Result formats: an aligned text table, JSON (`grade/schema/result.schema.json`), JUnit XML,
//! Gradescope's `results.json`, and one self-contained HTML page.

mod gradescope;
mod html;
mod junit;
mod select;
mod table;
mod text;

pub use select::{render, Format};
