//! How long a sync of a 10,000-person source into a 10,000-user tenant takes to read, map and
//! plan, and how many Graph requests it makes: a full read, then a delta read after 50
//! changes in the tenant. The tenant is the sandbox (in process, seeded directly with 10,000
//! extra users of contoso); the source is a CSV of 10,000 people: 9,700 unchanged, 100 new,
//! 100 whose department changed and 100 who left (`terminated`).
//!
//! `cargo bench -p tenure-people --bench plan` (or `cargo test -p tenure-people --bench plan`
//! for a quick debug-build run).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tenure_kinds::Vendors;
use tenure_people::mapping::Mapping;
use tenure_people::plan::{reconcile, LinkRef};
use tenure_people::policy::Policy;
use tenure_people::source::parse_csv;
use tenure_people::tenant::{read_delta, read_full, ReadOptions, Snapshot};
use tenure_people::{Action, SyncPlan};
use tenure_sandbox::testing::graph_token;
use tenure_sandbox::Sandbox;

const USERS: usize = 10_000;
const CHANGED_IN_TENANT: usize = 50;

fn user_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// The default seed with 10,000 more contoso users, each managed by Megan Bowen.
fn seed() -> String {
    let mut seed: Value = serde_json::from_str(tenure_sandbox::DEFAULT_SEED).unwrap();
    let users = seed["tenants"][0]["users"].as_array_mut().unwrap();
    let megan = users[0]["id"].clone();
    for i in 0..USERS {
        users.push(json!({
            "id": user_id(i), "userPrincipalName": format!("person.{i}@contoso.example"),
            "displayName": format!("Person N{i:05}"), "givenName": "Person", "surname": format!("N{i:05}"),
            "department": "Sales", "jobTitle": "Specialist", "employeeId": format!("E{i:05}"),
            "usageLocation": "AU", "accountEnabled": true, "managerId": megan,
        }));
    }
    seed.to_string()
}

/// 9,700 people as the tenant has them, 100 new, 100 with another department, 100 who left.
fn source() -> Vec<u8> {
    let mut csv =
        String::from("employee_id,status,first_name,last_name,department,job_title,upn,manager\n");
    for i in 0..USERS {
        let (status, department) = match i {
            i if i < 100 => ("terminated", "Sales"),
            i if i < 200 => ("active", "Finance"),
            _ => ("active", "Sales"),
        };
        // The last 100 of the tenant's users are not in the source; 100 new people are.
        let n = if i >= USERS - 100 { i + 100 } else { i };
        csv.push_str(&format!(
            "E{n:05},{status},Person,N{n:05},{department},Specialist,person.{n}@contoso.example,megan.bowen@contoso.example\n"
        ));
    }
    csv.into_bytes()
}

fn mapping() -> Mapping {
    let map: BTreeMap<String, String> = [
        ("key", "{{employee_id}}"),
        ("active", "{{status}}"),
        ("employeeId", "{{employee_id}}"),
        ("givenName", "{{first_name}}"),
        ("surname", "{{last_name}}"),
        ("displayName", "{{first_name}} {{last_name}}"),
        ("department", "{{department}}"),
        ("jobTitle", "{{job_title}}"),
        ("userPrincipalName", "{{upn}}"),
        ("manager", "{{manager}}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Mapping::new(&map).unwrap()
}

fn count(plan: &SyncPlan, action: Action) -> usize {
    plan.items.iter().filter(|i| i.action == action).count()
}

struct Row {
    what: &'static str,
    read: Duration,
    requests: u64,
    map: Duration,
    plan: Duration,
    summary: String,
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

async fn sync(
    what: &'static str,
    read: impl std::future::Future<Output = Snapshot>,
) -> (Row, Snapshot) {
    let started = Instant::now();
    let snap = read.await;
    let read_time = started.elapsed();
    let started = Instant::now();
    let records = parse_csv("people.csv", &source(), b',').unwrap();
    let mapped = mapping().map_records(&records).unwrap();
    let map_time = started.elapsed();
    let started = Instant::now();
    let links: Vec<LinkRef> = Vec::new();
    let plan = reconcile(
        "hr",
        "contoso",
        &mapped.people,
        &snap.accounts,
        &links,
        &Policy::default(),
    );
    let plan_time = started.elapsed();
    let summary = format!(
        "{} accounts; {} create, {} update, {} deactivate, {} unchanged{}",
        snap.accounts.len(),
        count(&plan, Action::Create),
        count(&plan, Action::Update),
        count(&plan, Action::Deactivate),
        count(&plan, Action::None),
        plan.guard
            .as_deref()
            .map(|g| format!("; guard: {g}"))
            .unwrap_or_default()
    );
    let row = Row {
        what,
        read: read_time,
        requests: snap.requests,
        map: map_time,
        plan: plan_time,
        summary,
    };
    (row, snap)
}

#[tokio::main]
async fn main() {
    let sandbox = Sandbox::from_seed(&seed()).unwrap();
    let (addr, _server) = sandbox.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{addr}");
    let vendors = Vendors::sandbox(&url);
    let tenant = json!({"id": "contoso", "domain": "contoso.example"});
    let options = ReadOptions {
        protected_groups: vec!["Finance".into()],
        skip_roles: false,
    };

    let (full, snapshot) = sync("full read", async {
        read_full(&vendors, &tenant, &options).await.unwrap()
    })
    .await;

    // 50 changes in the tenant (job titles edited by hand), through Graph like an admin's.
    let http = reqwest::Client::new();
    let token = graph_token(&url, "contoso.example").await.unwrap();
    for i in 0..CHANGED_IN_TENANT {
        let r = http
            .patch(format!(
                "{url}/graph.microsoft.com/v1.0/users/{}",
                user_id(1_000 + i)
            ))
            .bearer_auth(&token)
            .json(&json!({"jobTitle": "Team lead"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    let (delta, _) = sync("delta after 50 changes", async {
        read_delta(&vendors, &tenant, &options, snapshot)
            .await
            .unwrap()
    })
    .await;

    println!("people sync: 10,000 people into a tenant of 10,028 users (sandbox, in process)");
    println!(
        "{:<24} {:>10} {:>14} {:>10} {:>10}  plan",
        "", "read", "Graph requests", "map", "reconcile"
    );
    for r in [full, delta] {
        println!(
            "{:<24} {:>10} {:>14} {:>10} {:>10}  {}",
            r.what,
            ms(r.read),
            r.requests,
            ms(r.map),
            ms(r.plan),
            r.summary
        );
    }
}
