//! The admin listener, on its own address: `/metrics`, `/livez`, `/readyz`, and
//! the mirror API under `/api/v1/` (reads open, writes need the admin token),
//! served with limits of its own (`listener.rs`).

mod api;
mod auth;
mod listener;

pub use listener::{ServeOptions, HEAD_LIMIT};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State as AxState;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::state::State;

/// Re-reads config and GeoIP; returns the new generation or why it was refused.
pub type ReloadFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> + Send + Sync>;

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    pub state: Arc<State>,
    pub metrics: Metrics,
    pub reload: ReloadFn,
    /// The on-demand checker, whose cache `explain` reads.
    pub checker: crate::content::Checker,
}

/// The admin router; tests may serve it themselves.
pub fn router(s: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/mirrors", get(api::list_mirrors))
        .route("/api/v1/mirrors/{name}", get(api::get_mirror))
        .route("/api/v1/explain", get(api::explain))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/probe", post(api::probe))
        .route("/api/v1/reload", post(api::reload))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such admin endpoint\n") })
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(s)
}

/// Serves the admin router until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    s: AdminState,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    listener::serve(listener, router(s), opts, shutdown).await;
}

async fn metrics(AxState(s): AxState<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(AxState(s): AxState<AdminState>) -> impl IntoResponse {
    if s.state.load().ready {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first probe round has not finished\n",
        )
    }
}
