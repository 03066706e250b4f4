//! The admin listener's accept loop: the admin router served by hyper with
//! limits of its own (`admin.*`), as the public listener has: a connection
//! cap (later connections wait to be accepted; `http::accept`, shared with
//! the public listener, with its back-off after a failed accept), a deadline for every
//! request head (idle keep-alive included), a head size limit (431 past
//! it, before the head is parsed into a header map), the public listener's
//! `limits.send_timeout` for clients that stop reading (a large `/metrics`
//! or mirror list, or pipelined requests), and graceful shutdown bounded by
//! `limits.shutdown_grace`. Request bodies are capped by the
//! router (`DefaultBodyLimit`).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::accept::Acceptor;
use crate::http::handover::Prefixed;

/// The longest request head the admin listener reads: its requests carry a
/// token and a few short headers.
pub const HEAD_LIMIT: usize = 16 * 1024;

/// Limits of the admin listener.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub send_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl From<&Config> for ServeOptions {
    fn from(c: &Config) -> Self {
        ServeOptions {
            header_timeout: c.admin.header_timeout,
            max_connections: c.admin.max_connections,
            send_timeout: c.limits.send_timeout,
            shutdown_grace: c.limits.shutdown_grace,
        }
    }
}

/// Serves `router` until `shutdown` resolves, then stops accepting and gives
/// open connections `shutdown_grace` to finish their requests.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(true)
        // Both, as on the public listener: `max_buf_size` is checked only
        // while a head is incomplete, `max_header_size` on every head.
        .max_buf_size(HEAD_LIMIT)
        .max_header_size(HEAD_LIMIT);
    tokio::pin!(shutdown);
    let mut acceptor = Acceptor::new(listener, opts.max_connections, "admin");
    while let Some((permit, stream, peer)) = acceptor.next(&mut shutdown).await {
        let router = router.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            // The router is always ready; each request gets its own handle.
            let mut router = router.clone();
            tower_service::Service::call(&mut router, req)
        });
        let io = Prefixed::new(Bytes::new(), stream, opts.send_timeout);
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), svc));
        tokio::spawn(async move {
            // Timeouts and resets are a client's business.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(acceptor);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!(grace = ?opts.shutdown_grace, "admin connections still open after the grace period; closing them");
        }
    }
}
