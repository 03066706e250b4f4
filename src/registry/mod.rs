//! The mirrors: what each one is, where it is, whom it may serve.
//!
//! Built from the config; a mirror whose location the config leaves out gets it
//! from GeoIP for the address its host resolves to (`locate.rs`). This module
//! holds no health and no counters: those live in the snapshot (`crate::state`).

pub mod document;
mod file_store;
mod locate;
pub mod store;
pub mod token;
pub mod validate;

use std::net::IpAddr;
use std::sync::Arc;

use url::Url;

use crate::config::MirrorConfig;
use crate::geo::{Continent, Coords, CountryCode, Location};

pub use document::Document;
pub use file_store::{parse_document, FileStore};
pub use locate::{build_mirrors, BuildNote};
pub use store::{Store, StoreError};

/// Where a mirror's location came from; shown by `check-config` and the API.
#[derive(Debug, Clone, PartialEq)]
pub enum LocationSource {
    /// Everything came from the config file.
    Config,
    /// Some of it came from GeoIP for this address of the mirror's host.
    GeoIp(IpAddr),
    /// Neither the config nor GeoIP knew: the mirror ranks after located ones.
    Unknown,
}

/// Whom a mirror may serve (per-mirror allow and deny lists).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessPolicy {
    pub countries_only: Vec<CountryCode>,
    pub exclude_countries: Vec<CountryCode>,
    pub continents_only: Vec<Continent>,
}

/// Why a policy refuses a client; reused by selection's reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyRefusal {
    NotInCountries,
    CountryExcluded,
    NotInContinents,
}

impl AccessPolicy {
    /// Checks a client. An allow list refuses a client whose country (or
    /// continent) is unknown: a mirror restricted to some countries must never
    /// serve others, and "unknown" may be anyone.
    pub fn check(&self, client: Option<&Location>) -> Result<(), PolicyRefusal> {
        let country = client.and_then(|l| l.country);
        let continent =
            client.and_then(|l| l.continent.or_else(|| l.country.map(|c| c.continent())));
        if !self.countries_only.is_empty()
            && !country.is_some_and(|c| self.countries_only.contains(&c))
        {
            return Err(PolicyRefusal::NotInCountries);
        }
        if country.is_some_and(|c| self.exclude_countries.contains(&c)) {
            return Err(PolicyRefusal::CountryExcluded);
        }
        if !self.continents_only.is_empty()
            && !continent.is_some_and(|c| self.continents_only.contains(&c))
        {
            return Err(PolicyRefusal::NotInContinents);
        }
        Ok(())
    }
}

/// The `mirror` label of the fallback's proxy metrics.
pub const FALLBACK_NAME: &str = "(fallback)";

/// One mirror, immutable once built.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// Unique name: identity across reloads, metric label, API key.
    pub name: Arc<str>,
    /// Base URL, ending in `/`.
    pub url: Url,
    pub country: Option<CountryCode>,
    pub continent: Option<Continent>,
    pub coords: Option<Coords>,
    pub asns: Vec<u32>,
    pub location_source: LocationSource,
    /// Capacity share (100 is the default).
    pub weight: u32,
    pub enabled: bool,
    pub policy: AccessPolicy,
    /// The URL the health check probes.
    pub probe_url: Url,
}

impl Mirror {
    /// A mirror located exactly as the config says (no GeoIP fill-in).
    pub fn from_config(cfg: &MirrorConfig, health_path: &str) -> Result<Mirror, url::ParseError> {
        let probe_path = cfg.probe_path.as_deref().unwrap_or(health_path);
        let probe_url = cfg.url.join(probe_path.trim_start_matches('/'))?;
        Ok(Mirror {
            name: Arc::from(cfg.name.as_str()),
            url: cfg.url.clone(),
            country: cfg.country,
            continent: cfg.continent.or_else(|| cfg.country.map(|c| c.continent())),
            coords: cfg.coords,
            asns: cfg.asn.clone(),
            location_source: LocationSource::Config,
            weight: cfg.weight,
            enabled: cfg.enabled,
            policy: AccessPolicy {
                countries_only: cfg.countries_only.clone(),
                exclude_countries: cfg.exclude_countries.clone(),
                continents_only: cfg.continents_only.clone(),
            },
            probe_url,
        })
    }

    /// The configured fallback (the origin) as the last hop of a proxied
    /// request. Its name, [`FALLBACK_NAME`], is no valid mirror name, so its
    /// metric series cannot be mistaken for a mirror's.
    pub fn fallback(url: &Url) -> Mirror {
        Mirror {
            name: Arc::from(FALLBACK_NAME),
            url: url.clone(),
            country: None,
            continent: None,
            coords: None,
            asns: Vec::new(),
            location_source: LocationSource::Unknown,
            weight: 100,
            enabled: true,
            policy: AccessPolicy::default(),
            probe_url: url.clone(),
        }
    }

    /// True when the config left part of the location for GeoIP to fill in.
    pub fn needs_location(&self) -> bool {
        self.coords.is_none() || self.country.is_none()
    }

    /// Whether this mirror serves the given URL scheme.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }
}
