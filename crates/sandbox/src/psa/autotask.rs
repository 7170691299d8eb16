//! Autotask REST: zone discovery, `Contacts/query` (paged with `pageDetails.nextPageUrl`),
//! contacts created and deactivated under their company, tickets (GET, PATCH of `status` and
//! `title`) and their notes (POST, GET).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{add_contact, add_note, status_id, status_name, AUTOTASK_STATUSES};
use crate::auth::AtAuth;
use crate::http::{base_url, reply, Reply};
use crate::model::PsaContact;
use crate::shared::Shared;

const HOST: &str = "/webservices2.autotask.net/atservicesrest";

/// Autotask routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(&format!("{HOST}/v1.0/zoneInformation"), get(zone))
        .route(
            &format!("{HOST}/V1.0/Contacts/query"),
            post(query).get(query_get),
        )
        .route(
            &format!("{HOST}/V1.0/Companies/{{cid}}/Contacts"),
            post(create).patch(update),
        )
        .route(
            &format!("{HOST}/V1.0/Tickets/{{tid}}/Notes"),
            post(add_ticket_note).get(ticket_notes),
        )
        .route(&format!("{HOST}/V1.0/Tickets/{{tid}}"), get(ticket))
        .route(
            &format!("{HOST}/V1.0/Tickets"),
            axum::routing::patch(update_ticket),
        )
}

fn at_error(status: StatusCode, message: &str) -> axum::response::Response {
    reply(status, json!({"errors": [message]}))
}

async fn zone(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Reply {
    if q.get("user").is_none_or(|u| u.is_empty()) {
        return Err(at_error(
            StatusCode::BAD_REQUEST,
            "The user parameter is required.",
        ));
    }
    let url = format!("{}{HOST}/", base_url(&headers));
    Ok(reply(
        StatusCode::OK,
        json!({"zoneName": "Sandbox", "url": url, "webUrl": "https://ww2.autotask.net/", "ci": 0}),
    ))
}

fn contact_json(c: &PsaContact) -> Value {
    json!({"id": c.id, "companyID": c.client_id, "firstName": c.first_name, "lastName": c.last_name, "emailAddress": c.email, "phone": c.phone, "title": c.title, "isActive": i32::from(c.active)})
}

fn run_query(s: &Shared, search: &Value, headers: &HeaderMap, offset: usize) -> Value {
    let max = search["MaxRecords"].as_u64().unwrap_or(500).clamp(1, 500) as usize;
    let filters: Vec<Value> = search["filter"].as_array().cloned().unwrap_or_default();
    let all: Vec<Value> = s.read(|w| {
        w.autotask
            .contacts
            .iter()
            .map(contact_json)
            .filter(|c| {
                filters.iter().all(|f| {
                    let field = f["field"].as_str().unwrap_or_default();
                    let got = c.get(field).or_else(|| {
                        c.as_object().and_then(|o| {
                            o.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(field))
                                .map(|(_, v)| v)
                        })
                    });
                    match (f["op"].as_str(), got) {
                        (Some("eq"), Some(Value::String(a))) => f["value"]
                            .as_str()
                            .is_some_and(|b| a.eq_ignore_ascii_case(b)),
                        (Some("eq"), Some(a)) => a == &f["value"],
                        (Some("exist"), Some(_)) => true,
                        _ => false,
                    }
                })
            })
            .collect()
    });
    let total = all.len();
    let items: Vec<Value> = all.into_iter().skip(offset).take(max).collect();
    let next = (offset + max < total).then(|| {
        let q = serde_json::to_string(search).unwrap_or_default();
        format!(
            "{}{HOST}/V1.0/Contacts/query?search={}&offset={}",
            base_url(headers),
            urlencode(&q),
            offset + max
        )
    });
    json!({"items": items, "pageDetails": {"count": items.len(), "requestCount": max, "prevPageUrl": null, "nextPageUrl": next}})
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn query(
    State(s): State<Arc<Shared>>,
    _: AtAuth,
    headers: HeaderMap,
    Json(search): Json<Value>,
) -> Reply {
    Ok(reply(StatusCode::OK, run_query(&s, &search, &headers, 0)))
}

async fn query_get(
    State(s): State<Arc<Shared>>,
    _: AtAuth,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let search: Value = q
        .get("search")
        .and_then(|x| serde_json::from_str(x).ok())
        .ok_or_else(|| at_error(StatusCode::BAD_REQUEST, "search must be a JSON query"))?;
    let offset = q.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0);
    Ok(reply(
        StatusCode::OK,
        run_query(&s, &search, &headers, offset),
    ))
}

async fn create(
    State(s): State<Arc<Shared>>,
    _: AtAuth,
    Path(cid): Path<u64>,
    Json(body): Json<Value>,
) -> Reply {
    for f in ["firstName", "lastName"] {
        if body[f].as_str().is_none_or(str::is_empty) {
            return Err(at_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("Missing Required Field: {f}"),
            ));
        }
    }
    s.write(|w| {
        if !w.autotask.clients.iter().any(|c| c.id == cid) {
            return Err(at_error(
                StatusCode::NOT_FOUND,
                &format!("Company {cid} not found."),
            ));
        }
        let c = PsaContact {
            id: 0,
            client_id: cid,
            first_name: body["firstName"].as_str().unwrap_or_default().into(),
            last_name: body["lastName"].as_str().unwrap_or_default().into(),
            email: body["emailAddress"].as_str().unwrap_or_default().into(),
            phone: body["phone"].as_str().unwrap_or_default().into(),
            title: body["title"].as_str().unwrap_or_default().into(),
            active: body["isActive"].as_i64().unwrap_or(1) == 1,
        };
        let id = add_contact(&mut w.autotask, c);
        w.created(format!("autotask/contact/{id}"));
        Ok(reply(StatusCode::OK, json!({"itemId": id})))
    })
}

async fn update(
    State(s): State<Arc<Shared>>,
    _: AtAuth,
    Path(cid): Path<u64>,
    Json(body): Json<Value>,
) -> Reply {
    let Some(id) = body["id"].as_u64() else {
        return Err(at_error(StatusCode::BAD_REQUEST, "id is required"));
    };
    s.write(|w| {
        let i = w
            .autotask
            .contacts
            .iter()
            .position(|c| c.id == id && c.client_id == cid)
            .ok_or_else(|| {
                at_error(
                    StatusCode::NOT_FOUND,
                    &format!("Contact {id} not found under company {cid}."),
                )
            })?;
        let c = &mut w.autotask.contacts[i];
        if let Some(v) = body.get("isActive") {
            match v.as_i64() {
                Some(0) => c.active = false,
                Some(1) => c.active = true,
                _ => return Err(at_error(StatusCode::BAD_REQUEST, "isActive must be 0 or 1")),
            }
        }
        if let Some(v) = body["title"].as_str() {
            c.title = v.into();
        }
        if let Some(v) = body["emailAddress"].as_str() {
            c.email = v.into();
        }
        for (field, slot) in [
            ("firstName", &mut c.first_name),
            ("lastName", &mut c.last_name),
            ("phone", &mut c.phone),
        ] {
            if let Some(v) = body[field].as_str() {
                *slot = v.into();
            }
        }
        w.changed(format!("autotask/contact/{id}"));
        Ok(reply(StatusCode::OK, json!({"itemId": id})))
    })
}

async fn add_ticket_note(
    State(s): State<Arc<Shared>>,
    _: AtAuth,
    Path(tid): Path<u64>,
    Json(body): Json<Value>,
) -> Reply {
    let description = body["description"].as_str().unwrap_or_default().to_string();
    if description.is_empty()
        || body["noteType"].as_i64().is_none()
        || body["publish"].as_i64().is_none()
    {
        return Err(at_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Missing Required Field: description, noteType and publish are required",
        ));
    }
    s.write(|w| {
        if !w.autotask.tickets.iter().any(|t| t.id == tid) {
            return Err(at_error(
                StatusCode::NOT_FOUND,
                &format!("Ticket {tid} not found."),
            ));
        }
        let id = add_note(
            &mut w.autotask,
            tid,
            description,
            body["publish"].as_i64() == Some(2),
        );
        w.created(format!("autotask/ticket/{tid}/note/{id}"));
        Ok(reply(StatusCode::OK, json!({"itemId": id})))
    })
}

async fn ticket_notes(State(s): State<Arc<Shared>>, _: AtAuth, Path(tid): Path<u64>) -> Reply {
    let items: Vec<Value> = s.read(|w| {
        w.autotask
            .notes
            .iter()
            .filter(|n| n.ticket_id == tid)
            .map(|n| json!({"id": n.id, "ticketID": n.ticket_id, "description": n.text, "noteType": 1, "publish": if n.internal { 2 } else { 1 }}))
            .collect()
    });
    Ok(reply(
        StatusCode::OK,
        json!({"items": items, "pageDetails": {"count": items.len(), "requestCount": 500, "prevPageUrl": null, "nextPageUrl": null}}),
    ))
}

fn ticket_json(t: &crate::model::PsaTicket) -> Value {
    json!({"id": t.id, "companyID": t.client_id, "title": t.summary, "status": status_id(AUTOTASK_STATUSES, &t.status)})
}

async fn ticket(State(s): State<Arc<Shared>>, _: AtAuth, Path(tid): Path<u64>) -> Reply {
    s.read(|w| {
        let t = w
            .autotask
            .tickets
            .iter()
            .find(|t| t.id == tid)
            .ok_or_else(|| at_error(StatusCode::NOT_FOUND, &format!("Ticket {tid} not found.")))?;
        Ok(reply(StatusCode::OK, json!({"item": ticket_json(t)})))
    })
}

/// `PATCH /V1.0/Tickets` with `{"id", "status": <picklist int>, "title"}`.
async fn update_ticket(State(s): State<Arc<Shared>>, _: AtAuth, Json(body): Json<Value>) -> Reply {
    let Some(id) = body["id"].as_u64() else {
        return Err(at_error(StatusCode::BAD_REQUEST, "id is required"));
    };
    s.write(|w| {
        let i = w
            .autotask
            .tickets
            .iter()
            .position(|t| t.id == id)
            .ok_or_else(|| at_error(StatusCode::NOT_FOUND, &format!("Ticket {id} not found.")))?;
        if let Some(v) = body.get("status") {
            let name = v
                .as_u64()
                .and_then(|n| status_name(AUTOTASK_STATUSES, n))
                .ok_or_else(|| {
                    at_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("Value {v} is not a valid status."),
                    )
                })?;
            w.autotask.tickets[i].status = name.to_string();
        }
        if let Some(v) = body["title"].as_str() {
            w.autotask.tickets[i].summary = v.to_string();
        }
        w.changed(format!("autotask/ticket/{id}"));
        Ok(reply(StatusCode::OK, json!({"itemId": id})))
    })
}
