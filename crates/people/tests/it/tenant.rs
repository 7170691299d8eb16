//! Reading a tenant against the sandbox (in process, on a free loopback port): a full read of
//! the seeded tenant (administrators, hybrid and guest accounts, managers, a protected group),
//! a rename and a deletion seen by the next delta read, and the number of Graph requests a
//! tenant of 2,500 users takes.

use reqwest::Method;
use serde_json::{json, Value};
use tenure_kinds::Vendors;
use tenure_people::tenant::{read_delta, read_full, Error, ReadOptions};
use tenure_people::Account;
use tenure_sandbox::testing::graph_token;
use tenure_sandbox::Sandbox;

struct Env {
    url: String,
    vendors: Vendors,
    _server: tokio::task::JoinHandle<()>,
}

async fn start(sandbox: Sandbox) -> Env {
    let (addr, server) = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{addr}");
    Env {
        vendors: Vendors::sandbox(&url),
        url,
        _server: server,
    }
}

fn contoso() -> Value {
    json!({"id": "contoso", "domain": "contoso.example", "name": "Contoso"})
}

impl Env {
    async fn graph(&self, method: Method, path: &str, body: Value) -> reqwest::Response {
        let http = reqwest::Client::new();
        let token = graph_token(&self.url, "contoso.example").await.unwrap();
        http.request(
            method,
            format!("{}/graph.microsoft.com/v1.0{path}", self.url),
        )
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
    }
}

fn find<'a>(accounts: &'a [Account], upn: &str) -> &'a Account {
    accounts
        .iter()
        .find(|a| a.user_principal_name == upn)
        .unwrap_or_else(|| panic!("no {upn}"))
}

#[tokio::test]
async fn full_read_of_the_seeded_tenant() {
    let env = start(Sandbox::new()).await;
    let options = ReadOptions {
        protected_groups: vec!["Finance".into()],
        skip_roles: false,
    };
    let snap = read_full(&env.vendors, &contoso(), &options).await.unwrap();
    assert!(snap.full);
    assert_eq!(snap.accounts.len(), 28);
    assert!(snap.delta_link.as_deref().unwrap().contains("$deltatoken="));
    // One page of users, the role assignments, the group found by name, its members.
    assert_eq!(snap.requests, 4);

    let admins: Vec<&str> = snap
        .accounts
        .iter()
        .filter(|a| a.admin)
        .map(|a| a.user_principal_name.as_str())
        .collect();
    assert_eq!(
        admins,
        [
            "irvin.sayers@contoso.example",
            "isaiah.langer@contoso.example"
        ]
    );
    let pradeep = find(&snap.accounts, "pradeep.gupta@contoso.example");
    assert!(pradeep.hybrid && !pradeep.admin);
    let guests: Vec<&Account> = snap
        .accounts
        .iter()
        .filter(|a| tenure_people::plan::is_guest(a))
        .collect();
    assert_eq!(guests.len(), 1);
    assert_eq!(guests[0].attributes["userType"], "Guest");
    let lidia = find(&snap.accounts, "lidia.holloway@contoso.example");
    assert_eq!(lidia.attributes["manager"], "megan.bowen@contoso.example");
    assert_eq!(lidia.attributes["department"], "Sales");
    assert_eq!(
        lidia.attributes["userPrincipalName"],
        lidia.user_principal_name
    );
    assert!(lidia.enabled && !lidia.protected);
    let finance = snap.accounts.iter().filter(|a| a.protected).count();
    assert_eq!(finance, 6);

    // A protected group that does not exist stops the read: protection is never dropped
    // silently.
    let wrong = ReadOptions {
        protected_groups: vec!["Executives".into()],
        skip_roles: true,
    };
    let err = read_full(&env.vendors, &contoso(), &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoGroup(_)), "{err}");
    // By id, and without the roles: two requests.
    let id = "00000000-0000-0000-0000-000000000000";
    let by_id = ReadOptions {
        protected_groups: vec![id.into()],
        skip_roles: true,
    };
    let err = read_full(&env.vendors, &contoso(), &by_id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoGroup(_)), "{err}");
}

#[tokio::test]
async fn delta_sees_renames_and_deletions() {
    let env = start(Sandbox::new()).await;
    let options = ReadOptions::default();
    let first = read_full(&env.vendors, &contoso(), &options).await.unwrap();
    let megan_id = find(&first.accounts, "megan.bowen@contoso.example")
        .id
        .clone();

    // Nothing changed: one page and the roles.
    let same = read_delta(&env.vendors, &contoso(), &options, first.clone())
        .await
        .unwrap();
    assert!(!same.full);
    assert_eq!(same.requests, 2);
    assert_eq!(same.accounts, first.accounts);

    // Megan is renamed; Joni leaves (deleted).
    let r = env
        .graph(
            Method::PATCH,
            "/users/megan.bowen@contoso.example",
            json!({"userPrincipalName": "megan.bowen-smith@contoso.example"}),
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = env
        .graph(
            Method::DELETE,
            "/users/joni.sherman@contoso.example",
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 204);

    let next = read_delta(&env.vendors, &contoso(), &options, same)
        .await
        .unwrap();
    assert_eq!(next.requests, 2);
    assert_eq!(next.accounts.len(), 27);
    let megan = find(&next.accounts, "megan.bowen-smith@contoso.example");
    assert_eq!(megan.id, megan_id);
    assert!(!next
        .accounts
        .iter()
        .any(|a| a.user_principal_name == "joni.sherman@contoso.example"));
    // The people Megan manages see her new name.
    let lidia = find(&next.accounts, "lidia.holloway@contoso.example");
    assert_eq!(
        lidia.attributes["manager"],
        "megan.bowen-smith@contoso.example"
    );
    assert_ne!(next.delta_link, first.delta_link);

    // The snapshot survives JSON (it is stored as the sync's cursor).
    let text = serde_json::to_string(&next).unwrap();
    assert_eq!(
        serde_json::from_str::<tenure_people::tenant::Snapshot>(&text).unwrap(),
        next
    );

    // A snapshot without a delta link cannot be patched.
    let mut bare = next;
    bare.delta_link = None;
    assert!(matches!(
        read_delta(&env.vendors, &contoso(), &options, bare).await,
        Err(Error::NoDeltaLink)
    ));
}

#[tokio::test]
async fn a_large_tenant_in_few_requests() {
    let mut seed: Value = serde_json::from_str(tenure_sandbox::DEFAULT_SEED).unwrap();
    let users = seed["tenants"][0]["users"].as_array_mut().unwrap();
    let megan = users[0]["id"].clone();
    for i in 0..2_500 {
        users.push(json!({"id": format!("00000000-0000-4000-8000-{i:012}"),
            "userPrincipalName": format!("person.{i}@contoso.example"), "displayName": format!("Person {i}"),
            "department": "Sales", "employeeId": format!("E{i:05}"), "accountEnabled": i % 10 != 0,
            "managerId": megan}));
    }
    let env = start(Sandbox::from_seed(&seed.to_string()).unwrap()).await;
    let options = ReadOptions {
        protected_groups: vec!["Finance".into()],
        skip_roles: false,
    };
    let snap = read_full(&env.vendors, &contoso(), &options).await.unwrap();
    assert_eq!(snap.accounts.len(), 2_528);
    // 2,528 users in pages of 999: 3 pages, then roles (1) and the group (2).
    assert!(snap.requests <= 5 + 1 + 2, "{}", snap.requests);
    assert_eq!(snap.requests, 6);
    let p = find(&snap.accounts, "person.7@contoso.example");
    assert_eq!(p.attributes["manager"], "megan.bowen@contoso.example");
    assert_eq!(
        snap.accounts.iter().filter(|a| !a.enabled).count(),
        250 + first_disabled(&seed)
    );
}

/// Seeded users of contoso (before the bulk ones) whose sign-in is blocked.
fn first_disabled(seed: &Value) -> usize {
    seed["tenants"][0]["users"]
        .as_array()
        .unwrap()
        .iter()
        .take(28)
        .filter(|u| u["accountEnabled"] == false)
        .count()
}

impl Env {
    async fn faults(&self, rules: Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/faults", self.url))
            .json(&json!({"seed": 7, "rules": rules}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
}

/// Graph throttling (429 with Retry-After, 503, connections dropped mid-answer) on 30% of
/// every read still gives the whole snapshot; throttling on every request gives an error,
/// never a partial snapshot (in which missing accounts would read as people who left).
#[tokio::test]
async fn throttled_reads_are_whole_or_fail() {
    let env = start(Sandbox::new()).await;
    let options = ReadOptions {
        protected_groups: vec!["Finance".into()],
        skip_roles: false,
    };
    let clean = read_full(&env.vendors, &contoso(), &options).await.unwrap();
    for rule in [
        json!({"path": "/graph.microsoft.com/v1.0/", "method": "GET", "status": 429, "retry_after": 0, "rate": 0.3}),
        json!({"path": "/graph.microsoft.com/v1.0/", "method": "GET", "status": 503, "rate": 0.3}),
        json!({"path": "/graph.microsoft.com/v1.0/", "method": "GET", "drop": true, "rate": 0.3}),
    ] {
        env.faults(json!([rule])).await;
        for _ in 0..3 {
            let snap = read_full(&env.vendors, &contoso(), &options).await;
            let snap = snap.unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(snap.accounts, clean.accounts, "{rule}");
            let delta = read_delta(&env.vendors, &contoso(), &options, snap)
                .await
                .unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(delta.accounts, clean.accounts, "{rule}");
        }
    }
    env.faults(json!([{"path": "/graph.microsoft.com/v1.0/", "method": "GET", "status": 503, "rate": 1.0}]))
        .await;
    let e = read_full(&env.vendors, &contoso(), &options)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("503"), "{e}");
    env.faults(json!([])).await;
}

/// A delta link Graph refuses as malformed (400) or expired (410) gives a full read.
#[tokio::test]
async fn a_refused_delta_link_reads_in_full() {
    let env = start(Sandbox::new()).await;
    let options = ReadOptions::default();
    let first = read_full(&env.vendors, &contoso(), &options).await.unwrap();
    let mut broken = first.clone();
    broken.accounts.truncate(3);
    let link = first.delta_link.clone().unwrap();
    broken.delta_link = Some(link.replace("$deltatoken=sbx", "$deltatoken=garbage"));
    let again = read_delta(&env.vendors, &contoso(), &options, broken)
        .await
        .unwrap();
    assert!(again.full);
    assert_eq!(again.accounts, first.accounts);
}
