//! Routes of the `approvals` part of the server (being built).

use axum::Router;

use crate::state::AppState;

/// The `approvals` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
