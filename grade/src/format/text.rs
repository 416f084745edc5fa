//! Small helpers shared by the formats: escaping and number formatting.

/// Escapes text for HTML and XML (content and attribute values), dropping characters XML 1.0
/// cannot carry.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A number of points without needless decimals: `30`, `12.5`, `3.333`.
pub(super) fn points(p: f64) -> String {
    let r = (p * 1000.0).round() / 1000.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        let s = format!("{r:.3}");
        s.trim_end_matches('0').to_string()
    }
}

/// Bytes as MiB with one decimal.
pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 20) as f64)
}

/// One printable line of at most `max` characters.
pub(super) fn line(s: &str, max: usize) -> String {
    crate::verdict::clean(s, max)
}
