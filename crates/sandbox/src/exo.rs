//! Exchange Online's admin API: `POST /adminapi/beta/{tenant}/InvokeCommand`, dispatching on
//! `CmdletInput.CmdletName` (Get-Mailbox, Set-Mailbox, Add/Get/Remove-MailboxPermission,
//! Set/Get-MailboxAutoReplyConfiguration), with warnings in `@adminapi.warnings`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::auth::ExoAuth;
use crate::http::{reply, Reply};
use crate::model::{Mailbox, Permission, World};
use crate::shared::{now_ms, Shared};

/// Exchange routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new().route(
        "/outlook.office365.com/adminapi/beta/{tenant}/InvokeCommand",
        post(invoke),
    )
}

fn exo_error(status: StatusCode, exception: &str, message: &str) -> Response {
    reply(
        status,
        json!({"error": {"code": status.as_u16().to_string(), "message": message,
        "details": [{"message": message}],
        "innererror": {"internalException": {"message": format!("|Microsoft.Exchange.{exception}|{message}")}}}}),
    )
}

fn not_found(identity: &str) -> Response {
    exo_error(StatusCode::NOT_FOUND, "Configuration.Tasks.ManagementObjectNotFoundException",
        &format!("The operation couldn't be performed because object '{identity}' couldn't be found on 'SY4P282A01DC001.AUSP282A001.PROD.OUTLOOK.COM'."))
}

fn mailbox_json(m: &Mailbox) -> Value {
    json!({"Identity": m.primary_smtp_address, "PrimarySmtpAddress": m.primary_smtp_address, "UserPrincipalName": m.primary_smtp_address,
           "RecipientTypeDetails": m.recipient_type_details, "HiddenFromAddressListsEnabled": m.hidden_from_address_lists_enabled,
           "ForwardingSmtpAddress": m.forwarding_smtp_address.as_ref().map(|a| format!("smtp:{a}")), "ForwardingAddress": null,
           "DeliverToMailboxAndForward": m.deliver_to_mailbox_and_forward, "ExternalDirectoryObjectId": m.user_id})
}

fn find(w: &World, t: usize, identity: &str) -> Option<usize> {
    let now = now_ms();
    let id = identity.to_lowercase();
    w.tenants[t].mailboxes.iter().position(|m| {
        (m.primary_smtp_address.to_lowercase() == id || m.user_id == identity)
            && m.available_at_ms <= now
            && m.pending_deletion.is_none()
    })
}

fn ok(value: Vec<Value>, warnings: Vec<String>) -> Response {
    let mut body = json!({"@odata.context": "https://outlook.office365.com/adminapi/beta/$metadata#Collection(Exchange.GenericHashTable)", "value": value});
    if !warnings.is_empty() {
        body["@adminapi.warnings"] = json!(warnings);
    }
    reply(StatusCode::OK, body)
}

async fn invoke(
    State(s): State<Arc<Shared>>,
    ExoAuth(token_tenant): ExoAuth,
    Path(tenant): Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    let cmdlet = body["CmdletInput"]["CmdletName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let params = body["CmdletInput"]["Parameters"].clone();
    let identity = params["Identity"].as_str().unwrap_or_default().to_string();
    s.write(|w| {
        let t = w.tenant(&tenant).ok_or_else(|| exo_error(StatusCode::NOT_FOUND, "Data.Directory.TenantNotFoundException", &format!("Tenant '{tenant}' was not found.")))?;
        if w.tenants[t].id != token_tenant {
            return Err(exo_error(StatusCode::FORBIDDEN, "Security.AccessDeniedException", "The token was issued for another tenant."));
        }
        let tenant_key = w.tenants[t].id.clone();
        match cmdlet.as_str() {
            "Get-Mailbox" => {
                if identity.is_empty() {
                    let now = now_ms();
                    let all = w.tenants[t].mailboxes.iter().filter(|m| m.available_at_ms <= now && m.pending_deletion.is_none()).map(mailbox_json).collect();
                    return Ok(ok(all, vec![]));
                }
                let m = find(w, t, &identity).ok_or_else(|| not_found(&identity))?;
                Ok(ok(vec![mailbox_json(&w.tenants[t].mailboxes[m])], vec![]))
            }
            "Set-Mailbox" => {
                let m = find(w, t, &identity).ok_or_else(|| not_found(&identity))?;
                let mb = &mut w.tenants[t].mailboxes[m];
                let before = serde_json::to_value(&*mb).unwrap_or_default();
                if let Some(kind) = params["Type"].as_str() {
                    mb.recipient_type_details = match kind {
                        "Shared" => "SharedMailbox",
                        "Regular" => "UserMailbox",
                        "Room" => "RoomMailbox",
                        "Equipment" => "EquipmentMailbox",
                        other => return Err(exo_error(StatusCode::BAD_REQUEST, "Management.Tasks.InvalidParameterException", &format!("Cannot process argument transformation on parameter 'Type'. Cannot convert value \"{other}\"."))),
                    }.into();
                }
                if let Some(h) = params["HiddenFromAddressListsEnabled"].as_bool() {
                    mb.hidden_from_address_lists_enabled = h;
                }
                if params.get("ForwardingSMTPAddress").is_some() || params.get("ForwardingSmtpAddress").is_some() {
                    let v = params.get("ForwardingSMTPAddress").or(params.get("ForwardingSmtpAddress")).and_then(Value::as_str);
                    mb.forwarding_smtp_address = v.map(|a| a.trim_start_matches("smtp:").to_string());
                }
                if let Some(d) = params["DeliverToMailboxAndForward"].as_bool() {
                    mb.deliver_to_mailbox_and_forward = d;
                }
                let after = serde_json::to_value(&*mb).unwrap_or_default();
                let addr = mb.primary_smtp_address.to_lowercase();
                if before == after {
                    return Ok(ok(vec![], vec![format!("The command completed successfully but no settings of '{identity}' have been modified.")]));
                }
                w.changed(format!("{tenant_key}/mailbox/{addr}"));
                Ok(ok(vec![], vec![]))
            }
            "Add-MailboxPermission" => {
                let m = find(w, t, &identity).ok_or_else(|| not_found(&identity))?;
                let user = params["User"].as_str().or(params["user"].as_str()).unwrap_or_default().to_string();
                if user.is_empty() || w.tenants[t].exchange_user(&user).is_none() {
                    return Err(not_found(&user));
                }
                let rights: Vec<String> = params["AccessRights"].as_array().or(params["accessRights"].as_array()).map(|a| a.iter().filter_map(|r| r.as_str().map(str::to_string)).collect()).unwrap_or_else(|| vec!["FullAccess".into()]);
                let automapping = params["AutoMapping"].as_bool().or(params["automapping"].as_bool()).unwrap_or(true);
                let mb = &mut w.tenants[t].mailboxes[m];
                let addr = mb.primary_smtp_address.to_lowercase();
                if mb.full_access.iter().any(|p| p.user.eq_ignore_ascii_case(&user)) {
                    return Ok(ok(vec![], vec![format!("The appropriate access control entry is already present on the object \"{identity}\" for account \"{user}\".")]));
                }
                mb.full_access.push(Permission { user: user.clone(), access_rights: rights.clone(), automapping });
                w.created(format!("{tenant_key}/mailbox/{addr}/permission/{}", user.to_lowercase()));
                Ok(ok(vec![json!({"Identity": identity, "User": user, "AccessRights": rights, "IsInherited": false, "Deny": false})], vec![]))
            }
            "Get-MailboxPermission" => {
                let m = find(w, t, &identity).ok_or_else(|| not_found(&identity))?;
                let v = w.tenants[t].mailboxes[m].full_access.iter().map(|p| json!({"Identity": identity, "User": p.user, "AccessRights": p.access_rights, "IsInherited": false, "Deny": false})).collect();
                Ok(ok(v, vec![]))
            }
            "Remove-MailboxPermission" => {
                let m = find(w, t, &identity).ok_or_else(|| not_found(&identity))?;
                let user = params["User"].as_str().or(params["user"].as_str()).unwrap_or_default().to_string();
                let mb = &mut w.tenants[t].mailboxes[m];
                let before = mb.full_access.len();
                mb.full_access.retain(|p| !p.user.eq_ignore_ascii_case(&user));
                if before == mb.full_access.len() {
                    return Ok(ok(vec![], vec![format!("Can't remove the access control entry on the object \"{identity}\" for account \"{user}\" because the ACE doesn't exist on the object.")]));
                }
                let addr = mb.primary_smtp_address.to_lowercase();
                w.deleted(format!("{tenant_key}/mailbox/{addr}/permission/{}", user.to_lowercase()));
                Ok(ok(vec![], vec![]))
            }
            "Set-MailboxAutoReplyConfiguration" => {
                let m = find(w, t, &identity).ok_or_else(|| not_found(&identity))?;
                let a = &mut w.tenants[t].mailboxes[m].auto_reply;
                if let Some(v) = params["AutoReplyState"].as_str() {
                    if !["Enabled", "Disabled", "Scheduled"].contains(&v) {
                        return Err(exo_error(StatusCode::BAD_REQUEST, "Management.Tasks.InvalidParameterException", &format!("Cannot process argument transformation on parameter 'AutoReplyState'. Cannot convert value \"{v}\".")));
                    }
                    a.state = v.into();
                }
                if let Some(v) = params["InternalMessage"].as_str() { a.internal_message = v.into(); }
                if let Some(v) = params["ExternalMessage"].as_str() { a.external_message = v.into(); }
                if let Some(v) = params["ExternalAudience"].as_str() { a.external_audience = v.into(); }
                if let Some(v) = params["StartTime"].as_str() { a.start_time = Some(v.into()); }
                if let Some(v) = params["EndTime"].as_str() { a.end_time = Some(v.into()); }
                let addr = w.tenants[t].mailboxes[m].primary_smtp_address.to_lowercase();
                w.changed(format!("{tenant_key}/mailbox/{addr}/auto_reply"));
                Ok(ok(vec![], vec![]))
            }
            "Get-MailboxAutoReplyConfiguration" => {
                let m = find(w, t, &identity).ok_or_else(|| not_found(&identity))?;
                let a = &w.tenants[t].mailboxes[m].auto_reply;
                Ok(ok(vec![json!({"Identity": identity, "AutoReplyState": a.state, "InternalMessage": a.internal_message, "ExternalMessage": a.external_message, "ExternalAudience": a.external_audience, "StartTime": a.start_time, "EndTime": a.end_time})], vec![]))
            }
            "" => Err(exo_error(StatusCode::BAD_REQUEST, "Management.Tasks.InvalidRequestException", "CmdletInput.CmdletName is required.")),
            other => Err(exo_error(StatusCode::BAD_REQUEST, "Management.Tasks.CmdletNotFoundException", &format!("The term '{other}' is not recognized as a cmdlet available in this session."))),
        }
    })
}
