//! Serde structs that mirror the YAML file one to one.
//!
//! They are deliberately loose where a value needs checking: addresses, URLs,
//! durations and codes are kept as text and numbers as `i64`/`f64`, so that a
//! bad value becomes a validation error (collected with all the others, with
//! its place) instead of a serde error that stops at the first one. Every
//! section and list is an `Option` so that a key left empty (`selection:` with
//! only a comment after it, which YAML reads as null) means "the defaults".
//!
//! The structure itself is strict: `deny_unknown_fields` everywhere, so a
//! misspelt key is refused with the list of allowed ones.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub geoip: Option<RawGeo>,
    pub trusted_proxies: Option<Vec<String>>,
    pub client_ip_header: Option<String>,
    pub redirect_status: Option<i64>,
    pub fallback: Option<String>,
    pub health: Option<RawHealth>,
    pub selection: Option<RawSelection>,
    pub limits: Option<RawLimits>,
    pub admin: Option<RawAdmin>,
    pub origin: Option<RawOrigin>,
    pub mode: Option<String>,
    pub rules: Option<Vec<RawRule>>,
    pub proxy: Option<RawProxy>,
    pub tls_roots: Option<Vec<String>>,
    pub mirrors: Option<Vec<RawMirror>>,
    pub registry: Option<RawRegistry>,
}

/// `registry:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistry {
    pub path: Option<String>,
    pub allow_private_targets: Option<bool>,
}

/// One entry of `rules:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub pattern: Option<String>,
    pub mode: Option<String>,
}

/// `proxy:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub connect_timeout: Option<String>,
    pub first_byte_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_attempts: Option<i64>,
    pub max_total_time: Option<String>,
    pub follow_redirects: Option<i64>,
    pub passive_failures: Option<bool>,
    pub passive_backoff: Option<String>,
    pub passive_backoff_max: Option<String>,
    pub auto_threshold: Option<i64>,
    pub no_redirect_header: Option<String>,
    pub idle_connections: Option<i64>,
    pub idle_connection_timeout: Option<String>,
}

/// `geoip:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGeo {
    pub city: Option<OneOrMany>,
    pub asn: Option<String>,
}

/// A path or a list of paths (`city: a.mmdb` or `city: [v4.mmdb, v6.mmdb]`).
///
/// Written by hand rather than as an untagged enum: serde's untagged enums
/// answer a wrong type with "did not match any variant", which says nothing.
#[derive(Debug, Default, PartialEq)]
pub(super) struct OneOrMany {
    pub items: Vec<String>,
    /// Written as one scalar: its place is `geoip.city`, not `geoip.city[0]`.
    pub single: bool,
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path or a list of paths")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany {
                    items: vec![v.to_owned()],
                    single: true,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany {
                    items: out,
                    single: false,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `health:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<i64>,
    pub fall: Option<i64>,
    pub path: Option<String>,
}

/// `selection:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelection {
    pub band: Option<f64>,
    pub band_km: Option<f64>,
    pub same_asn_factor: Option<f64>,
    pub same_country_factor: Option<f64>,
    pub link_mirrors: Option<i64>,
}

/// `limits:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_path_bytes: Option<i64>,
    pub header_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    pub max_connections: Option<i64>,
    pub idle_timeout: Option<String>,
    pub send_timeout: Option<String>,
}

/// `origin:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrigin {
    pub root: Option<String>,
    pub manifest: Option<String>,
    pub rescan_interval: Option<String>,
    pub hash_threads: Option<i64>,
    pub hash_cache: Option<String>,
    pub settle: Option<String>,
    pub trace_file: Option<String>,
    pub max_lag: Option<String>,
    pub directories: Option<String>,
    pub never_redirect: Option<Vec<String>>,
    pub min_redirect_size: Option<i64>,
    pub on_demand: Option<RawOnDemand>,
}

/// `origin.on_demand:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOnDemand {
    pub timeout: Option<String>,
    pub wait: Option<String>,
    pub parallel: Option<i64>,
    pub positive_ttl: Option<String>,
    pub negative_ttl: Option<String>,
}

/// `admin:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub token: Option<String>,
    pub token_file: Option<String>,
    pub header_timeout: Option<String>,
    pub max_connections: Option<i64>,
}

/// One entry of `mirrors:`. `name` and `url` are `Option` so that a missing
/// one is reported with the others rather than as the only serde error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMirror {
    pub name: Option<String>,
    pub url: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Option<Vec<i64>>,
    pub weight: Option<i64>,
    pub enabled: Option<bool>,
    pub probe_path: Option<String>,
    pub countries_only: Option<Vec<String>>,
    pub exclude_countries: Option<Vec<String>>,
    pub continents_only: Option<Vec<String>>,
}
