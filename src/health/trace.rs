//! Trace files: how far a mirror has synced.
//!
//! The origin writes the time of its last publication into a trace file, and
//! mirrors copy that file last, so a mirror whose trace file says `T` holds
//! everything the origin published up to `T`. This module parses such a file
//! (RFC 3339, Unix seconds, or the `date -u` line that starts Debian's archive
//! traces) and fetches it from one mirror with a bounded body. It must not
//! keep state or decide health: a failed trace never takes a mirror down; the
//! state owner only records it.

use std::time::{Duration, SystemTime};

use url::Url;

use super::probe::{classify, within_base, MAX_REDIRECTS};
use super::{FailureReason, ProbeClient, ProbeTarget};

/// The largest trace file read: real ones are a few hundred bytes, and a
/// mirror serving something huge at that path must not cost us memory.
pub const TRACE_MAX_BYTES: usize = 64 * 1024;

/// How far ahead of our clock a trace may be: clocks drift, but a mirror
/// claiming a sync from the day after tomorrow is wrong, not early.
const MAX_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// How much of an unrecognised line is kept for the error message.
const SHOWN_CHARS: usize = 60;

/// Why a mirror's sync time is not known: a closed set, usable as a metric label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TraceError {
    /// The trace file could not be fetched (status, timeout, connection...).
    #[error("fetching the trace file failed: {0}")]
    Fetch(FailureReason),
    /// The body is larger than [`TRACE_MAX_BYTES`].
    #[error("trace file larger than {TRACE_MAX_BYTES} bytes")]
    TooLarge,
    /// Only blank lines (or nothing at all).
    #[error("trace file is empty")]
    Empty,
    /// The first non-empty line is not a time in any known format.
    #[error(
        "trace file starts with {0:?}, not a time (expected RFC 3339, Unix seconds or `date -u` output)"
    )]
    Unrecognized(String),
    /// The time is more than a day ahead of this host's clock.
    #[error("trace time is {}s ahead of this clock (more than a day): refused", .0.as_secs())]
    InFuture(Duration),
}

impl TraceError {
    /// A bounded label for metrics: never carries the detail.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Fetch(_) => "fetch",
            Self::TooLarge => "too_large",
            Self::Empty => "empty",
            Self::Unrecognized(_) => "unrecognized",
            Self::InFuture(_) => "in_future",
        }
    }
}

/// The trace file's URL: `path` relative to the mirror's base URL.
pub fn trace_url(base: &Url, path: &str) -> Result<Url, url::ParseError> {
    base.join(path.trim_start_matches('/'))
}

/// Parses a trace file's first non-empty line as a time, against this host's clock.
pub fn parse_trace(text: &str) -> Result<SystemTime, TraceError> {
    parse_trace_at(text, SystemTime::now())
}

/// [`parse_trace`] with the current time given, so tests pin the clock.
pub fn parse_trace_at(text: &str, now: SystemTime) -> Result<SystemTime, TraceError> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or(TraceError::Empty)?;
    let secs = parse_rfc3339(line)
        .or_else(|| parse_unix(line))
        .or_else(|| parse_date_u(line))
        .ok_or_else(|| TraceError::Unrecognized(line.chars().take(SHOWN_CHARS).collect()))?;
    let t = u64::try_from(secs)
        .ok()
        .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .ok_or_else(|| TraceError::Unrecognized(line.chars().take(SHOWN_CHARS).collect()))?;
    if let Ok(ahead) = t.duration_since(now) {
        if ahead > MAX_AHEAD {
            return Err(TraceError::InFuture(ahead));
        }
    }
    Ok(t)
}

/// `1795000000`: seconds since the epoch, digits only.
fn parse_unix(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `2026-11-29T10:00:01Z`, `2026-11-29T10:00:01.5+01:00`, `2026-11-29 10:00:01z`.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let (h, m, sec) = (
        digits(&s[11..13])?,
        digits(&s[14..16])?,
        digits(&s[17..19])?,
    );
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        // Fractions of a second are dropped: a sync time is not that precise.
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let rb = rest.as_bytes();
            if rb.len() != 6 || rb[3] != b':' {
                return None;
            }
            let sign = match rb[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = (digits(&rest[1..3])?, digits(&rest[4..6])?);
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(civil_to_unix(year, month, day, h, m, sec)? - offset)
}

/// `Sun Nov 29 10:00:01 UTC 2026` (and `Mon Nov  2 ...`): `date -u` in the C locale.
/// The weekday is only checked to be a weekday's name: the date says the same
/// thing, and refusing a trace over a wrong weekday would help nobody.
fn parse_date_u(s: &str) -> Option<i64> {
    let mut parts = s.split_whitespace();
    let (weekday, month, day, time, zone, year) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if parts.next().is_some() {
        return None;
    }
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if !DAYS.contains(&weekday) || !matches!(zone, "UTC" | "GMT" | "UT") {
        // Any other zone name is ambiguous without a zone database: refuse it.
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    if day.is_empty() || day.len() > 2 || year.len() != 4 {
        return None;
    }
    let (day, year) = (digits(day)?, digits(year)?);
    let tb = time.as_bytes();
    if tb.len() != 8 || tb[2] != b':' || tb[5] != b':' {
        return None;
    }
    let (h, m, sec) = (
        digits(&time[0..2])?,
        digits(&time[3..5])?,
        digits(&time[6..8])?,
    );
    civil_to_unix(year, month, day, h, m, sec)
}

/// A run of ASCII digits as a number (no sign, no spaces).
fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Seconds since the epoch of a UTC civil time, if every field is in range
/// (a leap second, `:60`, counts as `:59`).
fn civil_to_unix(year: i64, month: i64, day: i64, h: i64, m: i64, s: i64) -> Option<i64> {
    if !(1970..=9999).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=month_days).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s.min(59))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Fetches and parses `target.trace_url`; `None` when no trace is configured.
///
/// GET, following at most 5 redirects that stay under `target.base`; the
/// body is read up to [`TRACE_MAX_BYTES`]; the whole fetch is bounded by the
/// client's timeout.
pub async fn fetch_trace(
    client: &ProbeClient,
    target: &ProbeTarget,
) -> Option<Result<SystemTime, TraceError>> {
    let url = target.trace_url.as_ref()?;
    let fetched = tokio::time::timeout(client.timeout(), fetch_body(client, url, &target.base))
        .await
        .unwrap_or(Err(TraceError::Fetch(FailureReason::Timeout)));
    Some(fetched.and_then(|body| parse_trace(&String::from_utf8_lossy(&body))))
}

/// The body at `url`, without a time bound.
async fn fetch_body(client: &ProbeClient, url: &Url, base: &Url) -> Result<Vec<u8>, TraceError> {
    let fetch = |e: &reqwest::Error| TraceError::Fetch(classify(e));
    let mut url = url.clone();
    let mut redirects = 0;
    let mut response = loop {
        let response = client
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| fetch(&e))?;
        let status = response.status();
        if status.is_success() {
            break response;
        }
        if !status.is_redirection() || redirects == MAX_REDIRECTS {
            return Err(TraceError::Fetch(FailureReason::HttpStatus(
                status.as_u16(),
            )));
        }
        let next = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url.join(v).ok())
            .ok_or(TraceError::Fetch(FailureReason::HttpStatus(
                status.as_u16(),
            )))?;
        if !within_base(&next, base) {
            return Err(TraceError::Fetch(FailureReason::RedirectOffSite));
        }
        url = next;
        redirects += 1;
    };
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > TRACE_MAX_BYTES as u64) {
        return Err(TraceError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fetch(&e))? {
        if body.len() + chunk.len() > TRACE_MAX_BYTES {
            return Err(TraceError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// 2026-11-29T10:00:01Z.
    const T: u64 = 1_795_946_401;

    fn now() -> SystemTime {
        at(T + 3600)
    }

    #[test]
    fn civil_dates_match_known_epochs() {
        assert_eq!(civil_to_unix(1970, 1, 1, 0, 0, 0), Some(0));
        assert_eq!(civil_to_unix(2000, 3, 1, 0, 0, 0), Some(951_868_800));
        assert_eq!(civil_to_unix(2026, 11, 29, 10, 0, 1), Some(T as i64));
        assert_eq!(civil_to_unix(2024, 2, 29, 0, 0, 0), Some(1_709_164_800));
        assert_eq!(civil_to_unix(2023, 2, 29, 0, 0, 0), None);
        assert_eq!(civil_to_unix(2026, 13, 1, 0, 0, 0), None);
        assert_eq!(civil_to_unix(1969, 12, 31, 0, 0, 0), None);
    }

    #[test]
    fn rfc3339_in_its_spellings() {
        let p = |s: &str| parse_trace_at(s, now());
        assert_eq!(p("2026-11-29T10:00:01Z"), Ok(at(T)));
        assert_eq!(p("2026-11-29t10:00:01z\n"), Ok(at(T)));
        assert_eq!(p("2026-11-29 10:00:01.999Z"), Ok(at(T)));
        assert_eq!(p("2026-11-29T11:30:01+01:30"), Ok(at(T)));
        assert_eq!(p("2026-11-29T05:00:01-05:00"), Ok(at(T)));
    }

    #[test]
    fn unix_seconds_and_date_u() {
        let p = |s: &str| parse_trace_at(s, now());
        assert_eq!(p(&T.to_string()), Ok(at(T)));
        assert_eq!(
            p("\n\n  Sun Nov 29 10:00:01 UTC 2026\nUsed ftpsync version: 1\n"),
            Ok(at(T))
        );
        // The weekday must be a weekday's name, but is not checked against the date.
        assert_eq!(p("Sat Nov 29 10:00:01 UTC 2026"), Ok(at(T)));
        assert_eq!(p("Mon Nov  2 10:00:01 UTC 2026"), Ok(at(T - 27 * 86_400)));
        assert_eq!(p("Sun Nov 29 10:00:01 GMT 2026"), Ok(at(T)));
    }

    #[test]
    fn the_first_non_empty_line_decides() {
        let text = "\n   \n2026-11-29T10:00:01Z\ngarbage\n";
        assert_eq!(parse_trace_at(text, now()), Ok(at(T)));
        let text = "garbage\n2026-11-29T10:00:01Z\n";
        assert!(matches!(
            parse_trace_at(text, now()),
            Err(TraceError::Unrecognized(_))
        ));
    }

    #[test]
    fn far_future_is_refused_and_says_so() {
        let err = parse_trace_at(&(T + 2 * 86_400).to_string(), at(T)).unwrap_err();
        assert_eq!(err, TraceError::InFuture(Duration::from_secs(2 * 86_400)));
        assert!(err.to_string().contains("ahead"), "{err}");
        assert_eq!(err.as_str(), "in_future");
        // Less than a day ahead is clock drift: accepted.
        assert_eq!(
            parse_trace_at("2026-11-29T20:00:01Z", at(T)),
            Ok(at(T + 36_000))
        );
    }

    #[test]
    fn garbage_is_refused_with_the_line_shown() {
        for bad in [
            "hello",
            "2026-11-29",
            "2026-02-30T10:00:01Z",
            "2026-11-29T10:00:01",
            "2026-11-29T10:00:01+0100",
            "Sat Nov 29 10:00:01 CET 2026",
            "Sat Foo 29 10:00:01 UTC 2026",
            "-5",
            "1e9",
            "<html><body>Not Found</body></html>",
        ] {
            let err = parse_trace_at(bad, now()).unwrap_err();
            assert!(matches!(err, TraceError::Unrecognized(_)), "{bad}: {err:?}");
            assert_eq!(err.as_str(), "unrecognized");
        }
        let err = parse_trace_at(&"x".repeat(500), now()).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
        assert_eq!(parse_trace_at(" \n\n", now()), Err(TraceError::Empty));
        assert_eq!(parse_trace_at("", now()), Err(TraceError::Empty));
    }

    #[test]
    fn trace_url_is_relative_to_the_base() {
        let base = Url::parse("https://m.example/debian/").unwrap();
        assert_eq!(
            trace_url(&base, "/project/trace/origin").unwrap().as_str(),
            "https://m.example/debian/project/trace/origin"
        );
    }
}
