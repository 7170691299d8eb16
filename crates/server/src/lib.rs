//! `tenure serve`: the HTTP front end of Tenure, built with axum on the [`tenure_engine::Engine`]
//! API (it never decides or writes journal lines itself).
//!
//! - [`hooks`]: `POST /hooks/{source}`, ticket webhooks verified per configured source,
//!   deduplicated and mapped to runs through the runbooks' `triggers`.
//! - [`approvals`]: `GET`/`POST /approvals/{token}`, signed single-use approval links and the
//!   page an approver decides on.
//! - [`api`]: the REST API under `/api` (bearer tokens with roles) and its OpenAPI document.
//! - [`ops`]: `/healthz` and `/metrics`.
//! - [`schedule`]: `schedule` triggers, started once per tick however many nodes run.
//!
//! The binary (`tenure-cli`) builds a [`state::AppState`] from its configuration and calls
//! [`serve`].

pub mod api;
pub mod approvals;
pub mod config;
pub mod hooks;
pub mod library;
pub mod ops;
pub mod schedule;
pub mod state;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

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

/// Every route of the server, with its layers (request ids, logs, limits), over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(hooks::routes())
        .merge(approvals::routes())
        .merge(api::routes())
        .merge(ops::routes())
        .with_state(state)
}

/// Serves [`router`] on `listener` until `shutdown` completes (in-flight requests finish).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let app = router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
