//! The one immutable [`Snapshot`] behind one `ArcSwap`, and the single task that
//! writes it.
//!
//! The request path `load()`s the snapshot once per request and never waits
//! for anything. Every change (a probe report, a reload) goes to the owner
//! task, which applies it and publishes the next snapshot whole, so a request
//! never sees half of an update, and config, mirrors and health always agree.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::Config;
use crate::content::ContentIndex;
use crate::geo::{GeoDb, UnitVector};
use crate::health::{
    FailureReason, HealthState, MirrorHealth, PassiveBackoff, ProbeClient, ProbeReport,
    ProbeTarget, Prober, ProberSettings,
};
use crate::metrics::{Metrics, MirrorCounters};
use crate::rankcache::RankCache;
use crate::registry::Mirror;
use crate::select::Candidate;

/// Jitter of the probe interval: spreads probes so that mirrors are not all hit at once.
const PROBE_JITTER: f64 = 0.1;

/// A mirror as the request path sees it: what it is, how it is, its counters.
#[derive(Debug, Clone)]
pub struct MirrorEntry {
    pub mirror: Arc<Mirror>,
    pub health: MirrorHealth,
    pub counters: MirrorCounters,
    /// The mirror's coordinates as a unit vector, computed once per install.
    pub position: Option<UnitVector>,
    /// `; geo=cc` for its `Link` headers (empty when the country is unknown).
    pub link_geo: Box<str>,
    /// `link: <` and the mirror's URL: how its `Link` header lines start,
    /// written once rather than for every redirect.
    pub link_open: Box<[u8]>,
    /// How far its last sync is behind the origin's last publication.
    pub lag: Option<Duration>,
    /// `100 / weight`, kept for the ranking.
    pub capacity: f64,
    /// Set by the proxy after it reported a passive failure here, so that the
    /// next success is reported too (and only that one); kept across publications.
    pub passive: Arc<AtomicBool>,
}

impl MirrorEntry {
    /// True when `max_lag` takes this mirror out entirely.
    pub fn lagging(&self, max_lag: Option<Duration>) -> bool {
        matches!((self.lag, max_lag), (Some(lag), Some(max)) if lag > max)
    }
}

impl MirrorEntry {
    pub fn new(mirror: Arc<Mirror>, health: MirrorHealth, counters: MirrorCounters) -> Self {
        MirrorEntry {
            position: mirror.coords.map(UnitVector::from),
            link_geo: mirror
                .country
                .map(|c| format!("; geo={}", c.as_str().to_ascii_lowercase()))
                .unwrap_or_default()
                .into(),
            link_open: [b"link: <", mirror.url.as_str().as_bytes()].concat().into(),
            lag: None,
            capacity: crate::select::capacity_factor(&mirror),
            passive: Arc::default(),
            mirror,
            health,
            counters,
        }
    }
}

impl Candidate for MirrorEntry {
    fn mirror(&self) -> &Mirror {
        &self.mirror
    }
    fn health(&self) -> HealthState {
        self.health.state
    }
    fn position(&self) -> Option<UnitVector> {
        self.position
    }
    fn capacity_factor(&self) -> f64 {
        self.capacity
    }
}

/// Everything a request needs, immutable.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Rises by one on every publication; tests and `/metrics` use it to wait for changes.
    pub generation: u64,
    pub config: Arc<Config>,
    pub geo: Arc<GeoDb>,
    pub mirrors: Vec<MirrorEntry>,
    /// Latched once the first probe round has finished.
    pub ready: bool,
    /// When the config in force was loaded.
    pub loaded_at: SystemTime,
    /// The origin's files (empty when no origin source is configured).
    pub content: Arc<ContentIndex>,
    /// True once the first index has arrived.
    pub content_loaded: bool,
    /// The origin's last publication: the newest file of the index, or
    /// without one the freshest sync any mirror reports. Lags count from it.
    pub origin_published: Option<SystemTime>,
    /// The oldest last sync of the enabled mirrors (Unix seconds), when every
    /// one has reported one and none lags past `max_lag`: files older than
    /// this need no per-mirror verdict.
    pub fresh_since: Option<i64>,
    /// Rankings per client place for these mirrors (see [`crate::rankcache`]);
    /// replaced whenever something ranking reads changes.
    pub rank_cache: Arc<RankCache>,
}

impl Snapshot {
    fn new(loaded: &Loaded) -> Snapshot {
        Snapshot {
            generation: 0,
            config: loaded.config.clone(),
            geo: loaded.geo.clone(),
            mirrors: Vec::new(),
            ready: false,
            loaded_at: SystemTime::now(),
            content: Arc::new(ContentIndex::empty()),
            content_loaded: false,
            origin_published: None,
            fresh_since: None,
            rank_cache: Arc::default(),
        }
    }

    /// A snapshot outside a running app (the `explain` subcommand): these
    /// mirrors, and the origin's index when one was read.
    pub fn standalone(
        loaded: &Loaded,
        mirrors: Vec<MirrorEntry>,
        content: Option<Arc<ContentIndex>>,
    ) -> Snapshot {
        let mut s = Snapshot::new(loaded);
        s.mirrors = mirrors;
        match content {
            Some(c) => {
                s.content = c;
                s.content_loaded = true;
            }
            None => {
                // No index read: rank as without one.
                if let Some(o) = &s.config.origin {
                    let mut cfg = (*s.config).clone();
                    cfg.origin = Some(crate::config::OriginConfig {
                        source: None,
                        ..o.clone()
                    });
                    s.config = Arc::new(cfg);
                }
            }
        }
        s.ready = true;
        s.refresh_lags();
        s
    }

    /// Each mirror's lag behind the origin's last publication.
    pub fn refresh_lags(&mut self) {
        let newest_file = self
            .content
            .newest_mtime()
            .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64));
        let freshest_sync = self.mirrors.iter().filter_map(|e| e.health.last_sync).max();
        self.origin_published = newest_file.or(freshest_sync);
        for e in &mut self.mirrors {
            e.lag = match (self.origin_published, e.health.last_sync) {
                (Some(p), Some(m)) => Some(p.duration_since(m).unwrap_or(Duration::ZERO)),
                _ => None,
            };
        }
        let max_lag = self.config.origin.as_ref().and_then(|o| o.max_lag);
        let enabled = || self.mirrors.iter().filter(|e| e.mirror.enabled);
        self.fresh_since = if enabled().any(|e| e.lagging(max_lag)) {
            None
        } else {
            enabled()
                .map(|e| e.health.last_sync.map(crate::content::tree::unix_secs))
                .try_fold(i64::MAX, |acc, s| s.map(|s| acc.min(s)))
                .filter(|&s| s != i64::MAX)
        };
    }

    /// True when every enabled mirror synced after a file of this time.
    pub fn all_fresh_for(&self, mtime: i64) -> bool {
        self.fresh_since.is_some_and(|s| s >= mtime)
    }

    /// True when an origin index is configured (even while still empty).
    pub fn has_index(&self) -> bool {
        self.config
            .origin
            .as_ref()
            .is_some_and(|o| o.source.is_some())
    }

    pub fn mirror(&self, name: &str) -> Option<&MirrorEntry> {
        self.mirrors.iter().find(|m| &*m.mirror.name == name)
    }
}

/// A loaded and validated configuration, ready to be installed.
pub struct Loaded {
    pub config: Arc<Config>,
    pub geo: Arc<GeoDb>,
    pub mirrors: Vec<Mirror>,
}

enum Command {
    Install(Loaded, oneshot::Sender<u64>),
    Content(Arc<ContentIndex>, oneshot::Sender<u64>),
    ProbeNow,
    /// A proxied request failed on this mirror (`Err`), or it answered one
    /// after such a failure (`Ok`).
    Passive(Arc<str>, Result<(), FailureReason>),
}

/// The shared, read-mostly state, and the way to send changes to its owner.
pub struct State {
    current: ArcSwap<Snapshot>,
    generation: watch::Sender<u64>,
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("generation", &self.current.load().generation)
            .finish()
    }
}

impl State {
    /// Creates the state with its first snapshot and spawns the owner task,
    /// which starts probing at once. The task ends when the `State` is dropped.
    pub fn start(loaded: Loaded, metrics: Metrics, client: ProbeClient) -> Arc<State> {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (generation, _) = watch::channel(0);
        let first = Arc::new(Snapshot::new(&loaded));
        let state = Arc::new(State {
            current: ArcSwap::new(first),
            generation,
            commands,
        });
        let mut owner = Owner {
            state: Arc::downgrade(&state),
            metrics,
            snapshot: Snapshot::new(&loaded),
            prober: None,
            client,
            reports: mpsc::unbounded_channel().1,
            rank_inputs: RankInputs::default(),
            short_of_descriptors: false,
        };
        owner.install(loaded);
        owner.publish();
        tokio::spawn(owner.run(commands_rx));
        state
    }

    /// The current snapshot (cheap; hold it only for one request).
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot, to keep across `.await`s.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// A receiver that sees every new generation number.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Installs a new config; returns the generation that carries it.
    pub async fn install(&self, loaded: Loaded) -> Option<u64> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Install(loaded, tx)).ok()?;
        rx.await.ok()
    }

    /// Publishes a new index of the origin's files; returns the generation that carries it.
    pub async fn set_content(&self, index: Arc<ContentIndex>) -> Option<u64> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Content(index, tx)).ok()?;
        rx.await.ok()
    }

    /// Asks for a probe of every mirror now.
    pub fn probe_now(&self) {
        let _ = self.commands.send(Command::ProbeNow);
    }

    /// Passive health: a proxied request failed on `mirror` (`Err`), or it
    /// answered one after such a failure (`Ok`). Applied like a probe result
    /// (see `Owner::apply_passive`) when `proxy.passive_failures` is on.
    pub fn report_passive(&self, mirror: Arc<str>, result: Result<(), FailureReason>) {
        let _ = self.commands.send(Command::Passive(mirror, result));
    }
}

/// The one writer of the snapshot.
struct Owner {
    state: std::sync::Weak<State>,
    metrics: Metrics,
    /// The owner's working copy; published by cloning.
    snapshot: Snapshot,
    prober: Option<Prober>,
    client: ProbeClient,
    reports: mpsc::UnboundedReceiver<ProbeReport>,
    /// What the published snapshot's rank cache was made for.
    rank_inputs: RankInputs,
    /// A probe failed for lack of file descriptors, and none has succeeded
    /// since: said once, not for every probe.
    short_of_descriptors: bool,
}

/// Everything [`crate::select::ranked`] reads of a snapshot, beside the
/// client: while it stays the same, rankings per place stay valid and the
/// rank cache is carried over to the next publication. Config and mirrors are
/// compared by identity (a reload or a GeoIP fill-in makes new ones); holding
/// them here keeps an address from being reused by a different one.
#[derive(Debug, Default)]
struct RankInputs {
    config: Option<Arc<Config>>,
    /// Per mirror: its settings and place, health state and capacity.
    mirrors: Vec<(Arc<Mirror>, HealthState, u64)>,
}

impl RankInputs {
    fn of(s: &Snapshot) -> RankInputs {
        RankInputs {
            config: Some(s.config.clone()),
            mirrors: s
                .mirrors
                .iter()
                .map(|e| (e.mirror.clone(), e.health.state, e.capacity.to_bits()))
                .collect(),
        }
    }
}

impl PartialEq for RankInputs {
    fn eq(&self, other: &Self) -> bool {
        let same_config = match (&self.config, &other.config) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_config
            && self.mirrors.len() == other.mirrors.len()
            && self
                .mirrors
                .iter()
                .zip(&other.mirrors)
                .all(|(a, b)| Arc::ptr_eq(&a.0, &b.0) && a.1 == b.1 && a.2 == b.2)
    }
}

impl Owner {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Install(loaded, reply)) => {
                        self.install(loaded);
                        let generation = self.publish();
                        let _ = reply.send(generation);
                    }
                    Some(Command::Content(index, reply)) => {
                        self.metrics.origin_files.set(index.len() as i64);
                        self.snapshot.content = index;
                        self.snapshot.content_loaded = true;
                        self.update_ready();
                        let generation = self.publish();
                        let _ = reply.send(generation);
                    }
                    Some(Command::ProbeNow) => {
                        if let Some(p) = &self.prober {
                            p.probe_all_now();
                        }
                    }
                    Some(Command::Passive(mirror, result)) => {
                        // Most reports change no state: publish only a transition.
                        if self.apply_passive(&mirror, result) {
                            self.publish();
                        }
                    }
                    // Every `State` is gone: the app has shut down.
                    None => break,
                },
                Some(report) = self.reports.recv() => {
                    let before = self.probe_view();
                    self.apply(report);
                    // Publish once for a burst of reports (a probe round ends together).
                    while let Ok(report) = self.reports.try_recv() {
                        self.apply(report);
                    }
                    // A round that changed no answer still changed what operators
                    // read (last check, round-trip time): that is published too,
                    // but under the same generation.
                    if self.probe_view() == before {
                        self.publish_same_generation();
                    } else {
                        self.publish();
                    }
                }
            }
        }
    }

    /// Replaces config and mirrors; keeps the health of mirrors whose name and
    /// probe URL did not change, and restarts probing.
    fn install(&mut self, loaded: Loaded) {
        let mut old: HashMap<Arc<str>, MirrorEntry> = self
            .snapshot
            .mirrors
            .drain(..)
            .map(|e| (e.mirror.name.clone(), e))
            .collect();
        let now = SystemTime::now();
        let mut mirrors = Vec::with_capacity(loaded.mirrors.len());
        for m in loaded.mirrors {
            let (health, passive) = match old.remove(&m.name) {
                Some(e) if e.mirror.probe_url == m.probe_url => (e.health, Some(e.passive)),
                _ => (MirrorHealth::new(now), None),
            };
            let counters = self.metrics.mirror_counters(&m.name);
            let mut entry = MirrorEntry::new(Arc::new(m), health, counters);
            if let Some(p) = passive {
                entry.passive = p;
            }
            mirrors.push(entry);
        }
        for name in old.keys() {
            self.metrics.forget_mirror(name);
        }
        let cfg = &loaded.config;
        let trace_file = cfg.origin.as_ref().and_then(|o| o.trace_file.clone());
        let targets: Vec<ProbeTarget> = mirrors
            .iter()
            .filter(|e| e.mirror.enabled)
            .map(|e| ProbeTarget {
                mirror: e.mirror.name.clone(),
                url: e.mirror.probe_url.clone(),
                base: e.mirror.url.clone(),
                // The origin's trace file, as each mirror copies it.
                trace_url: trace_file
                    .as_deref()
                    .and_then(|p| crate::health::trace_url(&e.mirror.url, p).ok()),
            })
            .collect();
        let settings = ProberSettings {
            interval: cfg.health.interval,
            timeout: cfg.health.timeout,
            jitter: PROBE_JITTER,
        };
        // A fresh channel: reports of the previous prober, about mirrors that
        // may have changed, are dropped with its receiver.
        let (tx, rx) = mpsc::unbounded_channel();
        self.prober = None;
        if cfg.health.timeout != self.client.timeout() || cfg.tls_roots != *self.client.roots() {
            match ProbeClient::with_roots(cfg.health.timeout, &cfg.tls_roots) {
                Ok(c) => self.client = c,
                // Keep probing with the old client rather than not at all.
                Err(e) => {
                    tracing::error!(error = %e, "cannot build a probe client for the new timeout or tls_roots")
                }
            }
        }
        self.prober = Some(Prober::spawn(targets, settings, self.client.clone(), tx));
        self.reports = rx;
        self.snapshot.config = loaded.config;
        self.snapshot.geo = loaded.geo;
        self.snapshot.mirrors = mirrors;
        self.snapshot.loaded_at = now;
        self.update_ready();
    }

    fn apply(&mut self, report: ProbeReport) {
        let (rise, fall) = (
            self.snapshot.config.health.rise,
            self.snapshot.config.health.fall,
        );
        let Some(entry) = self
            .snapshot
            .mirrors
            .iter_mut()
            .find(|e| e.mirror.name == report.mirror)
        else {
            return;
        };
        let label = match &report.result {
            Ok(_) => "ok",
            Err(reason) => reason.as_str(),
        };
        match &report.result {
            Err(reason) if reason.is_local() => {
                if !std::mem::replace(&mut self.short_of_descriptors, true) {
                    tracing::error!(mirror = %entry.mirror.name, %reason, "a probe could not run: mirrorgate is out of file descriptors; mirror health stays as it was until probes can run (raise the open-file limit or lower limits.max_connections)");
                }
            }
            Ok(_) => self.short_of_descriptors = false,
            Err(_) => {}
        }
        let secs = report.result.as_ref().ok().map(|d| d.as_secs_f64());
        self.metrics.probe(&entry.mirror.name, label, secs);
        if let Some(trace) = report.trace {
            if let Err(e) = &trace {
                // Logged on the change only, like health: a broken trace repeats every round.
                if entry.health.trace_error.as_ref() != Some(e) {
                    tracing::warn!(mirror = %entry.mirror.name, error = %e, "trace file unreadable");
                }
            }
            entry.health.observe_trace(trace);
        }
        let failure = report.result.as_ref().err().cloned();
        if let Some(t) = entry.health.observe(report.result, rise, fall, report.at) {
            match failure {
                Some(reason) => {
                    tracing::warn!(mirror = %entry.mirror.name, from = t.from.as_str(), to = t.to.as_str(), %reason, "mirror health changed")
                }
                None => {
                    tracing::info!(mirror = %entry.mirror.name, from = t.from.as_str(), to = t.to.as_str(), "mirror health changed")
                }
            }
        }
        self.update_ready();
    }

    /// Applies a passive report with the probes' rise/fall rules and the
    /// proxy's back-off (see [`MirrorHealth::observe_passive`]); true on a
    /// change of state.
    fn apply_passive(&mut self, mirror: &str, result: Result<(), FailureReason>) -> bool {
        let cfg = &self.snapshot.config;
        if !cfg.proxy.passive_failures {
            return false;
        }
        let (rise, fall) = (cfg.health.rise, cfg.health.fall);
        let backoff = PassiveBackoff {
            base: cfg.proxy.passive_backoff,
            max: cfg.proxy.passive_backoff_max,
        };
        let Some(entry) = self
            .snapshot
            .mirrors
            .iter_mut()
            .find(|e| &*e.mirror.name == mirror)
        else {
            return false;
        };
        let failure = result.as_ref().err().cloned();
        let now = SystemTime::now();
        let t = entry
            .health
            .observe_passive(result, rise, fall, now, backoff);
        if let (Some(t), Some(reason)) = (t, failure) {
            let held = entry
                .health
                .held_until
                .and_then(|u| u.duration_since(now).ok())
                .unwrap_or_default();
            tracing::warn!(mirror = %entry.mirror.name, from = t.from.as_str(), to = t.to.as_str(), %reason, held_for = ?held, "mirror health changed (proxied traffic); probes cannot bring it back before the hold ends");
        }
        t.is_some()
    }

    /// Readiness latches once every enabled mirror has been probed once and
    /// the first index of the origin (when one is configured) has arrived.
    fn update_ready(&mut self) {
        if !self.snapshot.ready && (self.snapshot.content_loaded || !self.snapshot.has_index()) {
            self.snapshot.ready = self
                .snapshot
                .mirrors
                .iter()
                .filter(|e| e.mirror.enabled)
                .all(|e| e.health.last_check.is_some());
        }
    }

    /// Each mirror's lag behind the origin's last publication.
    fn update_lags(&mut self) {
        // The same computation as a standalone snapshot's, `fresh_since`
        // included: without it the request path would never take the
        // all-fresh shortcut.
        self.snapshot.refresh_lags();
        for e in &self.snapshot.mirrors {
            if let Some(lag) = e.lag {
                self.metrics.set_mirror_lag(&e.mirror.name, lag);
            }
        }
    }

    /// What probe reports can change that answers depend on: each mirror's
    /// state and last sync (its freshness), and readiness. Round-trip times,
    /// check times and failure texts are shown to operators but decide nothing.
    fn probe_view(&self) -> (bool, Vec<(HealthState, Option<SystemTime>)>) {
        let s = &self.snapshot;
        let mirrors = s
            .mirrors
            .iter()
            .map(|e| (e.health.state, e.health.last_sync))
            .collect();
        (s.ready, mirrors)
    }

    /// Publishes a new snapshot with a new generation: something answers
    /// depend on changed.
    fn publish(&mut self) -> u64 {
        self.snapshot.generation += 1;
        self.publish_same_generation()
    }

    /// Publishes the snapshot under its current generation, for changes only
    /// operators see (a probe round that changed no state); the generation
    /// counts the versions of what answers are made from, so a dashboard or a
    /// node comparing generations sees change only when there was one.
    fn publish_same_generation(&mut self) -> u64 {
        let Some(state) = self.state.upgrade() else {
            return self.snapshot.generation;
        };
        for e in &self.snapshot.mirrors {
            self.metrics
                .set_mirror_state(&e.mirror.name, e.health.state);
        }
        self.metrics
            .snapshot_generation
            .set(self.snapshot.generation as i64);
        self.metrics.ready.set(i64::from(self.snapshot.ready));
        self.update_lags();
        let inputs = RankInputs::of(&self.snapshot);
        if inputs != self.rank_inputs {
            self.snapshot.rank_cache = Arc::default();
            self.rank_inputs = inputs;
        }
        state.current.store(Arc::new(self.snapshot.clone()));
        state.generation.send_replace(self.snapshot.generation);
        self.snapshot.generation
    }
}
