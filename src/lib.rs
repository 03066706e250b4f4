//! mirrorgate: a geo-aware mirror redirector and load balancer.
//!
//! Every download request reaches mirrorgate first; it answers with a redirect
//! to the best mirror for that client: near it, healthy, and allowed to serve it.
//!
//! # The request path
//!
//! ```text
//! accept ─► client_ip ─► geo lookup ─► content lookup ─► select ─► respond ─► metrics
//! (http::   (http::      (geo::GeoDb)  (http::files:     (select:  (http::download:
//!  server,   client_ip)                 index, freshness) pure)     302 + Link + Digest,
//!  conn)                                                            proxy::, or
//!                                                                   http::answers)
//! ```
//!
//! Each connection is read first by the direct HTTP/1.1 path (`http::conn`):
//! a plain `GET` or `HEAD` is parsed in place, the handler reads the
//! borrowed head through [`http::head::RequestHead`], a redirect is
//! written from one prebuilt header block and a proxied body is streamed
//! frame by frame. Anything else (a body, another method or version, a
//! malformed head) hands the connection to hyper with the bytes already
//! read; both give the same bytes for the same answer.
//!
//! The request path reads one immutable [`state::Snapshot`] (config, GeoIP,
//! mirrors with their health, the origin's index) through a single
//! `ArcSwap`: it takes no lock, and cannot see half of an update. Its only
//! I/O besides the answer is bounded: on-demand checks of a just-published
//! file, and the upstream of a proxied request. The snapshot carries a
//! [`rankcache::RankCache`]: the ranking of each client place is computed
//! once, and later requests from there only draw in its spread band and
//! apply their file's verdicts; it lives as long as the mirrors' state that
//! ranking reads.
//!
//! # Beside it
//!
//! - [`health`]: probes every mirror on a jittered interval; rise/fall
//!   thresholds; reads each mirror's trace file (its last sync).
//! - [`content`]: the origin's index (tree walk, hashing, manifest), on-demand
//!   checks of one file on one mirror, scans; [`origin`] keeps it fresh.
//! - [`state`]: the one owner task that applies probe reports and reloads and
//!   publishes the next snapshot.
//! - [`registry`]: the mirrors from the config, located by GeoIP when the
//!   config leaves their location out; and the foundation of the operators'
//!   registry (its durable store, tokens and request validation), which
//!   nothing on the request path reads yet.
//! - [`proxy`]: for requests that are proxied rather than redirected, the
//!   file streamed from the ranked mirrors with failover and passive health;
//!   plain-http mirrors through an HTTP/1.1 client and pool of its own, driven
//!   by the request's task (no task or channel per upstream connection),
//!   HTTPS mirrors through hyper-util's client (HTTP/2 where offered).
//! - [`formats`] and [`pages`]: Metalink, JSON, apt mirror lists and the HTML
//!   pages, all rendered from the same ranking as [`explain`].
//! - [`tls`]: the extra certificate authorities (`tls_roots`) every
//!   upstream client trusts.
//! - [`admin`]: `/metrics`, `/livez`, `/readyz` and the `/api/v1/` mirror API,
//!   on a listener of its own, with limits of its own.
//! - [`app`]: wiring, reload (SIGHUP), graceful shutdown (SIGTERM/SIGINT).
//! - [`fds`]: the open-file limit, raised at start, and the share of it
//!   client connections may take, so that probes never run out first.
//! - [`notify`]: systemd's sd_notify protocol (readiness, reloads, stop,
//!   status, watchdog) when `NOTIFY_SOCKET` is set.
//! - [`cmd`]: the subcommands behind the thin `main`.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cmd;
pub mod config;
pub mod content;
pub mod explain;
pub mod fds;
pub mod formats;
pub mod geo;
pub mod health;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod origin;
pub mod pages;
pub mod proxy;
pub mod rankcache;
pub mod registry;
pub mod select;
pub mod state;
pub mod tls;
