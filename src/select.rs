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
use crate::geo::{Location, UnitVector};
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
    /// The mirror's position; implementors that rank often keep it precomputed.
    fn position(&self) -> Option<UnitVector> {
        self.mirror().coords.map(UnitVector::from)
    }
    /// `100 / weight`, the cost multiplier of capacity; likewise.
    fn capacity_factor(&self) -> f64 {
        capacity_factor(self.mirror())
    }
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
    /// Its last sync is further behind the origin than `max_lag`.
    Lagging,
    /// The file is newer than the mirror's last sync, and no check confirmed it yet.
    NotSyncedYet,
    /// A check found the file missing on the mirror.
    Missing,
    /// A check found the file on the mirror with another size.
    SizeMismatch,
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
            Reason::Lagging => "lagging",
            Reason::NotSyncedYet => "not_synced_yet",
            Reason::Missing => "missing",
            Reason::SizeMismatch => "size_mismatch",
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
            Reason::Lagging => "too stale: its last sync is further behind the origin than max_lag",
            Reason::NotSyncedYet => "the file is newer than its last sync and not confirmed there",
            Reason::Missing => "the file is missing there (checked)",
            Reason::SizeMismatch => "it has the file with another size (checked)",
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
    let at = client.coords.map(UnitVector::from);
    cost_at(
        m,
        m.coords.map(UnitVector::from),
        capacity_factor(m),
        client,
        at,
        cfg,
    )
}

/// [`cost`] with both positions already known.
fn cost_at(
    m: &Mirror,
    mirror_at: Option<UnitVector>,
    capacity: f64,
    client: &Location,
    client_at: Option<UnitVector>,
    cfg: &SelectionConfig,
) -> f64 {
    let d = match (mirror_at, client_at) {
        (Some(a), Some(b)) => a.distance_km(&b),
        _ => UNKNOWN_DISTANCE_KM,
    };
    let mut c = d + DISTANCE_FLOOR_KM;
    if client.asn.is_some_and(|a| m.asns.contains(&a)) {
        c *= cfg.same_asn_factor;
    }
    if client.country.is_some() && client.country == m.country {
        c *= cfg.same_country_factor;
    }
    c * capacity
}

/// `100 / weight`: a mirror of weight 200 counts as half as far.
pub fn capacity_factor(m: &Mirror) -> f64 {
    100.0 / f64::from(m.weight.max(1))
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
    select_for(mirrors, client, cfg, rng, |_| Reason::Eligible)
}

/// [`select`] for one file: `for_file(i)` says whether mirror `i`, eligible
/// otherwise, may serve it (it is fresh, or known to have it).
pub fn select_for<C: Candidate, R: Rng + ?Sized>(
    mirrors: &[C],
    client: &Client,
    cfg: &SelectionConfig,
    rng: &mut R,
    for_file: impl Fn(usize) -> Reason,
) -> Option<Ranking> {
    let mut eligible: Vec<(usize, f64)> = Vec::with_capacity(mirrors.len());
    let loc = located(client);
    let at = loc.and_then(|l| l.coords).map(UnitVector::from);
    for (i, c) in mirrors.iter().enumerate() {
        if eligibility(c, client) == Reason::Eligible && for_file(i) == Reason::Eligible {
            let cost = loc.map_or(0.0, |l| {
                cost_at(c.mirror(), c.position(), c.capacity_factor(), l, at, cfg)
            });
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
    for_file: impl Fn(usize) -> Reason,
) -> (Vec<Verdict>, Option<Ranking>) {
    let loc = located(client);
    let mut verdicts = Vec::with_capacity(mirrors.len());
    let mut eligible = Vec::new();
    for (i, c) in mirrors.iter().enumerate() {
        let reason = match eligibility(c, client) {
            Reason::Eligible => for_file(i),
            other => other,
        };
        let cost =
            (reason == Reason::Eligible).then(|| loc.map_or(0.0, |l| cost(c.mirror(), l, cfg)));
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

/// Up to this many alternatives are ordered by insertion; more (the lists)
/// by a selection and a sort.
const INSERTION_MAX: usize = 16;

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
    // No full sort: the band is a filter, and only the few alternatives named
    // in Link headers need ordering (a partial selection, then a short sort).
    let band: Vec<usize> = if located {
        let best = eligible.iter().map(|e| e.1).fold(f64::INFINITY, f64::min);
        let limit = best + (best * cfg.band).max(cfg.band_km);
        eligible
            .iter()
            .filter(|e| e.1 <= limit)
            .map(|e| e.0)
            .collect()
    } else {
        // Unknown location: everyone is in the band.
        eligible.iter().map(|e| e.0).collect()
    };
    let chosen = band[weighted_pick(&band, weight, rng)];
    if let Some(pos) = eligible.iter().position(|e| e.0 == chosen) {
        eligible.swap_remove(pos);
    }
    // `eligible` is in mirror order again but for the swap: ties below are
    // broken by index, so the alternatives do not depend on it.
    // Alternatives: by cost for a located client, by capacity otherwise.
    let order_by = |a: &(usize, f64), b: &(usize, f64)| {
        if located {
            a.1.total_cmp(&b.1).then(a.0.cmp(&b.0))
        } else {
            weight(b.0).cmp(&weight(a.0)).then(a.0.cmp(&b.0))
        }
    };
    let k = cfg.link_mirrors.min(eligible.len());
    if k > INSERTION_MAX {
        // A list ranks hundreds or thousands: insertion into a sorted run
        // would move O(n·k) entries. A selection (linear on average), then a
        // sort of the k kept, costs O(n + k log k). Ties are broken by index,
        // so the order is the one the insertion below gives.
        if k < eligible.len() {
            eligible.select_nth_unstable_by(k - 1, order_by);
            eligible.truncate(k);
        }
        eligible.sort_unstable_by(order_by);
        let mut order = Vec::with_capacity(1 + k);
        order.push(chosen);
        order.extend(eligible.iter().map(|e| e.0));
        return Some((Ranking { order }, band));
    }
    // The k best by insertion into a short sorted run: k is a handful (a
    // redirect names at most 16), where a general selection algorithm costs
    // more than it saves.
    let mut best: Vec<(usize, f64)> = Vec::with_capacity(k + 1);
    for &e in &eligible {
        if best.len() == k {
            match best.last() {
                Some(last) if order_by(&e, last).is_lt() => {
                    best.pop();
                }
                _ => continue,
            }
        }
        let at = best.partition_point(|b| order_by(b, &e).is_lt());
        best.insert(at, e);
    }
    let mut order = Vec::with_capacity(1 + k);
    order.push(chosen);
    order.extend(best.iter().map(|e| e.0));
    Some((Ranking { order }, band))
}

/// The mirrors eligible for one client place and scheme, best first, with
/// their costs: everything a request from there needs of the ranking but the
/// random draw and the per-file verdicts. It depends only on the place, the
/// scheme and the snapshot, so [`crate::rankcache`] computes it once per place
/// and reuses it until the mirrors' state changes.
#[derive(Debug, Clone)]
pub struct Ranked {
    /// `(mirror index, cost)`, ordered by cost, then index (the order of
    /// [`rank`]'s ties).
    entries: Box<[(u32, f64)]>,
    /// False when more mirrors were eligible than were kept.
    complete: bool,
}

impl Ranked {
    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no mirror is eligible.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// At most this many mirrors are kept in a [`Ranked`]: enough for the spread
/// band and the alternatives of any sane config; a request they do not settle
/// is ranked in full.
pub const RANKED_KEEP: usize = 64;

/// The eligible mirrors for a located client (see [`Ranked`]); `None` for a
/// client without coordinates, whose draw is over every mirror anyway.
pub fn ranked<C: Candidate>(
    mirrors: &[C],
    client: &Client,
    cfg: &SelectionConfig,
) -> Option<Ranked> {
    let loc = located(client)?;
    let at = loc.coords.map(UnitVector::from);
    let mut entries: Vec<(u32, f64)> = mirrors
        .iter()
        .enumerate()
        .filter(|(_, c)| eligibility(*c, client) == Reason::Eligible)
        .filter_map(|(i, c)| {
            let cost = cost_at(c.mirror(), c.position(), c.capacity_factor(), loc, at, cfg);
            Some((u32::try_from(i).ok()?, cost))
        })
        .collect();
    entries.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let complete = entries.len() <= RANKED_KEEP;
    entries.truncate(RANKED_KEEP);
    Some(Ranked {
        entries: entries.into_boxed_slice(),
        complete,
    })
}

/// [`select_for`] from a [`Ranked`] of the client's place: the same answer
/// for the same random source, in time that grows with the band and the
/// alternatives rather than with the number of mirrors. `None` when the kept
/// entries do not settle it (the band or the alternatives may go on past
/// them); the caller then ranks in full.
pub fn select_ranked<C: Candidate, R: Rng + ?Sized>(
    mirrors: &[C],
    ranked: &Ranked,
    cfg: &SelectionConfig,
    rng: &mut R,
    for_file: impl Fn(usize) -> Reason,
) -> Option<Option<Ranking>> {
    let passes = |i: u32| for_file(i as usize) == Reason::Eligible;
    let k = cfg.link_mirrors;
    // The band: every passing mirror within reach of the best passing one.
    // The walk goes on past it until k + 1 passing mirrors are seen, so that
    // the alternatives are known to be there before anything is drawn.
    let mut band = [0u32; RANKED_KEEP];
    let mut in_band = 0;
    let mut limit = None;
    let mut band_closed = false;
    let mut passing = 0;
    for &(i, cost) in ranked.entries.iter() {
        if band_closed && passing > k {
            break;
        }
        if !passes(i) {
            continue;
        }
        passing += 1;
        if band_closed {
            continue;
        }
        let limit = *limit.get_or_insert_with(|| cost + (cost * cfg.band).max(cfg.band_km));
        if cost > limit {
            band_closed = true;
        } else {
            band[in_band] = i;
            in_band += 1;
        }
    }
    // Not settled by the kept entries: decided before the draw, so that the
    // full ranking the caller falls back to draws from the same random state.
    if !ranked.complete && (!band_closed || passing <= k) {
        return None;
    }
    if in_band == 0 {
        return Some(None);
    }
    // Drawn in mirror order, as `rank` draws, so that both agree on a seed.
    let band = &mut band[..in_band];
    band.sort_unstable();
    let weight = |i: u32| u64::from(mirrors[i as usize].mirror().weight.max(1));
    let chosen = band[weighted_pick(band, weight, rng)] as usize;
    let mut order = Vec::with_capacity(1 + k.min(passing));
    order.push(chosen);
    for &(i, _) in ranked.entries.iter() {
        if order.len() > k {
            break;
        }
        if i as usize != chosen && passes(i) {
            order.push(i as usize);
        }
    }
    Some(Some(Ranking { order }))
}

/// Index into `items` drawn with probability proportional to `weight`.
fn weighted_pick<T: Copy, R: Rng + ?Sized>(
    items: &[T],
    weight: impl Fn(T) -> u64,
    rng: &mut R,
) -> usize {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::MirrorConfig;
    use crate::geo::{Continent, Coords, CountryCode};
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    /// A mirror and its health: the least a [`Candidate`] is (also used by
    /// the rank cache's tests).
    #[derive(Debug)]
    pub(crate) struct C(pub Mirror, pub HealthState);
    impl Candidate for C {
        fn mirror(&self) -> &Mirror {
            &self.0
        }
        fn health(&self) -> HealthState {
            self.1
        }
    }

    fn cfg() -> SelectionConfig {
        SelectionConfig::default()
    }

    fn mirror(name: &str, cc: &str, lat: f64, lon: f64, weight: u32) -> Mirror {
        located_mirror(name, "https", cc, (lat, lon), weight, vec![])
    }

    /// A mirror at `https://NAME.example.org/pub/` (or `http`), placed and
    /// weighted, in these ASes (also used by the rank cache's tests).
    pub(crate) fn located_mirror(
        name: &str,
        scheme: &str,
        cc: &str,
        (lat, lon): (f64, f64),
        weight: u32,
        asn: Vec<u32>,
    ) -> Mirror {
        let mc = MirrorConfig {
            name: name.into(),
            url: format!("{scheme}://{name}.example.org/pub/")
                .parse()
                .unwrap(),
            country: Some(cc.parse().unwrap()),
            continent: None,
            coords: Some(Coords { lat, lon }),
            asn,
            weight,
            enabled: true,
            probe_path: None,
            countries_only: vec![],
            exclude_countries: vec![],
            continents_only: vec![],
        };
        Mirror::from_config(&mc, "").unwrap()
    }

    fn up(m: Mirror) -> C {
        C(m, HealthState::Up)
    }

    fn client(cc: &str, lat: f64, lon: f64) -> Client {
        let country: CountryCode = cc.parse().unwrap();
        Client {
            location: Some(Location {
                country: Some(country),
                continent: Some(country.continent()),
                coords: Some(Coords { lat, lon }),
                asn: None,
            }),
            scheme: Scheme::Http,
        }
    }

    fn world() -> Vec<C> {
        vec![
            up(mirror("de", "DE", 50.11, 8.68, 100)),
            up(mirror("us", "US", 40.71, -74.01, 100)),
            up(mirror("jp", "JP", 35.68, 139.69, 100)),
            up(mirror("au", "AU", -33.87, 151.21, 100)),
        ]
    }

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    fn chosen_name(ms: &[C], c: &Client) -> Option<String> {
        select(ms, c, &cfg(), &mut rng()).map(|r| ms[r.chosen()].0.name.to_string())
    }

    #[test]
    fn nearest_wins() {
        let w = world();
        assert_eq!(
            chosen_name(&w, &client("FR", 48.86, 2.35)).as_deref(),
            Some("de")
        );
        assert_eq!(
            chosen_name(&w, &client("CA", 43.65, -79.38)).as_deref(),
            Some("us")
        );
        assert_eq!(
            chosen_name(&w, &client("SG", 1.29, 103.85)).as_deref(),
            Some("jp")
        );
        assert_eq!(
            chosen_name(&w, &client("NZ", -36.85, 174.76)).as_deref(),
            Some("au")
        );
    }

    #[test]
    fn alternatives_follow_cost_and_are_bounded() {
        let w = world();
        let r = select(&w, &client("FR", 48.86, 2.35), &cfg(), &mut rng()).unwrap();
        let names: Vec<&str> = r.order.iter().map(|&i| &*w[i].0.name).collect();
        assert_eq!(names, ["de", "us", "jp", "au"]);
        let mut one = cfg();
        one.link_mirrors = 1;
        assert_eq!(
            select(&w, &client("FR", 48.86, 2.35), &one, &mut rng())
                .unwrap()
                .order
                .len(),
            2
        );
    }

    #[test]
    fn down_disabled_unknown_are_never_chosen() {
        let mut w = world();
        w[0].1 = HealthState::Down;
        assert_eq!(
            chosen_name(&w, &client("FR", 48.86, 2.35)).as_deref(),
            Some("us")
        );
        w[1].1 = HealthState::Unknown;
        w[2].0.enabled = false;
        assert_eq!(
            chosen_name(&w, &client("FR", 48.86, 2.35)).as_deref(),
            Some("au")
        );
        w[3].1 = HealthState::Down;
        assert_eq!(chosen_name(&w, &client("FR", 48.86, 2.35)), None);
    }

    #[test]
    fn country_lists_are_obeyed() {
        let mut w = world();
        w[0].0.policy.countries_only = vec!["DE".parse().unwrap()];
        assert_eq!(
            chosen_name(&w, &client("FR", 48.86, 2.35)).as_deref(),
            Some("us")
        );
        assert_eq!(
            chosen_name(&w, &client("DE", 52.52, 13.40)).as_deref(),
            Some("de")
        );
        // Unknown client: an allow-listed mirror never serves it.
        let unknown = Client {
            location: None,
            scheme: Scheme::Http,
        };
        for seed in 0..200 {
            let r = select(&w, &unknown, &cfg(), &mut SmallRng::seed_from_u64(seed)).unwrap();
            assert_ne!(&*w[r.chosen()].0.name, "de");
        }
        w[1].0.policy.exclude_countries = vec!["CA".parse().unwrap()];
        assert_eq!(
            chosen_name(&w, &client("CA", 43.65, -79.38)).as_deref(),
            Some("jp")
        );
        w[2].0.policy.continents_only = vec![Continent::AS];
        assert_eq!(
            chosen_name(&w, &client("CA", 43.65, -79.38)).as_deref(),
            Some("au")
        );
    }

    #[test]
    fn https_clients_skip_plain_http_mirrors() {
        let mut w = world();
        w[0].0.url = "http://de.example.org/pub/".parse().unwrap();
        let mut c = client("FR", 48.86, 2.35);
        assert_eq!(chosen_name(&w, &c).as_deref(), Some("de"));
        c.scheme = Scheme::Https;
        assert_eq!(chosen_name(&w, &c).as_deref(), Some("us"));
    }

    #[test]
    fn same_asn_and_country_lower_the_cost() {
        let a = mirror("a", "DE", 50.0, 8.0, 100);
        let mut b = mirror("b", "DE", 50.0, 8.0, 100);
        let mut c = client("DE", 50.0, 8.0);
        assert_eq!(
            cost(&a, c.location.as_ref().unwrap(), &cfg()),
            cost(&b, c.location.as_ref().unwrap(), &cfg())
        );
        b.asns = vec![64496];
        c.location.as_mut().unwrap().asn = Some(64496);
        assert!(
            cost(&b, c.location.as_ref().unwrap(), &cfg())
                < cost(&a, c.location.as_ref().unwrap(), &cfg())
        );
        let fr = mirror("fr", "FR", 50.0, 8.0, 100);
        assert!(
            cost(&a, c.location.as_ref().unwrap(), &cfg())
                < cost(&fr, c.location.as_ref().unwrap(), &cfg())
        );
    }

    #[test]
    fn band_spreads_over_close_mirrors_by_weight() {
        // Two mirrors in the same city, weights 300 and 100: about 3:1.
        let w = vec![
            up(mirror("big", "DE", 50.11, 8.68, 300)),
            up(mirror("small", "DE", 50.11, 8.68, 100)),
        ];
        // Costs differ by weight, but both stay within band_km of each other.
        let c = client("DE", 50.11, 8.68);
        let mut r = rng();
        let big = (0..4000)
            .filter(|_| select(&w, &c, &cfg(), &mut r).unwrap().chosen() == 0)
            .count();
        assert!(
            (2700..3300).contains(&big),
            "big chosen {big} times of 4000"
        );
    }

    #[test]
    fn explain_gives_a_reason_for_every_mirror() {
        let mut w = world();
        w[3].1 = HealthState::Down;
        let (v, r) = explain(&w, &client("FR", 48.86, 2.35), &cfg(), &mut rng(), |_| {
            Reason::Eligible
        });
        assert_eq!(v.len(), 4);
        assert_eq!(v[3].reason, Reason::Down);
        assert!(v[0].in_band && v[0].reason == Reason::Eligible);
        assert!(v[0].distance_km.unwrap() < 600.0);
        assert_eq!(r.unwrap().chosen(), 0);
    }

    fn arb_state() -> impl Strategy<Value = HealthState> {
        prop_oneof![
            Just(HealthState::Up),
            Just(HealthState::Down),
            Just(HealthState::Unknown)
        ]
    }

    fn arb_mirrors() -> impl Strategy<Value = Vec<C>> {
        proptest::collection::vec(
            (
                -80.0f64..80.0,
                -179.0f64..179.0,
                1u32..1000,
                arb_state(),
                any::<bool>(),
                any::<bool>(),
            ),
            0..12,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (lat, lon, w, s, enabled, only_de))| {
                    let mut m = mirror(
                        &format!("m{i}"),
                        if i % 2 == 0 { "DE" } else { "US" },
                        lat,
                        lon,
                        w,
                    );
                    m.enabled = enabled;
                    if only_de {
                        m.policy.countries_only = vec!["DE".parse().unwrap()];
                    }
                    C(m, s)
                })
                .collect()
        })
    }

    proptest! {
        /// Selection never returns an ineligible mirror, and returns one whenever any is eligible.
        #[test]
        fn never_ineligible(ms in arb_mirrors(), lat in -89.0f64..89.0, lon in -179.0f64..179.0, seed: u64, known: bool) {
            let c = if known { client("FR", lat, lon) } else { Client { location: None, scheme: Scheme::Http } };
            let any_eligible = ms.iter().any(|m| eligibility(m, &c) == Reason::Eligible);
            match select(&ms, &c, &cfg(), &mut SmallRng::seed_from_u64(seed)) {
                Some(r) => {
                    for &i in &r.order {
                        prop_assert_eq!(eligibility(&ms[i], &c), Reason::Eligible);
                    }
                    let mut seen = r.order.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    prop_assert_eq!(seen.len(), r.order.len());
                }
                None => prop_assert!(!any_eligible),
            }
        }

        /// All else equal, the nearer mirror wins (outside the spread band).
        #[test]
        fn nearer_wins(dlat in 20.0f64..60.0, seed: u64) {
            let near = up(mirror("near", "DE", 10.0, 10.0, 100));
            let far = up(mirror("far", "DE", 10.0 + dlat, 10.0, 100));
            let c = client("DE", 10.0, 10.0);
            let mut tight = cfg();
            tight.band_km = 0.0;
            tight.band = 0.0;
            let r = select(&[far, near], &c, &tight, &mut SmallRng::seed_from_u64(seed)).unwrap();
            prop_assert_eq!(r.chosen(), 1);
        }

        /// Long rankings (the lists, past the insertion sort's reach) give
        /// the order of a full sort, and the short ranking of the same draw
        /// is their prefix.
        #[test]
        fn long_rankings_are_a_full_sort(
            places in proptest::collection::vec((-80.0f64..80.0, -179.0f64..179.0, 1u32..400), 20..120),
            k in 17usize..150,
            seed: u64,
            known: bool,
        ) {
            let ms: Vec<C> = places
                .iter()
                .enumerate()
                .map(|(i, &(lat, lon, w))| up(mirror(&format!("m{i}"), "DE", lat, lon, w)))
                .collect();
            let c = if known { client("FR", 48.86, 2.35) } else { Client { location: None, scheme: Scheme::Http } };
            let mut long = cfg();
            long.link_mirrors = k;
            let r = select(&ms, &c, &long, &mut SmallRng::seed_from_u64(seed)).unwrap();
            let chosen = r.chosen();
            let mut rest: Vec<usize> = (0..ms.len()).filter(|&i| i != chosen).collect();
            match c.location.as_ref() {
                Some(l) => rest.sort_by(|&a, &b| {
                    cost(&ms[a].0, l, &long).total_cmp(&cost(&ms[b].0, l, &long)).then(a.cmp(&b))
                }),
                None => rest.sort_by(|&a, &b| ms[b].0.weight.cmp(&ms[a].0.weight).then(a.cmp(&b))),
            }
            rest.truncate(k);
            prop_assert_eq!(&r.order[1..], &rest[..]);
            let short = select(&ms, &c, &cfg(), &mut SmallRng::seed_from_u64(seed)).unwrap();
            prop_assert_eq!(&r.order[..short.order.len()], &short.order[..]);
        }

        /// For an unknown client, the long-run share of each mirror follows its weight.
        #[test]
        fn unknown_clients_follow_weights(w1 in 1u32..500, w2 in 1u32..500) {
            let ms = vec![up(mirror("a", "DE", 0.0, 0.0, w1)), up(mirror("b", "US", 0.0, 0.0, w2))];
            let c = Client { location: None, scheme: Scheme::Http };
            let mut r = SmallRng::seed_from_u64(u64::from(w1 * 1000 + w2));
            let n = 6000;
            let a = (0..n).filter(|_| select(&ms, &c, &cfg(), &mut r).unwrap().chosen() == 0).count();
            let expect = f64::from(w1) / f64::from(w1 + w2);
            let got = a as f64 / f64::from(n);
            prop_assert!((got - expect).abs() < 0.03, "share {} expected {}", got, expect);
        }
    }
}
