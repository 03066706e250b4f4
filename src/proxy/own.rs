//! mirrorgate's own listeners, which no upstream connection may reach.
//!
//! A mirror configured (or resolving) to the public or admin address would
//! make the public port serve whatever mirrorgate answers itself: the admin
//! API's JSON, or a loop of proxied requests. [`Guarded`] wraps the TCP
//! connector of both upstream clients: a URL whose host is an address
//! literal is refused before connecting; a host name is resolved by the
//! connector as usual and the connection dropped, before any byte is sent,
//! when it reached one of the listeners. Off-site redirects, the other way
//! to point the proxy at an internal address, are refused by the failover
//! loop (see `failover.rs`).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The addresses mirrorgate listens on.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnAddrs(Arc<[SocketAddr]>);

impl OwnAddrs {
    pub fn new(addrs: &[SocketAddr]) -> Self {
        OwnAddrs(addrs.into())
    }

    /// True when connecting to `peer` would reach one of the listeners. A
    /// listener on an unspecified address (`0.0.0.0`, `[::]`) is reached
    /// through every loopback address too; through the host's other
    /// addresses only [`OwnAddrs::reached`] can tell, once connected.
    pub fn contains(&self, peer: SocketAddr) -> bool {
        let ip = peer.ip().to_canonical();
        self.0.iter().any(|own| {
            own.port() == peer.port()
                && (own.ip().to_canonical() == ip
                    || (own.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified())))
        })
    }

    /// True when a connection from `local` to `peer` reached a listener: a
    /// connection to one of the host's own addresses has that address at
    /// both ends.
    pub fn reached(&self, local: SocketAddr, peer: SocketAddr) -> bool {
        self.contains(peer)
            || (local.ip().to_canonical() == peer.ip().to_canonical()
                && self
                    .0
                    .iter()
                    .any(|own| own.ip().is_unspecified() && own.port() == peer.port()))
    }
}

/// The error of a connection refused because it would reach mirrorgate
/// itself; the clients map it to [`super::UpstreamError::SelfAddress`].
#[derive(Debug, thiserror::Error)]
#[error("{0} is one of mirrorgate's own listeners")]
pub(crate) struct SelfConnect(pub SocketAddr);

/// True when `e` or one of its causes is a [`SelfConnect`].
pub(crate) fn is_self_connect(e: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(e), |e| e.source()).any(|e| e.is::<SelfConnect>())
}

/// The address of `uri` when its host is an IP literal.
fn literal(uri: &Uri) -> Option<SocketAddr> {
    let host = uri.host()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    Some(SocketAddr::new(ip, port))
}

/// hyper-util's connector, kept from mirrorgate's own listeners.
#[derive(Clone)]
pub(crate) struct Guarded {
    inner: HttpConnector,
    own: OwnAddrs,
}

impl Guarded {
    pub fn new(inner: HttpConnector, own: OwnAddrs) -> Self {
        Guarded { inner, own }
    }
}

impl From<HttpConnector> for Guarded {
    /// A connector that refuses nothing (no listener known).
    fn from(inner: HttpConnector) -> Self {
        Guarded::new(inner, OwnAddrs::default())
    }
}

impl Service<Uri> for Guarded {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let own = self.own.clone();
        if let Some(addr) = literal(&uri).filter(|a| own.contains(*a)) {
            return Box::pin(std::future::ready(Err(SelfConnect(addr).into())));
        }
        let connecting = self.inner.call(uri);
        Box::pin(async move {
            let io = connecting.await?;
            let tcp = io.inner();
            if let (Ok(local), Ok(peer)) = (tcp.local_addr(), tcp.peer_addr()) {
                if own.reached(local, peer) {
                    // Dropped unused: the listener sees a connection closed
                    // before any request.
                    return Err(SelfConnect(peer).into());
                }
            }
            Ok(io)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_listener_is_its_own_address_and_through_loopback_when_unspecified() {
        let own = OwnAddrs::new(&[a("127.0.0.1:8080"), a("0.0.0.0:9090")]);
        assert!(own.contains(a("127.0.0.1:8080")));
        assert!(!own.contains(a("127.0.0.2:8080")));
        assert!(!own.contains(a("127.0.0.1:8081")));
        assert!(own.contains(a("127.0.0.5:9090")));
        assert!(own.contains(a("[::1]:9090")));
        assert!(own.contains(a("[::ffff:127.0.0.1]:8080")));
        assert!(!own.contains(a("192.0.2.1:9090")));
        // Connected to one of the host's own addresses.
        assert!(own.reached(a("192.0.2.1:50000"), a("192.0.2.1:9090")));
        assert!(!own.reached(a("192.0.2.1:50000"), a("192.0.2.1:8080")));
        assert!(!own.reached(a("192.0.2.1:50000"), a("192.0.2.7:9090")));
    }

    #[test]
    fn literals_are_read_with_their_default_port() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(literal(&u("http://127.0.0.1/x")), Some(a("127.0.0.1:80")));
        assert_eq!(literal(&u("https://[::1]/x")), Some(a("[::1]:443")));
        assert_eq!(literal(&u("http://[::1]:81/x")), Some(a("[::1]:81")));
        assert_eq!(literal(&u("http://localhost:81/x")), None);
    }

    #[tokio::test]
    async fn a_literal_listener_address_is_refused_before_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Guarded::new(HttpConnector::new(), OwnAddrs::new(&[addr]));
        let err = c
            .call(format!("http://{addr}/").parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(is_self_connect(err.as_ref()));
        // Nothing reached the listener.
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(50), listener.accept()).await;
        assert!(accepted.is_err());
    }

    #[tokio::test]
    async fn a_name_reaching_a_listener_is_dropped_once_connected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Guarded::new(HttpConnector::new(), OwnAddrs::new(&[addr]));
        let uri = format!("http://localhost:{}/", addr.port())
            .parse()
            .unwrap();
        match c.call(uri).await {
            Err(e) => assert!(is_self_connect(e.as_ref()), "{e}"),
            // "localhost" resolved to ::1 only, where nothing listens.
            Ok(_) => panic!("connected to the listener"),
        }
    }
}
