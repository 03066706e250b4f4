//! The `origin:` section: where the origin's file list comes from, freshness
//! (trace file, `max_lag`), paths that never leave the origin, and on-demand checks.

use std::time::Duration;

use globset::{Glob, GlobSetBuilder};

use super::file::{RawOnDemand, RawOrigin};
use super::sections::relative_path;
use super::validate::{base_url, resolve, Checker};
use super::{DirectoryPolicy, OnDemandConfig, OriginConfig, OriginSource};

pub(super) fn origin(c: &mut Checker<'_>, raw: RawOrigin) -> OriginConfig {
    let source = match (raw.root, raw.manifest) {
        (Some(_), Some(_)) => {
            c.err("origin", "give root or manifest, not both");
            None
        }
        (Some(root), None) => {
            let path = resolve(c.base, &root);
            if !path.is_dir() {
                c.err(
                    "origin.root",
                    format!("{} is not a directory", path.display()),
                );
            }
            Some(OriginSource::Root(path))
        }
        (None, Some(m)) if m.starts_with("http://") || m.starts_with("https://") => c
            .ok("origin.manifest", base_url_exact(&m))
            .map(OriginSource::ManifestUrl),
        (None, Some(m)) => Some(OriginSource::ManifestFile(
            c.readable_file("origin.manifest", &m),
        )),
        (None, None) => None,
    };
    let rescan_interval = c.duration(
        "origin.rescan_interval",
        raw.rescan_interval.as_deref(),
        Duration::from_secs(300),
    );
    if rescan_interval < Duration::from_secs(1) {
        c.err("origin.rescan_interval", "must be at least 1s");
    }
    let hash_threads = c.int_in("origin.hash_threads", raw.hash_threads, 1..=64, 2) as usize;
    let hash_cache = raw.hash_cache.map(|p| resolve(c.base, &p));
    if hash_cache.is_some() && !matches!(source, Some(OriginSource::Root(_))) {
        c.err("origin.hash_cache", "only used with origin.root");
    }
    let settle = c.duration(
        "origin.settle",
        raw.settle.as_deref(),
        Duration::from_secs(10),
    );
    let trace_file = raw
        .trace_file
        .and_then(|p| c.ok("origin.trace_file", relative_path(&p)));
    let max_lag = raw
        .max_lag
        .as_deref()
        .map(|v| c.duration("origin.max_lag", Some(v), Duration::from_secs(86_400)));
    if max_lag.is_some() && trace_file.is_none() {
        c.err(
            "origin.max_lag",
            "needs origin.trace_file: a mirror's lag is read from its copy of the trace file",
        );
    }
    if max_lag.is_some_and(|d| d.is_zero()) {
        c.err("origin.max_lag", "must be more than zero");
    }
    let directories = match raw.directories.as_deref().map(str::trim) {
        None | Some("not_found") => DirectoryPolicy::NotFound,
        Some("fallback") => DirectoryPolicy::Fallback,
        Some(other) => {
            c.err(
                "origin.directories",
                format!("{other:?} is not one of not_found, fallback"),
            );
            DirectoryPolicy::NotFound
        }
    };
    let never_redirect = raw.never_redirect.unwrap_or_default();
    let mut set = GlobSetBuilder::new();
    for (i, p) in never_redirect.iter().enumerate() {
        // A pattern without '/' names a file anywhere in the tree, as in .gitignore.
        let full = if p.contains('/') {
            p.trim_start_matches('/').to_string()
        } else {
            format!("**/{p}")
        };
        match Glob::new(&full) {
            Ok(g) => {
                set.add(g);
            }
            Err(e) => c.err(
                format!("origin.never_redirect[{i}]"),
                format!("{p:?} is not a glob pattern: {e}"),
            ),
        }
    }
    let never_redirect_set = set.build().unwrap_or_else(|_| globset::GlobSet::empty());
    let min_redirect_size = match raw.min_redirect_size {
        None => 0,
        Some(n) if n >= 0 => n as u64,
        Some(n) => {
            c.err(
                "origin.min_redirect_size",
                format!("{n} is negative; give a size in bytes"),
            );
            0
        }
    };
    let on_demand = on_demand(c, raw.on_demand.unwrap_or_default());
    OriginConfig {
        source,
        rescan_interval,
        hash_threads,
        hash_cache,
        settle,
        trace_file,
        max_lag,
        directories,
        never_redirect,
        never_redirect_set,
        min_redirect_size,
        on_demand,
    }
}

fn on_demand(c: &mut Checker<'_>, raw: RawOnDemand) -> OnDemandConfig {
    let timeout = c.duration(
        "origin.on_demand.timeout",
        raw.timeout.as_deref(),
        Duration::from_secs(2),
    );
    let wait = c.duration(
        "origin.on_demand.wait",
        raw.wait.as_deref(),
        Duration::from_millis(300),
    );
    if wait > Duration::from_secs(10) {
        c.err(
            "origin.on_demand.wait",
            "at most 10s: a download request should not wait longer for checks",
        );
    }
    OnDemandConfig {
        timeout,
        wait,
        parallel: c.int_in("origin.on_demand.parallel", raw.parallel, 1..=16, 3) as usize,
        positive_ttl: c.duration(
            "origin.on_demand.positive_ttl",
            raw.positive_ttl.as_deref(),
            Duration::from_secs(600),
        ),
        negative_ttl: c.duration(
            "origin.on_demand.negative_ttl",
            raw.negative_ttl.as_deref(),
            Duration::from_secs(60),
        ),
    }
}

/// A manifest URL: like a base URL, but naming a file (no trailing `/` added).
fn base_url_exact(s: &str) -> Result<url::Url, String> {
    let u = base_url(s)?;
    let mut exact = u.clone();
    let p = u.path().trim_end_matches('/').to_string();
    exact.set_path(&p);
    Ok(exact)
}
