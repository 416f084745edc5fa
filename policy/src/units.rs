//! Sizes and durations as the policy writes them: `512MiB`, `64KiB`, `1GiB`, plain bytes;
//! `250ms`, `10s`, `2m`.

use std::time::Duration;

/// Parses a size; errors are the message after the field name.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    if number.is_empty() {
        return Err(format!("'{t}' is not a size (use e.g. 512MiB, 64KiB or a number of bytes)"));
    }
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit '{other}' (use KiB, MiB or GiB)")),
    };
    let n: u64 = number.parse().map_err(|_| format!("'{number}' is too large"))?;
    let bytes = n.checked_mul(multiplier).ok_or_else(|| format!("'{t}' is too large"))?;
    if bytes == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(bytes)
}

/// Parses a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    if number.is_empty() {
        return Err(format!("'{t}' is not a duration (use e.g. 250ms, 10s or 2m)"));
    }
    let n: u64 = number.parse().map_err(|_| format!("'{number}' is too large"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "" => return Err(format!("'{t}' needs a unit (ms, s or m)")),
        other => return Err(format!("unknown unit '{other}' (use ms, s or m)")),
    }
    .filter(|ms| *ms <= 365 * 24 * 3600 * 1000)
    .ok_or_else(|| format!("'{t}' is too large"))?;
    if ms == 0 {
        return Err("must be greater than zero".into());
    }
    Ok(Duration::from_millis(ms))
}

/// Formats a size with the largest exact unit.
pub fn format_size(bytes: u64) -> String {
    for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes.is_multiple_of(m) {
            return format!("{}{unit}", bytes / m);
        }
    }
    bytes.to_string()
}

/// Formats a duration with the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("64 KiB"), Ok(64 << 10));
        assert!(parse_size("5MB").unwrap_err().contains("unknown unit 'MB'"));
        assert!(parse_size("-5").is_err());
        assert!(parse_size("0").unwrap_err().contains("greater than zero"));
        assert!(parse_size("99999999999GiB").unwrap_err().contains("too large"));
        assert_eq!(format_size(512 << 20), "512MiB");
        assert_eq!(format_size(1000), "1000");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("1h").unwrap_err().contains("unknown unit 'h'"));
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
    }
}
