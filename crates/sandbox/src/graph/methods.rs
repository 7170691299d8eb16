//! Authentication methods (list and delete, with Graph's rules) and Temporary Access Pass.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::users::locate;
use crate::auth::GraphAuth;
use crate::http::{bad_request, empty, not_found, reply, Reply};
use crate::model::AuthMethod;
use crate::shared::{now_rfc3339, Shared};

/// The collection a method type lives in (`phoneAuthenticationMethod` → `phoneMethods`).
fn collection_of(kind: &str) -> String {
    format!(
        "{}s",
        kind.trim_end_matches("AuthenticationMethod").to_string() + "Method"
    )
}

/// `GET /users/{id}/authentication/methods`
pub async fn list(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let value: Vec<Value> = w.tenants[t].users[u].auth_methods.iter()
            .map(|m| json!({"@odata.type": format!("#microsoft.graph.{}", m.kind), "id": m.id})).collect();
        Ok(reply(StatusCode::OK, json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/authentication/methods", "value": value})))
    })
}

/// `DELETE /users/{id}/authentication/{collection}/{method}`
pub async fn remove(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path((id, collection, method)): Path<(String, String, String)>,
) -> Reply {
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let user = &w.tenants[t].users[u];
        let Some(i) = user.auth_methods.iter().position(|m| m.id == method && collection_of(&m.kind) == collection) else {
            return Err(not_found(&method));
        };
        let m = &user.auth_methods[i];
        if m.kind == "passwordAuthenticationMethod" {
            return Err(bad_request("The password authentication method cannot be deleted."));
        }
        let others = user.auth_methods.iter().filter(|o| o.kind != "passwordAuthenticationMethod" && o.id != m.id).count();
        if m.is_default && others > 0 {
            return Err(bad_request("The default authentication method cannot be deleted while other methods remain. Delete the other methods first or change the default."));
        }
        let key = format!("{}/method/{}", w.tenants[t].user_entity(&user.user_principal_name), m.id);
        w.tenants[t].users[u].auth_methods.remove(i);
        w.deleted(key);
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// `POST /users/{id}/authentication/temporaryAccessPassMethods`
pub async fn create_tap(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> Reply {
    let body = body.map(|Json(b)| b).unwrap_or_else(|| json!({}));
    let lifetime = body["lifetimeInMinutes"].as_u64().unwrap_or(60);
    if !(10..=43200).contains(&lifetime) {
        return Err(bad_request(
            "lifetimeInMinutes must be between 10 and 43200.",
        ));
    }
    let once = body["isUsableOnce"].as_bool().unwrap_or(false);
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let pass: String = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let method_id = uuid::Uuid::new_v4().to_string();
        let key = format!("{}/tap", w.tenants[t].user_entity(&w.tenants[t].users[u].user_principal_name));
        let user = &mut w.tenants[t].users[u];
        user.auth_methods.retain(|m| m.kind != "temporaryAccessPassAuthenticationMethod");
        user.auth_methods.push(AuthMethod { id: method_id.clone(), kind: "temporaryAccessPassAuthenticationMethod".into(), is_default: false });
        w.created(key);
        let now = now_rfc3339();
        Ok(reply(StatusCode::CREATED, json!({"id": method_id, "temporaryAccessPass": pass, "createdDateTime": now, "startDateTime": now,
            "lifetimeInMinutes": lifetime, "isUsableOnce": once, "isUsable": true, "methodUsabilityReason": "EnabledByPolicy"})))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn collections_follow_the_type_names() {
        assert_eq!(
            super::collection_of("phoneAuthenticationMethod"),
            "phoneMethods"
        );
        assert_eq!(
            super::collection_of("microsoftAuthenticatorAuthenticationMethod"),
            "microsoftAuthenticatorMethods"
        );
        assert_eq!(
            super::collection_of("temporaryAccessPassAuthenticationMethod"),
            "temporaryAccessPassMethods"
        );
    }
}
