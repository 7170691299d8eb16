//! What every Graph response carries, whatever the route: `request-id` and
//! `client-request-id` headers (the client's id echoed, also inside error bodies),
//! `WWW-Authenticate` on a 401, and a Graph-shaped error instead of an empty 404/405 for a
//! route the sandbox does not serve.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::graph_error;

const GRAPH: &str = "/graph.microsoft.com/";

/// The `WWW-Authenticate` challenge Graph sends with a 401.
pub const CHALLENGE: &str = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";

/// Middleware over the whole sandbox; only Graph paths are touched.
pub async fn wire(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if !path.starts_with(GRAPH) {
        return next.run(req).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(|| request_id.clone(), str::to_string);
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut resp = match resp.status() {
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED if !is_json => {
            unrouted(&path, resp.status())
        }
        status if status.is_client_error() || status.is_server_error() => {
            with_ids(resp, &request_id, &client_request_id).await
        }
        _ => resp,
    };
    let unauthorized = resp.status() == StatusCode::UNAUTHORIZED;
    let h = resp.headers_mut();
    for (name, value) in [
        ("request-id", request_id.as_str()),
        ("client-request-id", client_request_id.as_str()),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    if unauthorized {
        h.insert("www-authenticate", HeaderValue::from_static(CHALLENGE));
    }
    resp
}

/// Graph's answer for a path or method it does not serve.
fn unrouted(path: &str, status: StatusCode) -> Response {
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return graph_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "Request_BadRequest",
            "Specified HTTP method is not allowed for the request uri.",
        );
    }
    let segment = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    graph_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Resource not found for the segment '{segment}'."),
    )
}

/// Puts the response's ids into a JSON error body's `innerError`.
async fn with_ids(resp: Response, request_id: &str, client_request_id: &str) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if v["error"].is_object() {
        let inner = &mut v["error"]["innerError"];
        if !inner.is_object() {
            *inner = serde_json::json!({"date": crate::shared::now_rfc3339()});
        }
        inner["request-id"] = request_id.into();
        inner["client-request-id"] = client_request_id.into();
    }
    let text = v.to_string();
    parts.headers.remove("content-length");
    Response::from_parts(parts, Body::from(text))
}
