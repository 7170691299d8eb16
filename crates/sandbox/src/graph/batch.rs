//! JSON batching: `POST /$batch` with up to 20 requests, each run through the same router
//! (so each is authorised, throttled and fault-injected on its own), honouring `dependsOn`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::http::{bad_request, reply, Reply};
use crate::shared::Shared;

/// `POST /$batch`
pub async fn batch(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Json(body): Json<Value>,
) -> Reply {
    // Inner requests run against the version the batch was posted to.
    let version = if uri.path().starts_with("/graph.microsoft.com/beta/") {
        "beta"
    } else {
        "v1.0"
    };
    let Some(requests) = body["requests"].as_array() else {
        return Err(bad_request(
            "Invalid batch payload: `requests` must be an array.",
        ));
    };
    if requests.len() > 20 {
        return Err(bad_request(
            "Invalid batch payload format: the number of requests exceeds the limit of 20.",
        ));
    }
    let Some(router) = s.router() else {
        return Err(bad_request("batching is not available"));
    };
    let mut statuses: Vec<(String, u16)> = Vec::new();
    let mut responses = Vec::new();
    for r in requests {
        let id = r["id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| r["id"].to_string());
        let failed_dep = r["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|d| statuses.iter().any(|(i, st)| i == d && *st >= 400));
        if failed_dep {
            statuses.push((id.clone(), 424));
            responses.push(json!({"id": id, "status": 424, "body": {"error": {"code": "FailedDependency", "message": "A request this one depends on failed."}}}));
            continue;
        }
        let method = r["method"].as_str().unwrap_or("GET");
        let url = r["url"].as_str().unwrap_or("/");
        let path = format!(
            "/graph.microsoft.com/{version}{}",
            if url.starts_with('/') {
                url.to_string()
            } else {
                format!("/{url}")
            }
        );
        let mut builder = Request::builder()
            .method(method)
            .uri(path.replace(' ', "%20"));
        // The batch's credentials and host, then the inner request's own headers
        // (ConsistencyLevel, client-request-id, Prefer, Content-Type, ...).
        let mut inner = HeaderMap::new();
        for name in ["authorization", "host"] {
            if let Some(v) = headers.get(name) {
                inner.insert(name, v.clone());
            }
        }
        if let Some(own) = r["headers"].as_object() {
            for (k, v) in own {
                let (Ok(name), Some(Ok(value))) = (
                    axum::http::HeaderName::from_bytes(k.to_lowercase().as_bytes()),
                    v.as_str().map(axum::http::HeaderValue::from_str),
                ) else {
                    continue;
                };
                inner.insert(name, value);
            }
        }
        let body = if r["body"].is_null() {
            Body::empty()
        } else {
            if !inner.contains_key("content-type") {
                inner.insert(
                    "content-type",
                    axum::http::HeaderValue::from_static("application/json"),
                );
            }
            Body::from(r["body"].to_string())
        };
        for (k, v) in &inner {
            builder = builder.header(k, v);
        }
        let Ok(request) = builder.body(body) else {
            responses.push(json!({"id": id, "status": 400, "body": {"error": {"code": "BadRequest", "message": "Invalid request in batch."}}}));
            continue;
        };
        let resp = router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|e| match e {});
        let status = resp.status().as_u16();
        let mut resp_headers = serde_json::Map::new();
        for (k, v) in resp.headers() {
            if let Ok(v) = v.to_str() {
                resp_headers.insert(k.to_string(), json!(v));
            }
        }
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        statuses.push((id.clone(), status));
        responses.push(json!({"id": id, "status": status, "headers": resp_headers, "body": body}));
    }
    Ok(reply(StatusCode::OK, json!({"responses": responses})))
}
