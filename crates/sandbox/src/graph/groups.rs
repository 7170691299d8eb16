//! Groups and membership: list, get, members, add and remove (`$ref`), memberOf.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::users::{locate, project, user_json};
use super::Query;
use crate::auth::GraphAuth;
use crate::http::{
    bad_request, base_url, empty, graph_error, list_params, matches, not_found, odata_page, reply,
    select, Reply,
};
use crate::model::{Group, World};
use crate::shared::Shared;

fn group_json(g: &Group) -> Value {
    json!({"@odata.type": "#microsoft.graph.group", "id": g.id, "displayName": g.display_name, "groupTypes": g.group_types,
           "mailEnabled": g.mail_enabled, "securityEnabled": g.security_enabled,
           "onPremisesSyncEnabled": if g.on_premises_sync_enabled { json!(true) } else { Value::Null },
           "membershipRule": if g.group_types.iter().any(|t| t == "DynamicMembership") { json!("user.accountEnabled -eq true") } else { Value::Null }})
}

fn find_group(w: &World, t: usize, id: &str) -> Option<usize> {
    w.tenants[t].groups.iter().position(|g| g.id == id)
}

/// `GET /groups`
pub async fn list(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    headers: HeaderMap,
    q: Query,
) -> Reply {
    let (clauses, top, skip) = list_params(&q, 100)?;
    let items: Vec<Value> = s.read(|w| {
        w.tenant(&tenant).map_or_else(Vec::new, |t| {
            w.tenants[t]
                .groups
                .iter()
                .map(group_json)
                .filter(|g| matches(g, &clauses))
                .map(|g| select(g, q.get("$select").map(String::as_str)))
                .collect()
        })
    });
    let mut next = format!(
        "{}/graph.microsoft.com/v1.0/groups?$top={top}",
        base_url(&headers)
    );
    if let Some(f) = q.get("$filter") {
        next.push_str(&format!(
            "&$filter={}",
            f.replace(' ', "%20").replace('\'', "%27")
        ));
    }
    Ok(reply(
        StatusCode::OK,
        odata_page(
            items,
            skip,
            top,
            &next,
            "https://graph.microsoft.com/v1.0/$metadata#groups",
        ),
    ))
}

/// `GET /groups/{id}`
pub async fn get(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let g = find_group(w, t, &id).ok_or_else(|| not_found(&id))?;
        Ok(reply(StatusCode::OK, group_json(&w.tenants[t].groups[g])))
    })
}

/// `GET /groups/{id}/members`
pub async fn members(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> Reply {
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let items = s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let g = find_group(w, t, &id).ok_or_else(|| not_found(&id))?;
        let tn = &w.tenants[t];
        Ok::<_, axum::response::Response>(
            tn.groups[g]
                .members
                .iter()
                .filter_map(|m| tn.user(m))
                .map(|u| {
                    project(
                        user_json(tn, &tn.users[u]),
                        Some("id,displayName,userPrincipalName"),
                    )
                })
                .collect::<Vec<_>>(),
        )
    })?;
    let next = format!(
        "{}/graph.microsoft.com/v1.0/groups/{id}/members?",
        base_url(&headers)
    );
    Ok(reply(
        StatusCode::OK,
        odata_page(
            items,
            skip,
            100,
            next.trim_end_matches('?'),
            "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
        ),
    ))
}

fn writable(g: &Group) -> Result<(), axum::response::Response> {
    if g.group_types.iter().any(|t| t == "DynamicMembership") {
        return Err(bad_request("Insufficient privileges to complete the operation. Members of a group with dynamic membership cannot be changed."));
    }
    if g.on_premises_sync_enabled {
        return Err(bad_request("Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."));
    }
    if g.mail_enabled && !g.group_types.iter().any(|t| t == "Unified") {
        return Err(bad_request(
            "Cannot Update a mail-enabled security groups and or distribution list.",
        ));
    }
    Ok(())
}

/// `POST /groups/{id}/members/$ref`
pub async fn add_member(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let reference = body["@odata.id"].as_str().unwrap_or_default().to_string();
    let member = reference.rsplit('/').next().unwrap_or_default().to_string();
    if member.is_empty() {
        return Err(bad_request("Invalid URL format specified in @odata.id."));
    }
    s.write(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let g = find_group(w, t, &id).ok_or_else(|| not_found(&id))?;
        let u = w.tenants[t].user(&member).ok_or_else(|| not_found(&member))?;
        writable(&w.tenants[t].groups[g])?;
        let uid = w.tenants[t].users[u].id.clone();
        if w.tenants[t].groups[g].members.contains(&uid) {
            return Err(bad_request("One or more added object references already exist for the following modified properties: 'members'."));
        }
        w.tenants[t].groups[g].members.push(uid.clone());
        let key = format!("{}/group/{}/member/{}", w.tenants[t].id, w.tenants[t].groups[g].display_name, w.tenants[t].users[u].user_principal_name.to_lowercase());
        w.created(key);
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// `DELETE /groups/{id}/members/{user}/$ref`
pub async fn remove_member(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path((id, member)): Path<(String, String)>,
) -> Reply {
    s.write(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let g = find_group(w, t, &id).ok_or_else(|| not_found(&id))?;
        let u = w.tenants[t].user(&member).ok_or_else(|| not_found(&id))?;
        writable(&w.tenants[t].groups[g])?;
        let uid = w.tenants[t].users[u].id.clone();
        let before = w.tenants[t].groups[g].members.len();
        w.tenants[t].groups[g].members.retain(|m| m != &uid);
        if w.tenants[t].groups[g].members.len() == before {
            return Err(not_found(&id));
        }
        let key = format!(
            "{}/group/{}/member/{}",
            w.tenants[t].id,
            w.tenants[t].groups[g].display_name,
            w.tenants[t].users[u].user_principal_name.to_lowercase()
        );
        w.deleted(key);
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// `GET /users/{id}/memberOf`
pub async fn member_of(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Query,
) -> Reply {
    let skip: usize = q
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let top: usize = q
        .get("$top")
        .and_then(|t| t.parse().ok())
        .unwrap_or(100)
        .clamp(1, 999);
    let items = s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let uid = &w.tenants[t].users[u].id;
        Ok::<_, axum::response::Response>(
            w.tenants[t]
                .groups
                .iter()
                .filter(|g| g.members.contains(uid))
                .map(group_json)
                .collect::<Vec<_>>(),
        )
    })?;
    if items.is_empty() && id.is_empty() {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Missing user id.",
        ));
    }
    let next = format!(
        "{}/graph.microsoft.com/v1.0/users/{id}/memberOf?$top={top}",
        base_url(&headers)
    );
    Ok(reply(
        StatusCode::OK,
        odata_page(
            items,
            skip,
            top,
            &next,
            "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
        ),
    ))
}
