//! What the engine keeps for people sync (`tenure-people`): durable links between a source's
//! person and a tenant's account ([`PersonLink`]), the record of each sync ([`SyncRecord`]),
//! and each (source, tenant)'s read cursor (the last tenant snapshot and its Graph delta link,
//! as JSON). The store records and answers; it decides nothing about people (the planner in
//! `tenure-people` does), except that one account is linked to at most one person per tenant.

use serde::{Deserialize, Serialize};

/// How a link came to be.
pub const VIA: &[&str] = &["run", "correlation", "manual"];

/// A person of a source linked to an account of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct PersonLink {
    /// The tenant id.
    pub tenant: String,
    /// The source's id (`[[sync]] id`).
    pub source: String,
    /// The person's key in that source.
    pub person_key: String,
    /// The account's object id; `None` while the run `run_id` is creating it (a pending link).
    pub account_id: Option<String>,
    /// The account's sign-in name as last seen (refreshed by each sync: renames).
    pub user_principal_name: Option<String>,
    /// `run` (the account was created by a run), `correlation` (matched by attributes) or
    /// `manual` (`tenure people link`).
    pub via: String,
    /// The run that created (or is creating) the account.
    pub run_id: Option<String>,
    /// When the link was first recorded (unix ms).
    pub created_ms: i64,
    /// When it last changed (unix ms).
    pub updated_ms: i64,
}

/// One sync of a source into a tenant: what it planned and what applying it did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// The sync's id.
    pub id: String,
    /// The source's id.
    pub source: String,
    /// The tenant id.
    pub tenant: String,
    /// When it started (unix ms).
    pub started_ms: i64,
    /// When it finished (unix ms), once it has.
    pub finished_ms: Option<i64>,
    /// `plan`, `apply` or `scheduled`.
    pub mode: String,
    /// `planned`, `applied`, `guarded`, `failed` or `nothing_to_do`.
    pub status: String,
    /// One line: `3 new, 2 update, 0 activate, 1 deactivate; 1 ambiguous`.
    pub summary: String,
    /// The plan, as JSON.
    pub plan: serde_json::Value,
    /// What applying did: runs started (item, runbook, run id), links made, errors.
    pub outcome: serde_json::Value,
    /// How many Graph requests reading the tenant took.
    pub requests: i64,
}
