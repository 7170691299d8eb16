//! `GET /ui/approvals`: the approval requests waiting on the signed-in user.

use axum::response::Response;
use maud::html;

use super::layout::{self, Nav};
use super::session::Session;

/// `GET /ui/approvals`.
pub async fn list(session: Session) -> Response {
    layout::page(
        &session,
        Nav::Approvals,
        "Approvals",
        html! { h1 { "Approvals" } },
    )
}
