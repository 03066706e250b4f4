//! The accept loop of the public listener: a connection limit, graceful
//! shutdown, and each connection served by the direct HTTP/1.1 path
//! (`conn.rs`), which hands to hyper (HTTP/1.1 with keep-alive, the same
//! timeouts) whatever it does not answer itself.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioTimer;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::accept::Acceptor;
use super::conn::{self, ConnSettings, HEAD_LIMIT};
use super::head::{bad_host, BAD_HOST};
use super::stop::Stop;
use super::{text, PublicHandler, Resp};

/// Limits of the accept loop and its connections (`limits.*`).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// For the first request head of a connection.
    pub header_timeout: Duration,
    /// For every later head, from the end of the answer before it.
    pub idle_timeout: Duration,
    /// Longest a write to the client may make no progress.
    pub send_timeout: Duration,
    pub shutdown_grace: Duration,
    pub max_connections: usize,
}

impl From<&crate::config::LimitsConfig> for ServeOptions {
    fn from(l: &crate::config::LimitsConfig) -> Self {
        ServeOptions {
            header_timeout: l.header_timeout,
            idle_timeout: l.idle_timeout,
            send_timeout: l.send_timeout,
            shutdown_grace: l.shutdown_grace,
            max_connections: l.max_connections,
        }
    }
}

/// Serves until `shutdown` resolves, then stops accepting and gives open
/// connections `shutdown_grace` to finish their requests.
pub async fn serve(
    listener: TcpListener,
    handler: PublicHandler,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    // Tells connections of the direct path to stop; hyper's are told by `graceful`.
    let stop = Stop::default();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper gets a connection at a request head, whose deadline
        // `conn.rs` keeps itself (hyper's timer would restart it); every
        // later head on it is a kept-alive connection's, due within
        // `idle_timeout` of the answer before it, as on the direct path.
        .header_read_timeout(opts.idle_timeout)
        .keep_alive(true)
        // `max_buf_size` alone is no head limit: hyper checks it only while a
        // head is incomplete, and a read may fill all the spare room of its
        // buffer, which grows by doubling past that size. So a long head that
        // arrives at once parses whole and is served. `max_header_size` is
        // checked against every head parsed, however it arrived.
        .max_buf_size(HEAD_LIMIT)
        .max_header_size(HEAD_LIMIT);
    let settings = Arc::new(ConnSettings {
        header_timeout: opts.header_timeout,
        idle_timeout: opts.idle_timeout,
        send_timeout: opts.send_timeout,
        hyper: builder,
    });
    tokio::pin!(shutdown);
    let mut acceptor = Acceptor::new(listener, opts.max_connections, "public");
    while let Some((permit, stream, peer)) = acceptor.next(&mut shutdown).await {
        let _ = stream.set_nodelay(true);
        let conn = conn::serve_connection(
            stream,
            peer,
            handler.clone(),
            settings.clone(),
            stop.subscribe(),
            // Held by the connection until it ends, whichever path serves it:
            // graceful shutdown waits for every one.
            graceful.watcher(),
        );
        tokio::spawn(async move {
            conn.await;
            drop(permit);
        });
    }
    drop(acceptor);
    stop.stop();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!(grace = ?opts.shutdown_grace, "connections still open after the grace period; closing them");
        }
    }
}

/// The service hyper runs for a connection from `peer`. `started` is
/// called as each request head is parsed (see `conn::hand_over`).
pub(super) fn service(
    handler: PublicHandler,
    peer: SocketAddr,
    started: impl Fn() + Send,
) -> impl Service<Request<Incoming>, Response = Resp, Error = Infallible, Future: Send> + Send {
    service_fn(move |req: Request<Incoming>| {
        started();
        let http11 = req.version() == http::Version::HTTP_11;
        // RFC 9112, section 3.2: a 400 to an HTTP/1.1 request without a
        // `Host`, and to any request with more than one. The direct path
        // leaves such requests to this one, so both answer alike.
        let answer = (!bad_host(http11, req.headers().get_all(HOST).iter().count()))
            .then(|| handler.handle(peer, &req));
        async move {
            Ok::<_, Infallible>(match answer {
                Some(answer) => answer.await,
                None => text(StatusCode::BAD_REQUEST, BAD_HOST),
            })
        }
    })
}
