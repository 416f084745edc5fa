//! The output formats: table, JSON (validated against the committed schema), JUnit (parsed
//! back), Gradescope and HTML (self-contained, escaped).

mod common;

use common::*;
use grade::{grade, load_problem, render, Format, GradeResult, Reason, RunOutcome, RunStatus, Trap, Verdict};

const EVIL: &str = "<script>alert('x')</script>&\"";

/// Two submissions on a scored problem with a batch and a dependent group; names and messages
/// carry markup and control characters.
fn result() -> (Tmp, GradeResult) {
    let pkg = package(
        &format!("name: \"{}\"\n", EVIL.replace('"', "\\\"")),
        &[("sample/1", "1", "1"), ("secret/g1/1", "2", "2"), ("secret/g1/2", "3", "3"), ("secret/g2/1", "4", "4")],
        &[
            ("data/secret/g1/testdata.yaml", "points: 40\non_reject: break\n"),
            ("data/secret/g2/testdata.yaml", "points: 60\ndepends_on: g1\n"),
        ],
    );
    let problem = load_problem(pkg.path()).unwrap();
    let fake = Fake::new(|name, input| {
        let mut o = RunOutcome::exited(0, input.to_vec());
        o.cpu_time_ms = 100 * input[0] as u64 % 900;
        o.wall_time_ms = o.cpu_time_ms + 5;
        o.peak_memory_bytes = (input[0] as u64) << 24;
        if name.starts_with("bad") && input == b"2" {
            o.status = RunStatus::Trapped;
            o.exit_code = None;
            o.trap = Some(Trap { kind: "unreachable".into(), function: Some(EVIL.into()), offset: Some(3) });
            o.stderr_head = format!("panicked: {EVIL}\x07").into_bytes();
        }
        if name.starts_with("bad") && input == b"1" {
            o.stdout = format!("{EVIL}\n").into_bytes();
        }
        if name.starts_with("slow") && input == b"4" {
            o.status = RunStatus::TimeLimit;
            o.reason = Some(Reason::CpuTime);
            o.exit_code = None;
        }
        o
    });
    let subs = [sub("good.wasm"), sub(&format!("bad{EVIL}.wasm").replace('/', "")), sub("slow.wasm")];
    let r = grade(&problem, &subs, &fake, &options(2), &no_progress).unwrap();
    (pkg, r)
}

#[test]
fn table_single_and_matrix() {
    let (_pkg, r) = result();
    let mut one = r.clone();
    one.submissions.truncate(1);
    let t = render(&one, Format::Table);
    assert!(t.contains("submission good.wasm: AC, score 100/100"), "{t}");
    assert!(t.lines().any(|l| l.starts_with("secret/g1/2") && l.contains(" AC ")), "{t}");
    assert!(t.lines().any(|l| l.starts_with("secret/g2 ") && l.ends_with(" 60/60")), "{t}");
    assert!(t.lines().any(|l| l.starts_with("sample ") && l.ends_with(" -")), "an unscored group: {t}");
    let m = render(&r, Format::Table);
    assert!(
        m.lines().any(|l| l.starts_with("verdict") && l.contains("AC") && l.contains("WA") && l.contains("TLE")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("score") && l.contains("100/100") && l.contains("0/100") && l.contains("40/100")),
        "{m}"
    );
    assert!(!m.contains('\x07'));
    // Columns line up: every row of the matrix has its second column at the same place.
    let rows: Vec<&str> = m.lines().skip(2).collect();
    let col = rows[0].find("good.wasm").unwrap();
    assert!(rows.iter().skip(1).all(|l| l.len() > col && l.as_bytes()[col - 1] == b' '), "{m}");
}

#[test]
fn json_matches_the_schema_and_round_trips() {
    let (_pkg, r) = result();
    let text = render(&r, Format::Json);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schema: serde_json::Value = serde_json::from_str(include_str!("../schema/result.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let back: GradeResult = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    // The schema is strict: a misspelt verdict fails.
    let mut bad = value.clone();
    bad["submissions"][0]["tests"][0]["verdict"] = "OK".into();
    assert!(!validator.is_valid(&bad));
    assert_eq!(value["submissions"][1]["tests"][1]["trap"]["kind"], "unreachable");
    assert_eq!(value["submissions"][2]["tests"][3]["verdict"], "TLE");
}

#[test]
fn junit_parses_back() {
    use quick_xml::events::Event;
    let (_pkg, r) = result();
    let xml = render(&r, Format::Junit);
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut suites, mut cases, mut failures, mut skipped) = (Vec::new(), 0, Vec::new(), 0);
    let mut in_out = false;
    let mut outs = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let attr = |k: &str| e.try_get_attribute(k).unwrap().map(|a| a.unescape_value().unwrap().into_owned());
                match e.name().as_ref() {
                    b"testsuite" => suites.push(attr("name").unwrap()),
                    b"testcase" => cases += 1,
                    b"failure" => failures.push((attr("type").unwrap(), attr("message").unwrap())),
                    b"skipped" => skipped += 1,
                    b"system-out" => in_out = true,
                    _ => {}
                }
            }
            // quick-xml hands text over in pieces split at entity references.
            Event::Text(t) if in_out => outs.push(t.decode().unwrap().into_owned()),
            Event::End(e) if e.name().as_ref() == b"system-out" => in_out = false,
            _ => {}
        }
    }
    assert_eq!(suites, ["good.wasm", &r.submissions[1].name, "slow.wasm"]);
    assert_eq!(cases, 12);
    let types: Vec<&str> = failures.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(types, ["WA", "RTE", "TLE"]);
    assert!(failures[1].1.contains(EVIL), "attributes carry the text unchanged: {}", failures[1].1);
    assert!(outs.iter().any(|o| o.contains("script")), "stdout head in system-out: {outs:?}");
    assert_eq!(skipped, 2, "bad's g1/2 (batch) and g2 (dependency)");
    assert!(!xml.contains('\x07'), "characters XML cannot carry are replaced");
}

#[test]
fn gradescope_shape() {
    let (_pkg, r) = result();
    let mut second = r.clone();
    second.submissions.remove(0);
    let v: serde_json::Value = serde_json::from_str(&render(&second, Format::Gradescope)).unwrap();
    assert_eq!(v["score"], 0.0);
    let tests = v["tests"].as_array().unwrap();
    let batch = tests.iter().find(|t| t["name"] == "secret/g1 (batch)").unwrap();
    assert_eq!((batch["score"].as_f64(), batch["max_score"].as_f64()), (Some(0.0), Some(40.0)));
    assert_eq!(batch["status"], "failed");
    let g2 = tests.iter().find(|t| t["name"] == "secret/g2/1").unwrap();
    assert_eq!(g2["max_score"], 60.0);
    assert!(g2["output"].as_str().unwrap().starts_with("skipped (SK)"));
    for t in tests {
        assert!(t["name"].is_string() && t["status"].is_string() && t["output"].is_string());
    }
    let v: serde_json::Value = serde_json::from_str(&render(&r, Format::Gradescope)).unwrap();
    assert_eq!(v["score"], 100.0, "the first submission");
}

#[test]
fn html_is_self_contained_and_escaped() {
    let (_pkg, r) = result();
    let h = render(&r, Format::Html);
    assert!(h.starts_with("<!DOCTYPE html>"));
    for bad in ["http://", "https://", "src=", "href=", "@import", "url("] {
        assert!(!h.contains(bad), "external reference {bad}");
    }
    assert!(!h.contains(EVIL), "raw markup from a submission or problem");
    assert_eq!(h.matches("<script>").count(), 1, "only the page's own script");
    assert!(h.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"));
    assert_eq!(h.matches("class=\"cell\"").count(), 12, "a matrix cell per submission × test");
    for v in [Verdict::AC, Verdict::RTE, Verdict::TLE, Verdict::SK] {
        assert!(h.contains(&format!("data-v=\"{}\"", v.code())));
    }
    assert!(h.contains("secret/g2 · 60 points · needs secret/g1"));
    // Bars against the limits: sample/1 used 400 ms of 1000 ms CPU and 784 MiB of 2048 MiB.
    assert!(h.contains("<div class=\"bar cpu\"><i style=\"width:40.0%\"></i></div><div class=\"bar mem\"><i style=\"width:38.3%\">"), "bars");
}

#[test]
fn format_names() {
    for (n, f) in [
        ("table", Format::Table),
        ("json", Format::Json),
        ("junit", Format::Junit),
        ("gradescope", Format::Gradescope),
        ("html", Format::Html),
    ] {
        assert_eq!(Format::from_name(n), Some(f));
    }
    assert_eq!(Format::from_name("xml"), None);
}
