//! Proxy mode: the file itself, streamed from the best mirror, with failover.
//!
//! For clients that cannot or should not follow a redirect (`mode: proxy`,
//! or `auto` for small files and clients that ask, see [`wants_proxy`]), the
//! download handler hands the ranking's order (chosen mirror first, then the
//! alternatives) to [`Proxy::forward`]. The parts, one per file:
//!
//! - `mode.rs`: redirect or proxy, for one request.
//! - `client.rs`: the pooled upstream clients (HTTP/1.1 keep-alive, HTTPS
//!   through rustls with HTTP/2 where offered) and their error mapping;
//!   `pool.rs`: the connection pool for plain-http mirrors, `h1.rs`: the
//!   HTTP/1.1 exchange on one of its connections.
//! - `headers.rs`: what is forwarded to mirrors and back (hop-by-hop headers
//!   removed, `Via` and `X-Forwarded-For` added).
//! - `failover.rs`: the request tried on mirror after mirror until one answers
//!   well, bounded in attempts and time, so the client sees one clean response.
//! - `body.rs`: the body streamed with backpressure; `resume.rs`: taking over
//!   a body from another mirror when its mirror dies mid-body.
//! - `passive.rs`: failures of real traffic reported to the state owner.
//! - `own.rs`: mirrorgate's own listeners, never connected to.
//! - `error.rs`: the closed set of upstream failures.
//!
//! This module reads the snapshot only while [`Proxy::forward`] runs
//! synchronously; the transfer keeps the few mirrors it may use, not the snapshot.

mod body;
mod client;
mod error;
mod failover;
mod h1;
mod headers;
mod mode;
mod own;
mod passive;
mod pool;
mod resume;

use crate::tls::TlsRoots;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method};

pub use body::ProxyBody;
pub use client::ClientError;
pub use error::{StreamError, UpstreamError, KINDS as UPSTREAM_ERROR_KINDS};
#[doc(hidden)]
pub use h1::read_answer;
pub use headers::is_hop_by_hop;
pub use mode::wants_proxy;

use crate::config::ProxyConfig;
use crate::content::FileInfo;
use crate::http::Resp;
use crate::metrics::{Metrics, MirrorCounters, Outcome};
use crate::registry::{Mirror, FALLBACK_NAME};
use crate::state::{Snapshot, State};
use failover::{Hop, Job};
use passive::Passive;

/// What every proxied request shares: the connection pool, metrics, and the
/// way to passive health.
pub(crate) struct Ctx {
    client: client::Upstream,
    metrics: Metrics,
    /// The fallback's counters (`mirror="(fallback)"`), made once.
    fallback_counters: MirrorCounters,
    passive: Passive,
}

/// Proxies downloads; cheap to clone. Built once per process: the connection
/// pools (and so `proxy.connect_timeout`, `proxy.idle_connections` and
/// `proxy.idle_connection_timeout`) outlive reloads.
#[derive(Clone)]
pub struct Proxy {
    ctx: Arc<Ctx>,
}

/// The answer to a proxied request, once the failover loop is done.
pub type ProxyFuture = Pin<Box<dyn Future<Output = (Outcome, Resp)> + Send>>;

/// The parts of a client's request a proxied answer needs, owned.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    pub method: Method,
    /// The headers to send to mirrors (already filtered).
    headers: HeaderMap,
    /// The file's path, percent-encoded, without its leading slash.
    pub path: String,
    /// The file as the origin's index knows it.
    pub info: Option<FileInfo>,
}

impl ProxyRequest {
    /// Takes what mirrors may see of a client's request (see `headers.rs`).
    pub fn new(
        method: &Method,
        client_headers: &HeaderMap,
        client_ip: IpAddr,
        path_encoded: &str,
        info: Option<&FileInfo>,
    ) -> Self {
        let headers = headers::upstream_headers(client_headers, client_ip);
        ProxyRequest::with_headers(method, headers, path_encoded, info)
    }

    /// [`ProxyRequest::new`] for a head the direct HTTP/1.1 path parsed.
    pub fn from_raw(
        method: &Method,
        client_headers: &[httparse::Header<'_>],
        client_ip: IpAddr,
        path_encoded: &str,
        info: Option<&FileInfo>,
    ) -> Self {
        let headers = headers::upstream_headers_raw(client_headers, client_ip);
        ProxyRequest::with_headers(method, headers, path_encoded, info)
    }

    fn with_headers(
        method: &Method,
        headers: HeaderMap,
        path_encoded: &str,
        info: Option<&FileInfo>,
    ) -> Self {
        ProxyRequest {
            method: method.clone(),
            headers,
            path: path_encoded.to_string(),
            info: info.copied(),
        }
    }
}

impl Proxy {
    /// A proxy whose connection pools follow `settings` as read at start
    /// (`connect_timeout`, `idle_connections`, `idle_connection_timeout`);
    /// passive health reports go to `state`. `own` are mirrorgate's own
    /// listeners (public and admin): no upstream connection may reach them.
    pub fn new(
        settings: &ProxyConfig,
        roots: &TlsRoots,
        metrics: Metrics,
        state: &Arc<State>,
        own: &[std::net::SocketAddr],
    ) -> Result<Proxy, ClientError> {
        Ok(Proxy {
            ctx: Arc::new(Ctx {
                client: client::build(settings, roots, own::OwnAddrs::new(own))?,
                fallback_counters: metrics.proxy_counters(FALLBACK_NAME),
                metrics,
                passive: Passive::new(Arc::downgrade(state)),
            }),
        })
    }

    /// Proxies `req` from the mirrors of `order` (indices into
    /// `snap.mirrors`, best first; none when no mirror may serve it), then
    /// from the fallback when one is configured: the origin is the last
    /// resort of a proxied request as it is of a redirect, tried when fewer
    /// than `proxy.max_attempts` mirrors were. `start` is when the request arrived.
    pub fn forward(
        &self,
        snap: &Snapshot,
        order: &[usize],
        req: ProxyRequest,
        start: Instant,
    ) -> ProxyFuture {
        let mut hops: Vec<Hop> = order
            .iter()
            .filter_map(|&i| snap.mirrors.get(i))
            .map(|e| Hop {
                mirror: e.mirror.clone(),
                counters: e.counters.clone(),
                passive: e.passive.clone(),
                origin: false,
            })
            .collect();
        if let Some(base) = &snap.config.fallback {
            hops.push(Hop {
                mirror: Arc::new(Mirror::fallback(base)),
                counters: self.ctx.fallback_counters.clone(),
                passive: Arc::default(),
                origin: true,
            });
        }
        let job = Arc::new(Job {
            ctx: self.ctx.clone(),
            settings: snap.config.proxy.clone(),
            hops,
            path: req.path,
            method: req.method,
            headers: req.headers,
            digest: crate::http::files::digest_headers(req.info.as_ref())
                .into_iter()
                .flatten()
                .collect(),
        });
        Box::pin(failover::run(job, start))
    }
}
