//! One HTTP probe of one mirror, and the closed set of reasons it can fail.
//!
//! This module owns the probe client (one shared `reqwest::Client`) and the
//! mapping of every error to a [`FailureReason`]. It must not keep health
//! state, schedule anything or log: it returns one result per call and the
//! state owner decides what it means.

use crate::tls::TlsRoots;
use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Method, StatusCode};
use url::Url;

use super::ProbeTarget;

/// How many redirects a probe follows before giving up on the mirror.
pub(super) const MAX_REDIRECTS: usize = 5;

/// Why a probe failed: a closed set, used as a metric label and shown to operators.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FailureReason {
    /// The whole probe (connect, TLS, redirects, headers) took longer than the timeout.
    #[error("timed out")]
    Timeout,
    /// The mirror's host refused the TCP connection.
    #[error("connection refused")]
    ConnectRefused,
    /// The mirror's host name did not resolve.
    #[error("DNS resolution failed")]
    Dns,
    /// The TLS handshake failed (bad certificate, not TLS at all...).
    #[error("TLS handshake failed")]
    Tls,
    /// Any other failure to connect (reset, unreachable...).
    #[error("could not connect")]
    Connect,
    /// The mirror answered with a status other than 2xx (a redirect that
    /// cannot be followed counts as its own status).
    #[error("HTTP status {0}")]
    HttpStatus(u16),
    /// The mirror redirected outside its own base URL.
    #[error("redirected off the mirror")]
    RedirectOffSite,
    /// Anything else (protocol error, body error).
    #[error("other error")]
    Other,
    /// mirrorgate itself had no file descriptor left (EMFILE, ENFILE): the
    /// probe says nothing about the mirror, and counts neither way.
    #[error("mirrorgate ran out of file descriptors (not the mirror's failure)")]
    OutOfDescriptors,
}

impl FailureReason {
    /// A bounded label for metrics: never carries the status code or any detail.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::ConnectRefused => "connect_refused",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Connect => "connect",
            Self::HttpStatus(_) => "http_status",
            Self::RedirectOffSite => "redirect_off_site",
            Self::Other => "other",
            Self::OutOfDescriptors => "out_of_descriptors",
        }
    }

    /// True for a reason on mirrorgate's side, which says nothing of the
    /// mirror's health.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::OutOfDescriptors)
    }
}

/// Why building the probe client failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the probe HTTP client: {0}")]
pub struct ProbeClientError(#[source] reqwest::Error);

/// A shared HTTP client for probes, cheap to clone.
#[derive(Debug, Clone)]
pub struct ProbeClient {
    pub(super) http: reqwest::Client,
    timeout: Duration,
    roots: TlsRoots,
}

impl ProbeClient {
    /// A client using the system resolver; every probe is bounded by `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, ProbeClientError> {
        Self::build(timeout, None, &TlsRoots::default())
    }

    /// [`ProbeClient::new`], also trusting the config's `tls_roots`.
    pub fn with_roots(timeout: Duration, roots: &TlsRoots) -> Result<Self, ProbeClientError> {
        Self::build(timeout, None, roots)
    }

    /// A client resolving names with `resolver` instead of the system's
    /// (tests map made-up names to loopback, or make resolution fail).
    pub fn with_resolver(
        timeout: Duration,
        resolver: Arc<dyn Resolve>,
    ) -> Result<Self, ProbeClientError> {
        Self::build(timeout, Some(resolver), &TlsRoots::default())
    }

    fn build(
        timeout: Duration,
        custom: Option<Arc<dyn Resolve>>,
        roots: &TlsRoots,
    ) -> Result<Self, ProbeClientError> {
        let http = roots
            .add_to_reqwest(reqwest::Client::builder())
            .map_err(ProbeClientError)?
            .user_agent(concat!(
                "mirrorgate/",
                env!("CARGO_PKG_VERSION"),
                " health-check"
            ))
            // Redirects are followed by hand, so that one leaving the mirror is seen.
            .redirect(reqwest::redirect::Policy::none())
            // No pooling: every probe opens a fresh connection, so a mirror
            // that stopped accepting connections is noticed on the next probe
            // rather than hidden behind a connection kept alive.
            .pool_max_idle_per_host(0)
            // Always our resolver, so that a resolution failure is recognisable
            // in the error chain whatever resolves underneath.
            .dns_resolver(Arc::new(TaggingResolver { custom }))
            .build()
            .map_err(ProbeClientError)?;
        Ok(ProbeClient {
            http,
            timeout,
            roots: roots.clone(),
        })
    }

    /// The bound on one whole probe.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The extra roots it trusts.
    pub fn roots(&self) -> &TlsRoots {
        &self.roots
    }
}

/// Probes `target.url` and returns the round-trip time to the final response's headers.
///
/// Sends HEAD, or GET when HEAD is answered 405 or 501 (the body is never
/// read). Follows at most 5 redirects while they stay under `target.base`
/// (same scheme, host and port, path under the base path). 2xx is success.
/// The whole probe, redirects included, is bounded by the client's timeout.
pub async fn probe(client: &ProbeClient, target: &ProbeTarget) -> Result<Duration, FailureReason> {
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(client.timeout, follow(client, target)).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(reason)) => Err(reason),
        Err(_elapsed) => Err(FailureReason::Timeout),
    }
}

/// The probe's request loop, without the time bound.
async fn follow(client: &ProbeClient, target: &ProbeTarget) -> Result<(), FailureReason> {
    let mut url = target.url.clone();
    let mut method = Method::HEAD;
    let mut redirects = 0;
    loop {
        let response = client
            .http
            .request(method.clone(), url.clone())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if method == Method::HEAD
            && matches!(
                status,
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
            )
        {
            // Some servers refuse HEAD; a GET answered with headers proves as much.
            method = Method::GET;
            continue;
        }
        if !status.is_redirection() || redirects == MAX_REDIRECTS {
            return Err(FailureReason::HttpStatus(status.as_u16()));
        }
        let next = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| url.join(v).ok())
            .ok_or(FailureReason::HttpStatus(status.as_u16()))?;
        if !within_base(&next, &target.base) {
            return Err(FailureReason::RedirectOffSite);
        }
        // Dropping the response without reading its body closes the connection.
        drop(response);
        url = next;
        redirects += 1;
    }
}

/// Whether `url` stays on the mirror whose base URL is `base`.
pub(crate) fn within_base(url: &Url, base: &Url) -> bool {
    if url.scheme() != base.scheme()
        || url.host() != base.host()
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return false;
    }
    let base_path = base.path().trim_end_matches('/');
    match url.path().strip_prefix(base_path) {
        // Under "/pub", "/pub" and "/pub/x" qualify but "/public" does not.
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Maps a request error to a reason by walking its whole source chain.
pub(super) fn classify(err: &reqwest::Error) -> FailureReason {
    if let Some(reason) = classify_chain(err) {
        return reason;
    }
    if err.is_timeout() {
        FailureReason::Timeout
    } else if err.is_connect() {
        FailureReason::Connect
    } else {
        FailureReason::Other
    }
}

/// The reason an error's causes tell, if they tell one.
fn classify_chain(err: &(dyn StdError + 'static)) -> Option<FailureReason> {
    // Before anything else: a connect that failed for lack of descriptors
    // is no more the mirror's failure when it is also a connect error.
    if crate::fds::out_of_descriptors(err) {
        return Some(FailureReason::OutOfDescriptors);
    }
    let mut found = None;
    for cause in chain(err) {
        if cause.is::<DnsFailure>() {
            return Some(FailureReason::Dns);
        }
        if cause.is::<rustls::Error>() {
            return Some(FailureReason::Tls);
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some(FailureReason::ConnectRefused),
                io::ErrorKind::TimedOut => found = found.or(Some(FailureReason::Timeout)),
                _ => {}
            }
        }
    }
    found
}

/// The error and its causes. Unlike `Error::source`, it looks inside an
/// `io::Error` (whose `source` skips the error it wraps), which is where
/// TLS and resolver errors travel.
fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| cause_of(e))
}

fn cause_of<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
        Some(inner) => Some(inner),
        None => e.source(),
    }
}

/// Marks a name-resolution failure so [`classify`] can recognise it.
#[derive(Debug)]
struct DnsFailure(Box<dyn StdError + Send + Sync>);

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DNS resolution failed: {}", self.0)
    }
}

impl StdError for DnsFailure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.0.as_ref())
    }
}

/// Resolves with the custom resolver if any, else the system's, and tags
/// every failure (an empty answer included) as a [`DnsFailure`].
struct TaggingResolver {
    custom: Option<Arc<dyn Resolve>>,
}

impl Resolve for TaggingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let custom = self.custom.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match custom {
                Some(resolver) => resolver.resolve(name).await.map_err(DnsFailure)?.collect(),
                // Port 0: reqwest puts the URL's port in.
                None => tokio::net::lookup_host((name.as_str(), 0))
                    .await
                    .map_err(|e| DnsFailure(Box::new(e)))?
                    .collect(),
            };
            if addrs.is_empty() {
                return Err(DnsFailure("no address".into()).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn labels_are_bounded_and_display_has_detail() {
        assert_eq!(FailureReason::HttpStatus(503).as_str(), "http_status");
        assert_eq!(
            FailureReason::HttpStatus(503).to_string(),
            "HTTP status 503"
        );
        assert_eq!(FailureReason::ConnectRefused.as_str(), "connect_refused");
        assert_eq!(FailureReason::RedirectOffSite.as_str(), "redirect_off_site");
        assert_eq!(FailureReason::Timeout.as_str(), "timeout");
        assert_eq!(FailureReason::Dns.as_str(), "dns");
        assert_eq!(FailureReason::Tls.as_str(), "tls");
        assert_eq!(FailureReason::Connect.as_str(), "connect");
        assert_eq!(FailureReason::Other.as_str(), "other");
    }

    #[test]
    fn within_base_needs_same_origin_and_path_under_base() {
        let base = u("https://m.example/pub/");
        assert!(within_base(&u("https://m.example/pub/x/y"), &base));
        assert!(within_base(&u("https://m.example:443/pub/"), &base));
        assert!(within_base(&u("https://m.example/pub"), &base));
        assert!(!within_base(&u("https://m.example/public"), &base));
        assert!(!within_base(&u("https://m.example/other"), &base));
        assert!(!within_base(&u("http://m.example/pub/x"), &base));
        assert!(!within_base(&u("https://m.example:8443/pub/x"), &base));
        assert!(!within_base(&u("https://n.example/pub/x"), &base));
    }

    #[test]
    fn root_base_admits_every_path_on_the_host() {
        let base = u("http://127.0.0.1:8080/");
        assert!(within_base(&u("http://127.0.0.1:8080/a/b"), &base));
        assert!(!within_base(&u("http://127.0.0.1:8081/a/b"), &base));
    }

    #[test]
    fn lack_of_descriptors_is_local_and_found_before_anything_else() {
        let emfile = io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error());
        // As hyper-util wraps a failed connect: an io::Error inside another.
        let connect = io::Error::other(emfile);
        assert_eq!(
            classify_chain(&connect),
            Some(FailureReason::OutOfDescriptors)
        );
        let enfile = io::Error::from_raw_os_error(rustix::io::Errno::NFILE.raw_os_error());
        assert_eq!(
            classify_chain(&enfile),
            Some(FailureReason::OutOfDescriptors)
        );
        assert!(FailureReason::OutOfDescriptors.is_local());
        assert_eq!(
            FailureReason::OutOfDescriptors.as_str(),
            "out_of_descriptors"
        );
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            classify_chain(&refused),
            Some(FailureReason::ConnectRefused)
        );
        assert!(!FailureReason::ConnectRefused.is_local());
    }

    #[test]
    fn chain_looks_inside_io_errors() {
        let inner = DnsFailure("nope".into());
        let io = io::Error::other(inner);
        assert!(chain(&io).any(|e| e.is::<DnsFailure>()));
    }
}
