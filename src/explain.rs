//! `explain`: the ranking for one client address and path, with the reason
//! each mirror was kept or dropped. Used by the `explain` subcommand and the
//! admin API, so both show exactly what the request path would do.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::content::Checker;
use crate::geo::LookupOutcome;
use crate::http::files::{self, Target};
use crate::http::path::CleanPath;
use crate::select::{self, Client, Scheme};
use crate::state::Snapshot;

/// The whole explanation, serialisable as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ip: IpAddr,
    pub path: String,
    pub geoip: &'static str,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Option<u32>,
    /// What the origin's index says of the file, when it knows it.
    pub file: Option<FileFacts>,
    /// The answer: `redirect`, `fallback`, `origin`, `not_found` or `no_mirror`.
    pub outcome: &'static str,
    /// Where the request would be sent.
    pub location: Option<String>,
    /// Every mirror, ranked ones first in rank order.
    pub mirrors: Vec<MirrorVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MirrorVerdict {
    pub name: String,
    /// 1 for the chosen mirror, 2.. for the alternatives; none when not ranked.
    pub rank: Option<usize>,
    pub reason: &'static str,
    pub detail: &'static str,
    pub distance_km: Option<f64>,
    pub cost: Option<f64>,
    pub in_band: bool,
    pub weight: u32,
    /// How far its last sync is behind the origin, when its trace file is read.
    pub lag_seconds: Option<u64>,
}

/// A file as the origin's index knows it.
#[derive(Debug, Clone, Serialize)]
pub struct FileFacts {
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub mtime: i64,
    pub sha256: Option<String>,
}

/// Explains the request `path` from `ip` against these mirrors.
pub fn explain(
    snap: &Snapshot,
    checker: Option<&Checker>,
    ip: IpAddr,
    path: &str,
    scheme: Scheme,
) -> Result<Report, String> {
    explain_with(snap, checker, ip, path, scheme, Options::default())
}

/// How much to rank, beyond what a redirect needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Rank every eligible mirror, not only the chosen one and `link_mirrors`
    /// alternatives (mirror lists, Metalink, JSON).
    pub rank_all: bool,
    /// Rank as for any path, whatever the origin's index says of it (apt's
    /// mirror list names directories).
    pub any_path: bool,
}

/// [`explain`] with [`Options`].
pub fn explain_with(
    snap: &Snapshot,
    checker: Option<&Checker>,
    ip: IpAddr,
    path: &str,
    scheme: Scheme,
    opts: Options,
) -> Result<Report, String> {
    let mut selection = snap.config.selection.clone();
    if opts.rank_all {
        selection.link_mirrors = snap.mirrors.len();
    }
    let config = &snap.config;
    let mirrors = &snap.mirrors;
    let raw = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let clean =
        CleanPath::parse(&raw, config.limits.max_path_bytes).map_err(|e| format!("{raw}: {e}"))?;
    let (location, outcome) = snap.geo.lookup(ip);
    let client = Client { location, scheme };
    let target = if opts.any_path {
        Target::Any
    } else {
        files::classify(snap, &clean)
    };
    let now = checker.map(|c| c.now());
    let info = match target {
        Target::File(info) | Target::Origin(Some(info)) => Some(info),
        _ => None,
    };
    let (verdicts, ranking) =
        select::explain(mirrors, &client, &selection, &mut rand::rng(), |i| {
            match (target, checker, now) {
                (Target::File(info), Some(c), Some(now)) => {
                    files::verdict(snap, &mirrors[i], clean.as_str(), &info, c, now)
                }
                (Target::File(info), _, _) => {
                    files::verdict_without_checks(snap, &mirrors[i], &info)
                }
                _ => select::Reason::Eligible,
            }
        });
    let order = match target {
        Target::Any | Target::File(_) => ranking.map(|r| r.order).unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut rows: Vec<MirrorVerdict> = verdicts
        .iter()
        .map(|v| {
            let m = &mirrors[v.index].mirror;
            MirrorVerdict {
                name: m.name.to_string(),
                rank: order.iter().position(|&i| i == v.index).map(|p| p + 1),
                reason: v.reason.as_str(),
                detail: v.reason.describe(),
                distance_km: v.distance_km.map(round1),
                cost: v.cost.map(round1),
                in_band: v.in_band,
                weight: m.weight,
                lag_seconds: mirrors[v.index].lag.map(|d| d.as_secs()),
            }
        })
        .collect();
    rows.sort_by_key(|r| r.rank.unwrap_or(usize::MAX));
    let fallback = |label| match &config.fallback {
        Some(f) => (label, Some(format!("{f}{}", clean.encoded()))),
        None => ("no_mirror", None),
    };
    let (outcome_label, target_url) = match (target, order.first()) {
        (Target::NotFound | Target::Directory, _) => ("not_found", None),
        (Target::Origin(_), _) => fallback("origin"),
        (_, Some(&i)) => (
            "redirect",
            Some(format!("{}{}", mirrors[i].mirror.url, clean.encoded())),
        ),
        (_, None) => fallback("fallback"),
    };
    Ok(Report {
        ip,
        path: format!("/{}", clean.as_str()),
        geoip: match outcome {
            LookupOutcome::Found => "found",
            LookupOutcome::Unknown => "unknown",
            LookupOutcome::Error => "error",
        },
        country: location.and_then(|l| l.country).map(|c| c.to_string()),
        continent: location.and_then(|l| l.continent).map(|c| c.to_string()),
        latitude: location.and_then(|l| l.coords).map(|c| c.lat),
        longitude: location.and_then(|l| l.coords).map(|c| c.lon),
        asn: location.and_then(|l| l.asn),
        file: info.map(|i| FileFacts {
            size: i.size,
            mtime: i.mtime,
            sha256: i
                .sha256
                .map(|h| h.iter().map(|b| format!("{b:02x}")).collect()),
        }),
        outcome: outcome_label,
        location: target_url,
        mirrors: rows,
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        writeln!(
            f,
            "client {}: geoip {}, country {}, continent {}, asn {}",
            self.ip,
            self.geoip,
            opt(&self.country),
            opt(&self.continent),
            self.asn.map_or("-".into(), |a| a.to_string())
        )?;
        match &self.location {
            Some(l) => writeln!(f, "{} {} -> {}", self.outcome, self.path, l)?,
            None => writeln!(
                f,
                "{} {}: no mirror and no fallback (503)",
                self.outcome, self.path
            )?,
        }
        writeln!(
            f,
            "rank  mirror                       km       cost weight  reason"
        )?;
        for m in &self.mirrors {
            let num = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.0}"));
            let band = if m.in_band { " (in band)" } else { "" };
            writeln!(
                f,
                "{:>4}  {:<20} {:>10} {:>10} {:>6}  {}{}",
                m.rank.map_or("-".into(), |r| r.to_string()),
                m.name,
                num(m.distance_km),
                num(m.cost),
                m.weight,
                m.detail,
                band
            )?;
        }
        Ok(())
    }
}
