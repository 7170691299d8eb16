//! Properties of reconciliation over generated tenants: every person gets exactly one item,
//! in source order; no account is acted on for two people; guests never appear on their own;
//! blocked deactivations never count toward the guard; and a large sync is planned without
//! comparing every person with every account.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use proptest::prelude::*;
use tenure_people::plan::{is_guest, reconcile, LinkRef};
use tenure_people::policy::Policy;
use tenure_people::{Account, Action, Person, Situation};

fn person(i: u8, active: bool, eid: Option<u8>, upn: Option<u8>) -> Person {
    let mut attributes = BTreeMap::new();
    if let Some(e) = eid {
        attributes.insert("employeeId".to_string(), format!("E{e}"));
    }
    if let Some(u) = upn {
        attributes.insert("userPrincipalName".to_string(), format!("U{u}@x.com"));
    }
    attributes.insert("department".into(), format!("D{}", i % 3));
    Person {
        key: format!("P{i}"),
        active,
        attributes,
        extra: BTreeMap::new(),
        origin: format!("p.csv:{i}"),
        held: None,
    }
}

fn account(i: u8, flags: u8, eid: Option<u8>, upn: u8) -> Account {
    let mut attributes = BTreeMap::new();
    if let Some(e) = eid {
        attributes.insert("employeeId".to_string(), format!("e{e}"));
    }
    attributes.insert("department".into(), format!("D{}", i % 2));
    let guest = flags & 16 != 0;
    Account {
        id: format!("A{i}"),
        user_principal_name: if guest {
            format!("u{upn}_x.com#EXT#@t.onmicrosoft.com")
        } else {
            format!("u{upn}@x.com")
        },
        enabled: flags & 1 != 0,
        hybrid: flags & 2 != 0,
        admin: flags & 4 != 0,
        protected: flags & 8 != 0,
        attributes,
    }
}

fn world() -> impl Strategy<Value = (Vec<Person>, Vec<Account>, Vec<LinkRef>, Policy)> {
    let people = prop::collection::btree_map(
        0u8..40,
        (
            any::<bool>(),
            prop::option::of(0u8..20),
            prop::option::of(0u8..20),
        ),
        0..25,
    );
    let accounts = prop::collection::btree_map(
        0u8..40,
        (any::<u8>(), prop::option::of(0u8..20), 0u8..20),
        0..25,
    );
    let links = prop::collection::btree_map(0u8..40, prop::option::of(0u8..40), 0..15);
    (people, accounts, links, any::<(bool, bool, u8)>()).prop_map(
        |(p, a, l, (deact, report, pct))| {
            let people = p
                .into_iter()
                .map(|(i, (act, e, u))| person(i, act, e, u))
                .collect();
            let accounts: Vec<Account> = a
                .into_iter()
                .map(|(i, (f, e, u))| account(i, f, e, u))
                .collect();
            // Links are unique per account, as the store keeps them.
            let mut used = HashSet::new();
            let links = l
                .into_iter()
                .filter(|(_, acc)| acc.is_none_or(|x| used.insert(x)))
                .map(|(k, acc)| LinkRef {
                    person_key: format!("P{k}"),
                    account_id: acc.map(|x| format!("A{x}")),
                    user_principal_name: None,
                })
                .collect();
            let policy = Policy {
                deactivate: deact,
                source_missing: if report {
                    tenure_people::policy::SourceMissing::Report
                } else {
                    tenure_people::policy::SourceMissing::Deactivate
                },
                max_deactivate_percent: u32::from(pct % 101),
                ..Policy::default()
            };
            (people, accounts, links, policy)
        },
    )
}

proptest! {
    #[test]
    fn reconciliation_invariants((people, accounts, links, policy) in world()) {
        let plan = reconcile("hr", "t", &people, &accounts, &links, &policy);
        // One item per person, in source order, first.
        let keys: Vec<&str> = plan.items.iter().filter_map(|i| i.person.as_ref()).map(|p| p.key.as_str()).collect();
        let want: Vec<&str> = people.iter().map(|p| p.key.as_str()).collect();
        prop_assert_eq!(keys, want);
        prop_assert!(plan.items[..people.len()].iter().all(|i| i.person.is_some()));
        // No account is the subject of two items.
        let mut seen = HashSet::new();
        for i in &plan.items {
            if let (Some(a), false) = (&i.account, i.situation == Situation::Gone) {
                prop_assert!(seen.insert(a.id.clone()), "{} twice", a.id);
            }
            // Ambiguous and unmatched are only reported; reports are never blocked.
            if matches!(i.situation, Situation::Ambiguous | Situation::Unmatched) {
                prop_assert_eq!(i.action, Action::Report);
            }
            if (i.action == Action::Report || i.action == Action::None)
                && i.person.as_ref().is_none_or(|p| p.held.is_none())
            {
                prop_assert!(i.blocked.is_none());
            }
            if i.link {
                prop_assert_eq!(i.situation, Situation::Found);
            }
            if !policy.deactivate && i.action == Action::Deactivate {
                prop_assert!(i.blocked.is_some());
            }
        }
        // Guests never stand alone in the plan.
        for a in accounts.iter().filter(|a| is_guest(a)) {
            prop_assert!(!plan.items.iter().any(|i| i.person.is_none() && i.account.as_ref().is_some_and(|r| r.id == a.id)));
        }
        // The guard counts only unblocked deactivations.
        let enabled = accounts.iter().filter(|a| a.enabled).count();
        let open = plan.items.iter().filter(|i| i.action == Action::Deactivate && i.blocked.is_none()).count();
        let live_links = links.iter().filter(|l| l.account_id.is_some()).count();
        let base = if live_links > 0 && live_links < enabled { live_links } else { enabled };
        let readable: Vec<_> = people.iter().filter(|p| p.held.is_none()).collect();
        let none_active = !readable.is_empty() && readable.iter().all(|p| !p.active);
        let expected = (people.is_empty() && live_links > 0)
            || (open > policy.guard_allows as usize
                && (none_active || open * 100 > policy.max_deactivate_percent as usize * base));
        prop_assert_eq!(plan.guard.is_some(), expected);
    }

    /// The same input plans the same twice; a plan carried out (links recorded, accounts
    /// created, updated, enabled, disabled as it says) plans nothing more to do.
    #[test]
    fn deterministic_and_idempotent((people, accounts, links, policy) in world()) {
        let plan = reconcile("hr", "t", &people, &accounts, &links, &policy);
        prop_assert_eq!(&plan, &reconcile("hr", "t", &people, &accounts, &links, &policy));
        // Any plan renders (table and JSON) without panicking, the same each time.
        prop_assert_eq!(tenure_people::render::table(&plan), tenure_people::render::table(&plan.clone()));
        prop_assert!(tenure_people::render::to_json(&plan).is_object());
        if plan.guard.is_some() {
            return Ok(()); // nothing is carried out
        }
        let (accounts, links) = pretend_applied(&plan, accounts, links);
        let again = reconcile("hr", "t", &people, &accounts, &links, &policy);
        for i in &again.items {
            let acts = matches!(i.action, Action::Create | Action::Update | Action::Activate | Action::Deactivate);
            prop_assert!(!(i.link || (acts && i.blocked.is_none())), "{:?}", i);
        }
    }
}

/// The tenant and links after `plan` was carried out, as the runbooks and apply would.
fn pretend_applied(
    plan: &tenure_people::SyncPlan,
    mut accounts: Vec<Account>,
    mut links: Vec<LinkRef>,
) -> (Vec<Account>, Vec<LinkRef>) {
    for (n, i) in plan.items.iter().enumerate() {
        if i.link {
            let (p, a) = (i.person.as_ref().unwrap(), i.account.as_ref().unwrap());
            links.push(LinkRef {
                person_key: p.key.clone(),
                account_id: Some(a.id.clone()),
                user_principal_name: None,
            });
        }
        if i.blocked.is_some() {
            continue;
        }
        match i.action {
            Action::Create => {
                let p = i.person.as_ref().unwrap();
                let id = format!("new{n}");
                let mut attributes = p.attributes.clone();
                let upn = attributes
                    .remove("userPrincipalName")
                    .unwrap_or_else(|| format!("{}@x.com", p.key));
                accounts.push(Account {
                    id: id.clone(),
                    user_principal_name: upn,
                    enabled: true,
                    attributes,
                    ..Account::default()
                });
                links.retain(|l| l.person_key != p.key);
                links.push(LinkRef {
                    person_key: p.key.clone(),
                    account_id: Some(id),
                    user_principal_name: None,
                });
            }
            Action::Update | Action::Activate | Action::Deactivate => {
                let id = &i.account.as_ref().unwrap().id;
                let a = accounts.iter_mut().find(|a| &a.id == id).unwrap();
                for c in &i.changes {
                    match &c.to {
                        Some(v) => a.attributes.insert(c.attribute.clone(), v.clone()),
                        None => a.attributes.remove(&c.attribute),
                    };
                }
                a.enabled = i.action != Action::Deactivate;
            }
            _ => {}
        }
    }
    (accounts, links)
}

#[test]
fn ten_thousand_people_plan_quickly() {
    let n = 10_000;
    let people: Vec<Person> = (0..n)
        .map(|i| {
            let mut attributes = BTreeMap::new();
            attributes.insert("employeeId".to_string(), format!("E{i}"));
            attributes.insert("userPrincipalName".to_string(), format!("user{i}@x.com"));
            attributes.insert("department".to_string(), format!("D{}", i % 7));
            Person {
                key: format!("E{i}"),
                active: i % 50 != 0,
                attributes,
                extra: BTreeMap::new(),
                origin: format!("p.csv:{}", i + 2),
                held: None,
            }
        })
        .collect();
    let accounts: Vec<Account> = (0..n)
        .map(|i| {
            let mut attributes = BTreeMap::new();
            attributes.insert("employeeId".to_string(), format!("E{i}"));
            attributes.insert("department".to_string(), format!("D{}", i % 5));
            Account {
                id: format!("id-{i}"),
                user_principal_name: format!("user{i}@x.com"),
                enabled: true,
                attributes,
                ..Account::default()
            }
        })
        .collect();
    // Half the people are linked, half are found by employeeId.
    let links: Vec<LinkRef> = (0..n / 2)
        .map(|i| LinkRef {
            person_key: format!("E{i}"),
            account_id: Some(format!("id-{i}")),
            user_principal_name: None,
        })
        .collect();
    let started = Instant::now();
    let plan = reconcile("hr", "t", &people, &accounts, &links, &Policy::default());
    let took = started.elapsed();
    eprintln!("reconcile: {n} people × {n} accounts in {took:?}");
    assert_eq!(plan.items.len(), n);
    assert_eq!(plan.items.iter().filter(|i| i.link).count(), n / 2);
    assert_eq!(
        plan.items
            .iter()
            .filter(|i| i.action == Action::Deactivate)
            .count(),
        n / 50
    );
    // Quadratic matching would take minutes in a debug build.
    assert!(took.as_secs() < 10, "{took:?}");
}
