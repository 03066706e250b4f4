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
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::answers;
use super::body::ResponseBody;
use super::client_ip::{client_addr, TrustedProxies};
use super::files::{self, Target};
use super::head::{Headers, RequestHead};
use super::path::CleanPath;
use super::redirect::Redirect;
use crate::config::{Config, SelectionConfig};
use crate::content::{Checker, FileInfo};
use crate::formats::{self, Wanted};
use crate::metrics::{Metrics, Outcome};
use crate::proxy::{self, Proxy, ProxyFuture, ProxyRequest};
use crate::select::{Client, Reason, Scheme};
use crate::state::{Snapshot, State};

/// A response of the public listener.
pub type Resp = Response<ResponseBody>;

/// A finished answer: a redirect (kept as its values, so that the direct
/// path can write it without a header map) or any other response.
pub enum Answer {
    Redirect(Redirect),
    Response(Resp),
}

impl From<Resp> for Answer {
    fn from(r: Resp) -> Self {
        Answer::Response(r)
    }
}

impl Answer {
    pub fn status(&self) -> StatusCode {
        match self {
            Answer::Redirect(r) => r.status(),
            Answer::Response(r) => r.status(),
        }
    }

    /// True for a response whose body is streamed from a mirror.
    fn is_streamed(&self) -> bool {
        matches!(self, Answer::Response(r) if matches!(r.body(), ResponseBody::Proxied(_)))
    }

    fn location(&self) -> Option<&str> {
        match self {
            Answer::Redirect(r) => std::str::from_utf8(r.location()).ok(),
            Answer::Response(r) => r
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok()),
        }
    }

    pub fn into_response(self) -> Resp {
        match self {
            Answer::Redirect(r) => r.into_response(),
            Answer::Response(r) => r,
        }
    }
}

/// How the direct HTTP/1.1 path (`conn.rs`) gets its answer.
// Returned once per request and taken apart at once: boxing the common
// variant would cost an allocation per redirect for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Direct {
    /// Answered at once.
    Now(Answer),
    /// Answered after on-demand checks, or proxied.
    Later(Pin<Box<dyn Future<Output = Answer> + Send>>),
}

/// Answers public requests from the current snapshot.
#[derive(Clone)]
pub struct PublicHandler {
    state: Arc<State>,
    metrics: Metrics,
    checker: Checker,
    proxy: Proxy,
    /// The scheme of this listener, when no trusted proxy says otherwise.
    scheme: Scheme,
    /// Bounds how many list answers are made at once.
    lists: answers::ListBudget,
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

/// An answer that needs waiting for, or another path.
enum Later {
    Checks(Box<Pending>),
    Proxy(ProxyFuture),
    /// A list (Metalink, JSON, apt, the mirror list page): made on its own.
    List(ProxyFuture),
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
            lists: answers::ListBudget::new(),
        }
    }

    /// Handles one request from `peer`, parsed by hyper.
    pub fn handle<B>(&self, peer: SocketAddr, req: &Request<B>) -> HandleFuture {
        let start = Instant::now();
        let access = access(peer, req);
        let snap = self.state.load();
        match self.answer(&snap, peer, req, start) {
            Ok((outcome, answer)) => HandleFuture(Inner::Ready(Some(
                self.finish(start, outcome, answer, access).into_response(),
            ))),
            Err(Later::Checks(pending)) => {
                let this = self.clone();
                HandleFuture(Inner::Later(Box::pin(async move {
                    let (outcome, answer) = this.after_checks(pending).await;
                    this.finish(start, outcome, answer, access).into_response()
                })))
            }
            Err(Later::Proxy(proxied) | Later::List(proxied)) => {
                let this = self.clone();
                HandleFuture(Inner::Later(Box::pin(async move {
                    let (outcome, resp) = proxied.await;
                    this.finish(start, outcome, resp.into(), access)
                        .into_response()
                })))
            }
        }
    }

    /// Handles one request from `peer` parsed by the direct HTTP/1.1 path.
    /// `start`: when the request was read.
    pub fn handle_direct(
        &self,
        peer: SocketAddr,
        req: &impl RequestHead,
        start: Instant,
    ) -> Direct {
        let snap = self.state.load();
        match self.answer(&snap, peer, req, start) {
            Ok((outcome, answer)) => {
                Direct::Now(self.finish(start, outcome, answer, access(peer, req)))
            }
            Err(Later::Checks(pending)) => {
                let this = self.clone();
                let access = access(peer, req);
                Direct::Later(Box::pin(async move {
                    let (outcome, answer) = this.after_checks(pending).await;
                    this.finish(start, outcome, answer, access)
                }))
            }
            Err(Later::Proxy(proxied) | Later::List(proxied)) => {
                let this = self.clone();
                let access = access(peer, req);
                Direct::Later(Box::pin(async move {
                    let (outcome, resp) = proxied.await;
                    this.finish(start, outcome, resp.into(), access)
                }))
            }
        }
    }

    fn finish(
        &self,
        start: Instant,
        outcome: Outcome,
        answer: Answer,
        access: Option<Access>,
    ) -> Answer {
        // A body streamed from a mirror counts its outcome when it ends
        // (`proxy_error` when cut short): see `proxy::ProxyBody`.
        if !answer.is_streamed() {
            self.metrics.request(outcome);
        }
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
                status = answer.status().as_u16(),
                outcome = outcome.as_str(),
                location = answer.location(),
            );
        }
        answer
    }

    /// Answers at once, or returns what must be checked or fetched first.
    fn answer(
        &self,
        snap: &Arc<Snapshot>,
        peer: SocketAddr,
        req: &impl RequestHead,
        start: Instant,
    ) -> Result<(Outcome, Answer), Later> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served here",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok((Outcome::MethodNotAllowed, resp.into()));
        }
        let cfg = &snap.config;
        let query = req.query();
        let accept = req.headers().text(&header::ACCEPT);
        let (wanted, raw_path) = formats::wanted(req.path(), query, accept);
        let path = match CleanPath::parse(raw_path, cfg.limits.max_path_bytes) {
            Ok(p) => p,
            Err(e) => {
                return Ok((
                    Outcome::BadRequest,
                    text(StatusCode::BAD_REQUEST, &e.to_string()).into(),
                ))
            }
        };
        if path.is_root() && query.is_some_and(|q| q.split('&').any(|k| k == "mirrorstats")) {
            return Err(Later::List(Box::pin(answers::status(
                snap.clone(),
                query.map(str::to_string),
                self.lists.clone(),
            ))));
        }
        let target = files::classify(snap, &path);
        if wanted == Wanted::Sha256 {
            let (outcome, resp) = sha256_answer(&target, &path);
            return Ok((outcome, resp.into()));
        }
        let addr = client_addr(
            peer.ip(),
            req.headers(),
            &TrustedProxies::new(&cfg.trusted_proxies),
            cfg.client_ip_header,
            self.scheme,
        );
        if wanted != Wanted::Redirect {
            return Err(Later::List(Box::pin(answers::answer(
                answers::ListRequest {
                    wanted,
                    snap: snap.clone(),
                    checker: self.checker.clone(),
                    metrics: self.metrics.clone(),
                    budget: self.lists.clone(),
                    ip: addr.ip,
                    scheme: addr.scheme,
                    path,
                    query: query.map(str::to_string),
                },
            ))));
        }
        // Redirect or proxy: decided before ranking, because a proxied
        // request needs enough alternatives to fail over to.
        let proxied = match &target {
            Target::Any => proxy_request(cfg, req, addr.ip, &path, None),
            Target::File(info) => proxy_request(cfg, req, addr.ip, &path, Some(info)),
            // Bound for the fallback by rule: proxied from it in proxy mode.
            Target::Origin(info) if cfg.fallback.is_some() => {
                proxy_request(cfg, req, addr.ip, &path, info.as_ref())
            }
            _ => None,
        };
        let (location, lookup) = snap.geo.lookup(addr.ip);
        self.metrics.geoip(lookup);
        let client = Client {
            location,
            scheme: addr.scheme,
        };
        let info = match target {
            Target::Any => {
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
                    text(StatusCode::NOT_FOUND, "no such file on this site").into(),
                ))
            }
            Target::Directory => {
                return Ok((
                    Outcome::NotFound,
                    text(
                        StatusCode::NOT_FOUND,
                        "this is a directory; ask for a file in it",
                    )
                    .into(),
                ))
            }
            Target::Origin(info) => {
                return match proxied {
                    Some(req) => Err(Later::Proxy(self.proxy.forward(snap, &[], req, start))),
                    None => Ok(to_fallback(snap, &path, info.as_ref(), Outcome::Origin)),
                }
            }
            Target::File(info) => info,
        };
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

    /// Proxies from the ranked mirrors (and then the fallback) when the
    /// request is to be proxied, else redirects; with no mirror, a proxied
    /// request is proxied from the fallback, or gets the 503 a redirect would.
    fn deliver(
        &self,
        snap: &Snapshot,
        order: Option<Vec<usize>>,
        path: &CleanPath,
        info: Option<&FileInfo>,
        proxied: Option<ProxyRequest>,
        start: Instant,
    ) -> Result<(Outcome, Answer), ProxyFuture> {
        match (order, proxied) {
            (Some(order), Some(req)) => Err(self.proxy.forward(snap, &order, req, start)),
            (None, Some(req)) if snap.config.fallback.is_some() => {
                Err(self.proxy.forward(snap, &[], req, start))
            }
            (order, _) => Ok(respond(snap, order, path, info)),
        }
    }

    /// Checks the pending mirrors (bounded in time), then answers from what is known.
    async fn after_checks(&self, p: Box<Pending>) -> (Outcome, Answer) {
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
            Err(proxied) => {
                let (outcome, resp) = proxied.await;
                (outcome, resp.into())
            }
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
) -> (Outcome, Answer) {
    match order {
        Some(order) => match Redirect::to_mirror(snap, &order, path) {
            Some(r) => (Outcome::Redirect, Answer::Redirect(r.with_digest(info))),
            None => unrepresentable(),
        },
        None => to_fallback(snap, path, info, Outcome::Fallback),
    }
}

/// A redirect to the fallback, or 503 without one.
fn to_fallback(
    snap: &Snapshot,
    path: &CleanPath,
    info: Option<&FileInfo>,
    outcome: Outcome,
) -> (Outcome, Answer) {
    match &snap.config.fallback {
        Some(base) => {
            let target = format!("{}{}", base.as_str(), path.encoded());
            match Redirect::to(snap.config.redirect_status, &target) {
                Some(r) => (outcome, Answer::Redirect(r.with_digest(info))),
                None => unrepresentable(),
            }
        }
        None => {
            let mut resp = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no mirror can serve this file right now; try again later",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            (Outcome::NoMirror, resp.into())
        }
    }
}

/// A redirect target that cannot be a header value. Parsed URLs and encoded
/// paths never make one; were one made, no mirror could be named: 503.
fn unrepresentable() -> (Outcome, Answer) {
    (
        Outcome::NoMirror,
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no mirror can be named for this path: its address is not a valid header value",
        )
        .into(),
    )
}

/// What the proxy needs of the request, when it is to be proxied.
fn proxy_request(
    cfg: &Config,
    req: &impl RequestHead,
    client: std::net::IpAddr,
    path: &CleanPath,
    info: Option<&FileInfo>,
) -> Option<ProxyRequest> {
    let size = info.map(|i| i.size);
    proxy::wants_proxy(cfg, path.as_str(), size, req.headers(), req.query())
        .then(|| req.proxy_request(client, path.encoded(), info))
}

/// What the access log says of a request; taken only when that log is on
/// (`RUST_LOG=mirrorgate::access=debug`: one line per request, written by
/// the tracing subscriber, not here).
fn access(peer: SocketAddr, req: &impl RequestHead) -> Option<Access> {
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    tracing::enabled!(target: "mirrorgate::access", tracing::Level::DEBUG).then(|| Access {
        peer,
        forwarded_for: req.headers().text(&X_FORWARDED_FOR).map(str::to_string),
        method: req.method().clone(),
        path: req.path().to_string(),
    })
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
