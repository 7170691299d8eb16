//! The runs list: `GET /ui/runs` (filters by status, runbook, tenant and free text, keyset
//! paging) and `GET /ui/runs/rows`, the table body htmx polls for live refresh.

use axum::response::Response;
use maud::html;

use super::layout::{self, Nav};
use super::session::Session;

/// `GET /ui/runs`.
pub async fn list(session: Session) -> Response {
    layout::page(&session, Nav::Runs, "Runs", html! { h1 { "Runs" } })
}

/// `GET /ui/runs/rows`: the rows of the list, for live refresh.
pub async fn rows(_session: Session) -> Response {
    layout::fragment(html! {})
}
