//! `[sync.policy]`: what a sync may do. Each of the four lists can be switched off (its items
//! still show, blocked), a linked account whose person left the source is deactivated or only
//! reported, people are correlated with unlinked accounts by a list of attributes, and the
//! mass-deactivation guard caps how much of a tenant one sync may switch off.

use serde::{Deserialize, Serialize};

/// The attributes a person may be correlated by (matched case-insensitively).
pub const CORRELATABLE: &[&str] = &["employeeId", "userPrincipalName", "mail"];

/// What a linked account whose person no longer appears in the source gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceMissing {
    /// Deactivated when enabled (the leaver runbook); nothing when already disabled.
    #[default]
    Deactivate,
    /// Only reported.
    Report,
}

/// The policy of one sync source (defaults as documented on each field).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Create accounts for new people (default true).
    pub create: bool,
    /// Update changed attributes (default true).
    pub update: bool,
    /// Enable disabled accounts of active people (default true).
    pub activate: bool,
    /// Deactivate the accounts of people who left (default true).
    pub deactivate: bool,
    /// What a linked account whose person left the source gets (default `deactivate`).
    pub source_missing: SourceMissing,
    /// Attributes matched, in order, between an unlinked person and unlinked accounts; the
    /// first attribute giving at least one candidate decides (default `employeeId`,
    /// `userPrincipalName`, `mail`).
    pub correlate: Vec<String>,
    /// Attributes compared for updates (default: every Entra attribute the mapping sets
    /// except `userPrincipalName`; see [`crate::config::SyncSource::effective_policy`]).
    /// When unset at reconciliation, the attributes each person carries (but the sign-in
    /// name) are compared.
    pub compare: Option<Vec<String>>,
    /// Accounts holding a directory role are never deactivated (default true).
    pub protect_admins: bool,
    /// Group display names or ids whose members are never deactivated (default none).
    pub protected_groups: Vec<String>,
    /// The most deactivations one sync may carry out, as a percentage of the accounts this
    /// source links (or of the tenant's enabled accounts, when those are fewer or nothing is
    /// linked yet; default 10); above it the plan is guarded and nothing is applied.
    pub max_deactivate_percent: u32,
    /// This many deactivations never trip the percentage guard (default 1), so one leaver of a
    /// small company is not held up; the empty-source guard is unaffected.
    pub guard_allows: u32,
    /// Approvers of every applied batch (default none): when set, `tenure sync --apply`
    /// (unless `--approve-by` names others) and the scheduled sync start one
    /// `people-sync-batch` run asking them once, instead of one run per person. They must be
    /// among those the batch runbook allows (its `approvers` input's `enum`).
    pub approval: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            create: true,
            update: true,
            activate: true,
            deactivate: true,
            source_missing: SourceMissing::Deactivate,
            correlate: CORRELATABLE.iter().map(|s| s.to_string()).collect(),
            compare: None,
            protect_admins: true,
            protected_groups: Vec::new(),
            max_deactivate_percent: 10,
            guard_allows: 1,
            approval: Vec::new(),
        }
    }
}

impl Policy {
    /// Checks the values serde cannot: the percentage, the correlation attributes and the
    /// approvers' addresses (whether the batch runbook allows them is checked where the
    /// runbooks are known: [`crate::apply::check_batch_approvers`]).
    pub fn validate(&self) -> Result<(), String> {
        if self.max_deactivate_percent > 100 {
            return Err(format!(
                "max_deactivate_percent is {}; it is a percentage (0 to 100)",
                self.max_deactivate_percent
            ));
        }
        for a in &self.correlate {
            if !CORRELATABLE.contains(&a.as_str()) {
                return Err(format!(
                    "correlate names `{a}`; people are correlated by {}",
                    CORRELATABLE.join(", ")
                ));
            }
        }
        for a in &self.approval {
            let (local, domain) = a.split_once('@').unwrap_or_default();
            if local.is_empty() || !domain.contains('.') || a.contains(char::is_whitespace) {
                return Err(format!(
                    "approval names `{a}`, which is not an email address"
                ));
            }
        }
        if let Some(compare) = &self.compare {
            for a in compare {
                if !crate::mapping::ENTRA_ATTRIBUTES.contains(&a.as_str()) {
                    return Err(format!(
                        "compare names `{a}`, which is not an Entra attribute a sync sets ({})",
                        crate::mapping::ENTRA_ATTRIBUTES.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the policy switches `action` on (None and Report are always on).
    pub fn allows(&self, action: crate::Action) -> bool {
        use crate::Action;
        match action {
            Action::Create => self.create,
            Action::Update => self.update,
            Action::Activate => self.activate,
            Action::Deactivate => self.deactivate,
            Action::None | Action::Report => true,
        }
    }
}
