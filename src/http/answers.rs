//! Answers other than a redirect, from the same ranking: the mirror list page
//! (`?mirrorlist`), the status page (`/?mirrorstats`), Metalink (`?meta4`,
//! `.meta4`, `Accept: application/metalink4+xml`), JSON (`?json`,
//! `Accept: application/json`) and apt's mirror list (`?aptmirrors`).
//!
//! They rank every eligible mirror (not only the few a redirect names) and
//! use what is already known of each mirror's copy of the file: they never
//! wait for on-demand checks.

use std::net::IpAddr;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::path::CleanPath;
use crate::content::Checker;
use crate::explain::{self, Options};
use crate::formats::{self, Listing, Wanted};
use crate::metrics::Outcome;
use crate::pages;
use crate::select::Scheme;
use crate::state::Snapshot;

use super::Resp;

/// The answer for `wanted` (anything but a redirect or `?sha256`).
pub(crate) fn answer(
    wanted: Wanted,
    snap: &Snapshot,
    checker: &Checker,
    ip: IpAddr,
    scheme: Scheme,
    path: &CleanPath,
) -> (Outcome, Resp) {
    let opts = Options {
        rank_all: true,
        any_path: wanted == Wanted::AptList,
    };
    let raw = format!("/{}", path.encoded());
    let report = match explain::explain_with(snap, Some(checker), ip, &raw, scheme, opts) {
        Ok(r) => r,
        Err(e) => {
            return (
                Outcome::BadRequest,
                super::download::text(StatusCode::BAD_REQUEST, &e),
            )
        }
    };
    if report.outcome == "not_found" {
        return (
            Outcome::NotFound,
            super::download::text(StatusCode::NOT_FOUND, "no such file on this site"),
        );
    }
    let (body, media) = match wanted {
        Wanted::MirrorList => match pages::mirror_list(&report, snap) {
            Ok(html) => (html, "text/html; charset=utf-8"),
            Err(e) => return internal(&e.to_string()),
        },
        Wanted::Metalink => {
            let listing = Listing::from_report(snap, &report, path);
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
        Wanted::Json => {
            let listing = Listing::from_report(snap, &report, path);
            (formats::json(&listing).to_string(), "application/json")
        }
        Wanted::AptList => {
            let listing = Listing::from_report(snap, &report, path);
            (
                formats::apt_mirror_list(&listing),
                formats::aptlist::MEDIA_TYPE,
            )
        }
        Wanted::Redirect | Wanted::Sha256 => return internal("not an alternative answer"),
    };
    (Outcome::List, page(body, media))
}

/// `/?mirrorstats`: every mirror's state, sortable.
pub(crate) fn status(snap: &Snapshot, query: Option<&str>) -> (Outcome, Resp) {
    match pages::status(snap, pages::SortBy::from_query(query)) {
        Ok(html) => (Outcome::List, page(html, "text/html; charset=utf-8")),
        Err(e) => internal(&e.to_string()),
    }
}

fn page(body: String, media: &'static str) -> Resp {
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
