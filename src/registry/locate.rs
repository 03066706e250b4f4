//! Filling in mirror locations from GeoIP, for mirrors whose config leaves them out.
//!
//! Runs at load and reload time only (it resolves host names); never on the request path.

use std::net::IpAddr;
use std::time::Duration;

use super::{LocationSource, Mirror};
use crate::config::Config;
use crate::geo::{GeoDb, LookupOutcome};

/// Something `check-config` and the logs should tell the operator about a mirror.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildNote {
    /// `mirrors[2]`
    pub place: String,
    pub message: String,
}

impl std::fmt::Display for BuildNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// How long resolving one mirror's host may take at load time.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds every mirror of the config, filling missing locations from GeoIP.
/// Returns the mirrors and notes (where a location came from, or why it is unknown).
pub async fn build_mirrors(config: &Config, geo: &GeoDb) -> (Vec<Mirror>, Vec<BuildNote>) {
    let mut mirrors = Vec::with_capacity(config.mirrors.len());
    let mut notes = Vec::new();
    for (i, mc) in config.mirrors.iter().enumerate() {
        let place = format!("mirrors[{i}]");
        let mut m = match Mirror::from_config(mc, &config.health.path) {
            Ok(m) => m,
            Err(e) => {
                // Validation already checked the URL; a failure here is a bug worth saying.
                notes.push(BuildNote {
                    place,
                    message: format!("probe URL cannot be built: {e}; mirror left out"),
                });
                continue;
            }
        };
        if m.needs_location() {
            fill_location(&mut m, geo, &place, &mut notes).await;
        }
        mirrors.push(m);
    }
    (mirrors, notes)
}

async fn fill_location(m: &mut Mirror, geo: &GeoDb, place: &str, notes: &mut Vec<BuildNote>) {
    let Some(ip) = resolve(&m.url).await else {
        m.location_source = LocationSource::Unknown;
        notes.push(BuildNote {
            place: place.to_string(),
            message: format!(
                "{}: location not in the config and the host does not resolve; ranked after located mirrors",
                m.name
            ),
        });
        return;
    };
    let (loc, outcome) = geo.lookup(ip);
    match (loc, outcome) {
        (Some(loc), LookupOutcome::Found) => {
            m.country = m.country.or(loc.country);
            m.continent = m
                .continent
                .or(loc.continent)
                .or(m.country.map(|c| c.continent()));
            m.coords = m.coords.or(loc.coords);
            if m.asns.is_empty() {
                m.asns.extend(loc.asn);
            }
            m.location_source = LocationSource::GeoIp(ip);
            let country = m
                .country
                .map(|c| c.to_string())
                .unwrap_or_else(|| "??".into());
            let coords = m
                .coords
                .map(|c| format!("{:.2},{:.2}", c.lat, c.lon))
                .unwrap_or_else(|| "no coordinates".into());
            notes.push(BuildNote {
                place: place.to_string(),
                message: format!(
                    "{}: location from GeoIP for {ip}: {country} ({coords})",
                    m.name
                ),
            });
        }
        _ => {
            m.location_source = LocationSource::Unknown;
            notes.push(BuildNote {
                place: place.to_string(),
                message: format!(
                    "{}: location not in the config and GeoIP has no record for {ip}; ranked after located mirrors",
                    m.name
                ),
            });
        }
    }
}

async fn resolve(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
        url::Host::Domain(d) => {
            let port = url.port_or_known_default().unwrap_or(80);
            let lookup = tokio::net::lookup_host((d, port));
            let mut addrs = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
                .await
                .ok()?
                .ok()?;
            addrs.next().map(|a| a.ip())
        }
    }
}
