//! The `junit` format: JUnit XML, a `<testsuite>` per submission and a `<testcase>` per test.
//! AC passes; SK is `<skipped>`; IE is an `<error>`; every other verdict a `<failure>` whose
//! `type` is the verdict code.

use super::text::escape;
use crate::result::GradeResult;
use crate::verdict::Verdict;

fn count(s: &crate::result::SubmissionResult, f: impl Fn(Verdict) -> bool) -> usize {
    s.tests.iter().filter(|t| f(t.verdict)).count()
}

fn is_failure(v: Verdict) -> bool {
    !matches!(v, Verdict::AC | Verdict::SK | Verdict::IE)
}

/// Renders the XML.
pub(super) fn render(r: &GradeResult) -> String {
    let p = &r.problem;
    let total: usize = r.submissions.iter().map(|s| s.tests.len()).sum();
    let failures: usize = r.submissions.iter().map(|s| count(s, is_failure)).sum();
    let errors: usize = r.submissions.iter().map(|s| count(s, |v| v == Verdict::IE)).sum();
    let skipped: usize = r.submissions.iter().map(|s| count(s, |v| v == Verdict::SK)).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{total}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\">\n",
        escape(&p.name)
    ));
    for s in &r.submissions {
        let time: u64 = s.tests.iter().map(|t| t.wall_ms).sum();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">\n",
            escape(&s.name),
            s.tests.len(),
            count(s, is_failure),
            count(s, |v| v == Verdict::IE),
            count(s, |v| v == Verdict::SK),
            time as f64 / 1000.0
        ));
        x.push_str("    <properties>\n");
        for (k, v) in [
            ("verdict", s.verdict.code().to_string()),
            ("score", s.score.to_string()),
            ("max_score", s.max_score.to_string()),
            ("module_sha256", s.module_sha256.clone()),
            ("problem_sha256", p.sha256.clone()),
            ("engine_version", r.engine_version.clone()),
            ("policy_sha256", r.policy_sha256.clone()),
        ] {
            x.push_str(&format!("      <property name=\"{k}\" value=\"{}\"/>\n", escape(&v)));
        }
        x.push_str("    </properties>\n");
        for t in &s.tests {
            x.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}.{}\" time=\"{:.3}\"",
                escape(&t.id),
                escape(&p.name),
                escape(&t.group),
                t.wall_ms as f64 / 1000.0
            ));
            let message = format!("{}: {}", t.verdict.name(), t.judge_message);
            let body = match t.verdict {
                Verdict::AC => None,
                Verdict::SK => Some(format!("      <skipped message=\"{}\"/>\n", escape(&message))),
                Verdict::IE => Some(format!("      <error type=\"IE\" message=\"{}\"/>\n", escape(&message))),
                v => Some(format!("      <failure type=\"{}\" message=\"{}\"/>\n", v.code(), escape(&message))),
            };
            let out = (!t.stdout_head.is_empty())
                .then(|| format!("      <system-out>{}</system-out>\n", escape(&t.stdout_head)));
            let err = (!t.stderr_head.is_empty())
                .then(|| format!("      <system-err>{}</system-err>\n", escape(&t.stderr_head)));
            if body.is_none() && out.is_none() && err.is_none() {
                x.push_str("/>\n");
                continue;
            }
            x.push_str(">\n");
            for part in [body, out, err].into_iter().flatten() {
                x.push_str(&part);
            }
            x.push_str("    </testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}
