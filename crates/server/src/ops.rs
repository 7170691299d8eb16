//! Operations: `GET /healthz` (the database answers) and `GET /metrics` (Prometheus text).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::AppState;

/// The operations routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// `GET /healthz`: 200 when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let filter = tenure_engine::store::RunFilter {
        limit: 1,
        ..Default::default()
    };
    match state.engine().runs(&filter).await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "error": "the database does not answer"})),
            )
        }
    }
}

/// `GET /metrics`: every metric in Prometheus text, the queue depth read from the store now.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let depth = match state.engine().queue_depth().await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the queue depth");
            None
        }
    };
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::exporter::render(depth),
    )
}
