//! The `gradescope` format: Gradescope's `results.json` for the first submission. Scored
//! problems: a test in a `sum` group or a one-test group carries its own points; a batch (a
//! `min` group with several tests) adds one entry of its own holding its points. Unscored
//! problems: each test is worth 1.

use crate::result::GradeResult;
use crate::verdict::Verdict;
use serde_json::{json, Value};

/// Renders the JSON.
pub(super) fn render(r: &GradeResult) -> String {
    let Some(s) = r.submissions.first() else { return "{}\n".into() };
    let p = &r.problem;
    let scored = p.max_score > 0.0;
    let mut tests: Vec<Value> = Vec::new();
    let output = |t: &crate::result::TestRecord| {
        let mut o = format!("{} ({})", t.verdict.name(), t.verdict.code());
        if !t.judge_message.is_empty() {
            o.push_str(&format!(": {}", t.judge_message));
        }
        if let Some(m) = &t.contestant_message {
            o.push_str(&format!("\n{m}"));
        }
        o.push_str(&format!("\ncpu {} ms, memory {} bytes", t.cpu_ms, t.peak_memory_bytes));
        o
    };
    for (gi, g) in p.groups.iter().enumerate() {
        let members: Vec<&crate::result::TestRecord> = s.tests.iter().filter(|t| t.group == g.name).collect();
        for t in &members {
            let mut e = json!({
                "name": t.id,
                "status": if t.verdict == Verdict::AC { "passed" } else { "failed" },
                "output": output(t),
                "tags": [t.group, t.verdict.code()],
            });
            if !scored {
                e["score"] = json!(if t.verdict == Verdict::AC { 1.0 } else { 0.0 });
                e["max_score"] = json!(1.0);
            } else if let (Some(pts), Some(max)) = (t.points, g.points) {
                e["score"] = json!(pts);
                e["max_score"] = json!(max / members.len() as f64);
            }
            tests.push(e);
        }
        let rec = &s.groups[gi];
        if scored && members.len() > 1 && g.aggregation == "min" {
            if let Some(max) = g.points {
                tests.push(json!({
                    "name": format!("{} (batch)", g.name),
                    "score": rec.points,
                    "max_score": max,
                    "status": if rec.verdict == Verdict::AC { "passed" } else { "failed" },
                    "output": format!("{} tests, first verdict {}", members.len(), rec.verdict.code()),
                }));
            }
        }
    }
    let (score, max) = if scored {
        (s.score, s.max_score)
    } else {
        let n = s.tests.len() as f64;
        (s.tests.iter().filter(|t| t.verdict == Verdict::AC).count() as f64, n)
    };
    let v = json!({
        "score": score,
        "output": format!("{}: {} ({}), {}/{}", p.name, s.verdict.name(), s.verdict.code(), score, max),
        "execution_time": s.tests.iter().map(|t| t.wall_ms).sum::<u64>() as f64 / 1000.0,
        "tests": tests,
    });
    let mut out = serde_json::to_string_pretty(&v).unwrap_or_default();
    out.push('\n');
    out
}
