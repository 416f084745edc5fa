//! Policy parsing and validation: each error names the file, line, column and field.

use policy::{GuestPath, Limits, Mode, Policy, PolicyError, RunAs, Stdin};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn base() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sandboxrun-policy-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("input.txt"), "x").unwrap();
    std::fs::write(dir.join("afile"), "x").unwrap();
    dir
}

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text, &base(), "p.yaml")
}

/// Asserts that `text` fails with a message starting `p.yaml:LINE:COL: ` and containing `what`.
fn fails(text: &str, line: u64, column: u64, what: &str) {
    assert!(!what.is_empty(), "an empty expected message matches any error");
    let err = parse(text).expect_err(text).to_string();
    let prefix = format!("p.yaml:{line}:{column}: ");
    assert!(err.starts_with(&prefix), "expected prefix {prefix} in: {err}");
    assert!(err.contains(what), "expected '{what}' in: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn full_policy_parses() {
    let p = parse(
        "version: 1\nargs: [--fast]\nenv: {LANG: C.UTF-8}\nmounts:\n  - {host: data, guest: /data, mode: ro}\n  - {host: out, guest: /out, mode: rw}\nstdin: input.txt\nlimits:\n  cpu_time: 10s\n  wall_time: 30s\n  memory: 512MiB\n  output: 16MiB\n  file_size: 64MiB\n  disk: 256MiB\n  files: 1000\n  open_files: 64\n  wasm_stack: 1MiB\n",
    )
    .unwrap();
    assert_eq!(p.args, vec!["--fast"]);
    assert_eq!(p.env, vec![("LANG".to_string(), "C.UTF-8".to_string())]);
    assert_eq!(p.mounts.len(), 2);
    assert_eq!(p.mounts[0].host, base().join("data"));
    assert_eq!(p.mounts[1].mode, Mode::Rw);
    assert_eq!(p.stdin, Stdin::File(base().join("input.txt")));
    assert_eq!(p.limits, Limits::default());
}

#[test]
fn defaults_when_omitted() {
    let p = parse("version: 1\n").unwrap();
    assert!(p.mounts.is_empty() && p.env.is_empty() && p.args.is_empty());
    assert_eq!(p.stdin, Stdin::Inherit);
    assert_eq!(p.limits.cpu_time, Duration::from_secs(10));
    assert_eq!(p.limits.memory, 512 << 20);
    assert!(p.require_landlock);
    assert_eq!(p.run_as, RunAs { uid: 65534, gid: 65534 });
}

#[test]
fn run_as_is_an_unprivileged_identity() {
    assert_eq!(parse("version: 1\nrun_as: {uid: 1000, gid: 100}\n").unwrap().run_as, RunAs { uid: 1000, gid: 100 });
    assert_eq!(parse("version: 1\nrun_as: {uid: 2000}\n").unwrap().run_as, RunAs { uid: 2000, gid: 2000 });
    fails("version: 1\nrun_as: {uid: 0}\n", 2, 15, "run_as.uid: must not be 0");
    fails("version: 1\nrun_as: {uid: 5, gid: 0}\n", 2, 23, "run_as.gid: must not be 0");
    fails("version: 1\nrun_as: {uid: nobody}\n", 2, 15, "'nobody' is not a numeric id");
    fails("version: 1\nrun_as: {gid: 5}\n", 2, 10, "missing field `uid`");
    let mut p = parse("version: 1\n").unwrap();
    p.set_cli_run_as("60001").unwrap();
    assert_eq!(p.run_as, RunAs { uid: 60001, gid: 60001 });
    p.set_cli_run_as("60002:100").unwrap();
    assert_eq!(p.run_as, RunAs { uid: 60002, gid: 100 });
    assert!(p.set_cli_run_as("0").unwrap_err().to_string().contains("must not be 0"));
    assert!(p.set_cli_run_as("5:x").unwrap_err().to_string().contains("'x' is not a numeric id"));
}

#[test]
fn each_error_names_its_place() {
    fails("version: 1\nlimits:\n  memry: 5\n", 3, 3, "unknown field `memry`");
    fails("version: 1\nbogus: 1\n", 2, 1, "unknown field `bogus`");
    fails("args: []\n", 1, 1, "missing required key 'version'");
    fails("version: 2\n", 1, 10, "unsupported version");
    fails("version: 1\nargs: 5\n", 2, 7, "expected sequence start");
    fails("version: 1\nmounts:\n  - {host: data, guest: data}\n", 3, 25, "must be absolute");
    fails("version: 1\nmounts:\n  - {host: data, guest: /a/../b}\n", 3, 25, "must not contain '..'");
    fails("version: 1\nmounts:\n  - {host: data, guest: /a//b}\n", 3, 25, "empty component");
    fails("version: 1\nmounts:\n  - {host: data, guest: /d}\n  - {host: out, guest: /d}\n", 4, 24, "mounted twice");
    fails(
        "version: 1\nmounts:\n  - {host: data, guest: /d}\n  - {host: out, guest: /d/e}\n",
        4,
        24,
        "overlaps mount '/d'",
    );
    fails("version: 1\nmounts:\n  - {host: data, guest: /d, mode: rx}\n", 3, 35, "'rx' is not ro or rw");
    fails("version: 1\nlimits:\n  memory: 5MB\n", 3, 11, "limits.memory: unknown unit 'MB'");
    fails("version: 1\nlimits:\n  memory: 0\n", 3, 11, "greater than zero");
    fails("version: 1\nlimits:\n  files: -3\n", 3, 10, "not a positive whole number");
    fails("version: 1\nlimits:\n  disk: 99999999999999GiB\n", 3, 9, "too large");
    fails("version: 1\nlimits:\n  cpu_time: 10\n", 3, 13, "needs a unit");
    fails("version: 1\nlimits:\n  wall_time: 0s\n", 3, 14, "greater than zero");
    fails("version: 1\nenv: {\"A=B\": x}\n", 2, 14, "without '='");
    fails("version: 1\nmounts: [\n", 2, 9, "unclosed bracket '['");
}

#[test]
fn guest_paths() {
    assert!(GuestPath::new("/").is_ok());
    assert!(GuestPath::new("/a/b").is_ok());
    for bad in ["", "a", "/a/", "/a/./b", "/..", "/a\0b"] {
        assert!(GuestPath::new(bad).is_err(), "{bad:?}");
    }
    let a = GuestPath::new("/a").unwrap();
    assert!(GuestPath::new("/a/b").unwrap().is_within(&a));
    assert!(!GuestPath::new("/ab").unwrap().is_within(&a));
}

#[test]
fn cli_overrides() {
    let mut p = Policy::default_policy();
    p.add_cli_mount("data::/data", &base()).unwrap();
    p.add_cli_mount("out::/out:rw", &base()).unwrap();
    assert_eq!(p.mounts[0].mode, Mode::Ro);
    assert_eq!(p.mounts[1].mode, Mode::Rw);
    assert!(p.add_cli_mount("out::/data", &base()).unwrap_err().to_string().contains("mounted twice"));
    assert!(p.add_cli_mount("out:/x", &base()).is_err());
    p.add_cli_env("A=1").unwrap();
    p.add_cli_env("A=2").unwrap();
    assert_eq!(p.env, vec![("A".to_string(), "2".to_string())]);
    assert!(p.add_cli_env("novalue").is_err());
}

#[test]
fn effective_policy_round_trips() {
    let p = parse("version: 1\nargs: [\"a b\", \"q\\\"\"]\nenv: {X: \"1\"}\nmounts:\n  - {host: data, guest: /data}\nstdin: inherit\nlimits:\n  memory: 64MiB\n  cpu_time: 1500ms\nrun_as: {uid: 7, gid: 8}\n").unwrap();
    let yaml = p.to_yaml();
    let again = Policy::parse(&yaml, Path::new("/"), "effective").unwrap();
    assert_eq!(again, p, "{yaml}");
}

#[test]
fn load_resolves_relative_to_the_policy_folder() {
    let dir = base();
    std::fs::write(dir.join("p.yaml"), "version: 1\nmounts:\n  - {host: data, guest: /data}\n").unwrap();
    let p = Policy::load(&dir.join("p.yaml")).unwrap();
    assert_eq!(p.mounts[0].host, dir.join("data"));
    assert!(matches!(Policy::load(&dir.join("absent.yaml")), Err(PolicyError::Read { .. })));
}

/// Strings with newlines, tabs, quotes, backslashes, terminal escapes, YAML's own keywords and
/// punctuation survive `to_yaml` and parse back unchanged (the writer is the YAML library's).
#[test]
fn effective_policy_round_trips_with_control_characters() {
    let dir = base();
    let odd_dir = dir.join("odd\nname: [x] \"q\" \\ #c");
    std::fs::create_dir_all(&odd_dir).unwrap();
    let tricky = [
        "line\nbreak",
        "tab\there",
        "esc\u{1b}[31mred",
        "quote\"s",
        "back\\slash",
        "null",
        "",
        "- dash",
        "a: b",
        "#hash",
        "~",
        "true",
        "0x10",
        "trailing ",
    ];
    let mut p = Policy::default_policy();
    p.args = tricky.iter().map(|s| s.to_string()).collect();
    p.env = tricky.iter().enumerate().map(|(i, s)| (format!("K{i:02}"), s.to_string())).collect();
    p.add_cli_mount(&format!("{}::/odd", odd_dir.display()), &dir).unwrap();
    p.stdin = Stdin::File(dir.join("input.txt"));
    let yaml = p.to_yaml();
    let again = Policy::parse(&yaml, Path::new("/"), "effective").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(again, p, "{yaml}");
    // Nothing raw reaches the text: a control character would let a value forge lines.
    assert!(!yaml.contains('\u{1b}'), "{yaml}");
}

/// Regression (found by `fuzz` target `policy`): an error quoting a multi-line value was
/// several lines.
#[test]
fn errors_quoting_multi_line_values_stay_one_line() {
    for text in ["version: 1\n\n  di", "version: \"2\\nx\"", "version: 1\nenv: {\"A\\nB=C\": x}"] {
        let err = parse(text).expect_err(text).to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!err.contains('\r'), "{err}");
    }
    let err = parse("version: 1\n\n  di").unwrap_err().to_string();
    assert!(err.contains("'1\\ndi'"), "{err}");
}

#[test]
fn the_instruction_budget_is_a_whole_number_within_bounds() {
    assert_eq!(parse("version: 1\n").unwrap().limits.instructions, None, "not counted by default");
    let p = parse("version: 1\nlimits:\n  instructions: 11000000\n").unwrap();
    assert_eq!(p.limits.instructions, Some(11_000_000));
    assert_eq!(
        parse("version: 1\nlimits: {instructions: 11_000_000}\n").unwrap().limits.instructions,
        Some(11_000_000)
    );
    assert_eq!(parse("version: 1\nlimits: {instructions: '1'}\n").unwrap().limits.instructions, Some(1));
    let max = policy::MAX_INSTRUCTIONS;
    assert_eq!(
        parse(&format!("version: 1\nlimits: {{instructions: {max}}}\n")).unwrap().limits.instructions,
        Some(max)
    );
    fails(
        "version: 1\nlimits:\n  instructions: 0\n",
        3,
        17,
        "limits.instructions: must be between 1 and 1000000000000000, got 0",
    );
    fails(
        &format!("version: 1\nlimits:\n  instructions: {}\n", max + 1),
        3,
        17,
        "limits.instructions: must be between 1 and 1000000000000000",
    );
    fails("version: 1\nlimits:\n  instructions: 99999999999999999999999\n", 3, 17, "must be between 1 and");
    fails(
        "version: 1\nlimits:\n  instructions: -5\n",
        3,
        17,
        "limits.instructions: '-5' is not a positive whole number",
    );
    fails(
        "version: 1\nlimits:\n  instructions: 1e6\n",
        3,
        17,
        "limits.instructions: '1e6' is not a positive whole number",
    );
    fails("version: 1\nlimits:\n  instructions: 10M\n", 3, 17, "'10M' is not a positive whole number");
    fails("version: 1\nlimits:\n  instructions: ''\n", 3, 17, "is not a positive whole number");
    // The effective policy shows it, and reads back the same.
    let yaml = p.to_yaml();
    assert!(yaml.contains("instructions: 11000000"), "{yaml}");
    assert_eq!(parse(&yaml).unwrap().limits, p.limits);
    assert!(!parse("version: 1\n").unwrap().to_yaml().contains("instructions"));
}

#[test]
fn the_command_line_overrides_the_instruction_budget() {
    let mut p = parse("version: 1\nlimits: {instructions: 500}\n").unwrap();
    p.set_cli_instructions("1_000").unwrap();
    assert_eq!(p.limits.instructions, Some(1000));
    for (bad, why) in
        [("0", "must be between 1 and"), ("x", "'x' is not a positive whole number"), ("", "not a positive")]
    {
        let err = p.set_cli_instructions(bad).unwrap_err().to_string();
        assert!(err.starts_with(&format!("--instructions {bad}: ")) && err.contains(why), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
    assert_eq!(p.limits.instructions, Some(1000), "a refused override changes nothing");
}

#[test]
fn features_are_names_kept_in_order_once_each() {
    let p = parse("version: 1\nfeatures: [bulk-memory, tail-call, bulk-memory]\n").unwrap();
    assert_eq!(p.features, Some(vec!["bulk-memory".to_string(), "tail-call".to_string()]));
    assert_eq!(parse("version: 1\n").unwrap().features, None, "every implemented feature");
    assert_eq!(parse("version: 1\nfeatures: []\n").unwrap().features, Some(vec![]), "WebAssembly 1.0 only");
    fails("version: 1\nfeatures: [Tail Call]\n", 2, 12, "features: 'Tail Call' is not a feature name");
    // The effective policy shows them, and reads back the same.
    let yaml = p.to_yaml();
    assert_eq!(parse(&yaml).unwrap().features, p.features, "{yaml}");
    assert!(!parse("version: 1\n").unwrap().to_yaml().contains("features"));
}
