//! Intune managed devices: list (per user or filtered by UPN), get, wipe and retire, under
//! `deviceManagement/managedDevices` and under the owning user.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::users::locate;
use super::Query;
use crate::auth::GraphAuth;
use crate::http::{bad_request, empty, matches, not_found, parse_filter, reply, Reply};
use crate::model::{Device, DeviceAction};
use crate::shared::{now_rfc3339, Shared};

fn device_json(d: &Device) -> Value {
    let last = d.actions.last();
    json!({"@odata.type": "#microsoft.graph.managedDevice", "id": d.id, "deviceName": d.device_name, "operatingSystem": d.operating_system, "osVersion": "",
           "managedDeviceOwnerType": d.managed_device_owner_type, "complianceState": "compliant",
           "userId": d.user_id, "userPrincipalName": d.user_principal_name, "serialNumber": d.serial_number,
           "managementAgent": "mdm", "lastSyncDateTime": now_rfc3339(),
           "deviceActionResults": d.actions.iter().map(|a| json!({"actionName": a.action, "actionState": "pending", "startDateTime": a.at})).collect::<Vec<_>>(),
           "managementState": match last.map(|a| a.action.as_str()) { Some("wipe") => "wipePending", Some("retire") => "retirePending", _ => "managed" }})
}

/// `GET /users/{id}/managedDevices`
pub async fn for_user(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let uid = &w.tenants[t].users[u].id;
        let value: Vec<Value> = w.tenants[t]
            .devices
            .iter()
            .filter(|d| &d.user_id == uid)
            .map(device_json)
            .collect();
        Ok(reply(StatusCode::OK, json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/managedDevices", "value": value})))
    })
}

/// `GET /deviceManagement/managedDevices`
pub async fn list(State(s): State<Arc<Shared>>, GraphAuth(tenant): GraphAuth, q: Query) -> Reply {
    let clauses = match q.get("$filter") {
        Some(f) => parse_filter(f).map_err(bad_request)?,
        None => Vec::new(),
    };
    s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&tenant))?;
        let value: Vec<Value> = w.tenants[t]
            .devices
            .iter()
            .map(device_json)
            .filter(|d| matches(d, &clauses))
            .collect();
        Ok(reply(StatusCode::OK, json!({"value": value})))
    })
}

/// `GET /deviceManagement/managedDevices/{id}`
pub async fn get(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&id))?;
        let d = w.tenants[t]
            .devices
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| not_found(&id))?;
        Ok(reply(StatusCode::OK, device_json(d)))
    })
}

fn act(s: &Shared, tenant: &str, id: &str, action: &str, options: Value) -> Reply {
    s.write(|w| {
        let t = w.tenant(tenant).ok_or_else(|| not_found(id))?;
        let d = w.tenants[t]
            .devices
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or_else(|| not_found(id))?;
        d.actions.push(DeviceAction {
            action: action.into(),
            at: now_rfc3339(),
            options,
        });
        let key = format!("{}/device/{}/{action}", w.tenants[t].id, id);
        w.created(key);
        Ok(empty(StatusCode::NO_CONTENT))
    })
}

/// `POST /deviceManagement/managedDevices/{id}/wipe`
pub async fn wipe(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> Reply {
    let options = body.map(|Json(b)| b).unwrap_or_else(|| json!({}));
    act(&s, &tenant, &id, "wipe", options)
}

/// `POST /deviceManagement/managedDevices/{id}/retire`
pub async fn retire(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    act(&s, &tenant, &id, "retire", json!({}))
}

/// Checks that device `device` belongs to user `id` (the user-scoped routes).
fn owned(s: &Shared, tenant: &str, id: &str, device: &str) -> Result<(), axum::response::Response> {
    s.read(|w| {
        let (t, u) = locate(w, tenant, id)?;
        let uid = &w.tenants[t].users[u].id;
        w.tenants[t]
            .devices
            .iter()
            .any(|d| d.id == device && &d.user_id == uid)
            .then_some(())
            .ok_or_else(|| not_found(device))
    })
}

/// `GET /users/{id}/managedDevices/{device}`
pub async fn get_for_user(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path((id, device)): Path<(String, String)>,
) -> Reply {
    owned(&s, &tenant, &id, &device)?;
    get(State(s), GraphAuth(tenant), Path(device)).await
}

/// `POST /users/{id}/managedDevices/{device}/wipe`
pub async fn wipe_for_user(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path((id, device)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Reply {
    owned(&s, &tenant, &id, &device)?;
    wipe(State(s), GraphAuth(tenant), Path(device), body).await
}

/// `POST /users/{id}/managedDevices/{device}/retire`
pub async fn retire_for_user(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path((id, device)): Path<(String, String)>,
) -> Reply {
    owned(&s, &tenant, &id, &device)?;
    retire(State(s), GraphAuth(tenant), Path(device)).await
}
