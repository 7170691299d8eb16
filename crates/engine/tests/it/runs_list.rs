//! The runs list's light rows (`Engine::run_rows`): the labels worked out when a run is
//! created (person, tenant, ticket, trigger), each filter (status, runbook, tenant, free text
//! in any case), keyset paging without duplicates or gaps, and no secret anywhere in a row.
//! On SQLite and PostgreSQL.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tenure_engine::store::{RunFilter, RunRow};
use tenure_engine::{Engine, StartRun, Trigger};
use tenure_runbook::{compile, Plan, SourceFile};

use crate::db::Db;

const SECRET: &str = "Hunter2-Label-Secret";

const OFFBOARD: &str = r#"runbook: offboard
version: 2
tenant: "{{inputs.tenant}}"
inputs:
  upn: { type: string, required: true }
  tenant: { type: string, required: true }
  ticket_id: { type: string }
  password: { type: secret }
steps:
  block: { uses: entra.disable_sign_in, with: { user: "{{inputs.upn}}" } }
  hold: { needs: [block], uses: wait, with: { for: 1h } }
"#;

const PLAIN: &str = r#"runbook: plain
version: 1
tenant: contoso
steps:
  hold: { uses: wait, with: { for: 1h } }
"#;

fn plan(text: &str) -> Arc<Plan> {
    let src = SourceFile::new("t.yaml", text.to_string());
    let out = compile(&src, &tenure_steps::contract_catalogue());
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    Arc::new(out.plan.expect("compiles"))
}

async fn start(engine: &Engine, plan: &Arc<Plan>, inputs: Value) -> String {
    let inputs: Map<String, Value> = inputs.as_object().cloned().unwrap_or_default();
    engine
        .start_run(StartRun {
            plan: plan.clone(),
            inputs,
            trigger: Trigger::new("api", Some("ops-bot".into())),
            dedup_key: None,
        })
        .await
        .unwrap()
        .id
}

async fn ids(engine: &Engine, filter: RunFilter) -> Vec<String> {
    let rows = engine.run_rows(&filter).await.unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

async fn run_rows_show_labels_filter_and_page(db: Db) {
    let (store, _dir) = db.open().await;
    let engine = Engine::new(
        store.clone(),
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| Ok(json!({"id": id, "name": id}))),
    );
    let offboard = plan(OFFBOARD);
    let plain = plan(PLAIN);
    let mut started = Vec::new();
    for i in 0..7 {
        let tenant = if i % 2 == 0 { "contoso" } else { "Fabrikam" };
        let id = start(
            &engine,
            &offboard,
            json!({"upn": format!("User{i}@{tenant}.example"), "tenant": tenant,
                   "ticket_id": format!("T-{}", 1000 + i), "password": SECRET}),
        )
        .await;
        started.push(id);
    }
    let plain_id = start(&engine, &plain, json!({})).await;
    started.push(plain_id.clone());
    engine.cancel(&started[1], "ops").await.unwrap();
    started.reverse(); // newest first

    let all = engine.run_rows(&RunFilter::default()).await.unwrap();
    let newest_first: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
    // Newest first; runs created in the same millisecond are ordered by id.
    let mut sorted = started.clone();
    sorted.sort();
    let mut listed = newest_first.clone();
    listed.sort();
    assert_eq!(listed, sorted);
    assert!(all
        .windows(2)
        .all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id)));
    let first: &RunRow = all.iter().find(|r| r.id == started[7]).unwrap();
    assert_eq!(first.runbook, "offboard");
    assert_eq!(first.version, 2);
    assert_eq!(
        first.labels.person.as_deref(),
        Some("User0@contoso.example")
    );
    assert_eq!(first.labels.tenant.as_deref(), Some("contoso"));
    assert_eq!(first.labels.ticket.as_deref(), Some("T-1000"));
    assert_eq!(first.labels.trigger_source.as_deref(), Some("api"));
    assert_eq!(first.labels.trigger_by.as_deref(), Some("ops-bot"));
    let p = all.iter().find(|r| r.id == plain_id).unwrap();
    assert_eq!(
        (p.labels.person.as_deref(), p.labels.ticket.as_deref()),
        (None, None)
    );
    assert_eq!(p.labels.tenant.as_deref(), Some("contoso"));
    let text = format!("{all:?}");
    assert!(
        !text.contains(SECRET) && !text.contains("enc:v1:"),
        "{text}"
    );

    let filter = |f: RunFilter| ids(&engine, f);
    // Status.
    let cancelled = filter(RunFilter {
        status: Some("cancelled".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(cancelled, vec![started[6].clone()]);
    // Runbook.
    let plain_only = filter(RunFilter {
        runbook: Some("plain".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(plain_only, vec![plain_id.clone()]);
    // Tenant, in any case.
    let fab = filter(RunFilter {
        tenant: Some("fabrikam".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(fab.len(), 3);
    let con = filter(RunFilter {
        tenant: Some("CONTOSO".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(con.len(), 5, "four offboards and the plain run");
    // Free text, in any case: person, ticket, id, runbook.
    for (q, n) in [
        ("user3@fabrikam", 1),
        ("USER", 7),
        ("t-1004", 1),
        ("PLAIN", 1),
        ("offb", 7),
    ] {
        let found = filter(RunFilter {
            text: Some(q.into()),
            ..Default::default()
        })
        .await;
        assert_eq!(found.len(), n, "q={q}: {found:?}");
    }
    let by_id = filter(RunFilter {
        text: Some(started[3][..8].to_uppercase()),
        ..Default::default()
    })
    .await;
    assert_eq!(by_id, vec![started[3].clone()]);
    // LIKE's wildcards are text like any other; a secret finds nothing.
    for q in ["%", "_", SECRET] {
        let found = filter(RunFilter {
            text: Some(q.into()),
            ..Default::default()
        })
        .await;
        assert!(found.is_empty(), "q={q}: {found:?}");
    }
    // Filters combine.
    let both = filter(RunFilter {
        tenant: Some("contoso".into()),
        text: Some("t-100".into()),
        status: Some("running".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(both.len(), 4);

    // Keyset pages of 3: every run once, in order.
    let mut paged = Vec::new();
    let mut f = RunFilter {
        limit: 3,
        ..Default::default()
    };
    loop {
        let page = engine.run_rows(&f).await.unwrap();
        paged.extend(page.iter().map(|r| r.id.clone()));
        match page.last() {
            Some(last) if page.len() == 3 => f.before = Some((last.created_at, last.id.clone())),
            _ => break,
        }
    }
    assert_eq!(paged, newest_first);
    // The full records' list agrees with the rows.
    let records = engine
        .runs(&RunFilter {
            text: Some("user5".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].id, started[2]);
}

crate::on_both_databases!(run_rows_show_labels_filter_and_page);
