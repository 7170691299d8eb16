//! Users: list, create, get, update, delete, revoke sessions, manager, mailbox settings, mail.

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::query::{check_select, ListQuery, Shape};
use super::Query;
use crate::auth::GraphAuth;
use crate::http::{bad_request, empty, graph_error, not_found, reply, select, Reply};
use crate::model::{Tenant, User, World};
use crate::shared::{now_ms, now_rfc3339, Shared};

/// Simple string properties kept in [`User::extra`]: settable on create and update.
const EXTRA_STRINGS: &[&str] = &[
    "city",
    "country",
    "state",
    "streetAddress",
    "postalCode",
    "employeeType",
    "faxNumber",
    "preferredLanguage",
    "employeeHireDate",
    "employeeLeaveDateTime",
    "preferredDataLocation",
    "ageGroup",
    "consentProvidedForMinor",
];

/// Every property of a user the sandbox serves (`$select`, `$filter`, `$orderby` may name them).
pub const USER_PROPS: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "mailNickname",
    "jobTitle",
    "department",
    "usageLocation",
    "officeLocation",
    "companyName",
    "employeeId",
    "mobilePhone",
    "businessPhones",
    "preferredLanguage",
    "accountEnabled",
    "onPremisesSyncEnabled",
    "assignedLicenses",
    "licenseAssignmentStates",
    "createdDateTime",
    "deletedDateTime",
    "signInSessionsValidFromDateTime",
    "lastPasswordChangeDateTime",
    "otherMails",
    "proxyAddresses",
    "userType",
    "city",
    "country",
    "state",
    "streetAddress",
    "postalCode",
    "employeeType",
    "faxNumber",
    "employeeHireDate",
    "employeeLeaveDateTime",
    "preferredDataLocation",
    "ageGroup",
    "consentProvidedForMinor",
];

/// The user collection's query shape.
pub const USERS: Shape = Shape {
    type_name: "user",
    properties: USER_PROPS,
    basic_order: &["displayName", "userPrincipalName"],
};

const DEFAULT_PROPS: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// The full Graph representation of a user.
pub fn user_json(t: &Tenant, u: &User) -> Value {
    let states: Vec<Value> = t
        .skus
        .iter()
        .flat_map(|s| {
            let mut v = Vec::new();
            if u.assigned_licenses.contains(&s.sku_id) {
                v.push(json!({"skuId": s.sku_id, "assignedByGroup": null, "state": "Active", "disabledPlans": []}));
            }
            for g in t.inherited(u, &s.sku_id) {
                v.push(json!({"skuId": s.sku_id, "assignedByGroup": g, "state": "Active", "disabledPlans": []}));
            }
            v
        })
        .collect();
    let mut full = json!({
        "@odata.type": "#microsoft.graph.user",
        "id": u.id, "userPrincipalName": u.user_principal_name, "displayName": u.display_name,
        "givenName": u.given_name, "surname": u.surname, "mail": u.mail, "mailNickname": u.mail_nickname,
        "jobTitle": u.job_title, "department": u.department, "usageLocation": u.usage_location,
        "officeLocation": u.office_location, "companyName": u.company_name, "employeeId": u.employee_id,
        "mobilePhone": u.mobile_phone, "businessPhones": u.business_phones, "preferredLanguage": null,
        "userType": u.user_type.as_deref().unwrap_or("Member"), "otherMails": [], "deletedDateTime": u.deleted_date_time,
        "proxyAddresses": u.mail.iter().map(|m| format!("SMTP:{m}")).collect::<Vec<_>>(),
        "accountEnabled": u.account_enabled, "onPremisesSyncEnabled": if u.on_premises_sync_enabled { json!(true) } else { Value::Null },
        "assignedLicenses": u.assigned_licenses.iter().map(|s| json!({"skuId": s, "disabledPlans": []})).collect::<Vec<_>>(),
        "licenseAssignmentStates": states,
        "createdDateTime": u.created_date_time, "signInSessionsValidFromDateTime": u.sign_in_sessions_valid_from,
        "lastPasswordChangeDateTime": u.password_last_set,
    });
    for (k, v) in &u.extra {
        full[k.as_str()] = v.clone();
    }
    full
}

/// The default projection (no `$select`), or the selected properties.
pub fn project(full: Value, sel: Option<&str>) -> Value {
    match sel {
        Some(_) => select(full, sel),
        None => select(full, Some(&DEFAULT_PROPS.join(","))),
    }
}

/// Finds the tenant and user a request is about, or Graph's 404.
pub fn locate(
    w: &World,
    tenant: &str,
    id: &str,
) -> Result<(usize, usize), axum::response::Response> {
    let t = w.tenant(tenant).ok_or_else(|| not_found(id))?;
    let u = w.tenants[t].user(id).ok_or_else(|| not_found(id))?;
    Ok((t, u))
}

/// `GET /users`: `$filter`, `$search`, `$orderby`, `$count`, `$select`, `$top`, paging and
/// `$expand=manager` (pages of at most 100 then, as Graph's).
pub async fn list(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> Reply {
    let mut query = ListQuery::parse(&q, &headers, s.read(|w| w.settings.page_size), &USERS)?;
    let expand = super::expand::parse(&q)?;
    query.top = super::expand::page_size(query.top, expand.is_some());
    let items: Vec<Value> = s.read(|w| {
        w.tenant(&tenant).map_or_else(Vec::new, |t| {
            let t = &w.tenants[t];
            let now = now_ms();
            let full = t
                .users
                .iter()
                .filter(|u| u.visible_at_ms <= now)
                .map(|u| user_json(t, u))
                .collect();
            let by_id = super::expand::index(t);
            query
                .apply(full)
                .into_iter()
                .map(|full| {
                    let user = full["id"].as_str().and_then(|id| by_id.get(id)).copied();
                    let mut item = project(full, query.select.as_deref());
                    if let (Some(e), Some(u)) = (&expand, user) {
                        e.apply(t, &by_id, u, &mut item);
                    }
                    item
                })
                .collect()
        })
    });
    Ok(reply(
        StatusCode::OK,
        query.page(
            items,
            &headers,
            &uri,
            "https://graph.microsoft.com/v1.0/$metadata#users",
        ),
    ))
}

/// `GET /users/$count`: a plain-text number, an advanced query.
pub async fn count(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    headers: HeaderMap,
    q: Query,
) -> Reply {
    if !super::query::eventual(&headers) {
        return Err(bad_request("$count is not currently supported without the 'ConsistencyLevel: eventual' header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"));
    }
    let mut q = q.0.clone();
    q.insert("$count".into(), "true".into());
    let query = ListQuery::parse(&q, &headers, 100, &USERS)?;
    let n = s.read(|w| {
        w.tenant(&tenant).map_or(0, |t| {
            let t = &w.tenants[t];
            let now = now_ms();
            let all = t
                .users
                .iter()
                .filter(|u| u.visible_at_ms <= now)
                .map(|u| user_json(t, u))
                .collect();
            query.apply(all).len()
        })
    });
    Ok(axum::response::IntoResponse::into_response((
        [("content-type", "text/plain")],
        n.to_string(),
    )))
}

fn password_ok(p: &str) -> bool {
    let classes = [
        p.chars().any(|c| c.is_ascii_lowercase()),
        p.chars().any(|c| c.is_ascii_uppercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    p.chars().count() >= 8
        && p.chars().count() <= 256
        && classes.iter().filter(|c| **c).count() >= 3
}

fn upn_local_ok(local: &str) -> bool {
    !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "'.-_!#^~".contains(c))
}

const INVALID_UPN: &str =
    "Invalid value specified for property 'userPrincipalName' of resource 'User'.";
const WEAK_PASSWORD: &str = "The specified password does not comply with password complexity requirements. Please provide a different password.";
const BAD_DOMAIN: &str = "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.";

/// Graph's 400 when a JSON value has the wrong type for a property.
fn wrong_type(value: &Value, edm: &str) -> axum::response::Response {
    let literal = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    bad_request(format!(
        "Cannot convert the literal '{literal}' to the expected type '{edm}'."
    ))
}

fn opt_string(v: &Value) -> Result<Option<String>, axum::response::Response> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(wrong_type(other, "Edm.String")),
    }
}

/// Checks a UPN's form and domain, and that no other user (`except`) holds it.
fn check_upn(tn: &Tenant, upn: &str, except: Option<&str>) -> Result<(), axum::response::Response> {
    let Some((local, domain)) = upn.split_once('@') else {
        return Err(bad_request(INVALID_UPN));
    };
    if !upn_local_ok(local) {
        return Err(bad_request(INVALID_UPN));
    }
    if !tn.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return Err(bad_request(BAD_DOMAIN));
    }
    if let Some(other) = tn.user_any(upn) {
        if Some(tn.users[other].id.as_str()) != except {
            return Err(conflict("userPrincipalName"));
        }
    }
    Ok(())
}

/// Sets the properties of a create or update body on `user`, checking each value's type the
/// way Graph does. Annotations (`@odata.type` of a user, which the SDKs always send) are
/// accepted and ignored. Returns whether anything was set.
fn apply_props(
    user: &mut User,
    fields: &serde_json::Map<String, Value>,
) -> Result<bool, axum::response::Response> {
    let mut changed = false;
    for (k, v) in fields {
        if k == "@odata.type" {
            let t = v.as_str().unwrap_or_default();
            if t.trim_start_matches('#') != "microsoft.graph.user" {
                return Err(bad_request(format!(
                    "A type named '{t}' could not be resolved by the model. When a model is available, each type name must resolve to a valid type."
                )));
            }
            continue;
        }
        if k.starts_with('@') {
            continue;
        }
        match k.as_str() {
            "displayName" => {
                user.display_name = opt_string(v)?
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| bad_request("Invalid value specified for property 'displayName' of resource 'User'."))?
            }
            "givenName" => user.given_name = opt_string(v)?,
            "surname" => user.surname = opt_string(v)?,
            "department" => user.department = opt_string(v)?,
            "jobTitle" => user.job_title = opt_string(v)?,
            "usageLocation" => {
                let loc = opt_string(v)?;
                if loc.as_deref().is_some_and(|l| l.len() != 2 || !l.chars().all(|c| c.is_ascii_alphabetic())) {
                    return Err(bad_request("Invalid value specified for property 'usageLocation' of resource 'User'."));
                }
                user.usage_location = loc;
            }
            "officeLocation" => user.office_location = opt_string(v)?,
            "companyName" => user.company_name = opt_string(v)?,
            "employeeId" => user.employee_id = opt_string(v)?,
            "mobilePhone" => user.mobile_phone = opt_string(v)?,
            "mail" => user.mail = opt_string(v)?,
            "mailNickname" => user.mail_nickname = opt_string(v)?,
            "userPrincipalName" => {
                user.user_principal_name = opt_string(v)?.ok_or_else(|| bad_request(INVALID_UPN))?
            }
            "accountEnabled" => match v {
                Value::Bool(b) => user.account_enabled = *b,
                other => return Err(wrong_type(other, "Edm.Boolean")),
            },
            "businessPhones" => {
                let phones = match v {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a
                        .iter()
                        .map(|p| opt_string(p)?.ok_or_else(|| wrong_type(p, "Edm.String")))
                        .collect::<Result<Vec<_>, _>>()?,
                    other => return Err(wrong_type(other, "Collection(Edm.String)")),
                };
                if phones.len() > 1 {
                    return Err(bad_request("Invalid value specified for property 'businessPhones' of resource 'User': only one number can be set."));
                }
                user.business_phones = phones;
            }
            "passwordProfile" => {
                if !v.is_object() {
                    return Err(wrong_type(v, "microsoft.graph.passwordProfile"));
                }
                for flag in ["forceChangePasswordNextSignIn", "forceChangePasswordNextSignInWithMfa"] {
                    if !v[flag].is_null() && !v[flag].is_boolean() {
                        return Err(wrong_type(&v[flag], "Edm.Boolean"));
                    }
                }
                let p = v["password"].as_str().unwrap_or_default();
                if !password_ok(p) {
                    return Err(bad_request(WEAK_PASSWORD));
                }
                user.password_last_set = Some(now_rfc3339());
            }
            "otherMails" | "proxyAddresses" if !v.is_array() => {
                return Err(wrong_type(v, "Collection(Edm.String)"))
            }
            extra if EXTRA_STRINGS.contains(&extra) => {
                match opt_string(v)? {
                    Some(text) => user.extra.insert(extra.to_string(), Value::String(text)),
                    None => user.extra.remove(extra),
                };
            }
            other => return Err(bad_request(format!("Property '{other}' does not exist on type 'microsoft.graph.user' or cannot be updated."))),
        }
        changed = true;
    }
    Ok(changed)
}

/// `POST /users`
pub async fn create(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Json(body): Json<Value>,
) -> Reply {
    let Some(fields) = body.as_object() else {
        return Err(bad_request("The request body must be a JSON object."));
    };
    for field in [
        "accountEnabled",
        "displayName",
        "mailNickname",
        "userPrincipalName",
        "passwordProfile",
    ] {
        if body.get(field).is_none_or(Value::is_null) {
            return Err(bad_request(format!(
                "Invalid value specified for property '{field}' of resource 'User'."
            )));
        }
    }
    let mut user = User {
        id: uuid::Uuid::new_v4().to_string(),
        auth_methods: vec![crate::model::AuthMethod {
            id: "28c10230-6103-485e-b985-444c60001490".into(),
            kind: "passwordAuthenticationMethod".into(),
            ..Default::default()
        }],
        created_date_time: Some(now_rfc3339()),
        ..User::default()
    };
    apply_props(&mut user, fields)?;
    let upn = user.user_principal_name.clone();
    let nickname = user.mail_nickname.clone().unwrap_or_default();
    s.write(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&tenant))?;
        let lag = w.settings.replication.clone();
        let tn = &w.tenants[t];
        check_upn(tn, &upn, None)?;
        if tn.users.iter().any(|u| {
            u.mail_nickname
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(&nickname))
        }) {
            return Err(conflict("proxyAddresses"));
        }
        let now = now_ms();
        user.visible_at_ms = now + lag.user_ms;
        user.exchange_visible_at_ms = now + lag.exchange_ms;
        let json = user_json(&w.tenants[t], &user);
        let key = w.tenants[t].user_entity(&upn);
        w.tenants[t].users.push(user);
        w.created(key);
        Ok(reply(StatusCode::CREATED, json))
    })
}

/// Graph's 400 for a duplicate value, with `details: [{code: ObjectConflict, target}]`.
fn conflict(target: &str) -> axum::response::Response {
    reply(
        StatusCode::BAD_REQUEST,
        json!({"error": {"code": "Request_BadRequest",
        "message": format!("Another object with the same value for property {target} already exists."),
        "details": [{"code": "ObjectConflict", "target": target}],
        "innerError": {"date": now_rfc3339(), "request-id": uuid::Uuid::new_v4().to_string()}}}),
    )
}

/// `GET /users/{id}`
pub async fn get(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    q: Query,
) -> Reply {
    let sel = check_select(q.get("$select"), &USERS)?;
    s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let full = user_json(&w.tenants[t], &w.tenants[t].users[u]);
        Ok(reply(StatusCode::OK, project(full, sel.as_deref())))
    })
}

const SYNCED_ERROR: &str = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.";

/// `PATCH /users/{id}`
pub async fn update(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let Some(fields) = body.as_object() else {
        return Err(bad_request("The request body must be a JSON object."));
    };
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let user = &w.tenants[t].users[u];
        if user.on_premises_sync_enabled {
            return Err(bad_request(SYNCED_ERROR));
        }
        let mut updated = user.clone();
        let changed = apply_props(&mut updated, fields)?;
        if updated.user_principal_name != user.user_principal_name {
            check_upn(&w.tenants[t], &updated.user_principal_name, Some(&user.id))?;
        }
        w.tenants[t].users[u] = updated;
        if changed {
            let key = w.tenants[t].user_entity(&w.tenants[t].users[u].user_principal_name);
            w.changed(key);
        }
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// `DELETE /users/{id}`: soft delete, into `directory/deletedItems` for 30 days.
pub async fn remove(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        if w.tenants[t].users[u].on_premises_sync_enabled {
            return Err(bad_request(SYNCED_ERROR));
        }
        let mut user = w.tenants[t].users.remove(u);
        for g in &mut w.tenants[t].groups {
            g.members.retain(|m| m != &user.id);
        }
        user.deleted_date_time = Some(now_rfc3339());
        user.deleted_at_ms = now_ms();
        let key = w.tenants[t].user_entity(&user.user_principal_name);
        w.tenants[t].deleted_users.push(user);
        w.deleted(key);
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// `POST /users/{id}/revokeSignInSessions`
pub async fn revoke(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        w.tenants[t].users[u].sign_in_sessions_valid_from = Some(now_rfc3339());
        let key = format!("{}/sessions", w.tenants[t].user_entity(&w.tenants[t].users[u].user_principal_name));
        w.changed(key);
        Ok(reply(StatusCode::OK, json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true})))
    })
}

/// `GET /users/{id}/manager`
pub async fn manager(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let tn = &w.tenants[t];
        let m = tn.users[u]
            .manager_id
            .as_ref()
            .and_then(|m| tn.user(m))
            .ok_or_else(|| not_found("manager"))?;
        Ok(reply(
            StatusCode::OK,
            project(user_json(tn, &tn.users[m]), None),
        ))
    })
}

/// `PUT /users/{id}/manager/$ref`
pub async fn set_manager(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let reference = body["@odata.id"].as_str().unwrap_or_default().to_string();
    let manager_key = reference.rsplit('/').next().unwrap_or_default().to_string();
    if manager_key.is_empty() {
        return Err(bad_request("Invalid value for '@odata.id'."));
    }
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let m = w.tenants[t]
            .user(&manager_key)
            .ok_or_else(|| not_found(&manager_key))?;
        if m == u {
            return Err(bad_request("A user cannot be their own manager."));
        }
        let mid = w.tenants[t].users[m].id.clone();
        if w.tenants[t].users[u].manager_id.as_deref() != Some(mid.as_str()) {
            w.tenants[t].users[u].manager_id = Some(mid);
            w.tenants[t].users[u].removed_manager_id = None;
            let key = format!(
                "{}/manager",
                w.tenants[t].user_entity(&w.tenants[t].users[u].user_principal_name)
            );
            w.changed(key);
        }
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// `DELETE /users/{id}/manager/$ref`
pub async fn remove_manager(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let Some(old) = w.tenants[t].users[u].manager_id.take() else {
            return Err(not_found("manager"));
        };
        w.tenants[t].users[u].removed_manager_id = Some(old);
        let key = format!(
            "{}/manager",
            w.tenants[t].user_entity(&w.tenants[t].users[u].user_principal_name)
        );
        w.deleted(key);
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

fn mailbox_of(w: &World, t: usize, user_id: &str) -> Option<usize> {
    let now = now_ms();
    w.tenants[t].mailboxes.iter().position(|m| {
        m.user_id == user_id && m.available_at_ms <= now && m.pending_deletion.is_none()
    })
}

fn no_mailbox() -> axum::response::Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )
}

fn auto_reply_json(a: &crate::model::AutoReply) -> Value {
    let status = match a.state.as_str() {
        "Enabled" => "alwaysEnabled",
        "Scheduled" => "scheduled",
        _ => "disabled",
    };
    let audience = match a.external_audience.as_str() {
        "None" => "none",
        "Known" => "contactsOnly",
        _ => "all",
    };
    json!({"status": status, "externalAudience": audience, "internalReplyMessage": a.internal_message, "externalReplyMessage": a.external_message,
           "scheduledStartDateTime": a.start_time.as_ref().map(|d| json!({"dateTime": d, "timeZone": "UTC"})),
           "scheduledEndDateTime": a.end_time.as_ref().map(|d| json!({"dateTime": d, "timeZone": "UTC"}))})
}

/// `GET /users/{id}/mailboxSettings`
pub async fn mailbox_settings(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let m = mailbox_of(w, t, &w.tenants[t].users[u].id).ok_or_else(no_mailbox)?;
        let mb = &w.tenants[t].mailboxes[m];
        Ok(reply(StatusCode::OK, json!({"automaticRepliesSetting": auto_reply_json(&mb.auto_reply), "timeZone": "UTC", "language": {"locale": "en-AU"}})))
    })
}

/// `PATCH /users/{id}/mailboxSettings`
pub async fn update_mailbox_settings(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let m = mailbox_of(w, t, &w.tenants[t].users[u].id).ok_or_else(no_mailbox)?;
        let ar = &body["automaticRepliesSetting"];
        if !ar.is_null() {
            let a = &mut w.tenants[t].mailboxes[m].auto_reply;
            if let Some(st) = ar["status"].as_str() {
                a.state = match st {
                    "alwaysEnabled" => "Enabled",
                    "scheduled" => "Scheduled",
                    "disabled" => "Disabled",
                    other => {
                        return Err(bad_request(format!(
                            "Invalid automaticRepliesSetting status '{other}'."
                        )))
                    }
                }
                .into();
            }
            if let Some(v) = ar["externalAudience"].as_str() {
                a.external_audience = match v {
                    "none" => "None",
                    "contactsOnly" => "Known",
                    _ => "All",
                }
                .into();
            }
            if let Some(v) = ar["internalReplyMessage"].as_str() {
                a.internal_message = v.into();
            }
            if let Some(v) = ar["externalReplyMessage"].as_str() {
                a.external_message = v.into();
            }
            if let Some(v) = ar["scheduledStartDateTime"]["dateTime"].as_str() {
                a.start_time = Some(v.into());
            }
            if let Some(v) = ar["scheduledEndDateTime"]["dateTime"].as_str() {
                a.end_time = Some(v.into());
            }
            let key = format!(
                "{}/mailbox/{}/auto_reply",
                w.tenants[t].id,
                w.tenants[t].mailboxes[m]
                    .primary_smtp_address
                    .to_lowercase()
            );
            w.changed(key);
        }
        let mb = &w.tenants[t].mailboxes[m];
        Ok(reply(
            StatusCode::OK,
            json!({"automaticRepliesSetting": auto_reply_json(&mb.auto_reply)}),
        ))
    })
}

/// A property of a JSON object by name, in either casing of its first letter (Graph accepts
/// `message` and `Message`).
fn either_case<'a>(obj: &'a Value, name: &str) -> &'a Value {
    let mut chars = name.chars();
    let upper: String = chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect();
    match obj.get(name) {
        Some(v) => v,
        None => obj.get(upper.as_str()).unwrap_or(&Value::Null),
    }
}

/// Whether an address looks like `local@domain.tld`.
fn address_ok(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// `POST /users/{id}/sendMail`: lands in the sandbox inbox. The sender needs a mailbox
/// (`MailboxNotEnabledForRESTAPI`); every recipient must be an address
/// (`ErrorInvalidRecipients`).
pub async fn send_mail(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let message = either_case(&body, "message").clone();
    let save = either_case(&body, "saveToSentItems");
    if !save.is_null() && !save.is_boolean() {
        return Err(wrong_type(save, "Edm.Boolean"));
    }
    if !message.is_object() {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "Message is required.",
        ));
    }
    let mut recipients = Vec::new();
    for field in ["toRecipients", "ccRecipients", "bccRecipients"] {
        if let Some(list) = either_case(&message, field).as_array() {
            recipients.extend(list.iter().map(|r| {
                either_case(either_case(r, "emailAddress"), "address")
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            }));
        }
    }
    if recipients.is_empty() || recipients.iter().any(|a| !address_ok(a)) {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid., Recipient is not resolved. All recipients must be resolved before a message can be submitted.",
        ));
    }
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        mailbox_of(w, t, &w.tenants[t].users[u].id).ok_or_else(no_mailbox)?;
        let from = w.tenants[t].users[u].user_principal_name.clone();
        w.inbox.email.push(json!({"tenant": tenant, "from": from, "message": message, "received_at": now_rfc3339()}));
        w.created(format!("email/{}", w.inbox.email.len()));
        Ok(empty(StatusCode::ACCEPTED))
    })
}
