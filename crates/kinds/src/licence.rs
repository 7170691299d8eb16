//! `licence.*`: licences over Microsoft Graph (`assignLicense`, `licenseAssignmentStates`,
//! `subscribedSkus`).

use std::collections::HashMap;
use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use tenure_engine::kinds::{BoxFuture, Call, Executor, Outcome, Registry, StepError};
use tenure_vendors::Client;

use crate::entra::{segment, user};
use crate::exchange::find_mailbox;
use crate::vendors::{param, step_error, Vendors};

/// Registers the licence kinds.
pub fn register(registry: &mut Registry, vendors: &Arc<Vendors>) {
    registry.insert("licence.remove_all", RemoveAll(vendors.clone()));
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
        let url = format!(
            "{}/users/{}?$select=id,userPrincipalName,assignedLicenses,licenseAssignmentStates",
            client.endpoints.graph,
            segment(&uid)
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
        let names = sku_names(&client).await?;
        let label = |id: &str| names.get(id).cloned().unwrap_or_else(|| id.to_string());
        let states = detail["licenseAssignmentStates"]
            .as_array()
            .cloned()
            .unwrap_or_default();
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

impl Executor for RemoveAll {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(self.run(call))
    }
}
