//! `exchange.*`: mailbox changes through Exchange Online's admin API
//! (`POST /adminapi/beta/{tenant}/InvokeCommand` with a `CmdletInput`). Each kind reads the
//! mailbox first and changes only what differs. `exchange.convert_to_shared` waits for a new
//! mailbox without holding a worker: it re-checks for a few seconds, then answers
//! [`Outcome::Later`] (see [`crate::later`]).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, StepError};
use tenure_vendors::{Client, VendorError};

use crate::later::lagged;
use crate::vendors::{param, step_error, Vendors};

/// Registers the Exchange kinds.
pub fn register(registry: &mut Registry, vendors: &Arc<Vendors>) {
    for kind in [
        Kind::ConvertToShared,
        Kind::ConvertToRegular,
        Kind::HideFromGal,
        Kind::SetForwarding,
        Kind::GrantFullAccess,
        Kind::SetAutoReply,
    ] {
        // A trustee or mailbox owner created moments ago may not have replicated to Exchange
        // yet: see `crate::later::Lagged`.
        registry.insert(
            kind.name(),
            lagged(
                vendors,
                Mailbox {
                    vendors: vendors.clone(),
                    kind,
                },
            ),
        );
    }
}

#[derive(Clone, Copy)]
enum Kind {
    ConvertToShared,
    ConvertToRegular,
    HideFromGal,
    SetForwarding,
    GrantFullAccess,
    SetAutoReply,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ConvertToShared => "exchange.convert_to_shared",
            Kind::ConvertToRegular => "exchange.convert_to_regular",
            Kind::HideFromGal => "exchange.hide_from_gal",
            Kind::SetForwarding => "exchange.set_forwarding",
            Kind::GrantFullAccess => "exchange.grant_full_access",
            Kind::SetAutoReply => "exchange.set_auto_reply",
        }
    }
}

/// Runs a cmdlet; returns its `value` rows and its warnings.
pub(crate) async fn invoke(
    client: &Client,
    what: &str,
    cmdlet: &str,
    parameters: Value,
) -> Result<(Vec<Value>, Vec<String>), VendorError> {
    let url = format!(
        "{}/{}/InvokeCommand",
        client.endpoints.exchange,
        client.tenant()
    );
    let body = json!({"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}});
    let (_, answer) = client
        .send(what, Method::POST, &url, Some(&body), &[])
        .await?;
    let rows = answer["value"].as_array().cloned().unwrap_or_default();
    let warnings = answer["@adminapi.warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect();
    Ok((rows, warnings))
}

/// The mailbox of `user`, or `None` while it does not exist.
pub(crate) async fn find_mailbox(client: &Client, user: &str) -> Result<Option<Value>, StepError> {
    match invoke(
        client,
        &format!("look up the mailbox of {user}"),
        "Get-Mailbox",
        json!({"Identity": user}),
    )
    .await
    {
        Ok((rows, _)) => Ok(rows.into_iter().next()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(step_error(e)),
    }
}

fn duration_param(params: &Value, name: &str, default: Duration) -> Duration {
    params[name]
        .as_str()
        .and_then(|s| tenure_runbook::duration::parse(s).ok())
        .unwrap_or(default)
}

struct Mailbox {
    vendors: Arc<Vendors>,
    kind: Kind,
}

impl Mailbox {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.vendors.client(&call)?;
        let p = call.params;
        let user = param(p, "user")?;
        let mailbox = match find_mailbox(&client, user).await? {
            Some(m) => m,
            // A new mailbox takes a while to provision: look again briefly, then let the engine
            // park the step and look again later, up to `wait_for_mailbox` in all.
            None if matches!(self.kind, Kind::ConvertToShared) => {
                let patience = self.vendors.patience();
                let c = &client;
                match patience.recheck(move || find_mailbox(c, user)).await? {
                    Some(m) => m,
                    None => {
                        let limit =
                            duration_param(p, "wait_for_mailbox", Duration::from_secs(1800));
                        return patience.later(
                            call.attempt,
                            limit,
                            "mailbox_not_found",
                            format!("{user} has no mailbox yet"),
                        );
                    }
                }
            }
            None => {
                return Err(StepError::transient(
                    "mailbox_not_found",
                    format!("{user} has no mailbox yet"),
                ))
            }
        };
        let address = mailbox["PrimarySmtpAddress"]
            .as_str()
            .unwrap_or(user)
            .to_string();
        let set = |params: Value, what: String| {
            let client = client.clone();
            async move {
                invoke(&client, &what, "Set-Mailbox", params)
                    .await
                    .map_err(step_error)
            }
        };
        let out = match self.kind {
            Kind::ConvertToShared | Kind::ConvertToRegular => {
                let (target, details, word) = if matches!(self.kind, Kind::ConvertToShared) {
                    ("Shared", "SharedMailbox", "a shared")
                } else {
                    ("Regular", "UserMailbox", "a user")
                };
                let before = mailbox["RecipientTypeDetails"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if before != details {
                    set(
                        json!({"Identity": address, "Type": target}),
                        format!("convert the mailbox of {user} to {word} mailbox"),
                    )
                    .await?;
                }
                // Confirm: a licence may only go once Exchange says the mailbox is shared (and a
                // rehire is told only once it is a user mailbox again).
                let after = find_mailbox(&client, &address).await?.ok_or_else(|| {
                    StepError::transient(
                        "mailbox_not_found",
                        format!("the mailbox of {user} vanished"),
                    )
                })?;
                let kind = after["RecipientTypeDetails"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if kind != details {
                    return Err(StepError::transient(
                        "conversion_pending",
                        format!("the mailbox of {user} is still {kind} after the conversion"),
                    ));
                }
                json!({"mailbox": address, "type": kind, "converted": before != details})
            }
            Kind::HideFromGal => {
                let hidden = p["hidden"].as_bool().unwrap_or(true);
                let changed = mailbox["HiddenFromAddressListsEnabled"].as_bool() != Some(hidden);
                if changed {
                    set(
                        json!({"Identity": address, "HiddenFromAddressListsEnabled": hidden}),
                        format!("hide the mailbox of {user}"),
                    )
                    .await?;
                }
                json!({"mailbox": address, "hidden": hidden, "changed": changed})
            }
            Kind::SetForwarding => {
                let to = param(p, "forward_to")?;
                let keep = p["keep_copy"].as_bool().unwrap_or(true);
                let current = mailbox["ForwardingSmtpAddress"]
                    .as_str()
                    .map(|a| a.trim_start_matches("smtp:").to_lowercase());
                let changed = current.as_deref() != Some(to.to_lowercase().as_str())
                    || mailbox["DeliverToMailboxAndForward"].as_bool() != Some(keep);
                if changed {
                    set(
                        json!({"Identity": address, "ForwardingSmtpAddress": format!("smtp:{to}"), "DeliverToMailboxAndForward": keep}),
                        format!("forward the mail of {user}"),
                    )
                    .await?;
                }
                json!({"mailbox": address, "forward_to": to, "changed": changed})
            }
            Kind::GrantFullAccess => {
                let trustee = param(p, "trustee")?;
                let (rows, _) = invoke(
                    &client,
                    &format!("read the permissions of {user}"),
                    "Get-MailboxPermission",
                    json!({"Identity": address}),
                )
                .await
                .map_err(step_error)?;
                let present = rows.iter().any(|r| {
                    r["User"]
                        .as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(trustee))
                        && r["AccessRights"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|x| x == "FullAccess"))
                });
                if !present {
                    invoke(
                        &client,
                        &format!("give {trustee} full access to {user}"),
                        "Add-MailboxPermission",
                        json!({"Identity": address, "User": trustee, "AccessRights": ["FullAccess"], "AutoMapping": p["auto_mapping"].as_bool().unwrap_or(true)}),
                    )
                    .await
                    .map_err(step_error)?;
                }
                json!({"mailbox": address, "trustee": trustee, "granted": !present})
            }
            Kind::SetAutoReply => {
                let internal = param(p, "message")?;
                let external = p["external_message"].as_str().unwrap_or(internal);
                let audience = match p["external"].as_str().unwrap_or("all") {
                    "known" => "Known",
                    "none" => "None",
                    _ => "All",
                };
                let mut wanted = json!({"Identity": address, "AutoReplyState": "Enabled", "InternalMessage": internal, "ExternalMessage": external, "ExternalAudience": audience});
                if let (Some(start), Some(end)) = (p["start"].as_str(), p["end"].as_str()) {
                    wanted["AutoReplyState"] = json!("Scheduled");
                    wanted["StartTime"] = json!(start);
                    wanted["EndTime"] = json!(end);
                }
                let (rows, _) = invoke(
                    &client,
                    &format!("read the automatic reply of {user}"),
                    "Get-MailboxAutoReplyConfiguration",
                    json!({"Identity": address}),
                )
                .await
                .map_err(step_error)?;
                let current = rows.into_iter().next().unwrap_or(Value::Null);
                let changed = [
                    "AutoReplyState",
                    "InternalMessage",
                    "ExternalMessage",
                    "ExternalAudience",
                ]
                .iter()
                .any(|k| current[*k] != wanted[*k]);
                if changed {
                    invoke(
                        &client,
                        &format!("set the automatic reply of {user}"),
                        "Set-MailboxAutoReplyConfiguration",
                        wanted,
                    )
                    .await
                    .map_err(step_error)?;
                }
                json!({"mailbox": address, "changed": changed})
            }
        };
        Ok(Outcome::Done(out))
    }
}

crate::executor!(Mailbox);
