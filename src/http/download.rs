//! The download handler: one request in, one redirect (or a one-line error) out.
//!
//! It reads one snapshot, does no I/O and takes no lock. Its steps, in order:
//! method -> path -> client address -> GeoIP -> selection -> response -> metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::client_ip::{client_addr, TrustedProxies};
use super::path::CleanPath;
use crate::metrics::{Metrics, Outcome};
use crate::select::{self, Client, Scheme};
use crate::state::{Snapshot, State};

/// Answers public requests from the current snapshot.
#[derive(Clone)]
pub struct PublicHandler {
    state: Arc<State>,
    metrics: Metrics,
    /// The scheme of this listener, when no trusted proxy says otherwise.
    scheme: Scheme,
}

impl PublicHandler {
    pub fn new(state: Arc<State>, metrics: Metrics, scheme: Scheme) -> Self {
        PublicHandler {
            state,
            metrics,
            scheme,
        }
    }

    /// Handles one request from `peer`.
    pub fn handle<B>(&self, peer: SocketAddr, req: &Request<B>) -> Response<Full<Bytes>> {
        let start = Instant::now();
        let snap = self.state.load();
        let (outcome, resp) = self.answer(&snap, peer, req);
        self.metrics.request(outcome);
        self.metrics
            .request_duration
            .observe(start.elapsed().as_secs_f64());
        // The access log: off unless `RUST_LOG=mirrorgate::access=debug`; then
        // one line per request, written by the tracing subscriber, not here.
        if tracing::enabled!(target: "mirrorgate::access", tracing::Level::DEBUG) {
            let header = |name| {
                resp.headers()
                    .get(name)
                    .and_then(|v: &HeaderValue| v.to_str().ok())
            };
            tracing::debug!(
                target: "mirrorgate::access",
                %peer,
                forwarded_for = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()),
                method = %req.method(),
                path = req.uri().path(),
                status = resp.status().as_u16(),
                outcome = outcome.as_str(),
                location = header(header::LOCATION),
            );
        }
        resp
    }

    fn answer<B>(
        &self,
        snap: &Snapshot,
        peer: SocketAddr,
        req: &Request<B>,
    ) -> (Outcome, Response<Full<Bytes>>) {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served here",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return (Outcome::MethodNotAllowed, resp);
        }
        let cfg = &snap.config;
        let path = match CleanPath::parse(req.uri().path(), cfg.limits.max_path_bytes) {
            Ok(p) => p,
            Err(e) => {
                return (
                    Outcome::BadRequest,
                    text(StatusCode::BAD_REQUEST, &e.to_string()),
                )
            }
        };
        let addr = client_addr(
            peer.ip(),
            req.headers(),
            &TrustedProxies::new(&cfg.trusted_proxies),
            cfg.client_ip_header,
            self.scheme,
        );
        let (location, lookup) = snap.geo.lookup(addr.ip);
        self.metrics.geoip(lookup);
        let client = Client {
            location,
            scheme: addr.scheme,
        };
        let ranking = select::select(&snap.mirrors, &client, &cfg.selection, &mut rand::rng());
        match ranking {
            Some(r) => (Outcome::Redirect, redirect_to_mirror(snap, &r.order, &path)),
            None => match &cfg.fallback {
                Some(base) => {
                    let target = format!("{}{}", base.as_str(), path.encoded());
                    (Outcome::Fallback, redirect(cfg.redirect_status, target))
                }
                None => {
                    let mut resp = text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no mirror can serve this file right now; try again later",
                    );
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
                    (Outcome::NoMirror, resp)
                }
            },
        }
    }
}

fn redirect_to_mirror(snap: &Snapshot, order: &[usize], path: &CleanPath) -> Response<Full<Bytes>> {
    let chosen = &snap.mirrors[order[0]];
    chosen.counters.redirects.inc();
    let target = mirror_url(&chosen.mirror.url, path);
    let mut resp = redirect(snap.config.redirect_status, target);
    // RFC 6249: one header line per alternative, because some clients (aria2c)
    // read only the first link of a comma-joined header.
    for (pri, &i) in order[1..].iter().enumerate() {
        let e = &snap.mirrors[i];
        // Plain pushes, not `format!`: this runs up to `link_mirrors` times per request.
        let mut link =
            String::with_capacity(e.mirror.url.as_str().len() + path.encoded().len() + 40);
        link.push('<');
        link.push_str(e.mirror.url.as_str());
        link.push_str(path.encoded());
        link.push_str(">; rel=duplicate; pri=");
        push_number(&mut link, pri + 1);
        link.push_str(&e.link_geo);
        if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(link)) {
            resp.headers_mut().append(header::LINK, v);
        }
    }
    resp
}

fn push_number(s: &mut String, n: usize) {
    if n < 10 {
        s.push(char::from(b'0' + n as u8));
    } else {
        s.push_str(&n.to_string());
    }
}

/// The mirror's base URL (ending in `/`) and the encoded path.
fn mirror_url(base: &url::Url, path: &CleanPath) -> String {
    let mut s = String::with_capacity(base.as_str().len() + path.encoded().len());
    s.push_str(base.as_str());
    s.push_str(path.encoded());
    s
}

fn redirect(status: StatusCode, target: String) -> Response<Full<Bytes>> {
    // No body: every client follows `Location`, and bytes on the wire are
    // most of the cost of an answer this small.
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    // Every target is built from a parsed URL and an encoded path: always a valid header.
    if let Ok(v) = HeaderValue::from_maybe_shared(Bytes::from(target)) {
        h.insert(header::LOCATION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// A one-line plain-text answer.
pub fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
