//! The runbook catalogue: `GET /ui/runbooks`, a runbook's page `GET /ui/runbooks/{id}` (graph,
//! inputs, triggers, validation, the start form), its picture, and `POST
//! /ui/runbooks/{id}/start`.

use axum::extract::Path;
use axum::response::Response;
use maud::html;

use super::layout::{self, Nav};
use super::session::Session;

/// `GET /ui/runbooks`.
pub async fn list(session: Session) -> Response {
    layout::page(
        &session,
        Nav::Runbooks,
        "Runbooks",
        html! { h1 { "Runbooks" } },
    )
}

/// `GET /ui/runbooks/{id}`.
pub async fn show(session: Session, Path(id): Path<String>) -> Response {
    layout::page(&session, Nav::Runbooks, &id, html! { h1 { (id) } })
}

/// `GET /ui/runbooks/{id}/graph.svg`.
pub async fn graph(_session: Session, Path(_id): Path<String>) -> Response {
    layout::fragment(html! {})
}

/// `POST /ui/runbooks/{id}/start`.
pub async fn start(session: Session, Path(_id): Path<String>) -> Response {
    session.forbidden("start runs yet")
}
