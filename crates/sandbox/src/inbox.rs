//! Teams Workflows webhooks: any POST under the Logic Apps host is accepted with 202 and an
//! empty body (the real behaviour), provided it carries `sig=` and a message envelope; the
//! bodies land in the sandbox inbox. Email arrives through Graph `sendMail`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::http::{empty, reply, Reply};
use crate::shared::{now_rfc3339, Shared};

/// Teams webhook routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route(
        "/prod-00.westus.logic.azure.com/workflows/{id}/triggers/manual/paths/invoke",
        post(post_card),
    )
}

async fn post_card(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    body: Option<Json<Value>>,
) -> Reply {
    if q.get("sig").is_none_or(|sig| sig.is_empty()) {
        return Err(reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": {"code": "DirectApiAuthorizationRequired", "message": "The request must be authenticated only by Shared Access scheme."}}),
        ));
    }
    let Some(Json(body)) = body else {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "InvalidRequestContent", "message": "The request content is not valid JSON."}}),
        ));
    };
    if body["type"] != "message" || body["attachments"].as_array().is_none_or(|a| a.is_empty()) {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "InvalidTemplate", "message": "The 'attachments' property of the message is required."}}),
        ));
    }
    s.write(|w| {
        w.inbox
            .teams
            .push(json!({"workflow": id, "received_at": now_rfc3339(), "body": body}));
        w.created(format!("teams/{id}/post/{}", w.inbox.teams.len()));
    });
    Ok(empty(StatusCode::ACCEPTED))
}
