//! `entra.restore_user`: a former employee's account back, never a second one. A live account
//! with that name (disabled or not) is used as it is; otherwise the newest deleted one is
//! restored from the deleted items (they are kept 30 days). A repeat after a crash finds the
//! restored account live and uses it.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use tenure_steps::{Call, Outcome, Registry, StepError};

use crate::entra::{find_user, id_of, segment};
use crate::people::find_deleted;
use crate::vendors::{param, step_error, Vendors};

/// `entra.restore_user`.
struct RestoreUser(Arc<Vendors>);

/// Registers `entra.restore_user`.
pub fn register(registry: &mut Registry, vendors: &Arc<Vendors>) {
    registry.insert("entra.restore_user", RestoreUser(vendors.clone()));
}

crate::executor!(RestoreUser);

impl RestoreUser {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        if let Some(u) = find_user(&client, name).await? {
            return Ok(Outcome::Done(json!({
                "id": id_of(&u),
                "user_principal_name": u["userPrincipalName"],
                "restored": false,
                "was_enabled": u["accountEnabled"] != false,
            })));
        }
        let Some(deleted) = find_deleted(&client, name).await? else {
            return Err(StepError::permanent(
                "user_not_found",
                format!(
                    "no user `{name}` in tenant {}, live or among the deleted users (they are kept 30 days): create a new account instead",
                    client.tenant()
                ),
            ));
        };
        let id = id_of(&deleted);
        let url = format!(
            "{}/directory/deletedItems/{}/restore",
            client.endpoints.graph,
            segment(&id)
        );
        let (_, restored) = client
            .send(
                &format!("restore {name} from the deleted users"),
                Method::POST,
                &url,
                None,
                &[],
            )
            .await
            .map_err(|e| {
                let mut e = step_error(e);
                if e.message.contains("already exists") {
                    e.message = format!(
                        "{name} cannot be restored: another user has its user principal name now ({})",
                        e.message
                    );
                }
                e
            })?;
        Ok(Outcome::Done(json!({
            "id": id,
            "user_principal_name": restored["userPrincipalName"].as_str().unwrap_or(name),
            "restored": true,
            "was_enabled": false,
        })))
    }
}
