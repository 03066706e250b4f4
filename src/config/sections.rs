//! Checks of the sections that hold settings rather than places:
//! `health`, `selection`, `limits` and `admin`. Each returns its typed part
//! with defaults filled in, recording errors in the shared [`Checker`].

use std::time::Duration;

use super::duration::format_duration;
use super::file::{RawAdmin, RawHealth, RawLimits, RawSelection};
use super::validate::Checker;
use super::MAX_LINK_MIRRORS;
use super::{AdminConfig, HealthConfig, LimitsConfig, SelectionConfig};

pub(super) fn health(c: &mut Checker<'_>, raw: RawHealth) -> HealthConfig {
    let d = HealthConfig::default();
    let interval = c.duration("health.interval", raw.interval.as_deref(), d.interval);
    if interval < Duration::from_millis(100) {
        c.err(
            "health.interval",
            format!(
                "{} is too short; probe at most every 100ms",
                format_duration(interval)
            ),
        );
    }
    let timeout = c.duration("health.timeout", raw.timeout.as_deref(), d.timeout);
    if timeout.is_zero() {
        c.err("health.timeout", "must be more than zero");
    } else if timeout >= interval {
        c.err(
            "health.timeout",
            format!(
                "{} must be shorter than health.interval ({}), or probes would overlap",
                format_duration(timeout),
                format_duration(interval)
            ),
        );
    }
    let path = match raw.path {
        None => d.path,
        Some(p) => c.ok("health.path", relative_path(&p)).unwrap_or_default(),
    };
    HealthConfig {
        interval,
        timeout,
        rise: c.int_in("health.rise", raw.rise, 1..=100, d.rise),
        fall: c.int_in("health.fall", raw.fall, 1..=100, d.fall),
        path,
    }
}

/// A probe path: made relative to the mirror's URL (leading `/` stripped,
/// else `join` would drop the mirror's own path) and kept inside it.
pub(super) fn relative_path(p: &str) -> Result<String, String> {
    let rel = p.trim_start_matches('/');
    if rel
        .chars()
        .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '\\' || ch == '#')
    {
        return Err(format!(
            "{p:?} must not contain spaces, control characters, '\\' or '#'"
        ));
    }
    let path_part = rel.split('?').next().unwrap_or_default();
    // URL parsers read %2e as '.', so each spelling of ".." counts.
    let climbs = path_part.split('/').any(|seg| {
        matches!(
            seg.to_ascii_lowercase().as_str(),
            ".." | ".%2e" | "%2e." | "%2e%2e"
        )
    });
    if climbs {
        return Err(format!(
            "{p:?} must not contain \"..\": probes stay under the mirror's URL"
        ));
    }
    Ok(rel.to_owned())
}

/// A fraction-like factor in (0, 1].
fn factor(c: &mut Checker<'_>, place: &str, v: Option<f64>, default: f64) -> f64 {
    let Some(x) = v else { return default };
    if x.is_finite() && x > 0.0 && x <= 1.0 {
        x
    } else {
        c.err(place, format!("{x} must be more than 0 and at most 1"));
        default
    }
}

fn non_negative(c: &mut Checker<'_>, place: &str, v: Option<f64>, default: f64) -> f64 {
    let Some(x) = v else { return default };
    if x.is_finite() && x >= 0.0 {
        x
    } else {
        c.err(place, format!("{x} must be a number at least 0"));
        default
    }
}

pub(super) fn selection(c: &mut Checker<'_>, raw: RawSelection) -> SelectionConfig {
    let d = SelectionConfig::default();
    let link_mirrors = match raw.link_mirrors.map(|n| (n, usize::try_from(n))) {
        None => d.link_mirrors,
        Some((_, Ok(n))) if n <= MAX_LINK_MIRRORS => n,
        Some((n, _)) => {
            c.err(
                "selection.link_mirrors",
                format!("{n} is out of range 0..={MAX_LINK_MIRRORS}"),
            );
            d.link_mirrors
        }
    };
    SelectionConfig {
        band: non_negative(c, "selection.band", raw.band, d.band),
        band_km: non_negative(c, "selection.band_km", raw.band_km, d.band_km),
        same_asn_factor: factor(
            c,
            "selection.same_asn_factor",
            raw.same_asn_factor,
            d.same_asn_factor,
        ),
        same_country_factor: factor(
            c,
            "selection.same_country_factor",
            raw.same_country_factor,
            d.same_country_factor,
        ),
        link_mirrors,
    }
}

fn positive(c: &mut Checker<'_>, place: &str, v: Option<i64>, default: usize) -> usize {
    let Some(n) = v else { return default };
    match usize::try_from(n) {
        Ok(n) if n > 0 => n,
        _ => {
            c.err(place, format!("{n} must be more than 0"));
            default
        }
    }
}

fn positive_duration(
    c: &mut Checker<'_>,
    place: &str,
    v: Option<&str>,
    default: Duration,
) -> Duration {
    let d = c.duration(place, v, default);
    if d.is_zero() {
        c.err(place, "must be more than zero");
    }
    d
}

pub(super) fn limits(c: &mut Checker<'_>, raw: RawLimits) -> LimitsConfig {
    let d = LimitsConfig::default();
    LimitsConfig {
        max_path_bytes: positive(
            c,
            "limits.max_path_bytes",
            raw.max_path_bytes,
            d.max_path_bytes,
        ),
        header_timeout: positive_duration(
            c,
            "limits.header_timeout",
            raw.header_timeout.as_deref(),
            d.header_timeout,
        ),
        idle_timeout: positive_duration(
            c,
            "limits.idle_timeout",
            raw.idle_timeout.as_deref(),
            d.idle_timeout,
        ),
        send_timeout: positive_duration(
            c,
            "limits.send_timeout",
            raw.send_timeout.as_deref(),
            d.send_timeout,
        ),
        shutdown_grace: positive_duration(
            c,
            "limits.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            d.shutdown_grace,
        ),
        max_connections: positive(
            c,
            "limits.max_connections",
            raw.max_connections,
            d.max_connections,
        ),
    }
}

/// Shortest admin token accepted: long enough not to be guessed online.
const MIN_TOKEN_CHARS: usize = 16;

pub(super) fn admin(c: &mut Checker<'_>, raw: RawAdmin) -> AdminConfig {
    let d = AdminConfig::default();
    AdminConfig {
        header_timeout: positive_duration(
            c,
            "admin.header_timeout",
            raw.header_timeout.as_deref(),
            d.header_timeout,
        ),
        max_connections: positive(
            c,
            "admin.max_connections",
            raw.max_connections,
            d.max_connections,
        ),
        token: admin_token(c, raw.token, raw.token_file),
    }
}

fn admin_token(
    c: &mut Checker<'_>,
    token: Option<String>,
    token_file: Option<String>,
) -> Option<String> {
    let (place, token) = match (token, token_file) {
        (Some(_), Some(_)) => {
            c.err("admin", "give token or token_file, not both");
            return None;
        }
        (None, None) => return None,
        (Some(t), None) => ("admin.token", t),
        (None, Some(f)) => {
            let before = c.errors.len();
            let path = c.readable_file("admin.token_file", &f);
            if c.errors.len() > before {
                return None;
            }
            match read_token_file(&path) {
                // A trailing newline from `echo > file` is not part of the token.
                Ok(t) => ("admin.token_file", t.trim().to_owned()),
                Err(e) => {
                    c.err("admin.token_file", format!("{}: {e}", path.display()));
                    return None;
                }
            }
        }
    };
    if token.is_empty() {
        c.err(place, "the token is empty");
    } else if token.chars().count() < MIN_TOKEN_CHARS {
        c.err(
            place,
            format!("the token is too short: use at least {MIN_TOKEN_CHARS} characters"),
        );
    } else if !token.chars().all(|ch| ch.is_ascii_graphic()) {
        // It travels in an `Authorization: Bearer` header.
        c.err(place, "the token must be printable ASCII without spaces");
    }
    Some(token)
}

/// Longest token file read: a token is short, so a bigger file is the wrong one.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut text = String::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!(
            "is longer than {MAX_TOKEN_FILE_BYTES} bytes; is it the token file?"
        ));
    }
    Ok(text)
}
