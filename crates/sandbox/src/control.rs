//! The sandbox's own endpoints: `GET /_sandbox/state` (everything, with counters; pushed
//! secrets masked), `POST /_sandbox/faults`, `POST /_sandbox/reset`, `GET /_sandbox/health`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::faults::FaultConfig;
use crate::http::{reply, Reply};
use crate::model::World;
use crate::shared::Shared;

/// Control routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/faults", post(set_faults).get(get_faults))
        .route("/_sandbox/reset", post(reset))
        .route(
            "/_sandbox/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
}

async fn state(State(s): State<Arc<Shared>>) -> Reply {
    let mut v = s.read(|w| serde_json::to_value(w).unwrap_or(Value::Null));
    if let Some(pushes) = v["pushes"].as_array_mut() {
        for p in pushes {
            p["payload"] = json!("***");
        }
    }
    Ok(reply(StatusCode::OK, v))
}

async fn set_faults(State(s): State<Arc<Shared>>, body: Option<Json<FaultConfig>>) -> Reply {
    let Some(Json(config)) = body else {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "bad_request", "message": "expected {\"seed\": n, \"rules\": [...]}"}}),
        ));
    };
    let count = config.rules.len();
    s.faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .set(config)
        .map_err(|m| {
            reply(
                StatusCode::BAD_REQUEST,
                json!({"error": {"code": "bad_request", "message": m}}),
            )
        })?;
    Ok(reply(StatusCode::OK, json!({"rules": count})))
}

async fn get_faults(State(s): State<Arc<Shared>>) -> Reply {
    let rules = s
        .faults
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .rules()
        .to_vec();
    Ok(reply(StatusCode::OK, json!({"rules": rules})))
}

async fn reset(State(s): State<Arc<Shared>>, body: Option<Json<World>>) -> Reply {
    let world = match body {
        Some(Json(w)) => w,
        None => serde_json::from_str(crate::DEFAULT_SEED).unwrap_or_default(),
    };
    s.replace(world);
    Ok(reply(StatusCode::OK, json!({"reset": true})))
}
