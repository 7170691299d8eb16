//! Licences: `subscribedSkus`, `assignLicense` (usage location, free seats, group-inherited
//! licences, and the mailbox that comes and goes with an Exchange licence), `licenseDetails`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::users::{locate, user_json};
use crate::auth::GraphAuth;
use crate::http::{bad_request, not_found, reply, Reply};
use crate::model::{AutoReply, Mailbox};
use crate::shared::{now_ms, Shared};

/// `GET /subscribedSkus`
pub async fn subscribed_skus(State(s): State<Arc<Shared>>, GraphAuth(tenant): GraphAuth) -> Reply {
    s.read(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| not_found(&tenant))?;
        let tn = &w.tenants[t];
        let value: Vec<Value> = tn.skus.iter().map(|sku| json!({
            "accountId": tn.tenant_id, "accountName": tn.name, "appliesTo": "User", "capabilityStatus": "Enabled",
            "consumedUnits": tn.consumed(&sku.sku_id), "id": format!("{}_{}", tn.tenant_id, sku.sku_id),
            "prepaidUnits": {"enabled": sku.enabled, "lockedOut": 0, "suspended": 0, "warning": 0},
            "servicePlans": if sku.includes_exchange { json!([{"servicePlanId": "9aaf7827-d63c-4b61-89c3-182f06f82e5c", "servicePlanName": "EXCHANGE_S_STANDARD", "provisioningStatus": "Success", "appliesTo": "User"}]) } else { json!([]) },
            "skuId": sku.sku_id, "skuPartNumber": sku.sku_part_number,
        })).collect();
        Ok(reply(StatusCode::OK, json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscribedSkus", "value": value})))
    })
}

/// `POST /users/{id}/assignLicense`
pub async fn assign(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let (Some(add), Some(remove)) = (
        body["addLicenses"].as_array(),
        body["removeLicenses"].as_array(),
    ) else {
        return Err(bad_request("Invalid value specified for property 'addLicenses' or 'removeLicenses': both are required (send [] for none)."));
    };
    let add: Vec<String> = add
        .iter()
        .filter_map(|a| a["skuId"].as_str().map(str::to_lowercase))
        .collect();
    let remove: Vec<String> = remove
        .iter()
        .filter_map(|r| r.as_str().map(str::to_lowercase))
        .collect();
    s.write(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let mailbox_delay = w.settings.mailbox_delay_ms;
        let tn = &w.tenants[t];
        let user = &tn.users[u];
        for sku_id in add.iter().chain(&remove) {
            if !tn.skus.iter().any(|s| &s.sku_id == sku_id) {
                return Err(bad_request(format!("License {sku_id} does not correspond to a valid company License.")));
            }
        }
        if !add.is_empty() && user.usage_location.as_deref().is_none_or(str::is_empty) {
            return Err(bad_request("License assignment cannot be done for user with invalid usage location."));
        }
        for sku_id in &add {
            let sku = tn.skus.iter().find(|s| &s.sku_id == sku_id).expect("checked above");
            if !tn.has_licence(user, sku_id) && tn.consumed(sku_id) >= sku.enabled {
                return Err(bad_request(format!("Subscription {} ({}) does not have any available licenses.", sku.sku_part_number, sku_id)));
            }
        }
        for sku_id in &remove {
            if !user.assigned_licenses.contains(sku_id) {
                if !tn.inherited(user, sku_id).is_empty() {
                    return Err(bad_request("User license is inherited from a group membership and it cannot be removed directly from the user."));
                }
                return Err(bad_request(format!("User does not have a corresponding license {sku_id}.")));
            }
        }
        let had_exchange = tn.has_exchange_licence(user);
        let tenant_key = tn.id.clone();
        let upn = user.user_principal_name.to_lowercase();
        let parts: Vec<(String, String)> = tn.skus.iter().map(|s| (s.sku_id.clone(), s.sku_part_number.clone())).collect();
        let part = |id: &str| parts.iter().find(|(i, _)| i == id).map(|(_, p)| p.clone()).unwrap_or_default();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        {
            let user = &mut w.tenants[t].users[u];
            for sku_id in &add {
                if !user.assigned_licenses.contains(sku_id) {
                    user.assigned_licenses.push(sku_id.clone());
                    added.push(part(sku_id));
                }
            }
            for sku_id in &remove {
                user.assigned_licenses.retain(|s| s != sku_id);
                removed.push(part(sku_id));
            }
        }
        for p in &added {
            w.created(format!("{tenant_key}/licence/{upn}/{p}"));
        }
        for p in &removed {
            w.deleted(format!("{tenant_key}/licence/{upn}/{p}"));
        }
        let tn = &w.tenants[t];
        let user = &tn.users[u];
        let has_exchange = tn.has_exchange_licence(user);
        let uid = user.id.clone();
        let exchange_visible = user.exchange_visible_at_ms;
        let mailbox = tn.mailboxes.iter().position(|m| m.user_id == uid);
        if has_exchange && !had_exchange {
            match mailbox {
                None => {
                    w.tenants[t].mailboxes.push(Mailbox {
                        user_id: uid.clone(),
                        primary_smtp_address: upn.clone(),
                        recipient_type_details: "UserMailbox".into(),
                        auto_reply: AutoReply { state: "Disabled".into(), external_audience: "All".into(), ..AutoReply::default() },
                        // Exchange sees the mailbox once it is provisioned and the user has
                        // replicated to it.
                        available_at_ms: (now_ms() + mailbox_delay).max(exchange_visible),
                        ..Mailbox::default()
                    });
                    w.created(format!("{tenant_key}/mailbox/{upn}"));
                }
                Some(m) if w.tenants[t].mailboxes[m].pending_deletion.is_some() => {
                    // Re-licensing within the grace period brings the mailbox back.
                    w.tenants[t].mailboxes[m].pending_deletion = None;
                }
                Some(_) => {}
            }
        }
        if had_exchange && !has_exchange {
            if let Some(m) = mailbox {
                if w.tenants[t].mailboxes[m].recipient_type_details == "UserMailbox" {
                    w.tenants[t].mailboxes[m].pending_deletion = Some(
                        "the last Exchange licence was removed from a user mailbox that was not converted to shared: the mailbox and its data will be deleted".into(),
                    );
                    w.deleted(format!("{tenant_key}/mailbox/{upn}"));
                }
            }
        }
        let tn = &w.tenants[t];
        Ok(reply(StatusCode::OK, user_json(tn, &tn.users[u])))
    })
}

/// `GET /users/{id}/licenseDetails`
pub async fn details(
    State(s): State<Arc<Shared>>,
    GraphAuth(tenant): GraphAuth,
    Path(id): Path<String>,
) -> Reply {
    s.read(|w| {
        let (t, u) = locate(w, &tenant, &id)?;
        let tn = &w.tenants[t];
        let value: Vec<Value> = tn.skus.iter().filter(|s| tn.has_licence(&tn.users[u], &s.sku_id))
            .map(|s| json!({"id": s.sku_id, "skuId": s.sku_id, "skuPartNumber": s.sku_part_number, "servicePlans": []})).collect();
        Ok(reply(StatusCode::OK, json!({"value": value})))
    })
}
