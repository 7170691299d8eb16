//! Where a person stands in a tenant, as HR platforms show it: **Active** (an account that can
//! sign in), **Deactivated** (an account with sign-in blocked) or **No access** (no account,
//! or one in the deleted items, still restorable until its recovery window ends). Two Graph
//! reads at most: the user, then, only when there is none, the deleted users (paged).

use reqwest::Method;
use serde_json::Value;
use tenure_steps::{Requests, StepError};

use crate::entra::{find_user, segment};
use crate::vendors::{step_error, Vendors};

/// A person's access to a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// An account that can sign in.
    Active,
    /// An account whose sign-in is blocked.
    Deactivated,
    /// No account (perhaps a deleted one, see [`Standing::deleted`]).
    NoAccess,
}

impl Access {
    /// As HR platforms word it.
    pub fn label(self) -> &'static str {
        match self {
            Access::Active => "Active",
            Access::Deactivated => "Deactivated",
            Access::NoAccess => "No access",
        }
    }

    /// As JSON output names it: `active`, `deactivated`, `no_access`.
    pub fn code(self) -> &'static str {
        match self {
            Access::Active => "active",
            Access::Deactivated => "deactivated",
            Access::NoAccess => "no_access",
        }
    }
}

/// What the tenant says about a person.
#[derive(Clone, Debug)]
pub struct Standing {
    /// Their access.
    pub access: Access,
    /// The account (id, userPrincipalName, displayName, accountEnabled, onPremisesSyncEnabled,
    /// assignedLicenses), when there is one.
    pub account: Option<Value>,
    /// A deleted account with this user principal name (id, deletedDateTime), when there is
    /// no live one.
    pub deleted: Option<Value>,
}

impl Standing {
    /// `{"access", "account"?, "deleted"?}`.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::json!({"access": self.access.code()});
        if let Some(a) = &self.account {
            v["account"] = a.clone();
        }
        if let Some(d) = &self.deleted {
            v["deleted"] = d.clone();
        }
        v
    }
}

/// Reads where `upn` stands in `tenant` (a run context's `tenant` value).
pub async fn standing(vendors: &Vendors, tenant: &Value, upn: &str) -> Result<Standing, StepError> {
    let client = vendors.tenant_client(tenant, Requests::default())?;
    if let Some(user) = find_user(&client, upn).await? {
        let access = if user["accountEnabled"] == Value::Bool(false) {
            Access::Deactivated
        } else {
            Access::Active
        };
        let licences = client
            .send(
                &format!("read the licences of {upn}"),
                Method::GET,
                &format!(
                    "{}/users/{}?$select=assignedLicenses",
                    client.endpoints.graph,
                    segment(upn)
                ),
                None,
                &[],
            )
            .await
            .map_err(step_error)?
            .1;
        let mut account = user;
        account["assignedLicenses"] = licences["assignedLicenses"].clone();
        return Ok(Standing {
            access,
            account: Some(account),
            deleted: None,
        });
    }
    let deleted = find_deleted(&client, upn).await?;
    Ok(Standing {
        access: Access::NoAccess,
        account: None,
        deleted,
    })
}

/// The most recently deleted user whose principal name (or object id) is `upn`, from the
/// deleted items (paged reads). A deleted user's principal name may be prefixed with its id
/// without dashes: the name is matched without case, whole or after exactly that prefix (so
/// `ann@` never finds a deleted `joann@`).
pub(crate) async fn find_deleted(
    client: &tenure_vendors::Client,
    upn: &str,
) -> Result<Option<Value>, StepError> {
    let url = format!(
        "{}/directory/deletedItems/microsoft.graph.user?$select=id,userPrincipalName,displayName,deletedDateTime,accountEnabled",
        client.endpoints.graph
    );
    let wanted = upn.to_lowercase();
    Ok(client
        .list_all(&format!("look for {upn} among deleted users"), &url)
        .await
        .map_err(step_error)?
        .into_iter()
        .filter(|u| is_deleted(u, &wanted))
        .max_by(|a, b| {
            a["deletedDateTime"]
                .as_str()
                .cmp(&b["deletedDateTime"].as_str())
        }))
}

/// Whether the deleted user `u` is the one named `wanted` (lower case): its object id, its
/// principal name, or its principal name behind its id without dashes.
fn is_deleted(u: &Value, wanted: &str) -> bool {
    let id = u["id"].as_str().unwrap_or_default().to_lowercase();
    if !id.is_empty() && id == wanted {
        return true;
    }
    let prefix = id.replace('-', "");
    u["userPrincipalName"].as_str().is_some_and(|n| {
        let n = n.to_lowercase();
        n == wanted || n.strip_prefix(prefix.as_str()) == Some(wanted)
    })
}
