//! People sync records through the `Engine` API, on SQLite and PostgreSQL: person links
//! (upsert, an account held by one person per tenant, also under concurrent calls, unlink,
//! a pending link resolved, a rename keeping the link by id), sync records newest first with a
//! limit, and a read cursor of a few megabytes round trip.

use std::sync::Arc;

use serde_json::{json, Value};
use tenure_engine::api::Error;
use tenure_engine::people::{PersonLink, SyncRecord};
use tenure_engine::Engine;

use crate::db::Db;
use crate::on_both_databases;

async fn engine(db: Db) -> (Engine, crate::db::Guard) {
    let (store, guard) = db.open().await;
    let engine = Engine::new(
        store,
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| Ok(json!({"id": id}))),
    );
    (engine, guard)
}

fn link(source: &str, key: &str, account: Option<&str>, upn: Option<&str>) -> PersonLink {
    PersonLink {
        tenant: "contoso".into(),
        source: source.into(),
        person_key: key.into(),
        account_id: account.map(str::to_string),
        user_principal_name: upn.map(str::to_string),
        via: "correlation".into(),
        run_id: None,
        created_ms: 0,
        updated_ms: 0,
    }
}

async fn links_upsert_conflict_and_unlink(db: Db) {
    let (engine, _guard) = engine(db).await;
    let ann = link("hr", "E1", Some("id-ann"), Some("ann@contoso.example"));
    engine.link_person(ann.clone()).await.unwrap();
    // The same person again: an upsert, still one link, created time kept.
    let first = engine.person_links("contoso", Some("hr")).await.unwrap();
    assert_eq!(first.len(), 1);
    let mut again = ann.clone();
    again.via = "manual".into();
    engine.link_person(again).await.unwrap();
    let now = engine.person_links("contoso", None).await.unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].via, "manual");
    assert_eq!(now[0].created_ms, first[0].created_ms);
    assert!(now[0].updated_ms >= first[0].updated_ms);

    // Another person (even of another source) cannot take Ann's account; the message says
    // who holds it, and nothing is written.
    let err = engine
        .link_person(link("payroll", "P9", Some("id-ann"), None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("`E1`") && text.contains("`hr`"), "{text}");
    assert!(text.contains("ann@contoso.example"), "{text}");
    assert_eq!(engine.person_links("contoso", None).await.unwrap().len(), 1);
    // The same account in another tenant is another account.
    let mut elsewhere = link("hr", "E1", Some("id-ann"), None);
    elsewhere.tenant = "fabrikam".into();
    engine.link_person(elsewhere).await.unwrap();

    // Bad input is refused plainly.
    let mut bad = link("hr", " ", Some("id-x"), None);
    assert!(matches!(
        engine.link_person(bad.clone()).await,
        Err(Error::BadInput(_))
    ));
    bad.person_key = "E5".into();
    bad.via = "magic".into();
    let err = engine.link_person(bad).await.unwrap_err();
    assert!(err.to_string().contains("`magic`"), "{err}");

    // Links of an account, unlinking by person and by account.
    engine
        .link_person(link("hr", "E2", Some("id-bob"), None))
        .await
        .unwrap();
    let of_bob = engine.links_of_account("contoso", "id-bob").await.unwrap();
    assert_eq!(of_bob.len(), 1);
    assert_eq!(of_bob[0].person_key, "E2");
    assert!(engine.unlink_person("contoso", "hr", "E2").await.unwrap());
    assert!(!engine.unlink_person("contoso", "hr", "E2").await.unwrap());
    assert_eq!(engine.unlink_account("contoso", "id-ann").await.unwrap(), 1);
    assert_eq!(engine.unlink_account("contoso", "id-ann").await.unwrap(), 0);
    assert!(engine
        .person_links("contoso", None)
        .await
        .unwrap()
        .is_empty());
    // Once unlinked, the account is free for another person.
    engine
        .link_person(link("payroll", "P9", Some("id-ann"), None))
        .await
        .unwrap();
    assert_eq!(
        engine.person_links("fabrikam", None).await.unwrap().len(),
        1
    );
}

async fn concurrent_links_of_one_account(db: Db) {
    let (engine, _guard) = engine(db).await;
    let calls = (0..8).map(|i| {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .link_person(link("hr", &format!("E{i}"), Some("id-shared"), None))
                .await
        })
    });
    let mut won = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(()) => won += 1,
            Err(Error::Conflict(m)) => assert!(m.contains("already linked"), "{m}"),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(won, 1);
    let held = engine
        .links_of_account("contoso", "id-shared")
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
}

async fn pending_link_resolved_and_rename(db: Db) {
    let (engine, _guard) = engine(db).await;
    // A run is creating the account: the link waits for its id.
    let mut pending = link("hr", "E7", None, Some("new.starter@contoso.example"));
    pending.via = "run".into();
    pending.run_id = Some("run-1".into());
    engine.link_person(pending.clone()).await.unwrap();
    // Pending links hold no account: two of them never conflict.
    let mut other = pending.clone();
    other.person_key = "E8".into();
    engine.link_person(other).await.unwrap();
    let links = engine.person_links("contoso", Some("hr")).await.unwrap();
    assert_eq!(links.len(), 2);
    assert!(links.iter().all(|l| l.account_id.is_none()));

    // The run finished: the link gets the account's id, run kept.
    let mut resolved = pending.clone();
    resolved.account_id = Some("id-new".into());
    engine.link_person(resolved).await.unwrap();
    let got = engine.links_of_account("contoso", "id-new").await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].run_id.as_deref(), Some("run-1"));
    assert_eq!(got[0].via, "run");

    // The account is renamed: the next sync refreshes the sign-in name; the link is the id's.
    let mut renamed = got[0].clone();
    renamed.user_principal_name = Some("n.starter@contoso.example".into());
    engine.link_person(renamed).await.unwrap();
    let got = engine.links_of_account("contoso", "id-new").await.unwrap();
    assert_eq!(
        got[0].user_principal_name.as_deref(),
        Some("n.starter@contoso.example")
    );
    assert_eq!(got[0].person_key, "E7");
}

fn record(id: &str, source: &str, started_ms: i64) -> SyncRecord {
    SyncRecord {
        id: id.into(),
        source: source.into(),
        tenant: "contoso".into(),
        started_ms,
        finished_ms: None,
        mode: "plan".into(),
        status: "planned".into(),
        summary: "1 new, 0 update, 0 activate, 0 deactivate".into(),
        plan: json!({"items": [{"situation": "absent", "action": "create"}]}),
        outcome: json!({}),
        requests: 4,
    }
}

async fn syncs_newest_first(db: Db) {
    let (engine, _guard) = engine(db).await;
    for (i, source) in ["hr", "payroll", "hr", "hr"].iter().enumerate() {
        let i = i as i64;
        engine
            .save_sync(&record(&format!("s{i}"), source, 1_000 + i))
            .await
            .unwrap();
    }
    let ids = |v: Vec<SyncRecord>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(engine.syncs(None, 10).await.unwrap()),
        ["s3", "s2", "s1", "s0"]
    );
    assert_eq!(
        ids(engine.syncs(Some("hr"), 2).await.unwrap()),
        ["s3", "s2"]
    );
    // Saving again by id replaces the record (an applied plan's outcome).
    let mut applied = record("s2", "hr", 1_002);
    applied.status = "applied".into();
    applied.finished_ms = Some(2_000);
    applied.outcome = json!({"runs": [{"item": 0, "runbook": "onboard-user", "run_id": "r1"}]});
    engine.save_sync(&applied).await.unwrap();
    let got = engine.sync_record("s2").await.unwrap().unwrap();
    assert_eq!(got, applied);
    assert_eq!(engine.syncs(None, 100).await.unwrap().len(), 4);
    // The list without plans and outcomes: the same records, in the same order.
    let summaries = engine.sync_summaries(Some("hr"), 10).await.unwrap();
    assert_eq!(ids(summaries.clone()), ["s3", "s2", "s0"]);
    assert_eq!(summaries[1].status, "applied");
    assert_eq!(summaries[1].summary, applied.summary);
    assert!(summaries
        .iter()
        .all(|r| r.plan.is_null() && r.outcome.is_null()));
    assert!(engine.sync_record("nope").await.unwrap().is_none());
}

async fn cursor_round_trip(db: Db) {
    let (engine, _guard) = engine(db).await;
    assert!(engine
        .people_cursor("hr", "contoso")
        .await
        .unwrap()
        .is_none());
    // A snapshot of ~10,000 accounts: about 3 MB of JSON.
    let accounts: Vec<Value> = (0..10_000)
        .map(|i| {
            json!({"id": format!("00000000-0000-0000-0000-{i:012}"),
                   "user_principal_name": format!("person.{i}@contoso.example"),
                   "enabled": i % 7 != 0, "hybrid": false, "admin": false, "protected": false,
                   "attributes": {"displayName": format!("Person {i} — Ünïcode"), "department": "Sales",
                                  "jobTitle": "Account executive", "employeeId": format!("E{i:06}"),
                                  "manager": "megan.bowen@contoso.example", "usageLocation": "AU"}})
        })
        .collect();
    let cursor = json!({"accounts": accounts, "delta_link": "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x", "full": true});
    let size = cursor.to_string().len();
    assert!(size > 2_500_000, "{size}");
    engine
        .set_people_cursor("hr", "contoso", &cursor)
        .await
        .unwrap();
    assert_eq!(
        engine.people_cursor("hr", "contoso").await.unwrap(),
        Some(cursor)
    );
    // Replaced, and kept per (source, tenant).
    engine
        .set_people_cursor("hr", "contoso", &json!({"accounts": []}))
        .await
        .unwrap();
    assert_eq!(
        engine.people_cursor("hr", "contoso").await.unwrap(),
        Some(json!({"accounts": []}))
    );
    assert!(engine
        .people_cursor("hr", "fabrikam")
        .await
        .unwrap()
        .is_none());
}

on_both_databases!(
    links_upsert_conflict_and_unlink,
    concurrent_links_of_one_account,
    pending_link_resolved_and_rename,
    syncs_newest_first,
    cursor_round_trip,
    hostile_keys_and_cursors,
);

/// Keys a hostile caller or source sends: a NUL (PostgreSQL refuses it in TEXT) and a key
/// longer than an index entry may be (PostgreSQL's B-tree refuses rows over ~2.7 KB) are clean
/// `BadInput`s on both databases, never a database error; a pending link unlinks; a cursor
/// holding a NUL inside a string and ~20 MB of JSON round trips.
async fn hostile_keys_and_cursors(db: Db) {
    let (engine, _guard) = engine(db).await;
    let bad = |r: Result<(), Error>| match r {
        Err(Error::BadInput(m)) => m,
        other => panic!("{other:?}"),
    };
    let m = bad(engine
        .link_person(link("hr", "E\u{0}1", Some("id-1"), None))
        .await);
    assert!(m.contains("NUL"), "{m}");
    let m = bad(engine
        .link_person(link("hr", "E1", Some("id-\u{0}"), Some("a\u{0}@x")))
        .await);
    assert!(m.contains("NUL"), "{m}");
    let long = "K".repeat(100_000);
    let m = bad(engine
        .link_person(link("hr", &long, Some("id-1"), None))
        .await);
    assert!(m.contains("long"), "{m}");
    for r in [
        engine
            .unlink_person("contoso", "hr", "E\u{0}1")
            .await
            .map(|_| ()),
        engine
            .unlink_account("contoso", "id\u{0}")
            .await
            .map(|_| ()),
        engine
            .person_links("contoso", Some("h\u{0}r"))
            .await
            .map(|_| ()),
        engine.links_of_account("contoso", &long).await.map(|_| ()),
        engine.people_cursor("h\u{0}r", "contoso").await.map(|_| ()),
        engine.sync_record("s\u{0}").await.map(|_| ()),
        engine.syncs(Some("h\u{0}r"), 10).await.map(|_| ()),
        engine.set_people_cursor("hr", "c\u{0}", &json!({})).await,
    ] {
        bad(r);
    }
    let rec = SyncRecord {
        id: "s1".into(),
        source: "hr".into(),
        tenant: "contoso".into(),
        started_ms: 1,
        finished_ms: None,
        mode: "plan".into(),
        status: "planned".into(),
        summary: "1 new\u{0}".into(),
        plan: json!({"note": "a\u{0}b"}),
        outcome: json!({}),
        requests: 0,
    };
    bad(engine.save_sync(&rec).await);
    // NUL inside JSON values is escaped text: kept.
    let rec = SyncRecord {
        summary: "1 new".into(),
        ..rec
    };
    engine.save_sync(&rec).await.unwrap();
    assert_eq!(
        engine.sync_record("s1").await.unwrap().unwrap().plan,
        rec.plan
    );

    // A key of a reasonable length, with quotes, Unicode and spaces, is fine.
    let odd = "O'Brien \"Ünïcode\" — 社員 42";
    engine
        .link_person(link("hr", odd, None, Some("new@contoso.example")))
        .await
        .unwrap();
    assert!(engine.unlink_person("contoso", "hr", odd).await.unwrap());
    assert!(!engine.unlink_person("contoso", "hr", odd).await.unwrap());

    let big = json!({"accounts": (0..200_000).map(|i| json!({"id": format!("{i:036}"),
        "user_principal_name": format!("p{i}@contoso.example"), "note": "x\u{0}y"}))
        .collect::<Vec<_>>()});
    assert!(big.to_string().len() > 18_000_000);
    engine
        .set_people_cursor("hr", "contoso", &big)
        .await
        .unwrap();
    assert_eq!(
        engine.people_cursor("hr", "contoso").await.unwrap(),
        Some(big)
    );
}
