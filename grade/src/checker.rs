//! Checkers: the built-in comparisons, and how the exit of a custom checker (ICPC or testlib
//! convention) becomes a verdict. Custom checkers themselves run through the executor
//! (`flow.rs` builds their jobs); this file only reads what they left behind.

use crate::exec::{RunOutcome, RunStatus};
use crate::verdict::{clean, Judged, Verdict};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a built-in comparison matches the contestant's output against the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareMode {
    /// Token by token (tokens split on ASCII whitespace): the amount of whitespace, line breaks
    /// and trailing blank lines do not matter. Never PE.
    Tokens,
    /// Byte for byte, except that a final newline may be missing on either side and `\r\n`
    /// reads as `\n`. Output that fails this but passes [`CompareMode::Tokens`] (with the same
    /// case and float rules) is PE; otherwise WA.
    Exact,
    /// Lines as a multiset: each line is reduced to its tokens joined by one space, blank lines
    /// are dropped, and both sides must hold the same lines the same number of times.
    UnorderedLines,
}

/// A float tolerance: an answer token that parses as a float accepts an output token `x` when
/// `|x - a| <= absolute` or `|x - a| <= relative * |a|`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FloatTolerance {
    /// Absolute tolerance.
    pub absolute: f64,
    /// Relative tolerance.
    pub relative: f64,
}

/// A built-in comparison.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compare {
    /// Tokens, exact or unordered lines.
    pub mode: CompareMode,
    /// Whether letters must match in case.
    pub case_sensitive: bool,
    /// Float tolerance for tokens that parse as floats (`None`: compared as text).
    pub floats: Option<FloatTolerance>,
}

impl Compare {
    /// Token compare, case-sensitive, no float tolerance.
    pub const TOKENS: Compare = Compare { mode: CompareMode::Tokens, case_sensitive: true, floats: None };
    /// Exact compare (with PE).
    pub const EXACT: Compare = Compare { mode: CompareMode::Exact, case_sensitive: true, floats: None };
    /// Unordered lines.
    pub const UNORDERED_LINES: Compare =
        Compare { mode: CompareMode::UnorderedLines, case_sensitive: true, floats: None };

    /// Token compare with a float tolerance.
    pub fn floats(absolute: f64, relative: f64) -> Compare {
        Compare { floats: Some(FloatTolerance { absolute, relative }), ..Compare::TOKENS }
    }

    /// Compares `output` with `answer`.
    pub fn check(&self, output: &[u8], answer: &[u8]) -> Judged {
        match self.mode {
            CompareMode::Tokens => self.tokens(output, answer),
            CompareMode::Exact => {
                let tokens = self.tokens(output, answer);
                if tokens.verdict != Verdict::AC {
                    return tokens;
                }
                if exact_normal(output) == exact_normal(answer) {
                    return Judged::new(Verdict::AC, "");
                }
                // The tokens match under the case and float rules; the bytes (whitespace, or
                // case/digits the rules forgave) differ.
                let line = first_diff_line(&exact_normal(output), &exact_normal(answer));
                Judged::new(Verdict::PE, format!("line {line}: tokens match but whitespace differs"))
            }
            CompareMode::UnorderedLines => self.unordered(output, answer),
        }
    }

    fn token_eq(&self, out: &[u8], ans: &[u8]) -> bool {
        if out == ans || (!self.case_sensitive && out.eq_ignore_ascii_case(ans)) {
            return true;
        }
        if let Some(tol) = self.floats {
            if let (Some(a), Some(x)) = (parse_float(ans), parse_float(out)) {
                if a.is_nan() || x.is_nan() {
                    return false;
                }
                let d = (x - a).abs();
                return d <= tol.absolute || d <= tol.relative * a.abs();
            }
        }
        false
    }

    fn tokens(&self, output: &[u8], answer: &[u8]) -> Judged {
        let out = tokens_with_lines(output);
        let ans = tokens_with_lines(answer);
        for (i, ((o, line), (a, _))) in out.iter().zip(ans.iter()).enumerate() {
            if !self.token_eq(o, a) {
                return Judged::new(
                    Verdict::WA,
                    format!("line {line}, token {}: expected '{}', found '{}'", i + 1, show(a), show(o)),
                );
            }
        }
        if out.len() < ans.len() {
            let (a, _) = &ans[out.len()];
            return Judged::new(
                Verdict::WA,
                format!("output ends after {} tokens; expected '{}' next", out.len(), show(a)),
            );
        }
        if out.len() > ans.len() {
            let (o, line) = &out[ans.len()];
            return Judged::new(
                Verdict::WA,
                format!("line {line}: extra output '{}' after {} tokens", show(o), ans.len()),
            );
        }
        Judged::new(Verdict::AC, "")
    }

    fn unordered(&self, output: &[u8], answer: &[u8]) -> Judged {
        let lines = |b: &[u8]| -> Vec<Vec<Vec<u8>>> {
            b.split(|&c| c == b'\n')
                .map(|l| {
                    l.split(|c| c.is_ascii_whitespace())
                        .filter(|t| !t.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect::<Vec<_>>()
                })
                .filter(|l: &Vec<Vec<u8>>| !l.is_empty())
                .collect()
        };
        let out = lines(output);
        let mut ans: Vec<Option<Vec<Vec<u8>>>> = lines(answer).into_iter().map(Some).collect();
        if out.len() != ans.len() {
            return Judged::new(Verdict::WA, format!("expected {} non-blank lines, found {}", ans.len(), out.len()));
        }
        for (i, o) in out.iter().enumerate() {
            let hit = ans.iter_mut().find(|a| {
                a.as_ref().is_some_and(|a| a.len() == o.len() && a.iter().zip(o).all(|(a, o)| self.token_eq(o, a)))
            });
            match hit {
                Some(slot) => *slot = None,
                None => {
                    let text = o.iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect::<Vec<_>>().join(" ");
                    return Judged::new(
                        Verdict::WA,
                        format!("line {} of the output ('{}') is not in the answer", i + 1, clean(&text, 40)),
                    );
                }
            }
        }
        Judged::new(Verdict::AC, "")
    }
}

fn tokens_with_lines(b: &[u8]) -> Vec<(&[u8], usize)> {
    let mut out = Vec::new();
    for (n, line) in b.split(|&c| c == b'\n').enumerate() {
        out.extend(line.split(|c| c.is_ascii_whitespace()).filter(|t| !t.is_empty()).map(|t| (t, n + 1)));
    }
    out
}

fn exact_normal(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        v.push(b[i]);
        i += 1;
    }
    if v.last() == Some(&b'\n') {
        v.pop();
    }
    v
}

fn first_diff_line(a: &[u8], b: &[u8]) -> usize {
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    a[..at].iter().filter(|&&c| c == b'\n').count() + 1
}

fn parse_float(t: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(t).ok()?;
    // Only plain decimal notation: "inf", "nan" and hex are text.
    if !s.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E')) {
        return None;
    }
    s.parse().ok()
}

fn show(t: &[u8]) -> String {
    clean(&String::from_utf8_lossy(t), 40)
}

/// What a checker (built-in or custom) decided.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    /// The verdict and the judge's message.
    pub judged: Judged,
    /// The fraction of the test's points earned, in 0..=1 (1 for a plain AC).
    pub fraction: f64,
    /// A message for the contestant (ICPC `teammessage.txt`), if any.
    pub contestant_message: Option<String>,
}

impl CheckResult {
    fn ie(message: String) -> CheckResult {
        CheckResult { judged: Judged::new(Verdict::IE, message), fraction: 0.0, contestant_message: None }
    }
}

/// Which exit-code convention a custom checker (or interactor) follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    /// Kattis/ICPC: `checker input answer feedback_dir [flags] < output`; exit 42 AC, 43 WA;
    /// `judgemessage.txt`, `teammessage.txt` and `score.txt` in `feedback_dir`.
    Icpc,
    /// testlib: `check input output answer`; exit 0 OK, 1 WA, 2 PE, 3 FAIL (IE), 7 partial with
    /// `points X` on its stderr or stdout.
    Testlib,
}

/// The checker of a problem.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checker {
    /// A built-in comparison.
    Builtin(Compare),
    /// A custom checker module.
    Custom {
        /// The `.wasm` module.
        module: PathBuf,
        /// Its exit-code convention.
        convention: Convention,
    },
}

/// The longest checker message kept, in bytes.
pub const MESSAGE_MAX: usize = 4096;

fn read_message(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MESSAGE_MAX)]).trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Decodes how a custom checker or interactor ended: its exit status per `convention` and, for
/// ICPC, the files it left in `feedback_dir`. A checker that trapped, hit a limit, was killed,
/// could not run or exited with a code its convention does not define gives IE — never WA.
pub fn decode(outcome: &RunOutcome, convention: Convention, feedback_dir: &Path) -> CheckResult {
    let what = match convention {
        Convention::Icpc => "output validator",
        Convention::Testlib => "testlib checker",
    };
    if outcome.status != RunStatus::Exited {
        let why = match (&outcome.trap, &outcome.error) {
            (Some(t), _) => format!("trapped: {}", clean(&t.kind, 80)),
            (_, Some(e)) => format!("could not run: {}", clean(e, 120)),
            _ => format!("ended with status {:?}", outcome.status).to_lowercase(),
        };
        return CheckResult::ie(format!("{what} {why}"));
    }
    let code = outcome.exit_code.unwrap_or(0);
    match convention {
        Convention::Icpc => {
            let judge = read_message(&feedback_dir.join("judgemessage.txt")).unwrap_or_default();
            let team = read_message(&feedback_dir.join("teammessage.txt"));
            let verdict = match code {
                42 => Verdict::AC,
                43 => Verdict::WA,
                other => return CheckResult::ie(format!("{what} exited with code {other} (expected 42 or 43)")),
            };
            let mut fraction = if verdict == Verdict::AC { 1.0 } else { 0.0 };
            if verdict == Verdict::AC {
                if let Ok(s) = std::fs::read_to_string(feedback_dir.join("score.txt")) {
                    match s.trim().parse::<f64>() {
                        Ok(f) if (0.0..=1.0).contains(&f) => fraction = f,
                        _ => {
                            return CheckResult::ie(format!(
                                "{what} wrote score.txt '{}', not a fraction in 0..1",
                                clean(s.trim(), 40)
                            ))
                        }
                    }
                }
            }
            CheckResult { judged: Judged::new(verdict, judge), fraction, contestant_message: team }
        }
        Convention::Testlib => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&outcome.stderr_head),
                String::from_utf8_lossy(&outcome.stdout)
            );
            let message = clean(text.trim(), MESSAGE_MAX);
            let (verdict, fraction) = match code {
                0 => (Verdict::AC, 1.0),
                1 => (Verdict::WA, 0.0),
                2 => (Verdict::PE, 0.0),
                3 => return CheckResult::ie(format!("{what} failed: {message}")),
                7 => {
                    let points = text
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("points "))
                        .and_then(|p| p.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()));
                    match points {
                        Some(p) if (0.0..=1.0).contains(&p) && p > 0.0 => (Verdict::AC, p),
                        Some(0.0) => (Verdict::WA, 0.0),
                        _ => return CheckResult::ie(format!("{what} exited 7 without 'points X' (X in 0..1)")),
                    }
                }
                other => return CheckResult::ie(format!("{what} exited with code {other} (expected 0, 1, 2, 3 or 7)")),
            };
            CheckResult { judged: Judged::new(verdict, message), fraction, contestant_message: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_ignore_whitespace_and_trailing_blank_lines() {
        assert_eq!(Compare::TOKENS.check(b"1  2\n3\n\n\n", b"1 2 3\n").verdict, Verdict::AC);
        assert_eq!(Compare::TOKENS.check(b"1 2", b"1 2 3").verdict, Verdict::WA);
        assert_eq!(Compare::TOKENS.check(b"1 2 3 4", b"1 2 3").verdict, Verdict::WA);
        assert_eq!(Compare::TOKENS.check(b"", b"\n\n").verdict, Verdict::AC);
    }

    #[test]
    fn exact_gives_pe_only_when_tokens_match() {
        assert_eq!(Compare::EXACT.check(b"1 2\n", b"1 2\n").verdict, Verdict::AC);
        assert_eq!(Compare::EXACT.check(b"1 2", b"1 2\n").verdict, Verdict::AC, "a missing final newline is fine");
        assert_eq!(Compare::EXACT.check(b"1 2\r\n", b"1 2\n").verdict, Verdict::AC);
        assert_eq!(Compare::EXACT.check(b"1  2\n", b"1 2\n").verdict, Verdict::PE);
        assert_eq!(Compare::EXACT.check(b"1 2\n\n", b"1 2\n").verdict, Verdict::PE, "an extra blank line");
        assert_eq!(Compare::EXACT.check(b"1\n2\n", b"1 2\n").verdict, Verdict::PE);
        assert_eq!(Compare::EXACT.check(b"1 3\n", b"1 2\n").verdict, Verdict::WA);
        assert_eq!(Compare::EXACT.check(b"1  3\n", b"1 2\n").verdict, Verdict::WA, "wrong beats presentation");
    }

    #[test]
    fn floats_absolute_and_relative() {
        let c = Compare::floats(1e-6, 1e-6);
        assert_eq!(c.check(b"0.3333333", b"0.333333333").verdict, Verdict::AC);
        assert_eq!(c.check(b"0.33333", b"0.333333333").verdict, Verdict::WA);
        assert_eq!(c.check(b"1000000.5", b"1000000.0").verdict, Verdict::AC, "relative");
        assert_eq!(c.check(b"1000002", b"1000000").verdict, Verdict::WA);
        assert_eq!(c.check(b"1e-7", b"0").verdict, Verdict::AC);
        assert_eq!(c.check(b"nan", b"0").verdict, Verdict::WA);
        assert_eq!(c.check(b"yes", b"yes").verdict, Verdict::AC, "text tokens still compare");
        assert_eq!(Compare::TOKENS.check(b"0.50", b"0.5").verdict, Verdict::WA, "no tolerance: text");
    }

    #[test]
    fn unordered_lines_and_case() {
        let u = Compare::UNORDERED_LINES;
        assert_eq!(u.check(b"b 2\na  1\n\n", b"a 1\nb 2\n").verdict, Verdict::AC);
        assert_eq!(u.check(b"a 1\na 1\n", b"a 1\nb 2\n").verdict, Verdict::WA);
        assert_eq!(u.check(b"a 1\n", b"a 1\nb 2\n").verdict, Verdict::WA);
        let ci = Compare { case_sensitive: false, ..Compare::TOKENS };
        assert_eq!(ci.check(b"YES", b"yes").verdict, Verdict::AC);
        assert_eq!(Compare::TOKENS.check(b"YES", b"yes").verdict, Verdict::WA);
    }

    #[test]
    fn wa_message_names_line_and_tokens() {
        let j = Compare::TOKENS.check(b"1\n2\n9\n", b"1 2 3");
        assert_eq!(j.message, "line 3, token 3: expected '3', found '9'");
    }
}
