//! The words of a people sync, shared by every part of it: a [`Person`] as an HR source
//! describes them (after mapping), an [`Account`] as the tenant holds it, and a [`SyncPlan`]:
//! one [`Item`] per person and per account nobody claimed, each with its [`Situation`] (how the
//! pair correlates, as identity-governance systems name it) and the [`Action`] the policy
//! chose, grouped into the four lists HR products show ([`List`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A person as a source describes them, after the field mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The source's stable key for this person (an employee number); unique within a source.
    pub key: String,
    /// Whether the source says they work here now (false: terminated, left, suspended).
    pub active: bool,
    /// Entra attributes by their Graph names (`displayName`, `givenName`, `surname`,
    /// `jobTitle`, `department`, `usageLocation`, `employeeId`, `mail`, `userPrincipalName`
    /// (the sign-in name wanted for a new account), `manager` (the manager's sign-in name or
    /// email)). Only mapped, non-empty values are present.
    pub attributes: BTreeMap<String, String>,
    /// Mapped values that are not Entra attributes (`personalEmail`, `startDate`, `endDate`,
    /// ...), for the runs' inputs.
    pub extra: BTreeMap<String, String>,
    /// Where in the source it came from (`people.csv:12`, `records[3]`), for messages.
    pub origin: String,
    /// Why the source's record could not be mapped, when it could not (an `active` that is
    /// neither word list, a control character, a key two records share, ...): the source
    /// still lists this key, so the person is *held*: reconciliation takes no action on them
    /// and, above all, does not treat their account as left (`source_missing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// A user account as the tenant holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The object id (survives renames).
    pub id: String,
    /// The sign-in name.
    pub user_principal_name: String,
    /// Whether sign-in is allowed (`accountEnabled`).
    pub enabled: bool,
    /// Synced from on-premises Active Directory (`onPremisesSyncEnabled`): read-only here.
    pub hybrid: bool,
    /// Holds a directory role (an administrator): never deactivated automatically.
    pub admin: bool,
    /// A member of a protected group: never deactivated automatically.
    pub protected: bool,
    /// Attributes by the same Graph names as [`Person::attributes`] (`manager` as the
    /// manager's sign-in name); only non-empty values are present.
    pub attributes: BTreeMap<String, String>,
}

/// How a person and the accounts correlate (midPoint's situations, in HR products' words).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Situation {
    /// A person with no link and no matching account.
    Absent,
    /// A person with no link and exactly one matching account nobody else is linked to.
    Found,
    /// A person linked to an account that exists.
    Confirmed,
    /// A person matching two or more accounts: reported, never acted on.
    Ambiguous,
    /// A person linked to an account that no longer exists in the tenant.
    Gone,
    /// An account linked to a person the source no longer lists.
    SourceMissing,
    /// An account no person links to or matches (second phase): reported only.
    Unmatched,
}

impl Situation {
    /// The snake_case name used in JSON, tables and configuration.
    pub fn code(self) -> &'static str {
        match self {
            Situation::Absent => "absent",
            Situation::Found => "found",
            Situation::Confirmed => "confirmed",
            Situation::Ambiguous => "ambiguous",
            Situation::Gone => "gone",
            Situation::SourceMissing => "source_missing",
            Situation::Unmatched => "unmatched",
        }
    }
}

/// What the policy does about one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing to do.
    None,
    /// Make the account: the joiner runbook.
    Create,
    /// Change the account's attributes ([`Item::changes`]): the update runbook.
    Update,
    /// Allow sign-in again (and apply [`Item::changes`]): the activation runbook.
    Activate,
    /// End the person's access: the leaver runbook.
    Deactivate,
    /// Only reported (ambiguous, unmatched): a person must look.
    Report,
}

impl Action {
    /// The snake_case name used in JSON, tables and configuration.
    pub fn code(self) -> &'static str {
        match self {
            Action::None => "none",
            Action::Create => "create",
            Action::Update => "update",
            Action::Activate => "activate",
            Action::Deactivate => "deactivate",
            Action::Report => "report",
        }
    }

    /// The list an HR product would show this action in, if any.
    pub fn list(self) -> Option<List> {
        match self {
            Action::Create => Some(List::New),
            Action::Update => Some(List::Update),
            Action::Activate => Some(List::Activate),
            Action::Deactivate => Some(List::Deactivate),
            Action::None | Action::Report => None,
        }
    }
}

/// The four lists HR products show when importing a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum List {
    /// Accounts to create.
    New,
    /// Accounts whose attributes change.
    Update,
    /// Accounts to activate.
    Activate,
    /// Accounts to deactivate.
    Deactivate,
}

/// A person or account named in a plan, as shown to people.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    /// The object id.
    pub id: String,
    /// The sign-in name.
    pub user_principal_name: String,
}

/// One attribute that differs between the source and the account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The Graph attribute name.
    pub attribute: String,
    /// The account's value (absent: unset).
    pub from: Option<String>,
    /// The source's value (absent: to be cleared).
    pub to: Option<String>,
}

/// One line of a plan: a person (first phase) or an account nobody claimed (second phase).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// How the pair correlates.
    pub situation: Situation,
    /// The person, when the source lists one.
    pub person: Option<Person>,
    /// The account, when there is exactly one.
    pub account: Option<AccountRef>,
    /// The candidate accounts of an ambiguous person.
    pub candidates: Vec<AccountRef>,
    /// A link is recorded for this pair when the plan is applied (a `found` person).
    pub link: bool,
    /// What the policy chose.
    pub action: Action,
    /// The attributes that change (updates and activations).
    pub changes: Vec<Change>,
    /// Why the chosen action is not taken (the policy switched it off, a hybrid account, an
    /// administrator, a protected group, the mass-deactivation guard); the item stays in its
    /// list so people see it.
    pub blocked: Option<String>,
}

/// What one sync would do (or did), before anything is started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncPlan {
    /// The source's id.
    pub source: String,
    /// The tenant id.
    pub tenant: String,
    /// Every item: people in source order, then unclaimed accounts by sign-in name.
    pub items: Vec<Item>,
    /// How many people the source listed.
    pub people: usize,
    /// How many accounts the tenant holds (users, members and guests alike).
    pub accounts: usize,
    /// Set when the mass-deactivation guard stopped the sync: why (nothing is applied).
    pub guard: Option<String>,
    /// Problems in the source that did not stop the plan (a row without a key, a duplicate
    /// key), each with its origin.
    pub warnings: Vec<String>,
}
