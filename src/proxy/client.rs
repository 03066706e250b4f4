//! The upstream HTTP client: HTTP/1.1 with keep-alive to every mirror, plain
//! `http://` mirrors through this crate's pool and HTTP/1.1 client
//! (`pool.rs`, `h1.rs`), HTTPS through hyper-util's pooled client and rustls
//! (ring, webpki roots) with HTTP/2 where the mirror offers it in ALPN; and
//! the mapping of its errors to [`UpstreamError`].
//!
//! It owns no policy: timeouts other than connect, trying another mirror and
//! following redirects are the failover loop's. The one repeat it makes is
//! the pool's: a request that a reused connection dropped unanswered.

use crate::config::ProxyConfig;
use crate::tls::TlsRoots;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, Response, Uri};
use http_body_util::Empty;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::h1::H1Body;
use super::own::{is_self_connect, Guarded, OwnAddrs};
use super::pool::Pool;
use super::{headers, UpstreamError};

/// The pooled clients; cheap to clone.
#[derive(Clone)]
pub(crate) struct Upstream {
    /// For `https://` mirrors.
    tls: Client<HttpsConnector<Guarded>, Empty<Bytes>>,
    /// For `http://` mirrors.
    plain: Pool,
}

impl Upstream {
    /// Sends a request for `uri` (absolute) with `headers` to its mirror.
    pub async fn request(
        &self,
        method: &Method,
        uri: Uri,
        headers: &HeaderMap,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        if uri.scheme() == Some(&http::uri::Scheme::HTTP) {
            // Written straight from the borrowed headers: no request built.
            return self.plain.send(method, &uri, headers).await;
        }
        match self
            .tls
            .request(headers::request(method, uri, headers))
            .await
        {
            Ok(resp) => Ok(resp.map(UpstreamBody::Tls)),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot set up TLS for proxying: {0}")]
    Tls(#[from] rustls::Error),
}

/// A client whose TCP connects give up after `proxy.connect_timeout`, and
/// whose pools keep `proxy.idle_connections` idle connections per mirror for
/// `proxy.idle_connection_timeout`, and which never connect to `own`.
pub(crate) fn build(
    settings: &ProxyConfig,
    extra: &TlsRoots,
    own: OwnAddrs,
) -> Result<Upstream, ClientError> {
    let idle_max = settings.idle_connections;
    let idle_for = settings.idle_connection_timeout;
    let mut http = HttpConnector::new();
    // https URLs are handled by the TLS layer wrapped around this connector.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    extra.add_to(&mut roots)?;
    // The provider is named, not taken from the process default, so that no
    // other crate's choice of provider can make this fail at run time.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let http = Guarded::new(http, own);
    let plain = Pool::new(http.clone(), idle_max, idle_for);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let tls = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(idle_for)
        .pool_max_idle_per_host(idle_max)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https);
    Ok(Upstream { tls, plain })
}

/// The closed reason for a failed request (before its response headers).
fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    if is_self_connect(e) {
        return UpstreamError::SelfAddress;
    }
    super::error::unless_out_of_descriptors(e, || classify_causes(e))
}

/// [`classify`] from the error's causes.
fn classify_causes(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn StdError + 'static)> = e.source();
    let mut tls = false;
    let mut dns = false;
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return UpstreamError::ConnectRefused,
                std::io::ErrorKind::TimedOut if e.is_connect() => return UpstreamError::Connect,
                _ => {}
            }
        }
        tls |= s.is::<rustls::Error>();
        // hyper-util's resolver error has no type of its own to test for.
        dns |= s.to_string().starts_with("dns error");
        source = s.source();
    }
    if tls {
        UpstreamError::Tls
    } else if dns {
        UpstreamError::Dns
    } else if e.is_connect() {
        UpstreamError::Connect
    } else {
        UpstreamError::Other
    }
}

/// A mirror's answer body, from either client.
pub(crate) enum UpstreamBody {
    /// From a plain-http mirror; its connection goes back to the pool when
    /// it has been read to the end.
    Plain(H1Body),
    /// From hyper-util's client (HTTPS), which pools by itself.
    Tls(Incoming),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamError>>> {
        match self.get_mut() {
            UpstreamBody::Plain(b) => Pin::new(b).poll_frame(cx),
            // However hyper's body broke, the connection did.
            UpstreamBody::Tls(b) => Pin::new(b).poll_frame(cx).map_err(|_| UpstreamError::Body),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Plain(b) => b.is_end_stream(),
            UpstreamBody::Tls(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Plain(b) => b.size_hint(),
            UpstreamBody::Tls(b) => b.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pools_take_their_limits_from_the_config() {
        let settings = ProxyConfig {
            idle_connections: 3,
            idle_connection_timeout: std::time::Duration::from_secs(7),
            ..ProxyConfig::default()
        };
        let up = build(&settings, &TlsRoots::default(), OwnAddrs::default()).unwrap();
        assert_eq!(up.plain.limits(), (3, std::time::Duration::from_secs(7)));
    }
}
