//! The web UI under `/ui`, served by `tenure serve` without a JavaScript build step: HTML
//! pages built on the server (`maud`), one style sheet, and htmx (vendored) for live
//! fragments. Every read and every action goes through the [`tenure_engine::Engine`] API in
//! the signed-in user's name; nothing here decides.
//!
//! - [`session`]: sign-in with an API token exchanged for a signed session cookie, CSRF, sign-out.
//! - [`runs`]: the runs list (filters, keyset paging, live refresh).
//! - [`run`]: a run's page (the DAG coloured by step state, the attempts' timeline, the log,
//!   the report, approvals, operator actions with a confirmation page).
//! - [`runbooks`]: the runbook catalogue, a runbook's page and the form that starts a run.
//! - [`approvals`]: approvals waiting on the signed-in user.
//! - [`people`], [`people_plan`]: people syncs (recent ones, a sync's stored plan and the runs
//!   it started) and a tenant's person ↔ account links.
//! - [`layout`], [`assets`]: the page shell, security headers and static files.

pub mod approvals;
pub mod assets;
pub mod layout;
pub mod people;
pub mod people_plan;
pub mod run;
pub mod runbooks;
pub mod runs;
pub mod session;

use std::sync::Arc;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::api::auth::Tokens;
use crate::state::AppState;

/// The `ui` routes, with the configured tokens (sign-in exchanges one for a session).
pub(crate) fn routes(tokens: Arc<Tokens>) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/static/{name}", get(assets::serve))
        .route(
            "/ui/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/runs", get(runs::list))
        .route("/ui/runs/rows", get(runs::rows))
        .route("/ui/runs/{id}", get(run::show))
        .route("/ui/runs/{id}/live", get(run::live))
        .route("/ui/runs/{id}/confirm/{action}", get(run::confirm))
        .route("/ui/runs/{id}/{action}", post(run::act))
        .route("/ui/runbooks", get(runbooks::list))
        .route("/ui/runbooks/{id}", get(runbooks::show))
        .route("/ui/runbooks/{id}/graph.svg", get(runbooks::graph))
        .route("/ui/runbooks/{id}/start", post(runbooks::start))
        .route("/ui/approvals", get(approvals::list))
        .route("/ui/people", get(people::list))
        .route("/ui/people/syncs/{id}", get(people::show))
        .route("/ui/people/tenants/{tenant}", get(people::tenant))
        .route("/ui/approvals/{run}/{step}", post(approvals::decide))
        .layer(Extension(tokens))
}
