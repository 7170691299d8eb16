//! Routes of the `api` part of the server (being built).

use axum::Router;

use crate::state::AppState;

/// The `api` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
