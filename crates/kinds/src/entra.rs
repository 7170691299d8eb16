//! `entra.*`: user accounts and group membership over Microsoft Graph. Each kind looks at the
//! directory before it changes it, so repeating a step finds the work done.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, StepError};
use tenure_vendors::{Client, VendorError};

use crate::later::{after, lagged};
use crate::vendors::{param, step_error, subject, Vendors};

/// Registers the Entra kinds.
pub fn register(registry: &mut Registry, vendors: &Arc<Vendors>) {
    registry.insert("entra.create_user", CreateUser(vendors.clone()));
    // A user created moments ago may not have replicated yet: see `crate::later::Lagged`.
    for (kind, enabled) in [
        ("entra.disable_sign_in", false),
        ("entra.enable_sign_in", true),
    ] {
        let sign_in = SetSignIn {
            vendors: vendors.clone(),
            enabled,
        };
        registry.insert(kind, lagged(vendors, sign_in));
    }
    registry.insert(
        "entra.revoke_sessions",
        lagged(vendors, RevokeSessions(vendors.clone())),
    );
    registry.insert(
        "entra.add_to_group",
        lagged(vendors, AddToGroup(vendors.clone())),
    );
    registry.insert(
        "entra.remove_from_all_groups",
        lagged(vendors, RemoveFromAllGroups(vendors.clone())),
    );
    registry.insert(
        "entra.remove_auth_methods",
        lagged(vendors, RemoveAuthMethods(vendors.clone())),
    );
}

crate::executor!(
    CreateUser,
    SetSignIn,
    RevokeSessions,
    AddToGroup,
    RemoveFromAllGroups,
    RemoveAuthMethods
);

/// Percent-encodes a path segment (object ids and UPNs pass through, `#`, `/`, `?`... do not).
pub(crate) fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'@' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /users/{id or upn}`; `None` when there is no such user.
pub(crate) async fn find_user(client: &Client, user: &str) -> Result<Option<Value>, StepError> {
    let url = format!(
        "{}/users/{}?$select=id,userPrincipalName,displayName,mailNickname,accountEnabled,createdDateTime,signInSessionsValidFromDateTime,onPremisesSyncEnabled",
        client.endpoints.graph,
        segment(user)
    );
    match client
        .send(
            &format!("look up user {user}"),
            Method::GET,
            &url,
            None,
            &[],
        )
        .await
    {
        Ok((_, u)) => Ok(Some(u)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(step_error(e)),
    }
}

/// Like [`find_user`], but a missing user is a permanent error.
pub(crate) async fn user(client: &Client, user: &str) -> Result<Value, StepError> {
    find_user(client, user).await?.ok_or_else(|| {
        StepError::permanent(
            "user_not_found",
            format!("no user `{user}` in tenant {}", client.tenant()),
        )
    })
}

pub(crate) fn id_of(u: &Value) -> String {
    u["id"].as_str().unwrap_or_default().to_string()
}

fn run_started(call: &Call<'_>) -> Option<chrono::DateTime<chrono::Utc>> {
    call.context["run"]["started_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&chrono::Utc))
}

fn at_or_after(value: &Value, since: Option<chrono::DateTime<chrono::Utc>>) -> bool {
    let Some(since) = since else { return false };
    value
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .is_some_and(|d| d.with_timezone(&chrono::Utc) >= since - chrono::Duration::seconds(5))
}

pub(crate) fn password_for(params: &Value) -> Result<String, StepError> {
    match params["password"].as_str() {
        None | Some("generate") | Some("") => {
            let length = params["password_length"].as_u64().unwrap_or(16);
            if !(8..=256).contains(&length) {
                return Err(StepError::permanent(
                    "invalid_params",
                    format!("`password_length` must be 8 to 256, not {length}"),
                ));
            }
            Ok(crate::password::generate_default(length as usize))
        }
        Some(given) => Ok(given.to_string()),
    }
}

/// How long `entra.create_user` looks again for a taken UPN that Graph does not show (perhaps
/// an earlier attempt's user, not replicated yet) before the conflict stands.
const CONFLICT_LAG: std::time::Duration = std::time::Duration::from_secs(120);

/// `entra.create_user`.
struct CreateUser(Arc<Vendors>);

impl CreateUser {
    /// Creates (or adopts) the user, then sets its manager when `manager` is given. The manager
    /// is looked up first, so a manager who does not exist fails the step before anything is
    /// created; setting it reads the current manager first, so a repeat changes nothing.
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let manager = match call.params["manager"].as_str().map(str::trim) {
            Some(m) if !m.is_empty() => {
                let client = self.0.client(&call)?;
                Some(id_of(&user(&client, m).await?))
            }
            _ => None,
        };
        let outcome = self.create(&call).await?;
        let (Outcome::Done(out), Some(manager_id)) = (&outcome, manager) else {
            return Ok(outcome);
        };
        let client = self.0.client(&call)?;
        let id = out["id"].as_str().unwrap_or_default();
        let upn = out["user_principal_name"].as_str().unwrap_or(id);
        match crate::entra_admin::ensure_manager(&client, upn, id, &manager_id).await {
            Ok(_) => Ok(outcome),
            // A user this attempt just created may not have reached every replica yet: look
            // again shortly (the next attempt adopts the user and sets the manager).
            Err(e) if e.is_not_found() => Ok(Outcome::Later {
                at_ms: after(self.0.patience().interval(call.attempt)),
                reason: format!(
                    "{upn} is not visible to Microsoft Graph yet, so its manager cannot be set"
                ),
            }),
            Err(e) => Err(step_error(e)),
        }
    }

    /// Creates the user under the first sign-in name of `user_principal_name` and then
    /// `alternatives` that is free, or adopts the one this run created already (a repeat after
    /// a crash looks at the names in the same order, so it finds its own user).
    async fn create(&self, call: &Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(call)?;
        let p = call.params;
        let first = param(p, "user_principal_name")?;
        let mut candidates = vec![first.to_string()];
        for alt in p["alternatives"].as_array().into_iter().flatten() {
            if let Some(a) = alt.as_str().map(str::trim).filter(|a| !a.is_empty()) {
                if !candidates.iter().any(|c| c.eq_ignore_ascii_case(a)) {
                    candidates.push(a.to_string());
                }
            }
        }
        let mut taken = Vec::new();
        for upn in &candidates {
            match self.create_as(&client, call, upn).await? {
                Created::Done(outcome) => return Ok(outcome),
                Created::Taken(by) => taken.push(format!("{upn} already belongs to {by}")),
            }
        }
        Err(StepError::permanent(
            "upn_taken",
            if candidates.len() == 1 {
                format!(
                    "the user principal name {}; choose another name (or give `alternatives`)",
                    taken.join("; ")
                )
            } else {
                format!("every sign-in name is taken: {}", taken.join("; "))
            },
        ))
    }

    /// Creates the user as `upn`, adopts this run's own user with that name, or says who has
    /// it.
    async fn create_as(
        &self,
        client: &Client,
        call: &Call<'_>,
        upn: &str,
    ) -> Result<Created, StepError> {
        let p = call.params;
        let display_name = param(p, "display_name")?;
        let nickname = p["mail_nickname"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| upn.split('@').next().unwrap_or(upn).to_string());
        let password = password_for(p)?;
        let force = p["force_change_password"].as_bool().unwrap_or(true);
        let profile = json!({"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": force}});

        // Look before acting: a user with this UPN created by this run (an earlier attempt
        // that crashed before it could report) is adopted; anyone else's is a conflict.
        if let Some(existing) = find_user(client, upn).await? {
            return self
                .adopt(client, call, existing, display_name, &nickname, profile)
                .await;
        }
        let mut body = json!({
            "accountEnabled": p["account_enabled"].as_bool().unwrap_or(true),
            "displayName": display_name,
            "mailNickname": nickname,
            "userPrincipalName": upn,
            "passwordProfile": profile["passwordProfile"],
        });
        for (param, field) in [
            ("given_name", "givenName"),
            ("surname", "surname"),
            ("department", "department"),
            ("job_title", "jobTitle"),
            ("usage_location", "usageLocation"),
            ("office_location", "officeLocation"),
            ("company_name", "companyName"),
            ("employee_id", "employeeId"),
            ("mobile_phone", "mobilePhone"),
        ] {
            if let Some(v) = p[param].as_str().filter(|v| !v.is_empty()) {
                body[field] = json!(v);
            }
        }
        let url = format!("{}/users", client.endpoints.graph);
        match client
            .send(
                &format!("create user {upn}"),
                Method::POST,
                &url,
                Some(&body),
                &[],
            )
            .await
        {
            Ok((_, created)) => Ok(Created::Done(Outcome::Done(json!({
                "id": id_of(&created),
                "user_principal_name": upn,
                "password": password,
                "created": true,
            })))),
            // Someone created it between our look and our create.
            Err(e) if e.message.contains("already exists") => {
                match find_user(client, upn).await? {
                    Some(existing) => {
                        self.adopt(client, call, existing, display_name, &nickname, profile)
                            .await
                    }
                    // Taken, yet Graph does not show it: after an earlier attempt of this step,
                    // that may be our own user not replicated yet. Look again (briefly) before
                    // calling it a conflict; a first attempt's conflict stands at once.
                    None if call.attempt > 1 => {
                        let patience = self.0.patience();
                        match patience.recheck(move || find_user(client, upn)).await? {
                            Some(existing) => {
                                self.adopt(client, call, existing, display_name, &nickname, profile)
                                    .await
                            }
                            None if patience.waited(call.attempt) < CONFLICT_LAG => {
                                Ok(Created::Done(Outcome::Later {
                                    at_ms: after(patience.interval(call.attempt)),
                                    reason: format!("{upn} is taken but Microsoft Graph does not show it yet: perhaps the user an earlier attempt created, not replicated yet"),
                                }))
                            }
                            None => Err(step_error(e)),
                        }
                    }
                    None => Err(step_error(e)),
                }
            }
            Err(e) => Err(step_error(e)),
        }
    }

    async fn adopt(
        &self,
        client: &Client,
        call: &Call<'_>,
        existing: Value,
        display_name: &str,
        nickname: &str,
        profile: Value,
    ) -> Result<Created, StepError> {
        let upn = existing["userPrincipalName"].as_str().unwrap_or_default();
        let ours = at_or_after(&existing["createdDateTime"], run_started(call))
            && existing["displayName"].as_str() == Some(display_name)
            && existing["mailNickname"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(nickname));
        if !ours {
            return Ok(Created::Taken(format!(
                "another user ({}, id {}, created {})",
                existing["displayName"].as_str().unwrap_or("?"),
                id_of(&existing),
                existing["createdDateTime"]
                    .as_str()
                    .unwrap_or("before this run")
            )));
        }
        // The earlier attempt's password was never reported: set the one we report.
        let id = id_of(&existing);
        let url = format!("{}/users/{}", client.endpoints.graph, segment(&id));
        client
            .send(
                &format!("set the password of {upn}"),
                Method::PATCH,
                &url,
                Some(&profile),
                &[],
            )
            .await
            .map_err(step_error)?;
        Ok(Created::Done(Outcome::Done(json!({
            "id": id,
            "user_principal_name": upn,
            "password": profile["passwordProfile"]["password"],
            "created": false,
        }))))
    }
}

/// What trying one sign-in name gave.
enum Created {
    /// The user was created or adopted (or the step must look again later).
    Done(Outcome),
    /// Someone else has the name: who.
    Taken(String),
}

/// `entra.disable_sign_in` / `entra.enable_sign_in`.
struct SetSignIn {
    vendors: Arc<Vendors>,
    enabled: bool,
}

impl SetSignIn {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let (client, name, u, id) = subject(&self.vendors, &call).await?;
        if u["accountEnabled"].as_bool() == Some(self.enabled) {
            return Ok(Outcome::Done(json!({"id": id, "changed": false})));
        }
        if u["onPremisesSyncEnabled"].as_bool() == Some(true) {
            return Err(StepError::permanent(
                "synced_user",
                format!("{name} is synced from on-premises Active Directory: change it there"),
            ));
        }
        let url = format!("{}/users/{}", client.endpoints.graph, segment(&id));
        let verb = if self.enabled { "allow" } else { "block" };
        client
            .send(
                &format!("{verb} sign-in of {name}"),
                Method::PATCH,
                &url,
                Some(&json!({"accountEnabled": self.enabled})),
                &[],
            )
            .await
            .map_err(step_error)?;
        Ok(Outcome::Done(json!({"id": id, "changed": true})))
    }
}

/// `entra.revoke_sessions`.
struct RevokeSessions(Arc<Vendors>);

impl RevokeSessions {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let (client, name, u, id) = subject(&self.0, &call).await?;
        // Revoked since this run started (an earlier attempt): nothing left to revoke.
        if at_or_after(&u["signInSessionsValidFromDateTime"], run_started(&call)) {
            return Ok(Outcome::Done(json!({"id": id, "revoked": false})));
        }
        let url = format!(
            "{}/users/{}/revokeSignInSessions",
            client.endpoints.graph,
            segment(&id)
        );
        client
            .send(
                &format!("revoke the sessions of {name}"),
                Method::POST,
                &url,
                None,
                &[],
            )
            .await
            .map_err(step_error)?;
        Ok(Outcome::Done(json!({"id": id, "revoked": true})))
    }
}

/// A group by object id or display name.
pub(crate) async fn group(client: &Client, group: &str) -> Result<Value, StepError> {
    let looks_like_id = group.len() == 36 && group.chars().filter(|c| *c == '-').count() == 4;
    if looks_like_id {
        let url = format!("{}/groups/{}", client.endpoints.graph, segment(group));
        match client
            .send(
                &format!("look up group {group}"),
                Method::GET,
                &url,
                None,
                &[],
            )
            .await
        {
            Ok((_, g)) => return Ok(g),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(step_error(e)),
        }
    }
    let filter = format!("displayName eq '{}'", group.replace('\'', "''"));
    let url = format!(
        "{}/groups?$filter={}",
        client.endpoints.graph,
        segment(&filter)
    );
    let found = client
        .list_all(&format!("look up group {group}"), &url)
        .await
        .map_err(step_error)?;
    match found.as_slice() {
        [g] => Ok(g.clone()),
        [] => Err(StepError::permanent(
            "group_not_found",
            format!("no group `{group}` in tenant {}", client.tenant()),
        )),
        _ => Err(StepError::permanent(
            "group_ambiguous",
            format!(
                "{} groups are named `{group}`: use the object id",
                found.len()
            ),
        )),
    }
}

pub(crate) fn read_only_reason(g: &Value) -> Option<&'static str> {
    let dynamic = g["groupTypes"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "DynamicMembership"));
    if dynamic {
        Some("dynamic membership")
    } else if g["onPremisesSyncEnabled"].as_bool() == Some(true) {
        Some("synced from on-premises")
    } else {
        None
    }
}

/// The user and the id of a group whose members Tenure may change (`verb`: what the kind
/// would do, for the error).
pub(crate) async fn user_and_changeable_group(
    client: &Client,
    name: &str,
    group_name: &str,
    verb: &str,
) -> Result<(Value, String), StepError> {
    let u = user(client, name).await?;
    let g = group(client, group_name).await?;
    if let Some(reason) = read_only_reason(&g) {
        return Err(StepError::permanent(
            "group_read_only",
            format!("group `{group_name}` has {reason}: members cannot be {verb} here"),
        ));
    }
    Ok((u, id_of(&g)))
}

/// A list parameter of names, lower-cased (`keep`, `exclude`).
pub(crate) fn lower_list(params: &Value, name: &str) -> Vec<String> {
    params[name]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_lowercase))
        .collect()
}

/// `entra.add_to_group`.
struct AddToGroup(Arc<Vendors>);

impl AddToGroup {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let (name, group_name) = (param(call.params, "user")?, param(call.params, "group")?);
        let (u, gid) = user_and_changeable_group(&client, name, group_name, "added").await?;
        let url = format!(
            "{}/groups/{}/members/$ref",
            client.endpoints.graph,
            segment(&gid)
        );
        let body = json!({"@odata.id": format!("{}/directoryObjects/{}", client.endpoints.graph, id_of(&u))});
        match client
            .send(
                &format!("add {name} to {group_name}"),
                Method::POST,
                &url,
                Some(&body),
                &[],
            )
            .await
        {
            Ok(_) => Ok(Outcome::Done(json!({"group_id": gid, "added": true}))),
            Err(e) if already_member(&e) => {
                Ok(Outcome::Done(json!({"group_id": gid, "added": false})))
            }
            Err(e) => Err(step_error(e)),
        }
    }
}

pub(crate) fn already_member(e: &VendorError) -> bool {
    e.status == Some(400) && e.message.contains("already exist")
}

/// `entra.remove_from_all_groups`.
struct RemoveFromAllGroups(Arc<Vendors>);

impl RemoveFromAllGroups {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let keep = lower_list(call.params, "keep");
        let u = user(&client, name).await?;
        let uid = id_of(&u);
        let url = format!(
            "{}/users/{}/memberOf",
            client.endpoints.graph,
            segment(&uid)
        );
        let groups = client
            .list_all(&format!("list the groups of {name}"), &url)
            .await
            .map_err(step_error)?;
        let mut skipped = Vec::new();
        let mut leave = Vec::new();
        for g in groups
            .iter()
            .filter(|g| g["@odata.type"] == "#microsoft.graph.group")
        {
            let gname = g["displayName"].as_str().unwrap_or_default().to_string();
            let gid = id_of(g);
            if keep.contains(&gname.to_lowercase()) || keep.contains(&gid.to_lowercase()) {
                continue;
            }
            match read_only_reason(g) {
                Some(reason) => skipped.push(format!("{gname} ({reason})")),
                None => leave.push((gname, gid)),
            }
        }
        // One `$batch` round trip for up to 20 groups.
        let requests: Vec<(Method, String, Option<Value>)> = leave
            .iter()
            .map(|(_, gid)| {
                (
                    Method::DELETE,
                    format!("/groups/{}/members/{}/$ref", segment(gid), segment(&uid)),
                    None,
                )
            })
            .collect();
        let answers = client
            .batch(&format!("remove {name} from its groups"), &requests)
            .await
            .map_err(step_error)?;
        let mut removed = Vec::new();
        for ((gname, _), answer) in leave.into_iter().zip(answers) {
            match answer {
                Ok(_) => removed.push(gname),
                // Gone already (an earlier attempt) is what we wanted.
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(step_error(e)),
            }
        }
        Ok(Outcome::Done(
            json!({"id": uid, "removed": removed, "skipped": skipped}),
        ))
    }
}

/// `entra.remove_auth_methods`.
struct RemoveAuthMethods(Arc<Vendors>);

impl RemoveAuthMethods {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let client = self.0.client(&call)?;
        let name = param(call.params, "user")?;
        let keep = lower_list(call.params, "keep");
        let u = user(&client, name).await?;
        let uid = id_of(&u);
        let url = format!(
            "{}/users/{}/authentication/methods",
            client.endpoints.graph,
            segment(&uid)
        );
        let methods = client
            .list_all(&format!("list the sign-in methods of {name}"), &url)
            .await
            .map_err(step_error)?;
        // `#microsoft.graph.phoneAuthenticationMethod` → kind `phone`, collection `phoneMethods`.
        let targets: Vec<(String, String, String)> = methods
            .iter()
            .filter_map(|m| {
                let kind = m["@odata.type"]
                    .as_str()?
                    .trim_start_matches("#microsoft.graph.")
                    .trim_end_matches("AuthenticationMethod")
                    .to_string();
                let id = m["id"].as_str()?.to_string();
                Some((kind.clone(), format!("{kind}Methods"), id))
            })
            .filter(|(kind, _, _)| kind != "password" && !keep.contains(&kind.to_lowercase()))
            .collect();
        // Entra refuses to delete the default method while others remain: such a method is
        // tried again after the others.
        let mut removed = Vec::new();
        let mut queue: std::collections::VecDeque<(String, String, String, bool)> = targets
            .into_iter()
            .map(|(kind, collection, id)| (kind, collection, id, false))
            .collect();
        while let Some((kind, collection, id, deferred)) = queue.pop_front() {
            let url = format!(
                "{}/users/{}/authentication/{collection}/{}",
                client.endpoints.graph,
                segment(&uid),
                segment(&id)
            );
            match client
                .send(
                    &format!("remove the {kind} method of {name}"),
                    Method::DELETE,
                    &url,
                    None,
                    &[],
                )
                .await
            {
                Ok(_) => removed.push(kind),
                Err(e) if e.is_not_found() => {}
                Err(e)
                    if !deferred
                        && !queue.is_empty()
                        && e.message.contains("default authentication method") =>
                {
                    queue.push_back((kind, collection, id, true));
                }
                Err(e) => return Err(step_error(e)),
            }
        }
        Ok(Outcome::Done(json!({"id": uid, "removed": removed})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("ada@contoso.example"), "ada@contoso.example");
        assert_eq!(segment("a/b#c d"), "a%2Fb%23c%20d");
    }
}
