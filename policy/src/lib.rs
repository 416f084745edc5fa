//! The sandboxrun policy (YAML, schema version 1): what a run may see and use.
//!
//! A [`Policy`] can only be obtained validated: from a file ([`Policy::load`]), from text
//! ([`Policy::parse`]), or as the default for runs without `-p` ([`Policy::default`]). Every
//! error names the file, line and column. The full reference is `docs/policy.md`.

mod units;

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use units::{format_duration, format_size, parse_duration, parse_size};

/// Why a policy is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("failed to read policy {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The host's error.
        message: String,
    },
    /// A syntax, type or validation error at a place in the file.
    #[error("{file}:{line}:{column}: {message}")]
    At {
        /// The file (or `<policy>`).
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column.
        column: u64,
        /// What is wrong.
        message: String,
    },
    /// A command-line override is wrong.
    #[error("{0}")]
    Override(String),
}

/// An absolute, normalised guest path: starts with `/`, no `.`, `..` or empty components,
/// no NUL, no trailing slash (except `/` itself).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GuestPath(String);

impl GuestPath {
    /// Validates a guest path.
    pub fn new(path: &str) -> Result<GuestPath, String> {
        if !path.starts_with('/') {
            return Err(format!("guest path '{path}' must be absolute"));
        }
        if path.contains('\0') {
            return Err("guest path contains a NUL byte".into());
        }
        if path == "/" {
            return Ok(GuestPath(path.into()));
        }
        for component in path[1..].split('/') {
            match component {
                "" => return Err(format!("guest path '{path}' has an empty component or trailing slash")),
                "." | ".." => return Err(format!("guest path '{path}' must not contain '{component}'")),
                _ => {}
            }
        }
        Ok(GuestPath(path.into()))
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn is_within(&self, other: &GuestPath) -> bool {
        other.0 == "/" || self.0 == other.0 || self.0.starts_with(&format!("{}/", other.0))
    }
}

impl fmt::Display for GuestPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Access to a mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Read-only (the default).
    #[default]
    Ro,
    /// Read-write.
    Rw,
}

/// A host directory visible to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Absolute host directory (it existed when the policy was validated).
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: GuestPath,
    /// Access.
    pub mode: Mode,
}

/// The guest's standard input.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Stdin {
    /// Empty.
    Null,
    /// The host's standard input (the default, as with `wasmtime run`).
    #[default]
    Inherit,
    /// A host file (absolute).
    File(PathBuf),
}

/// Resource limits of a run. Any value is valid (so it may cross a process boundary as data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// CPU time.
    pub cpu_time: Duration,
    /// Wall-clock time.
    pub wall_time: Duration,
    /// Linear memory plus the process's own memory, in bytes.
    pub memory: u64,
    /// Bytes to stdout and stderr together.
    pub output: u64,
    /// Largest file the guest may write.
    pub file_size: u64,
    /// Bytes the run may add to its rw mounts.
    pub disk: u64,
    /// Files, directories and links the run may create.
    pub files: u64,
    /// Open guest descriptors.
    pub open_files: u64,
    /// Native stack for wasm code.
    pub wasm_stack: u64,
    /// The deterministic instruction budget: wasm instructions the run may execute
    /// (`None`: not counted). Counting compiles other code (its own cache entries).
    #[serde(default)]
    pub instructions: Option<u64>,
}

/// Largest `limits.instructions` (10^15: days of computation at any speed).
pub const MAX_INSTRUCTIONS: u64 = 1_000_000_000_000_000;

/// Parses an instruction budget: a whole number (`_` may separate digits) in
/// 1..=[`MAX_INSTRUCTIONS`].
///
/// # Errors
/// One line saying what is wrong.
pub fn parse_instructions(text: &str) -> Result<u64, String> {
    let digits: String = text.trim().chars().filter(|c| *c != '_').collect();
    let out_of_range = || format!("must be between 1 and {MAX_INSTRUCTIONS}, got {}", one_line(text.trim()));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{}' is not a positive whole number", one_line(text.trim())));
    }
    match digits.parse::<u64>() {
        Ok(n) if (1..=MAX_INSTRUCTIONS).contains(&n) => Ok(n),
        _ => Err(out_of_range()),
    }
}

impl Default for Limits {
    /// The documented defaults, suited to graders.
    fn default() -> Self {
        Limits {
            cpu_time: Duration::from_secs(10),
            wall_time: Duration::from_secs(30),
            memory: 512 << 20,
            output: 16 << 20,
            file_size: 64 << 20,
            disk: 256 << 20,
            files: 1000,
            open_files: 64,
            wasm_stack: 1 << 20,
            instructions: None,
        }
    }
}

/// Where compiled code is cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachePolicy {
    /// The SQLite file; `None`: the default location (CLI and environment may override).
    pub path: Option<PathBuf>,
    /// Size bound in bytes (least-recently-used entries are evicted beyond it).
    pub max_size: u64,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy { path: None, max_size: 1 << 30 }
    }
}

/// The unprivileged identity a run takes when sandboxrun is started by root (a caller that is
/// not root always runs as itself). Neither id is 0; rw mounts must be writable by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// The user id.
    pub uid: u32,
    /// The group id (supplementary groups are dropped).
    pub gid: u32,
}

impl RunAs {
    /// Validates one id: a number, not 0 (root) and not -1 (the kernel's "no change").
    fn id(text: &str) -> Result<u32, String> {
        match text.trim().parse::<u32>() {
            Ok(0) => Err("must not be 0: runs never take root's identity".into()),
            Ok(n) if n != u32::MAX => Ok(n),
            _ => Err(format!("'{text}' is not a numeric id")),
        }
    }
}

impl Default for RunAs {
    /// `nobody`/`nogroup` (65534), which owns nothing on a normal system.
    fn default() -> Self {
        RunAs { uid: 65534, gid: 65534 }
    }
}

/// A validated policy.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Policy {
    /// Guest arguments after argv[0].
    pub args: Vec<String>,
    /// The guest's entire environment, in order.
    pub env: Vec<(String, String)>,
    /// Mounts, in order (preopened as descriptors 3, 4, ...).
    pub mounts: Vec<Mount>,
    /// Standard input.
    pub stdin: Stdin,
    /// Limits.
    pub limits: Limits,
    /// Whether a kernel without landlock makes the run fail (default true).
    pub require_landlock: bool,
    /// The code cache.
    pub cache: CachePolicy,
    /// The identity of runs started by root.
    pub run_as: RunAs,
    /// The WebAssembly features a module may use, by name (`None`: every feature the engine
    /// implements). The names are the engine's to check (`sandboxrun inspect` lists a
    /// module's); the policy only checks their spelling.
    pub features: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    version: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    mounts: Vec<Spanned<RawMount>>,
    stdin: Option<Spanned<String>>,
    limits: Option<RawLimits>,
    require_landlock: Option<bool>,
    cache: Option<RawCache>,
    run_as: Option<RawRunAs>,
    features: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunAs {
    uid: Spanned<String>,
    gid: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    path: Option<Spanned<String>>,
    max_size: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMount {
    host: Spanned<String>,
    guest: Spanned<String>,
    mode: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    cpu_time: Option<Spanned<String>>,
    wall_time: Option<Spanned<String>>,
    memory: Option<Spanned<String>>,
    output: Option<Spanned<String>>,
    file_size: Option<Spanned<String>>,
    disk: Option<Spanned<String>>,
    files: Option<Spanned<String>>,
    open_files: Option<Spanned<String>>,
    wasm_stack: Option<Spanned<String>>,
    instructions: Option<Spanned<String>>,
}

impl Policy {
    /// The policy of a run without `-p`: no mounts, empty environment, default limits.
    pub fn default_policy() -> Policy {
        Policy { require_landlock: true, ..Policy::default() }
    }

    /// Reads and validates a policy file. Relative host paths are relative to its folder.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PolicyError::Read { path: path.to_path_buf(), message: e.to_string() })?;
        let base = path.parent().map(|p| if p.as_os_str().is_empty() { Path::new(".") } else { p });
        // Made absolute as written (against the working directory), not resolved: the runner
        // opens every host path itself, where it checks it.
        let base = std::path::absolute(base.unwrap_or(Path::new(".")))
            .map_err(|e| PolicyError::Read { path: path.to_path_buf(), message: e.to_string() })?;
        Policy::parse(&text, &base, &path.display().to_string())
    }

    /// Validates policy text; `base` resolves relative host paths, `file` names the source.
    pub fn parse(text: &str, base: &Path, file: &str) -> Result<Policy, PolicyError> {
        let at = |line: u64, column: u64, message: String| PolicyError::At {
            file: one_line(file),
            line,
            column,
            message: one_line(&message),
        };
        let spanned_err = |s: &Spanned<String>, field: &str, message: String| {
            at(s.referenced.line(), s.referenced.column(), format!("{field}: {message}"))
        };
        let raw: RawPolicy = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            // "error: line L column C: message" → "message".
            let message = first.split_once(": ").map(|(_, rest)| rest).unwrap_or(&first);
            let message = message.split_once(": ").filter(|(l, _)| l.starts_with("line ")).map_or(message, |(_, m)| m);
            at(line, column, message.to_string())
        })?;
        let version = raw.version.ok_or_else(|| at(1, 1, "missing required key 'version' (use version: 1)".into()))?;
        if version.value.trim() != "1" {
            return Err(spanned_err(
                &version,
                "version",
                format!("unsupported version '{}' (this is version 1)", version.value),
            ));
        }
        let mut policy = Policy { require_landlock: raw.require_landlock.unwrap_or(true), ..Policy::default() };
        for a in &raw.args {
            if a.value.contains('\0') {
                return Err(spanned_err(a, "args", "contains a NUL byte".into()));
            }
            policy.args.push(a.value.clone());
        }
        for (k, v) in &raw.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(spanned_err(
                    v,
                    &format!("env.{k}"),
                    "variable names must be non-empty, without '=' or NUL".into(),
                ));
            }
            if v.value.contains('\0') {
                return Err(spanned_err(v, &format!("env.{k}"), "contains a NUL byte".into()));
            }
            policy.env.push((k.clone(), v.value.clone()));
        }
        for m in &raw.mounts {
            let m = &m.value;
            let guest = GuestPath::new(&m.guest.value).map_err(|e| spanned_err(&m.guest, "mounts.guest", e))?;
            let mode = match m.mode.as_ref().map(|s| s.value.as_str()) {
                None | Some("ro") => Mode::Ro,
                Some("rw") => Mode::Rw,
                Some(other) => {
                    return Err(spanned_err(
                        m.mode.as_ref().expect("some"),
                        "mounts.mode",
                        format!("'{other}' is not ro or rw"),
                    ))
                }
            };
            let host = resolve_dir(base, &m.host.value)
                .and_then(|host| check_host(&host, mode).map(|()| host))
                .map_err(|e| spanned_err(&m.host, "mounts.host", e))?;
            let mount = Mount { host, guest, mode };
            policy.check_new_mount(&mount).map_err(|e| spanned_err(&m.guest, "mounts.guest", e))?;
            policy.mounts.push(mount);
        }
        if let Some(s) = &raw.stdin {
            policy.stdin = match s.value.as_str() {
                "null" | "" => Stdin::Null,
                "inherit" => Stdin::Inherit,
                // Whether it exists and is a file the run may read is the runner's to check, on
                // the file it opens (a symlink or a FIFO there is refused then).
                path => Stdin::File(base.join(path)),
            };
        }
        if let Some(l) = &raw.limits {
            let d = Limits::default();
            let size = |v: &Option<Spanned<String>>, name: &str, default: u64| match v {
                None => Ok(default),
                Some(s) => parse_size(&s.value).map_err(|e| spanned_err(s, &format!("limits.{name}"), e)),
            };
            let count = |v: &Option<Spanned<String>>, name: &str, default: u64| match v {
                None => Ok(default),
                Some(s) => match s.value.trim().parse::<u64>() {
                    Ok(0) => Err(spanned_err(s, &format!("limits.{name}"), "must be greater than zero".into())),
                    Ok(n) => Ok(n),
                    Err(_) => Err(spanned_err(
                        s,
                        &format!("limits.{name}"),
                        format!("'{}' is not a positive whole number", s.value),
                    )),
                },
            };
            let duration = |v: &Option<Spanned<String>>, name: &str, default: Duration| match v {
                None => Ok(default),
                Some(s) => parse_duration(&s.value).map_err(|e| spanned_err(s, &format!("limits.{name}"), e)),
            };
            policy.limits = Limits {
                cpu_time: duration(&l.cpu_time, "cpu_time", d.cpu_time)?,
                wall_time: duration(&l.wall_time, "wall_time", d.wall_time)?,
                memory: size(&l.memory, "memory", d.memory)?,
                output: size(&l.output, "output", d.output)?,
                file_size: size(&l.file_size, "file_size", d.file_size)?,
                disk: size(&l.disk, "disk", d.disk)?,
                files: count(&l.files, "files", d.files)?,
                open_files: count(&l.open_files, "open_files", d.open_files)?,
                wasm_stack: size(&l.wasm_stack, "wasm_stack", d.wasm_stack)?,
                instructions: match &l.instructions {
                    None => None,
                    Some(v) => {
                        Some(parse_instructions(&v.value).map_err(|e| spanned_err(v, "limits.instructions", e))?)
                    }
                },
            };
        }
        if let Some(c) = &raw.cache {
            if let Some(p) = &c.path {
                if p.value.is_empty() || p.value.contains('\0') {
                    return Err(spanned_err(p, "cache.path", "must be a non-empty path".into()));
                }
                policy.cache.path = Some(base.join(&p.value));
            }
            if let Some(m) = &c.max_size {
                policy.cache.max_size = parse_size(&m.value).map_err(|e| spanned_err(m, "cache.max_size", e))?;
            }
        }
        if let Some(r) = &raw.run_as {
            let id = |s: &Spanned<String>, field: &str| RunAs::id(&s.value).map_err(|e| spanned_err(s, field, e));
            let uid = id(&r.uid, "run_as.uid")?;
            let gid = match &r.gid {
                Some(g) => id(g, "run_as.gid")?,
                None => uid,
            };
            policy.run_as = RunAs { uid, gid };
        }
        if let Some(names) = &raw.features {
            let mut features = Vec::new();
            for n in names {
                let spelled = !n.value.is_empty()
                    && n.value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !spelled {
                    return Err(spanned_err(
                        n,
                        "features",
                        format!("'{}' is not a feature name (like tail-call)", n.value),
                    ));
                }
                if !features.contains(&n.value) {
                    features.push(n.value.clone());
                }
            }
            policy.features = Some(features);
        }
        Ok(policy)
    }

    fn check_new_mount(&self, mount: &Mount) -> Result<(), String> {
        for existing in &self.mounts {
            if existing.guest == mount.guest {
                return Err(format!("guest path '{}' is mounted twice", mount.guest));
            }
            if mount.guest.is_within(&existing.guest) || existing.guest.is_within(&mount.guest) {
                return Err(format!("guest path '{}' overlaps mount '{}'", mount.guest, existing.guest));
            }
        }
        Ok(())
    }

    /// Adds a mount from `--dir HOST::GUEST[:ro|:rw]` (relative host paths: to `cwd`).
    pub fn add_cli_mount(&mut self, spec: &str, cwd: &Path) -> Result<(), PolicyError> {
        let err = |m: String| PolicyError::Override(format!("--dir {spec}: {m}"));
        let (host, rest) = spec.split_once("::").ok_or_else(|| err("expected HOST::GUEST[:ro|:rw]".into()))?;
        let (guest, mode) = match rest.rsplit_once(':') {
            Some((g, "ro")) => (g, Mode::Ro),
            Some((g, "rw")) => (g, Mode::Rw),
            _ => (rest, Mode::Ro),
        };
        let host = resolve_dir(cwd, host).map_err(err)?;
        check_host(&host, mode).map_err(err)?;
        let mount = Mount { host, guest: GuestPath::new(guest).map_err(err)?, mode };
        self.check_new_mount(&mount).map_err(err)?;
        self.mounts.push(mount);
        Ok(())
    }

    /// Sets the identity of runs started by root from `--run-as UID[:GID]` (GID defaults to
    /// UID).
    pub fn set_cli_run_as(&mut self, spec: &str) -> Result<(), PolicyError> {
        let err = |m: String| PolicyError::Override(format!("--run-as {spec}: {m}"));
        let (uid, gid) = spec.split_once(':').unwrap_or((spec, spec));
        self.run_as = RunAs { uid: RunAs::id(uid).map_err(err)?, gid: RunAs::id(gid).map_err(err)? };
        Ok(())
    }

    /// Sets the instruction budget from `--instructions N` (overriding `limits.instructions`).
    ///
    /// # Errors
    /// `N` is not a whole number in 1..=[`MAX_INSTRUCTIONS`].
    pub fn set_cli_instructions(&mut self, spec: &str) -> Result<(), PolicyError> {
        let n = parse_instructions(spec).map_err(|m| PolicyError::Override(format!("--instructions {spec}: {m}")))?;
        self.limits.instructions = Some(n);
        Ok(())
    }

    /// Sets the guest's stdin from `--stdin inherit|null|FILE` (a file relative to `cwd`; the
    /// runner opens it, and says if it cannot).
    ///
    /// # Errors
    /// None today; kept fallible like the other overrides.
    pub fn set_cli_stdin(&mut self, spec: &str, cwd: &Path) -> Result<(), PolicyError> {
        self.stdin = match spec {
            "inherit" => Stdin::Inherit,
            "null" => Stdin::Null,
            path => Stdin::File(cwd.join(path)),
        };
        Ok(())
    }

    /// Sets an environment variable from `--env K=V` (replacing one of the same name).
    pub fn add_cli_env(&mut self, spec: &str) -> Result<(), PolicyError> {
        let (k, v) =
            spec.split_once('=').ok_or_else(|| PolicyError::Override(format!("--env {spec}: expected K=V")))?;
        if k.is_empty() || k.contains('\0') || v.contains('\0') {
            return Err(PolicyError::Override(format!("--env {spec}: invalid name or value")));
        }
        self.env.retain(|(name, _)| name != k);
        self.env.push((k.into(), v.into()));
        Ok(())
    }

    /// The effective policy as YAML (every default filled in), written by the YAML library
    /// (so any string — newlines, quotes, control characters — is escaped as YAML wants); it
    /// parses back to `self`.
    pub fn to_yaml(&self) -> String {
        let l = &self.limits;
        let effective = Effective {
            version: 1,
            args: &self.args,
            env: OrderedMap(&self.env),
            mounts: self
                .mounts
                .iter()
                .map(|m| EffectiveMount {
                    host: m.host.display().to_string(),
                    guest: m.guest.as_str(),
                    mode: if m.mode == Mode::Rw { "rw" } else { "ro" },
                })
                .collect(),
            stdin: match &self.stdin {
                Stdin::Null => "null".to_string(),
                Stdin::Inherit => "inherit".to_string(),
                Stdin::File(p) => p.display().to_string(),
            },
            limits: EffectiveLimits {
                cpu_time: format_duration(l.cpu_time),
                wall_time: format_duration(l.wall_time),
                memory: format_size(l.memory),
                output: format_size(l.output),
                file_size: format_size(l.file_size),
                disk: format_size(l.disk),
                files: l.files,
                open_files: l.open_files,
                wasm_stack: format_size(l.wasm_stack),
                instructions: l.instructions,
            },
            require_landlock: self.require_landlock,
            cache: EffectiveCache {
                path: self.cache.path.as_ref().map(|p| p.display().to_string()),
                max_size: format_size(self.cache.max_size),
            },
            run_as: EffectiveRunAs { uid: self.run_as.uid, gid: self.run_as.gid },
            features: self.features.as_deref(),
        };
        // Serialising plain strings, numbers and maps cannot fail.
        serde_saphyr::to_string(&effective).unwrap_or_default()
    }
}

fn resolve_dir(base: &Path, host: &str) -> Result<PathBuf, String> {
    if host.contains('\0') || host.is_empty() {
        return Err("host path is empty or contains a NUL byte".into());
    }
    // Kept as written, not resolved: the runner opens it without following a final symlink
    // (one a guest may have left), and says there if it is missing or not a directory.
    Ok(base.join(host))
}

/// `path` with `.` and `..` folded away, as text (for the early refusal of kernel
/// interfaces; the runner checks the directory it opens, which symlinks cannot disguise).
fn lexically_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// `text` with its control characters (line breaks above all) escaped: an error that quotes
/// policy text stays one line.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Host directories no mount may be, nor be beneath: the kernel's interfaces (process
/// information and control, device nodes, kernel tunables), never the guest's business.
const FORBIDDEN_HOSTS: &[&str] = &["/proc", "/sys", "/dev"];

/// Refuses a mount of `host` that is, or is beneath, a [`FORBIDDEN_HOSTS`] directory, or that
/// is `/` read-write, by its path as written (`..` folded): an early, clear error. Where the
/// path leads through symlinks is the runner's to check, on the directory it opens (its real
/// ancestors), which no symlink can disguise.
fn check_host(host: &Path, mode: Mode) -> Result<(), String> {
    let normal = lexically_normal(host);
    let host = normal.as_path();
    if let Some(kernel) = FORBIDDEN_HOSTS.iter().find(|k| host.starts_with(k)) {
        return Err(format!("'{}' is {kernel} or beneath it: kernel interfaces cannot be mounted", host.display()));
    }
    if host == Path::new("/") && mode == Mode::Rw {
        return Err("'/' can only be mounted read-only (mode: ro)".into());
    }
    Ok(())
}

/// The effective policy as [`Policy::to_yaml`] writes it: the file's own shape.
#[derive(serde::Serialize)]
struct Effective<'a> {
    version: u32,
    args: &'a [String],
    env: OrderedMap<'a>,
    mounts: Vec<EffectiveMount<'a>>,
    stdin: String,
    limits: EffectiveLimits,
    require_landlock: bool,
    cache: EffectiveCache,
    run_as: EffectiveRunAs,
    #[serde(skip_serializing_if = "Option::is_none")]
    features: Option<&'a [String]>,
}

#[derive(serde::Serialize)]
struct EffectiveMount<'a> {
    host: String,
    guest: &'a str,
    mode: &'static str,
}

#[derive(serde::Serialize)]
struct EffectiveLimits {
    cpu_time: String,
    wall_time: String,
    memory: String,
    output: String,
    file_size: String,
    disk: String,
    files: u64,
    open_files: u64,
    wasm_stack: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<u64>,
}

#[derive(serde::Serialize)]
struct EffectiveCache {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    max_size: String,
}

#[derive(serde::Serialize)]
struct EffectiveRunAs {
    uid: u32,
    gid: u32,
}

/// The environment as a YAML map, in the policy's order.
struct OrderedMap<'a>(&'a [(String, String)]);

impl serde::Serialize for OrderedMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}
