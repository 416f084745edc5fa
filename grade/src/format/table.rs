//! The `table` format: aligned text for a terminal. One submission: a row per test; several: a
//! matrix of tests × submissions. Every string from a submission or a problem is reduced to one
//! printable line.

use super::text::{line, mib, points};
use crate::result::GradeResult;

fn aligned(rows: &[Vec<String>], right: &[bool]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> =
        (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let mut l = String::new();
        for (c, cell) in r.iter().enumerate() {
            let pad = width[c] - cell.chars().count();
            let last = c + 1 == r.len();
            if right.get(c).copied().unwrap_or(false) {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                if !last {
                    l.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                l.push_str("  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

/// Renders the table.
pub(super) fn render(r: &GradeResult) -> String {
    let p = &r.problem;
    let mut out = format!(
        "problem {} ({}), time limit {} ms, memory {} MiB, package sha256 {}\n",
        line(&p.name, 60),
        p.kind,
        p.time_limit_ms,
        mib(p.memory_bytes),
        &p.sha256[..p.sha256.len().min(16)]
    );
    let scored = p.max_score > 0.0;
    if let [s] = r.submissions.as_slice() {
        out.push_str(&format!("submission {}: {}", line(&s.name, 60), s.verdict));
        if scored {
            out.push_str(&format!(", score {}/{}", points(s.score), points(s.max_score)));
        }
        out.push_str("\n\n");
        let mut rows = vec![["test", "group", "verdict", "cpu ms", "wall ms", "mem MiB", "points", "message"]
            .map(String::from)
            .to_vec()];
        for t in &s.tests {
            rows.push(vec![
                line(&t.id, 40),
                line(&t.group, 30),
                t.verdict.to_string(),
                t.cpu_ms.to_string(),
                t.wall_ms.to_string(),
                mib(t.peak_memory_bytes),
                t.points.map_or_else(|| "-".into(), points),
                line(&t.judge_message, 80),
            ]);
        }
        out.push_str(&aligned(&rows, &[false, false, false, true, true, true, true, false]));
        if scored {
            out.push('\n');
            let mut rows = vec![["group", "verdict", "points"].map(String::from).to_vec()];
            for g in &s.groups {
                let pts = g.max_points.map_or_else(|| "-".into(), |m| format!("{}/{}", points(g.points), points(m)));
                rows.push(vec![line(&g.name, 40), g.verdict.to_string(), pts]);
            }
            out.push_str(&aligned(&rows, &[false, false, true]));
        }
        return out;
    }
    out.push('\n');
    let mut header = vec!["test".to_string()];
    header.extend(r.submissions.iter().map(|s| line(&s.name, 24)));
    let mut rows = vec![header];
    for (i, t) in p.groups.iter().flat_map(|g| g.tests.iter()).enumerate() {
        let mut row = vec![line(t, 40)];
        for s in &r.submissions {
            let rec = &s.tests[i];
            row.push(format!("{} {}ms", rec.verdict, rec.cpu_ms));
        }
        rows.push(row);
    }
    let mut verdicts = vec!["verdict".to_string()];
    verdicts.extend(r.submissions.iter().map(|s| s.verdict.to_string()));
    rows.push(verdicts);
    if scored {
        let mut score = vec!["score".to_string()];
        score.extend(r.submissions.iter().map(|s| format!("{}/{}", points(s.score), points(s.max_score))));
        rows.push(score);
    }
    let mut cpu = vec!["max cpu ms".to_string()];
    cpu.extend(r.submissions.iter().map(|s| s.max_cpu_ms.to_string()));
    rows.push(cpu);
    out.push_str(&aligned(&rows, &[]));
    out
}
