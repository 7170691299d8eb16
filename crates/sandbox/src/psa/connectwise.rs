//! ConnectWise Manage: `/company/contacts` (conditions and `communicationItems/value` search,
//! create, JSON-Patch updates), `/company/companies`, `/service/tickets/{id}` (GET, JSON-Patch
//! of `status` by name and `summary`), `/service/tickets/{id}/notes`, and the callback
//! signing keys a callback's `Metadata.key_url` points at (`/system/callbackkey/{id}`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::Digest as _;

use super::{add_contact, add_note};
use crate::auth::CwAuth;
use crate::http::{reply, Reply};
use crate::model::PsaContact;
use crate::shared::Shared;

const BASE: &str = "/api-na.myconnectwise.net/v4_6_release/apis/3.0";

/// The path (under the sandbox URL) of callback signing key `id`: what a callback's
/// `Metadata.key_url` names.
pub fn callback_key_path(id: &str) -> String {
    format!("{BASE}/system/callbackkey/{id}")
}

/// The sandbox's signing key `id` (a fixed function of the id, so a test can sign callbacks).
pub fn callback_signing_key(id: &str) -> String {
    let digest = sha2::Sha256::digest(format!("tenure-sandbox-callback-key:{id}"));
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// ConnectWise routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            &format!("{BASE}/company/contacts"),
            get(contacts).post(create),
        )
        .route(
            &format!("{BASE}/company/contacts/{{id}}"),
            get(contact).patch(patch),
        )
        .route(&format!("{BASE}/company/companies"), get(companies))
        .route(
            &format!("{BASE}/service/tickets/{{id}}"),
            get(ticket).patch(patch_ticket),
        )
        .route(
            &format!("{BASE}/service/tickets/{{id}}/notes"),
            post(add_ticket_note).get(notes),
        )
        .route(
            &format!("{BASE}/system/callbackkey/{{id}}"),
            get(callback_key),
        )
}

/// `GET key_url`: the signing key of a callback, for the `clientId` the integration was issued
/// (api-facts.md §6.2: the receiver sends `clientId` and gets `{"signing_key": ...}`).
async fn callback_key(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Reply {
    let expected = s.read(|w| w.credentials.client_id.clone());
    let client_id = headers.get("clientid").and_then(|h| h.to_str().ok());
    if client_id != Some(expected.as_str()) {
        return Err(cw_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "clientId header is required",
            None,
        ));
    }
    Ok(reply(
        StatusCode::OK,
        json!({"signing_key": callback_signing_key(&id)}),
    ))
}

fn cw_error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let errors = field.map(|f| json!([{"code": "MissingRequiredField", "message": message, "resource": "contact", "field": f}])).unwrap_or_else(|| json!([]));
    reply(
        status,
        json!({"code": code, "message": message, "errors": errors}),
    )
}

fn contact_json(c: &PsaContact) -> Value {
    let mut items = vec![
        json!({"type": {"id": 1, "name": "Email"}, "value": c.email, "defaultFlag": true, "communicationType": "Email"}),
    ];
    if !c.phone.is_empty() {
        items.push(json!({"type": {"id": 2, "name": "Direct"}, "value": c.phone, "defaultFlag": true, "communicationType": "Phone"}));
    }
    json!({"id": c.id, "firstName": c.first_name, "lastName": c.last_name, "company": {"id": c.client_id}, "title": c.title, "inactiveFlag": !c.active,
           "communicationItems": items})
}

/// The value of the first communication item of `kind` (`Email`, `Phone`).
fn communication(body: &Value, kind: &str) -> Option<String> {
    body["communicationItems"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["communicationType"] == kind)
        .and_then(|i| i["value"].as_str())
        .map(str::to_string)
}

async fn contacts(
    State(s): State<Arc<Shared>>,
    _: CwAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let email = q
        .get("childConditions")
        .and_then(|c| c.split_once('='))
        .map(|(_, v)| v.trim_matches('"').to_lowercase());
    let company = q
        .get("conditions")
        .and_then(|c| c.strip_prefix("company/id="))
        .and_then(|v| v.trim().parse::<u64>().ok());
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let size: usize = q
        .get("pageSize")
        .and_then(|p| p.parse().ok())
        .unwrap_or(25)
        .clamp(1, 1000);
    let items: Vec<Value> = s.read(|w| {
        w.connectwise
            .contacts
            .iter()
            .filter(|c| email.as_ref().is_none_or(|e| c.email.to_lowercase() == *e))
            .filter(|c| company.is_none_or(|id| c.client_id == id))
            .skip((page - 1) * size)
            .take(size)
            .map(contact_json)
            .collect()
    });
    Ok(reply(StatusCode::OK, json!(items)))
}

async fn contact(State(s): State<Arc<Shared>>, _: CwAuth, Path(id): Path<u64>) -> Reply {
    s.read(|w| {
        let c = w
            .connectwise
            .contacts
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| {
                cw_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("Contact with id {id} not found"),
                    None,
                )
            })?;
        Ok(reply(StatusCode::OK, contact_json(c)))
    })
}

async fn create(State(s): State<Arc<Shared>>, _: CwAuth, Json(body): Json<Value>) -> Reply {
    let Some(first) = body["firstName"].as_str().filter(|f| !f.is_empty()) else {
        return Err(cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidObject",
            "contact object is invalid",
            Some("firstName"),
        ));
    };
    let company = body["company"]["id"].as_u64().unwrap_or(0);
    s.write(|w| {
        if !w.connectwise.clients.iter().any(|c| c.id == company) {
            return Err(cw_error(
                StatusCode::BAD_REQUEST,
                "InvalidObject",
                &format!("company id {company} not found"),
                Some("company"),
            ));
        }
        let email = body["communicationItems"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["communicationType"] == "Email" || i["type"]["id"] == 1)
            .and_then(|i| i["value"].as_str())
            .unwrap_or_default()
            .to_string();
        let c = PsaContact {
            id: 0,
            client_id: company,
            first_name: first.into(),
            last_name: body["lastName"].as_str().unwrap_or_default().into(),
            email,
            phone: communication(&body, "Phone").unwrap_or_default(),
            title: body["title"].as_str().unwrap_or_default().into(),
            active: !body["inactiveFlag"].as_bool().unwrap_or(false),
        };
        let id = add_contact(&mut w.connectwise, c);
        w.created(format!("connectwise/contact/{id}"));
        Ok(reply(
            StatusCode::CREATED,
            contact_json(w.connectwise.contacts.last().expect("just added")),
        ))
    })
}

async fn patch(
    State(s): State<Arc<Shared>>,
    _: CwAuth,
    Path(id): Path<u64>,
    Json(ops): Json<Value>,
) -> Reply {
    let Some(ops) = ops.as_array() else {
        return Err(cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidObject",
            "a JSON-Patch array is required",
            None,
        ));
    };
    s.write(|w| {
        let i = w
            .connectwise
            .contacts
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| {
                cw_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("Contact with id {id} not found"),
                    None,
                )
            })?;
        for op in ops {
            if op["op"] != "replace" {
                return Err(cw_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidObject",
                    "only `replace` operations are supported",
                    None,
                ));
            }
            let c = &mut w.connectwise.contacts[i];
            let v = &op["value"];
            match op["path"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/')
            {
                "inactiveFlag" => c.active = !v.as_bool().unwrap_or(false),
                "firstName" => c.first_name = v.as_str().unwrap_or_default().into(),
                "lastName" => c.last_name = v.as_str().unwrap_or_default().into(),
                "title" => c.title = v.as_str().unwrap_or_default().into(),
                "communicationItems" => {
                    if let Some(e) = communication(&json!({"communicationItems": v}), "Email") {
                        c.email = e;
                    }
                    c.phone = communication(&json!({"communicationItems": v}), "Phone")
                        .unwrap_or_default();
                }
                other => {
                    return Err(cw_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidObject",
                        &format!("path `{other}` cannot be patched"),
                        None,
                    ))
                }
            }
        }
        w.changed(format!("connectwise/contact/{id}"));
        Ok(reply(
            StatusCode::OK,
            contact_json(&w.connectwise.contacts[i]),
        ))
    })
}

async fn companies(State(s): State<Arc<Shared>>, _: CwAuth) -> Reply {
    let items: Vec<Value> = s.read(|w| {
        w.connectwise
            .clients
            .iter()
            .map(|c| json!({"id": c.id, "identifier": c.tenant, "name": c.name}))
            .collect()
    });
    Ok(reply(StatusCode::OK, json!(items)))
}

async fn add_ticket_note(
    State(s): State<Arc<Shared>>,
    _: CwAuth,
    Path(ticket): Path<u64>,
    Json(body): Json<Value>,
) -> Reply {
    let text = body["text"].as_str().unwrap_or_default().to_string();
    let flags = [
        "detailDescriptionFlag",
        "internalAnalysisFlag",
        "resolutionFlag",
    ];
    if text.is_empty() || !flags.iter().any(|f| body[f].as_bool() == Some(true)) {
        return Err(cw_error(StatusCode::BAD_REQUEST, "InvalidObject", "text and one of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag are required", Some("text")));
    }
    s.write(|w| {
        if !w.connectwise.tickets.iter().any(|t| t.id == ticket) {
            return Err(cw_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("Ticket with id {ticket} not found"),
                None,
            ));
        }
        let internal = body["internalAnalysisFlag"].as_bool() == Some(true);
        let id = add_note(&mut w.connectwise, ticket, text.clone(), internal);
        w.created(format!("connectwise/ticket/{ticket}/note/{id}"));
        Ok(reply(
            StatusCode::CREATED,
            json!({"id": id, "ticketId": ticket, "text": text, "internalAnalysisFlag": internal}),
        ))
    })
}

async fn notes(State(s): State<Arc<Shared>>, _: CwAuth, Path(ticket): Path<u64>) -> Reply {
    let items: Vec<Value> = s.read(|w| w.connectwise.notes.iter().filter(|n| n.ticket_id == ticket).map(|n| json!({"id": n.id, "ticketId": n.ticket_id, "text": n.text, "internalAnalysisFlag": n.internal})).collect());
    Ok(reply(StatusCode::OK, json!(items)))
}

fn ticket_json(t: &crate::model::PsaTicket) -> Value {
    json!({"id": t.id, "summary": t.summary, "company": {"id": t.client_id}, "status": {"name": t.status}})
}

async fn ticket(State(s): State<Arc<Shared>>, _: CwAuth, Path(id): Path<u64>) -> Reply {
    s.read(|w| {
        let t = w
            .connectwise
            .tickets
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| {
                cw_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("Ticket with id {id} not found"),
                    None,
                )
            })?;
        Ok(reply(StatusCode::OK, ticket_json(t)))
    })
}

/// JSON-Patch `replace` of `status` (`{"name"}`) and `summary`.
async fn patch_ticket(
    State(s): State<Arc<Shared>>,
    _: CwAuth,
    Path(id): Path<u64>,
    Json(ops): Json<Value>,
) -> Reply {
    let Some(ops) = ops.as_array() else {
        return Err(cw_error(
            StatusCode::BAD_REQUEST,
            "InvalidObject",
            "a JSON-Patch array is required",
            None,
        ));
    };
    s.write(|w| {
        let i = w
            .connectwise
            .tickets
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| {
                cw_error(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("Ticket with id {id} not found"),
                    None,
                )
            })?;
        for op in ops {
            let v = &op["value"];
            match (
                op["op"].as_str(),
                op["path"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches('/'),
            ) {
                (Some("replace"), "status") => {
                    let name = v["name"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| {
                            cw_error(
                                StatusCode::BAD_REQUEST,
                                "InvalidObject",
                                "status needs a name or id",
                                Some("status"),
                            )
                        })?;
                    w.connectwise.tickets[i].status = name.to_string();
                }
                (Some("replace"), "summary") => {
                    w.connectwise.tickets[i].summary = v.as_str().unwrap_or_default().to_string();
                }
                (_, other) => {
                    return Err(cw_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidObject",
                        &format!("path `{other}` cannot be patched"),
                        None,
                    ))
                }
            }
        }
        w.changed(format!("connectwise/ticket/{id}"));
        Ok(reply(
            StatusCode::OK,
            ticket_json(&w.connectwise.tickets[i]),
        ))
    })
}
