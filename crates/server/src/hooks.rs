//! Routes of the `hooks` part of the server (being built).

use axum::Router;

use crate::state::AppState;

/// The `hooks` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
}
