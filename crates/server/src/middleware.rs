//! The layers every route gets (applied in [`crate::router`], so the hooks, approvals, API
//! and operations routes share them): a request id and one log line per request, a body size
//! limit, a request timeout, JSON error bodies, per-address rate limits on `/hooks/*` and
//! `/approvals/*`, and a 400 for an address holding a NUL byte.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tracing::Instrument;

use crate::api::error::{json_error, ApiError};

/// The header carrying a request's id.
pub const REQUEST_ID: &str = "x-request-id";

/// A request's id, in its extensions for handlers that want it.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// An id the client sent, if it is a sane one (1-128 visible ASCII characters).
fn given_id(req: &Request) -> Option<String> {
    let v = req.headers().get(REQUEST_ID)?.to_str().ok()?.trim();
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
}

/// Gives each request an id (the client's `x-request-id`, or a new UUID), runs it in a
/// `request` span (id, method, path without the query) and logs its status and latency.
/// Neither headers nor bodies are logged.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let id = given_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %crate::approvals::loggable_path(req.uri().path()),
    );
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, latency_ms, "request");
        } else {
            tracing::info!(status, latency_ms, "request");
        }
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

/// Ends a request that takes longer than `limit` with 503 and a JSON error.
pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {:.1}s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

/// Refuses a body larger than `limit` bytes with 413 before reading it when its length is
/// declared; a body without a declared length is cut at the limit by the body limit layer.
pub async fn body_limit(State(limit): State<usize>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {limit} bytes"),
        );
    }
    next.run(req).await
}

/// Whether `text` holds a percent-encoded NUL byte (`%00`).
fn has_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|w| w == b"%00")
}

/// Refuses with 400 a request whose path or query holds a NUL byte (`%00`): no run id,
/// runbook id, filter or name can hold one, and PostgreSQL refuses it in a text parameter
/// (which would otherwise be a 500). The UI gets its error page, everything else JSON.
pub async fn refuse_nul(req: Request, next: Next) -> Response {
    let uri = req.uri();
    if !has_nul(uri.path()) && !uri.query().is_some_and(has_nul) {
        return next.run(req).await;
    }
    const WHY: &str = "The address holds a NUL byte (%00), which no id, filter or name can hold.";
    if uri.path() == "/ui" || uri.path().starts_with("/ui/") {
        return crate::ui::layout::error_page(StatusCode::BAD_REQUEST, "Bad address", WHY);
    }
    json_error(StatusCode::BAD_REQUEST, WHY)
}

/// Gives an error answer without a body type a JSON body (`{"error": {"code", "message"}}`):
/// axum's own rejections (a body too large, an unknown route, a wrong method) are plain
/// text. JSON and HTML answers (the approval pages) are left as they are.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let typed = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if typed {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut fresh = json_error(status, &message);
    for (name, value) in parts.headers.iter() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

/// Per-address request budgets for `/hooks/*` and `/approvals/*`, and for refused API
/// tokens.
#[derive(Clone)]
pub struct RateLimits {
    hooks: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    approvals: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Refused bearer tokens (401 from `/api/*`), budgeted like approval requests.
    refused: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses that spent the refused-token budget, and until when they are refused.
    blocked: Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, Instant>>>,
}

impl RateLimits {
    /// Budgets of `hooks` and `approvals` requests per minute per client address (a burst
    /// of the whole minute's budget is allowed).
    pub fn new(hooks: u32, approvals: u32) -> Self {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        RateLimits {
            hooks: Arc::new(RateLimiter::keyed(quota(hooks))),
            approvals: Arc::new(RateLimiter::keyed(quota(approvals))),
            refused: Arc::new(RateLimiter::keyed(quota(approvals))),
            blocked: Arc::default(),
        }
    }
}

/// A 429 answer saying when to come back (the UI's page for `/ui/*`, JSON elsewhere).
fn too_many(path: &str, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let why = format!("too many requests from this address; try again in {secs}s");
    let mut r = if path.starts_with("/ui/") {
        crate::ui::layout::error_page(StatusCode::TOO_MANY_REQUESTS, "Too many requests", &why)
    } else {
        json_error(StatusCode::TOO_MANY_REQUESTS, &why)
    };
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

/// Answers 429 with `Retry-After` when the client address has spent its budget for the
/// path's group (`/hooks/*`, or `/approvals/*` and posting the UI's sign-in), or has had too
/// many bearer tokens refused by `/api/*` (guessing tokens); other requests are not limited.
pub async fn rate_limit(State(limits): State<RateLimits>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    let ip = addr.ip();
    if path.starts_with("/api/") {
        let until = limits
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .copied();
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            return too_many(&path, until - Instant::now());
        }
        let response = next.run(req).await;
        if response.status() == StatusCode::UNAUTHORIZED {
            if let Err(not_until) = limits.refused.check_key(&ip) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut blocked = limits.blocked.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                blocked.retain(|_, u| *u > now);
                blocked.insert(ip, now + wait);
            }
        }
        return response;
    }
    let sign_in = path == "/ui/sign-in" && req.method() == axum::http::Method::POST;
    let limiter = if path.starts_with("/hooks/") {
        &limits.hooks
    } else if path.starts_with("/approvals/") || sign_in {
        &limits.approvals
    } else {
        return next.run(req).await;
    };
    if let Err(not_until) = limiter.check_key(&ip) {
        return too_many(
            &path,
            not_until.wait_time_from(DefaultClock::default().now()),
        );
    }
    // Forget addresses that are back to a full budget now and then.
    if limiter.len() > 10_000 {
        limiter.retain_recent();
    }
    next.run(req).await
}
