//! More `entra.*` kinds: profile updates, passwords, deletion, managers, Temporary Access
//! Passes and group copies. Like the others, each looks before it changes anything.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::entra::CLEARABLE;
use tenure_steps::{Call, Outcome, Registry, StepError};

use crate::entra::{
    already_member, find_user, id_of, lower_list, password_for, read_only_reason, segment, user,
    user_and_changeable_group,
};
use crate::later::{after, created_by_this_run, lagged, GRAPH_LAG};
use crate::vendors::{param, step_error, subject, Vendors};
use tenure_vendors::Client;

/// Registers these kinds.
pub fn register(registry: &mut Registry, vendors: &Arc<Vendors>) {
    // A user created moments ago may not have replicated yet: see `crate::later::Lagged`.
    let v = vendors;
    registry.insert(
        "entra.remove_from_group",
        lagged(v, RemoveFromGroup(v.clone())),
    );
    registry.insert("entra.update_user", lagged(v, UpdateUser(v.clone())));
    registry.insert("entra.reset_password", lagged(v, ResetPassword(v.clone())));
    registry.insert("entra.delete_user", DeleteUser(v.clone()));
    registry.insert("entra.set_manager", lagged(v, SetManager(v.clone())));
    registry.insert("entra.create_tap", lagged(v, CreateTap(v.clone())));
    registry.insert(
        "entra.copy_groups_from",
        lagged(v, CopyGroupsFrom(v.clone())),
    );
}

crate::executor!(
    RemoveFromGroup,
    UpdateUser,
    ResetPassword,
    DeleteUser,
    SetManager,
    CreateTap,
    CopyGroupsFrom
);

/// Profile parameters and their Graph property names.
const PROFILE: &[(&str, &str)] = &[
    ("display_name", "displayName"),
    ("given_name", "givenName"),
    ("surname", "surname"),
    ("department", "department"),
    ("job_title", "jobTitle"),
    ("usage_location", "usageLocation"),
    ("office_location", "officeLocation"),
    ("company_name", "companyName"),
    ("employee_id", "employeeId"),
    ("mobile_phone", "mobilePhone"),
];

/// `entra.update_user`: patches only the fields that differ, sets the fields `clear` names to
/// null when they hold a value, and removes the manager when `clear` names `manager`.
struct UpdateUser(Arc<Vendors>);

impl UpdateUser {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let select: Vec<&str> = PROFILE.iter().map(|(_, f)| *f).collect();
        let url = format!(
            "{}/users/{}?$select=id,{}",
            client.endpoints.graph,
            segment(name),
            select.join(",")
        );
        let current = match client
            .send(
                &format!("look up user {name}"),
                Method::GET,
                &url,
                None,
                &[],
            )
            .await
        {
            Ok((_, u)) => u,
            Err(e) if e.is_not_found() => {
                return Err(StepError::permanent(
                    "user_not_found",
                    format!("no user `{name}` in tenant {}", client.tenant()),
                ))
            }
            Err(e) => return Err(step_error(e)),
        };
        let clear = cleared(call.params)?;
        let mut patch = serde_json::Map::new();
        let mut changed = Vec::new();
        for (param_name, field) in PROFILE {
            if let Some(v) = call.params[*param_name].as_str() {
                if current[*field].as_str() != Some(v) {
                    patch.insert(field.to_string(), json!(v));
                    changed.push(param_name.to_string());
                }
            } else if clear.contains(param_name) && !current[*field].is_null() {
                // Graph empties a property set to null (an empty string is refused).
                patch.insert(field.to_string(), Value::Null);
                changed.push(param_name.to_string());
            }
        }
        let id = id_of(&current);
        if !patch.is_empty() {
            let url = format!("{}/users/{}", client.endpoints.graph, segment(&id));
            client
                .send(
                    &format!("update user {name}"),
                    Method::PATCH,
                    &url,
                    Some(&Value::Object(patch)),
                    &[],
                )
                .await
                .map_err(step_error)?;
        }
        if clear.contains(&"manager")
            && remove_manager(&client, name, &id)
                .await
                .map_err(step_error)?
        {
            changed.push("manager".into());
        }
        Ok(Outcome::Done(json!({"id": id, "changed": changed})))
    }
}

/// The names `clear` lists, each checked against the clearable fields (the compiler checks
/// literal lists; a list rendered from a template is checked here), none also given a value.
fn cleared(params: &Value) -> Result<Vec<&'static str>, StepError> {
    let bad = |m: String| StepError::permanent("bad_param", m);
    let items = match &params["clear"] {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => {
            return Err(bad(format!(
                "`clear` must be a list of field names, not {other}"
            )))
        }
    };
    let mut out = Vec::new();
    for item in items {
        let text = item.as_str().unwrap_or_default();
        let Some(name) = CLEARABLE.iter().find(|c| **c == text) else {
            return Err(bad(format!(
                "`clear` names {item}, which is not a field that can be cleared (one of: {})",
                CLEARABLE.join(", ")
            )));
        };
        if params[*name].is_string() {
            return Err(bad(format!(
                "`{name}` is both given a value and listed in `clear`"
            )));
        }
        out.push(*name);
    }
    Ok(out)
}

/// Removes the manager of the user with object id `id` (called `name` in messages) through
/// Graph `DELETE /users/{id}/manager/$ref`, after reading it: a user without a manager (404)
/// is left alone. Returns whether it changed.
async fn remove_manager(
    client: &Client,
    name: &str,
    id: &str,
) -> Result<bool, tenure_vendors::VendorError> {
    let url = format!("{}/users/{}/manager", client.endpoints.graph, segment(id));
    match client
        .send(
            &format!("read the manager of {name}"),
            Method::GET,
            &url,
            None,
            &[],
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e),
    }
    match client
        .send(
            &format!("remove the manager of {name}"),
            Method::DELETE,
            &format!("{url}/$ref"),
            None,
            &[],
        )
        .await
    {
        Ok(_) => Ok(true),
        // Removed meanwhile (a repeat after a lost answer): the work is done.
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// `entra.reset_password`.
struct ResetPassword(Arc<Vendors>);

impl ResetPassword {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let (client, name, _, id) = subject(&self.0, &call).await?;
        let password = password_for(call.params)?;
        let force = call.params["force_change_password"]
            .as_bool()
            .unwrap_or(true);
        let url = format!("{}/users/{}", client.endpoints.graph, segment(&id));
        // A repeat sets a new password again: the one reported is the one that works.
        client
            .send(
                &format!("reset the password of {name}"),
                Method::PATCH,
                &url,
                Some(&json!({"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": force}})),
                &[],
            )
            .await
            .map_err(step_error)?;
        Ok(Outcome::Done(json!({"id": id, "password": password})))
    }
}

/// `entra.delete_user` (soft delete; already gone is success).
struct DeleteUser(Arc<Vendors>);

impl DeleteUser {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let Some(u) = find_user(&client, name).await? else {
            return self.not_shown(&client, &call, name).await;
        };
        let id = id_of(&u);
        let url = format!("{}/users/{}", client.endpoints.graph, segment(&id));
        match client
            .send(
                &format!("delete user {name}"),
                Method::DELETE,
                &url,
                None,
                &[],
            )
            .await
        {
            Ok(_) => Ok(Outcome::Done(json!({"id": id, "deleted": true}))),
            Err(e) if e.is_not_found() => Ok(Outcome::Done(json!({"id": id, "deleted": false}))),
            Err(e) => Err(step_error(e)),
        }
    }
}

impl DeleteUser {
    /// Graph does not show the user: gone already, unless this run created it moments ago and
    /// it is neither in the deleted items nor replicated yet (a rollback right after the
    /// create): then look again later, for at most `GRAPH_LAG`.
    async fn not_shown(
        &self,
        client: &Client,
        call: &Call<'_>,
        name: &str,
    ) -> Result<Outcome, StepError> {
        let gone = Ok(Outcome::Done(json!({"id": null, "deleted": false})));
        let Some((id, upn)) = created_by_this_run(call, name) else {
            return gone;
        };
        let url = format!(
            "{}/directory/deletedItems/{}",
            client.endpoints.graph,
            segment(&id)
        );
        match client
            .send(
                &format!("look for {upn} among deleted users"),
                Method::GET,
                &url,
                None,
                &[],
            )
            .await
        {
            Ok(_) => return Ok(Outcome::Done(json!({"id": id, "deleted": false}))),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(step_error(e)),
        }
        let patience = self.0.patience();
        if patience.waited(call.attempt) >= GRAPH_LAG {
            return gone;
        }
        Ok(Outcome::Later {
            at_ms: after(patience.interval(call.attempt)),
            reason: format!(
                "{upn} was created moments ago and Microsoft Graph does not show it yet (replication)"
            ),
        })
    }
}

/// `entra.set_manager`.
struct SetManager(Arc<Vendors>);

impl SetManager {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let manager_name = param(call.params, "manager")?;
        let u = user(&client, name).await?;
        let m = user(&client, manager_name).await?;
        let (id, mid) = (id_of(&u), id_of(&m));
        let changed = ensure_manager(&client, name, &id, &mid)
            .await
            .map_err(step_error)?;
        Ok(Outcome::Done(
            json!({"id": id, "manager_id": mid, "changed": changed}),
        ))
    }
}

/// Makes the user with object id `id` (called `name` in messages) report to the user with
/// object id `manager_id`, through Graph `PUT /users/{id}/manager/$ref`; reads the current
/// manager first, so a repeat changes nothing. Returns whether it changed.
pub(crate) async fn ensure_manager(
    client: &Client,
    name: &str,
    id: &str,
    manager_id: &str,
) -> Result<bool, tenure_vendors::VendorError> {
    let url = format!("{}/users/{}/manager", client.endpoints.graph, segment(id));
    let current = match client
        .send(
            &format!("read the manager of {name}"),
            Method::GET,
            &url,
            None,
            &[],
        )
        .await
    {
        Ok((_, cur)) => cur["id"].as_str().map(str::to_string),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    if current.as_deref() == Some(manager_id) {
        return Ok(false);
    }
    let body = json!({"@odata.id": format!("{}/users/{}", client.endpoints.graph, manager_id)});
    client
        .send(
            &format!("set the manager of {name}"),
            Method::PUT,
            &format!("{url}/$ref"),
            Some(&body),
            &[],
        )
        .await?;
    Ok(true)
}

/// `entra.create_tap`: a new pass replaces the old one, so a repeat issues a fresh one.
struct CreateTap(Arc<Vendors>);

impl CreateTap {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let (client, name, _, id) = subject(&self.0, &call).await?;
        let minutes = call.params["lifetime"]
            .as_str()
            .and_then(|s| tenure_runbook::duration::parse(s).ok())
            .map_or(60, |d| (d.as_secs() / 60).max(10));
        let body = json!({"lifetimeInMinutes": minutes, "isUsableOnce": call.params["usable_once"].as_bool().unwrap_or(false)});
        let url = format!(
            "{}/users/{}/authentication/temporaryAccessPassMethods",
            client.endpoints.graph,
            segment(&id)
        );
        let (_, tap) = client
            .send(
                &format!("issue a Temporary Access Pass for {name}"),
                Method::POST,
                &url,
                Some(&body),
                &[],
            )
            .await
            .map_err(step_error)?;
        let expires = tap["startDateTime"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| (d + chrono::Duration::minutes(minutes as i64)).to_rfc3339());
        Ok(Outcome::Done(
            json!({"id": id, "pass": tap["temporaryAccessPass"], "expires_at": expires}),
        ))
    }
}

/// `entra.remove_from_group` (not a member is success).
struct RemoveFromGroup(Arc<Vendors>);

impl RemoveFromGroup {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let (name, group_name) = (param(call.params, "user")?, param(call.params, "group")?);
        let (u, gid) = user_and_changeable_group(&client, name, group_name, "removed").await?;
        let url = format!(
            "{}/groups/{}/members/{}/$ref",
            client.endpoints.graph,
            segment(&gid),
            segment(&id_of(&u))
        );
        match client
            .send(
                &format!("remove {name} from {group_name}"),
                Method::DELETE,
                &url,
                None,
                &[],
            )
            .await
        {
            Ok(_) => Ok(Outcome::Done(json!({"group_id": gid, "removed": true}))),
            Err(e) if e.is_not_found() => {
                Ok(Outcome::Done(json!({"group_id": gid, "removed": false})))
            }
            Err(e) => Err(step_error(e)),
        }
    }
}

/// `entra.copy_groups_from`: joins every changeable group of another user.
struct CopyGroupsFrom(Arc<Vendors>);

impl CopyGroupsFrom {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let from = param(call.params, "from")?;
        let exclude = lower_list(call.params, "exclude");
        let u = user(&client, name).await?;
        let source = user(&client, from).await?;
        let uid = id_of(&u);
        let member_of = |id: String| {
            let client = client.clone();
            async move {
                let url = format!("{}/users/{}/memberOf", client.endpoints.graph, segment(&id));
                client
                    .list_all("list group memberships", &url)
                    .await
                    .map_err(step_error)
            }
        };
        let theirs = member_of(id_of(&source)).await?;
        let mine: Vec<String> = member_of(uid.clone()).await?.iter().map(id_of).collect();
        let mut added = Vec::new();
        for g in theirs
            .iter()
            .filter(|g| g["@odata.type"] == "#microsoft.graph.group")
        {
            let gname = g["displayName"].as_str().unwrap_or_default().to_string();
            let gid = id_of(g);
            if mine.contains(&gid)
                || exclude.contains(&gname.to_lowercase())
                || read_only_reason(g).is_some()
            {
                continue;
            }
            let url = format!(
                "{}/groups/{}/members/$ref",
                client.endpoints.graph,
                segment(&gid)
            );
            let body =
                json!({"@odata.id": format!("{}/directoryObjects/{uid}", client.endpoints.graph)});
            match client
                .send(
                    &format!("add {name} to {gname}"),
                    Method::POST,
                    &url,
                    Some(&body),
                    &[],
                )
                .await
            {
                Ok(_) => added.push(gname),
                Err(e) if already_member(&e) => {}
                Err(e) => return Err(step_error(e)),
            }
        }
        Ok(Outcome::Done(json!({"id": uid, "added": added})))
    }
}
