//! `/healthz`, `/readyz`, `/metrics` and `/status`, read from the shared
//! status board and metrics; nothing here changes state.

use std::sync::Arc;

use axum::http::{StatusCode, header};
use axum::routing::get;

use super::status::Shared;

pub fn router(shared: Arc<Shared>) -> axum::Router {
    let (s1, s2, s3) = (shared.clone(), shared.clone(), shared);
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = s1.ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "first reconcile not finished\n")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = s2.metrics.encode();
                async move { ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body) }
            }),
        )
        .route(
            "/status",
            get(move || {
                let body = serde_json::to_string_pretty(&*s3.board()).unwrap_or_default();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
}
