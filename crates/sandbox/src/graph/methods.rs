//! Authentication methods (list and delete, with Graph's rules), phone methods (list, get,
//! add) and Temporary Access Pass (create, list).

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

fn method_json(m: &AuthMethod) -> Value {
    let mut v = json!({"@odata.type": format!("#microsoft.graph.{}", m.kind), "id": m.id});
    if m.kind == "phoneAuthenticationMethod" {
        v["phoneNumber"] = json!(m.phone_number);
        v["phoneType"] = json!(m.phone_type.as_deref().unwrap_or("mobile"));
        v["smsSignInState"] = json!("notSupported");
    }
    v
}

/// Graph's fixed ids of the phone methods, by phone type.
fn phone_method_id(phone_type: &str) -> Option<&'static str> {
    match phone_type {
        "mobile" => Some("3179e48a-750b-4051-897c-87b9720928f7"),
        "alternateMobile" => Some("b6332ec1-7057-4abe-9331-3d72feddfe41"),
        "office" => Some("e37fc753-ff3b-4958-9484-eaa9425c82bc"),
        _ => None,
    }
}

/// `+{country code} {subscriber number}x{extension}`, as Graph requires.
fn phone_number_ok(n: &str) -> bool {
    let Some(rest) = n.strip_prefix('+') else {
        return false;
    };
    let Some((cc, number)) = rest.split_once(' ') else {
        return false;
    };
    let number = number.split_once('x').map_or(number, |(n, _)| n);
    (1..=3).contains(&cc.len())
        && cc.chars().all(|c| c.is_ascii_digit())
        && (4..=15).contains(&number.len())
        && number.chars().all(|c| c.is_ascii_digit())
}

fn list_of(s: &Shared, tenant: &str, id: &str, kind: &str) -> Reply {
    s.read(|w| {
        let (t, u) = locate(w, tenant, id)?;
        let value: Vec<Value> = w.tenants[t].users[u]
            .auth_methods
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| {
                let mut v = method_json(m);
                if kind == "temporaryAccessPassAuthenticationMethod" {
                    // The pass itself is shown only once, at creation.
                    v["temporaryAccessPass"] = Value::Null;
                    v["isUsable"] = json!(true);
                    v["methodUsabilityReason"] = json!("EnabledByPolicy");
                }
                v
            })
            .collect();
        Ok(reply(StatusCode::OK, json!({"@odata.context": format!("https://graph.microsoft.com/v1.0/$metadata#users('{id}')/authentication/{}", collection_of(kind)), "value": value})))
    })
}

/// `GET /users/{id}/authentication/phoneMethods`
pub async fn list_phones(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    list_of(&s, &tenant, &id, "phoneAuthenticationMethod")
}

/// `GET /users/{id}/authentication/temporaryAccessPassMethods`
pub async fn list_taps(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    list_of(&s, &tenant, &id, "temporaryAccessPassAuthenticationMethod")
}

/// `GET /users/{id}/authentication/phoneMethods/{method}`
pub async fn get_phone(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path((id, method)): Path<(String, String)>,
) -> Reply {
    s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let m = w.tenants[t].users[u]
            .auth_methods
            .iter()
            .find(|m| m.kind == "phoneAuthenticationMethod" && m.id == method)
            .ok_or_else(|| not_found(&method))?;
        Ok(reply(StatusCode::OK, method_json(m)))
    })
}

/// `DELETE /users/{id}/authentication/phoneMethods/{method}`
pub async fn remove_phone(
    st: State<Arc<Shared>>,
    auth: GraphAuth,
    Path((id, method)): Path<(String, String)>,
) -> Reply {
    remove(st, auth, Path((id, "phoneMethods".into(), method))).await
}

/// `POST /users/{id}/authentication/phoneMethods`: one method per phone type.
pub async fn add_phone(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let number = body["phoneNumber"].as_str().unwrap_or_default().to_string();
    let phone_type = body["phoneType"].as_str().unwrap_or_default().to_string();
    let Some(method_id) = phone_method_id(&phone_type) else {
        return Err(bad_request(format!(
            "Invalid value specified for property 'phoneType': '{phone_type}'."
        )));
    };
    if !phone_number_ok(&number) {
        return Err(bad_request(format!("Invalid value specified for property 'phoneNumber': '{number}'. Phone numbers must be in the format \"+{{country code}} {{subscriber number}}x{{extension}}\".")));
    }
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let user = &w.tenants[t].users[u];
        if user.auth_methods.iter().any(|m| m.id == method_id) {
            return Err(bad_request(format!(
                "A phone method of type '{phone_type}' already exists for this user."
            )));
        }
        let first = !user
            .auth_methods
            .iter()
            .any(|m| m.kind != "passwordAuthenticationMethod");
        let key = format!(
            "{}/method/{method_id}",
            w.tenants[t].user_entity(&user.user_principal_name)
        );
        let m = AuthMethod {
            id: method_id.into(),
            kind: "phoneAuthenticationMethod".into(),
            is_default: first,
            phone_number: Some(number),
            phone_type: Some(phone_type),
        };
        let body = method_json(&m);
        w.tenants[t].users[u].auth_methods.push(m);
        w.created(key);
        Ok(reply(StatusCode::CREATED, body))
    })
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
            .map(method_json).collect();
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
        user.auth_methods.push(AuthMethod { id: method_id.clone(), kind: "temporaryAccessPassAuthenticationMethod".into(), ..AuthMethod::default() });
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
