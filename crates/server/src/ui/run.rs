//! A run's page: `GET /ui/runs/{id}`, its live part `GET /ui/runs/{id}/live`, and the
//! operator actions (retry, retry a step, cancel, roll back): a confirmation page
//! `GET /ui/runs/{id}/confirm/{action}`, then `POST /ui/runs/{id}/{action}`.

use axum::extract::Path;
use axum::response::Response;
use maud::html;

use super::layout::{self, Nav};
use super::session::Session;

/// `GET /ui/runs/{id}`.
pub async fn show(session: Session, Path(id): Path<String>) -> Response {
    layout::page(&session, Nav::Runs, "Run", html! { h1 { "Run " (id) } })
}

/// `GET /ui/runs/{id}/live`.
pub async fn live(_session: Session, Path(_id): Path<String>) -> Response {
    layout::fragment(html! {})
}

/// `GET /ui/runs/{id}/confirm/{action}`.
pub async fn confirm(session: Session, Path((id, action)): Path<(String, String)>) -> Response {
    layout::page(
        &session,
        Nav::Runs,
        "Confirm",
        html! { h1 { (action) " " (id) } },
    )
}

/// `POST /ui/runs/{id}/{action}`.
pub async fn act(session: Session, Path((_id, _action)): Path<(String, String)>) -> Response {
    session.forbidden("do this yet")
}
