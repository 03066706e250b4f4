//! The rise/fall state machine (stub).

use std::time::{Duration, SystemTime};

use super::FailureReason;

/// Whether a mirror may receive traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HealthState {
    /// Not probed successfully yet: never used.
    Unknown,
    Up,
    Down,
}

impl HealthState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// A change of state, returned by [`MirrorHealth::observe`] so it can be logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: HealthState,
    pub to: HealthState,
}

/// Everything known of one mirror's health.
#[derive(Debug, Clone)]
pub struct MirrorHealth {
    pub state: HealthState,
    /// When `state` was entered.
    pub since: SystemTime,
    /// Round-trip time of the last successful probe.
    pub rtt: Option<Duration>,
    /// When the last probe finished.
    pub last_check: Option<SystemTime>,
    /// Why the last failed probe failed (kept after recovery, for operators).
    pub last_failure: Option<FailureReason>,
    successes: u32,
    failures: u32,
}

impl MirrorHealth {
    pub fn new(now: SystemTime) -> Self {
        MirrorHealth {
            state: HealthState::Unknown,
            since: now,
            rtt: None,
            last_check: None,
            last_failure: None,
            successes: 0,
            failures: 0,
        }
    }

    /// Applies one probe result under `rise`/`fall` thresholds.
    pub fn observe(
        &mut self,
        result: Result<Duration, FailureReason>,
        rise: u32,
        fall: u32,
        now: SystemTime,
    ) -> Option<Transition> {
        let _ = (result, rise, fall, now, self.successes, self.failures);
        None
    }
}
