//! Applying a plan through a real `Engine` on SQLite with the stock runbooks: one run per
//! actionable item with inputs rendered from the person, the account and the changes;
//! blocked and report items start nothing; applying again starts nothing new (dedup keys);
//! a guarded plan is refused; a template that does not render is one item's error, not the
//! batch's; with approvers the whole plan is one `people-sync-batch` run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use tenure_engine::Engine;
use tenure_people::apply::{self, ApplyError, ApplyOptions};
use tenure_people::config::{RunbookChoice, Runbooks};
use tenure_people::{AccountRef, Action, Change, Item, Person, Situation, SyncPlan};
use tenure_runbook::{compile_with, Plan, Runbooks as Calls, SourceFile, Unresolved};

/// The stock runbooks of `runbooks/`, by id.
struct Stock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

impl Calls for Stock {
    fn resolve(&self, id: &str, _caller: &str) -> Result<Plan, Unresolved> {
        let path = repo().join("runbooks");
        for e in std::fs::read_dir(path).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            if text
                .lines()
                .any(|l| l.trim_end() == format!("runbook: {id}"))
            {
                let src = SourceFile::new(p.display().to_string(), text);
                return compile_with(&src, &tenure_steps::catalogue(), self)
                    .plan
                    .ok_or_else(|| Unresolved::Invalid(format!("{id} has errors")));
            }
        }
        Err(Unresolved::Unknown(vec![]))
    }
}

fn resolve(id: &str) -> Result<Arc<Plan>, String> {
    Stock
        .resolve(id, "test")
        .map(Arc::new)
        .map_err(|e| format!("{e:?}"))
}

async fn engine(dir: &Path) -> Engine {
    let url = format!("sqlite:{}", dir.join("t.db").display());
    Engine::open(
        &url,
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| Ok(json!({"id": id, "domain": "contoso.example", "name": "Contoso"}))),
    )
    .await
    .unwrap()
}

fn person(key: &str, attrs: &[(&str, &str)], extra: &[(&str, &str)]) -> Person {
    Person {
        key: key.into(),
        active: true,
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        extra: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        origin: format!("people.csv:{key}"),
        held: None,
    }
}

fn account(id: &str, upn: &str) -> Option<AccountRef> {
    Some(AccountRef {
        id: id.into(),
        user_principal_name: upn.into(),
    })
}

fn item(situation: Situation, action: Action, p: Option<Person>, a: Option<AccountRef>) -> Item {
    Item {
        situation,
        person: p,
        account: a,
        candidates: vec![],
        link: false,
        action,
        changes: vec![],
        blocked: None,
    }
}

fn plan() -> SyncPlan {
    let new = item(
        Situation::Absent,
        Action::Create,
        Some(person(
            "E1",
            &[
                ("givenName", "Jane"),
                ("surname", "Doe"),
                ("department", "Sales"),
                ("employeeId", "E1"),
            ],
            &[("personalEmail", "jane@personal.example")],
        )),
        None,
    );
    let mut changed = item(
        Situation::Confirmed,
        Action::Update,
        Some(person("E2", &[("jobTitle", "Controller")], &[])),
        account("id-2", "isaiah.langer@contoso.example"),
    );
    changed.changes = vec![Change {
        attribute: "jobTitle".into(),
        from: Some("Accountant".into()),
        to: Some("Controller".into()),
    }];
    let mut found = item(
        Situation::Found,
        Action::None,
        Some(person("E3", &[], &[])),
        account("id-3", "megan.bowen@contoso.example"),
    );
    found.link = true;
    let mut back = item(
        Situation::Confirmed,
        Action::Activate,
        Some(person("E4", &[("department", "Sales")], &[])),
        account("id-4", "adele.vance@contoso.example"),
    );
    back.changes = vec![Change {
        attribute: "department".into(),
        from: None,
        to: Some("Sales".into()),
    }];
    let leaver = item(
        Situation::SourceMissing,
        Action::Deactivate,
        None,
        account("id-5", "alex.wilber@contoso.example"),
    );
    let mut hybrid = item(
        Situation::Confirmed,
        Action::Deactivate,
        Some(person("E6", &[], &[])),
        account("id-6", "onprem@contoso.example"),
    );
    hybrid.blocked = Some("hybrid: on-premises synced".into());
    let ambiguous = item(
        Situation::Ambiguous,
        Action::Report,
        Some(person("E7", &[], &[])),
        None,
    );
    SyncPlan {
        source: "hr".into(),
        tenant: "contoso".into(),
        items: vec![new, changed, found, back, leaver, hybrid, ambiguous],
        people: 6,
        accounts: 20,
        guard: None,
        warnings: vec![],
    }
}

fn options() -> ApplyOptions {
    ApplyOptions {
        source: "cli".into(),
        by: Some("operator".into()),
        summary: "1 new, 1 update, 1 activate, 1 deactivate".into(),
        ..ApplyOptions::default()
    }
}

async fn inputs(engine: &Engine, run: &str) -> Value {
    engine.run(run).await.unwrap().context["inputs"].clone()
}

async fn count(engine: &Engine) -> usize {
    engine
        .runs(&tenure_engine::store::RunFilter::default())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn one_run_per_actionable_item_with_rendered_inputs_and_never_twice() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let plan = plan();
    let rb = Runbooks::default();
    let out = apply::apply(&engine, &plan, &rb, &resolve, &options())
        .await
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let started: Vec<(&str, &str, &str)> = out
        .runs
        .iter()
        .map(|r| (r.person.as_str(), r.action.as_str(), r.runbook.as_str()))
        .collect();
    assert_eq!(
        started,
        [
            ("E1", "create", "onboard-user"),
            ("E2", "update", "update-profile"),
            ("E4", "activate", "rehire"),
            ("account:id-5", "deactivate", "offboard-user"),
        ]
    );
    assert!(out.runs.iter().all(|r| !r.existing));

    let jane = inputs(&engine, &out.runs[0].run_id).await;
    assert_eq!(jane["first_name"], "Jane");
    assert_eq!(jane["last_name"], "Doe");
    assert_eq!(jane["employee_id"], "E1");
    assert_eq!(jane["personal_email"], "jane@personal.example");
    assert_eq!(
        jane["usage_location"], "AU",
        "absent: the runbook's default"
    );
    let update = inputs(&engine, &out.runs[1].run_id).await;
    assert_eq!(update["user"], "isaiah.langer@contoso.example");
    assert_eq!(update["job_title"], "Controller");
    assert!(
        update["department"].is_null(),
        "only what changes: {update}"
    );
    assert_eq!(update["clear"], json!([]), "nothing cleared: {update}");
    let back = inputs(&engine, &out.runs[2].run_id).await;
    assert_eq!(back["user"], "adele.vance@contoso.example");
    assert_eq!(back["department"], "Sales");
    let leaver = inputs(&engine, &out.runs[3].run_id).await;
    assert_eq!(leaver["user"], "alex.wilber@contoso.example");

    // The found person is linked by correlation, the new one pending on its run.
    let links: Vec<(&str, Option<&str>, &str)> = out
        .links
        .iter()
        .map(|l| {
            (
                l.person_key.as_str(),
                l.account_id.as_deref(),
                l.via.as_str(),
            )
        })
        .collect();
    assert_eq!(
        links,
        [("E3", Some("id-3"), "correlation"), ("E1", None, "run")]
    );
    assert_eq!(
        out.links[1].run_id.as_deref(),
        Some(out.runs[0].run_id.as_str())
    );

    // The same plan again: the same runs, nothing new.
    let again = apply::apply(&engine, &plan, &rb, &resolve, &options())
        .await
        .unwrap();
    assert!(again.runs.iter().all(|r| r.existing));
    let ids = |o: &apply::Outcome| o.runs.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again), ids(&out));
    assert_eq!(count(&engine).await, 4);

    // Another change of the same person is another run.
    let mut plan2 = plan.clone();
    plan2.items[1].changes[0].to = Some("Senior Controller".into());
    assert_ne!(
        apply::dedup_key("hr", &plan.items[1]),
        apply::dedup_key("hr", &plan2.items[1])
    );
}

#[tokio::test]
async fn a_guarded_plan_is_refused_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let mut plan = plan();
    plan.guard = Some("the source lists no person".into());
    let rb = Runbooks::default();
    let err = apply::apply(&engine, &plan, &rb, &resolve, &options())
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::Guarded(_)), "{err}");
    assert!(err.to_string().contains("no person"), "{err}");
    assert_eq!(count(&engine).await, 0);
}

#[tokio::test]
async fn a_template_that_does_not_render_is_that_items_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let mut rb = Runbooks {
        update: RunbookChoice {
            runbook: "update-profile".into(),
            inputs: [
                ("tenant".to_string(), "{{tenant}}".to_string()),
                (
                    "user".to_string(),
                    "{{account.user_principal_name}}".to_string(),
                ),
                (
                    "job_title".to_string(),
                    "{{#if person.key}}unclosed".to_string(),
                ),
            ]
            .into_iter()
            .collect(),
        },
        ..Runbooks::default()
    };
    let out = apply::apply(&engine, &plan(), &rb, &resolve, &options())
        .await
        .unwrap();
    assert_eq!(out.runs.len(), 3, "{out:?}");
    assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
    assert!(
        out.errors[0].starts_with("E2 (update): update-profile: input `job_title`"),
        "{}",
        out.errors[0]
    );
    // A runbook that does not exist stops the apply with its name.
    rb.update.runbook = "no-such-runbook".into();
    let err = apply::apply(&engine, &plan(), &rb, &resolve, &options())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no-such-runbook"), "{err}");
}

#[tokio::test]
async fn with_approvers_the_plan_is_one_batch_run() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let mut opts = options();
    opts.approve_by = vec!["it-lead@msp.example".into()];
    let rb = Runbooks::default();
    let out = apply::apply(&engine, &plan(), &rb, &resolve, &opts)
        .await
        .unwrap();
    assert_eq!(out.runs.len(), 1, "{out:?}");
    assert_eq!(out.runs[0].runbook, "people-sync-batch");
    let i = inputs(&engine, &out.runs[0].run_id).await;
    assert_eq!(i["approvers"], json!(["it-lead@msp.example"]));
    assert_eq!(i["summary"], "1 new, 1 update, 1 activate, 1 deactivate");
    assert_eq!(i["creates"][0]["first_name"], "Jane");
    assert!(i["creates"][0]["manager"].is_null());
    assert_eq!(i["updates"][0]["job_title"], "Controller");
    assert_eq!(i["activates"][0]["user"], "adele.vance@contoso.example");
    assert_eq!(
        i["deactivates"],
        json!([{"user": "alex.wilber@contoso.example", "last_day": null}])
    );
    // The correlation link, and Jane's pending on the batch run (no second create while it
    // goes on; her account is found by correlation once it has ended).
    assert_eq!(out.links.len(), 2, "{:?}", out.links);
    assert_eq!(out.links[1].account_id, None);
    assert_eq!(
        out.links[1].run_id.as_deref(),
        Some(out.runs[0].run_id.as_str())
    );
    let again = apply::apply(&engine, &plan(), &rb, &resolve, &opts)
        .await
        .unwrap();
    assert!(again.runs[0].existing);
    assert_eq!(again.runs[0].run_id, out.runs[0].run_id);
    assert_eq!(count(&engine).await, 1);
}

#[test]
fn a_finished_create_names_its_account() {
    let outputs = vec![
        ("approve".to_string(), 0, json!({"decision": "approved"})),
        (
            "create_user".to_string(),
            0,
            json!({"id": "u-1", "user_principal_name": "jane.doe@contoso.example"}),
        ),
    ];
    assert_eq!(
        apply::created_account(&outputs),
        Some(("u-1".into(), "jane.doe@contoso.example".into()))
    );
    assert_eq!(apply::created_account(&outputs[..1]), None);
}

/// A pending link stays pending while its run goes on, and is dropped once the run is
/// cancelled (the person is absent again; the next sync may create them anew).
#[tokio::test]
async fn a_pending_link_waits_for_its_run_and_goes_with_a_cancelled_one() {
    use tenure_engine::people::PersonLink;
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let out = apply::apply(&engine, &plan(), &Runbooks::default(), &resolve, &options())
        .await
        .unwrap();
    let create = out.runs[0].run_id.clone();
    let pending = &out.links[1];
    engine
        .link_person(PersonLink {
            tenant: "contoso".into(),
            source: "hr".into(),
            person_key: pending.person_key.clone(),
            account_id: None,
            user_principal_name: None,
            via: pending.via.clone(),
            run_id: pending.run_id.clone(),
            created_ms: 1,
            updated_ms: 1,
        })
        .await
        .unwrap();
    let links = tenure_people::sync::settle_pending(&engine, "contoso", "hr")
        .await
        .unwrap();
    assert_eq!(links.len(), 1, "still pending: {links:?}");
    assert!(links[0].account_id.is_none());
    engine.cancel(&create, "tester").await.unwrap();
    let links = tenure_people::sync::settle_pending(&engine, "contoso", "hr")
        .await
        .unwrap();
    assert!(links.is_empty(), "{links:?}");
    assert!(engine
        .person_links("contoso", Some("hr"))
        .await
        .unwrap()
        .is_empty());
}

/// An update whose source emptied attributes: `update-profile` is asked to clear them (its
/// names, the manager included), alone or in a batch; the attributes set are passed as before.
#[tokio::test]
async fn cleared_attributes_are_passed_to_update_profile() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    let mut changed = item(
        Situation::Confirmed,
        Action::Update,
        Some(person("E2", &[("department", "Finance")], &[])),
        account("id-2", "isaiah.langer@contoso.example"),
    );
    let change = |a: &str, from: &str, to: Option<&str>| Change {
        attribute: a.into(),
        from: Some(from.into()),
        to: to.map(str::to_string),
    };
    changed.changes = vec![
        change("department", "Sales", Some("Finance")),
        change("jobTitle", "Engineer", None),
        change("manager", "megan.bowen@contoso.example", None),
    ];
    let mut p = plan();
    p.items = vec![changed];
    let rb = Runbooks::default();
    let out = apply::apply(&engine, &p, &rb, &resolve, &options())
        .await
        .unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let update = inputs(&engine, &out.runs[0].run_id).await;
    assert_eq!(update["department"], "Finance");
    assert_eq!(update["clear"], json!(["job_title", "manager"]));
    assert!(
        update["job_title"].is_null() && update["manager"].is_null(),
        "{update}"
    );

    let mut opts = options();
    opts.approve_by = vec!["it-lead@msp.example".into()];
    let out = apply::apply(&engine, &p, &rb, &resolve, &opts)
        .await
        .unwrap();
    let batch = inputs(&engine, &out.runs[0].run_id).await;
    assert_eq!(
        batch["updates"][0]["clear"],
        json!(["job_title", "manager"])
    );
    assert_eq!(batch["updates"][0]["department"], "Finance");
}
