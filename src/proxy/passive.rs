//! Passive health: failures of proxied requests count against a mirror like
//! failed probes (`proxy.passive_failures`), so a mirror failing real traffic
//! is taken out before the next probe round.
//!
//! Reports go to the state owner, which applies them with the same rise/fall
//! rules as probes. To keep the owner's queue small, a success is reported
//! only after a failure was (it ends the run of failures); a mirror that
//! keeps working sends nothing. The request path only sets an atomic flag.

use std::sync::atomic::Ordering;
use std::sync::Weak;

use super::failover::Hop;
use super::UpstreamError;
use crate::state::State;

/// Sends passive health reports to the state owner.
#[derive(Clone)]
pub(crate) struct Passive {
    state: Weak<State>,
}

impl Passive {
    pub fn new(state: Weak<State>) -> Self {
        Passive { state }
    }

    /// A proxied request failed on `hop` for `kind`.
    pub fn failure(&self, enabled: bool, hop: &Hop, kind: UpstreamError) {
        let Some(reason) = kind.health_reason() else {
            return;
        };
        if !enabled || hop.origin {
            return;
        }
        if let Some(state) = self.state.upgrade() {
            hop.passive.store(true, Ordering::Relaxed);
            state.report_passive(hop.mirror.name.clone(), Err(reason));
        }
    }

    /// `hop` answered a proxied request.
    pub fn success(&self, hop: &Hop) {
        if hop.passive.swap(false, Ordering::Relaxed) {
            if let Some(state) = self.state.upgrade() {
                state.report_passive(hop.mirror.name.clone(), Ok(()));
            }
        }
    }
}
