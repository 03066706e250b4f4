//! The HTML pages for people: the mirror list of one file (`?mirrorlist`)
//! and the site's mirror status (`/?mirrorstats`).
//!
//! Rendered with askama templates (`templates/`), which escape every value:
//! a path or reason that holds `<script>` is shown as text, never run. The
//! pages carry no script of their own; the status table sorts by links, so
//! the answer can forbid every script with its Content-Security-Policy.

use std::time::{Duration, SystemTime};

use askama::Template;

use crate::explain::Report;
use crate::formats::Page;
use crate::health::HealthState;
use crate::http::path::CleanPath;
use crate::state::{MirrorEntry, Snapshot};

/// The Content-Security-Policy the pages are served with: no scripts at all.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'";

struct RankedRow {
    rank: usize,
    name: String,
    url: String,
    country: String,
    distance: String,
    state: &'static str,
    last_sync: String,
}

struct LeftOutRow {
    name: String,
    country: String,
    distance: String,
    state: &'static str,
    last_sync: String,
    reason: &'static str,
}

/// Where this page of the ranking sits, and the links to its neighbours.
struct Paging {
    first: usize,
    last: usize,
    total: usize,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "mirrorlist.html")]
struct MirrorListPage {
    paging: Option<Paging>,
    name: String,
    size: Option<String>,
    date: Option<String>,
    sha256: Option<String>,
    client: String,
    ranked: Vec<RankedRow>,
    left_out: Vec<LeftOutRow>,
}

/// The mirror list of one file, from the explanation of its ranking cut
/// to `page`.
pub fn mirror_list(report: &Report, snap: &Snapshot, page: Page) -> Result<String, askama::Error> {
    let encoded = CleanPath::parse(&report.path, usize::MAX)
        .map(|p| p.encoded().to_string())
        .unwrap_or_default();
    let name = match report.path.trim_end_matches('/').rsplit('/').next() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => report.path.clone(),
    };
    let mut ranked = Vec::new();
    let mut left_out = Vec::new();
    for v in &report.mirrors {
        let Some(e) = v.entry(snap) else {
            continue;
        };
        let country = e
            .mirror
            .country
            .map_or_else(|| "–".to_string(), |c| c.to_string());
        let distance = v
            .distance_km
            .map_or_else(|| "–".to_string(), |d| format!("{d:.0} km"));
        match v.rank {
            Some(rank) => ranked.push(RankedRow {
                rank,
                name: v.name.clone(),
                url: format!("{}{}", e.mirror.url, encoded),
                country,
                distance,
                state: e.health.state.as_str(),
                last_sync: e.health.last_sync.map_or_else(|| "–".to_string(), when),
            }),
            None => left_out.push(LeftOutRow {
                name: v.name.clone(),
                country,
                distance,
                state: e.health.state.as_str(),
                last_sync: e.health.last_sync.map_or_else(|| "–".to_string(), when),
                reason: v.detail,
            }),
        }
    }
    let client = match (&report.country, &report.continent) {
        (Some(c), Some(k)) => format!("{c} ({k})"),
        (Some(c), None) => c.clone(),
        _ => "an unknown place: mirrors are shared by capacity".to_string(),
    };
    // Shown only when the ranking does not fit on one page.
    let link = |offset: usize| format!("?mirrorlist&limit={}&offset={offset}", page.limit);
    let shown_to = page.offset + ranked.len();
    let paging = (page.offset > 0 || shown_to < page.mirrors_total).then(|| Paging {
        first: page.offset + 1,
        last: shown_to,
        total: page.mirrors_total,
        previous: (page.offset > 0).then(|| link(page.offset.saturating_sub(page.limit))),
        next: (shown_to < page.mirrors_total).then(|| link(page.offset + page.limit)),
    });
    MirrorListPage {
        paging,
        name,
        size: report.file.as_ref().map(|f| size(f.size)),
        date: report
            .file
            .as_ref()
            .map(|f| when(SystemTime::UNIX_EPOCH + Duration::from_secs(f.mtime.max(0) as u64))),
        sha256: report.file.as_ref().and_then(|f| f.sha256.clone()),
        client,
        ranked,
        left_out,
    }
    .render()
}

struct Column {
    key: &'static str,
    title: &'static str,
    arrow: &'static str,
    next_desc: bool,
}

struct StatusRow {
    name: String,
    url: String,
    country: String,
    state: &'static str,
    lag: String,
    last_check: String,
    last_failure: String,
}

#[derive(Template)]
#[template(path = "status.html")]
struct StatusPage {
    up: usize,
    total: usize,
    generated: String,
    columns: Vec<Column>,
    rows: Vec<StatusRow>,
}

/// The keys the status table sorts by, in the order of its columns.
const SORT_KEYS: [&str; 6] = ["name", "country", "state", "lag", "check", "failure"];

/// How the status table is sorted: `name`, `country`, `state`, `lag`,
/// `check` or `failure` (the time of the last failed probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortBy {
    pub key: &'static str,
    pub desc: bool,
}

impl SortBy {
    /// From the query string (`sort=lag&desc`); unknown keys sort by name.
    pub fn from_query(query: Option<&str>) -> SortBy {
        let mut s = SortBy {
            key: "name",
            desc: false,
        };
        for pair in query.unwrap_or("").split('&') {
            match pair {
                "desc" => s.desc = true,
                p => {
                    if let Some(k) = p.strip_prefix("sort=") {
                        s.key = SORT_KEYS.into_iter().find(|c| *c == k).unwrap_or("name");
                    }
                }
            }
        }
        s
    }
}

/// The status of every mirror, in a table a person can sort.
pub fn status(snap: &Snapshot, sort: SortBy) -> Result<String, askama::Error> {
    let mut entries: Vec<&MirrorEntry> = snap.mirrors.iter().collect();
    let state_rank = |s: HealthState| match s {
        HealthState::Up => 0,
        HealthState::Unknown => 1,
        HealthState::Down => 2,
    };
    entries.sort_by(|a, b| {
        let o = match sort.key {
            "country" => a.mirror.country.cmp(&b.mirror.country),
            "state" => state_rank(a.health.state).cmp(&state_rank(b.health.state)),
            "lag" => a.lag.cmp(&b.lag),
            "check" => a.health.last_check.cmp(&b.health.last_check),
            "failure" => a.health.last_failure_at.cmp(&b.health.last_failure_at),
            _ => std::cmp::Ordering::Equal,
        };
        o.then_with(|| a.mirror.name.cmp(&b.mirror.name))
    });
    if sort.desc {
        entries.reverse();
    }
    let columns = [
        ("name", "Mirror"),
        ("country", "Country"),
        ("state", "State"),
        ("lag", "Lag"),
        ("check", "Last check"),
        ("failure", "Last failure"),
    ]
    .into_iter()
    .map(|(key, title)| Column {
        key,
        title,
        arrow: match (sort.key == key, sort.desc) {
            (true, false) => " ▲",
            (true, true) => " ▼",
            _ => "",
        },
        next_desc: sort.key == key && !sort.desc,
    })
    .collect();
    let rows = entries
        .iter()
        .map(|e| StatusRow {
            name: e.mirror.name.to_string(),
            url: e.mirror.url.to_string(),
            country: e
                .mirror
                .country
                .map_or_else(|| "–".to_string(), |c| c.to_string()),
            state: e.health.state.as_str(),
            lag: e.lag.map_or_else(|| "–".to_string(), duration),
            last_check: e
                .health
                .last_check
                .map_or_else(|| "never".to_string(), when),
            last_failure: match (&e.health.last_failure, e.health.last_failure_at) {
                (Some(f), Some(at)) => format!("{}: {f}", when(at)),
                (Some(f), None) => f.to_string(),
                (None, _) => "–".to_string(),
            },
        })
        .collect();
    StatusPage {
        up: snap
            .mirrors
            .iter()
            .filter(|e| e.health.state == HealthState::Up)
            .count(),
        total: snap.mirrors.len(),
        generated: when(SystemTime::now()),
        columns,
        rows,
    }
    .render()
}

fn when(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    // 2026-11-29T19:26:44Z -> 2026-11-29 19:26 UTC: easier to read on a phone.
    match (s.get(..10), s.get(11..16)) {
        (Some(d), Some(h)) => format!("{d} {h} UTC"),
        _ => s,
    }
}

fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {} ({bytes} bytes)", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(size(10), "10 bytes");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB (3145728 bytes)");
        assert_eq!(duration(Duration::from_secs(7260)), "2h 1m");
        assert_eq!(duration(Duration::from_secs(90_000)), "1d 1h");
        assert_eq!(
            SortBy::from_query(Some("mirrorstats&sort=lag&desc")),
            SortBy {
                key: "lag",
                desc: true
            }
        );
        assert_eq!(
            SortBy::from_query(Some("mirrorstats&sort=<x>")),
            SortBy {
                key: "name",
                desc: false
            }
        );
    }
}
