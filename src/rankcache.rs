//! Rankings remembered per client place, for the request path.
//!
//! Ranking a request costs a distance and a cost for every mirror, although
//! the result depends only on where the client is (its GeoIP record and AS),
//! the scheme it came over and the mirrors' state. Clients come from far
//! fewer places than there are requests, so the ranking of each place
//! ([`select::Ranked`]) is kept here, and a request does only what is its
//! own: the weighted draw in the spread band and the per-file verdicts of
//! the mirrors it looks at (see [`select::select_ranked`]). Answers are the
//! very ones [`select::select_for`] gives; a unit test holds them equal.
//!
//! A cache belongs to a state of the mirrors: [`crate::state`] starts a new
//! one whenever anything that ranking reads changes (config, health state,
//! position, weight) and carries the old one over otherwise, so probe rounds
//! that change nothing do not empty it.
//!
//! Bounded: [`SHARDS`] maps of at most `capacity / SHARDS` places each; a full
//! shard is emptied and refilled (cheap, and recent places come back first).
//! Sharded so that the runtime's workers rarely meet on one lock; the lock is
//! held for a lookup and a walk over a few entries, never across I/O.

use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

use hashbrown::HashMap;
use rand::Rng;

use crate::config::SelectionConfig;
use crate::geo::{Continent, CountryCode, Location};
use crate::select::{self, Candidate, Client, Ranked, Ranking, Reason, Scheme};

/// Number of independently locked parts.
pub const SHARDS: usize = 16;
/// Places remembered by default: about 8 MiB at most with 64 mirrors or more.
pub const DEFAULT_CAPACITY: usize = 8192;

/// What a ranking depends on besides the mirrors: the client's place and scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    lat: u64,
    lon: u64,
    country: Option<CountryCode>,
    continent: Option<Continent>,
    asn: Option<u32>,
    https: bool,
}

impl Key {
    /// `None` for a client without coordinates: [`select::ranked`] has nothing to keep for it.
    fn of(client: &Client) -> Option<Key> {
        let Location {
            country,
            continent,
            coords,
            asn,
        } = client.location?;
        let coords = coords?;
        Some(Key {
            lat: coords.lat.to_bits(),
            lon: coords.lon.to_bits(),
            country,
            continent,
            asn,
            https: client.scheme == Scheme::Https,
        })
    }
}

type Shard = Mutex<HashMap<Key, Ranked>>;

/// The rankings of the places seen since the mirrors last changed.
#[derive(Debug)]
pub struct RankCache {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: hashbrown::DefaultHashBuilder,
}

impl Default for RankCache {
    fn default() -> Self {
        RankCache::new(DEFAULT_CAPACITY)
    }
}

impl RankCache {
    /// A cache of at most `capacity` places (0 remembers nothing).
    pub fn new(capacity: usize) -> Self {
        RankCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    /// Places remembered now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// True when no place is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// [`select::select_for`], answered from the client's place's ranking
    /// when it is known, else ranking the place once for the next requests.
    /// `mirrors` must be the mirrors this cache was made for.
    pub fn select_for<C: Candidate, R: Rng + ?Sized>(
        &self,
        mirrors: &[C],
        client: &Client,
        cfg: &SelectionConfig,
        rng: &mut R,
        for_file: impl Fn(usize) -> Reason,
    ) -> Option<Ranking> {
        match self.by_place(mirrors, client, cfg, rng, &for_file) {
            Some(answer) => answer,
            // No place, or its kept entries do not settle this request.
            None => select::select_for(mirrors, client, cfg, rng, for_file),
        }
    }

    /// The answer from the place's ranking, ranking the place first if it is
    /// new; `None` when the client has no place or the ranking does not settle it.
    fn by_place<C: Candidate, R: Rng + ?Sized>(
        &self,
        mirrors: &[C],
        client: &Client,
        cfg: &SelectionConfig,
        rng: &mut R,
        for_file: &impl Fn(usize) -> Reason,
    ) -> Option<Option<Ranking>> {
        let key = Key::of(client).filter(|_| self.per_shard > 0)?;
        let hash = self.hasher.hash_one(key);
        // The high bits pick the shard; the map inside uses the whole hash anyway.
        let shard = &self.shards[(hash >> 60) as usize % SHARDS];
        if let Some(ranked) = lock(shard).get(&key) {
            return select::select_ranked(mirrors, ranked, cfg, rng, for_file);
        }
        // Ranked outside the lock: other places of this shard need not wait.
        let ranked = select::ranked(mirrors, client, cfg)?;
        let answer = select::select_ranked(mirrors, &ranked, cfg, rng, for_file);
        let mut map = lock(shard);
        if map.len() >= self.per_shard {
            map.clear();
        }
        map.insert(key, ranked);
        answer
    }
}

/// A shard's map even if a thread panicked while holding it: the map is only
/// ever inserted into or cleared, so it is never left half-changed.
fn lock(shard: &Shard) -> std::sync::MutexGuard<'_, HashMap<Key, Ranked>> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::Coords;
    use crate::health::HealthState;
    use crate::registry::Mirror;
    use proptest::prelude::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use crate::select::tests::{located_mirror, C};

    fn mirror(i: usize, lat: f64, lon: f64, weight: u32, https: bool) -> Mirror {
        located_mirror(
            &format!("m{i}"),
            if https { "https" } else { "http" },
            ["DE", "US", "JP", "BR"][i % 4],
            (lat, lon),
            weight,
            // Every third mirror in the client's AS, to exercise that factor too.
            if i % 3 == 0 { vec![64500] } else { vec![] },
        )
    }

    fn client(lat: f64, lon: f64, https: bool) -> Client {
        Client {
            location: Some(Location {
                country: Some("DE".parse().unwrap()),
                continent: Some(Continent::EU),
                coords: Some(Coords { lat, lon }),
                asn: Some(64500),
            }),
            scheme: if https { Scheme::Https } else { Scheme::Http },
        }
    }

    fn arb_mirrors() -> impl Strategy<Value = Vec<C>> {
        prop::collection::vec(
            (
                -60.0f64..60.0,
                -170.0f64..170.0,
                1u32..300,
                any::<bool>(),
                prop_oneof![
                    Just(HealthState::Up),
                    Just(HealthState::Up),
                    Just(HealthState::Down)
                ],
            ),
            0..140,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (lat, lon, w, https, h))| C(mirror(i, lat, lon, w, https), h))
                .collect()
        })
    }

    proptest! {
        // The cache answers exactly as a full ranking does, on the same seed,
        // whether the place is new or known, whatever the per-file verdicts,
        // including when more mirrors are eligible than a Ranked keeps.
        #[test]
        fn same_answers_as_a_full_ranking(
            ms in arb_mirrors(),
            lat in -60.0f64..60.0,
            lon in -170.0f64..170.0,
            https: bool,
            // Few files missing, or nearly all: the kept entries then may not
            // hold enough mirrors that have the file.
            missing in prop_oneof![
                prop::collection::vec(prop::bool::weighted(0.2), 140),
                prop::collection::vec(prop::bool::weighted(0.97), 140),
            ],
            link in 0usize..8,
            band_km in prop_oneof![Just(0.0), Just(500.0), Just(30_000.0)],
            seed: u64,
        ) {
            let cfg = SelectionConfig {
                link_mirrors: link,
                band_km,
                ..SelectionConfig::default()
            };
            let c = client(lat, lon, https);
            let for_file = |i: usize| if missing[i] { Reason::Missing } else { Reason::Eligible };
            let cache = RankCache::new(64);
            for _ in 0..2 {
                let full = select::select_for(&ms, &c, &cfg, &mut SmallRng::seed_from_u64(seed), for_file);
                let cached = cache.select_for(&ms, &c, &cfg, &mut SmallRng::seed_from_u64(seed), for_file);
                prop_assert_eq!(full, cached);
            }
        }
    }

    #[test]
    fn places_are_remembered_and_bounded() {
        let ms: Vec<C> = (0..10)
            .map(|i| C(mirror(i, 10.0 * i as f64, 0.0, 100, true), HealthState::Up))
            .collect();
        let cfg = SelectionConfig::default();
        let cache = RankCache::new(SHARDS * 2);
        let mut rng = SmallRng::seed_from_u64(1);
        cache.select_for(&ms, &client(50.0, 8.0, false), &cfg, &mut rng, |_| {
            Reason::Eligible
        });
        cache.select_for(&ms, &client(50.0, 8.0, false), &cfg, &mut rng, |_| {
            Reason::Eligible
        });
        assert_eq!(cache.len(), 1, "one place, one entry");
        cache.select_for(&ms, &client(50.0, 8.0, true), &cfg, &mut rng, |_| {
            Reason::Eligible
        });
        assert_eq!(cache.len(), 2, "the scheme is part of the place");
        for k in 0..1000 {
            let c = client(f64::from(k) / 100.0, 1.0, false);
            cache.select_for(&ms, &c, &cfg, &mut rng, |_| Reason::Eligible);
            assert!(cache.len() <= SHARDS * 2, "{} places kept", cache.len());
        }
        let unknown = Client {
            location: None,
            scheme: Scheme::Http,
        };
        let before = cache.len();
        let r = cache.select_for(&ms, &unknown, &cfg, &mut rng, |_| Reason::Eligible);
        assert!(r.is_some());
        assert_eq!(
            cache.len(),
            before,
            "a client without a place is not remembered"
        );
    }
}
