//! The `mode:`, `rules:` and `proxy:` keys: whether a download is redirected
//! or proxied (globally and per path pattern), and how proxying behaves
//! (timeouts, failover bounds, redirects, passive health, the `auto` threshold).

use std::time::Duration;

use globset::Glob;
use http::HeaderName;

use super::file::{RawProxy, RawRule};
use super::validate::Checker;
use super::{DeliveryMode, ModeRule, ProxyConfig};

/// `mode:` (the default for paths no rule matches).
pub(super) fn mode(c: &mut Checker<'_>, place: &str, v: Option<&str>) -> DeliveryMode {
    match v.map(str::trim) {
        None | Some("redirect") => DeliveryMode::Redirect,
        Some("proxy") => DeliveryMode::Proxy,
        Some("auto") => DeliveryMode::Auto,
        Some(other) => {
            c.err(
                place,
                format!("{other:?} is not one of redirect, proxy, auto"),
            );
            DeliveryMode::Redirect
        }
    }
}

/// `rules:`: `{ pattern, mode }`, first match wins.
pub(super) fn rules(c: &mut Checker<'_>, raw: Vec<RawRule>) -> Vec<ModeRule> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let mode = match r.mode.as_deref() {
            Some(m) => mode(c, &format!("rules[{i}].mode"), Some(m)),
            None => {
                c.err(
                    format!("rules[{i}].mode"),
                    "is missing; give redirect, proxy or auto",
                );
                DeliveryMode::Redirect
            }
        };
        let Some(pattern) = r.pattern.filter(|p| !p.trim().is_empty()) else {
            c.err(
                format!("rules[{i}].pattern"),
                "is missing; give a glob pattern such as \"*.iso\" or \"repodata/*\"",
            );
            continue;
        };
        // As `origin.never_redirect`: a pattern without '/' names a file
        // anywhere in the tree, as in .gitignore.
        let full = if pattern.contains('/') {
            pattern.trim_start_matches('/').to_string()
        } else {
            format!("**/{pattern}")
        };
        match Glob::new(&full) {
            Ok(g) => out.push(ModeRule {
                pattern,
                mode,
                matcher: g.compile_matcher(),
            }),
            Err(e) => c.err(
                format!("rules[{i}].pattern"),
                format!("{pattern:?} is not a glob pattern: {e}"),
            ),
        }
    }
    out
}

/// `proxy:`
pub(super) fn proxy(c: &mut Checker<'_>, raw: RawProxy) -> ProxyConfig {
    let d = ProxyConfig::default();
    let connect_timeout = positive(c, "connect_timeout", raw.connect_timeout, d.connect_timeout);
    let first_byte_timeout = positive(
        c,
        "first_byte_timeout",
        raw.first_byte_timeout,
        d.first_byte_timeout,
    );
    let idle_timeout = positive(c, "idle_timeout", raw.idle_timeout, d.idle_timeout);
    let max_total_time = positive(c, "max_total_time", raw.max_total_time, d.max_total_time);
    let idle_connection_timeout = positive(
        c,
        "idle_connection_timeout",
        raw.idle_connection_timeout,
        d.idle_connection_timeout,
    );
    let passive_backoff = positive(c, "passive_backoff", raw.passive_backoff, d.passive_backoff);
    let max_given = raw.passive_backoff_max.is_some();
    let mut passive_backoff_max = positive(
        c,
        "passive_backoff_max",
        raw.passive_backoff_max,
        d.passive_backoff_max,
    );
    if passive_backoff_max < passive_backoff {
        // Only a maximum given below the base is a mistake; a base above
        // the default maximum raises it.
        if max_given {
            c.err(
                "proxy.passive_backoff_max",
                format!(
                    "is less than proxy.passive_backoff ({}s); give at least that",
                    passive_backoff.as_secs_f64()
                ),
            );
        }
        passive_backoff_max = passive_backoff;
    }
    let auto_threshold = match raw.auto_threshold {
        None => d.auto_threshold,
        Some(n) if n >= 0 => n as u64,
        Some(n) => {
            c.err(
                "proxy.auto_threshold",
                format!("{n} is negative; give a size in bytes"),
            );
            d.auto_threshold
        }
    };
    let no_redirect_header = match raw.no_redirect_header {
        None => d.no_redirect_header,
        Some(h) => match HeaderName::from_bytes(h.trim().as_bytes()) {
            Ok(name) if !crate::proxy::is_hop_by_hop(&name) => name,
            Ok(_) => {
                c.err(
                    "proxy.no_redirect_header",
                    format!("{h:?} is a hop-by-hop header; a proxy in front would drop it"),
                );
                d.no_redirect_header
            }
            Err(_) => {
                c.err(
                    "proxy.no_redirect_header",
                    format!("{h:?} is not a valid header name"),
                );
                d.no_redirect_header
            }
        },
    };
    ProxyConfig {
        connect_timeout,
        first_byte_timeout,
        idle_timeout,
        max_attempts: c.int_in(
            "proxy.max_attempts",
            raw.max_attempts,
            1..=16,
            d.max_attempts,
        ),
        max_total_time,
        follow_redirects: c.int_in(
            "proxy.follow_redirects",
            raw.follow_redirects,
            0..=10,
            d.follow_redirects,
        ),
        passive_failures: raw.passive_failures.unwrap_or(d.passive_failures),
        passive_backoff,
        passive_backoff_max,
        auto_threshold,
        no_redirect_header,
        idle_connections: c.int_in(
            "proxy.idle_connections",
            raw.idle_connections,
            1..=4096,
            d.idle_connections as u32,
        ) as usize,
        idle_connection_timeout,
    }
}

/// A duration of `proxy.KEY` that must be more than zero.
fn positive(c: &mut Checker<'_>, key: &str, v: Option<String>, default: Duration) -> Duration {
    let place = format!("proxy.{key}");
    let t = c.duration(&place, v.as_deref(), default);
    if t.is_zero() {
        c.err(place, "must be more than zero");
    }
    t
}
