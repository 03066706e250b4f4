//! Probing every mirror on a jittered interval.
//!
//! This module owns the probe tasks: one per mirror, each probing at once,
//! then again `interval * (1 ± jitter)` after the previous probe finished, so
//! a mirror's probes never overlap and the mirrors drift apart instead of
//! being probed in bursts. Results go out as [`ProbeReport`]s on a channel; it
//! must not interpret them (that is [`super::MirrorHealth`]'s job, run by the
//! state owner) nor log per probe.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use url::Url;

use super::{fetch_trace, probe, FailureReason, ProbeClient, TraceError};

/// The shortest wait between two probes of one mirror, whatever the settings
/// say: a zero interval must not turn into a busy loop.
const MIN_WAIT: Duration = Duration::from_millis(10);

/// What to probe for one mirror.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The mirror's name (its identity across reloads).
    pub mirror: Arc<str>,
    /// The full URL probed.
    pub url: Url,
    /// The mirror's base URL: a redirect that leaves it is a failure.
    pub base: Url,
    /// The mirror's trace file, fetched with every probe; `None` when not configured.
    pub trace_url: Option<Url>,
}

/// One probe's result, sent to the state owner.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The mirror probed.
    pub mirror: Arc<str>,
    /// The round-trip time, or why the probe failed.
    pub result: Result<Duration, FailureReason>,
    /// When the probe finished.
    pub at: SystemTime,
    /// The time the mirror's trace file says, or why it is not known; `None`
    /// when no trace file is configured. It never decides up or down.
    pub trace: Option<Result<SystemTime, TraceError>>,
}

/// How often and how long to probe.
#[derive(Debug, Clone)]
pub struct ProberSettings {
    /// The mean wait between the end of one probe and the start of the next.
    pub interval: Duration,
    /// The bound on one probe, as the scheduler sees it (the probe reports
    /// `Timeout` past it, even if the probe itself has no bound).
    pub timeout: Duration,
    /// Each wait is `interval * (1 ± jitter)`, uniform; clamped to 0.0..=0.5.
    pub jitter: f64,
}

/// Something that probes one target: [`ProbeClient`] in production, a fake in
/// scheduler tests.
pub trait Probe: Send + Sync + 'static {
    /// Probes `target` once.
    fn probe(
        &self,
        target: &ProbeTarget,
    ) -> impl Future<Output = Result<Duration, FailureReason>> + Send;

    /// Reads `target.trace_url`, if any; `None` when there is none.
    fn trace(
        &self,
        target: &ProbeTarget,
    ) -> impl Future<Output = Option<Result<SystemTime, TraceError>>> + Send;
}

impl Probe for ProbeClient {
    fn probe(
        &self,
        target: &ProbeTarget,
    ) -> impl Future<Output = Result<Duration, FailureReason>> + Send {
        probe(self, target)
    }

    fn trace(
        &self,
        target: &ProbeTarget,
    ) -> impl Future<Output = Option<Result<SystemTime, TraceError>>> + Send {
        fetch_trace(self, target)
    }
}

/// Owns the probe tasks; dropping it stops them.
#[derive(Debug)]
pub struct Prober {
    /// Held for its `Drop`, which aborts every task.
    #[cfg_attr(not(test), allow(dead_code))]
    tasks: JoinSet<()>,
    /// Bumped to make every task probe at once.
    now: watch::Sender<u64>,
}

impl Prober {
    /// Starts probing every target: the first probe at once, then on the
    /// jittered interval. Returns at once; must be called within a Tokio runtime.
    pub fn spawn(
        targets: Vec<ProbeTarget>,
        settings: ProberSettings,
        client: ProbeClient,
        reports: mpsc::UnboundedSender<ProbeReport>,
    ) -> Prober {
        Self::spawn_with(targets, settings, client, reports, rand::random())
    }

    /// Like [`Prober::spawn`], with any [`Probe`] and a seed for the jitter,
    /// so that tests get a reproducible schedule.
    pub fn spawn_with<P: Probe>(
        targets: Vec<ProbeTarget>,
        settings: ProberSettings,
        prober: P,
        reports: mpsc::UnboundedSender<ProbeReport>,
        seed: u64,
    ) -> Prober {
        let prober = Arc::new(prober);
        let (now, _) = watch::channel(0);
        let mut seeds = SmallRng::seed_from_u64(seed);
        let mut tasks = JoinSet::new();
        for target in targets {
            let task = Task {
                target,
                settings: settings.clone(),
                prober: Arc::clone(&prober),
                reports: reports.clone(),
                now: now.subscribe(),
                rng: SmallRng::from_rng(&mut seeds),
            };
            tasks.spawn(task.run());
        }
        Prober { tasks, now }
    }

    /// Probes every mirror now, out of schedule (admin API, tests); each task
    /// then resumes its schedule from that probe. A probe already running
    /// when this is called is followed by another one at once, so the caller
    /// always gets a result that started after its request.
    pub fn probe_all_now(&self) {
        self.now.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The probe loop of one mirror.
struct Task<P> {
    target: ProbeTarget,
    settings: ProberSettings,
    prober: Arc<P>,
    reports: mpsc::UnboundedSender<ProbeReport>,
    now: watch::Receiver<u64>,
    rng: SmallRng,
}

impl<P: Probe> Task<P> {
    async fn run(mut self) {
        loop {
            // This probe answers any "probe now" made so far.
            self.now.borrow_and_update();
            // Side by side, so that the trace adds no time to a probe round.
            let limit = self.settings.timeout;
            let (result, trace) = tokio::join!(
                tokio::time::timeout(limit, self.prober.probe(&self.target)),
                tokio::time::timeout(limit, self.prober.trace(&self.target)),
            );
            let result = result.unwrap_or(Err(FailureReason::Timeout));
            let trace = match trace {
                Ok(trace) => trace,
                Err(_elapsed) => self
                    .target
                    .trace_url
                    .as_ref()
                    .map(|_| Err(TraceError::Fetch(FailureReason::Timeout))),
            };
            let report = ProbeReport {
                mirror: Arc::clone(&self.target.mirror),
                result,
                at: SystemTime::now(),
                trace,
            };
            if self.reports.send(report).is_err() {
                return; // Nobody listens any more: end quietly.
            }
            let wait = jittered(
                self.settings.interval,
                self.settings.jitter,
                self.rng.random(),
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                changed = self.now.changed() => {
                    if changed.is_err() {
                        return; // The Prober is gone.
                    }
                }
                () = self.reports.closed() => return,
            }
        }
    }
}

/// `interval * (1 + jitter * (2u - 1))` for `u` in `[0, 1)`: uniform over
/// `interval * (1 ± jitter)`, never below [`MIN_WAIT`], never panicking.
fn jittered(interval: Duration, jitter: f64, u: f64) -> Duration {
    // A NaN survives `clamp`, makes `factor` NaN, and falls back to `interval`.
    let jitter = jitter.clamp(0.0, 0.5);
    let u = u.clamp(0.0, 1.0);
    let factor = 1.0 + jitter * (2.0 * u - 1.0);
    Duration::try_from_secs_f64(interval.as_secs_f64() * factor)
        .unwrap_or(interval)
        .max(MIN_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn jitter_spans_the_band() {
        let i = Duration::from_secs(10);
        assert_eq!(jittered(i, 0.2, 0.0), Duration::from_secs(8));
        assert_eq!(jittered(i, 0.2, 0.5), Duration::from_secs(10));
        assert_eq!(jittered(i, 0.2, 1.0), Duration::from_secs(12));
        assert_eq!(jittered(i, 0.0, 0.9), i);
    }

    #[test]
    fn jitter_is_clamped_and_never_panics() {
        let i = Duration::from_secs(10);
        assert_eq!(jittered(i, 3.0, 0.0), Duration::from_secs(5));
        assert_eq!(jittered(i, f64::NAN, 0.0), i);
        assert_eq!(jittered(i, -1.0, 0.0), i);
        assert_eq!(jittered(Duration::ZERO, 0.1, 0.3), MIN_WAIT);
        assert_eq!(jittered(Duration::MAX, 0.5, 1.0), Duration::MAX);
    }

    /// A probe that records when it was called and answers after `takes`.
    struct Fake {
        calls: mpsc::UnboundedSender<Instant>,
        takes: Duration,
    }

    impl Probe for Fake {
        fn probe(
            &self,
            _: &ProbeTarget,
        ) -> impl Future<Output = Result<Duration, FailureReason>> + Send {
            let _ = self.calls.send(Instant::now());
            let takes = self.takes;
            async move {
                tokio::time::sleep(takes).await;
                Ok(takes)
            }
        }

        fn trace(
            &self,
            target: &ProbeTarget,
        ) -> impl Future<Output = Option<Result<SystemTime, TraceError>>> + Send {
            // A trace URL ending in "hang" never answers.
            let url = target.trace_url.clone();
            async move {
                let url = url?;
                if url.path().ends_with("hang") {
                    std::future::pending::<()>().await;
                }
                Some(Ok(SystemTime::UNIX_EPOCH))
            }
        }
    }

    fn target(name: &str) -> ProbeTarget {
        let url = Url::parse("http://127.0.0.1:9/pub/").unwrap();
        ProbeTarget {
            mirror: name.into(),
            url: url.clone(),
            base: url,
            trace_url: None,
        }
    }

    fn settings(jitter: f64) -> ProberSettings {
        ProberSettings {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(3),
            jitter,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_probe_delays_the_next_one() {
        let (calls, mut called) = mpsc::unbounded_channel();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let fake = Fake {
            calls,
            takes: Duration::from_secs(2),
        };
        let _p = Prober::spawn_with(vec![target("a")], settings(0.0), fake, tx, 1);
        let first = called.recv().await.unwrap();
        assert!(rx.recv().await.unwrap().result.is_ok());
        let second = called.recv().await.unwrap();
        // Measured from the end of the previous probe: never overlapping.
        assert_eq!(second - first, Duration::from_secs(12));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_past_the_timeout_is_reported_as_timeout() {
        let (calls, _called) = mpsc::unbounded_channel();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let fake = Fake {
            calls,
            takes: Duration::from_secs(60),
        };
        let start = Instant::now();
        let _p = Prober::spawn_with(vec![target("a")], settings(0.0), fake, tx, 1);
        let report = rx.recv().await.unwrap();
        assert_eq!(report.result, Err(FailureReason::Timeout));
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_trace_is_a_trace_timeout_not_a_probe_failure() {
        let (calls, _called) = mpsc::unbounded_channel();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let fake = Fake {
            calls,
            takes: Duration::from_secs(1),
        };
        let mut hanging = target("a");
        hanging.trace_url = Some(Url::parse("http://127.0.0.1:9/pub/hang").unwrap());
        let mut fine = target("b");
        fine.trace_url = Some(Url::parse("http://127.0.0.1:9/pub/trace").unwrap());
        let start = Instant::now();
        let _p = Prober::spawn_with(vec![hanging, fine, target("c")], settings(0.0), fake, tx, 1);
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(rx.recv().await.unwrap());
        }
        got.sort_by(|x, y| x.mirror.cmp(&y.mirror));
        assert!(got.iter().all(|r| r.result.is_ok()));
        assert_eq!(
            got[0].trace,
            Some(Err(TraceError::Fetch(FailureReason::Timeout)))
        );
        assert_eq!(got[1].trace, Some(Ok(SystemTime::UNIX_EPOCH)));
        assert_eq!(got[2].trace, None);
        // Bounded by the probe timeout, like the probe itself.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn probe_now_during_a_probe_probes_again_right_after() {
        let (calls, mut called) = mpsc::unbounded_channel();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let fake = Fake {
            calls,
            takes: Duration::from_secs(2),
        };
        let p = Prober::spawn_with(vec![target("a")], settings(0.0), fake, tx, 1);
        let first = called.recv().await.unwrap();
        p.probe_all_now();
        rx.recv().await.unwrap();
        let second = called.recv().await.unwrap();
        assert_eq!(second - first, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_report_channel_ends_the_tasks() {
        let (calls, mut called) = mpsc::unbounded_channel();
        let (tx, rx) = mpsc::unbounded_channel();
        let fake = Fake {
            calls,
            takes: Duration::ZERO,
        };
        let mut p = Prober::spawn_with(vec![target("a")], settings(0.0), fake, tx, 1);
        called.recv().await.unwrap();
        drop(rx);
        // The task ends on its own, without being aborted.
        let ended = p.tasks.join_next().await.unwrap();
        assert!(ended.is_ok());
    }
}
