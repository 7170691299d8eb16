//! The REST API under `/api`, on the [`tenure_engine::Engine`] API only: runbooks, runs,
//! approvals. Every route needs `Authorization: Bearer <token>` from `[[tokens]]` (see
//! [`auth`]) except `GET /api/openapi.json`, the OpenAPI 3 document generated from the
//! handlers' and types' annotations (`utoipa`): the router and the document are built from the
//! same list, so no route can be missing from it.

pub mod auth;
pub mod error;
pub mod gates;
pub mod runbooks;
pub mod runs;

use std::sync::Arc;

use axum::{Extension, Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The document's fixed parts: title, tags, the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tenure API", description = "Runbooks, runs and approvals of a Tenure server. Every route but this document needs `Authorization: Bearer <token>` (a `[[tokens]]` entry of tenure.toml); errors are `{\"error\": {\"code\", \"message\"}}`."),
    modifiers(&Bearer),
    tags((name = "runbooks", description = "The runbook library"),
        (name = "runs", description = "Start, read and operate runs"),
        (name = "approvals", description = "Approval gates waiting on the caller"),
        (name = "meta", description = "This document"))
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes and its OpenAPI document, from one list.
fn parts() -> (Router<AppState>, Document) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(runbooks::list))
        .routes(routes!(runbooks::validate))
        .routes(routes!(runbooks::get_one))
        .routes(routes!(runbooks::graph))
        .routes(routes!(runs::start, runs::list))
        .routes(routes!(runs::get_one))
        .routes(routes!(runs::events))
        .routes(routes!(runs::cancel))
        .routes(routes!(runs::retry))
        .routes(routes!(runs::rollback))
        .routes(routes!(gates::pending))
        .routes(routes!(gates::decide))
        .routes(routes!(openapi_json))
        .split_for_parts()
}

/// The OpenAPI 3 document of the API (generated from the code).
pub fn openapi() -> Document {
    parts().1
}

/// The OpenAPI 3 document of this API.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
async fn openapi_json() -> Json<Document> {
    Json(openapi())
}

/// The `api` routes, with the tokens of `state`'s configuration (read from the environment
/// now; [`crate::check_config`] reports a missing one when the server starts).
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let (router, _) = parts();
    // `/api/openapi.json` answers without a token; the extractor of the others reads the
    // tokens from this extension.
    router.layer(Extension(tokens(state)))
}

/// The configured tokens, read from the environment (none, logged, when one cannot be read:
/// every token is refused until it is fixed).
pub(crate) fn tokens(state: &AppState) -> Arc<auth::Tokens> {
    match auth::Tokens::from_config(state.config()) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            tracing::error!("{e}; the API and the UI refuse every token until it is fixed");
            Arc::new(auth::Tokens::default())
        }
    }
}
