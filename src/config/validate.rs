//! Raw file -> typed [`Config`], collecting every error with its place.
//!
//! Each check records its error in a [`Checker`] and carries on with a
//! fallback value, so that one pass over the file reports everything wrong
//! with it; the typed `Config` is built only when nothing was recorded.
//! Places are YAML paths (`mirrors[2].url`, `geoip.city[1]`); a check that
//! spans several keys names the one the operator most likely has to change.
//!
//! Mirror entries are checked in `mirror.rs`; this file owns the top-level
//! keys and the sections. The only I/O here is reading the files the config
//! names (GeoIP databases, the admin token file) to prove they are readable.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use ipnet::IpNet;
use url::Url;

use super::duration::{format_duration, parse_duration};
use super::file::{OneOrMany, RawAdmin, RawConfig, RawGeo, RawHealth, RawLimits, RawSelection};
use super::{
    mirror, parse, AdminConfig, Config, GeoConfig, HealthConfig, LimitsConfig, SelectionConfig,
    DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, DEFAULT_REDIRECT_STATUS,
};

/// One problem, with its place in the file (`mirrors[2].url`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    /// YAML path of the offending key; empty for the file as a whole.
    pub place: String,
    pub message: String,
}

impl ConfigError {
    /// An error at `place` (a YAML path, or empty for the whole file).
    pub fn new(place: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            place: place.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.place, self.message)
        }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub(super) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let one =
        |message: String| ConfigErrors(vec![ConfigError::new(path.display().to_string(), message)]);
    // Check the size before reading, so a wrong path to a huge file fails fast.
    let meta = std::fs::metadata(path).map_err(|e| one(format!("cannot read: {e}")))?;
    if meta.len() > parse::MAX_CONFIG_BYTES as u64 {
        return Err(one(format!(
            "the file is {} bytes; the limit is {} bytes",
            meta.len(),
            parse::MAX_CONFIG_BYTES
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| one(format!("cannot read: {e}")))?;
    let base = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    from_yaml(&text, base)
}

pub(super) fn from_yaml(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
    let raw = parse::parse(text).map_err(|e| ConfigErrors(vec![e]))?;
    let mut c = Checker::new(base);
    let config = check(&mut c, raw);
    if c.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(c.errors))
    }
}

/// Collects errors; checks return a fallback value so checking goes on.
pub(super) struct Checker<'a> {
    pub errors: Vec<ConfigError>,
    /// Directory relative paths in the file start from.
    pub base: &'a Path,
}

impl<'a> Checker<'a> {
    fn new(base: &'a Path) -> Self {
        Checker {
            errors: Vec::new(),
            base,
        }
    }

    pub fn err(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(place, message));
    }

    /// The value of `r`, or `None` after recording its error at `place`.
    pub fn ok<T>(&mut self, place: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.err(place, m);
                None
            }
        }
    }

    /// A `u32` within `range`, or `default` when absent.
    pub fn int_in(
        &mut self,
        place: &str,
        v: Option<i64>,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> u32 {
        let Some(v) = v else { return default };
        match u32::try_from(v) {
            Ok(n) if range.contains(&n) => n,
            _ => {
                self.err(
                    place,
                    format!("{v} is out of range {}..={}", range.start(), range.end()),
                );
                default
            }
        }
    }

    fn duration(&mut self, place: &str, v: Option<&str>, default: Duration) -> Duration {
        match v {
            None => default,
            Some(s) => self.ok(place, parse_duration(s)).unwrap_or(default),
        }
    }

    /// A file the config names: resolved against the config's directory and
    /// opened once, so a typo is caught at load rather than at first lookup.
    pub fn readable_file(&mut self, place: &str, p: &str) -> PathBuf {
        let resolved = resolve(self.base, p);
        if p.trim().is_empty() {
            self.err(place, "is empty; give a file path");
            return resolved;
        }
        match std::fs::metadata(&resolved) {
            Err(e) => self.err(place, format!("cannot open {}: {e}", resolved.display())),
            Ok(m) if m.is_dir() => self.err(
                place,
                format!("{} is a directory, not a file", resolved.display()),
            ),
            Ok(_) => {
                if let Err(e) = std::fs::File::open(&resolved) {
                    self.err(place, format!("cannot read {}: {e}", resolved.display()));
                }
            }
        }
        resolved
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn check(c: &mut Checker<'_>, raw: RawConfig) -> Config {
    // Checked in file order, so errors come out in the order an operator reads them.
    let listen = addr(c, "listen", raw.listen.as_deref(), DEFAULT_LISTEN);
    let admin_listen = addr(
        c,
        "admin_listen",
        raw.admin_listen.as_deref(),
        DEFAULT_ADMIN_LISTEN,
    );
    if let (Some(l), Some(a)) = (listen, admin_listen) {
        if listeners_clash(l, a) {
            c.err(
                "admin_listen",
                format!("must differ from listen ({l}): the admin API needs its own listener"),
            );
        }
    }
    let geoip = geoip(c, raw.geoip.unwrap_or_default());
    let trusted_proxies = trusted_proxies(c, raw.trusted_proxies.unwrap_or_default());
    let redirect_status = redirect_status(c, raw.redirect_status);
    let fallback = raw
        .fallback
        .as_deref()
        .and_then(|s| c.ok("fallback", base_url(s)));
    let health = health(c, raw.health.unwrap_or_default());
    let selection = selection(c, raw.selection.unwrap_or_default());
    let limits = limits(c, raw.limits.unwrap_or_default());
    let admin = admin(c, raw.admin.unwrap_or_default());
    let raw_mirrors = raw.mirrors.unwrap_or_default();
    // Counted on the raw list: a mirror with a bad field has its own error
    // and must not also trigger this one.
    let any_enabled = raw_mirrors.iter().any(|m| m.enabled != Some(false));
    let mirrors = mirror::check_all(c, raw_mirrors);
    if raw.fallback.is_none() && !any_enabled {
        c.err(
            "mirrors",
            "no enabled mirror and no fallback: every request would get 503; add a mirror or set fallback",
        );
    }
    Config {
        // The fallbacks are never used: an error was recorded and no Config is returned.
        listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
        admin_listen: admin_listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8081))),
        geoip,
        trusted_proxies,
        redirect_status,
        fallback,
        health,
        selection,
        limits,
        admin,
        mirrors,
    }
}

fn addr(c: &mut Checker<'_>, place: &str, v: Option<&str>, default: &str) -> Option<SocketAddr> {
    let s = v.unwrap_or(default).trim();
    c.ok(
        place,
        s.parse::<SocketAddr>().map_err(|_| {
            format!("{s:?} is not ip:port, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\" (host names are not accepted)")
        }),
    )
}

/// Two listeners that cannot both bind: same port on the same address, or
/// on any address when either is the wildcard. Port 0 picks a free port, so
/// it never clashes.
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Checks an absolute http(s) base URL and appends the trailing `/` that
/// makes `join` keep its last path segment.
pub(super) fn base_url(s: &str) -> Result<Url, String> {
    let mut url = Url::parse(s.trim()).map_err(|e| format!("{s:?} is not an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Redirects hand this URL to every client; credentials would leak.
        return Err("must not contain user info (user:password@): clients would see it".into());
    }
    if url.query().is_some() {
        return Err("must not have a query (?...): file paths are appended to it".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a fragment (#...)".into());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn trusted_proxies(c: &mut Checker<'_>, list: Vec<String>) -> Vec<IpNet> {
    let mut out = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let s = s.trim();
        let net = s
            .parse::<IpNet>()
            // A stray host part (10.1.2.3/8) is read as its network, like most tools do.
            .map(|n| n.trunc())
            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from));
        match net {
            Ok(n) => out.push(n),
            Err(_) => c.err(
                format!("trusted_proxies[{i}]"),
                format!("{s:?} is not an address or a CIDR such as \"10.0.0.0/8\" or \"::1/128\""),
            ),
        }
    }
    out
}

fn redirect_status(c: &mut Checker<'_>, v: Option<i64>) -> StatusCode {
    match v {
        None => DEFAULT_REDIRECT_STATUS,
        Some(n @ (301 | 302 | 303 | 307 | 308)) => u16::try_from(n)
            .ok()
            .and_then(|n| StatusCode::from_u16(n).ok())
            .unwrap_or(DEFAULT_REDIRECT_STATUS),
        Some(n) => {
            c.err(
                "redirect_status",
                format!("{n} is not a redirect status; use 301, 302, 303, 307 or 308"),
            );
            DEFAULT_REDIRECT_STATUS
        }
    }
}

fn geoip(c: &mut Checker<'_>, raw: RawGeo) -> GeoConfig {
    let city = match raw.city {
        None => Vec::new(),
        Some(OneOrMany {
            items,
            single: true,
        }) => items
            .iter()
            .map(|p| c.readable_file("geoip.city", p))
            .collect(),
        Some(OneOrMany {
            items,
            single: false,
        }) => items
            .iter()
            .enumerate()
            .map(|(i, p)| c.readable_file(&format!("geoip.city[{i}]"), p))
            .collect(),
    };
    let asn = raw.asn.map(|p| c.readable_file("geoip.asn", &p));
    GeoConfig { city, asn }
}

fn health(c: &mut Checker<'_>, raw: RawHealth) -> HealthConfig {
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

fn selection(c: &mut Checker<'_>, raw: RawSelection) -> SelectionConfig {
    let d = SelectionConfig::default();
    let link_mirrors = match raw.link_mirrors {
        None => d.link_mirrors,
        Some(n @ 0..=16) => usize::try_from(n).unwrap_or(d.link_mirrors),
        // Each one is a header on every redirect; past 16 they only cost bytes.
        Some(n) => {
            c.err(
                "selection.link_mirrors",
                format!("{n} is out of range 0..=16"),
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

fn limits(c: &mut Checker<'_>, raw: RawLimits) -> LimitsConfig {
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

fn admin(c: &mut Checker<'_>, raw: RawAdmin) -> AdminConfig {
    let (place, token) = match (raw.token, raw.token_file) {
        (Some(_), Some(_)) => {
            c.err("admin", "give token or token_file, not both");
            return AdminConfig::default();
        }
        (None, None) => return AdminConfig::default(),
        (Some(t), None) => ("admin.token", t),
        (None, Some(f)) => {
            let path = c.readable_file("admin.token_file", &f);
            match std::fs::read_to_string(&path) {
                // A trailing newline from `echo > file` is not part of the token.
                Ok(t) => ("admin.token_file", t.trim().to_owned()),
                // readable_file has already said why.
                Err(_) => return AdminConfig::default(),
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
    AdminConfig { token: Some(token) }
}

#[cfg(test)]
mod tests;
