//! The rise/fall state machine of one mirror's health.
//!
//! This module owns the rules that turn a stream of probe results into
//! `Unknown` / `Up` / `Down`. It is pure: it takes the time as an argument,
//! does no I/O and does not log; the caller (the snapshot owner) logs the
//! [`Transition`]s it returns.
//!
//! The rules, with `rise` and `fall` the success and failure thresholds
//! (a threshold of 0 counts as 1):
//!
//! - `Unknown` -> `Up` on the first success: a fresh start serves traffic
//!   after one probe round instead of `rise` rounds; readiness waits for that
//!   first round.
//! - `Unknown` -> `Down` after `fall` consecutive failures.
//! - `Up` -> `Down` after `fall` consecutive failures.
//! - `Down` -> `Up` after `rise` consecutive successes.
//!
//! A success resets the failure count and a failure resets the success count,
//! so only unbroken runs count.
//!
//! Failures of proxied requests (passive health, [`MirrorHealth::observe_passive`])
//! count toward `fall` like failed probes, but only while the mirror is up.
//! A mirror they take down is *held* out for a back-off period
//! ([`PassiveBackoff`]) during which successful probes do not bring it back:
//! its probe path may answer while its files hang. The period doubles each
//! time proxied traffic takes it down again, up to a maximum, and starts
//! over once a proxied request succeeds on it.

use std::time::{Duration, SystemTime};

use super::{FailureReason, TraceError};

/// Whether a mirror may receive traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Not probed successfully yet, and not failed `fall` times: never used.
    Unknown,
    /// Serving: may be selected.
    Up,
    /// Failing: never selected until it has risen again.
    Down,
}

impl HealthState {
    /// A bounded label for metrics and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a mirror taken down by proxied traffic stays out:
/// `base * 2^(n-1)` the n-th time in a row, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveBackoff {
    pub base: Duration,
    pub max: Duration,
}

impl PassiveBackoff {
    /// The hold after the `strikes`-th take-down in a row (1 for the first).
    pub fn period(&self, strikes: u32) -> Duration {
        let doublings = strikes.saturating_sub(1).min(31);
        self.base
            .checked_mul(1 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// A change of state, returned by [`MirrorHealth::observe`] so it can be logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: HealthState,
    /// The state entered.
    pub to: HealthState,
}

/// Everything known of one mirror's health.
#[derive(Debug, Clone)]
pub struct MirrorHealth {
    /// The current state.
    pub state: HealthState,
    /// When `state` was entered (creation time while still `Unknown`).
    pub since: SystemTime,
    /// Round-trip time of the last successful probe.
    pub rtt: Option<Duration>,
    /// When the last probe finished.
    pub last_check: Option<SystemTime>,
    /// Why the last failed probe failed (kept after recovery, for operators).
    pub last_failure: Option<FailureReason>,
    /// When that probe finished: a reason is only useful with its time.
    pub last_failure_at: Option<SystemTime>,
    /// The time the mirror's trace file said when last read successfully:
    /// the mirror holds everything the origin published up to then.
    pub last_sync: Option<SystemTime>,
    /// Why the last trace read failed; cleared by the next good one.
    pub trace_error: Option<TraceError>,
    /// Taken down by proxied traffic: probes cannot bring it back before this.
    pub held_until: Option<SystemTime>,
    /// Times proxied traffic took it down since a proxied request last
    /// succeeded on it: the back-off's exponent.
    passive_strikes: u32,
    /// Length of the current run of successes.
    successes: u32,
    /// Length of the current run of failures.
    failures: u32,
}

impl MirrorHealth {
    /// A mirror not probed yet: `Unknown` since `now`.
    pub fn new(now: SystemTime) -> Self {
        MirrorHealth {
            state: HealthState::Unknown,
            since: now,
            rtt: None,
            last_check: None,
            last_failure: None,
            last_failure_at: None,
            last_sync: None,
            trace_error: None,
            held_until: None,
            passive_strikes: 0,
            successes: 0,
            failures: 0,
        }
    }

    /// Applies one probe result (finished at `now`) under `rise`/`fall`
    /// thresholds, and returns the transition if the state changed.
    pub fn observe(
        &mut self,
        result: Result<Duration, FailureReason>,
        rise: u32,
        fall: u32,
        now: SystemTime,
    ) -> Option<Transition> {
        // mirrorgate's own trouble (no descriptor left) is no evidence
        // either way: the mirror stays as it was, and unprobed.
        if result.as_ref().is_err_and(FailureReason::is_local) {
            return None;
        }
        // A threshold of 0 would mean "change state without evidence"; treat it as 1.
        let rise = rise.max(1);
        let fall = fall.max(1);
        self.last_check = Some(now);
        let next = match result {
            Ok(rtt) => {
                self.rtt = Some(rtt);
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                match self.state {
                    HealthState::Unknown => HealthState::Up,
                    HealthState::Down if self.successes >= rise && !self.held(now) => {
                        self.held_until = None;
                        HealthState::Up
                    }
                    state => state,
                }
            }
            Err(reason) => {
                self.last_failure = Some(reason);
                self.last_failure_at = Some(now);
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                match self.state {
                    HealthState::Unknown | HealthState::Up if self.failures >= fall => {
                        HealthState::Down
                    }
                    state => state,
                }
            }
        };
        if next == self.state {
            return None;
        }
        let transition = Transition {
            from: self.state,
            to: next,
        };
        self.state = next;
        self.since = now;
        Some(transition)
    }

    /// True while a passive take-down holds the mirror out at `now`.
    pub fn held(&self, now: SystemTime) -> bool {
        self.held_until.is_some_and(|until| now < until)
    }

    /// Applies one proxied request's result (finished at `now`): only a
    /// mirror that is up is affected. A failure counts toward `fall`, and
    /// the one that takes the mirror down holds it out for `backoff`'s
    /// period (see the module's doc); a success ends the run of failures and
    /// the back-off's growth. A mirror comes back (or up the first time)
    /// only through probes. `last_check` and `rtt` stay those of probes.
    pub fn observe_passive(
        &mut self,
        result: Result<(), FailureReason>,
        rise: u32,
        fall: u32,
        now: SystemTime,
        backoff: PassiveBackoff,
    ) -> Option<Transition> {
        if self.state != HealthState::Up {
            return None;
        }
        if result.is_ok() {
            self.passive_strikes = 0;
        }
        let (last_check, rtt) = (self.last_check, self.rtt);
        let t = self.observe(result.map(|()| Duration::ZERO), rise, fall, now);
        self.last_check = last_check;
        self.rtt = rtt;
        if t.is_some_and(|t| t.to == HealthState::Down) {
            self.passive_strikes = self.passive_strikes.saturating_add(1);
            self.held_until = now.checked_add(backoff.period(self.passive_strikes));
        }
        t
    }

    /// Applies one trace read. It never changes `state`: a mirror whose trace
    /// cannot be read still serves; it just is not known to be fresh. A
    /// failed read keeps the last good sync time, which is still a lower
    /// bound of what the mirror holds.
    pub fn observe_trace(&mut self, result: Result<SystemTime, TraceError>) {
        match result {
            Ok(t) => {
                self.last_sync = Some(t);
                self.trace_error = None;
            }
            Err(e) => self.trace_error = Some(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use HealthState::{Down, Unknown, Up};

    const RTT: Duration = Duration::from_millis(12);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn ok() -> Result<Duration, FailureReason> {
        Ok(RTT)
    }

    fn fail() -> Result<Duration, FailureReason> {
        Err(FailureReason::Timeout)
    }

    /// Feeds `results` one second apart, returning the transitions seen.
    fn feed(
        h: &mut MirrorHealth,
        results: &[Result<Duration, FailureReason>],
        rise: u32,
        fall: u32,
    ) -> Vec<Option<Transition>> {
        let start = h.last_check.map_or(1, |c| {
            c.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs() + 1)
        });
        results
            .iter()
            .zip(start..)
            .map(|(r, s)| h.observe(r.clone(), rise, fall, t(s)))
            .collect()
    }

    #[test]
    fn new_is_unknown_with_nothing_recorded() {
        let h = MirrorHealth::new(t(0));
        assert_eq!(h.state, Unknown);
        assert_eq!(h.since, t(0));
        assert_eq!(h.rtt, None);
        assert_eq!(h.last_check, None);
        assert_eq!(h.last_failure, None);
    }

    #[test]
    fn unknown_rises_on_first_success_whatever_rise() {
        let mut h = MirrorHealth::new(t(0));
        let tr = h.observe(ok(), 5, 3, t(1));
        assert_eq!(
            tr,
            Some(Transition {
                from: Unknown,
                to: Up
            })
        );
        assert_eq!(h.state, Up);
        assert_eq!(h.since, t(1));
        assert_eq!(h.rtt, Some(RTT));
        assert_eq!(h.last_check, Some(t(1)));
    }

    #[test]
    fn unknown_falls_after_fall_consecutive_failures() {
        let mut h = MirrorHealth::new(t(0));
        let trs = feed(&mut h, &[fail(), fail(), fail()], 2, 3);
        assert_eq!(trs[..2], [None, None]);
        assert_eq!(
            trs[2],
            Some(Transition {
                from: Unknown,
                to: Down
            })
        );
        assert_eq!(h.since, t(3));
        assert_eq!(h.last_failure, Some(FailureReason::Timeout));
        assert_eq!(h.rtt, None);
    }

    #[test]
    fn unknown_failures_below_fall_stay_unknown() {
        let mut h = MirrorHealth::new(t(0));
        feed(&mut h, &[fail(), fail()], 2, 3);
        assert_eq!(h.state, Unknown);
        assert_eq!(h.since, t(0));
        assert_eq!(h.last_check, Some(t(2)));
    }

    #[test]
    fn up_falls_after_fall_consecutive_failures() {
        let mut h = MirrorHealth::new(t(0));
        feed(&mut h, &[ok()], 2, 3);
        let trs = feed(&mut h, &[fail(), fail(), fail()], 2, 3);
        assert_eq!(trs, [None, None, Some(Transition { from: Up, to: Down })]);
        assert_eq!(h.since, t(4));
    }

    #[test]
    fn success_resets_the_failure_run() {
        let mut h = MirrorHealth::new(t(0));
        let trs = feed(&mut h, &[ok(), fail(), fail(), ok(), fail(), fail()], 2, 3);
        assert!(trs[1..].iter().all(Option::is_none));
        assert_eq!(h.state, Up);
        assert_eq!(h.since, t(1));
    }

    #[test]
    fn down_rises_after_rise_consecutive_successes() {
        let mut h = MirrorHealth::new(t(0));
        feed(&mut h, &[fail()], 2, 1);
        assert_eq!(h.state, Down);
        let trs = feed(&mut h, &[ok(), ok()], 2, 1);
        assert_eq!(trs, [None, Some(Transition { from: Down, to: Up })]);
        assert_eq!(h.since, t(3));
    }

    #[test]
    fn failure_resets_the_success_run() {
        let mut h = MirrorHealth::new(t(0));
        feed(&mut h, &[fail()], 3, 1);
        let trs = feed(&mut h, &[ok(), ok(), fail(), ok(), ok()], 3, 1);
        assert!(trs.iter().all(Option::is_none));
        assert_eq!(h.state, Down);
        assert_eq!(h.since, t(1));
    }

    #[test]
    fn down_failures_keep_it_down_without_transition() {
        let mut h = MirrorHealth::new(t(0));
        feed(&mut h, &[fail()], 2, 1);
        let trs = feed(&mut h, &[fail(), fail()], 2, 1);
        assert_eq!(trs, [None, None]);
        assert_eq!(h.since, t(1));
    }

    #[test]
    fn last_failure_is_kept_after_recovery_and_rtt_tracks_last_success() {
        let mut h = MirrorHealth::new(t(0));
        h.observe(Err(FailureReason::HttpStatus(503)), 1, 1, t(1));
        h.observe(Ok(Duration::from_millis(5)), 1, 1, t(2));
        h.observe(Ok(Duration::from_millis(7)), 1, 1, t(3));
        assert_eq!(h.state, Up);
        assert_eq!(h.last_failure, Some(FailureReason::HttpStatus(503)));
        assert_eq!(h.rtt, Some(Duration::from_millis(7)));
        h.observe(Err(FailureReason::Dns), 1, 2, t(4));
        // A failure does not erase the last known round-trip time.
        assert_eq!(h.rtt, Some(Duration::from_millis(7)));
        assert_eq!(h.last_failure, Some(FailureReason::Dns));
    }

    #[test]
    fn trace_reads_keep_the_last_sync_and_never_change_the_state() {
        let mut h = MirrorHealth::new(t(0));
        h.observe(ok(), 1, 1, t(1));
        assert_eq!((h.last_sync, &h.trace_error), (None, &None));
        h.observe_trace(Ok(t(100)));
        assert_eq!(h.last_sync, Some(t(100)));
        h.observe_trace(Err(TraceError::Empty));
        assert_eq!(h.last_sync, Some(t(100)));
        assert_eq!(h.trace_error, Some(TraceError::Empty));
        assert_eq!(h.state, Up);
        h.observe_trace(Ok(t(200)));
        assert_eq!((h.last_sync, &h.trace_error), (Some(t(200)), &None));
    }

    #[test]
    fn a_probe_without_descriptors_counts_neither_way() {
        let mut h = MirrorHealth::new(t(0));
        h.observe(ok(), 1, 1, t(1));
        let local = Err(FailureReason::OutOfDescriptors);
        for s in 2..6 {
            assert_eq!(h.observe(local.clone(), 1, 1, t(s)), None);
        }
        assert_eq!(h.state, Up);
        assert_eq!((h.last_check, h.last_failure.clone()), (Some(t(1)), None));
        // Nor does it break a run of failures, or count in one.
        h.observe(fail(), 1, 2, t(6));
        h.observe(local.clone(), 1, 2, t(7));
        assert_eq!(h.state, Up);
        assert_eq!(h.observe(fail(), 1, 2, t(8)).map(|t| t.to), Some(Down));
        // Passive reports are the same.
        let mut h = MirrorHealth::new(t(0));
        h.observe(ok(), 1, 1, t(1));
        let local = Err(FailureReason::OutOfDescriptors);
        assert_eq!(h.observe_passive(local, 1, 1, t(2), BACKOFF), None);
        assert_eq!((h.state, h.held_until), (Up, None));
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let mut h = MirrorHealth::new(t(0));
        assert_eq!(
            h.observe(fail(), 0, 0, t(1)),
            Some(Transition {
                from: Unknown,
                to: Down
            })
        );
        assert_eq!(
            h.observe(ok(), 0, 0, t(2)),
            Some(Transition { from: Down, to: Up })
        );
    }

    const BACKOFF: PassiveBackoff = PassiveBackoff {
        base: Duration::from_secs(30),
        max: Duration::from_secs(600),
    };

    #[test]
    fn the_backoff_doubles_up_to_its_maximum() {
        let secs = |n| BACKOFF.period(n).as_secs();
        assert_eq!(
            [secs(1), secs(2), secs(3), secs(4), secs(5)],
            [30, 60, 120, 240, 480]
        );
        assert_eq!(secs(6), 600);
        assert_eq!(secs(u32::MAX), 600);
        let huge = PassiveBackoff {
            base: Duration::MAX,
            max: Duration::MAX,
        };
        assert_eq!(huge.period(3), Duration::MAX);
    }

    #[test]
    fn a_mirror_taken_down_by_proxied_traffic_is_held_out_whatever_its_probes_say() {
        let mut h = MirrorHealth::new(t(0));
        h.observe(ok(), 1, 1, t(1));
        let down = h.observe_passive(Err(FailureReason::Timeout), 1, 1, t(10), BACKOFF);
        assert_eq!(down, Some(Transition { from: Up, to: Down }));
        assert_eq!(h.held_until, Some(t(40)));
        // Probes succeed during the hold: it stays down.
        for s in [11, 20, 39] {
            assert_eq!(h.observe(ok(), 1, 1, t(s)), None, "at {s}s");
            assert_eq!(h.state, Down);
        }
        // The first success once it ends brings it back.
        assert_eq!(
            h.observe(ok(), 1, 1, t(40)),
            Some(Transition { from: Down, to: Up })
        );
        assert_eq!(h.held_until, None);
        // Failing proxied traffic again before any proxied success: twice as long.
        h.observe_passive(Err(FailureReason::Timeout), 1, 1, t(50), BACKOFF);
        assert_eq!(h.held_until, Some(t(110)));
        assert_eq!(h.observe(ok(), 1, 1, t(109)), None);
        assert_eq!(h.observe(ok(), 1, 1, t(110)).map(|t| t.to), Some(Up));
        // A proxied success resets the growth.
        assert_eq!(h.observe_passive(Ok(()), 1, 1, t(120), BACKOFF), None);
        h.observe_passive(Err(FailureReason::Timeout), 1, 1, t(130), BACKOFF);
        assert_eq!(h.held_until, Some(t(160)));
    }

    #[test]
    fn passive_reports_touch_only_a_mirror_that_is_up_and_keep_the_probes_figures() {
        let mut h = MirrorHealth::new(t(0));
        // Unknown: not affected, never held.
        assert_eq!(
            h.observe_passive(Err(FailureReason::Other), 1, 1, t(1), BACKOFF),
            None
        );
        assert_eq!((h.state, h.held_until), (Unknown, None));
        h.observe(ok(), 2, 2, t(2));
        // One failure below `fall`: still up, not held.
        assert_eq!(
            h.observe_passive(Err(FailureReason::Other), 2, 2, t(3), BACKOFF),
            None
        );
        assert_eq!((h.state, h.held_until), (Up, None));
        assert_eq!((h.last_check, h.rtt), (Some(t(2)), Some(RTT)));
        assert_eq!(
            h.observe_passive(Err(FailureReason::Other), 2, 2, t(4), BACKOFF)
                .map(|t| t.to),
            Some(Down)
        );
        assert_eq!(h.last_check, Some(t(2)));
        // Down: a proxied result changes nothing.
        assert_eq!(h.observe_passive(Ok(()), 2, 2, t(5), BACKOFF), None);
        assert_eq!(h.state, Down);
    }

    /// The rules restated over the whole history: the state after each
    /// result, computed from run lengths counted backwards.
    fn reference(results: &[bool], rise: u32, fall: u32) -> Vec<HealthState> {
        let (rise, fall) = (rise.max(1) as usize, fall.max(1) as usize);
        let mut state = Unknown;
        let mut out = Vec::with_capacity(results.len());
        for i in 0..results.len() {
            let run = results[..=i]
                .iter()
                .rev()
                .take_while(|&&r| r == results[i])
                .count();
            state = match (state, results[i]) {
                (Unknown, true) => Up,
                (Unknown | Up, false) if run >= fall => Down,
                (Down, true) if run >= rise => Up,
                (s, _) => s,
            };
            out.push(state);
        }
        out
    }

    fn reason() -> impl Strategy<Value = FailureReason> {
        prop_oneof![
            Just(FailureReason::Timeout),
            Just(FailureReason::ConnectRefused),
            Just(FailureReason::Dns),
            Just(FailureReason::Tls),
            Just(FailureReason::Connect),
            (100u16..600).prop_map(FailureReason::HttpStatus),
            Just(FailureReason::RedirectOffSite),
            Just(FailureReason::Other),
        ]
    }

    fn result() -> impl Strategy<Value = Result<Duration, FailureReason>> {
        prop_oneof![
            (1u64..5000).prop_map(|ms| Ok(Duration::from_millis(ms))),
            reason().prop_map(Err),
        ]
    }

    proptest! {
        #[test]
        fn follows_the_reference_model(
            results in proptest::collection::vec(result(), 0..60),
            rise in 0u32..5,
            fall in 0u32..5,
        ) {
            let oks: Vec<bool> = results.iter().map(Result::is_ok).collect();
            let expected = reference(&oks, rise, fall);
            let mut h = MirrorHealth::new(t(0));
            let mut last_ok = None;
            let mut last_err = None;
            for (i, r) in results.iter().enumerate() {
                let now = t(i as u64 + 1);
                let before = (h.state, h.since);
                let tr = h.observe(r.clone(), rise, fall, now);
                match r {
                    Ok(d) => last_ok = Some(*d),
                    Err(e) => last_err = Some(e.clone()),
                }
                prop_assert_eq!(h.state, expected[i]);
                prop_assert_eq!(h.last_check, Some(now));
                prop_assert_eq!(h.rtt, last_ok);
                prop_assert_eq!(&h.last_failure, &last_err);
                if h.state == before.0 {
                    prop_assert_eq!(tr, None);
                    prop_assert_eq!(h.since, before.1);
                } else {
                    prop_assert_eq!(tr, Some(Transition { from: before.0, to: h.state }));
                    prop_assert_eq!(h.since, now);
                }
            }
        }
    }
}
