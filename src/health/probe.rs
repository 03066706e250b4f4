//! One probe of one mirror (stub).

use std::time::Duration;

use url::Url;

/// Why a probe failed: a closed set, used as a metric label and shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureReason {
    Timeout,
    ConnectRefused,
    Dns,
    Tls,
    /// Any other failure to connect (reset, unreachable...).
    Connect,
    HttpStatus(u16),
    RedirectOffSite,
    /// Anything else (protocol error, body error).
    Other,
}

/// A shared HTTP client for probes.
#[derive(Debug, Clone)]
pub struct ProbeClient {}

impl ProbeClient {
    pub fn new(timeout: Duration) -> Self {
        let _ = timeout;
        ProbeClient {}
    }
}

/// Probes `url` (HEAD, then GET when HEAD is refused) and returns the round-trip time.
pub async fn probe(client: &ProbeClient, url: &Url) -> Result<Duration, FailureReason> {
    let _ = (client, url);
    Err(FailureReason::Other)
}
