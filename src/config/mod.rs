//! Configuration: the YAML file is read by `parse.rs` (with limits on size,
//! depth and aliases) into the serde structs of `file.rs`, which mirror it,
//! then checked by `validate.rs` (top-level keys), `sections.rs` (health,
//! selection, limits, admin) and `mirror.rs` into the typed [`Config`] below.
//! Every error names its place in the file (`mirrors[2].url: ...`); all value
//! errors are reported at once (see `parse.rs` for how serde errors get theirs).
//!
//! This module does no network I/O: mirror locations that the file leaves out
//! are filled in later from GeoIP (see `registry`).

mod duration;
mod file;
mod mirror;
mod origin;
mod parse;
mod proxy;
mod registry;
mod sections;
mod unknown_keys;
mod validate;

use crate::tls::TlsRoots;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use ipnet::IpNet;
use url::Url;

use crate::geo::{Continent, Coords, CountryCode};
pub use crate::http::client_ip::ForwardedHeader;

pub use duration::{format_duration, parse_duration};
pub use mirror::{check_entry, check_name, MirrorEntry};
pub use parse::MAX_CONFIG_BYTES;
pub use validate::{ConfigError, ConfigErrors};

/// Public listener when the file names none: loopback, so that a fresh
/// install is not open to the world before its operator says so.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Admin listener when the file names none (loopback, like [`DEFAULT_LISTEN`]).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8081";
/// Redirect status when the file names none.
pub const DEFAULT_REDIRECT_STATUS: StatusCode = StatusCode::FOUND;
/// Mirror weight when the file names none.
pub const DEFAULT_WEIGHT: u32 = 100;

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Public (download) listener.
    pub listen: SocketAddr,
    /// Admin listener (`/metrics`, health, mirror API); never the same as `listen`.
    pub admin_listen: SocketAddr,
    pub geoip: GeoConfig,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed; a
    /// single address in the file becomes a /32 or /128.
    pub trusted_proxies: Vec<IpNet>,
    /// Which header trusted proxies set: `x-forwarded-for` (default) or `forwarded`.
    pub client_ip_header: ForwardedHeader,
    /// One of 301, 302, 303, 307, 308.
    pub redirect_status: StatusCode,
    /// Where to send a client when no mirror is eligible; without it, 503.
    /// Normalised like mirror URLs (path ends in `/`).
    pub fallback: Option<Url>,
    pub health: HealthConfig,
    pub selection: SelectionConfig,
    pub limits: LimitsConfig,
    pub admin: AdminConfig,
    /// What the origin publishes and how mirrors are known to have it; none:
    /// every path is redirected, with no per-file checks.
    pub origin: Option<OriginConfig>,
    /// How downloads are answered where no rule says otherwise.
    pub mode: DeliveryMode,
    /// Per-path modes; the first rule whose pattern matches wins.
    pub rules: Vec<ModeRule>,
    pub proxy: ProxyConfig,
    /// Certificate authorities trusted for mirrors and the origin besides
    /// the web PKI roots (PEM files, read at validation).
    pub tls_roots: TlsRoots,
    pub mirrors: Vec<MirrorConfig>,
    /// Mirrors registered through the admin API, kept beside the config.
    pub registry: RegistryConfig,
}

/// `registry:`: where registrations, drains, operators and the audit trail
/// are kept. Without `path` the registry is off.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryConfig {
    /// The registry document (resolved against the config's directory); its
    /// directory exists at load time. None: the registry is off.
    pub path: Option<PathBuf>,
    /// Whether a registered mirror may point at a loopback, private,
    /// link-local, unique-local or CGNAT address (default false).
    pub allow_private_targets: bool,
}

/// How a download is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// A redirect to the best mirror (the default).
    Redirect,
    /// The file itself, streamed from the best mirror, with failover.
    Proxy,
    /// Proxied for files below `proxy.auto_threshold` and for clients that
    /// ask not to be redirected; redirected otherwise.
    Auto,
}

impl DeliveryMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryMode::Redirect => "redirect",
            DeliveryMode::Proxy => "proxy",
            DeliveryMode::Auto => "auto",
        }
    }
}

/// One entry of `rules:`.
#[derive(Debug, Clone)]
pub struct ModeRule {
    /// As written in the file.
    pub pattern: String,
    pub mode: DeliveryMode,
    /// Compiled `pattern` (one without `/` matches a file name anywhere).
    pub matcher: globset::GlobMatcher,
}

/// `proxy:`: how proxied downloads reach mirrors.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Time to open a TCP connection (and finish TLS) to a mirror. Read at
    /// start: the connection pool outlives reloads.
    pub connect_timeout: Duration,
    /// Time from sending a request to a mirror to its response headers.
    pub first_byte_timeout: Duration,
    /// Longest wait for the next piece of a body that has started.
    pub idle_timeout: Duration,
    /// Mirrors tried for one request (the first included), 1..=16.
    pub max_attempts: u32,
    /// Longest time spent trying mirrors before the client gets its
    /// response headers (and, after a mirror died mid-body, resuming).
    pub max_total_time: Duration,
    /// Redirects of a mirror followed for the client; 0 passes them on.
    pub follow_redirects: u32,
    /// Whether failures of proxied requests count against a mirror's health.
    pub passive_failures: bool,
    /// How long a mirror taken out by proxied traffic stays out, whatever
    /// its probes say; doubled each time it is taken out again before a
    /// proxied request succeeds on it.
    pub passive_backoff: Duration,
    /// The most `passive_backoff` grows to.
    pub passive_backoff_max: Duration,
    /// In `auto` mode, files smaller than this (bytes, from the origin index) are proxied.
    pub auto_threshold: u64,
    /// In `auto` mode, a request carrying this header (or a `proxy` query
    /// key) asks not to be redirected.
    pub no_redirect_header: http::HeaderName,
    /// Idle keep-alive connections kept per mirror, 1..=4096. Read at start.
    pub idle_connections: usize,
    /// How long an idle connection to a mirror is kept. Read at start.
    pub idle_connection_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(2),
            first_byte_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_attempts: 3,
            max_total_time: Duration::from_secs(20),
            follow_redirects: 3,
            passive_failures: true,
            passive_backoff: Duration::from_secs(30),
            passive_backoff_max: Duration::from_secs(600),
            auto_threshold: 1024 * 1024,
            no_redirect_header: http::HeaderName::from_static("x-no-redirect"),
            idle_connections: 64,
            idle_connection_timeout: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// The mode for `path` (decoded, no leading slash): the first matching
    /// rule's, else `mode`.
    pub fn mode_for(&self, path: &str) -> DeliveryMode {
        self.rules
            .iter()
            .find(|r| r.matcher.is_match(path))
            .map_or(self.mode, |r| r.mode)
    }
}

/// GeoIP database files, resolved against the config file's directory and
/// checked to be readable at load time.
/// Where the origin's file list comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum OriginSource {
    /// A local tree, walked and hashed in the background.
    Root(PathBuf),
    /// A manifest file (`mirrorgate manifest DIR`) on disk.
    ManifestFile(PathBuf),
    /// A manifest fetched over HTTP(S) with conditional requests.
    ManifestUrl(Url),
}

/// What a request for a directory gets when the origin's index is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryPolicy {
    NotFound,
    Fallback,
}

/// `origin:`
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// None: no index (trace files and `max_lag` still apply).
    pub source: Option<OriginSource>,
    pub rescan_interval: Duration,
    pub hash_threads: usize,
    /// Where the hash cache lives (tree sources only).
    pub hash_cache: Option<PathBuf>,
    /// Files modified more recently than this are not hashed yet.
    pub settle: Duration,
    /// The origin's trace file, relative to each mirror's URL.
    pub trace_file: Option<String>,
    /// A mirror whose last sync is further behind the origin gets nothing.
    pub max_lag: Option<Duration>,
    pub directories: DirectoryPolicy,
    /// Files that always go to the fallback (signatures, repository metadata).
    pub never_redirect: Vec<String>,
    /// Compiled `never_redirect`.
    pub never_redirect_set: globset::GlobSet,
    /// Smaller files go to the fallback too.
    pub min_redirect_size: u64,
    pub on_demand: OnDemandConfig,
}

/// `origin.on_demand:`: checking one file on one mirror while a request waits.
#[derive(Debug, Clone)]
pub struct OnDemandConfig {
    pub timeout: Duration,
    /// Longest a request waits for checks.
    pub wait: Duration,
    /// Candidates checked at once for one request.
    pub parallel: usize,
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
}

impl OriginConfig {
    /// True when `path` (decoded, no leading slash) must never leave the origin.
    pub fn never_redirect(&self, path: &str) -> bool {
        !self.never_redirect.is_empty() && self.never_redirect_set.is_match(path)
    }
}

#[derive(Debug, Clone, Default)]
pub struct GeoConfig {
    /// Location databases (City, Country or flat layout); several when IPv4 and IPv6 come apart.
    /// Empty when the file names none: every client is then of unknown location.
    pub city: Vec<PathBuf>,
    /// ASN database, if any.
    pub asn: Option<PathBuf>,
}

/// Probing of mirrors.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Time between probes of one mirror (at least 100ms).
    pub interval: Duration,
    /// Time one probe may take (more than zero, less than `interval`).
    pub timeout: Duration,
    /// Consecutive successes that bring a down mirror up (1..=100).
    pub rise: u32,
    /// Consecutive failures that take an up mirror down (1..=100).
    pub fall: u32,
    /// Probed relative to each mirror's url; no leading slash is kept.
    pub path: String,
}

/// The most `Link: rel=duplicate` lines a redirect may carry
/// (`selection.link_mirrors`): each is a header on every redirect, and past
/// this many they only cost bytes.
pub const MAX_LINK_MIRRORS: usize = 16;

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

/// Protections of the public listener.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Longest request path accepted (bytes, before decoding).
    pub max_path_bytes: usize,
    /// Time a new connection has to send its first request head, complete.
    pub header_timeout: Duration,
    /// Time a kept-alive connection has, after an answer, to send the next
    /// request head, complete (it replaces `header_timeout` for every head
    /// but the first).
    pub idle_timeout: Duration,
    /// Longest a connection may make no progress writing to its client
    /// before it is closed (and a proxied transfer's mirror let go).
    pub send_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Most connections served at once on the public listener.
    pub max_connections: usize,
}

/// The admin listener's settings. `Debug` hides the token, so a logged
/// config does not leak it.
#[derive(Clone)]
pub struct AdminConfig {
    /// Bearer token for writes to the admin API; without it writes are refused.
    /// From `admin.token`, or read from `admin.token_file` (trimmed); at least
    /// 16 printable ASCII characters.
    pub token: Option<String>,
    /// Time a connection has to send a complete request head, idle
    /// keep-alive included.
    pub header_timeout: Duration,
    /// Most connections served at once on the admin listener; later ones
    /// wait to be accepted.
    pub max_connections: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: None,
            header_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// One mirror as the file declares it. Location fields left out stay `None`
/// here; the registry fills them from GeoIP.
#[derive(Debug, Clone)]
pub struct MirrorConfig {
    /// Unique; `[A-Za-z0-9._-]{1,64}`, so it is safe as a metric label and a URL path segment.
    pub name: String,
    /// Base URL, always ending in `/`; http or https, with a host, no user
    /// info, query or fragment.
    pub url: Url,
    pub country: Option<CountryCode>,
    pub continent: Option<Continent>,
    pub coords: Option<Coords>,
    /// Autonomous systems the mirror is reachable in (for the same-ASN bonus).
    pub asn: Vec<u32>,
    /// Declared capacity, 1..=1_000_000 (default 100).
    pub weight: u32,
    pub enabled: bool,
    /// Probe path override, relative to `url` (no leading slash, no `..`).
    pub probe_path: Option<String>,
    /// When not empty, only clients in these countries are sent here.
    pub countries_only: Vec<CountryCode>,
    /// Clients in these countries are never sent here. Never set together
    /// with `countries_only`.
    pub exclude_countries: Vec<CountryCode>,
    /// When not empty, only clients on these continents are sent here.
    pub continents_only: Vec<Continent>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("header_timeout", &self.header_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
            rise: 2,
            fall: 2,
            path: String::new(),
        }
    }
}

impl Default for SelectionConfig {
    fn default() -> Self {
        SelectionConfig {
            band: 0.25,
            band_km: 500.0,
            same_asn_factor: 0.5,
            same_country_factor: 0.75,
            link_mirrors: 4,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_path_bytes: 4096,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
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
