//! The problem package loader (Kattis / ICPC problem package format 2023-07, with the legacy
//! keys that cost nothing): `problem.yaml`, `data/sample`, `data/secret/**` with groups and
//! `testdata.yaml`, the output validator (checker or interactor) and input validators.
//! `docs/grading.md` is the reference for the keys and their defaults.

use crate::checker::{Checker, Compare, CompareMode, Convention, FloatTolerance};
use crate::error::PackageError;
use crate::yaml::{parse, positive, read_text, OneOrMany};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Default time limit when `problem.yaml` gives none: 1 second.
pub const DEFAULT_TIME_LIMIT_MS: u64 = 1000;
/// Default memory limit (the format's): 2048 MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 2048;
/// Default output limit (the format's): 8 MiB.
pub const DEFAULT_OUTPUT_MIB: u64 = 8;
/// Default CPU time for a checker or interactor (the format's `validation_time`): 60 s.
pub const DEFAULT_VALIDATION_TIME_MS: u64 = 60_000;

const MIB: u64 = 1 << 20;

/// The limits a problem's runs get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemLimits {
    /// CPU time per test for a submission.
    pub time_limit_ms: u64,
    /// Wall-clock per test: 2 × the time limit + 1 s.
    pub wall_limit_ms: u64,
    /// Memory per run.
    pub memory_bytes: u64,
    /// Output (stdout + stderr) per run.
    pub output_bytes: u64,
    /// Interactive runs: how long both sides may wait on each other (time limit + 1 s).
    pub idle_limit_ms: u64,
    /// CPU time for a checker, interactor or input validator.
    pub validation_time_ms: u64,
    /// Memory for a checker, interactor or input validator.
    pub validation_memory_bytes: u64,
    /// Output for a checker, interactor or input validator.
    pub validation_output_bytes: u64,
}

/// What a group does after a test that is not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReject {
    /// Run the remaining tests.
    Continue,
    /// Skip the group's remaining tests (SK): a DMOJ-style batch.
    Break,
}

/// How a group's points come from its tests' fractions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// points × the smallest fraction (all tests must pass for full points; a batch).
    Min,
    /// points split evenly among the tests, each earning its share × its fraction.
    Sum,
}

/// A group: the tests of one directory under `data/`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Its path under `data/`, e.g. `secret/group1` (`sample`, `secret`).
    pub name: String,
    /// The points it is worth (`None`: not scored).
    pub points: Option<f64>,
    /// How points come from the tests.
    pub aggregation: Aggregation,
    /// After a rejected test.
    pub on_reject: OnReject,
    /// Indices (into [`Problem::groups`]) of the groups that must be fully accepted before
    /// this one runs (earlier or later in test order; never a cycle); otherwise its tests are SK.
    pub depends_on: Vec<usize>,
    /// The checker for its tests.
    pub checker: Checker,
    /// Extra arguments for a custom checker or interactor (`output_validator_flags`).
    pub checker_flags: Vec<String>,
    /// Indices (into [`Problem::tests`]) of its tests, in order.
    pub tests: Vec<usize>,
}

/// One test case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestCase {
    /// Its path under `data/` without extension, e.g. `secret/group1/01`.
    pub id: String,
    /// Index of its group.
    pub group: usize,
    /// The input file.
    pub input: PathBuf,
    /// The answer file.
    pub answer: PathBuf,
}

/// Batch (stdin → stdout → checker) or interactive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The submission reads the input and its output is checked.
    Batch,
    /// The submission talks to an interactor.
    Interactive {
        /// The interactor module.
        interactor: PathBuf,
        /// Its exit-code convention.
        convention: Convention,
    },
}

/// A loaded, validated problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The package directory.
    pub root: PathBuf,
    /// The problem's name (`name`, its English entry, or the directory's name).
    pub name: String,
    /// Limits.
    pub limits: ProblemLimits,
    /// Batch or interactive.
    pub kind: ProblemKind,
    /// Groups in test order: `sample`, then `secret` and its subdirectories depth first.
    pub groups: Vec<Group>,
    /// Tests in order.
    pub tests: Vec<TestCase>,
    /// Input validator modules (`input_validators/**/*.wasm`), sorted.
    pub input_validators: Vec<PathBuf>,
    /// SHA-256 over the package's files (see [`package_sha256`]).
    pub sha256: String,
}

impl Problem {
    /// The total points of the problem (0 when no group has points).
    pub fn max_score(&self) -> f64 {
        self.groups.iter().filter_map(|g| g.points).sum()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum RawName {
    #[default]
    None,
    One(String),
    Many(BTreeMap<String, String>),
}

#[derive(Debug, Default, Deserialize)]
struct RawLimits {
    time_limit: Option<f64>,
    memory: Option<f64>,
    output: Option<f64>,
    validation_time: Option<f64>,
    validation_memory: Option<f64>,
    validation_output: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct RawProblem {
    #[serde(default)]
    name: RawName,
    limits: Option<RawLimits>,
    #[serde(rename = "type")]
    kind: Option<OneOrMany>,
    validation: Option<String>,
    validator_flags: Option<OneOrMany>,
    /// Legacy / DMOJ-style top-level keys.
    time_limit: Option<f64>,
    memory_limit: Option<f64>,
    /// sandboxrun's extension: `icpc` (default) or `testlib`.
    checker_convention: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawTestdata {
    points: Option<f64>,
    score: Option<f64>,
    aggregation: Option<String>,
    on_reject: Option<String>,
    depends_on: Option<OneOrMany>,
    output_validator_flags: Option<OneOrMany>,
}

/// Settings inherited down the `data/` tree.
#[derive(Clone, Debug)]
struct Inherited {
    on_reject: OnReject,
    aggregation: Aggregation,
    flags: Vec<String>,
    /// The file that set `flags` (for errors).
    flags_file: PathBuf,
}

/// Turns validator flags into a built-in comparison (Kattis's default validator flags, plus
/// sandboxrun's `exact` and `unordered_lines`).
///
/// # Errors
/// An unknown flag or a tolerance that is not a number, naming `file`.
pub fn compare_from_flags(flags: &[String], file: &Path) -> Result<Compare, PackageError> {
    let mut c = Compare { mode: CompareMode::Tokens, case_sensitive: false, floats: None };
    let mut i = 0;
    let number = |i: usize, flag: &str| -> Result<f64, PackageError> {
        let v = flags.get(i + 1).and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite() && *v >= 0.0);
        v.ok_or_else(|| {
            PackageError::invalid(file, format!("validator flag '{flag}' needs a non-negative number after it"))
        })
    };
    while i < flags.len() {
        let tol = |c: &mut Compare| *c.floats.get_or_insert(FloatTolerance { absolute: 0.0, relative: 0.0 });
        match flags[i].as_str() {
            "case_sensitive" => c.case_sensitive = true,
            "space_change_sensitive" | "exact" => c.mode = CompareMode::Exact,
            "unordered_lines" => c.mode = CompareMode::UnorderedLines,
            f @ ("float_tolerance" | "float_absolute_tolerance" | "float_relative_tolerance") => {
                let v = number(i, f)?;
                let mut t = tol(&mut c);
                match f {
                    "float_tolerance" => t = FloatTolerance { absolute: v, relative: v },
                    "float_absolute_tolerance" => t.absolute = v,
                    _ => t.relative = v,
                }
                c.floats = Some(t);
                i += 1;
            }
            other => {
                return Err(PackageError::invalid(
                    file,
                    format!("unknown validator flag '{other}' (known: case_sensitive, space_change_sensitive, float_tolerance E, float_absolute_tolerance E, float_relative_tolerance E, exact, unordered_lines)"),
                ))
            }
        }
        i += 1;
    }
    Ok(c)
}

fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

fn mib(path: &Path, key: &str, v: Option<f64>, default: u64) -> Result<u64, PackageError> {
    match v {
        None => Ok(default * MIB),
        Some(v) => Ok((positive(path, key, v)? * MIB as f64) as u64),
    }
}

fn find_wasm(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), PackageError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() && depth > 0 {
            find_wasm(&p, depth - 1, out)?;
        } else if p.extension().is_some_and(|e| e == "wasm") && p.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

/// Loads and validates the problem package in `dir`.
///
/// # Errors
/// [`PackageError`], one line naming the file (and line) at fault.
pub fn load_problem(dir: &Path) -> Result<Problem, PackageError> {
    let yaml_path = dir.join("problem.yaml");
    let raw: RawProblem = parse(&yaml_path, &read_text(&yaml_path)?)?;
    let name = match raw.name {
        RawName::One(s) => s,
        RawName::Many(m) => m.get("en").or_else(|| m.values().next()).cloned().unwrap_or_default(),
        RawName::None => String::new(),
    };
    let name = if name.trim().is_empty() {
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "problem".into())
    } else {
        name
    };
    let rl = raw.limits.unwrap_or_default();
    let p = yaml_path.as_path();
    let legacy_tl = dir.join(".timelimit");
    let time_s = match (rl.time_limit, raw.time_limit) {
        (Some(t), _) | (None, Some(t)) => Some(positive(p, "time_limit", t)?),
        (None, None) if legacy_tl.is_file() => {
            let text = read_text(&legacy_tl)?;
            let t = text.trim().parse::<f64>().map_err(|_| {
                PackageError::invalid(&legacy_tl, format!("'{}' is not a number of seconds", text.trim()))
            })?;
            Some(positive(&legacy_tl, "time limit", t)?)
        }
        (None, None) => None,
    };
    let time_limit_ms = time_s.map_or(DEFAULT_TIME_LIMIT_MS, ms).max(1);
    let memory_bytes = mib(p, "memory", rl.memory.or(raw.memory_limit), DEFAULT_MEMORY_MIB)?;
    let limits = ProblemLimits {
        time_limit_ms,
        wall_limit_ms: 2 * time_limit_ms + 1000,
        memory_bytes,
        output_bytes: mib(p, "output", rl.output, DEFAULT_OUTPUT_MIB)?,
        idle_limit_ms: time_limit_ms + 1000,
        validation_time_ms: match rl.validation_time {
            None => DEFAULT_VALIDATION_TIME_MS,
            Some(t) => ms(positive(p, "validation_time", t)?),
        },
        validation_memory_bytes: mib(p, "validation_memory", rl.validation_memory, DEFAULT_MEMORY_MIB)?,
        validation_output_bytes: mib(p, "validation_output", rl.validation_output, DEFAULT_OUTPUT_MIB)?,
    };

    // validation: default | custom | custom interactive (legacy), or type: [.., interactive].
    let mut custom = false;
    let mut interactive = false;
    if let Some(v) = &raw.validation {
        for w in v.split_whitespace() {
            match w {
                "default" => {}
                "custom" => custom = true,
                "interactive" => interactive = true,
                "score" => {}
                other => {
                    return Err(PackageError::invalid(
                        p,
                        format!("validation: unknown word '{other}' (use default, custom or custom interactive)"),
                    ))
                }
            }
        }
        if interactive && !custom {
            return Err(PackageError::invalid(p, "validation: interactive needs custom ('custom interactive')"));
        }
    }
    if let Some(t) = &raw.kind {
        for w in t.words() {
            match w.as_str() {
                "interactive" => {
                    interactive = true;
                    custom = true;
                }
                "pass-fail" | "scoring" | "multi-pass" | "submit-answer" => {}
                other => return Err(PackageError::invalid(p, format!("type: unknown problem type '{other}'"))),
            }
        }
    }
    let convention = match raw.checker_convention.as_deref() {
        None | Some("icpc") => Convention::Icpc,
        Some("testlib") => Convention::Testlib,
        Some(other) => {
            return Err(PackageError::invalid(p, format!("checker_convention: '{other}' is not icpc or testlib")))
        }
    };
    let mut validators = Vec::new();
    for d in ["output_validator", "output_validators"] {
        find_wasm(&dir.join(d), 2, &mut validators)?;
    }
    let custom_module = if custom {
        match validators.len() {
            1 => Some(validators.remove(0)),
            0 => {
                return Err(PackageError::invalid(
                    dir.join("output_validator"),
                    "custom validation needs a prebuilt .wasm checker or interactor here (none found)",
                ))
            }
            _ => {
                return Err(PackageError::invalid(
                    validators[1].clone(),
                    format!("more than one .wasm output validator (also '{}'); keep one", validators[0].display()),
                ))
            }
        }
    } else {
        None
    };
    let kind = match (&custom_module, interactive) {
        (Some(m), true) => ProblemKind::Interactive { interactor: m.clone(), convention },
        _ => ProblemKind::Batch,
    };
    let top_flags = raw.validator_flags.as_ref().map(OneOrMany::words).unwrap_or_default();
    let mut input_validators = Vec::new();
    for d in ["input_validators", "input_format_validators"] {
        find_wasm(&dir.join(d), 2, &mut input_validators)?;
    }

    let data = dir.join("data");
    if !data.is_dir() {
        return Err(PackageError::invalid(&data, "no such directory (tests go in data/sample and data/secret)"));
    }
    let secret = data.join("secret");
    if !secret.is_dir() {
        return Err(PackageError::invalid(&secret, "no such directory"));
    }
    let base = Inherited {
        on_reject: OnReject::Continue,
        aggregation: Aggregation::Min,
        flags: top_flags,
        flags_file: yaml_path.clone(),
    };
    let mut walk =
        Walk { data: &data, groups: Vec::new(), tests: Vec::new(), pending_deps: Vec::new(), flag_files: Vec::new() };
    if data.join("sample").is_dir() {
        walk.dir(&data.join("sample"), &base)?;
    }
    walk.dir(&secret, &base)?;
    let Walk { mut groups, tests, pending_deps, flag_files, .. } = walk;
    if tests.is_empty() {
        return Err(PackageError::invalid(&data, "no test cases (.in with .ans) found"));
    }
    for (g, file, names) in pending_deps {
        for n in names {
            let parent = groups[g].name.rsplit_once('/').map_or("", |(p, _)| p).to_string();
            let target = groups.iter().position(|x| x.name == n).or_else(|| {
                let rel = format!("{parent}/{n}");
                groups.iter().position(|x| x.name == rel)
            });
            match target {
                Some(t) if t != g => groups[g].depends_on.push(t),
                Some(_) => return Err(PackageError::invalid(file, format!("depends_on: '{n}' is this group itself"))),
                None => return Err(PackageError::invalid(file, format!("depends_on: no group '{n}' with tests"))),
            }
        }
        if let Some(cycle) = find_cycle(&groups, g) {
            return Err(PackageError::invalid(file, format!("depends_on: a cycle: {cycle}")));
        }
    }
    for (g, file) in groups.iter_mut().zip(&flag_files) {
        g.checker = match &custom_module {
            Some(m) => Checker::Custom { module: m.clone(), convention },
            None => Checker::Builtin(compare_from_flags(&g.checker_flags, file)?),
        };
    }
    Ok(Problem {
        root: dir.to_path_buf(),
        name,
        limits,
        kind,
        groups,
        tests,
        input_validators,
        sha256: package_sha256(dir)?,
    })
}

/// A dependency cycle through group `start`, as "a -> b -> a", if there is one.
fn find_cycle(groups: &[Group], start: usize) -> Option<String> {
    fn visit(groups: &[Group], g: usize, start: usize, path: &mut Vec<usize>, seen: &mut [bool]) -> bool {
        for &d in &groups[g].depends_on {
            if d == start {
                path.push(d);
                return true;
            }
            if !seen[d] {
                seen[d] = true;
                path.push(d);
                if visit(groups, d, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    let mut seen = vec![false; groups.len()];
    visit(groups, start, start, &mut path, &mut seen)
        .then(|| path.iter().map(|&i| groups[i].name.as_str()).collect::<Vec<_>>().join(" -> "))
}

struct Walk<'a> {
    data: &'a Path,
    groups: Vec<Group>,
    tests: Vec<TestCase>,
    pending_deps: Vec<(usize, PathBuf, Vec<String>)>,
    flag_files: Vec<PathBuf>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, parent: &Inherited) -> Result<(), PackageError> {
        let td_path = dir.join("testdata.yaml");
        let td: RawTestdata =
            if td_path.is_file() { parse(&td_path, &read_text(&td_path)?)? } else { RawTestdata::default() };
        let mut inh = parent.clone();
        if let Some(r) = &td.on_reject {
            inh.on_reject = match r.as_str() {
                "break" | "first_error" => OnReject::Break,
                "continue" | "worst_error" | "grade" => OnReject::Continue,
                other => {
                    return Err(PackageError::invalid(
                        &td_path,
                        format!("on_reject: '{other}' is not break or continue"),
                    ))
                }
            };
        }
        if let Some(a) = &td.aggregation {
            inh.aggregation = match a.as_str() {
                "min" => Aggregation::Min,
                "sum" => Aggregation::Sum,
                other => {
                    return Err(PackageError::invalid(&td_path, format!("aggregation: '{other}' is not min or sum")))
                }
            };
        }
        if let Some(f) = &td.output_validator_flags {
            inh.flags = f.words();
            inh.flags_file = td_path.clone();
        }
        let points = match (td.points, td.score) {
            (Some(_), Some(_)) => return Err(PackageError::invalid(&td_path, "give points or score, not both")),
            (Some(v), None) | (None, Some(v)) if !(v.is_finite() && v >= 0.0) => {
                return Err(PackageError::invalid(&td_path, format!("points must be a non-negative number, not {v}")))
            }
            (p, s) => p.or(s),
        };
        let entries = std::fs::read_dir(dir).map_err(|e| PackageError::read(dir, &e))?;
        let mut names: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        names.sort();
        let rel = |p: &Path| -> Result<String, PackageError> {
            let r = p.strip_prefix(self.data).unwrap_or(p);
            let s = r.to_str().ok_or_else(|| PackageError::invalid(p, "file name is not UTF-8"))?;
            Ok(s.replace(std::path::MAIN_SEPARATOR, "/"))
        };
        let mut cases = Vec::new();
        for p in names.iter().filter(|p| p.is_file()) {
            match p.extension().and_then(|e| e.to_str()) {
                Some("in") => {
                    let ans = p.with_extension("ans");
                    if !ans.is_file() {
                        return Err(PackageError::invalid(p, "no matching .ans file"));
                    }
                    cases.push((rel(&p.with_extension(""))?, p.clone(), ans));
                }
                Some("ans") if !p.with_extension("in").is_file() => {
                    return Err(PackageError::invalid(p, "no matching .in file"));
                }
                _ => {}
            }
        }
        if !cases.is_empty() {
            let g = self.groups.len();
            let mut tests = Vec::new();
            for (id, input, answer) in cases {
                tests.push(self.tests.len());
                self.tests.push(TestCase { id, group: g, input, answer });
            }
            self.groups.push(Group {
                name: rel(dir)?,
                points,
                aggregation: inh.aggregation,
                on_reject: inh.on_reject,
                depends_on: Vec::new(),
                checker: Checker::Builtin(Compare::TOKENS),
                checker_flags: inh.flags.clone(),
                tests,
            });
            self.flag_files.push(inh.flags_file.clone());
            if let Some(d) = &td.depends_on {
                self.pending_deps.push((g, td_path.clone(), d.words()));
            }
        } else if points.is_some() || td.depends_on.is_some() {
            return Err(PackageError::invalid(&td_path, "points and depends_on need test cases in this directory"));
        }
        for p in names.iter().filter(|p| p.is_dir()) {
            self.dir(p, &inh)?;
        }
        Ok(())
    }
}

/// SHA-256 over a package: every entry under `dir`, sorted by its relative path (with `/`),
/// each fed as the path, a NUL byte, then for a file `F`, its length as 8 little-endian bytes
/// and its content; for a symbolic link `L` and its target (never followed); for a
/// directory `D`. Lowercase hex.
///
/// # Errors
/// A file that cannot be read.
pub fn package_sha256(dir: &Path) -> Result<String, PackageError> {
    let mut entries = Vec::new();
    collect(dir, dir, &mut entries)?;
    entries.sort();
    let mut h = Sha256::new();
    for (rel, path) in entries {
        h.update(rel.as_bytes());
        h.update([0]);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| PackageError::read(&path, &e))?;
        if meta.file_type().is_symlink() {
            let t = std::fs::read_link(&path).map_err(|e| PackageError::read(&path, &e))?;
            h.update(b"L");
            h.update(t.to_string_lossy().as_bytes());
        } else if meta.is_dir() {
            h.update(b"D");
        } else {
            let bytes = std::fs::read(&path).map_err(|e| PackageError::read(&path, &e))?;
            h.update(b"F");
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(&bytes);
        }
    }
    Ok(hex(&h.finalize()))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), PackageError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PackageError::read(dir, &e))?;
    for e in entries {
        let e = e.map_err(|e| PackageError::read(dir, &e))?;
        let path = e.path();
        let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
        let ft = e.file_type().map_err(|e| PackageError::read(&path, &e))?;
        out.push((rel, path.clone()));
        if ft.is_dir() {
            collect(root, &path, out)?;
        }
    }
    Ok(())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
