//! `licence.*`: licences over Microsoft Graph (`assignLicense`, `licenseAssignmentStates`,
//! `subscribedSkus`), seats bought at Pax8 or Partner Center. A bought seat that has not reached
//! the tenant yet makes `licence.assign` answer [`Outcome::Later`] (see [`crate::later`]); the
//! next attempt finds the purchase on its way and buys nothing more.

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, StepError};
use tenure_vendors::Client;

use crate::entra::{segment, user};
use crate::exchange::find_mailbox;
use crate::later::lagged;
use crate::seats::{
    pax8_subscription, pc_subscription, release_partner_center, release_pax8, request_id, Release,
};
use crate::vendors::{param, step_error, Vendors};

/// Registers the licence kinds.
pub fn register(registry: &mut Registry, vendors: &Arc<Vendors>) {
    // A user created moments ago may not have replicated yet: see `crate::later::Lagged`.
    let v = vendors;
    registry.insert("licence.remove_all", lagged(v, RemoveAll(v.clone())));
    registry.insert("licence.assign", lagged(v, Assign(v.clone())));
    registry.insert("licence.remove", lagged(v, Remove(v.clone())));
}

/// `licence.remove`: one SKU; not assigned is success; inherited through a group is an error
/// that names the group. With `release_seat`, then releases a seat at the distributor
/// ([`crate::seats`]).
struct Remove(Arc<Vendors>);

impl Remove {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let wanted = param(call.params, "sku")?;
        let release = call.params["release_seat"].as_bool() == Some(true);
        let source = call.params["source"].as_str().unwrap_or("direct");
        if release && !matches!(source, "pax8" | "partner_center") {
            return Err(StepError::permanent(
                "invalid_params",
                "release_seat: true needs source: pax8 or partner_center (where the seat was bought)",
            ));
        }
        let (sku, removed) = self.remove(&client, name, wanted).await?;
        let released = if release {
            // Seats in use now that the licence is gone.
            let consumed = find_sku(&client, &sku).await?.consumed;
            let r = if source == "pax8" {
                release_pax8(&client, &call, &sku, consumed).await?
            } else {
                release_partner_center(&client, &call, &sku, consumed).await?
            };
            Some(r)
        } else {
            None
        };
        let (outcome, date, reason) = match released {
            Some(Release {
                outcome,
                date,
                reason,
            }) => (json!(outcome), json!(date), json!(reason)),
            None => (Value::Null, Value::Null, Value::Null),
        };
        Ok(Outcome::Done(json!({
            "sku": sku,
            "removed": removed,
            "seat_release": outcome,
            "seat_release_date": date,
            "seat_release_reason": reason,
        })))
    }

    /// Removes the licence; returns the SKU part number and whether it was removed.
    async fn remove(
        &self,
        client: &Client,
        name: &str,
        wanted: &str,
    ) -> Result<(String, bool), StepError> {
        let u = user(client, name).await?;
        let uid = u["id"].as_str().unwrap_or_default().to_string();
        let sku = find_sku(client, wanted).await?;
        let states: Vec<Value> = assignments(client, name, &uid)
            .await?
            .into_iter()
            .filter(|s| s["skuId"] == json!(sku.id))
            .collect();
        let direct = states.iter().any(|s| s["assignedByGroup"].is_null());
        if !direct {
            if let Some(group) = states.first().and_then(|s| s["assignedByGroup"].as_str()) {
                return Err(StepError::permanent(
                    "inherited_licence",
                    format!("{name} gets {} through group {group}: remove the user from the group instead", sku.part),
                ));
            }
            return Ok((sku.part, false));
        }
        let url = format!(
            "{}/users/{}/assignLicense",
            client.endpoints.graph,
            segment(&uid)
        );
        let body = json!({"addLicenses": [], "removeLicenses": [sku.id]});
        client
            .send(
                &format!("remove {} from {name}", sku.part),
                Method::POST,
                &url,
                Some(&body),
                &[],
            )
            .await
            .map_err(step_error)?;
        Ok((sku.part, true))
    }
}

/// A SKU of the tenant with its seats.
struct Sku {
    id: String,
    part: String,
    enabled: u64,
    consumed: u64,
}

impl Sku {
    fn free(&self) -> u64 {
        self.enabled.saturating_sub(self.consumed)
    }
}

async fn find_sku(client: &Client, wanted: &str) -> Result<Sku, StepError> {
    let url = format!("{}/subscribedSkus", client.endpoints.graph);
    let skus = client
        .list_all("read the tenant's subscriptions", &url)
        .await
        .map_err(step_error)?;
    skus.iter()
        .find(|s| {
            s["skuPartNumber"]
                .as_str()
                .is_some_and(|p| p.eq_ignore_ascii_case(wanted))
                || s["skuId"].as_str() == Some(wanted)
        })
        .map(|s| Sku {
            id: s["skuId"].as_str().unwrap_or_default().to_string(),
            part: s["skuPartNumber"].as_str().unwrap_or_default().to_string(),
            enabled: s["prepaidUnits"]["enabled"].as_u64().unwrap_or(0),
            consumed: s["consumedUnits"].as_u64().unwrap_or(0),
        })
        .ok_or_else(|| {
            StepError::permanent(
                "sku_not_found",
                format!(
                    "tenant {} has no subscription for SKU {wanted}",
                    client.tenant()
                ),
            )
        })
}

/// How long `licence.assign` waits in all for a bought seat to reach the tenant.
const SEAT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);

/// `licence.assign`.
struct Assign(Arc<Vendors>);

impl Assign {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let wanted = param(call.params, "sku")?;
        let source = call.params["source"].as_str().unwrap_or("direct");
        let u = user(&client, name).await?;
        let uid = u["id"].as_str().unwrap_or_default().to_string();
        let sku = find_sku(&client, wanted).await?;
        // Assigned directly already (a group-inherited copy does not count).
        let has = assignments(&client, name, &uid)
            .await?
            .iter()
            .any(|s| s["skuId"] == json!(sku.id) && s["assignedByGroup"].is_null());
        if has {
            return Ok(Outcome::Done(
                json!({"sku": sku.part, "sku_id": sku.id, "purchased": false, "assigned": false}),
            ));
        }
        let mut purchased = false;
        if sku.free() == 0 {
            purchased = match source {
                "pax8" => self.buy_pax8(&client, &call, &sku).await?,
                "partner_center" => self.buy_partner_center(&client, &call, &sku).await?,
                _ => {
                    return Err(StepError::permanent(
                        "no_free_seat",
                        format!(
                            "no free seat of {} ({}/{} in use); buy one or use source: pax8 / partner_center",
                            sku.part, sku.consumed, sku.enabled
                        ),
                    ))
                }
            };
            // A bought seat takes a while to reach the tenant: look again briefly, then let the
            // engine park the step. The next attempt finds the purchase in flight (the
            // subscription holds more seats than the tenant sees) and buys nothing more.
            let patience = self.0.patience();
            let (c, part) = (&client, sku.part.as_str());
            let seen = patience
                .recheck(
                    move || async move { Ok((find_sku(c, part).await?.free() > 0).then_some(())) },
                )
                .await?;
            if seen.is_none() {
                return patience.later(
                    call.attempt,
                    SEAT_PATIENCE,
                    "seat_pending",
                    format!("the new {} seat has not reached the tenant yet", sku.part),
                );
            }
        }
        let disabled: Vec<Value> = call.params["disabled_plans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let url = format!(
            "{}/users/{}/assignLicense",
            client.endpoints.graph,
            segment(&uid)
        );
        let body = json!({"addLicenses": [{"skuId": sku.id, "disabledPlans": disabled}], "removeLicenses": []});
        match client
            .send(
                &format!("assign {} to {name}", sku.part),
                Method::POST,
                &url,
                Some(&body),
                &[],
            )
            .await
        {
            Ok(_) => Ok(Outcome::Done(
                json!({"sku": sku.part, "sku_id": sku.id, "purchased": purchased, "assigned": true}),
            )),
            // Another assignment took the seat meanwhile: worth another attempt.
            Err(e) if e.message.contains("does not have any available licenses") => {
                let mut err = step_error(e);
                err.retryable = true;
                Err(err)
            }
            Err(e) => Err(step_error(e)),
        }
    }

    /// Buys one more seat of `sku` on the tenant's Pax8 subscription, unless one is already on
    /// its way (the subscription holds more seats than the tenant sees). Returns true.
    async fn buy_pax8(
        &self,
        client: &Client,
        call: &Call<'_>,
        sku: &Sku,
    ) -> Result<bool, StepError> {
        let sub = pax8_subscription(client, call, &sku.part).await?;
        let base = &client.endpoints.pax8;
        let quantity = sub["quantity"].as_u64().unwrap_or(0);
        if quantity > sku.enabled {
            return Ok(true);
        }
        let url = format!("{base}/subscriptions/{}", sub["id"].as_str().unwrap_or(""));
        client
            .send(
                &format!("buy a {} seat at Pax8", sku.part),
                Method::PUT,
                &url,
                Some(&json!({"quantity": quantity + 1})),
                &[],
            )
            .await
            .map_err(step_error)?;
        Ok(true)
    }

    /// Buys one more seat on the tenant's Partner Center subscription (the `MS-RequestId` is
    /// stable per step instance, so a repeated request applies once).
    async fn buy_partner_center(
        &self,
        client: &Client,
        call: &Call<'_>,
        sku: &Sku,
    ) -> Result<bool, StepError> {
        let (cid, sub) = pc_subscription(client, call, &sku.part).await?;
        let base = &client.endpoints.partner_center;
        let quantity = sub["quantity"].as_u64().unwrap_or(0);
        if quantity > sku.enabled {
            return Ok(true);
        }
        let mut body = sub.clone();
        body["quantity"] = json!(quantity + 1);
        let url = format!(
            "{base}/customers/{cid}/subscriptions/{}",
            sub["id"].as_str().unwrap_or("")
        );
        client
            .send(
                &format!("buy a {} seat at Partner Center", sku.part),
                Method::PATCH,
                &url,
                Some(&body),
                &[("MS-RequestId", request_id(&call.idempotency_key()))],
            )
            .await
            .map_err(step_error)?;
        Ok(true)
    }
}

/// The user's licence assignments (`licenseAssignmentStates`: one per SKU and source).
async fn assignments(client: &Client, name: &str, uid: &str) -> Result<Vec<Value>, StepError> {
    let url = format!(
        "{}/users/{}?$select=id,licenseAssignmentStates",
        client.endpoints.graph,
        segment(uid)
    );
    let (_, detail) = client
        .send(
            &format!("read the licences of {name}"),
            Method::GET,
            &url,
            None,
            &[],
        )
        .await
        .map_err(step_error)?;
    Ok(detail["licenseAssignmentStates"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// SKU id → part number (`SPB`, `O365_BUSINESS_PREMIUM`...).
async fn sku_names(client: &Client) -> Result<HashMap<String, String>, StepError> {
    let url = format!("{}/subscribedSkus", client.endpoints.graph);
    let skus = client
        .list_all("read the tenant's subscriptions", &url)
        .await
        .map_err(step_error)?;
    Ok(skus
        .iter()
        .filter_map(|s| {
            Some((
                s["skuId"].as_str()?.to_string(),
                s["skuPartNumber"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// `licence.remove_all`.
struct RemoveAll(Arc<Vendors>);

impl RemoveAll {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let allow_loss = call.params["allow_mailbox_loss"].as_bool().unwrap_or(false);
        let u = user(&client, name).await?;
        let uid = u["id"].as_str().unwrap_or_default().to_string();
        let states = assignments(&client, name, &uid).await?;
        let names = sku_names(&client).await?;
        let label = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
        let direct: Vec<String> = states
            .iter()
            .filter(|s| s["assignedByGroup"].is_null())
            .filter_map(|s| s["skuId"].as_str().map(str::to_string))
            .collect();
        let mut inherited: Vec<String> = states
            .iter()
            .filter(|s| !s["assignedByGroup"].is_null())
            .filter_map(|s| s["skuId"].as_str().map(&label))
            .collect();
        inherited.dedup();
        if direct.is_empty() {
            return Ok(Outcome::Done(
                json!({"id": uid, "removed": [], "inherited": inherited}),
            ));
        }
        // Safety: removing the last Exchange licence deletes a user mailbox (data loss).
        if !allow_loss {
            let upn = u["userPrincipalName"].as_str().unwrap_or(name);
            if let Some(mailbox) = find_mailbox(&client, upn).await? {
                let kind = mailbox["RecipientTypeDetails"].as_str().unwrap_or("");
                if kind == "UserMailbox" {
                    return Err(StepError::permanent(
                        "mailbox_not_shared",
                        format!("{upn} still has a user mailbox: removing its licences would delete the mailbox. Convert it to shared first (exchange.convert_to_shared) or set allow_mailbox_loss: true"),
                    ));
                }
            }
        }
        let url = format!(
            "{}/users/{}/assignLicense",
            client.endpoints.graph,
            segment(&uid)
        );
        let body = json!({"addLicenses": [], "removeLicenses": direct});
        client
            .send(
                &format!("remove the licences of {name}"),
                Method::POST,
                &url,
                Some(&body),
                &[],
            )
            .await
            .map_err(step_error)?;
        let removed: Vec<String> = direct.iter().map(|id| label(id)).collect();
        Ok(Outcome::Done(
            json!({"id": uid, "removed": removed, "inherited": inherited}),
        ))
    }
}

crate::executor!(Assign, RemoveAll, Remove);
