//! Why one attempt on one mirror failed: a closed set, used as the `kind`
//! label of `mirrorgate_proxy_upstream_errors_total` and mapped to the
//! health checks' [`FailureReason`] for passive health.

use crate::health::FailureReason;

/// Why one attempt on one mirror failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The mirror's host refused the TCP connection.
    #[error("connection refused")]
    ConnectRefused,
    /// Any other failure to connect (reset, unreachable, connect timeout).
    #[error("could not connect")]
    Connect,
    /// The mirror's host name did not resolve.
    #[error("DNS resolution failed")]
    Dns,
    /// The TLS handshake failed.
    #[error("TLS handshake failed")]
    Tls,
    /// No response headers within `proxy.first_byte_timeout`.
    #[error("no response within the first-byte timeout")]
    Timeout,
    /// A 5xx answer.
    #[error("HTTP status {0}")]
    Status(u16),
    /// A 404: the mirror lacks the file (not a health failure).
    #[error("file not found on the mirror")]
    NotFound,
    /// The body stopped for longer than `proxy.idle_timeout`.
    #[error("the body stalled past the idle timeout")]
    Idle,
    /// The connection broke while the body was arriving.
    #[error("the connection broke during the body")]
    Body,
    /// A mirror asked to resume answered with another copy of the file.
    #[error("the resumed answer did not match the first")]
    Mismatch,
    /// The mirror redirected somewhere other than under its own base URL
    /// (the same rule as probes, [`crate::health::within_base`]).
    #[error("redirected off the mirror")]
    RedirectOffSite,
    /// mirrorgate had no file descriptor left to connect (EMFILE, ENFILE):
    /// not the mirror's failure.
    #[error("mirrorgate ran out of file descriptors")]
    OutOfDescriptors,
    /// The mirror's address is one of mirrorgate's own listeners.
    #[error("the mirror's address is one of mirrorgate's own listeners")]
    SelfAddress,
    /// Anything else (protocol error, unusable URL).
    #[error("other error")]
    Other,
}

/// Every value of the `kind` label, for removing a mirror's series.
pub const KINDS: [&str; 14] = [
    "connect_refused",
    "connect",
    "dns",
    "tls",
    "timeout",
    "http_5xx",
    "not_found",
    "idle",
    "body",
    "mismatch",
    "redirect_off_site",
    "self_address",
    "out_of_descriptors",
    "other",
];

impl UpstreamError {
    /// The bounded metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ConnectRefused => "connect_refused",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Timeout => "timeout",
            Self::Status(_) => "http_5xx",
            Self::NotFound => "not_found",
            Self::Idle => "idle",
            Self::Body => "body",
            Self::Mismatch => "mismatch",
            Self::RedirectOffSite => "redirect_off_site",
            Self::SelfAddress => "self_address",
            Self::OutOfDescriptors => "out_of_descriptors",
            Self::Other => "other",
        }
    }

    /// What a failed probe with the same cause would say; `None` for causes
    /// that say nothing about the mirror's health (it lacks one file, or
    /// holds another copy of it).
    pub fn health_reason(&self) -> Option<FailureReason> {
        match self {
            Self::ConnectRefused => Some(FailureReason::ConnectRefused),
            Self::Connect => Some(FailureReason::Connect),
            Self::Dns => Some(FailureReason::Dns),
            Self::Tls => Some(FailureReason::Tls),
            Self::Timeout | Self::Idle => Some(FailureReason::Timeout),
            Self::Status(code) => Some(FailureReason::HttpStatus(*code)),
            Self::RedirectOffSite => Some(FailureReason::RedirectOffSite),
            // A mirror configured at mirrorgate's own address cannot serve.
            Self::Body | Self::SelfAddress | Self::Other => Some(FailureReason::Other),
            // mirrorgate's own shortage says nothing of the mirror.
            Self::NotFound | Self::Mismatch | Self::OutOfDescriptors => None,
        }
    }
}

/// [`UpstreamError::OutOfDescriptors`] when `e` or a cause of it is EMFILE
/// or ENFILE, else what `otherwise` says.
pub(crate) fn unless_out_of_descriptors(
    e: &(dyn std::error::Error + 'static),
    otherwise: impl FnOnce() -> UpstreamError,
) -> UpstreamError {
    if crate::fds::out_of_descriptors(e) {
        UpstreamError::OutOfDescriptors
    } else {
        otherwise()
    }
}

/// The error a proxied body ends with when a mirror failed mid-body and no
/// other mirror could take over: hyper then closes the client's connection,
/// and the client can resume with a `Range` request.
#[derive(Debug, thiserror::Error)]
#[error("mirror {mirror} failed mid-body: {kind}")]
pub struct StreamError {
    pub mirror: std::sync::Arc<str>,
    pub kind: UpstreamError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_without_descriptors_is_no_health_failure() {
        let emfile = std::io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
        let connect = std::io::Error::other(emfile);
        let kind = unless_out_of_descriptors(&connect, || UpstreamError::Connect);
        assert_eq!(kind, UpstreamError::OutOfDescriptors);
        assert_eq!(kind.health_reason(), None);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let kind = unless_out_of_descriptors(&refused, || UpstreamError::ConnectRefused);
        assert_eq!(kind, UpstreamError::ConnectRefused);
    }

    #[test]
    fn every_kind_is_listed() {
        for e in [
            UpstreamError::ConnectRefused,
            UpstreamError::Connect,
            UpstreamError::Dns,
            UpstreamError::Tls,
            UpstreamError::Timeout,
            UpstreamError::Status(503),
            UpstreamError::NotFound,
            UpstreamError::Idle,
            UpstreamError::Body,
            UpstreamError::Mismatch,
            UpstreamError::RedirectOffSite,
            UpstreamError::SelfAddress,
            UpstreamError::OutOfDescriptors,
            UpstreamError::Other,
        ] {
            assert!(KINDS.contains(&e.as_str()), "{e:?}");
        }
    }
}
