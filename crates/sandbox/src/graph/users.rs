//! Users: list, create, get, update, delete, revoke sessions, manager, mailbox settings, mail.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::Query;
use crate::auth::GraphAuth;
use crate::http::{
    bad_request, base_url, empty, graph_error, list_params, matches, not_found, odata_page, reply,
    select, Reply,
};
use crate::model::{Tenant, User, World};
use crate::shared::{now_ms, now_rfc3339, Shared};

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
    json!({
        "@odata.type": "#microsoft.graph.user",
        "id": u.id, "userPrincipalName": u.user_principal_name, "displayName": u.display_name,
        "givenName": u.given_name, "surname": u.surname, "mail": u.mail, "mailNickname": u.mail_nickname,
        "jobTitle": u.job_title, "department": u.department, "usageLocation": u.usage_location,
        "officeLocation": u.office_location, "companyName": u.company_name, "employeeId": u.employee_id,
        "mobilePhone": u.mobile_phone, "businessPhones": [], "preferredLanguage": null,
        "accountEnabled": u.account_enabled, "onPremisesSyncEnabled": if u.on_premises_sync_enabled { json!(true) } else { Value::Null },
        "assignedLicenses": u.assigned_licenses.iter().map(|s| json!({"skuId": s, "disabledPlans": []})).collect::<Vec<_>>(),
        "licenseAssignmentStates": states,
        "createdDateTime": u.created_date_time, "signInSessionsValidFromDateTime": u.sign_in_sessions_valid_from,
        "lastPasswordChangeDateTime": u.password_last_set,
    })
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

/// `GET /users`
pub async fn list(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    headers: HeaderMap,
    q: Query,
) -> Reply {
    let (clauses, top, skip) = list_params(&q, s.read(|w| w.settings.page_size))?;
    let items: Vec<Value> = s.read(|w| {
        w.tenant(&tenant).map_or_else(Vec::new, |t| {
            let t = &w.tenants[t];
            t.users
                .iter()
                .map(|u| user_json(t, u))
                .filter(|u| matches(u, &clauses))
                .collect()
        })
    });
    let items = items
        .into_iter()
        .map(|u| project(u, q.get("$select").map(String::as_str)))
        .collect();
    let mut next = format!(
        "{}/graph.microsoft.com/v1.0/users?$top={top}",
        base_url(&headers)
    );
    for k in ["$select", "$filter"] {
        if let Some(v) = q.get(k) {
            next.push_str(&format!(
                "&{k}={}",
                v.replace(' ', "%20").replace('\'', "%27")
            ));
        }
    }
    Ok(reply(
        StatusCode::OK,
        odata_page(
            items,
            skip,
            top,
            &next,
            "https://graph.microsoft.com/v1.0/$metadata#users",
        ),
    ))
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

/// `POST /users`
pub async fn create(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Json(body): Json<Value>,
) -> Reply {
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
    let upn = body["userPrincipalName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let password = body["passwordProfile"]["password"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let nickname = body["mailNickname"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some((local, domain)) = upn.split_once('@') else {
        return Err(bad_request(
            "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
        ));
    };
    if !upn_local_ok(local) {
        return Err(bad_request(
            "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
        ));
    }
    if !password_ok(&password) {
        return Err(bad_request("The specified password does not comply with password complexity requirements. Please provide a different password."));
    }
    s.write(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&tenant))?;
        let tn = &w.tenants[t];
        if !tn.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            return Err(bad_request("The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization."));
        }
        if tn.user(&upn).is_some() {
            return Err(conflict("userPrincipalName"));
        }
        if tn.users.iter().any(|u| u.mail_nickname.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&nickname))) {
            return Err(conflict("proxyAddresses"));
        }
        let str_of = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let user = User {
            id: uuid::Uuid::new_v4().to_string(),
            user_principal_name: upn.clone(),
            display_name: str_of("displayName").unwrap_or_default(),
            given_name: str_of("givenName"),
            surname: str_of("surname"),
            mail_nickname: Some(nickname.clone()),
            mail: None,
            department: str_of("department"),
            job_title: str_of("jobTitle"),
            usage_location: str_of("usageLocation"),
            office_location: str_of("officeLocation"),
            company_name: str_of("companyName"),
            employee_id: str_of("employeeId"),
            mobile_phone: str_of("mobilePhone"),
            account_enabled: body["accountEnabled"].as_bool().unwrap_or(true),
            on_premises_sync_enabled: false,
            manager_id: None,
            assigned_licenses: Vec::new(),
            password_last_set: Some(now_rfc3339()),
            sign_in_sessions_valid_from: None,
            auth_methods: vec![crate::model::AuthMethod { id: "28c10230-6103-485e-b985-444c60001490".into(), kind: "passwordAuthenticationMethod".into(), is_default: false }],
            created_date_time: Some(now_rfc3339()),
        };
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
    s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let full = user_json(&w.tenants[t], &w.tenants[t].users[u]);
        Ok(reply(
            StatusCode::OK,
            project(full, q.get("$select").map(String::as_str)),
        ))
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
        let mut changed = false;
        let user = &mut w.tenants[t].users[u];
        for (k, v) in fields {
            let text = v.as_str().map(str::to_string);
            match k.as_str() {
                "displayName" => user.display_name = text.unwrap_or_default(),
                "givenName" => user.given_name = text,
                "surname" => user.surname = text,
                "department" => user.department = text,
                "jobTitle" => user.job_title = text,
                "usageLocation" => user.usage_location = text,
                "officeLocation" => user.office_location = text,
                "companyName" => user.company_name = text,
                "employeeId" => user.employee_id = text,
                "mobilePhone" => user.mobile_phone = text,
                "mailNickname" => user.mail_nickname = text,
                "accountEnabled" => match v.as_bool() {
                    Some(b) => user.account_enabled = b,
                    None => return Err(bad_request("Invalid value specified for property 'accountEnabled' of resource 'User'.")),
                },
                "passwordProfile" => {
                    let p = v["password"].as_str().unwrap_or_default();
                    if !password_ok(p) {
                        return Err(bad_request("The specified password does not comply with password complexity requirements. Please provide a different password."));
                    }
                    user.password_last_set = Some(now_rfc3339());
                }
                other => return Err(bad_request(format!("Property '{other}' does not exist on type 'microsoft.graph.user' or cannot be updated."))),
            }
            changed = true;
        }
        if changed {
            let key = w.tenants[t].user_entity(&w.tenants[t].users[u].user_principal_name);
            w.changed(key);
        }
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// `DELETE /users/{id}`: soft delete.
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
        let user = w.tenants[t].users.remove(u);
        for g in &mut w.tenants[t].groups {
            g.members.retain(|m| m != &user.id);
        }
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
        if w.tenants[t].users[u].manager_id.take().is_none() {
            return Err(not_found("manager"));
        }
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

/// `POST /users/{id}/sendMail`: lands in the sandbox inbox.
pub async fn send_mail(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let message = &body["message"];
    if message.is_null()
        || message["toRecipients"]
            .as_array()
            .is_none_or(|r| r.is_empty())
    {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid.",
        ));
    }
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let from = w.tenants[t].users[u].user_principal_name.clone();
        w.inbox.email.push(json!({"tenant": tenant, "from": from, "message": message, "received_at": now_rfc3339()}));
        w.created(format!("email/{}", w.inbox.email.len()));
        Ok(empty(StatusCode::ACCEPTED))
    })
}
