//! Groups and membership: list, get, members, add and remove (`$ref`), memberOf.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::query::{ListQuery, Shape};
use super::users::{locate, project, user_json, USERS};
use super::Query;
use crate::auth::GraphAuth;
use crate::http::{bad_request, empty, not_found, reply, select, Reply};
use crate::model::{Group, Tenant, World};
use crate::shared::Shared;

/// The group collection's query shape.
const GROUPS: Shape = Shape {
    type_name: "group",
    properties: &[
        "id",
        "displayName",
        "groupTypes",
        "mailEnabled",
        "securityEnabled",
        "onPremisesSyncEnabled",
        "membershipRule",
        "mail",
        "description",
    ],
    basic_order: &["displayName"],
};

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
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    let query = ListQuery::parse(&q, &headers, 100, &GROUPS)?;
    let items: Vec<Value> = s.read(|w| {
        w.tenant(&tenant).map_or_else(Vec::new, |t| {
            w.tenants[t].groups.iter().map(group_json).collect()
        })
    });
    Ok(query.answer(
        items,
        select,
        &headers,
        &uri,
        "https://graph.microsoft.com/v1.0/$metadata#groups",
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

/// `GET /groups/{id}/members` (and its `microsoft.graph.user` / `graph.user` casts: the
/// sandbox's members are users): paged by `$top` (default 100), `$select`able.
pub async fn members(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    member_users(s, tenant, id, headers, uri, q, false).await
}

/// `GET /groups/{id}/transitiveMembers` (and its user casts): the users in the group directly
/// or through nested groups, each once.
pub async fn transitive_members(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    member_users(s, tenant, id, headers, uri, q, true).await
}

/// The member ids of group `g`, also through nested groups when `transitive`, each once.
fn member_ids(tn: &Tenant, g: usize, transitive: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen_groups = vec![g];
    let mut frontier = vec![g];
    while let Some(g) = frontier.pop() {
        for m in &tn.groups[g].members {
            match tn.groups.iter().position(|x| &x.id == m) {
                Some(nested) if transitive => {
                    if !seen_groups.contains(&nested) {
                        seen_groups.push(nested);
                        frontier.push(nested);
                    }
                }
                Some(_) => {}
                None => {
                    if !out.contains(m) {
                        out.push(m.clone());
                    }
                }
            }
        }
    }
    out
}

async fn member_users(
    s: Arc<Shared>,
    tenant: String,
    id: String,
    headers: HeaderMap,
    uri: axum::http::Uri,
    q: Query,
    transitive: bool,
) -> Reply {
    let query = ListQuery::parse(&q, &headers, 100, &USERS)?;
    let items = s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let g = find_group(w, t, &id).ok_or_else(|| not_found(&id))?;
        let tn = &w.tenants[t];
        let by_id = super::expand::index(tn);
        let now = crate::shared::now_ms();
        Ok::<_, axum::response::Response>(
            member_ids(tn, g, transitive)
                .iter()
                .filter_map(|m| by_id.get(m.as_str()))
                .filter(|u| u.visible_at_ms <= now)
                .map(|u| user_json(tn, u))
                .collect::<Vec<_>>(),
        )
    })?;
    let context = if uri.path().ends_with("graph.user") {
        "https://graph.microsoft.com/v1.0/$metadata#users"
    } else {
        "https://graph.microsoft.com/v1.0/$metadata#directoryObjects"
    };
    Ok(query.answer(items, project, &headers, &uri, context))
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

/// The groups holding `member` (a user or group id) directly, or also through nested groups.
fn groups_of(tn: &Tenant, member: &str, transitive: bool) -> Vec<usize> {
    let mut found: Vec<usize> = Vec::new();
    let mut frontier = vec![member.to_string()];
    while let Some(m) = frontier.pop() {
        for (i, g) in tn.groups.iter().enumerate() {
            if g.members.contains(&m) && !found.contains(&i) {
                found.push(i);
                if transitive {
                    frontier.push(g.id.clone());
                }
            }
        }
    }
    found
}

async fn memberships(
    s: Arc<Shared>,
    tenant: String,
    id: String,
    headers: HeaderMap,
    uri: axum::http::Uri,
    q: Query,
    transitive: bool,
) -> Reply {
    let query = ListQuery::parse(&q, &headers, 100, &GROUPS)?;
    let items = s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let tn = &w.tenants[t];
        Ok::<_, axum::response::Response>(
            groups_of(tn, &tn.users[u].id, transitive)
                .into_iter()
                .map(|g| group_json(&tn.groups[g]))
                .collect::<Vec<_>>(),
        )
    })?;
    let context = if uri.path().ends_with("graph.group") {
        "https://graph.microsoft.com/v1.0/$metadata#groups"
    } else {
        "https://graph.microsoft.com/v1.0/$metadata#directoryObjects"
    };
    Ok(query.answer(items, select, &headers, &uri, context))
}

/// `GET /users/{id}/memberOf` (and its `microsoft.graph.group` / `graph.group` casts: the
/// sandbox's directory objects are all groups).
pub async fn member_of(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    memberships(s, tenant, id, headers, uri, q, false).await
}

/// `GET /users/{id}/transitiveMemberOf` (and its casts): direct and nested memberships.
pub async fn transitive_member_of(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    memberships(s, tenant, id, headers, uri, q, true).await
}
