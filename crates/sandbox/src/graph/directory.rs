//! The directory beyond single users: deleted items (list, get, restore, purge, 30 days),
//! `users/delta` with delta tokens, and `/organization` with the verified domains.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::query::{check_select, check_top, next_link};
use super::users::{project, user_json, USERS};
use super::Query;
use crate::auth::GraphAuth;
use crate::http::{bad_request, empty, not_found, reply, select, Reply};
use crate::model::{Tombstone, World};
use crate::shared::{now_ms, Shared};

fn deleted_index(w: &World, t: usize, id: &str) -> Option<usize> {
    w.tenants[t].deleted_users.iter().position(|u| u.id == id)
}

/// `GET /directory/deletedItems`: Graph needs a type cast to list deleted items.
pub async fn list_uncast(GraphAuth(_tenant): GraphAuth) -> Reply {
    Err(bad_request("The type cast segment is required to list deleted items: use /directory/deletedItems/microsoft.graph.user (or .group, .application, ...)."))
}

/// `GET /directory/deletedItems/microsoft.graph.user` (or `graph.user`)
pub async fn list_users(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    let sel = check_select(q.get("$select"), &USERS)?;
    let top = check_top(&q, 100)?;
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let items: Vec<Value> = s.read(|w| {
        w.tenant(&tenant).map_or_else(Vec::new, |t| {
            let tn = &w.tenants[t];
            tn.deleted_users
                .iter()
                .map(|u| deleted_json(user_json(tn, u), sel.as_deref()))
                .collect()
        })
    });
    let total = items.len();
    let mut body = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects/microsoft.graph.user",
        "value": items.into_iter().skip(skip).take(top).collect::<Vec<_>>()});
    if skip + top < total {
        body["@odata.nextLink"] = json!(next_link(
            &headers,
            &uri,
            &[("$skiptoken", (skip + top).to_string())]
        ));
    }
    Ok(reply(StatusCode::OK, body))
}

/// A deleted user: the default properties plus `deletedDateTime`, or the `$select`ed ones.
fn deleted_json(full: Value, sel: Option<&str>) -> Value {
    let deleted = full["deletedDateTime"].clone();
    let mut v = project(full, sel);
    if sel.is_none() {
        v["deletedDateTime"] = deleted;
    }
    v
}

/// `GET /directory/deletedItems/{id}`
pub async fn get(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    q: Query,
) -> Reply {
    let sel = check_select(q.get("$select"), &USERS)?;
    s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let d = deleted_index(w, t, &id).ok_or_else(|| not_found(&id))?;
        let tn = &w.tenants[t];
        Ok(reply(
            StatusCode::OK,
            deleted_json(user_json(tn, &tn.deleted_users[d]), sel.as_deref()),
        ))
    })
}

/// `POST /directory/deletedItems/{id}/restore`: the user comes back with its licences, without
/// its group memberships (Graph restores those too; the sandbox drops them on delete).
pub async fn restore(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.write(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let d = deleted_index(w, t, &id).ok_or_else(|| not_found(&id))?;
        let upn = w.tenants[t].deleted_users[d].user_principal_name.clone();
        if w.tenants[t].user_any(&upn).is_some() {
            return Err(reply(
                StatusCode::BAD_REQUEST,
                json!({"error": {"code": "Request_BadRequest",
                    "message": "Another object with the same value for property userPrincipalName already exists.",
                    "details": [{"code": "ObjectConflict", "target": "userPrincipalName"}]}}),
            ));
        }
        let mut user = w.tenants[t].deleted_users.remove(d);
        user.deleted_date_time = None;
        user.deleted_at_ms = 0;
        let body = user_json(&w.tenants[t], &user);
        let key = format!("{}/restore", w.tenants[t].user_entity(&upn));
        w.tenants[t].users.push(user);
        w.created(key);
        Ok(reply(StatusCode::OK, body))
    })
}

/// `DELETE /directory/deletedItems/{id}`: gone for good.
pub async fn purge(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.write(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let d = deleted_index(w, t, &id).ok_or_else(|| not_found(&id))?;
        let user = w.tenants[t].deleted_users.remove(d);
        let version = w.next_seq();
        let key = format!(
            "{}/purge",
            w.tenants[t].user_entity(&user.user_principal_name)
        );
        w.tenants[t].purged_users.push(Tombstone {
            id: user.id,
            version,
        });
        w.deleted(key);
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// Where a delta round stands: changes after `since`, up to `upto` (the next token), `offset`
/// items already served.
struct Round {
    since: Option<u64>,
    upto: u64,
    offset: usize,
}

fn parse_token(t: &str) -> Option<u64> {
    t.strip_prefix("sbx").and_then(|n| n.parse().ok())
}

/// `GET /users/delta` (and `delta()`): the first round returns every user and ends with an
/// `@odata.deltaLink`; following it returns only users changed since, and
/// `{"id", "@removed": {"reason": "changed"|"deleted"}}` for soft-deleted and purged ones.
pub async fn users_delta(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    // `manager` in `$select` tracks the manager relationship: `manager@delta` on each user.
    let mut with_manager = false;
    let sel: Option<String> = q.get("$select").map(|sel| {
        sel.split(',')
            .map(str::trim)
            .filter(|p| {
                let manager = *p == "manager";
                with_manager |= manager;
                !manager
            })
            .collect::<Vec<_>>()
            .join(",")
    });
    let sel = match sel {
        Some(s) if s.is_empty() => Some("id".to_string()),
        Some(s) => check_select(Some(&s), &USERS)?,
        None => None,
    };
    let expand = super::expand::parse(&q)?;
    let page_size = headers
        .get("prefer")
        .and_then(|p| p.to_str().ok())
        .and_then(|p| {
            p.split(',')
                .find_map(|x| x.trim().strip_prefix("odata.maxpagesize="))
        })
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=999).contains(n));
    let page_size = super::expand::page_size(
        page_size.unwrap_or_else(|| s.read(|w| w.settings.page_size)),
        expand.is_some(),
    );
    let round = if let Some(skip) = q.get("$skiptoken") {
        let parts: Vec<&str> = skip.split('-').collect();
        let bad = || bad_request("Badly formed skip token.");
        let [since, upto, offset] = parts[..] else {
            return Err(bad());
        };
        Round {
            since: match since {
                "i" => None,
                n => Some(n.parse().map_err(|_| bad())?),
            },
            upto: upto.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        }
    } else {
        let since = match q.get("$deltatoken") {
            None => None,
            Some(t) => {
                Some(parse_token(t).ok_or_else(|| bad_request("Badly formed delta token."))?)
            }
        };
        Round {
            since,
            upto: s.read(|w| w.change_seq),
            offset: 0,
        }
    };
    let items: Vec<Value> = s.read(|w| {
        let Some(t) = w.tenant(&tenant) else {
            return Vec::new();
        };
        let tn = &w.tenants[t];
        let now = now_ms();
        let initial = round.since.is_none();
        let since = round.since.unwrap_or(0);
        let by_id = super::expand::index(tn);
        let mut out: Vec<(u64, Value)> = tn
            .users
            .iter()
            .filter(|u| u.visible_at_ms <= now && (initial || u.version > since))
            .map(|u| {
                let full = user_json(tn, u);
                let mut v = match sel.as_deref() {
                    Some(sel) => select(full, Some(&format!("id,{sel}"))),
                    None => project(full, None),
                };
                if with_manager {
                    if let Some(m) = manager_delta(u, &by_id, initial, now) {
                        v["manager@delta"] = m;
                    }
                }
                if let Some(e) = &expand {
                    e.apply(tn, &by_id, u, &mut v);
                }
                (u.version, v)
            })
            .collect();
        if !initial {
            let removed = |id: &str, reason: &str| {
                json!({"@odata.type": "#microsoft.graph.user", "id": id, "@removed": {"reason": reason}})
            };
            out.extend(
                tn.deleted_users
                    .iter()
                    .filter(|u| u.version > since)
                    .map(|u| (u.version, removed(&u.id, "changed"))),
            );
            out.extend(
                tn.purged_users
                    .iter()
                    .filter(|u| u.version > since)
                    .map(|u| (u.version, removed(&u.id, "deleted"))),
            );
        }
        out.sort_by_key(|(v, _)| *v);
        out.into_iter().map(|(_, v)| v).collect()
    });
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(round.offset)
        .take(page_size)
        .collect();
    let mut body = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": page});
    if round.offset + page_size < total {
        let since = round
            .since
            .map_or_else(|| "i".to_string(), |n| n.to_string());
        let token = format!("{since}-{}-{}", round.upto, round.offset + page_size);
        body["@odata.nextLink"] = json!(next_link(&headers, &uri, &[("$skiptoken", token)]));
    } else {
        body["@odata.deltaLink"] = json!(next_link(
            &headers,
            &uri,
            &[("$deltatoken", format!("sbx{}", round.upto))]
        ));
    }
    Ok(reply(StatusCode::OK, body))
}

/// A user's `manager@delta`: the manager's id, or (after the first round) the removed
/// manager marked `@removed`; `None` when there is nothing to say.
fn manager_delta(
    u: &crate::model::User,
    by_id: &std::collections::HashMap<&str, &crate::model::User>,
    initial: bool,
    now: u64,
) -> Option<Value> {
    let current = u
        .manager_id
        .as_deref()
        .and_then(|m| by_id.get(m))
        .filter(|m| m.visible_at_ms <= now);
    match (current, &u.removed_manager_id) {
        (Some(m), _) => Some(json!([{"@odata.type": "#microsoft.graph.user", "id": m.id}])),
        (None, Some(old)) if !initial => Some(
            json!([{"@odata.type": "#microsoft.graph.user", "id": old, "@removed": {"reason": "deleted"}}]),
        ),
        _ => None,
    }
}

fn organization_json(w: &World, t: usize) -> Value {
    let tn = &w.tenants[t];
    let domains: Vec<Value> = tn
        .domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": i == 0,
                   "isInitial": i == 0, "name": d, "type": "Managed"})
        })
        .collect();
    json!({"@odata.type": "#microsoft.graph.organization", "id": tn.tenant_id, "displayName": tn.name,
           "tenantType": "AAD", "countryLetterCode": "AU", "preferredLanguage": "en",
           "createdDateTime": "2020-01-01T00:00:00Z", "onPremisesSyncEnabled": tn.users.iter().any(|u| u.on_premises_sync_enabled),
           "businessPhones": [], "technicalNotificationMails": [], "securityComplianceNotificationMails": [],
           "assignedPlans": [], "provisionedPlans": [], "verifiedDomains": domains})
}

/// `GET /organization`: the tenant, with its verified domains.
pub async fn organization(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    q: Query,
) -> Reply {
    let sel = q.get("$select").cloned();
    s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&tenant))?;
        let org = select(organization_json(w, t), sel.as_deref());
        Ok(reply(
            StatusCode::OK,
            json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#organization", "value": [org]}),
        ))
    })
}

/// `GET /organization/{id}`
pub async fn organization_by_id(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    q: Query,
) -> Reply {
    let sel = q.get("$select").cloned();
    s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        if !w.tenants[t].tenant_id.eq_ignore_ascii_case(&id) {
            return Err(not_found(&id));
        }
        Ok(reply(
            StatusCode::OK,
            select(organization_json(w, t), sel.as_deref()),
        ))
    })
}
