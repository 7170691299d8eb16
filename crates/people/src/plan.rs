//! Reconciliation, PURE: people, the tenant's accounts and the recorded links in, a
//! [`SyncPlan`] out. Nothing here reads, writes or starts anything.
//!
//! Phase 1 walks the people in source order. A person with a link is `confirmed` (the linked
//! account exists; links match accounts by object id, so renames do not matter) or `gone`
//! (it does not). A person without a link is correlated with the accounts no link claims
//! (guests excluded) by the policy's `correlate` attributes, in order, case-insensitively:
//! the first attribute giving at least one candidate decides, one candidate is `found` (a
//! link is recorded when applied, then it is treated as confirmed), more are `ambiguous`;
//! none is `absent`. Two people finding the same account are both ambiguous; a person
//! whose candidates include accounts others found is correlated again without them, so a
//! plan carried out (its links recorded) plans nothing more. A create whose wanted sign-in
//! name an account already has is blocked (`taken: ...`).
//!
//! A *held* person ([`Person::held`]: the source lists their key but the record could not be
//! mapped) keeps their linked account claimed, so it is never `source_missing`, and gets no
//! action: the item is reported and blocked with the reason.
//!
//! Phase 2 walks the accounts nobody claimed, by sign-in name: a linked account whose person
//! left the source is `source_missing`; guests are skipped; the rest are `unmatched`.
//!
//! Then the policy: switched-off lists, hybrid accounts, administrators and protected
//! groups block actions (the item stays, with the reason), and the mass-deactivation guard
//! stops the whole plan when too much of the tenant would be switched off, or when the source
//! lists nobody while links exist.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::policy::{Policy, SourceMissing};
use crate::{Account, AccountRef, Action, Change, Item, Person, Situation, SyncPlan};

/// A recorded person-account link as reconciliation reads it. The engine's `PersonLink`
/// implements it (as does [`LinkRef`]), so a sync passes the store's links as they are.
pub trait Link {
    /// The person's key in this source.
    fn person_key(&self) -> &str;
    /// The linked account's object id; `None` while the run creating it has not finished.
    fn account_id(&self) -> Option<&str>;
    /// The account's sign-in name when last seen (shown for a gone account; never matched).
    fn user_principal_name(&self) -> Option<&str>;
}

impl Link for LinkRef {
    fn person_key(&self) -> &str {
        &self.person_key
    }
    fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }
    fn user_principal_name(&self) -> Option<&str> {
        self.user_principal_name.as_deref()
    }
}

impl Link for tenure_engine::people::PersonLink {
    fn person_key(&self) -> &str {
        &self.person_key
    }
    fn account_id(&self) -> Option<&str> {
        self.account_id.as_deref()
    }
    fn user_principal_name(&self) -> Option<&str> {
        self.user_principal_name.as_deref()
    }
}

/// A recorded link as a plain value (tests, and callers without the engine's type).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkRef {
    /// The person's key in this source.
    pub person_key: String,
    /// The linked account's object id; `None` while the run creating it has not finished.
    pub account_id: Option<String>,
    /// The account's sign-in name when last seen (informational: links match by id).
    pub user_principal_name: Option<String>,
}

/// How a plan is made beyond the policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Override the percentage guard (`--force`); never the empty-source guard.
    pub force: bool,
    /// Records of the export dropped because their key rendered empty
    /// ([`crate::mapping::Mapped::keyless`]): a linked person missing from the export may be
    /// one of them, so no `source_missing` account is deactivated while there are any.
    pub keyless: usize,
}

/// Why the mass-deactivation guard stopped a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Guard {
    /// The source lists nobody while links exist: a broken export, never applied.
    EmptySource {
        /// The links of the source.
        links: usize,
    },
    /// The source lists people but not one of them active while the plan would deactivate
    /// more than `guard_allows` accounts: a broken status column, never applied.
    NoneActive {
        /// Deactivations the plan would carry out.
        deactivations: usize,
    },
    /// More deactivations than the policy allows.
    TooMany {
        /// Deactivations the plan would carry out.
        deactivations: usize,
        /// The accounts the percentage is of.
        base: usize,
        /// What they are: `accounts this source links` or `enabled accounts`.
        of: &'static str,
        /// `max_deactivate_percent`.
        limit: u32,
    },
}

impl Guard {
    /// Whether `--force` overrides it.
    pub fn overridable(&self) -> bool {
        matches!(self, Guard::TooMany { .. })
    }

    /// What tripped it.
    pub fn reason(&self) -> String {
        match self {
            Guard::EmptySource { links } => format!(
                "the source lists no person while {links} people are linked (a broken export?)"
            ),
            Guard::NoneActive { deactivations } => format!(
                "the source lists no active person, so {deactivations} accounts would be \
                 deactivated (a broken status column?)"
            ),
            Guard::TooMany {
                deactivations,
                base,
                of,
                limit,
            } => format!(
                "{deactivations} deactivations of {base} {of} exceed the \
                 {limit}% max_deactivate_percent"
            ),
        }
    }

    /// The message stored in [`SyncPlan::guard`]: the reason and its consequence.
    pub fn message(&self) -> String {
        if self.overridable() {
            format!("{}: nothing is applied (--force overrides)", self.reason())
        } else {
            format!(
                "{}: nothing is applied (this guard cannot be overridden)",
                self.reason()
            )
        }
    }
}

/// Whether the account is a guest (`#EXT#` in its sign-in name, or `userType` Guest).
pub fn is_guest(a: &Account) -> bool {
    a.user_principal_name.to_ascii_uppercase().contains("#EXT#")
        || a.attributes
            .get("userType")
            .is_some_and(|t| t.eq_ignore_ascii_case("guest"))
}

/// Attributes whose values compare case-insensitively (sign-in names and addresses).
const CASELESS: &[&str] = &["userPrincipalName", "mail", "manager"];

fn same(attr: &str, a: &str, b: &str) -> bool {
    if CASELESS.contains(&attr) {
        a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
    } else {
        a == b
    }
}

fn account_value<'a>(a: &'a Account, attr: &str) -> Option<&'a str> {
    if attr == "userPrincipalName" {
        Some(a.user_principal_name.as_str()).filter(|s| !s.is_empty())
    } else {
        a.attributes
            .get(attr)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

fn account_ref(a: &Account) -> AccountRef {
    AccountRef {
        id: a.id.clone(),
        user_principal_name: a.user_principal_name.clone(),
    }
}

/// The attributes that differ between a person and their account, among `compare` (or, when
/// the policy leaves it unset, the person's attributes but the sign-in name).
pub fn changes(person: &Person, account: &Account, policy: &Policy) -> Vec<Change> {
    let attrs: Vec<&str> = match &policy.compare {
        Some(c) => c.iter().map(String::as_str).collect(),
        None => person
            .attributes
            .keys()
            .map(String::as_str)
            .filter(|a| *a != "userPrincipalName")
            .collect(),
    };
    let mut out: Vec<Change> = Vec::new();
    for attr in attrs {
        if out.iter().any(|c| c.attribute == attr) {
            continue;
        }
        let want = person
            .attributes
            .get(attr)
            .map(String::as_str)
            .filter(|s| !s.is_empty());
        let have = account_value(account, attr);
        let differs = match (want, have) {
            // The manager named by email rather than sign-in name is the same manager.
            (Some(w), Some(_))
                if attr == "manager"
                    && account_value(account, crate::tenant::MANAGER_MAIL)
                        .is_some_and(|m| same(attr, w, m)) =>
            {
                false
            }
            (Some(w), Some(h)) => !same(attr, w, h),
            (None, None) => false,
            _ => true,
        };
        if differs {
            out.push(Change {
                attribute: attr.to_string(),
                from: have.map(str::to_string),
                to: want.map(str::to_string),
            });
        }
    }
    out
}

/// Reconciles with default [`Options`].
pub fn reconcile<L: Link>(
    source: &str,
    tenant: &str,
    people: &[Person],
    accounts: &[Account],
    links: &[L],
    policy: &Policy,
) -> SyncPlan {
    reconcile_with(
        source,
        tenant,
        people,
        accounts,
        links,
        policy,
        Options::default(),
    )
}

/// The two phases, the policy and the guard (see the module documentation).
pub fn reconcile_with<L: Link>(
    source: &str,
    tenant: &str,
    people: &[Person],
    accounts: &[Account],
    links: &[L],
    policy: &Policy,
    options: Options,
) -> SyncPlan {
    let by_id: HashMap<&str, &Account> = accounts.iter().map(|a| (a.id.as_str(), a)).collect();
    // Links by key, and by key in lower case: an export that changes a key's letter case
    // (`e1001` → `E1001`) still names the same person (never a leaver plus a newcomer).
    let mut exact: HashMap<&str, &L> = HashMap::new();
    let mut caseless: HashMap<String, &L> = HashMap::new();
    for l in links {
        exact.entry(l.person_key()).or_insert(l);
        caseless.entry(l.person_key().to_lowercase()).or_insert(l);
    }
    let link_of = |key: &str| {
        exact
            .get(key)
            .or_else(|| caseless.get(&key.to_lowercase()))
            .copied()
    };
    // Accounts some link claims: never correlation candidates.
    let linked_accounts: HashSet<&str> = links.iter().filter_map(|l| l.account_id()).collect();
    let candidates: Vec<&Account> = accounts
        .iter()
        .filter(|a| !linked_accounts.contains(a.id.as_str()) && !is_guest(a))
        .collect();
    let index = correlation_index(&candidates, policy);
    let mut warnings = Vec::new();

    // Phase 1: a situation per person.
    let mut matched: Vec<Matched> = people
        .iter()
        .map(|p| match link_of(&p.key) {
            Some(l) => match l.account_id() {
                Some(id) => match by_id.get(id) {
                    Some(a) => Matched::Linked(a),
                    None => Matched::Gone(id.to_string()),
                },
                None => Matched::Pending,
            },
            // A held person is not acted on: never correlated, never linked.
            None if p.held.is_some() => Matched::Absent,
            None => correlate(p, &index, &HashSet::new()),
        })
        .collect();
    // Two people finding one account: neither is linked. An ambiguous person whose
    // candidates but one are found by others has found that one (else the next sync, with
    // those links recorded, would find it: a plan carried out must plan nothing more).
    // Such a person is correlated again without the accounts others found, the next
    // attribute deciding when none is left. Repeated until nothing changes (bounded).
    let mut rounds = 0;
    let mut contested: BTreeMap<&str, (&Account, BTreeSet<usize>)> = BTreeMap::new();
    loop {
        // An account's finders: people who found it, and people already ambiguous over it
        // alone (a shared find of an earlier round), who would find it again next sync.
        let mut finders: BTreeMap<&str, (&Account, Vec<usize>)> = BTreeMap::new();
        for (i, m) in matched.iter().enumerate() {
            let a = match m {
                Matched::Found(a) => a,
                Matched::Ambiguous(list) if list.len() == 1 => &list[0],
                _ => continue,
            };
            finders
                .entry(a.id.as_str())
                .or_insert((a, Vec::new()))
                .1
                .push(i);
        }
        let mut changed = false;
        for (id, (a, who)) in finders.iter().filter(|(_, (_, w))| w.len() > 1) {
            if !who.iter().any(|&i| matches!(matched[i], Matched::Found(_))) {
                continue;
            }
            contested
                .entry(id)
                .or_insert((a, BTreeSet::new()))
                .1
                .extend(who.iter().copied());
            for &i in who {
                matched[i] = Matched::Ambiguous(vec![a]);
            }
            changed = true;
        }
        let taken: HashSet<&str> = finders
            .iter()
            .filter(|(id, (_, w))| w.len() == 1 && !contested.contains_key(*id))
            .map(|(id, _)| *id)
            .collect();
        for (p, m) in people.iter().zip(matched.iter_mut()) {
            let Matched::Ambiguous(list) = m else {
                continue;
            };
            if list.len() < 2 || !list.iter().any(|a| taken.contains(a.id.as_str())) {
                continue;
            }
            *m = correlate(p, &index, &taken);
            changed = true;
        }
        rounds += 1;
        if !changed || rounds > people.len() {
            break;
        }
    }
    for (a, who) in contested.into_values() {
        let keys: Vec<&str> = who.iter().map(|&i| people[i].key.as_str()).collect();
        warnings.push(format!(
            "{} matches {} people ({}): none is linked to it",
            a.user_principal_name,
            who.len(),
            keys.join(", ")
        ));
    }

    let mut claimed: HashSet<&str> = HashSet::new();
    let mut items = Vec::with_capacity(people.len());
    for (p, m) in people.iter().zip(matched) {
        let item = match m {
            Matched::Linked(a) => {
                claimed.insert(a.id.as_str());
                confirmed(Situation::Confirmed, p, a, false, policy)
            }
            Matched::Found(a) => {
                claimed.insert(a.id.as_str());
                confirmed(Situation::Found, p, a, true, policy)
            }
            Matched::Gone(id) => {
                let upn = link_of(&p.key)
                    .and_then(|l| l.user_principal_name())
                    .map(str::to_string)
                    .unwrap_or_default();
                let account = AccountRef {
                    id,
                    user_principal_name: upn,
                };
                let action = if p.active {
                    Action::Report
                } else {
                    Action::None
                };
                plain(Situation::Gone, Some(p), Some(account), action)
            }
            Matched::Pending => Item {
                blocked: p
                    .active
                    .then(|| "pending: a run creating this account has not finished".to_string()),
                ..absent(p)
            },
            Matched::Ambiguous(list) => {
                for a in &list {
                    claimed.insert(a.id.as_str());
                }
                Item {
                    candidates: list.iter().map(|a| account_ref(a)).collect(),
                    ..plain(Situation::Ambiguous, Some(p), None, Action::Report)
                }
            }
            Matched::Absent => absent(p),
        };
        items.push(match &p.held {
            Some(why) => hold(item, why),
            None => item,
        });
    }

    // Phase 2: the accounts nobody claimed, by sign-in name.
    let in_source: HashSet<String> = people.iter().map(|p| p.key.to_lowercase()).collect();
    let mut left_by: HashMap<&str, &L> = HashMap::new();
    for l in links {
        if let Some(id) = l.account_id() {
            if !in_source.contains(&l.person_key().to_lowercase()) {
                left_by.entry(id).or_insert(l);
            }
        }
    }
    let mut rest: Vec<&Account> = accounts
        .iter()
        .filter(|a| !claimed.contains(a.id.as_str()))
        .collect();
    rest.sort_by_cached_key(|a| (a.user_principal_name.to_lowercase(), a.id.clone()));
    for a in rest {
        if is_guest(a) {
            // Guests are not the source's people: never leavers, never unmatched.
            continue;
        }
        if left_by.contains_key(a.id.as_str()) {
            let action = match policy.source_missing {
                SourceMissing::Report => Action::Report,
                SourceMissing::Deactivate if a.enabled => Action::Deactivate,
                SourceMissing::Deactivate => Action::None,
            };
            items.push(Item {
                blocked: block(action, Some(a), policy),
                ..plain(Situation::SourceMissing, None, Some(account_ref(a)), action)
            });
        } else {
            items.push(plain(
                Situation::Unmatched,
                None,
                Some(account_ref(a)),
                Action::Report,
            ));
        }
    }

    // Switched-off creates (the per-account blocks were set above), and creates whose
    // sign-in name an account already has (the create would fail; that account is another
    // person's, or the person matched more than one account).
    let by_upn: HashMap<String, &Account> = accounts
        .iter()
        .map(|a| (a.user_principal_name.to_lowercase(), a))
        .collect();
    for item in items.iter_mut() {
        if item.situation == Situation::Absent && item.blocked.is_none() {
            item.blocked = block(item.action, None, policy).or_else(|| {
                let upn = item.person.as_ref()?.attributes.get("userPrincipalName")?;
                let taken = by_upn.get(&upn.to_lowercase())?;
                (item.action == Action::Create).then(|| {
                    format!(
                        "taken: the sign-in name {upn} is account {} ({}), not this person's",
                        taken.user_principal_name, taken.id
                    )
                })
            });
        }
    }

    if options.keyless > 0 {
        let why = format!(
            "unread: {} record{} of the export {} no key; this person may be among them",
            options.keyless,
            if options.keyless == 1 { "" } else { "s" },
            if options.keyless == 1 { "has" } else { "have" },
        );
        for item in items.iter_mut().filter(|i| {
            i.situation == Situation::SourceMissing
                && i.action == Action::Deactivate
                && i.blocked.is_none()
        }) {
            item.blocked = Some(why.clone());
        }
    }
    let mut plan = SyncPlan {
        source: source.to_string(),
        tenant: tenant.to_string(),
        items,
        people: people.len(),
        accounts: accounts.len(),
        guard: None,
        warnings,
    };
    let enabled = accounts.iter().filter(|a| a.enabled).count();
    let live_links = links.iter().filter(|l| l.account_id().is_some()).count();
    match assess_guard(&plan, enabled, live_links, policy) {
        Some(g) if options.force && g.overridable() => plan
            .warnings
            .push(format!("guard overridden (--force): {}", g.reason())),
        Some(g) => plan.guard = Some(g.message()),
        None => {}
    }
    plan
}

/// The mass-deactivation guard of a plan: the source lists nobody while `links` exist, or
/// the deactivations it would carry out (not blocked) exceed `max_deactivate_percent` of the
/// accounts the source links (`links`), or of the `enabled` accounts when those are fewer or
/// nothing is linked: a truncated export of a source linking 500 of a tenant's 10,000
/// accounts is stopped, not measured against the whole tenant. Up to `guard_allows`
/// deactivations never trip the percentage. More than that when the source lists people but
/// none active (a broken status column) is never applied either.
pub fn assess_guard(
    plan: &SyncPlan,
    enabled: usize,
    links: usize,
    policy: &Policy,
) -> Option<Guard> {
    if plan.people == 0 && links > 0 {
        return Some(Guard::EmptySource { links });
    }
    let deactivations = plan
        .items
        .iter()
        .filter(|i| i.action == Action::Deactivate && i.blocked.is_none())
        .count();
    let mut readable = plan
        .items
        .iter()
        .filter_map(|i| i.person.as_ref())
        .filter(|p| p.held.is_none())
        .peekable();
    if deactivations > policy.guard_allows as usize
        && readable.peek().is_some()
        && readable.all(|p| !p.active)
    {
        return Some(Guard::NoneActive { deactivations });
    }
    let (base, of) = if links > 0 && links < enabled {
        (links, "accounts this source links")
    } else {
        (enabled, "enabled accounts")
    };
    if deactivations > policy.guard_allows as usize
        && (deactivations as u64) * 100 > u64::from(policy.max_deactivate_percent) * base as u64
    {
        return Some(Guard::TooMany {
            deactivations,
            base,
            of,
            limit: policy.max_deactivate_percent,
        });
    }
    None
}

/// A held person's item (the source lists them, but their record could not be mapped):
/// reported and blocked, whatever the situation would have had done.
fn hold(mut item: Item, why: &str) -> Item {
    item.action = Action::Report;
    item.link = false;
    item.changes.clear();
    item.blocked = Some(format!(
        "held: the source's record could not be read ({why}); nothing is done until it is fixed"
    ));
    item
}

/// An item that links nothing, changes no attribute, lists no candidates and is not
/// blocked.
fn plain(
    situation: Situation,
    person: Option<&Person>,
    account: Option<AccountRef>,
    action: Action,
) -> Item {
    Item {
        situation,
        person: person.cloned(),
        account,
        candidates: Vec::new(),
        link: false,
        action,
        changes: Vec::new(),
        blocked: None,
    }
}

/// The item of a person no account was found for: created when active.
fn absent(p: &Person) -> Item {
    let action = if p.active {
        Action::Create
    } else {
        Action::None
    };
    plain(Situation::Absent, Some(p), None, action)
}

/// What phase 1 found for one person.
enum Matched<'a> {
    Linked(&'a Account),
    Gone(String),
    Pending,
    Found(&'a Account),
    Ambiguous(Vec<&'a Account>),
    Absent,
}

/// The item of a person paired with an account (linked, or found by correlation).
fn confirmed(situation: Situation, p: &Person, a: &Account, link: bool, policy: &Policy) -> Item {
    let diff = changes(p, a, policy);
    let (action, changes) = match (p.active, a.enabled) {
        (true, false) => (Action::Activate, diff),
        (true, true) if !diff.is_empty() => (Action::Update, diff),
        (false, true) => (Action::Deactivate, Vec::new()),
        _ => (Action::None, Vec::new()),
    };
    Item {
        situation,
        person: Some(p.clone()),
        account: Some(account_ref(a)),
        candidates: Vec::new(),
        link,
        action,
        changes,
        blocked: block(action, Some(a), policy),
    }
}

/// Why `action` on `account` is not taken, if it is not: a hybrid account, the policy, an
/// administrator, a protected group (in that order).
pub fn block(action: Action, account: Option<&Account>, policy: &Policy) -> Option<String> {
    if matches!(action, Action::None | Action::Report) {
        return None;
    }
    if account.is_some_and(|a| a.hybrid) {
        return Some("hybrid: on-premises synced, change it in Active Directory".into());
    }
    if !policy.allows(action) {
        return Some(format!("policy: {} is off", action.code()));
    }
    if action == Action::Deactivate {
        if account.is_some_and(|a| a.admin) && policy.protect_admins {
            return Some("admin: holds a directory role, never deactivated automatically".into());
        }
        if account.is_some_and(|a| a.protected) {
            return Some("protected: a member of a protected group".into());
        }
    }
    None
}

/// A person without a link against the unclaimed accounts but those in `taken` (found by
/// other people of this plan).
fn correlate<'a>(p: &Person, index: &[CorrelationIndex<'a>], taken: &HashSet<&str>) -> Matched<'a> {
    for (attr, by_value) in index {
        let Some(want) = p.attributes.get(*attr).filter(|v| !v.is_empty()) else {
            continue;
        };
        let Some(all) = by_value.get(&want.to_lowercase()) else {
            continue;
        };
        let free: Vec<&Account> = all
            .iter()
            .filter(|a| !taken.contains(a.id.as_str()))
            .copied()
            .collect();
        match free[..] {
            [] => continue,
            [one] => return Matched::Found(one),
            _ => return Matched::Ambiguous(free),
        }
    }
    Matched::Absent
}

/// One correlation attribute and the unlinked accounts by its lower-cased value.
type CorrelationIndex<'a> = (&'a str, HashMap<String, Vec<&'a Account>>);

/// Indexes the candidates by each correlation attribute (one pass per attribute, so a sync
/// of thousands of people does not compare every person with every account).
fn correlation_index<'a>(
    candidates: &[&'a Account],
    policy: &'a Policy,
) -> Vec<CorrelationIndex<'a>> {
    policy
        .correlate
        .iter()
        .map(|attr| {
            let mut by_value: HashMap<String, Vec<&Account>> = HashMap::new();
            for a in candidates {
                if let Some(v) = account_value(a, attr) {
                    by_value.entry(v.to_lowercase()).or_default().push(*a);
                }
            }
            (attr.as_str(), by_value)
        })
        .collect()
}
