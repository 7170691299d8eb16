//! The sandbox's own endpoints: `GET /_sandbox/state` (everything, with counters; pushed
//! secrets masked), `POST /_sandbox/faults`, `GET|POST /_sandbox/config` (settings such as
//! replication lag), `POST /_sandbox/reset`, `GET /_sandbox/health` (with the SMTP
//! listener's address).

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
        .route("/_sandbox/config", get(get_config).post(set_config))
        .route(
            "/_sandbox/health",
            get(|State(s): State<Arc<Shared>>| async move {
                Json(json!({"status": "ok", "smtp": s.smtp_addr().map(|a| a.to_string())}))
            }),
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
    let f = s.faults.lock().unwrap_or_else(|p| p.into_inner());
    Ok(reply(
        StatusCode::OK,
        json!({"rules": f.rules().to_vec(), "hits": f.hits()}),
    ))
}

async fn get_config(State(s): State<Arc<Shared>>) -> Reply {
    let settings = s.read(|w| serde_json::to_value(&w.settings).unwrap_or(Value::Null));
    Ok(reply(StatusCode::OK, settings))
}

/// Merges a partial `settings` object (e.g. `{"replication": {"user_ms": 2000}}`) into the
/// current settings.
async fn set_config(State(s): State<Arc<Shared>>, body: Option<Json<Value>>) -> Reply {
    let Some(Json(patch)) = body.filter(|b| b.is_object()) else {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "bad_request", "message": "expected a JSON object of settings"}}),
        ));
    };
    s.write(|w| {
        let mut current = serde_json::to_value(&w.settings).unwrap_or(Value::Null);
        merge(&mut current, &patch);
        let settings = serde_json::from_value(current).map_err(|e| {
            reply(
                StatusCode::BAD_REQUEST,
                json!({"error": {"code": "bad_request", "message": e.to_string()}}),
            )
        })?;
        w.settings = settings;
        Ok(reply(
            StatusCode::OK,
            serde_json::to_value(&w.settings).unwrap_or(Value::Null),
        ))
    })
}

fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

async fn reset(State(s): State<Arc<Shared>>, body: Option<Json<World>>) -> Reply {
    let world = match body {
        Some(Json(w)) => w,
        None => serde_json::from_str(crate::DEFAULT_SEED).unwrap_or_default(),
    };
    s.replace(world);
    Ok(reply(StatusCode::OK, json!({"reset": true})))
}
