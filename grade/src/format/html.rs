//! The `html` format: one self-contained page (inline CSS and a few lines of inline JS; no
//! network, fonts or images). A verdict matrix of tests × submissions coloured by verdict,
//! grouped with points, each cell drawing the test's CPU time and peak memory as bars against
//! their limits; per-submission details below. Every string from a submission or the problem
//! is escaped.

use super::text::{escape, mib, points};
use crate::result::{GradeResult, TestRecord};
use crate::verdict::Verdict;

fn colour(v: Verdict) -> &'static str {
    match v {
        Verdict::AC => "#2e9d4f",
        Verdict::WA => "#d64545",
        Verdict::PE => "#e08a2e",
        Verdict::TLE | Verdict::ILE => "#7a4fd1",
        Verdict::MLE => "#b0407a",
        Verdict::OLE => "#a0522d",
        Verdict::RTE => "#c0392b",
        Verdict::SV => "#111111",
        Verdict::IE => "#555555",
        Verdict::SK => "#9aa0a6",
    }
}

fn pct(used: u64, limit: u64) -> f64 {
    if limit == 0 {
        0.0
    } else {
        (used as f64 / limit as f64 * 100.0).min(100.0)
    }
}

fn cell(t: &TestRecord) -> String {
    let cpu = pct(t.cpu_ms, t.limits.cpu_ms);
    let mem = pct(t.peak_memory_bytes, t.limits.memory_bytes);
    let title = format!(
        "{} — {}\ncpu {} / {} ms, memory {} / {} MiB{}",
        t.verdict.name(),
        t.judge_message,
        t.cpu_ms,
        t.limits.cpu_ms,
        mib(t.peak_memory_bytes),
        mib(t.limits.memory_bytes),
        t.points.map(|p| format!(", points {}", points(p))).unwrap_or_default()
    );
    format!(
        "<td class=\"cell\" data-v=\"{code}\" title=\"{title}\"><span class=\"v\" style=\"background:{c}\">{code}</span>\
<div class=\"bar cpu\"><i style=\"width:{cpu:.1}%\"></i></div><div class=\"bar mem\"><i style=\"width:{mem:.1}%\"></i></div></td>",
        code = t.verdict.code(),
        c = colour(t.verdict),
        title = escape(&title),
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em;margin:0 0 .2em}.meta{color:#555;font-size:.9em}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f4f4f4}tr.group th{background:#e9eef6}.v{color:#fff;border-radius:3px;padding:0 4px;font-weight:600;font-size:.85em}\
.bar{height:4px;width:60px;background:#eee;margin-top:2px}.bar i{display:block;height:4px}.cpu i{background:#4a7bd0}.mem i{background:#d08a4a}\
.legend span{margin-right:.6em}.msg{font-family:monospace;white-space:pre-wrap;max-width:50em}\
body.failures tr.test.ok{display:none}details{margin:.5em 0}summary{cursor:pointer;font-weight:600}";

const SCRIPT: &str = "document.getElementById('only-failures').addEventListener('change',function(e){\
document.body.classList.toggle('failures',e.target.checked)});";

/// Renders the page.
pub(super) fn render(r: &GradeResult) -> String {
    let p = &r.problem;
    let scored = p.max_score > 0.0;
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">");
    h.push_str(&format!("<title>{} — grading</title><style>{STYLE}</style></head><body>\n", escape(&p.name)));
    h.push_str(&format!("<h1>{}</h1>\n", escape(&p.name)));
    h.push_str(&format!(
        "<p class=\"meta\">{} problem · time limit {} ms · memory {} MiB · output {} MiB · package sha256 <code>{}</code> · engine {} · policy sha256 <code>{}</code></p>\n",
        escape(&p.kind),
        p.time_limit_ms,
        mib(p.memory_bytes),
        mib(p.output_bytes),
        escape(&p.sha256),
        escape(&r.engine_version),
        escape(&r.policy_sha256)
    ));
    h.push_str("<p class=\"legend\">");
    for v in Verdict::ALL {
        h.push_str(&format!(
            "<span><span class=\"v\" style=\"background:{}\">{}</span> {}</span>",
            colour(v),
            v.code(),
            v.name()
        ));
    }
    h.push_str("<br>bars: <span style=\"color:#4a7bd0\">■</span> CPU time / limit, <span style=\"color:#d08a4a\">■</span> peak memory / limit</p>\n");
    // Summary.
    h.push_str("<table class=\"summary\"><tr><th>submission</th><th>verdict</th>");
    if scored {
        h.push_str("<th>score</th>");
    }
    h.push_str("<th>max cpu ms</th><th>max memory MiB</th><th>module sha256</th></tr>\n");
    for s in &r.submissions {
        h.push_str(&format!(
            "<tr><td>{}</td><td><span class=\"v\" style=\"background:{}\">{}</span></td>",
            escape(&s.name),
            colour(s.verdict),
            s.verdict.code()
        ));
        if scored {
            h.push_str(&format!("<td>{} / {}</td>", points(s.score), points(s.max_score)));
        }
        h.push_str(&format!(
            "<td>{}</td><td>{}</td><td><code>{}</code></td></tr>\n",
            s.max_cpu_ms,
            mib(s.max_peak_memory_bytes),
            escape(&s.module_sha256)
        ));
    }
    h.push_str(
        "</table>\n<label><input type=\"checkbox\" id=\"only-failures\"> only tests some submission failed</label>\n",
    );
    // Matrix.
    h.push_str("<table class=\"matrix\"><tr><th>test</th>");
    for s in &r.submissions {
        h.push_str(&format!("<th>{}</th>", escape(&s.name)));
    }
    h.push_str("</tr>\n");
    let mut i = 0;
    for (gi, g) in p.groups.iter().enumerate() {
        let mut head = escape(&g.name);
        if let Some(pts) = g.points {
            head.push_str(&format!(" · {} points", points(pts)));
        }
        if g.on_reject == "break" {
            head.push_str(" · batch");
        }
        if !g.depends_on.is_empty() {
            head.push_str(&format!(" · needs {}", escape(&g.depends_on.join(", "))));
        }
        h.push_str(&format!("<tr class=\"group\"><th>{head}</th>"));
        for s in &r.submissions {
            let rec = &s.groups[gi];
            let pts = if g.points.is_some() { format!(" {}", points(rec.points)) } else { String::new() };
            h.push_str(&format!(
                "<th><span class=\"v\" style=\"background:{}\">{}</span>{pts}</th>",
                colour(rec.verdict),
                rec.verdict.code()
            ));
        }
        h.push_str("</tr>\n");
        for id in &g.tests {
            let ok = r.submissions.iter().all(|s| s.tests[i].verdict == Verdict::AC);
            h.push_str(&format!("<tr class=\"test{}\"><td>{}</td>", if ok { " ok" } else { "" }, escape(id)));
            for s in &r.submissions {
                h.push_str(&cell(&s.tests[i]));
            }
            h.push_str("</tr>\n");
            i += 1;
        }
    }
    h.push_str("</table>\n");
    // Details.
    for s in &r.submissions {
        h.push_str(&format!("<details><summary>{} — {}</summary>\n", escape(&s.name), s.verdict.name()));
        h.push_str("<table><tr><th>test</th><th>verdict</th><th>cpu ms</th><th>wall ms</th><th>memory MiB</th><th>exit</th><th>judge message</th><th>contestant message</th><th>stdout</th><th>stderr</th></tr>\n");
        for t in &s.tests {
            let exit = match (&t.exit_code, &t.signal, &t.trap) {
                (_, _, Some(tr)) => format!("trap: {}", tr.kind),
                (_, Some(sig), _) => format!("signal {sig}"),
                (Some(c), _, _) => c.to_string(),
                _ => String::new(),
            };
            h.push_str(&format!(
                "<tr class=\"test{}\"><td>{}</td><td><span class=\"v\" style=\"background:{}\">{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"msg\">{}</td><td class=\"msg\">{}</td><td class=\"msg\">{}</td><td class=\"msg\">{}</td></tr>\n",
                if t.verdict == Verdict::AC { " ok" } else { "" },
                escape(&t.id),
                colour(t.verdict),
                t.verdict.code(),
                t.cpu_ms,
                t.wall_ms,
                mib(t.peak_memory_bytes),
                escape(&exit),
                escape(&t.judge_message),
                escape(t.contestant_message.as_deref().unwrap_or("")),
                escape(&t.stdout_head),
                escape(&t.stderr_head),
            ));
        }
        h.push_str("</table></details>\n");
    }
    h.push_str(&format!("<script>{SCRIPT}</script>\n</body></html>\n"));
    h
}
