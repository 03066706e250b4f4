//! Selection: which mirror answers a request, and why the others do not.
//!
//! A pure function of (mirrors with their health, client, settings, random
//! source). It does no I/O and takes no lock, so unit and property tests call
//! it directly and `explain` shows the very reasoning the request path uses.
//!
//! 1. **Eligible**: enabled, up, serving the client's scheme, allowed for the
//!    client by the mirror's country/continent lists.
//! 2. **Cost**: `(distance_km + 50) × same-AS factor × same-country factor × 100 / weight`.
//!    The 50 km floor keeps costs comparable when client and mirror share a city,
//!    so that weights still matter there. A mirror without coordinates is taken
//!    to be half the planet away: it serves only when nothing located does.
//! 3. **Spread**: among mirrors whose cost is within `max(best × band, band_km)` of
//!    the best, one is drawn at random in proportion to its weight.
//! 4. A client of unknown location gets a weighted draw over all eligible mirrors.
//! 5. No eligible mirror: `None`; the caller answers with the fallback or 503.

use rand::Rng;

use crate::config::SelectionConfig;
use crate::geo::Location;
use crate::health::HealthState;
use crate::registry::{Mirror, PolicyRefusal};

/// Half the Earth's circumference: the distance assumed when one side has no coordinates.
pub const UNKNOWN_DISTANCE_KM: f64 = 20_015.0;
/// Added to every distance so that nearby mirrors keep comparable costs.
const DISTANCE_FLOOR_KM: f64 = 50.0;

/// The URL scheme a client needs: a client that came over HTTPS is never sent to plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// What selection knows of the client.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub location: Option<Location>,
    pub scheme: Scheme,
}

/// Anything that can be ranked: a mirror and its current health.
pub trait Candidate {
    fn mirror(&self) -> &Mirror;
    fn health(&self) -> HealthState;
}

/// Why a mirror was kept or dropped; shown by `explain` and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Eligible,
    Disabled,
    NotProbedYet,
    Down,
    /// The client came over HTTPS and the mirror serves only HTTP.
    InsecureScheme,
    NotInCountries,
    CountryExcluded,
    NotInContinents,
}

impl Reason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Eligible => "eligible",
            Reason::Disabled => "disabled",
            Reason::NotProbedYet => "not_probed_yet",
            Reason::Down => "down",
            Reason::InsecureScheme => "insecure_scheme",
            Reason::NotInCountries => "not_in_countries",
            Reason::CountryExcluded => "country_excluded",
            Reason::NotInContinents => "not_in_continents",
        }
    }

    /// A sentence for people.
    pub fn describe(&self) -> &'static str {
        match self {
            Reason::Eligible => "eligible",
            Reason::Disabled => "disabled in the config",
            Reason::NotProbedYet => "not probed successfully yet",
            Reason::Down => "down (failed its health checks)",
            Reason::InsecureScheme => "serves only http and the client came over https",
            Reason::NotInCountries => "serves only some countries, not the client's",
            Reason::CountryExcluded => "excludes the client's country",
            Reason::NotInContinents => "serves only some continents, not the client's",
        }
    }
}

impl From<PolicyRefusal> for Reason {
    fn from(r: PolicyRefusal) -> Self {
        match r {
            PolicyRefusal::NotInCountries => Reason::NotInCountries,
            PolicyRefusal::CountryExcluded => Reason::CountryExcluded,
            PolicyRefusal::NotInContinents => Reason::NotInContinents,
        }
    }
}

/// The outcome of a selection: `order[0]` answers the request; the rest, best
/// first, are the alternatives named in `Link: rel=duplicate` headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    pub order: Vec<usize>,
}

impl Ranking {
    pub fn chosen(&self) -> usize {
        self.order[0]
    }
}

/// One mirror's verdict, for `explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub index: usize,
    pub reason: Reason,
    /// Great-circle distance, when both sides have coordinates.
    pub distance_km: Option<f64>,
    /// Cost as ranked (only for eligible mirrors).
    pub cost: Option<f64>,
    /// Whether it was in the spread band of the best.
    pub in_band: bool,
}

/// Is this mirror eligible for this client?
pub fn eligibility<C: Candidate + ?Sized>(c: &C, client: &Client) -> Reason {
    let m = c.mirror();
    if !m.enabled {
        return Reason::Disabled;
    }
    match c.health() {
        HealthState::Up => {}
        HealthState::Unknown => return Reason::NotProbedYet,
        HealthState::Down => return Reason::Down,
    }
    if client.scheme == Scheme::Https && m.scheme() != "https" {
        return Reason::InsecureScheme;
    }
    match m.policy.check(client.location.as_ref()) {
        Ok(()) => Reason::Eligible,
        Err(r) => r.into(),
    }
}

/// Distance between client and mirror, when both have coordinates.
pub fn distance_km(m: &Mirror, client: Option<&Location>) -> Option<f64> {
    let c = client?.coords?;
    Some(c.distance_km(&m.coords?))
}

/// The cost of sending this client to this mirror (lower is better).
pub fn cost(m: &Mirror, client: &Location, cfg: &SelectionConfig) -> f64 {
    let d = distance_km(m, Some(client)).unwrap_or(UNKNOWN_DISTANCE_KM);
    let mut c = d + DISTANCE_FLOOR_KM;
    if client.asn.is_some_and(|a| m.asns.contains(&a)) {
        c *= cfg.same_asn_factor;
    }
    if client.country.is_some() && client.country == m.country {
        c *= cfg.same_country_factor;
    }
    c * 100.0 / f64::from(m.weight.max(1))
}

/// A client whose location is useful for ranking by distance.
fn located(client: &Client) -> Option<&Location> {
    client.location.as_ref().filter(|l| l.coords.is_some())
}

/// Picks the mirror for a request and the next alternatives (at most `1 + cfg.link_mirrors`).
pub fn select<C: Candidate, R: Rng + ?Sized>(
    mirrors: &[C],
    client: &Client,
    cfg: &SelectionConfig,
    rng: &mut R,
) -> Option<Ranking> {
    let mut eligible: Vec<(usize, f64)> = Vec::with_capacity(mirrors.len());
    let loc = located(client);
    for (i, c) in mirrors.iter().enumerate() {
        if eligibility(c, client) == Reason::Eligible {
            let cost = loc.map_or(0.0, |l| cost(c.mirror(), l, cfg));
            eligible.push((i, cost));
        }
    }
    rank(mirrors, eligible, loc.is_some(), cfg, rng).map(|(r, _)| r)
}

/// Like [`select`], with a verdict for every mirror.
pub fn explain<C: Candidate, R: Rng + ?Sized>(
    mirrors: &[C],
    client: &Client,
    cfg: &SelectionConfig,
    rng: &mut R,
) -> (Vec<Verdict>, Option<Ranking>) {
    let loc = located(client);
    let mut verdicts = Vec::with_capacity(mirrors.len());
    let mut eligible = Vec::new();
    for (i, c) in mirrors.iter().enumerate() {
        let reason = eligibility(c, client);
        let cost = (reason == Reason::Eligible).then(|| loc.map_or(0.0, |l| cost(c.mirror(), l, cfg)));
        if let Some(cost) = cost {
            eligible.push((i, cost));
        }
        verdicts.push(Verdict {
            index: i,
            reason,
            distance_km: distance_km(c.mirror(), client.location.as_ref()),
            cost: loc.and(cost),
            in_band: false,
        });
    }
    let ranked = rank(mirrors, eligible, loc.is_some(), cfg, rng);
    let ranking = ranked.map(|(ranking, band)| {
        for i in band {
            verdicts[i].in_band = true;
        }
        ranking
    });
    (verdicts, ranking)
}

/// Orders eligible mirrors; returns the ranking and the indexes of the spread band.
fn rank<C: Candidate, R: Rng + ?Sized>(
    mirrors: &[C],
    mut eligible: Vec<(usize, f64)>,
    located: bool,
    cfg: &SelectionConfig,
    rng: &mut R,
) -> Option<(Ranking, Vec<usize>)> {
    if eligible.is_empty() {
        return None;
    }
    let weight = |i: usize| u64::from(mirrors[i].mirror().weight.max(1));
    let band_len = if located {
        eligible.sort_by(|a, b| a.1.total_cmp(&b.1));
        let best = eligible[0].1;
        let limit = best + (best * cfg.band).max(cfg.band_km);
        eligible.iter().take_while(|(_, c)| *c <= limit).count()
    } else {
        // Unknown location: everyone is in the band; alternatives by capacity.
        eligible.sort_by(|a, b| weight(b.0).cmp(&weight(a.0)).then(a.0.cmp(&b.0)));
        eligible.len()
    };
    let band: Vec<usize> = eligible[..band_len].iter().map(|e| e.0).collect();
    let pick = weighted_pick(&band, weight, rng);
    let max = 1 + cfg.link_mirrors;
    let mut order = Vec::with_capacity(max.min(eligible.len()));
    order.push(band[pick]);
    order.extend(
        eligible
            .iter()
            .map(|e| e.0)
            .filter(|&i| i != band[pick])
            .take(max - 1),
    );
    Some((Ranking { order }, band))
}

/// Index into `items` drawn with probability proportional to `weight`.
fn weighted_pick<R: Rng + ?Sized>(items: &[usize], weight: impl Fn(usize) -> u64, rng: &mut R) -> usize {
    let total: u64 = items.iter().map(|&i| weight(i)).sum();
    if items.len() <= 1 || total == 0 {
        return 0;
    }
    let mut r = rng.random_range(0..total);
    for (k, &i) in items.iter().enumerate() {
        let w = weight(i);
        if r < w {
            return k;
        }
        r -= w;
    }
    items.len() - 1
}
