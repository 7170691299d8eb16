//! Directory role assignments: `GET /roleManagement/directory/roleAssignments` (paged,
//! `$select`, `$filter` on `principalId` / `roleDefinitionId`) and one assignment by id. The
//! seed says who holds which role; the sandbox serves no way to change them.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::query::{check_select, ListQuery, Shape};
use super::Query;
use crate::auth::GraphAuth;
use crate::http::{not_found, reply, select, Reply};
use crate::model::RoleAssignment;
use crate::shared::Shared;

/// The role assignment collection's query shape.
const ROLE_ASSIGNMENTS: Shape = Shape {
    type_name: "unifiedRoleAssignment",
    properties: &[
        "id",
        "principalId",
        "roleDefinitionId",
        "directoryScopeId",
        "appScopeId",
    ],
    basic_order: &[],
};

fn assignment_json(a: &RoleAssignment) -> Value {
    let scope = if a.directory_scope_id.is_empty() {
        "/"
    } else {
        a.directory_scope_id.as_str()
    };
    json!({"id": a.id, "principalId": a.principal_id, "roleDefinitionId": a.role_definition_id,
           "directoryScopeId": scope, "appScopeId": null})
}

/// `GET /roleManagement/directory/roleAssignments`
pub async fn list(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    let query = ListQuery::parse(
        &q,
        &headers,
        s.read(|w| w.settings.page_size),
        &ROLE_ASSIGNMENTS,
    )?;
    let items: Vec<Value> = s.read(|w| {
        w.tenant(&tenant).map_or_else(Vec::new, |t| {
            w.tenants[t]
                .role_assignments
                .iter()
                .map(assignment_json)
                .collect()
        })
    });
    Ok(query.answer(
        items,
        select,
        &headers,
        &uri,
        "https://graph.microsoft.com/v1.0/$metadata#roleManagement/directory/roleAssignments",
    ))
}

/// `GET /roleManagement/directory/roleAssignments/{id}`
pub async fn get(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    q: Query,
) -> Reply {
    let sel = check_select(q.get("$select"), &ROLE_ASSIGNMENTS)?;
    s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let a = w.tenants[t]
            .role_assignments
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| not_found(&id))?;
        let mut body = select(assignment_json(a), sel.as_deref());
        body["@odata.context"] = json!(
            "https://graph.microsoft.com/v1.0/$metadata#roleManagement/directory/roleAssignments/$entity"
        );
        Ok(reply(StatusCode::OK, body))
    })
}
