//! Answers other than a redirect, from the same ranking: the mirror list page
//! (`?mirrorlist`), the status page (`/?mirrorstats`), Metalink (`?meta4`,
//! `.meta4`, `Accept: application/metalink4+xml`), JSON (`?json`,
//! `Accept: application/json`) and apt's mirror list (`?aptmirrors`).
//!
//! They give the answer a download gets: the same on-demand checks first
//! (bounded as for a download), then the same ranking, of every eligible
//! mirror up to the page asked for (`?limit=N&offset=M`, at most
//! [`DEFAULT_LIMIT`] by default). Ranking and rendering run on blocking
//! threads, at most [`ListBudget`]'s count at once, so that lists of
//! thousands of mirrors never hold the threads that answer redirects.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use tokio::sync::Semaphore;

use super::path::CleanPath;
use crate::content::Checker;
use crate::explain::{self, Options, Report};
use crate::formats::{self, Listing, Page, Wanted};
use crate::metrics::{Metrics, Outcome};
use crate::pages;
use crate::select::Scheme;
use crate::state::Snapshot;

use super::Resp;

/// Mirrors of each kind (ranked, left out) a list shows without `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` a client may ask for.
pub const MAX_LIMIT: usize = 1000;

/// How many list answers are ranked and rendered at once: half the CPUs,
/// at least one. The others wait for a turn without holding a thread.
#[derive(Clone)]
pub(crate) struct ListBudget(Arc<Semaphore>);

impl ListBudget {
    pub(crate) fn new() -> ListBudget {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        ListBudget(Arc::new(Semaphore::new(cpus.div_ceil(2).max(1))))
    }
}

/// The part of the ranking a list shows, from `limit=N` and `offset=M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paging {
    pub offset: usize,
    pub limit: usize,
}

impl Paging {
    /// From the query string; a value that is not a number in range is an
    /// error naming the parameter.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Paging, String> {
        let mut p = Paging {
            offset: 0,
            limit: DEFAULT_LIMIT,
        };
        for pair in query.unwrap_or("").split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            match key {
                "limit" => {
                    p.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            format!("limit: {value:?} is not a whole number from 1 to {MAX_LIMIT}")
                        })?
                }
                "offset" => {
                    p.offset = value
                        .parse()
                        .map_err(|_| format!("offset: {value:?} is not a whole number"))?
                }
                _ => {}
            }
        }
        Ok(p)
    }

    /// How many mirrors the ranking must order for this page.
    fn end(&self) -> usize {
        self.offset.saturating_add(self.limit)
    }

    /// `report` cut to this page: the ranked mirrors of ranks
    /// `offset + 1 ..= offset + limit`, and as many of those left out,
    /// after the first `offset`. Eligible mirrors beyond the page are on a
    /// later page, not left out.
    fn cut(&self, mut report: Report) -> (Report, Page) {
        let mut ranked = Vec::new();
        let mut left_out = Vec::new();
        let (mut mirrors_total, mut left_out_total) = (0, 0);
        for m in report.mirrors {
            if m.reason == crate::select::Reason::Eligible.as_str() {
                mirrors_total += 1;
                if m.rank.is_some() {
                    ranked.push(m);
                }
            } else {
                left_out_total += 1;
                left_out.push(m);
            }
        }
        // The report lists ranked mirrors first, in rank order.
        report.mirrors = ranked
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .chain(left_out.into_iter().skip(self.offset).take(self.limit))
            .collect();
        let page = Page {
            offset: self.offset,
            limit: self.limit,
            mirrors_total,
            left_out_total,
        };
        (report, page)
    }
}

/// What a list answer needs, owned, to be made on its own task.
pub(crate) struct ListRequest {
    pub wanted: Wanted,
    pub snap: Arc<Snapshot>,
    pub checker: Checker,
    pub metrics: Metrics,
    pub budget: ListBudget,
    pub ip: IpAddr,
    pub scheme: Scheme,
    pub path: CleanPath,
    pub query: Option<String>,
}

/// The answer for `wanted` (anything but a redirect or `?sha256`): after
/// the on-demand checks a download would make, ranked and rendered on a
/// blocking thread within the budget.
pub(crate) async fn answer(r: ListRequest) -> (Outcome, Resp) {
    let paging = match Paging::from_query(r.query.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            return (
                Outcome::BadRequest,
                super::download::text(StatusCode::BAD_REQUEST, &e),
            )
        }
    };
    let opts = Options {
        rank: Some(paging.end()),
        any_path: r.wanted == Wanted::AptList,
    };
    let raw = format!("/{}", r.path.encoded());
    // Every step that walks the mirrors runs on a blocking thread within
    // the budget; only the on-demand checks are awaited here, without a
    // permit, as a download awaits them.
    let budget = r.budget;
    let prepared = {
        let _permit = budget.0.clone().acquire_owned().await.ok();
        let (snap, checker, ip, scheme) = (r.snap.clone(), r.checker.clone(), r.ip, r.scheme);
        tokio::task::spawn_blocking(move || {
            explain::Prepared::new(&snap, Some(&checker), ip, &raw, scheme, opts)
        })
        .await
    };
    let mut prepared = match prepared {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            return (
                Outcome::BadRequest,
                super::download::text(StatusCode::BAD_REQUEST, &e),
            )
        }
        Err(e) => return internal(&e.to_string()),
    };
    prepared.check(&r.snap, &r.checker, &r.metrics).await;
    // The semaphore is never closed; were it, the answer is made anyway.
    let _permit = budget.0.clone().acquire_owned().await.ok();
    let (snap, wanted, path) = (r.snap, r.wanted, r.path);
    let made = tokio::task::spawn_blocking(move || {
        let (report, page) = paging.cut(prepared.report(&snap, opts));
        render(wanted, &snap, &report, page, &path)
    })
    .await;
    match made {
        Ok(answer) => answer,
        Err(e) => internal(&e.to_string()),
    }
}

/// The answer for `wanted` from a report already cut to `page`.
fn render(
    wanted: Wanted,
    snap: &Snapshot,
    report: &Report,
    page: Page,
    path: &CleanPath,
) -> (Outcome, Resp) {
    if report.outcome == "not_found" {
        return (
            Outcome::NotFound,
            super::download::text(StatusCode::NOT_FOUND, "no such file on this site"),
        );
    }
    let listing = || Listing {
        page,
        ..Listing::from_report(snap, report, path)
    };
    let (body, media) = match wanted {
        Wanted::MirrorList => match pages::mirror_list(report, snap, page) {
            Ok(html) => (html, "text/html; charset=utf-8"),
            Err(e) => return internal(&e.to_string()),
        },
        Wanted::Metalink => {
            let listing = listing();
            if listing.mirrors.is_empty() {
                // RFC 5854 wants at least one URL: say so instead.
                return (
                    Outcome::NoMirror,
                    super::download::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "no mirror can serve this file right now; try again later",
                    ),
                );
            }
            let published = snap.origin_published.unwrap_or_else(SystemTime::now);
            (
                formats::metalink(&listing, "", published),
                formats::metalink::MEDIA_TYPE,
            )
        }
        Wanted::Json => (formats::json(&listing()).to_string(), "application/json"),
        Wanted::AptList => (
            formats::apt_mirror_list(&listing()),
            formats::aptlist::MEDIA_TYPE,
        ),
        Wanted::Redirect | Wanted::Sha256 => return internal("not an alternative answer"),
    };
    (Outcome::List, page_response(body, media))
}

/// `/?mirrorstats`: every mirror's state, sortable; a table of every
/// mirror, so made like a list, on a blocking thread within the budget.
pub(crate) async fn status(
    snap: Arc<Snapshot>,
    query: Option<String>,
    budget: ListBudget,
) -> (Outcome, Resp) {
    let _permit = budget.0.clone().acquire_owned().await.ok();
    let made = tokio::task::spawn_blocking(move || {
        pages::status(&snap, pages::SortBy::from_query(query.as_deref()))
    })
    .await;
    match made {
        Ok(Ok(html)) => (
            Outcome::List,
            page_response(html, "text/html; charset=utf-8"),
        ),
        Ok(Err(e)) => internal(&e.to_string()),
        Err(e) => internal(&e.to_string()),
    }
}

fn page_response(body: String, media: &'static str) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)).into());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    // Rankings depend on the client and change with health: never shared.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(pages::CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn internal(what: &str) -> (Outcome, Resp) {
    tracing::error!(error = %what, "rendering an answer failed");
    (
        Outcome::BadRequest,
        super::download::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "this answer could not be rendered",
        ),
    )
}
