//! Reading a tenant's accounts for a sync, in few Graph requests. A full read is the first
//! round of a `users/delta` query: every user with the attributes a sync compares, their
//! manager (`$select=...,manager` gives `manager@delta`, the manager's id), and an
//! `@odata.deltaLink`; later reads follow that link and patch the previous [`Snapshot`]
//! (users marked `@removed` dropped, changed users patched with the properties sent: Graph
//! sends at least the changed ones, not necessarily the rest). A read is whole or an error,
//! never a partial list of users. Each read also lists the
//! directory role assignments (holders are [`Account::admin`]) and the members of the
//! protected groups (transitively; [`Account::protected`]): a few requests, read every time
//! because delta does not report them.
//!
//! Why delta and not `GET /users?$expand=manager`: Graph returns at most 100 users per page
//! when a list expands anything, so 2,500 users would take 25 pages; the delta round returns
//! the manager's id without expanding, in pages of up to 999 (`Prefer: odata.maxpagesize`).
//!
//! Guests (`userType` `Guest`, `#EXT#` in the sign-in name) are read like everyone else; their
//! [`Account::attributes`] carry `userType`, so the planner can leave them alone
//! ([`crate::plan::is_guest`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenure_kinds::Vendors;
use tenure_steps::Requests;
use tenure_vendors::{Client, VendorError};

use crate::model::Account;

/// The user attributes a read asks for (besides `manager`), by their Graph names.
pub const USER_SELECT: &[&str] = &[
    "id",
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "department",
    "usageLocation",
    "employeeId",
    "mail",
    "accountEnabled",
    "onPremisesSyncEnabled",
    "userType",
];

/// The string attributes kept in [`Account::attributes`].
const ATTRIBUTES: &[&str] = &[
    "userPrincipalName",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "department",
    "usageLocation",
    "employeeId",
    "mail",
    "userType",
];

/// The attribute holding the manager's email address (`mail`) beside `manager` (their
/// sign-in name), so a source naming managers by email compares equal.
pub const MANAGER_MAIL: &str = "managerMail";

/// The largest page a read asks Graph for.
pub const PAGE_SIZE: usize = 999;

/// The most pages one collection read follows.
const MAX_PAGES: usize = 10_000;

/// How many times a throttled or failed page is asked again.
const RETRIES: u32 = 5;

/// The longest wait between two tries of a page.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Why a tenant could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No client for the tenant (nothing configured, no tenant id).
    #[error("cannot read tenant: {0}")]
    Client(String),
    /// Graph refused or failed a request (after the retries a transient failure gets).
    #[error("{what}: {message}")]
    Graph {
        /// What was being read.
        what: String,
        /// Graph's answer.
        message: String,
        /// The HTTP status, when one came.
        status: Option<u16>,
    },
    /// A protected group named in the policy does not exist in the tenant.
    #[error("protected group `{0}` is not a group of this tenant (by display name or id)")]
    NoGroup(String),
    /// Two groups have the protected group's display name: name it by id instead.
    #[error("protected group `{0}` names {1} groups; name it by its id")]
    AmbiguousGroup(String, usize),
    /// A delta read was asked of a snapshot without a delta link.
    #[error("the previous read has no delta link; read the tenant in full")]
    NoDeltaLink,
}

impl Error {
    fn graph(what: &str, e: VendorError) -> Self {
        // The vendors layer's message already begins with what was being done; say it once.
        let message = match e.message.strip_prefix(what) {
            Some(rest) => rest.trim_start_matches(':').trim_start().to_string(),
            None => e.message,
        };
        Error::Graph {
            what: what.to_string(),
            message,
            status: e.status,
        }
    }
}

/// What a read also looks at besides the users.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReadOptions {
    /// Groups whose members are [`Account::protected`]: display names or object ids.
    pub protected_groups: Vec<String>,
    /// Skip the directory role assignments (nobody is marked [`Account::admin`]); a policy
    /// that does not protect administrators saves the request.
    pub skip_roles: bool,
}

/// A tenant's accounts as one read saw them, and how to read what changed since.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every user (members, guests, disabled ones), by sign-in name.
    pub accounts: Vec<Account>,
    /// The `@odata.deltaLink` of the users read: where the next read starts.
    pub delta_link: Option<String>,
    /// How many Graph requests the read made (token requests not counted).
    pub requests: u64,
    /// Whether this was a full read (not a delta).
    pub full: bool,
    /// Each account's manager, by object id (account id → manager id), so a manager's rename
    /// reaches the `manager` attribute of the people they manage on a delta read.
    #[serde(default)]
    pub managers: BTreeMap<String, String>,
}

/// Reads every user of `tenant` (a run context's `tenant` value: `tenant_id`, `domain` or
/// `id`), their roles and protected groups.
pub async fn read_full(
    vendors: &Vendors,
    tenant: &Value,
    options: &ReadOptions,
) -> Result<Snapshot, Error> {
    let reader = Reader::new(vendors, tenant)?;
    let url = reader.url(
        "users/delta",
        &[("$select", format!("{},manager", USER_SELECT.join(",")))],
    );
    let (users, delta_link) = reader.walk("read the tenant's users", &url).await?;
    let mut state = State::default();
    for user in &users {
        state.apply(user);
    }
    reader.finish(state, delta_link, options, true).await
}

/// Reads what changed since `previous` (following its delta link) and patches it: removed
/// users dropped, changed and new users replaced; roles and protected groups read again.
/// A delta link Graph refuses (410 Gone: the token expired; 400: it cannot read it) gives a
/// full read.
pub async fn read_delta(
    vendors: &Vendors,
    tenant: &Value,
    options: &ReadOptions,
    previous: Snapshot,
) -> Result<Snapshot, Error> {
    let Some(link) = previous.delta_link.clone() else {
        return Err(Error::NoDeltaLink);
    };
    let reader = Reader::new(vendors, tenant)?;
    let (changes, delta_link) = match reader.walk("read the tenant's changes", &link).await {
        Ok(read) => read,
        // 410: the token expired; 400: Graph no longer reads it (a malformed or foreign
        // token). Either way only a full read knows the tenant now.
        Err(Error::Graph {
            status: Some(status @ (400 | 410)),
            ..
        }) => {
            tracing::info!(
                status,
                "the delta link was refused; reading the tenant in full"
            );
            let mut full = read_full(vendors, tenant, options).await?;
            full.requests += reader.requests();
            return Ok(full);
        }
        Err(e) => return Err(e),
    };
    let mut state = State::from(previous);
    for item in &changes {
        state.apply(item);
    }
    reader.finish(state, delta_link, options, false).await
}

/// The users being assembled: by id, with their managers by id.
#[derive(Default)]
struct State {
    users: HashMap<String, Account>,
    managers: BTreeMap<String, String>,
}

impl From<Snapshot> for State {
    fn from(s: Snapshot) -> Self {
        State {
            users: s.accounts.into_iter().map(|a| (a.id.clone(), a)).collect(),
            managers: s.managers,
        }
    }
}

impl State {
    /// One item of a delta round: a removal, or a user's full (selected) representation.
    fn apply(&mut self, item: &Value) {
        let Some(id) = item["id"].as_str() else {
            return;
        };
        if item.get("@removed").is_some() {
            self.users.remove(id);
            self.managers.remove(id);
            return;
        }
        // A changed user comes with at least the properties that changed (Graph may leave
        // the others out): patch the account the previous read knew, never reset it.
        let merged = match self.users.remove(id) {
            Some(known) => patch(known, item),
            None => account(item),
        };
        self.users.insert(id.to_string(), merged);
        // `manager@delta` says what the manager is now; absent, it did not change.
        if let Some(entries) = item["manager@delta"].as_array() {
            let current = entries
                .iter()
                .rev()
                .filter(|m| m.get("@removed").is_none())
                .find_map(|m| m["id"].as_str());
            match current {
                Some(m) => self.managers.insert(id.to_string(), m.to_string()),
                None => self.managers.remove(id),
            };
        } else if let Some(m) = item["manager"]["id"].as_str() {
            self.managers.insert(id.to_string(), m.to_string());
        }
    }

    /// The accounts by sign-in name, each with its manager's sign-in name.
    fn accounts(mut self, admins: &HashSet<String>, protected: &HashSet<String>) -> Snapshot {
        self.managers.retain(|id, _| self.users.contains_key(id));
        let upns: HashMap<String, String> = self
            .users
            .iter()
            .map(|(id, a)| (id.clone(), a.user_principal_name.clone()))
            .collect();
        let mails: HashMap<String, String> = self
            .users
            .iter()
            .filter_map(|(id, a)| Some((id.clone(), a.attributes.get("mail")?.clone())))
            .collect();
        let mut accounts: Vec<Account> = self.users.into_values().collect();
        for a in &mut accounts {
            a.admin = admins.contains(&a.id);
            a.protected = protected.contains(&a.id);
            let manager = self.managers.get(&a.id);
            match manager.and_then(|m| upns.get(m)) {
                Some(upn) => a.attributes.insert("manager".into(), upn.clone()),
                None => a.attributes.remove("manager"),
            };
            // A source names a manager by sign-in name or email: both are kept to compare.
            match manager.and_then(|m| mails.get(m)) {
                Some(mail) => a.attributes.insert(MANAGER_MAIL.into(), mail.clone()),
                None => a.attributes.remove(MANAGER_MAIL),
            };
        }
        accounts.sort_by(|a, b| {
            a.user_principal_name
                .to_lowercase()
                .cmp(&b.user_principal_name.to_lowercase())
                .then_with(|| a.id.cmp(&b.id))
        });
        Snapshot {
            accounts,
            delta_link: None,
            requests: 0,
            full: false,
            managers: self.managers,
        }
    }
}

/// An account from a user's Graph representation.
fn account(user: &Value) -> Account {
    let attributes = ATTRIBUTES
        .iter()
        .filter_map(|name| {
            user[*name]
                .as_str()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| (name.to_string(), v.to_string()))
        })
        .collect();
    Account {
        id: user["id"].as_str().unwrap_or_default().to_string(),
        user_principal_name: user["userPrincipalName"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        enabled: user["accountEnabled"].as_bool().unwrap_or(true),
        hybrid: user["onPremisesSyncEnabled"].as_bool().unwrap_or(false),
        admin: false,
        protected: false,
        attributes,
    }
}

/// `known` with the properties `item` carries (a `null` or empty string clears one); the
/// properties it leaves out keep their values.
fn patch(mut known: Account, item: &Value) -> Account {
    for name in ATTRIBUTES {
        match item.get(*name) {
            None => {}
            Some(v) => match v.as_str().map(str::trim).filter(|v| !v.is_empty()) {
                Some(v) => {
                    known.attributes.insert(name.to_string(), v.to_string());
                }
                None => {
                    known.attributes.remove(*name);
                }
            },
        }
    }
    if let Some(upn) = item.get("userPrincipalName").and_then(Value::as_str) {
        known.user_principal_name = upn.to_string();
    }
    if let Some(v) = item.get("accountEnabled") {
        known.enabled = v.as_bool().unwrap_or(true);
    }
    if let Some(v) = item.get("onPremisesSyncEnabled") {
        known.hybrid = v.as_bool().unwrap_or(false);
    }
    known
}

/// Whether a protected group is named by its object id.
fn is_object_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A Graph client for one read, counting its requests.
struct Reader {
    client: Client,
    sent: AtomicU64,
}

impl Reader {
    fn new(vendors: &Vendors, tenant: &Value) -> Result<Self, Error> {
        let client = vendors
            .tenant_client(tenant, Requests::new())
            .map_err(|e| Error::Client(e.message))?;
        Ok(Reader {
            client,
            sent: AtomicU64::new(0),
        })
    }

    /// Graph requests so far, tries again included (token requests are not Graph's).
    fn requests(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// `{graph}/{path}?{query}`, the query encoded.
    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let base = format!("{}/{path}", self.client.endpoints.graph);
        match reqwest::Url::parse_with_params(&base, query) {
            Ok(u) => u.to_string(),
            Err(_) => base,
        }
    }

    /// One page, asked again (after Graph's `Retry-After`, else a growing pause) while the
    /// failure is transient.
    async fn page(&self, what: &str, url: &str) -> Result<Value, Error> {
        let prefer = [("Prefer", format!("odata.maxpagesize={PAGE_SIZE}"))];
        let mut tries = 0;
        loop {
            self.sent.fetch_add(1, Ordering::Relaxed);
            match self
                .client
                .send(what, Method::GET, url, None, &prefer)
                .await
            {
                Ok((_, page)) => return Ok(page),
                Err(e) if e.transient && tries < RETRIES => {
                    tries += 1;
                    let wait = e
                        .retry_after
                        .unwrap_or(Duration::from_millis(500 * u64::from(tries)))
                        .min(MAX_WAIT);
                    tracing::info!(what, tries, ?wait, error = %e.message, "Graph asked to wait; trying the page again");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(Error::graph(what, e)),
            }
        }
    }

    /// Every item of a collection (following `@odata.nextLink` on the same host), and its
    /// `@odata.deltaLink` when it is a delta round.
    async fn walk(&self, what: &str, url: &str) -> Result<(Vec<Value>, Option<String>), Error> {
        let home = origin(url).to_string();
        let mut items = Vec::new();
        let mut next = url.to_string();
        for _ in 0..MAX_PAGES {
            let page = self.page(what, &next).await?;
            // A page without its list would silently shorten the read: every account on it
            // would look gone.
            let Some(values) = page["value"].as_array() else {
                return Err(Error::Graph {
                    what: what.into(),
                    message: "a page of the answer has no `value` list".into(),
                    status: None,
                });
            };
            items.extend(values.iter().cloned());
            match page["@odata.nextLink"].as_str() {
                Some(link) if origin(link) == home => next = link.to_string(),
                Some(_) => {
                    return Err(Error::Graph {
                        what: what.into(),
                        message: "the next page is on another host; not followed".into(),
                        status: None,
                    })
                }
                None => {
                    let delta = page["@odata.deltaLink"].as_str().map(str::to_string);
                    return Ok((items, delta));
                }
            }
        }
        Err(Error::Graph {
            what: what.into(),
            message: format!("more than {MAX_PAGES} pages"),
            status: None,
        })
    }

    /// The object ids holding a directory role.
    async fn admins(&self) -> Result<HashSet<String>, Error> {
        let url = self.url(
            "roleManagement/directory/roleAssignments",
            &[("$select", "principalId".to_string())],
        );
        let (items, _) = self
            .walk("read the tenant's directory role assignments", &url)
            .await?;
        Ok(items
            .iter()
            .filter_map(|a| a["principalId"].as_str().map(str::to_string))
            .collect())
    }

    /// The user ids in the protected groups, directly or through nested groups.
    async fn protected(&self, groups: &[String]) -> Result<HashSet<String>, Error> {
        let mut out = HashSet::new();
        for name in groups {
            let name = name.trim();
            let id = if is_object_id(name) {
                name.to_string()
            } else {
                let url = self.url(
                    "groups",
                    &[
                        (
                            "$filter",
                            format!("displayName eq '{}'", name.replace('\'', "''")),
                        ),
                        ("$select", "id,displayName".to_string()),
                    ],
                );
                let (found, _) = self
                    .walk(&format!("find the protected group `{name}`"), &url)
                    .await?;
                match found.as_slice() {
                    [one] => one["id"].as_str().unwrap_or_default().to_string(),
                    [] => return Err(Error::NoGroup(name.to_string())),
                    many => return Err(Error::AmbiguousGroup(name.to_string(), many.len())),
                }
            };
            let url = self.url(
                &format!("groups/{id}/transitiveMembers/microsoft.graph.user"),
                &[
                    ("$select", "id".to_string()),
                    ("$top", PAGE_SIZE.to_string()),
                ],
            );
            let members = self
                .walk(
                    &format!("read the members of protected group `{name}`"),
                    &url,
                )
                .await;
            let members = match members {
                Err(Error::Graph {
                    status: Some(404), ..
                }) => return Err(Error::NoGroup(name.to_string())),
                other => other?.0,
            };
            out.extend(
                members
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string)),
            );
        }
        Ok(out)
    }

    /// Roles and protected groups onto the users: the snapshot.
    async fn finish(
        &self,
        state: State,
        delta_link: Option<String>,
        options: &ReadOptions,
        full: bool,
    ) -> Result<Snapshot, Error> {
        let admins = if options.skip_roles {
            HashSet::new()
        } else {
            self.admins().await?
        };
        let protected = self.protected(&options.protected_groups).await?;
        let mut snapshot = state.accounts(&admins, &protected);
        snapshot.delta_link = delta_link;
        snapshot.full = full;
        snapshot.requests = self.requests();
        Ok(snapshot)
    }
}

/// The scheme and host (with port) of an absolute URL.
fn origin(url: &str) -> &str {
    let Some((_, rest)) = url.split_once("://") else {
        return "";
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &url[..url.len() - rest.len() + end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_graph_error_says_what_was_read_once() {
        let what = "read the tenant's directory role assignments";
        let e = Error::graph(
            what,
            VendorError::permanent("http_500", format!("{what}: 500 InternalServerError")),
        );
        assert_eq!(
            e.to_string(),
            "read the tenant's directory role assignments: 500 InternalServerError"
        );
        let e = Error::graph(what, VendorError::permanent("x", "refused"));
        assert_eq!(e.to_string(), format!("{what}: refused"));
    }

    #[test]
    fn delta_items_patch_the_state() {
        let mut state = State::default();
        state.apply(
            &json!({"id": "a", "userPrincipalName": "a@x.example", "accountEnabled": true,
            "displayName": "A", "jobTitle": "", "userType": "Member"}),
        );
        state.apply(
            &json!({"id": "b", "userPrincipalName": "b@x.example", "accountEnabled": false,
            "onPremisesSyncEnabled": true, "manager@delta": [{"id": "a"}]}),
        );
        let snap = state.accounts(&HashSet::from(["a".to_string()]), &HashSet::new());
        assert_eq!(snap.accounts.len(), 2);
        let (a, b) = (&snap.accounts[0], &snap.accounts[1]);
        assert!(a.admin && a.enabled && !a.hybrid);
        assert!(!a.attributes.contains_key("jobTitle"));
        assert!(!b.enabled && b.hybrid);
        assert_eq!(b.attributes["manager"], "a@x.example");
        assert!(!b.attributes.contains_key(MANAGER_MAIL), "a has no mail");

        // A rename of the manager reaches b; removing a drops it and b's manager.
        let mut state = State::from(snap);
        state.apply(
            &json!({"id": "a", "userPrincipalName": "a2@x.example", "accountEnabled": true}),
        );
        let snap = state.accounts(&HashSet::new(), &HashSet::new());
        assert_eq!(snap.accounts[1].attributes["manager"], "a2@x.example");
        let mut state = State::from(snap);
        state.apply(&json!({"id": "a", "@removed": {"reason": "changed"}}));
        let snap = state.accounts(&HashSet::new(), &HashSet::new());
        assert_eq!(snap.accounts.len(), 1);
        assert!(!snap.accounts[0].attributes.contains_key("manager"));

        // A manager removal marked `@removed`.
        let mut state = State::default();
        state.apply(&json!({"id": "m", "userPrincipalName": "m@x.example"}));
        state.apply(
            &json!({"id": "c", "userPrincipalName": "c@x.example", "manager@delta": [{"id": "m"}]}),
        );
        state.apply(&json!({"id": "c", "userPrincipalName": "c@x.example",
            "manager@delta": [{"id": "m", "@removed": {"reason": "deleted"}}]}));
        assert!(state.managers.is_empty());
    }

    /// Graph's delta gives a changed user with at least the changed properties: a user whose
    /// job title changed must stay disabled, hybrid and in their department.
    #[test]
    fn a_partial_change_patches_the_known_account() {
        let mut state = State::default();
        state.apply(&json!({"id": "a", "userPrincipalName": "a@x.example",
            "accountEnabled": false, "onPremisesSyncEnabled": true,
            "department": "Sales", "jobTitle": "Clerk", "employeeId": "E1"}));
        state.apply(&json!({"id": "a", "jobTitle": "Manager", "employeeId": null}));
        let snap = state.accounts(&HashSet::new(), &HashSet::new());
        let a = &snap.accounts[0];
        assert_eq!(a.user_principal_name, "a@x.example");
        assert!(!a.enabled && a.hybrid);
        assert_eq!(a.attributes["department"], "Sales");
        assert_eq!(a.attributes["jobTitle"], "Manager");
        assert!(!a.attributes.contains_key("employeeId"));
    }

    #[test]
    fn guests_and_group_ids() {
        let guest =
            account(&json!({"id": "g", "userPrincipalName": "jo_p.example#EXT#@x.example"}));
        assert!(crate::plan::is_guest(&guest));
        let member =
            account(&json!({"id": "m", "userPrincipalName": "m@x.example", "userType": "Member"}));
        assert!(!crate::plan::is_guest(&member));
        assert!(is_object_id("11111111-2222-4333-8444-555555555555"));
        assert!(!is_object_id("Executives"));
    }
}
