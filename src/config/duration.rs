//! Durations as the config file writes them: `"500ms"`, `"10s"`, `"1m"`,
//! `"1h"`, `"1m30s"`. Whole numbers only, units from largest to smallest,
//! each at most once. A bare number is refused: `timeout: 2` could mean
//! seconds or milliseconds, and guessing wrong is a silent outage.

use std::time::Duration;

/// Units in the order they must appear, with their length in milliseconds.
const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// Parses a duration; the error is a sentence for the config error message.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("is empty; write a duration such as \"10s\" or \"500ms\"".into());
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "{s:?} has no unit; add one, e.g. \"{s}s\" (units: h, m, s, ms)"
        ));
    }
    let mut rest = s;
    let mut total_ms: u64 = 0;
    // Index into UNITS of the next unit allowed: each must be smaller than the last.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "{s:?} is not a duration; write e.g. \"10s\", \"500ms\" or \"1m30s\""
            ));
        }
        let (num, after) = rest.split_at(digits);
        if after.starts_with('.') {
            return Err(format!(
                "{s:?}: whole numbers only; use a smaller unit (\"1500ms\", not \"1.5s\")"
            ));
        }
        let letters = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(letters);
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(if unit.is_empty() {
                format!("{s:?}: the number {num} has no unit (units: h, m, s, ms)")
            } else {
                format!("{s:?}: unknown unit {unit:?} (units: h, m, s, ms)")
            });
        };
        if pos < next_unit {
            return Err(format!(
                "{s:?}: units must go from largest to smallest, each once (e.g. \"1h30m\")"
            ));
        }
        next_unit = pos + 1;
        let too_long = || format!("{s:?} is too long");
        let n: u64 = num.parse().map_err(|_| too_long())?;
        total_ms = n
            .checked_mul(UNITS[pos].1)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(too_long)?;
        rest = after;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration back the way the file would (for messages).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in UNITS {
        let len = u128::from(len);
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        match parse_duration(s) {
            Ok(d) => d,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn err(s: &str) -> String {
        match parse_duration(s) {
            Ok(d) => panic!("{s:?} parsed as {d:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn single_units() {
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok(" 2s "), Duration::from_secs(2));
    }

    #[test]
    fn compound() {
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1h2m3s4ms"), Duration::from_millis(3_723_004));
        assert_eq!(ok("2s500ms"), Duration::from_millis(2500));
    }

    #[test]
    fn bare_number_asks_for_a_unit() {
        assert!(err("10").contains("add one"));
        assert!(err("10").contains("\"10s\""));
        assert!(err("1.5").contains("unit"));
    }

    #[test]
    fn refusals() {
        assert!(err("").contains("empty"));
        assert!(err("10x").contains("unknown unit"));
        assert!(err("10sec").contains("unknown unit"));
        assert!(err("1.5s").contains("whole numbers"));
        assert!(err("-1s").contains("not a duration"));
        assert!(err("s").contains("not a duration"));
        assert!(err("30s1m").contains("largest to smallest"));
        assert!(err("1s1s").contains("largest to smallest"));
        assert!(err("1m 30s").contains("not a duration"));
        assert!(err("1m30").contains("no unit"));
        assert!(err("99999999999999999999h").contains("too long"));
        assert!(err("9999999999999999h").contains("too long"));
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_millis(90_500)), "1m30s500ms");
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
