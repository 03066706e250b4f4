//! `explain`: the ranking for one client address and path, with the reason
//! each mirror was kept or dropped. Used by the `explain` subcommand and the
//! admin API, so both show exactly what the request path would do.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use crate::content::Checker;
use crate::geo::{Location, LookupOutcome};
use crate::http::files::{self, Target};
use crate::http::path::CleanPath;
use crate::metrics::Metrics;
use crate::proxy;
use crate::select::{self, Client, Reason, Scheme};
use crate::state::{MirrorEntry, Snapshot};

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
    /// The answer: `redirect`, `proxy` (the file itself, fetched from
    /// `location` first), `fallback`, `origin`, `not_found` or `no_mirror`.
    pub outcome: &'static str,
    /// Where the request would be sent.
    pub location: Option<String>,
    /// Every mirror, ranked ones first in rank order.
    pub mirrors: Vec<MirrorVerdict>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MirrorVerdict {
    /// Its index in the snapshot the report was made against.
    #[serde(skip)]
    pub index: usize,
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

/// Explains the request `path` from `ip` against these mirrors, from what
/// is already known of each mirror's copy of the file (no check is made).
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
    /// Rank at least this many mirrors (the lists), rather than the chosen
    /// one and `selection.link_mirrors` alternatives; `None`: as a redirect.
    pub rank: Option<usize>,
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
    Ok(Prepared::new(snap, checker, ip, path, scheme, opts)?.report(snap, opts))
}

/// [`explain_with`] after the on-demand checks a download of the same file
/// would make, bounded as for a download (`origin.on_demand.wait` and
/// `parallel`): the answer a client gets, whether it asks for the file, a
/// list of mirrors, or the explanation.
pub async fn explain_checked(
    snap: &Snapshot,
    checker: &Checker,
    metrics: &Metrics,
    ip: IpAddr,
    path: &str,
    scheme: Scheme,
    opts: Options,
) -> Result<Report, String> {
    let mut prepared = Prepared::new(snap, Some(checker), ip, path, scheme, opts)?;
    prepared.check(snap, checker, metrics).await;
    Ok(prepared.report(snap, opts))
}

/// What an explanation is made from, before the ranking: the request's
/// facts and each mirror's verdict for the file. Owned, so that the ranking
/// can be made on another thread than the one that prepared it.
pub struct Prepared {
    ip: IpAddr,
    clean: CleanPath,
    location: Option<Location>,
    lookup: LookupOutcome,
    client: Client,
    target: Target,
    /// Per mirror, by index: may it serve this file (`Eligible` when the
    /// path is not a known file).
    for_file: Vec<Reason>,
    /// The mirrors a download would check now (indexes, best first).
    to_check: Vec<usize>,
}

impl Prepared {
    /// The facts of the request `path` from `ip`, and each mirror's verdict
    /// from what `checker` already knows (or, without it, from the mirrors'
    /// last syncs alone).
    pub fn new(
        snap: &Snapshot,
        checker: Option<&Checker>,
        ip: IpAddr,
        path: &str,
        scheme: Scheme,
        opts: Options,
    ) -> Result<Prepared, String> {
        let raw = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        let clean = CleanPath::parse(&raw, snap.config.limits.max_path_bytes)
            .map_err(|e| format!("{raw}: {e}"))?;
        let (location, lookup) = snap.geo.lookup(ip);
        let client = Client { location, scheme };
        let target = if opts.any_path {
            Target::Any
        } else {
            files::classify(snap, &clean)
        };
        let for_file = match target {
            Target::File(info) => {
                let now = checker.map(|c| c.now());
                snap.mirrors
                    .iter()
                    .map(|e| match (checker, now) {
                        (Some(c), Some(now)) => {
                            files::verdict(snap, e, clean.as_str(), &info, c, now)
                        }
                        _ => files::verdict_without_checks(snap, e, &info),
                    })
                    .collect()
            }
            _ => vec![Reason::Eligible; snap.mirrors.len()],
        };
        // Of the mirrors not known to have the file, those placed better
        // than the one chosen without them, at most `parallel`
        // ([`files::worth_checking`], as the download handler picks them).
        let to_check = match (target, checker, snap.config.origin.as_ref()) {
            (Target::File(_), Some(_), Some(origin)) => {
                let chosen = select::select_for(
                    &snap.mirrors,
                    &client,
                    &snap.config.selection,
                    &mut rand::rng(),
                    |i| for_file[i],
                )
                .map(|r| r.chosen());
                let parallel = origin.on_demand.parallel;
                files::worth_checking(snap, &client, &for_file, chosen, parallel)
            }
            _ => Vec::new(),
        };
        Ok(Prepared {
            ip,
            clean,
            location,
            lookup,
            client,
            target,
            for_file,
            to_check,
        })
    }

    /// Makes the on-demand checks a download would make now, for at most
    /// `origin.on_demand.wait`; a check not answered by then leaves its
    /// mirror "not confirmed", as for a download.
    pub async fn check(&mut self, snap: &Snapshot, checker: &Checker, metrics: &Metrics) {
        let (Target::File(info), Some(origin)) = (self.target, snap.config.origin.as_ref()) else {
            return;
        };
        if self.to_check.is_empty() {
            return;
        }
        let od = &origin.on_demand;
        let check = std::mem::take(&mut self.to_check);
        let requests = files::check_requests(snap, &check, &self.clean, &info);
        for (k, presence) in checker.check_many(requests, od.wait, od.parallel).await {
            if let Some(&i) = check.get(k) {
                metrics.ondemand(presence.as_str());
                self.for_file[i] = files::presence_reason(Some(presence));
            }
        }
    }

    /// Ranks the mirrors and writes the report.
    pub fn report(self, snap: &Snapshot, opts: Options) -> Report {
        let config = &snap.config;
        let mirrors = &snap.mirrors;
        let clean = &self.clean;
        let info = match self.target {
            Target::File(info) | Target::Origin(Some(info)) => Some(info),
            _ => None,
        };
        // Proxied or redirected, as the download handler decides it for a
        // request without the no-redirect header or `?proxy`.
        let proxied = match self.target {
            Target::Any | Target::File(_) => true,
            Target::Origin(_) => config.fallback.is_some(),
            Target::NotFound | Target::Directory => false,
        } && proxy::wants_proxy(
            config,
            clean.as_str(),
            info.map(|i| i.size),
            &http::HeaderMap::new(),
            None,
        );
        let mut selection = config.selection.clone();
        if proxied {
            // A proxied request ranks its failover list (see the handler).
            let alternatives = (config.proxy.max_attempts as usize).saturating_sub(1);
            selection.link_mirrors = selection.link_mirrors.max(alternatives);
        }
        if let Some(n) = opts.rank {
            selection.link_mirrors = selection.link_mirrors.max(n.saturating_sub(1));
        }
        selection.link_mirrors = selection.link_mirrors.min(mirrors.len());
        let for_file = &self.for_file;
        let (verdicts, ranking) =
            select::explain(mirrors, &self.client, &selection, &mut rand::rng(), |i| {
                for_file[i]
            });
        let order = match self.target {
            Target::Any | Target::File(_) => ranking.map(|r| r.order).unwrap_or_default(),
            _ => Vec::new(),
        };
        // Each mirror's rank by index: one pass, however many are ranked.
        let mut rank_of = vec![None; mirrors.len()];
        for (pos, &i) in order.iter().enumerate() {
            if let Some(r) = rank_of.get_mut(i) {
                *r = Some(pos + 1);
            }
        }
        let mut rows: Vec<MirrorVerdict> = verdicts
            .iter()
            .map(|v| {
                let m = &mirrors[v.index].mirror;
                MirrorVerdict {
                    index: v.index,
                    name: m.name.to_string(),
                    rank: rank_of.get(v.index).copied().flatten(),
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
        let via = |label: &'static str| if proxied { "proxy" } else { label };
        let fallback = |label| match &config.fallback {
            Some(f) => (via(label), Some(format!("{f}{}", clean.encoded()))),
            None => ("no_mirror", None),
        };
        let (outcome_label, target_url) = match (self.target, order.first()) {
            (Target::NotFound | Target::Directory, _) => ("not_found", None),
            (Target::Origin(_), _) => fallback("origin"),
            (_, Some(&i)) => (
                via("redirect"),
                Some(format!("{}{}", mirrors[i].mirror.url, clean.encoded())),
            ),
            (_, None) => fallback("fallback"),
        };
        let location = self.location;
        Report {
            ip: self.ip,
            path: format!("/{}", clean.as_str()),
            geoip: match self.lookup {
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
        }
    }
}

impl MirrorVerdict {
    /// This mirror in `snap`: by index when `snap` is the snapshot the
    /// report was made against, else by name; `None` when it is not there.
    pub fn entry<'s>(&self, snap: &'s Snapshot) -> Option<&'s MirrorEntry> {
        match snap.mirrors.get(self.index) {
            Some(e) if *e.mirror.name == *self.name => Some(e),
            _ => snap.mirror(&self.name),
        }
    }
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
        match (&self.location, self.outcome) {
            (Some(l), _) => writeln!(f, "{} {} -> {}", self.outcome, self.path, l)?,
            (None, "not_found") => writeln!(
                f,
                "not_found {}: the origin does not publish it (404)",
                self.path
            )?,
            (None, outcome) => writeln!(
                f,
                "{outcome} {}: no mirror and no fallback (503)",
                self.path
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
