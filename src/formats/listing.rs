//! [`Listing`]: everything an answer format needs to know about one request
//! (the path, the file, the ranked mirrors, the ones left out and why, the
//! client), as plain data.
//!
//! It is built once from what selection already decided, either from
//! [`select::explain`](crate::select::explain)'s verdicts and ranking ([`Listing::from_verdicts`]) or
//! from an [`explain::Report`](crate::explain::Report) ([`Listing::from_report`]); it never ranks
//! anything itself, so every format shows exactly the order a redirect uses.

use std::time::SystemTime;

use crate::content::FileInfo;
use crate::explain::Report;
use crate::geo::{Continent, CountryCode, Location};
use crate::health::HealthState;
use crate::http::path::CleanPath;
use crate::select::{Reason, Verdict};
use crate::state::{MirrorEntry, Snapshot};

/// One request's answer, ready to be written in any format.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// The decoded path, with its leading slash: `/releases/1.0/file name.iso`.
    pub path: String,
    /// The same, percent-encoded: `/releases/1.0/file%20name.iso`.
    pub path_encoded: String,
    /// What the origin's index says of the file, when it knows it.
    pub file: Option<FileInfo>,
    /// The mirrors that may serve the file, best first (`rank` 1, 2, ...).
    pub mirrors: Vec<ListedMirror>,
    /// Every other mirror, with the reason it is not listed.
    pub left_out: Vec<LeftOut>,
    /// What GeoIP said of the client.
    pub client: ClientFacts,
    /// Which part of the ranking this is.
    pub page: Page,
}

/// Which part of the ranking a listing shows: the served answers list at
/// most `limit` mirrors of each kind (`?limit=N&offset=M`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// How many mirrors of each kind (ranked, left out) come before this page.
    pub offset: usize,
    /// The most of each kind this page shows.
    pub limit: usize,
    /// Every mirror that may serve the file, on this page or another.
    pub mirrors_total: usize,
    /// Every mirror that may not.
    pub left_out_total: usize,
}

/// A mirror that may serve the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedMirror {
    pub name: String,
    /// 1 for the mirror a redirect would choose, then 2, 3, ...
    pub rank: usize,
    /// The mirror's base URL, ending in `/`.
    pub base_url: String,
    /// The file on this mirror: the base URL and the encoded path.
    pub url: String,
    pub country: Option<CountryCode>,
    pub continent: Option<Continent>,
    /// Great-circle distance from the client, when both are located.
    pub distance_km: Option<f64>,
    pub state: HealthState,
    /// The time its trace file said when last read.
    pub last_sync: Option<SystemTime>,
}

/// A mirror that is not listed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    pub name: String,
    /// A stable code: a [`Reason`] label, or [`NOT_RANKED`].
    pub reason: &'static str,
    /// One line for people.
    pub detail: &'static str,
}

/// The client as GeoIP located it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientFacts {
    pub country: Option<CountryCode>,
    pub continent: Option<Continent>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// The reason code of an eligible mirror that selection did not rank:
/// selection orders only the chosen mirror and `selection.link_mirrors`
/// alternatives, and a listing shows that order, never one of its own.
pub const NOT_RANKED: &str = "not_ranked";
const NOT_RANKED_DETAIL: &str =
    "eligible, but beyond the alternatives selection ranks (selection.link_mirrors)";

impl ClientFacts {
    pub fn from_location(loc: Option<&Location>) -> ClientFacts {
        ClientFacts {
            country: loc.and_then(|l| l.country),
            continent: loc.and_then(|l| l.continent),
            latitude: loc.and_then(|l| l.coords).map(|c| c.lat),
            longitude: loc.and_then(|l| l.coords).map(|c| c.lon),
        }
    }
}

/// One mirror's row before it is sorted into listed or left out.
struct Row<'a> {
    entry: &'a MirrorEntry,
    rank: Option<usize>,
    reason: &'static str,
    detail: &'static str,
    distance_km: Option<f64>,
}

impl Listing {
    /// From [`select::explain`](crate::select::explain)'s output: `verdicts` (one per mirror of
    /// `snap`, by index) and the ranking's `order` (empty when no mirror fits).
    pub fn from_verdicts(
        snap: &Snapshot,
        path: &CleanPath,
        file: Option<FileInfo>,
        client: Option<&Location>,
        verdicts: &[Verdict],
        order: &[usize],
    ) -> Listing {
        // Each mirror's rank by index, in one pass: a listing may rank thousands.
        let mut rank_of = vec![None; snap.mirrors.len()];
        for (pos, &i) in order.iter().enumerate() {
            if let Some(r) = rank_of.get_mut(i) {
                *r = Some(pos + 1);
            }
        }
        let rows = verdicts.iter().filter_map(|v| {
            Some(Row {
                entry: snap.mirrors.get(v.index)?,
                rank: rank_of.get(v.index).copied().flatten(),
                reason: v.reason.as_str(),
                detail: v.reason.describe(),
                distance_km: v.distance_km,
            })
        });
        Listing::build(path, file, ClientFacts::from_location(client), rows)
    }

    /// From an [`explain::Report`](crate::explain::Report) made against
    /// `snap`: mirrors are found by index, or by name when the report was
    /// made against another snapshot (names are unique in a snapshot); a
    /// report row whose mirror is not in `snap` is skipped. `path` is the
    /// path the report was made for (the report keeps only its decoded form).
    pub fn from_report(snap: &Snapshot, report: &Report, path: &CleanPath) -> Listing {
        let file = report.file.as_ref().map(|f| FileInfo {
            size: f.size,
            mtime: f.mtime,
            // The report's hex came from a `[u8; 32]`; anything else means no hash.
            sha256: f
                .sha256
                .as_deref()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok()),
        });
        let client = ClientFacts {
            country: report.country.as_deref().and_then(CountryCode::from_code),
            continent: report.continent.as_deref().and_then(Continent::from_code),
            latitude: report.latitude,
            longitude: report.longitude,
        };
        let rows = report.mirrors.iter().filter_map(|m| {
            Some(Row {
                entry: m.entry(snap)?,
                rank: m.rank,
                reason: m.reason,
                detail: m.detail,
                distance_km: m.distance_km,
            })
        });
        Listing::build(path, file, client, rows)
    }

    fn build<'a>(
        path: &CleanPath,
        file: Option<FileInfo>,
        client: ClientFacts,
        rows: impl Iterator<Item = Row<'a>>,
    ) -> Listing {
        let mut mirrors = Vec::new();
        let mut left_out = Vec::new();
        for row in rows {
            let m = &row.entry.mirror;
            match row.rank {
                Some(rank) => mirrors.push(ListedMirror {
                    name: m.name.to_string(),
                    rank,
                    base_url: m.url.to_string(),
                    url: format!("{}{}", m.url, path.encoded()),
                    country: m.country,
                    continent: m.continent,
                    distance_km: row.distance_km,
                    state: row.entry.health.state,
                    last_sync: row.entry.health.last_sync,
                }),
                None if row.reason == Reason::Eligible.as_str() => left_out.push(LeftOut {
                    name: m.name.to_string(),
                    reason: NOT_RANKED,
                    detail: NOT_RANKED_DETAIL,
                }),
                None => left_out.push(LeftOut {
                    name: m.name.to_string(),
                    reason: row.reason,
                    detail: row.detail,
                }),
            }
        }
        mirrors.sort_by_key(|m| m.rank);
        let page = Page {
            offset: 0,
            limit: mirrors.len().max(left_out.len()),
            mirrors_total: mirrors.len(),
            left_out_total: left_out.len(),
        };
        Listing {
            page,
            path: format!("/{}", path.as_str()),
            path_encoded: format!("/{}", path.encoded()),
            file,
            mirrors,
            left_out,
            client,
        }
    }
}
