//! HaloPSA: `/api/Users` (contacts; POST arrays upsert, `inactive` deactivates), `/api/Client`,
//! `/api/Site`, `/api/Tickets` (POST with `id` updates `status_id` / `summary`), and
//! `/api/Actions` (notes, which need an `outcome_id`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{add_contact, add_note, status_id, status_name, HALO_STATUSES};
use crate::auth::HaloAuth;
use crate::http::{reply, Reply};
use crate::model::{PsaContact, World};
use crate::shared::Shared;

const BASE: &str = "/sandbox.halopsa.com/api";

/// Halo routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(&format!("{BASE}/Users"), get(users).post(upsert_users))
        .route(&format!("{BASE}/Users/{{id}}"), get(user))
        .route(&format!("{BASE}/Client"), get(clients))
        .route(&format!("{BASE}/Site"), get(sites))
        .route(
            &format!("{BASE}/Tickets"),
            axum::routing::post(update_tickets),
        )
        .route(&format!("{BASE}/Tickets/{{id}}"), get(ticket))
        .route(&format!("{BASE}/Actions"), get(actions).post(add_actions))
}

fn user_json(w: &World, c: &PsaContact) -> Value {
    let site = w
        .halo
        .clients
        .iter()
        .find(|x| x.id == c.client_id)
        .map_or(0, |x| x.site_id);
    json!({"id": c.id, "name": format!("{} {}", c.first_name, c.last_name), "firstname": c.first_name, "surname": c.last_name,
           "client_id": c.client_id, "site_id": site, "emailaddress": c.email, "phonenumber": c.phone, "title": c.title, "inactive": !c.active})
}

async fn users(
    State(s): State<Arc<Shared>>,
    _: HaloAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let include_inactive = q.get("includeinactive").is_some_and(|v| v == "true");
    let users: Vec<Value> = s.read(|w| {
        w.halo
            .contacts
            .iter()
            .filter(|c| {
                q.get("client_id")
                    .and_then(|x| x.parse::<u64>().ok())
                    .is_none_or(|id| c.client_id == id)
            })
            .filter(|c| include_inactive || c.active)
            .filter(|c| {
                q.get("search").is_none_or(|x| {
                    c.email.eq_ignore_ascii_case(x)
                        || format!("{} {}", c.first_name, c.last_name)
                            .to_lowercase()
                            .contains(&x.to_lowercase())
                })
            })
            .map(|c| user_json(w, c))
            .collect()
    });
    Ok(reply(
        StatusCode::OK,
        json!({"record_count": users.len(), "users": users}),
    ))
}

async fn upsert_users(State(s): State<Arc<Shared>>, _: HaloAuth, Json(body): Json<Value>) -> Reply {
    let Some(items) = body.as_array() else {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!("The request body must be a JSON array of users."),
        ));
    };
    s.write(|w| {
        let mut out = Vec::new();
        for item in items {
            let id = item["id"].as_u64();
            let text = |k: &str| item[k].as_str().map(str::to_string);
            match id {
                Some(id) => {
                    let i = w
                        .halo
                        .contacts
                        .iter()
                        .position(|c| c.id == id)
                        .ok_or_else(|| {
                            reply(
                                StatusCode::NOT_FOUND,
                                json!(format!("User {id} not found.")),
                            )
                        })?;
                    let c = &mut w.halo.contacts[i];
                    if let Some(v) = text("firstname") {
                        c.first_name = v;
                    }
                    if let Some(v) = text("surname") {
                        c.last_name = v;
                    }
                    if let Some(v) = text("emailaddress") {
                        c.email = v;
                    }
                    if let Some(v) = text("phonenumber") {
                        c.phone = v;
                    }
                    if let Some(v) = text("title") {
                        c.title = v;
                    }
                    if let Some(v) = item["inactive"].as_bool() {
                        c.active = !v;
                    }
                    w.changed(format!("halo/contact/{id}"));
                    out.push(user_json(w, &w.halo.contacts[i]));
                }
                None => {
                    let site = item["site_id"].as_u64().ok_or_else(|| {
                        reply(StatusCode::BAD_REQUEST, json!("site_id is required."))
                    })?;
                    let client = w
                        .halo
                        .clients
                        .iter()
                        .find(|c| c.site_id == site)
                        .map(|c| c.id)
                        .ok_or_else(|| {
                            reply(
                                StatusCode::BAD_REQUEST,
                                json!(format!("Site {site} not found.")),
                            )
                        })?;
                    let contact = PsaContact {
                        id: 0,
                        client_id: client,
                        first_name: text("firstname").unwrap_or_default(),
                        last_name: text("surname").unwrap_or_default(),
                        email: text("emailaddress").unwrap_or_default(),
                        phone: text("phonenumber").unwrap_or_default(),
                        title: text("title").unwrap_or_default(),
                        active: !item["inactive"].as_bool().unwrap_or(false),
                    };
                    let id = add_contact(&mut w.halo, contact);
                    w.created(format!("halo/contact/{id}"));
                    let c = w.halo.contacts.last().cloned().unwrap_or_default();
                    out.push(user_json(w, &c));
                }
            }
        }
        Ok(reply(
            StatusCode::CREATED,
            if out.len() == 1 {
                out.remove(0)
            } else {
                json!(out)
            },
        ))
    })
}

async fn user(State(s): State<Arc<Shared>>, _: HaloAuth, Path(id): Path<u64>) -> Reply {
    s.read(|w| {
        let c = w.halo.contacts.iter().find(|c| c.id == id).ok_or_else(|| {
            reply(
                StatusCode::NOT_FOUND,
                json!(format!("User {id} not found.")),
            )
        })?;
        Ok(reply(StatusCode::OK, user_json(w, c)))
    })
}

async fn sites(
    State(s): State<Arc<Shared>>,
    _: HaloAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let client: Option<u64> = q.get("client_id").and_then(|c| c.parse().ok());
    let sites: Vec<Value> = s.read(|w| {
        w.halo
            .clients
            .iter()
            .filter(|c| client.is_none_or(|id| c.id == id))
            .map(|c| json!({"id": c.site_id, "client_id": c.id, "client_name": c.name, "name": "Main"}))
            .collect()
    });
    Ok(reply(
        StatusCode::OK,
        json!({"record_count": sites.len(), "sites": sites}),
    ))
}

fn ticket_json(t: &crate::model::PsaTicket) -> Value {
    json!({"id": t.id, "client_id": t.client_id, "summary": t.summary, "status_id": status_id(HALO_STATUSES, &t.status), "status": t.status})
}

/// `POST /api/Tickets`: the sandbox only updates (with `id`): `status_id`, `summary`.
async fn update_tickets(
    State(s): State<Arc<Shared>>,
    _: HaloAuth,
    Json(body): Json<Value>,
) -> Reply {
    let Some(items) = body.as_array() else {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!("The request body must be a JSON array of tickets."),
        ));
    };
    s.write(|w| {
        let mut out = Vec::new();
        for item in items {
            let id = item["id"].as_u64().ok_or_else(|| {
                reply(
                    StatusCode::BAD_REQUEST,
                    json!("The sandbox only updates tickets: id is required."),
                )
            })?;
            let i = w
                .halo
                .tickets
                .iter()
                .position(|t| t.id == id)
                .ok_or_else(|| {
                    reply(
                        StatusCode::NOT_FOUND,
                        json!(format!("Ticket {id} not found.")),
                    )
                })?;
            if let Some(sid) = item["status_id"].as_u64() {
                let name = status_name(HALO_STATUSES, sid).ok_or_else(|| {
                    reply(
                        StatusCode::BAD_REQUEST,
                        json!(format!("Status {sid} not found.")),
                    )
                })?;
                w.halo.tickets[i].status = name.to_string();
            }
            if let Some(summary) = item["summary"].as_str() {
                w.halo.tickets[i].summary = summary.to_string();
            }
            w.changed(format!("halo/ticket/{id}"));
            out.push(ticket_json(&w.halo.tickets[i]));
        }
        Ok(reply(
            StatusCode::CREATED,
            if out.len() == 1 {
                out.remove(0)
            } else {
                json!(out)
            },
        ))
    })
}

async fn clients(State(s): State<Arc<Shared>>, _: HaloAuth) -> Reply {
    let clients: Vec<Value> = s.read(|w| {
        w.halo
            .clients
            .iter()
            .map(|c| json!({"id": c.id, "name": c.name, "toplevel_id": 1, "inactive": false}))
            .collect()
    });
    Ok(reply(
        StatusCode::OK,
        json!({"record_count": clients.len(), "clients": clients}),
    ))
}

async fn ticket(State(s): State<Arc<Shared>>, _: HaloAuth, Path(id): Path<u64>) -> Reply {
    s.read(|w| {
        let t = w.halo.tickets.iter().find(|t| t.id == id).ok_or_else(|| {
            reply(
                StatusCode::NOT_FOUND,
                json!(format!("Ticket {id} not found.")),
            )
        })?;
        Ok(reply(StatusCode::OK, ticket_json(t)))
    })
}

async fn actions(
    State(s): State<Arc<Shared>>,
    _: HaloAuth,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let ticket: Option<u64> = q.get("ticket_id").and_then(|t| t.parse().ok());
    let actions: Vec<Value> = s.read(|w| w.halo.notes.iter().filter(|n| ticket.is_none_or(|t| n.ticket_id == t))
        .map(|n| json!({"id": n.id, "ticket_id": n.ticket_id, "note_html": n.text, "hiddenfromuser": n.internal, "outcome_id": 7})).collect());
    Ok(reply(
        StatusCode::OK,
        json!({"record_count": actions.len(), "actions": actions}),
    ))
}

async fn add_actions(State(s): State<Arc<Shared>>, _: HaloAuth, Json(body): Json<Value>) -> Reply {
    let Some(items) = body.as_array() else {
        return Err(reply(
            StatusCode::BAD_REQUEST,
            json!("The request body must be a JSON array of actions."),
        ));
    };
    s.write(|w| {
        let mut out = Vec::new();
        for a in items {
            let ticket = a["ticket_id"]
                .as_u64()
                .ok_or_else(|| reply(StatusCode::BAD_REQUEST, json!("ticket_id is required.")))?;
            if !w.halo.tickets.iter().any(|t| t.id == ticket) {
                return Err(reply(
                    StatusCode::NOT_FOUND,
                    json!(format!("Ticket {ticket} not found.")),
                ));
            }
            if a["outcome_id"].as_u64().is_none() && a["outcome"].as_str().is_none() {
                return Err(reply(
                    StatusCode::BAD_REQUEST,
                    json!("An Outcome must be entered for this Action"),
                ));
            }
            let text = a["note_html"]
                .as_str()
                .or(a["note"].as_str())
                .unwrap_or_default()
                .to_string();
            let id = add_note(
                &mut w.halo,
                ticket,
                text.clone(),
                a["hiddenfromuser"].as_bool().unwrap_or(false),
            );
            w.created(format!("halo/ticket/{ticket}/note/{id}"));
            w.changed(format!("halo/ticket/{ticket}/notes"));
            out.push(json!({"id": id, "ticket_id": ticket, "note_html": text}));
        }
        Ok(reply(
            StatusCode::CREATED,
            if out.len() == 1 {
                out.remove(0)
            } else {
                json!(out)
            },
        ))
    })
}
