//! Probing every mirror on a jittered interval (stub).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use url::Url;

use super::{FailureReason, ProbeClient};

/// What to probe for one mirror.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The mirror's name (its identity across reloads).
    pub mirror: Arc<str>,
    /// The full URL probed.
    pub url: Url,
    /// The mirror's base URL: a redirect that leaves it is a failure.
    pub base: Url,
}

/// One probe's result, sent to the state owner.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    pub mirror: Arc<str>,
    pub result: Result<Duration, FailureReason>,
    pub at: SystemTime,
}

#[derive(Debug, Clone)]
pub struct ProberSettings {
    pub interval: Duration,
    pub timeout: Duration,
    /// Each wait is `interval * (1 ± jitter)`; 0.0 to 0.5.
    pub jitter: f64,
}

/// Owns the probe tasks; dropping it stops them.
#[derive(Debug)]
pub struct Prober {}

impl Prober {
    /// Starts probing every target: the first probe at once, then on the jittered interval.
    pub fn spawn(
        targets: Vec<ProbeTarget>,
        settings: ProberSettings,
        client: ProbeClient,
        reports: mpsc::UnboundedSender<ProbeReport>,
    ) -> Prober {
        let _ = (targets, settings, client, reports);
        Prober {}
    }

    /// Probes every mirror now, out of schedule (admin API, tests).
    pub fn probe_all_now(&self) {}
}
