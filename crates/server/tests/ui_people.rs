//! The people pages of the web UI (`/ui/people`), through the whole router in process, signed
//! in as a viewer: sign-in required; the recent syncs with their source, tenant, mode, status,
//! summary and Graph requests; a sync's page with its stored plan as the four lists, what needs
//! a person, what is blocked, and the runs it started linked to their pages; a guarded sync's
//! reason; a tenant's links; an unknown sync is a 404 page; values are escaped.

mod support;
mod support_ui;

use axum::http::StatusCode;
use serde_json::json;
use support_ui::ui;
use tenure_engine::people::{PersonLink, SyncRecord};

fn record(
    id: &str,
    status: &str,
    plan: serde_json::Value,
    outcome: serde_json::Value,
) -> SyncRecord {
    SyncRecord {
        id: id.into(),
        source: "hr".into(),
        tenant: "contoso".into(),
        started_ms: 1_764_000_000_000,
        finished_ms: Some(1_764_000_002_000),
        mode: "apply".into(),
        status: status.into(),
        summary: "1 new, 1 update, 0 activate, 0 deactivate; 1 ambiguous, 1 blocked".into(),
        plan,
        outcome,
        requests: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_plans_runs_and_links_are_shown_to_a_viewer() {
    let ui = ui(&[]).await;
    let (status, location, _) = ui.request("/ui/people", false).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/ui/sign-in"), "{location}");

    let (status, body) = ui.get("/ui/people").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"no-syncs\""), "{body}");
    assert!(
        body.contains("href=\"/ui/people\" aria-current=\"page\""),
        "the nav entry: {body}"
    );

    let plan = json!({
        "source": "hr", "tenant": "contoso", "people": 4, "accounts": 27, "guard": null, "warnings": [],
        "items": [
            {"situation": "absent", "action": "create", "link": false, "blocked": null, "changes": [], "candidates": [],
             "person": {"key": "E102", "attributes": {"displayName": "Jane <i>Doe</i>"}}, "account": null},
            {"situation": "found", "action": "update", "link": true, "blocked": null, "candidates": [],
             "changes": [{"attribute": "department", "from": "Engineering", "to": "Finance"}],
             "person": {"key": "E101", "attributes": {}}, "account": {"id": "u1", "user_principal_name": "isaiah.langer@contoso.example"}},
            {"situation": "ambiguous", "action": "report", "link": false, "blocked": null, "changes": [],
             "candidates": [{"id": "a", "user_principal_name": "lynne.robbins@contoso.example"}, {"id": "b", "user_principal_name": "nestor.wilke@contoso.example"}],
             "person": {"key": "E106", "attributes": {}}, "account": null},
            {"situation": "found", "action": "update", "link": true, "blocked": "hybrid: on-premises synced, change it in Active Directory", "changes": [], "candidates": [],
             "person": {"key": "E105", "attributes": {}}, "account": {"id": "p", "user_principal_name": "pradeep.gupta@contoso.example"}}
        ]
    });
    let outcome = json!({"runs": [
        {"item": 0, "person": "E102", "action": "create", "runbook": "onboard-user", "run_id": "run-1", "dedup_key": "k", "existing": false}
    ], "links": [], "errors": []});
    ui.engine
        .save_sync(&record("sync-1", "applied", plan, outcome))
        .await
        .unwrap();
    ui.engine
        .save_sync(&record(
            "sync-2",
            "guarded",
            json!({"source": "hr", "tenant": "contoso", "people": 0, "accounts": 27, "items": [], "warnings": [],
                   "guard": "the source lists no person while 6 people are linked (a broken export?)"}),
            json!({}),
        ))
        .await
        .unwrap();
    ui.engine
        .link_person(PersonLink {
            tenant: "contoso".into(),
            source: "hr".into(),
            person_key: "E101".into(),
            account_id: Some("u1".into()),
            user_principal_name: Some("isaiah.langer@contoso.example".into()),
            via: "correlation".into(),
            run_id: None,
            created_ms: 1_764_000_000_000,
            updated_ms: 1_764_000_000_000,
        })
        .await
        .unwrap();

    let (status, body) = ui.get("/ui/people").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("href=\"/ui/people/syncs/sync-1\""), "{body}");
    assert!(body.contains("href=\"/ui/people/syncs/sync-2\""), "{body}");
    assert!(
        body.contains("1 new, 1 update, 0 activate, 0 deactivate"),
        "{body}"
    );
    assert!(
        body.contains("st-guarded") && body.contains("st-applied"),
        "{body}"
    );
    assert!(
        body.contains("href=\"/ui/people/tenants/contoso\""),
        "{body}"
    );

    let (status, body) = ui.get("/ui/people/syncs/sync-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("New (1)") && body.contains("Update (1)"),
        "{body}"
    );
    assert!(
        body.contains("Jane &lt;i&gt;Doe&lt;/i&gt;"),
        "escaped: {body}"
    );
    assert!(body.contains("Engineering → Finance"), "{body}");
    assert!(
        body.contains("lynne.robbins@contoso.example, nestor.wilke@contoso.example"),
        "{body}"
    );
    assert!(
        body.contains("Blocked (1)") && body.contains("hybrid: on-premises synced"),
        "{body}"
    );
    assert!(body.contains("href=\"/ui/runs/run-1\""), "{body}");

    let (_, body) = ui.get("/ui/people/syncs/sync-2").await;
    assert!(body.contains("id=\"guard\""), "{body}");
    assert!(body.contains("a broken export?"), "{body}");

    let (status, body) = ui.get("/ui/people/tenants/contoso").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("isaiah.langer@contoso.example") && body.contains("correlation"),
        "{body}"
    );
    assert!(body.contains("<code>E101</code>"), "{body}");

    let (status, body) = ui.get("/ui/people/syncs/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("There is no people sync"), "{body}");

    // A managed tenant nobody is linked in yet, and one that is not managed at all.
    let (status, body) = ui.get("/ui/people/tenants/fabrikam").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Nobody is linked"), "{body}");
    let (status, body) = ui.get("/ui/people/tenants/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("There is no managed tenant"), "{body}");
}
