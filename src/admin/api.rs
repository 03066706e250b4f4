//! `/api/v1/`: mirrors and their health as JSON, explain, and the write calls
//! (probe now, reload) behind the admin token.

use std::net::IpAddr;
use std::time::SystemTime;

use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{auth, AdminState};
use crate::registry::LocationSource;
use crate::select::Scheme;
use crate::state::MirrorEntry;

/// One mirror as the API shows it (schema documented in the README).
#[derive(Debug, Serialize)]
pub struct MirrorView {
    pub name: String,
    pub url: String,
    pub enabled: bool,
    pub state: &'static str,
    pub since: String,
    pub last_check: Option<String>,
    pub rtt_ms: Option<f64>,
    pub last_failure: Option<String>,
    pub last_failure_reason: Option<&'static str>,
    /// While failed proxied requests hold the mirror out (`proxy.passive_backoff`,
    /// whatever probes say): until when.
    pub held_until: Option<String>,
    pub country: Option<String>,
    pub continent: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub asn: Vec<u32>,
    pub weight: u32,
    pub location_source: String,
    /// The time its copy of the origin's trace file says it last synced.
    pub last_sync: Option<String>,
    /// How far that is behind the origin's last publication.
    pub lag_seconds: Option<u64>,
    /// Why its trace file could not be read, when it could not.
    pub trace_error: Option<String>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl From<&MirrorEntry> for MirrorView {
    fn from(e: &MirrorEntry) -> Self {
        let m = &e.mirror;
        let h = &e.health;
        MirrorView {
            name: m.name.to_string(),
            url: m.url.to_string(),
            enabled: m.enabled,
            state: h.state.as_str(),
            since: rfc3339(h.since),
            last_check: h.last_check.map(rfc3339),
            rtt_ms: h.rtt.map(|d| (d.as_secs_f64() * 1e5).round() / 100.0),
            last_failure: h.last_failure.as_ref().map(|r| r.to_string()),
            last_failure_reason: h.last_failure.as_ref().map(|r| r.as_str()),
            held_until: h
                .held_until
                .filter(|_| h.held(SystemTime::now()))
                .map(rfc3339),
            country: m.country.map(|c| c.to_string()),
            continent: m.continent.map(|c| c.to_string()),
            latitude: m.coords.map(|c| c.lat),
            longitude: m.coords.map(|c| c.lon),
            asn: m.asns.clone(),
            weight: m.weight,
            last_sync: h.last_sync.map(rfc3339),
            lag_seconds: e.lag.map(|d| d.as_secs()),
            trace_error: h.trace_error.as_ref().map(|t| t.to_string()),
            location_source: match &m.location_source {
                LocationSource::Config => "config".into(),
                LocationSource::GeoIp(ip) => format!("geoip:{ip}"),
                LocationSource::Unknown => "unknown".into(),
            },
        }
    }
}

#[derive(Serialize)]
pub struct MirrorList {
    pub generation: u64,
    pub mirrors: Vec<MirrorView>,
}

pub async fn list_mirrors(AxState(s): AxState<AdminState>) -> Json<MirrorList> {
    let snap = s.state.load();
    Json(MirrorList {
        generation: snap.generation,
        mirrors: snap.mirrors.iter().map(MirrorView::from).collect(),
    })
}

pub async fn get_mirror(AxState(s): AxState<AdminState>, Path(name): Path<String>) -> Response {
    let snap = s.state.load();
    match snap.mirror(&name) {
        Some(e) => Json(MirrorView::from(e)).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no mirror named {name:?}\n")).into_response(),
    }
}

#[derive(Serialize)]
pub struct Status {
    pub generation: u64,
    pub ready: bool,
    pub loaded_at: String,
    pub mirrors_up: usize,
    pub mirrors_total: usize,
}

pub async fn status(AxState(s): AxState<AdminState>) -> Json<Status> {
    let snap = s.state.load();
    Json(Status {
        generation: snap.generation,
        ready: snap.ready,
        loaded_at: rfc3339(snap.loaded_at),
        mirrors_up: snap
            .mirrors
            .iter()
            .filter(|e| e.health.state == crate::health::HealthState::Up)
            .count(),
        mirrors_total: snap.mirrors.len(),
    })
}

#[derive(Deserialize)]
pub struct ExplainQuery {
    ip: String,
    path: String,
    #[serde(default)]
    https: bool,
}

pub async fn explain(AxState(s): AxState<AdminState>, Query(q): Query<ExplainQuery>) -> Response {
    let Ok(ip) = q.ip.parse::<IpAddr>() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("ip: {:?} is not an IP address\n", q.ip),
        )
            .into_response();
    };
    let snap = s.state.load_full();
    let scheme = if q.https { Scheme::Https } else { Scheme::Http };
    // With the on-demand checks a download would make: the same answer.
    let opts = crate::explain::Options::default();
    let report =
        crate::explain::explain_checked(&snap, &s.checker, &s.metrics, ip, &q.path, scheme, opts)
            .await;
    match report {
        Ok(r) => Json(r).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("path: {e}\n")).into_response(),
    }
}

pub async fn probe(AxState(s): AxState<AdminState>, headers: HeaderMap) -> Response {
    let snap = s.state.load();
    if let Err(e) = auth::check(&headers, snap.config.admin.token.as_deref()) {
        return e.into_response();
    }
    s.state.probe_now();
    (StatusCode::ACCEPTED, "probing every mirror now\n").into_response()
}

pub async fn reload(AxState(s): AxState<AdminState>, headers: HeaderMap) -> Response {
    let token = s.state.load().config.admin.token.clone();
    if let Err(e) = auth::check(&headers, token.as_deref()) {
        return e.into_response();
    }
    match (s.reload)().await {
        Ok(generation) => (
            StatusCode::OK,
            format!("reloaded: generation {generation}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("reload refused, the old config keeps serving:\n{e}\n"),
        )
            .into_response(),
    }
}
