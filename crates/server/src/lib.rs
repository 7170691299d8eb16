//! `tenure serve`: the HTTP front end of Tenure, built with axum on the [`tenure_engine::Engine`]
//! API (it never decides or writes journal lines itself).
//!
//! - [`hooks`]: `POST /hooks/{source}`, ticket webhooks verified per configured source,
//!   deduplicated and mapped to runs through the runbooks' `triggers`.
//! - [`approvals`]: `GET`/`POST /approvals/{token}`, signed single-use approval links and the
//!   page an approver decides on.
//! - [`api`]: the REST API under `/api` (bearer tokens with roles) and its OpenAPI document.
//! - [`ops`]: `/healthz` and `/metrics` ([`exporter`]: the Prometheus recorder).
//! - [`middleware`]: request ids and logs, body limit, timeout, JSON errors, rate limits.
//! - [`schedule`]: `schedule` triggers, started once per tick however many nodes run.
//! - [`ui`]: the web UI under `/ui` for operators, viewers and approvers.
//!
//! The binary (`tenure-cli`) builds a [`state::AppState`] from its configuration and calls
//! [`serve`].

pub mod api;
pub mod approvals;
pub mod config;
pub mod exporter;
pub mod hooks;
pub mod library;
pub mod middleware;
pub mod ops;
pub mod schedule;
pub mod state;
pub mod ui;

use std::future::Future;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use tower_http::limit::RequestBodyLimitLayer;

pub use config::ServerConfig;
pub use library::{Library, LibrarySource, RunbookEntry};
pub use state::AppState;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is not usable (a missing environment variable, a bad URL...).
    #[error("{0}")]
    Config(String),
    /// Listening or serving failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Every route of the server, with its layers, over `state`. From the outside in: a request
/// id and a log line per request, JSON error bodies, the request timeout, the body size limit,
/// a 400 for an address holding a NUL byte, and the per-address rate limits of `/hooks/*`
/// and `/approvals/*` (`[server]` settings).
pub fn router(state: AppState) -> Router {
    exporter::handle();
    let s = &state.config().server;
    let limit = s.body_limit();
    let timeout = s.request_timeout();
    let rates = middleware::RateLimits::new(s.hooks_rate(), s.approvals_rate());
    Router::new()
        .merge(hooks::routes())
        .merge(approvals::routes())
        .merge(api::routes(&state))
        .merge(ui::routes(api::tokens(&state)))
        .merge(ops::routes())
        .layer(from_fn_with_state(rates, middleware::rate_limit))
        .layer(from_fn(middleware::refuse_nul))
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(from_fn_with_state(limit, middleware::body_limit))
        .layer(from_fn_with_state(timeout, middleware::timeout))
        .layer(from_fn(middleware::json_errors))
        .layer(from_fn(middleware::request_context))
        .with_state(state)
}

/// Only `/healthz` and `/metrics`, for a process that runs workers without the server
/// (`tenure worker --metrics-listen`): what its attempts counted, and the queue depth.
pub fn ops_router(state: AppState) -> Router {
    exporter::handle();
    Router::new()
        .merge(ops::routes())
        .layer(from_fn(middleware::json_errors))
        .layer(from_fn(middleware::request_context))
        .with_state(state)
}

/// Serves [`ops_router`] on `listener` until `shutdown` completes.
pub async fn serve_ops(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    axum::serve(listener, ops_router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Checks what the server reads from the environment when it starts (every `[[tokens]]`
/// variable is set) and installs the metrics recorder: call it before listening. [`serve`]
/// calls it too.
pub fn check_config(config: &ServerConfig) -> Result<(), Error> {
    api::auth::Tokens::from_config(config)?;
    exporter::handle();
    Ok(())
}

/// How long a client may take to send a request's headers before its connection is closed
/// (hyper's `header_read_timeout`; `axum::serve` sets no timer, so without this a client
/// that never finishes its headers holds a connection, and a file descriptor, for ever).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves [`router`] on `listener` until `shutdown` completes (in-flight requests finish).
/// Each connection is served by hyper (HTTP/1.1, as `axum::serve` does in this build) with [`HEADER_READ_TIMEOUT`], and
/// each request carries the peer's [`ConnectInfo`] as `axum::serve` would give it.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    check_config(state.config())?;
    let app = router(state);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was accepted:
                    // keep serving the others.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
