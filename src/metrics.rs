//! Typed metric families. The registry is created by the app and passed down;
//! nothing here is global. Labels are closed enums or mirror names: never a
//! client address or a path.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::geo::LookupOutcome;
use crate::health::HealthState;

/// How a public request ended; the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Redirected to a mirror.
    Redirect,
    /// Redirected to the configured fallback.
    Fallback,
    /// No mirror and no fallback: 503.
    NoMirror,
    /// Malformed or refused path: 400.
    BadRequest,
    /// Not GET or HEAD: 405.
    MethodNotAllowed,
    /// The origin does not publish the path (or it is a directory): 404.
    NotFound,
    /// Sent to the fallback by rule (`never_redirect`, `min_redirect_size`, directories).
    Origin,
    /// A `?sha256` answer.
    Hash,
    /// A mirror list, status page, Metalink, JSON or apt list.
    List,
    /// The file, proxied from a mirror (whatever status the mirror gave).
    Proxied,
    /// Proxying failed on every mirror tried: 502 or 504.
    ProxyError,
}

/// When a proxied request moved to the next mirror; the `phase` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverPhase {
    /// Before the client got anything.
    BeforeBody,
    /// To resume a body whose mirror died.
    MidBody,
}

impl FailoverPhase {
    pub const ALL: [FailoverPhase; 2] = [FailoverPhase::BeforeBody, FailoverPhase::MidBody];

    pub fn as_str(&self) -> &'static str {
        match self {
            FailoverPhase::BeforeBody => "before_body",
            FailoverPhase::MidBody => "mid_body",
        }
    }
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Outcome::Redirect,
        Outcome::Fallback,
        Outcome::NoMirror,
        Outcome::BadRequest,
        Outcome::MethodNotAllowed,
        Outcome::NotFound,
        Outcome::Origin,
        Outcome::Hash,
        Outcome::List,
        Outcome::Proxied,
        Outcome::ProxyError,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Redirect => "redirect",
            Outcome::Fallback => "fallback",
            Outcome::NoMirror => "no_mirror",
            Outcome::BadRequest => "bad_request",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::NotFound => "not_found",
            Outcome::Origin => "origin",
            Outcome::Hash => "hash",
            Outcome::List => "list",
            Outcome::Proxied => "proxied",
            Outcome::ProxyError => "proxy_error",
        }
    }
}

/// Every value of the `result` label of `mirrorgate_probes_total`.
const PROBE_RESULTS: [&str; 10] = [
    "ok",
    "timeout",
    "connect_refused",
    "dns",
    "tls",
    "connect",
    "http_status",
    "redirect_off_site",
    "other",
    "out_of_descriptors",
];

/// The values of `mirrorgate_mirror_state`'s `state` label.
const HEALTH_STATES: [HealthState; 3] = [HealthState::Up, HealthState::Down, HealthState::Unknown];

/// Every metric mirrorgate exports; cheap to clone (one shared set of
/// families), since handlers clone it for every request that waits.
#[derive(Clone)]
pub struct Metrics(Arc<Families>);

/// The metric families behind [`Metrics`].
pub struct Families {
    registry: Registry,
    requests: [IntCounter; Outcome::ALL.len()],
    pub request_duration: Histogram,
    redirects: IntCounterVec,
    mirror_up: IntGaugeVec,
    mirror_state: IntGaugeVec,
    probe_duration: HistogramVec,
    probes: IntCounterVec,
    geoip: [IntCounter; LookupOutcome::ALL.len()],
    reloads: IntCounterVec,
    pub snapshot_generation: IntGauge,
    mirror_lag: prometheus::GaugeVec,
    pub origin_files: IntGauge,
    origin_hashed: IntGauge,
    origin_pending: IntGauge,
    ondemand: IntCounterVec,
    pub ready: IntGauge,
    proxy_bytes: IntCounterVec,
    proxy_errors: IntCounterVec,
    proxy_failovers: [IntCounter; FailoverPhase::ALL.len()],
    pub proxy_active: IntGauge,
    pub proxy_first_byte: Histogram,
}

/// Per-mirror counters resolved once per snapshot, so the request path does no label hashing.
#[derive(Clone, Debug)]
pub struct MirrorCounters {
    pub redirects: IntCounter,
    pub proxied_bytes: IntCounter,
}

fn must<T>(r: Result<T, prometheus::Error>) -> T {
    // Metric definitions are constants of this file: a failure is a programming
    // error caught by every test, not a runtime condition.
    r.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| must(registry.register(c));

        let requests_vec = must(IntCounterVec::new(
            Opts::new("mirrorgate_requests_total", "Public requests by outcome."),
            &["outcome"],
        ));
        reg(Box::new(requests_vec.clone()));
        let requests = Outcome::ALL.map(|o| requests_vec.with_label_values(&[o.as_str()]));

        let request_duration = must(Histogram::with_opts(
            HistogramOpts::new(
                "mirrorgate_request_duration_seconds",
                "Time from request to response headers on the public listener.",
            )
            .buckets(vec![
                0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
                0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
        ));
        reg(Box::new(request_duration.clone()));

        let redirects = must(IntCounterVec::new(
            Opts::new("mirrorgate_redirects_total", "Redirects to each mirror."),
            &["mirror"],
        ));
        reg(Box::new(redirects.clone()));

        let mirror_up = must(IntGaugeVec::new(
            Opts::new(
                "mirrorgate_mirror_up",
                "1 when the mirror is up, 0 when down or not yet decided (see mirrorgate_mirror_state).",
            ),
            &["mirror"],
        ));
        reg(Box::new(mirror_up.clone()));

        // mirror_up cannot tell "down" from "not probed yet"; this one can.
        let mirror_state = must(IntGaugeVec::new(
            Opts::new(
                "mirrorgate_mirror_state",
                "1 for the mirror's current health state (up, down or unknown: not decided by probes yet), 0 for the others.",
            ),
            &["mirror", "state"],
        ));
        reg(Box::new(mirror_state.clone()));

        let probe_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "mirrorgate_probe_duration_seconds",
                "Duration of health probes.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["mirror"],
        ));
        reg(Box::new(probe_duration.clone()));

        let probes = must(IntCounterVec::new(
            Opts::new(
                "mirrorgate_probes_total",
                "Health probes by mirror and result (ok, or the failure reason).",
            ),
            &["mirror", "result"],
        ));
        reg(Box::new(probes.clone()));

        let geoip_vec = must(IntCounterVec::new(
            Opts::new(
                "mirrorgate_geoip_lookups_total",
                "GeoIP lookups of clients by result.",
            ),
            &["result"],
        ));
        reg(Box::new(geoip_vec.clone()));
        let geoip = LookupOutcome::ALL.map(|o| geoip_vec.with_label_values(&[o.as_str()]));

        let reloads = must(IntCounterVec::new(
            Opts::new(
                "mirrorgate_config_reloads_total",
                "Config reloads by result.",
            ),
            &["result"],
        ));
        reg(Box::new(reloads.clone()));
        for r in ["success", "failure"] {
            reloads.with_label_values(&[r]);
        }

        let snapshot_generation = must(IntGauge::new(
            "mirrorgate_snapshot_generation",
            "Generation of the published state snapshot; rises on every change.",
        ));
        reg(Box::new(snapshot_generation.clone()));

        let ready = must(IntGauge::new(
            "mirrorgate_ready",
            "1 once config and GeoIP are loaded and the first probe round has finished.",
        ));
        reg(Box::new(ready.clone()));

        let build_info = must(IntGaugeVec::new(
            Opts::new(
                "mirrorgate_build_info",
                "Always 1; labels say which build runs.",
            ),
            &["version"],
        ));
        reg(Box::new(build_info.clone()));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let mirror_lag = must(prometheus::GaugeVec::new(
            Opts::new(
                "mirrorgate_mirror_lag_seconds",
                "How far a mirror's last sync (its trace file) is behind the origin's last publication.",
            ),
            &["mirror"],
        ));
        reg(Box::new(mirror_lag.clone()));
        let origin_files = must(IntGauge::new(
            "mirrorgate_origin_files",
            "Files in the origin's index.",
        ));
        reg(Box::new(origin_files.clone()));
        let origin_hashed = must(IntGauge::new(
            "mirrorgate_origin_hashed_files",
            "Files of the origin's index whose SHA-256 is known.",
        ));
        reg(Box::new(origin_hashed.clone()));
        let origin_pending = must(IntGauge::new(
            "mirrorgate_origin_pending_hashes",
            "Files of the origin's index waiting to be hashed.",
        ));
        reg(Box::new(origin_pending.clone()));
        let ondemand = must(IntCounterVec::new(
            Opts::new(
                "mirrorgate_ondemand_checks_total",
                "On-demand checks of one file on one mirror, by result.",
            ),
            &["result"],
        ));
        reg(Box::new(ondemand.clone()));

        let proxy_bytes = must(IntCounterVec::new(
            Opts::new(
                "mirrorgate_proxy_bytes_total",
                "Body bytes proxied from each mirror to clients.",
            ),
            &["mirror"],
        ));
        reg(Box::new(proxy_bytes.clone()));
        let proxy_errors = must(IntCounterVec::new(
            Opts::new(
                "mirrorgate_proxy_upstream_errors_total",
                "Failed attempts of proxied requests, by mirror and kind.",
            ),
            &["mirror", "kind"],
        ));
        reg(Box::new(proxy_errors.clone()));
        let failovers_vec = must(IntCounterVec::new(
            Opts::new(
                "mirrorgate_proxy_failovers_total",
                "Moves of a proxied request to the next mirror, before the body or mid-body.",
            ),
            &["phase"],
        ));
        reg(Box::new(failovers_vec.clone()));
        let proxy_failovers =
            FailoverPhase::ALL.map(|p| failovers_vec.with_label_values(&[p.as_str()]));
        let proxy_active = must(IntGauge::new(
            "mirrorgate_proxy_active_transfers",
            "Proxied bodies being sent to clients now.",
        ));
        reg(Box::new(proxy_active.clone()));
        let proxy_first_byte = must(Histogram::with_opts(
            HistogramOpts::new(
                "mirrorgate_proxy_first_byte_seconds",
                "Time from a proxied request to a mirror's response headers, failovers included.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
        ));
        reg(Box::new(proxy_first_byte.clone()));

        Metrics(Arc::new(Families {
            proxy_bytes,
            proxy_errors,
            proxy_failovers,
            proxy_active,
            proxy_first_byte,
            registry,
            mirror_lag,
            origin_files,
            origin_hashed,
            origin_pending,
            ondemand,
            requests,
            request_duration,
            redirects,
            mirror_up,
            mirror_state,
            probe_duration,
            probes,
            geoip,
            reloads,
            snapshot_generation,
            ready,
        }))
    }

    pub fn request(&self, outcome: Outcome) {
        self.requests[outcome as usize].inc();
    }

    pub fn geoip(&self, outcome: LookupOutcome) {
        self.geoip[outcome as usize].inc();
    }

    pub fn reload(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }

    pub fn mirror_counters(&self, mirror: &str) -> MirrorCounters {
        MirrorCounters {
            redirects: self.redirects.with_label_values(&[mirror]),
            proxied_bytes: self.proxy_bytes.with_label_values(&[mirror]),
        }
    }

    /// Counters for an upstream that is no mirror (the fallback): bytes
    /// proxied only; its redirects are counted by outcome, not here.
    pub fn proxy_counters(&self, upstream: &str) -> MirrorCounters {
        MirrorCounters {
            // Never registered, so never exported.
            redirects: must(IntCounter::new("unused", "not exported")),
            proxied_bytes: self.proxy_bytes.with_label_values(&[upstream]),
        }
    }

    /// Sets `mirror_up` and the three series of `mirror_state` (1 for `state`).
    pub fn set_mirror_state(&self, mirror: &str, state: HealthState) {
        self.mirror_up
            .with_label_values(&[mirror])
            .set(i64::from(state == HealthState::Up));
        for s in HEALTH_STATES {
            self.mirror_state
                .with_label_values(&[mirror, s.as_str()])
                .set(i64::from(s == state));
        }
    }

    /// Records one probe: its duration (successful probes only) and its result.
    pub fn probe(&self, mirror: &str, result: &str, seconds: Option<f64>) {
        if let Some(s) = seconds {
            self.probe_duration.with_label_values(&[mirror]).observe(s);
        }
        self.probes.with_label_values(&[mirror, result]).inc();
    }

    pub fn set_mirror_lag(&self, mirror: &str, lag: std::time::Duration) {
        self.mirror_lag
            .with_label_values(&[mirror])
            .set(lag.as_secs_f64());
    }

    pub fn origin_stats(&self, hashed: i64, pending: i64) {
        self.origin_hashed.set(hashed);
        self.origin_pending.set(pending);
    }

    pub fn ondemand(&self, result: &str) {
        self.ondemand.with_label_values(&[result]).inc();
    }

    /// Counts a failed attempt of a proxied request.
    pub fn proxy_error(&self, mirror: &str, kind: crate::proxy::UpstreamError) {
        self.proxy_errors
            .with_label_values(&[mirror, kind.as_str()])
            .inc();
    }

    pub fn proxy_failover(&self, phase: FailoverPhase) {
        self.proxy_failovers[phase as usize].inc();
    }

    /// Drops every series of a mirror that left the config.
    pub fn forget_mirror(&self, mirror: &str) {
        let _ = self.redirects.remove_label_values(&[mirror]);
        let _ = self.mirror_up.remove_label_values(&[mirror]);
        for s in HEALTH_STATES {
            let _ = self.mirror_state.remove_label_values(&[mirror, s.as_str()]);
        }
        let _ = self.probe_duration.remove_label_values(&[mirror]);
        let _ = self.mirror_lag.remove_label_values(&[mirror]);
        let _ = self.proxy_bytes.remove_label_values(&[mirror]);
        for k in crate::proxy::UPSTREAM_ERROR_KINDS {
            let _ = self.proxy_errors.remove_label_values(&[mirror, k]);
        }
        // Probe results are keyed by (mirror, result): remove every result seen.
        for r in PROBE_RESULTS {
            let _ = self.probes.remove_label_values(&[mirror, r]);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail for I/O reasons; a family error would
        // be a definition bug, and the scrape then shows what was encoded.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl std::ops::Deref for Metrics {
    type Target = Families;
    fn deref(&self) -> &Families {
        &self.0
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's metrics table is the operators' reference: every label
    /// value the code can export must be in it.
    #[test]
    fn the_readme_table_lists_every_outcome_and_state() {
        let readme = include_str!("../README.md");
        // The labels column of a metric's row: `| name | type | labels | meaning |`.
        let row = |name: &str| {
            readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}` |")))
                .and_then(|l| l.split('|').nth(3))
                .unwrap_or_else(|| panic!("{name} is in the README's metrics table"))
        };
        let requests = row("mirrorgate_requests_total");
        for o in Outcome::ALL {
            assert!(
                requests.contains(&format!("`{}`", o.as_str())),
                "outcome {:?} is missing from the README's metrics table",
                o.as_str()
            );
        }
        let states = row("mirrorgate_mirror_state");
        for s in HEALTH_STATES {
            assert!(states.contains(&format!("`{}`", s.as_str())), "{s:?}");
        }
    }

    #[test]
    fn mirror_state_has_one_series_at_1() {
        let m = Metrics::new();
        m.set_mirror_state("a", HealthState::Unknown);
        let text = m.render();
        assert!(text.contains("mirrorgate_mirror_state{mirror=\"a\",state=\"unknown\"} 1"));
        assert!(text.contains("mirrorgate_mirror_state{mirror=\"a\",state=\"up\"} 0"));
        assert!(text.contains("mirrorgate_mirror_up{mirror=\"a\"} 0"));
        m.forget_mirror("a");
        assert!(!m.render().contains("mirror=\"a\""));
    }
}
