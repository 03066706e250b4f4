//! The download handler: one request in, one redirect (or a proxied body, or
//! a one-line error) out.
//!
//! Its steps, in order: method -> path -> client address -> GeoIP -> what the
//! origin says of the path -> redirect or proxy -> selection -> response ->
//! metrics. It reads one snapshot and takes no lock; the only I/O it may wait
//! for is on-demand checks of a just-published file, bounded by
//! `origin.on_demand.wait`, and, for a proxied request, the mirrors (see
//! [`crate::proxy`], which does all of that work).

use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::answers;
use super::body::ResponseBody;
use super::client_ip::{client_addr, TrustedProxies};
use super::files::{self, Target};
use super::path::CleanPath;
use crate::config::{Config, SelectionConfig, MAX_LINK_MIRRORS};
use crate::content::{Checker, FileInfo};
use crate::formats::{self, Wanted};
use crate::metrics::{Metrics, Outcome};
use crate::proxy::{self, Proxy, ProxyFuture, ProxyRequest};
use crate::select::{Client, Reason, Scheme};
use crate::state::{Snapshot, State};

/// A response of the public listener.
pub type Resp = Response<ResponseBody>;

/// Answers public requests from the current snapshot.
#[derive(Clone)]
pub struct PublicHandler {
    state: Arc<State>,
    metrics: Metrics,
    checker: Checker,
    proxy: Proxy,
    /// The scheme of this listener, when no trusted proxy says otherwise.
    scheme: Scheme,
}

/// The answer to one request: ready at once, or after on-demand checks.
pub struct HandleFuture(Inner);

enum Inner {
    Ready(Option<Resp>),
    Later(Pin<Box<dyn Future<Output = Resp> + Send>>),
}

impl Future for HandleFuture {
    type Output = Resp;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Resp> {
        match &mut self.0 {
            // Polled once by hyper; a second poll would be a bug, answered with a 500.
            Inner::Ready(r) => Poll::Ready(
                r.take()
                    .unwrap_or_else(|| text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
            ),
            Inner::Later(f) => f.as_mut().poll(cx),
        }
    }
}

/// A request that waits for on-demand checks before it is answered.
struct Pending {
    snap: Arc<Snapshot>,
    client: Client,
    path: CleanPath,
    info: FileInfo,
    reasons: Vec<Reason>,
    check: Vec<usize>,
    /// Set when the answer is to be proxied.
    proxy: Option<ProxyRequest>,
    start: Instant,
}

/// An answer that needs waiting for.
enum Later {
    Checks(Box<Pending>),
    Proxy(ProxyFuture),
}

/// What the access log says of a request; taken only when that log is on.
struct Access {
    peer: SocketAddr,
    forwarded_for: Option<String>,
    method: Method,
    path: String,
}

impl PublicHandler {
    pub fn new(
        state: Arc<State>,
        metrics: Metrics,
        checker: Checker,
        proxy: Proxy,
        scheme: Scheme,
    ) -> Self {
        PublicHandler {
            state,
            metrics,
            checker,
            proxy,
            scheme,
        }
    }

    /// Handles one request from `peer`.
    pub fn handle<B>(&self, peer: SocketAddr, req: &Request<B>) -> HandleFuture {
        let start = Instant::now();
        // The access log: off unless `RUST_LOG=mirrorgate::access=debug`; then
        // one line per request, written by the tracing subscriber, not here.
        let access =
            tracing::enabled!(target: "mirrorgate::access", tracing::Level::DEBUG).then(|| {
                Access {
                    peer,
                    forwarded_for: req
                        .headers()
                        .get("x-forwarded-for")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    method: req.method().clone(),
                    path: req.uri().path().to_string(),
                }
            });
        let snap = self.state.load();
        match self.answer(&snap, peer, req, start) {
            Ok((outcome, resp)) => HandleFuture(Inner::Ready(Some(
                self.finish(start, outcome, resp, access),
            ))),
            Err(Later::Checks(pending)) => {
                let this = self.clone();
                HandleFuture(Inner::Later(Box::pin(async move {
                    let (outcome, resp) = this.after_checks(pending).await;
                    this.finish(start, outcome, resp, access)
                })))
            }
            Err(Later::Proxy(proxied)) => {
                let this = self.clone();
                HandleFuture(Inner::Later(Box::pin(async move {
                    let (outcome, resp) = proxied.await;
                    this.finish(start, outcome, resp, access)
                })))
            }
        }
    }

    fn finish(&self, start: Instant, outcome: Outcome, resp: Resp, access: Option<Access>) -> Resp {
        self.metrics.request(outcome);
        self.metrics
            .request_duration
            .observe(start.elapsed().as_secs_f64());
        if let Some(a) = access {
            tracing::debug!(
                target: "mirrorgate::access",
                peer = %a.peer,
                forwarded_for = a.forwarded_for,
                method = %a.method,
                path = a.path,
                status = resp.status().as_u16(),
                outcome = outcome.as_str(),
                location = resp.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()),
            );
        }
        resp
    }

    /// Answers at once, or returns what must be checked or fetched first.
    fn answer<B>(
        &self,
        snap: &Arc<Snapshot>,
        peer: SocketAddr,
        req: &Request<B>,
        start: Instant,
    ) -> Result<(Outcome, Resp), Later> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served here",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok((Outcome::MethodNotAllowed, resp));
        }
        let cfg = &snap.config;
        let query = req.uri().query();
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let (wanted, raw_path) = formats::wanted(req.uri().path(), query, accept);
        let path = match CleanPath::parse(raw_path, cfg.limits.max_path_bytes) {
            Ok(p) => p,
            Err(e) => {
                return Ok((
                    Outcome::BadRequest,
                    text(StatusCode::BAD_REQUEST, &e.to_string()),
                ))
            }
        };
        if path.is_root() && query.is_some_and(|q| q.split('&').any(|k| k == "mirrorstats")) {
            return Ok(answers::status(snap, query));
        }
        let target = files::classify(snap, &path);
        if wanted == Wanted::Sha256 {
            return Ok(sha256_answer(&target, &path));
        }
        let addr = client_addr(
            peer.ip(),
            req.headers(),
            &TrustedProxies::new(&cfg.trusted_proxies),
            cfg.client_ip_header,
            self.scheme,
        );
        if wanted != Wanted::Redirect {
            return Ok(answers::answer(
                wanted,
                snap,
                &self.checker,
                addr.ip,
                addr.scheme,
                &path,
            ));
        }
        let (location, lookup) = snap.geo.lookup(addr.ip);
        self.metrics.geoip(lookup);
        let client = Client {
            location,
            scheme: addr.scheme,
        };
        // Redirect or proxy: decided before ranking, because a proxied
        // request needs enough alternatives to fail over to.
        let proxy_req = |info: Option<&FileInfo>| {
            let size = info.map(|i| i.size);
            proxy::wants_proxy(cfg, path.as_str(), size, req.headers(), req.uri().query()).then(
                || ProxyRequest::new(req.method(), req.headers(), addr.ip, path.encoded(), info),
            )
        };
        let info = match target {
            Target::Any => {
                let proxied = proxy_req(None);
                let selection = selection_for(cfg, proxied.is_some());
                let ranking = snap.rank_cache.select_for(
                    &snap.mirrors,
                    &client,
                    &selection,
                    &mut rand::rng(),
                    |_| Reason::Eligible,
                );
                return self
                    .deliver(snap, ranking.map(|r| r.order), &path, None, proxied, start)
                    .map_err(Later::Proxy);
            }
            Target::NotFound => {
                return Ok((
                    Outcome::NotFound,
                    text(StatusCode::NOT_FOUND, "no such file on this site"),
                ))
            }
            Target::Directory => {
                return Ok((
                    Outcome::NotFound,
                    text(
                        StatusCode::NOT_FOUND,
                        "this is a directory; ask for a file in it",
                    ),
                ))
            }
            Target::Origin(info) => {
                return Ok(to_fallback(snap, &path, info.as_ref(), Outcome::Origin))
            }
            Target::File(info) => info,
        };
        let proxied = proxy_req(Some(&info));
        let selection = selection_for(cfg, proxied.is_some());
        if snap.all_fresh_for(info.mtime) {
            // Every mirror synced after this file and none lags: no verdict
            // per mirror to make, the common case for all but new files.
            let order = snap
                .rank_cache
                .select_for(&snap.mirrors, &client, &selection, &mut rand::rng(), |_| {
                    Reason::Eligible
                })
                .map(|r| r.order);
            return self
                .deliver(snap, order, &path, Some(&info), proxied, start)
                .map_err(Later::Proxy);
        }
        let now = self.checker.now();
        let reasons: Vec<Reason> = snap
            .mirrors
            .iter()
            .map(|e| files::verdict(snap, e, path.as_str(), &info, &self.checker, now))
            .collect();
        let ranking =
            snap.rank_cache
                .select_for(&snap.mirrors, &client, &selection, &mut rand::rng(), |i| {
                    reasons[i]
                });
        let parallel = cfg.origin.as_ref().map_or(0, |o| o.on_demand.parallel);
        let check = files::worth_checking(
            snap,
            &client,
            &reasons,
            ranking.as_ref().map(|r| r.chosen()),
            parallel,
        );
        if check.is_empty() {
            let order = ranking.map(|r| r.order);
            return self
                .deliver(snap, order, &path, Some(&info), proxied, start)
                .map_err(Later::Proxy);
        }
        Err(Later::Checks(Box::new(Pending {
            snap: snap.clone(),
            client,
            path,
            info,
            reasons,
            check,
            proxy: proxied,
            start,
        })))
    }

    /// Proxies from the ranked mirrors when the request is to be proxied,
    /// else redirects (or falls back: the fallback is always a redirect).
    fn deliver(
        &self,
        snap: &Snapshot,
        order: Option<Vec<usize>>,
        path: &CleanPath,
        info: Option<&FileInfo>,
        proxied: Option<ProxyRequest>,
        start: Instant,
    ) -> Result<(Outcome, Resp), ProxyFuture> {
        match (order, proxied) {
            (Some(order), Some(req)) => Err(self.proxy.forward(snap, &order, req, start)),
            (order, _) => Ok(respond(snap, order, path, info)),
        }
    }

    /// Checks the pending mirrors (bounded in time), then answers from what is known.
    async fn after_checks(&self, p: Box<Pending>) -> (Outcome, Resp) {
        let (wait, parallel) = p
            .snap
            .config
            .origin
            .as_ref()
            .map_or((std::time::Duration::ZERO, 1), |o| {
                (o.on_demand.wait, o.on_demand.parallel)
            });
        let requests = files::check_requests(&p.snap, &p.check, &p.path, &p.info);
        let results = self.checker.check_many(requests, wait, parallel).await;
        let p = *p;
        let mut reasons = p.reasons;
        for (k, presence) in results {
            if let Some(&i) = p.check.get(k) {
                self.metrics.ondemand(presence.as_str());
                reasons[i] = files::presence_reason(Some(presence));
            }
        }
        let snap = &p.snap;
        let selection = selection_for(&snap.config, p.proxy.is_some());
        let ranking = snap.rank_cache.select_for(
            &snap.mirrors,
            &p.client,
            &selection,
            &mut rand::rng(),
            |i| reasons[i],
        );
        let order = ranking.map(|r| r.order);
        match self.deliver(snap, order, &p.path, Some(&p.info), p.proxy, p.start) {
            Ok(answer) => answer,
            Err(proxied) => proxied.await,
        }
    }
}

/// The selection settings for a request: a proxied one ranks at least
/// `proxy.max_attempts` mirrors, its failover list.
fn selection_for(cfg: &Config, proxied: bool) -> Cow<'_, SelectionConfig> {
    let alternatives = (cfg.proxy.max_attempts as usize).saturating_sub(1);
    if proxied && cfg.selection.link_mirrors < alternatives {
        Cow::Owned(SelectionConfig {
            link_mirrors: alternatives,
            ..cfg.selection.clone()
        })
    } else {
        Cow::Borrowed(&cfg.selection)
    }
}

/// A redirect to the ranked mirrors, or the fallback, or 503.
fn respond(
    snap: &Snapshot,
    order: Option<Vec<usize>>,
    path: &CleanPath,
    info: Option<&FileInfo>,
) -> (Outcome, Resp) {
    match order {
        Some(order) => {
            let mut resp = redirect_to_mirror(snap, &order, path);
            add_digest(&mut resp, info);
            (Outcome::Redirect, resp)
        }
        None => to_fallback(snap, path, info, Outcome::Fallback),
    }
}

/// A redirect to the fallback, or 503 without one.
fn to_fallback(
    snap: &Snapshot,
    path: &CleanPath,
    info: Option<&FileInfo>,
    outcome: Outcome,
) -> (Outcome, Resp) {
    match &snap.config.fallback {
        Some(base) => {
            let target = format!("{}{}", base.as_str(), path.encoded());
            let mut resp = redirect(snap.config.redirect_status, Bytes::from(target));
            add_digest(&mut resp, info);
            (outcome, resp)
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
    }
}

fn add_digest(resp: &mut Resp, info: Option<&FileInfo>) {
    for (name, value) in files::digest_headers(info).into_iter().flatten() {
        resp.headers_mut().insert(name, value);
    }
}

/// `GET /path?sha256`: the hash in the format `sha256sum -c` reads.
fn sha256_answer(target: &Target, path: &CleanPath) -> (Outcome, Resp) {
    let info = match target {
        Target::File(info) | Target::Origin(Some(info)) => info,
        Target::Any => {
            return (
                Outcome::NotFound,
                text(
                    StatusCode::NOT_FOUND,
                    "no origin index is configured: hashes are not known",
                ),
            )
        }
        _ => {
            return (
                Outcome::NotFound,
                text(StatusCode::NOT_FOUND, "no such file on this site"),
            )
        }
    };
    match &info.sha256 {
        Some(hash) => {
            let mut resp = Response::new(ResponseBody::Full(Full::new(Bytes::from(
                files::sha256_line(path, hash),
            ))));
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            (Outcome::Hash, resp)
        }
        None => {
            let mut resp = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the hash of this file is not computed yet; try again later",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            (Outcome::NoMirror, resp)
        }
    }
}

fn redirect_to_mirror(snap: &Snapshot, order: &[usize], path: &CleanPath) -> Resp {
    let chosen = &snap.mirrors[order[0]];
    chosen.counters.redirects.inc();
    let encoded = path.encoded().as_bytes();
    // The alternatives named: a redirect's order holds at most link_mirrors.
    let alternatives = &order[1..order.len().min(1 + MAX_LINK_MIRRORS)];
    // Every header value is written into one buffer, then handed out as
    // slices of it: one allocation per redirect, not one per header.
    let url_len = |i: usize| snap.mirrors[i].mirror.url.as_str().len() + encoded.len();
    let capacity = url_len(order[0])
        + alternatives
            .iter()
            .map(|&i| url_len(i) + snap.mirrors[i].link_geo.len() + 32)
            .sum::<usize>()
        + encoded.len()
        + 64;
    let mut buf = Vec::with_capacity(capacity);
    // ends[k]: where value k stops (0: Location, then the links, then describedby).
    let mut ends = [0usize; MAX_LINK_MIRRORS + 2];
    buf.extend_from_slice(chosen.mirror.url.as_str().as_bytes());
    buf.extend_from_slice(encoded);
    ends[0] = buf.len();
    // RFC 6249: one header line per alternative, because some clients (aria2c)
    // read only the first link of a comma-joined header.
    for (k, &i) in alternatives.iter().enumerate() {
        let e = &snap.mirrors[i];
        buf.push(b'<');
        buf.extend_from_slice(e.mirror.url.as_str().as_bytes());
        buf.extend_from_slice(encoded);
        buf.extend_from_slice(b">; rel=duplicate; pri=");
        push_decimal(&mut buf, k + 1);
        buf.extend_from_slice(e.link_geo.as_bytes());
        ends[k + 1] = buf.len();
    }
    // RFC 6249: the Metalink that lists every mirror, for clients that can use several.
    formats::push_describedby_link(&mut buf, path.encoded());
    ends[alternatives.len() + 1] = buf.len();
    let buf = Bytes::from(buf);
    let mut resp = redirect(snap.config.redirect_status, buf.slice(..ends[0]));
    let headers = resp.headers_mut();
    for w in ends[..alternatives.len() + 2].windows(2) {
        // Built from parsed URLs and an encoded path: always a valid value.
        if let Ok(v) = HeaderValue::from_maybe_shared(buf.slice(w[0]..w[1])) {
            headers.append(header::LINK, v);
        }
    }
    resp
}

/// `n` in decimal, without the formatting machinery (a few per redirect).
fn push_decimal(buf: &mut Vec<u8>, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

fn redirect(status: StatusCode, target: Bytes) -> Resp {
    // No body: every client follows `Location`, and bytes on the wire are
    // most of the cost of an answer this small.
    let mut resp = Response::new(ResponseBody::Full(Full::new(Bytes::new())));
    *resp.status_mut() = status;
    // Sized once for Location, Cache-Control, digests and the Link lines.
    *resp.headers_mut() = HeaderMap::with_capacity(8);
    let h = resp.headers_mut();
    // Every target is built from a parsed URL and an encoded path: always a valid header.
    if let Ok(v) = HeaderValue::from_maybe_shared(target) {
        h.insert(header::LOCATION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// A one-line plain-text answer.
pub fn text(status: StatusCode, message: &str) -> Resp {
    let mut resp = Response::new(ResponseBody::Full(Full::new(Bytes::from(format!(
        "{message}\n"
    )))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
