//! Mirror health: a pure rise/fall state machine (`state.rs`), one HTTP probe
//! with a closed set of failure reasons (`probe.rs`), the trace file that says
//! how far a mirror has synced (`trace.rs`), and the scheduler that probes
//! every mirror on a jittered interval and reports results (`scheduler.rs`).
//!
//! Nothing here publishes state: reports go over a channel to the one task
//! that owns the snapshot (`crate::state`).

mod probe;
mod scheduler;
mod state;
mod trace;

pub(crate) use probe::within_base;
pub use probe::{probe, FailureReason, ProbeClient, ProbeClientError};
pub use scheduler::{Probe, ProbeReport, ProbeTarget, Prober, ProberSettings};
pub use state::{HealthState, MirrorHealth, PassiveBackoff, Transition};
pub use trace::{fetch_trace, parse_trace, parse_trace_at, trace_url, TraceError, TRACE_MAX_BYTES};
