//! A small importer for a DMOJ problem directory (`init.yml` beside its test files): single
//! cases become one-test groups, `batched` entries become batches (`on_reject: break`, points
//! all-or-nothing), `dependencies` become group dependencies, and the common checkers map to
//! the built-in ones. DMOJ keeps time and memory limits outside `init.yml`: the format's
//! defaults apply, and the caller may overwrite [`crate::Problem::limits`].

use crate::checker::{Checker, Compare, CompareMode, Convention, FloatTolerance};
use crate::error::PackageError;
use crate::package::{
    package_sha256, Aggregation, Group, OnReject, Problem, ProblemKind, ProblemLimits, TestCase, DEFAULT_MEMORY_MIB,
    DEFAULT_OUTPUT_MIB, DEFAULT_TIME_LIMIT_MS, DEFAULT_VALIDATION_TIME_MS,
};
use crate::yaml::{parse, read_text, OneOrMany};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
struct RawInit {
    archive: Option<String>,
    #[serde(default)]
    test_cases: Vec<RawCase>,
    checker: Option<RawChecker>,
}

#[derive(Debug, Default, Deserialize)]
struct RawCase {
    #[serde(rename = "in")]
    input: Option<String>,
    out: Option<String>,
    points: Option<f64>,
    batched: Option<Vec<RawCase>>,
    dependencies: Option<Vec<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawChecker {
    Name(String),
    Full { name: String, args: Option<RawArgs> },
}

#[derive(Debug, Default, Deserialize)]
struct RawArgs {
    precision: Option<i32>,
    files: Option<OneOrMany>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

fn checker(dir: &Path, file: &Path, raw: Option<RawChecker>) -> Result<Checker, PackageError> {
    let (name, args) = match raw {
        None => ("standard".to_string(), RawArgs::default()),
        Some(RawChecker::Name(n)) => (n, RawArgs::default()),
        Some(RawChecker::Full { name, args }) => (name, args.unwrap_or_default()),
    };
    let eps = || 10f64.powi(-args.precision.unwrap_or(6));
    let c = match name.as_str() {
        "standard" => Compare::TOKENS,
        "identical" => Compare::EXACT,
        "floats" => Compare::floats(eps(), eps()),
        "floatsabs" => Compare { floats: Some(FloatTolerance { absolute: eps(), relative: 0.0 }), ..Compare::TOKENS },
        "floatsrel" => Compare { floats: Some(FloatTolerance { absolute: 0.0, relative: eps() }), ..Compare::TOKENS },
        "unordered" | "sorted" => Compare { mode: CompareMode::UnorderedLines, ..Compare::TOKENS },
        "bridged" => {
            let files = args.files.map(|f| f.words()).unwrap_or_default();
            let wasm: Vec<&String> = files.iter().filter(|f| f.ends_with(".wasm")).collect();
            let [module] = wasm.as_slice() else {
                return Err(PackageError::invalid(file, "checker: bridged needs exactly one prebuilt .wasm in args.files"));
            };
            let convention = match args.kind.as_deref() {
                Some("testlib") => Convention::Testlib,
                Some("icpc") | None => Convention::Icpc,
                Some(other) => {
                    return Err(PackageError::invalid(file, format!("checker: bridged type '{other}' is not supported (use testlib or icpc)")))
                }
            };
            let module = dir.join(module.as_str());
            if !module.is_file() {
                return Err(PackageError::invalid(file, format!("checker: '{}' not found", module.display())));
            }
            return Ok(Checker::Custom { module, convention });
        }
        other => {
            return Err(PackageError::invalid(
                file,
                format!("checker: '{other}' is not supported (standard, identical, floats, floatsabs, floatsrel, unordered, sorted, bridged)"),
            ))
        }
    };
    Ok(Checker::Builtin(c))
}

/// Imports the DMOJ problem in `dir` (its `init.yml` and the test files it names).
///
/// # Errors
/// [`PackageError`] naming `init.yml` (and the line, for YAML errors).
pub fn load_dmoj(dir: &Path) -> Result<Problem, PackageError> {
    let file = dir.join("init.yml");
    let raw: RawInit = parse(&file, &read_text(&file)?)?;
    if raw.test_cases.is_empty() {
        return Err(PackageError::invalid(&file, "test_cases is empty"));
    }
    let checker = checker(dir, &file, raw.checker)?;
    let mut groups: Vec<Group> = Vec::new();
    let mut tests: Vec<TestCase> = Vec::new();
    let case_files = |c: &RawCase, at: &str| -> Result<(PathBuf, PathBuf), PackageError> {
        let (Some(i), Some(o)) = (&c.input, &c.out) else {
            return Err(PackageError::invalid(&file, format!("{at}: needs both 'in' and 'out'")));
        };
        let (i, o) = (dir.join(i), dir.join(o));
        for p in [&i, &o] {
            if !p.is_file() {
                let hint = raw.archive.as_ref().map(|a| format!(" (unpack '{a}' beside init.yml)")).unwrap_or_default();
                return Err(PackageError::invalid(&file, format!("{at}: '{}' not found{hint}", p.display())));
            }
        }
        Ok((i, o))
    };
    for (k, case) in raw.test_cases.iter().enumerate() {
        let at = format!("test_cases[{}]", k + 1);
        let g = groups.len();
        let points = case.points.unwrap_or(0.0);
        if !(points.is_finite() && points >= 0.0) {
            return Err(PackageError::invalid(&file, format!("{at}: points must be a non-negative number")));
        }
        let (name, members, on_reject) = match &case.batched {
            Some(b) => {
                if b.is_empty() {
                    return Err(PackageError::invalid(&file, format!("{at}: batched is empty")));
                }
                (format!("batch{}", k + 1), b.iter().collect::<Vec<_>>(), OnReject::Break)
            }
            None => (format!("case{}", k + 1), vec![case], OnReject::Continue),
        };
        let mut ids = Vec::new();
        for (m, c) in members.iter().enumerate() {
            let at = if case.batched.is_some() { format!("{at}.batched[{}]", m + 1) } else { at.clone() };
            let (input, answer) = case_files(c, &at)?;
            let stem = Path::new(c.input.as_deref().unwrap_or_default()).with_extension("");
            ids.push(tests.len());
            tests.push(TestCase { id: format!("{name}/{}", stem.display()), group: g, input, answer });
        }
        let mut depends_on = Vec::new();
        for &d in case.dependencies.iter().flatten() {
            if d == 0 || d > k {
                return Err(PackageError::invalid(
                    &file,
                    format!("{at}: dependency {d} must name an earlier entry (1-based)"),
                ));
            }
            depends_on.push(d - 1);
        }
        groups.push(Group {
            name,
            points: Some(points),
            aggregation: Aggregation::Min,
            on_reject,
            depends_on,
            checker: checker.clone(),
            checker_flags: Vec::new(),
            tests: ids,
        });
    }
    let name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "problem".into());
    let mib = 1u64 << 20;
    let limits = ProblemLimits {
        time_limit_ms: DEFAULT_TIME_LIMIT_MS,
        wall_limit_ms: 2 * DEFAULT_TIME_LIMIT_MS + 1000,
        memory_bytes: DEFAULT_MEMORY_MIB * mib,
        output_bytes: DEFAULT_OUTPUT_MIB * mib,
        idle_limit_ms: DEFAULT_TIME_LIMIT_MS + 1000,
        validation_time_ms: DEFAULT_VALIDATION_TIME_MS,
        validation_memory_bytes: DEFAULT_MEMORY_MIB * mib,
        validation_output_bytes: DEFAULT_OUTPUT_MIB * mib,
    };
    Ok(Problem {
        root: dir.to_path_buf(),
        name,
        limits,
        kind: ProblemKind::Batch,
        groups,
        tests,
        input_validators: Vec::new(),
        sha256: package_sha256(dir)?,
    })
}
