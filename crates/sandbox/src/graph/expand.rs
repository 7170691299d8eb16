//! `$expand=manager` on user collections (`/users`, `/users/delta`), the one expansion Graph
//! supports on them that Tenure reads: `manager` or `manager($select=id,userPrincipalName)`.
//! Like Graph, a page of expanded directory objects holds at most [`EXPAND_PAGE`] items
//! whatever `$top` asks (Graph's documented `$expand` limitation).

use std::collections::HashMap;

use axum::response::Response;
use serde_json::{json, Value};

use super::query::check_select;
use super::users::{project, user_json, USERS};
use crate::http::bad_request;
use crate::model::{Tenant, User};

/// The most items a page of expanded directory objects holds.
pub const EXPAND_PAGE: usize = 100;

/// A user collection's `$expand`: the manager, with its own `$select` or the default
/// properties.
#[derive(Debug)]
pub struct ExpandManager {
    select: Option<String>,
}

/// Parses `$expand`: absent, `manager`, or `manager($select=a,b)`; anything else is Graph's
/// 400 naming the property.
pub fn parse(q: &HashMap<String, String>) -> Result<Option<ExpandManager>, Response> {
    let Some(raw) = q.get("$expand") else {
        return Ok(None);
    };
    let raw = raw.trim();
    let (name, options) = match raw.split_once('(') {
        Some((name, rest)) => {
            let Some(options) = rest.strip_suffix(')') else {
                return Err(bad_request(format!("Syntax error in $expand: '{raw}'.")));
            };
            (name.trim(), Some(options))
        }
        None => (raw, None),
    };
    if name != "manager" {
        return Err(bad_request(format!(
            "Could not find a navigation property named '{name}' on type 'microsoft.graph.user' that can be expanded here."
        )));
    }
    let select = match options {
        None => None,
        Some(o) => {
            let Some(sel) = o.trim().strip_prefix("$select=") else {
                return Err(bad_request(format!(
                    "The query option '{o}' is not supported inside $expand of 'manager'; use $select."
                )));
            };
            check_select(Some(&sel.to_string()), &USERS)?
        }
    };
    Ok(Some(ExpandManager { select }))
}

/// The users of a tenant by object id, for resolving managers in one pass.
pub fn index(t: &Tenant) -> HashMap<&str, &User> {
    t.users.iter().map(|u| (u.id.as_str(), u)).collect()
}

impl ExpandManager {
    /// Adds `manager` to a user's representation when it has one (Graph leaves the property
    /// out otherwise).
    pub fn apply(&self, t: &Tenant, by_id: &HashMap<&str, &User>, user: &User, item: &mut Value) {
        let now = crate::shared::now_ms();
        let manager = user
            .manager_id
            .as_deref()
            .and_then(|m| by_id.get(m))
            .filter(|m| m.visible_at_ms <= now);
        if let Some(m) = manager {
            let mut v = project(user_json(t, m), self.select.as_deref());
            v["@odata.type"] = json!("#microsoft.graph.user");
            item["manager"] = v;
        }
    }
}

/// A shape's page size under `$expand`.
pub fn page_size(top: usize, expanding: bool) -> usize {
    if expanding {
        top.min(EXPAND_PAGE)
    } else {
        top
    }
}
