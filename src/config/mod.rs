//! Configuration: the YAML file (`file.rs`, serde structs that mirror it) is
//! checked by `validate.rs` into the typed [`Config`] below. Every error names
//! its place in the file (`mirrors[2].url: ...`), and all errors are reported
//! at once.
//!
//! This module does no network I/O: mirror locations that the file leaves out
//! are filled in later from GeoIP (see `registry`).

mod file;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use ipnet::IpNet;
use url::Url;

use crate::geo::{Continent, Coords, CountryCode};
pub use crate::http::client_ip::ForwardedHeader;

pub use validate::{ConfigError, ConfigErrors};

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub geoip: GeoConfig,
    pub trusted_proxies: Vec<IpNet>,
    /// Which header trusted proxies set: `x-forwarded-for` (default) or `forwarded`.
    pub client_ip_header: ForwardedHeader,
    pub redirect_status: StatusCode,
    pub fallback: Option<Url>,
    pub health: HealthConfig,
    pub selection: SelectionConfig,
    pub limits: LimitsConfig,
    pub admin: AdminConfig,
    pub mirrors: Vec<MirrorConfig>,
}

#[derive(Debug, Clone, Default)]
pub struct GeoConfig {
    /// Location databases (City, Country or flat layout); several when IPv4 and IPv6 come apart.
    pub city: Vec<PathBuf>,
    pub asn: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct HealthConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Probed relative to each mirror's url; no leading slash is kept.
    pub path: String,
}

/// How "close to the best" is measured and how far the ranking spreads.
#[derive(Debug, Clone)]
pub struct SelectionConfig {
    /// A mirror is in the spread band when its cost is within `band` (a fraction) of the best.
    pub band: f64,
    /// ... or within `band_km` kilometres of the best, whichever is wider.
    pub band_km: f64,
    /// Cost multiplier for a mirror in the client's own AS (0 < x <= 1).
    pub same_asn_factor: f64,
    /// Cost multiplier for a mirror in the client's own country (0 < x <= 1).
    pub same_country_factor: f64,
    /// How many further mirrors a redirect names in `Link: rel=duplicate` headers.
    pub link_mirrors: usize,
}

#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Longest request path accepted (bytes, before decoding).
    pub max_path_bytes: usize,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Most connections served at once on the public listener.
    pub max_connections: usize,
}

#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Bearer token for writes to the admin API; without it writes are refused.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MirrorConfig {
    pub name: String,
    /// Base URL, always ending in `/`.
    pub url: Url,
    pub country: Option<CountryCode>,
    pub continent: Option<Continent>,
    pub coords: Option<Coords>,
    pub asn: Vec<u32>,
    pub weight: u32,
    pub enabled: bool,
    /// Probe path override, relative to `url`.
    pub probe_path: Option<String>,
    pub countries_only: Vec<CountryCode>,
    pub exclude_countries: Vec<CountryCode>,
    pub continents_only: Vec<Continent>,
}

impl Config {
    /// Reads and validates a config file. Relative paths in it (GeoIP databases)
    /// are taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        validate::load(path)
    }

    /// Validates YAML text; `base` is the directory relative paths start from.
    pub fn from_yaml(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        validate::from_yaml(text, base)
    }
}
