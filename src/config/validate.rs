//! Raw file -> typed [`Config`], collecting every error with its place.
//!
//! Each check records its error in a [`Checker`] and carries on with a
//! fallback value, so that one pass over the file reports everything wrong
//! with it; the typed `Config` is built only when nothing was recorded.
//! Places are YAML paths (`mirrors[2].url`, `geoip.city[1]`); a check that
//! spans several keys names the one the operator most likely has to change.
//!
//! Mirror entries are checked in `mirror.rs` and the settings sections in
//! `sections.rs`; this file owns the error types, the [`Checker`], and the
//! top-level keys. The only I/O here is reading the files the config
//! names (GeoIP databases, the admin token file) to prove they are readable.

use crate::tls::TlsRoots;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use ipnet::IpNet;
use url::Url;

use super::duration::parse_duration;
use super::file::{OneOrMany, RawConfig, RawGeo};
use super::origin;
use super::proxy;
use super::registry;
use super::sections::{admin, health, limits, selection};
use super::{
    mirror, parse, Config, GeoConfig, DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, DEFAULT_REDIRECT_STATUS,
};
use super::{DirectoryPolicy, ForwardedHeader};

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
    let (raw, unknown_keys) = parse::parse(text).map_err(ConfigErrors)?;
    let mut c = Checker::new(base);
    // Unknown keys first, then what the known ones hold: every error in one run.
    c.errors = unknown_keys;
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
    pub(super) fn new(base: &'a Path) -> Self {
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

    /// A duration, or `default` when absent.
    pub fn duration(&mut self, place: &str, v: Option<&str>, default: Duration) -> Duration {
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

pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
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
    let client_ip_header = client_ip_header(c, raw.client_ip_header.as_deref());
    let redirect_status = redirect_status(c, raw.redirect_status);
    let fallback = raw
        .fallback
        .as_deref()
        .and_then(|s| c.ok("fallback", base_url(s)));
    let health = health(c, raw.health.unwrap_or_default());
    let selection = selection(c, raw.selection.unwrap_or_default());
    let limits = limits(c, raw.limits.unwrap_or_default());
    let admin = admin(c, raw.admin.unwrap_or_default());
    let origin = raw.origin.map(|o| origin::origin(c, o));
    if let Some(o) = &origin {
        if raw.fallback.is_none() && (!o.never_redirect.is_empty() || o.min_redirect_size > 0) {
            c.err(
                "origin",
                "never_redirect and min_redirect_size send files to the fallback: set fallback (usually the origin)",
            );
        }
        if raw.fallback.is_none() && o.directories == DirectoryPolicy::Fallback {
            c.err(
                "origin.directories",
                "fallback needs a fallback URL: set fallback",
            );
        }
    }
    let mode = proxy::mode(c, "mode", raw.mode.as_deref());
    let rules = proxy::rules(c, raw.rules.unwrap_or_default());
    let proxy = proxy::proxy(c, raw.proxy.unwrap_or_default());
    let tls_roots = tls_roots(c, raw.tls_roots.unwrap_or_default());
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
    let registry = registry::registry(c, raw.registry.unwrap_or_default());
    Config {
        // The fallbacks are never used: an error was recorded and no Config is returned.
        listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
        admin_listen: admin_listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8081))),
        geoip,
        trusted_proxies,
        client_ip_header,
        redirect_status,
        fallback,
        health,
        selection,
        limits,
        admin,
        origin,
        mode,
        rules,
        proxy,
        tls_roots,
        mirrors,
        registry,
    }
}

/// `tls_roots:`: PEM files of certificate authorities, each read and parsed now.
fn tls_roots(c: &mut Checker<'_>, files: Vec<String>) -> TlsRoots {
    let mut certs = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let place = format!("tls_roots[{i}]");
        if f.trim().is_empty() {
            c.err(
                &place,
                "is empty; give the path of a PEM file of CA certificates",
            );
            continue;
        }
        if let Some(mut found) = c.ok(&place, TlsRoots::read_pem(&resolve(c.base, f))) {
            certs.append(&mut found);
        }
    }
    TlsRoots::new(certs)
}

/// The forwarding header trusted proxies set; only that one is read, so a
/// client cannot slip a forged address into the other.
fn client_ip_header(c: &mut Checker<'_>, v: Option<&str>) -> ForwardedHeader {
    match v.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("x-forwarded-for") => ForwardedHeader::XForwardedFor,
        Some("forwarded") => ForwardedHeader::Forwarded,
        Some(other) => {
            c.err(
                "client_ip_header",
                format!("{other:?} is not one of x-forwarded-for, forwarded"),
            );
            ForwardedHeader::XForwardedFor
        }
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

#[cfg(test)]
mod tests;
