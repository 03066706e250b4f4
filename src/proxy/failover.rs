//! The failover loop: one request tried on the ranked mirrors in turn, until
//! one gives an answer worth passing on, within `proxy.max_attempts` mirrors
//! and `proxy.max_total_time`; and the same walk, with a `Range` request,
//! to resume a body whose mirror died.
//!
//! A mirror is skipped when it refuses the connection, gives no response
//! headers within `proxy.first_byte_timeout`, or answers 5xx or 404. Any other
//! answer (2xx, 206, 304, 416, other 4xx) is the client's answer. Redirects
//! are followed up to `proxy.follow_redirects` times, then passed on with an
//! absolute `Location`, as long as they stay on the mirror (same scheme,
//! host, port, and a path under its base URL, as for probes); one that
//! leaves it skips the mirror, so no client is ever sent elsewhere than a
//! configured mirror and the proxy never fetches from an address a mirror
//! chose. Nothing has reached the client while this runs, so the client
//! sees one clean response.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Uri};

use super::body::ProxyBody;
use super::client::UpstreamBody;
use super::resume::ResumePlan;
use super::{headers, Ctx, UpstreamError};
use crate::config::ProxyConfig;
use crate::health::within_base;
use crate::http::{text, Resp, ResponseBody};
use crate::metrics::{FailoverPhase, MirrorCounters, Outcome};
use crate::registry::Mirror;

/// One mirror of the failover list.
pub(crate) struct Hop {
    pub mirror: Arc<Mirror>,
    pub counters: MirrorCounters,
    /// Set after a passive failure was reported (see `passive.rs`).
    pub passive: Arc<AtomicBool>,
    /// The fallback, not a mirror: it has no health to report to.
    pub origin: bool,
}

/// Everything a proxied request needs once the snapshot is let go; shared
/// with its body, which may resume on a later hop.
pub(crate) struct Job {
    pub ctx: Arc<Ctx>,
    pub settings: ProxyConfig,
    /// Best first.
    pub hops: Vec<Hop>,
    /// The file's path, percent-encoded, without its leading slash.
    pub path: String,
    pub method: Method,
    /// The headers sent to every mirror.
    pub headers: HeaderMap,
    /// `Digest` / `Repr-Digest` of the file, when its hash is known.
    pub digest: Vec<(HeaderName, HeaderValue)>,
}

impl Job {
    /// Counts a failure of `hop` and tells passive health.
    pub fn record(&self, hop: &Hop, kind: UpstreamError) {
        tracing::debug!(mirror = %hop.mirror.name, error = %kind, path = self.path, "proxied request failed");
        self.ctx.metrics.proxy_error(&hop.mirror.name, kind);
        self.ctx
            .passive
            .failure(self.settings.passive_failures, hop, kind);
    }

    /// Hops that may still be tried after the first `used` ones.
    pub fn tries_left(&self, used: usize) -> usize {
        (self.settings.max_attempts as usize)
            .min(self.hops.len())
            .saturating_sub(used)
    }
}

/// Proxies the job's request; `start` is when the request arrived.
pub(crate) async fn run(job: Arc<Job>, start: Instant) -> (Outcome, Resp) {
    let deadline = start + job.settings.max_total_time;
    let mut last = None;
    let mut all_missing = true;
    for i in 0..job.tries_left(0) {
        if Instant::now() >= deadline {
            break;
        }
        if i > 0 {
            job.ctx.metrics.proxy_failover(FailoverPhase::BeforeBody);
        }
        let hop = &job.hops[i];
        match attempt(&job, hop, &job.headers, deadline).await {
            Ok(resp) => {
                job.ctx.passive.success(hop);
                job.ctx
                    .metrics
                    .proxy_first_byte
                    .observe(start.elapsed().as_secs_f64());
                return (Outcome::Proxied, respond(&job, i, resp));
            }
            Err(kind) => {
                job.record(hop, kind);
                all_missing &= kind == UpstreamError::NotFound;
                last = Some(kind);
            }
        }
    }
    give_up(last, all_missing)
}

/// One mirror, following its redirects: its answer, or why it is skipped.
pub(crate) async fn attempt(
    job: &Job,
    hop: &Hop,
    headers: &HeaderMap,
    deadline: Instant,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    let mut url = String::with_capacity(hop.mirror.url.as_str().len() + job.path.len());
    url.push_str(hop.mirror.url.as_str());
    url.push_str(&job.path);
    let mut followed = 0;
    loop {
        let uri: Uri = url.parse().map_err(|_| UpstreamError::Other)?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(UpstreamError::Timeout);
        }
        let wait = job.settings.first_byte_timeout.min(left);
        let request = job.ctx.client.request(&job.method, uri, headers);
        let mut resp = match tokio::time::timeout(wait, request).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Err(kind)) => return Err(kind),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_server_error() {
            return Err(UpstreamError::Status(status.as_u16()));
        }
        if status == StatusCode::NOT_FOUND {
            return Err(UpstreamError::NotFound);
        }
        if is_redirect(status) {
            // Only a redirect that stays on this mirror (the probes' rule)
            // is followed or passed on: any other could point the proxy at
            // an internal address, or the client at a place that is not a
            // configured mirror. A Location that cannot be read counts too.
            if let Some(loc) = resp.headers().get(header::LOCATION) {
                let next = redirect_target(&url, loc)
                    .filter(|next| within_base(next, &hop.mirror.url))
                    .ok_or(UpstreamError::RedirectOffSite)?;
                if followed < job.settings.follow_redirects {
                    followed += 1;
                    url = next.into();
                    continue;
                }
                // Passed on: made absolute, since a relative one would be
                // read against this site rather than the mirror.
                let v = HeaderValue::from_str(next.as_str())
                    .map_err(|_| UpstreamError::RedirectOffSite)?;
                resp.headers_mut().insert(header::LOCATION, v);
            }
        }
        return Ok(resp);
    }
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect points, resolved against the URL asked; http(s) only.
fn redirect_target(current: &str, loc: &HeaderValue) -> Option<url::Url> {
    let loc = loc.to_str().ok()?;
    let next = url::Url::parse(current).ok()?.join(loc).ok()?;
    matches!(next.scheme(), "http" | "https").then_some(next)
}

/// The mirror's answer as the client's response, its body streamed.
fn respond(job: &Arc<Job>, hop: usize, resp: Response<UpstreamBody>) -> Resp {
    let (mut parts, incoming) = resp.into_parts();
    headers::clean_response(&mut parts.headers);
    // The client's connection is HTTP/1.1 whatever the mirror spoke.
    parts.version = http::Version::HTTP_11;
    parts.extensions = http::Extensions::new();
    if matches!(parts.status, StatusCode::OK | StatusCode::PARTIAL_CONTENT) {
        for (name, value) in &job.digest {
            if !parts.headers.contains_key(name) {
                parts.headers.insert(name.clone(), value.clone());
            }
        }
    }
    let plan = ResumePlan::new(&job.method, parts.status, &parts.headers);
    let body = ProxyBody::new(job.clone(), hop, incoming, plan);
    Response::from_parts(parts, ResponseBody::Proxied(Box::new(body)))
}

/// Every mirror tried failed: 404 when they all lack the file, else 502.
fn give_up(last: Option<UpstreamError>, all_missing: bool) -> (Outcome, Resp) {
    match last {
        Some(UpstreamError::NotFound) if all_missing => (
            Outcome::NotFound,
            text(StatusCode::NOT_FOUND, "no mirror has this file"),
        ),
        Some(kind) => {
            let mut r = text(
                StatusCode::BAD_GATEWAY,
                &format!("no mirror could deliver this file right now (last error: {kind}); try again later"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
            (Outcome::ProxyError, r)
        }
        None => (
            Outcome::ProxyError,
            text(
                StatusCode::GATEWAY_TIMEOUT,
                "no mirror answered in time; try again later",
            ),
        ),
    }
}
