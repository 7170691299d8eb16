//! The runs list of the web UI (`/ui/runs`, `/ui/runs/rows`), through the whole router in
//! process: sign-in required, the labels shown (person, tenant, ticket), each filter, keyset
//! pages without duplicates or gaps, the live rows fragment, bad input answered with a 400
//! page, and no secret on any page.

mod support;
mod support_ui;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use support_ui::{ui, Ui};
use tenure_engine::{StartRun, Trigger};

const SECRET: &str = "Sup3r-Secret-UI-Value-42";

const LEAVER: &str = r#"runbook: leaver
version: 3
tenant: "{{inputs.tenant}}"
inputs:
  upn: { type: string, required: true }
  tenant: { type: string, required: true }
  ticket_id: { type: string }
  password: { type: secret }
steps:
  block: { uses: entra.disable_sign_in, with: { user: "{{inputs.upn}}" } }
"#;

const REPORT: &str = r#"runbook: report
version: 1
tenant: contoso
inputs:
  key: { type: secret, required: true }
steps:
  hold: { uses: wait, with: { for: 1h } }
"#;

const BOOKS: &[(&str, &str)] = &[("leaver.yaml", LEAVER), ("report.yaml", REPORT)];

async fn start(ui: &Ui, runbook: &str, inputs: Value) -> String {
    let library = BOOKS
        .iter()
        .find(|(n, _)| n.starts_with(runbook))
        .unwrap()
        .1;
    let src = tenure_runbook::SourceFile::new("x.yaml", library.to_string());
    let plan = tenure_runbook::compile(&src, &tenure_steps::catalogue())
        .plan
        .unwrap();
    let inputs: Map<String, Value> = inputs.as_object().cloned().unwrap();
    ui.engine
        .start_run(StartRun {
            plan: Arc::new(plan),
            inputs,
            trigger: Trigger::new("api", Some("ops-bot".into())),
            dedup_key: None,
        })
        .await
        .unwrap()
        .id
}

async fn leaver(ui: &Ui, i: usize, tenant: &str) -> String {
    start(
        ui,
        "leaver",
        json!({"upn": format!("Person{i}@{tenant}.example"), "tenant": tenant,
               "ticket_id": format!("T-{}", 5000 + i), "password": SECRET}),
    )
    .await
}

/// The (id, status) of every run row of a page, in order.
fn rows(html: &str) -> Vec<(String, String)> {
    html.split("<tr class=\"run-row\" data-run=\"")
        .skip(1)
        .map(|rest| {
            let (id, rest) = rest.split_once('"').unwrap();
            let status = rest
                .split_once("data-status=\"")
                .and_then(|(_, s)| s.split_once('"'))
                .unwrap()
                .0;
            (id.to_string(), status.to_string())
        })
        .collect()
}

fn ids(html: &str) -> Vec<String> {
    rows(html).into_iter().map(|(id, _)| id).collect()
}

/// The `href` of the element with this id, unescaped.
fn href(html: &str, id: &str) -> Option<String> {
    let (_, rest) = html.split_once(&format!("id=\"{id}\" href=\""))?;
    Some(rest.split_once('"')?.0.replace("&amp;", "&"))
}

/// GET, checked for a secret, with status.
async fn page(ui: &Ui, path: &str) -> (StatusCode, String) {
    let (status, body) = ui.get(path).await;
    assert!(!body.contains(SECRET), "a secret on {path}");
    assert!(!body.contains("enc:v1:"), "a sealed value on {path}");
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_is_required() {
    let ui = ui(BOOKS).await;
    for path in ["/ui/runs?status=failed", "/ui/runs/rows"] {
        let (status, location, _) = ui.request(path, false).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert!(location.starts_with("/ui/sign-in?next="), "{location}");
    }
}

/// A `next=` that a `Location` header cannot carry (a control character, as a crafted link
/// can hold) signs in and lands on the runs list instead of failing the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_whose_next_holds_control_characters_lands_on_the_runs_list() {
    use axum::body::Body;
    use axum::http::{header, Request};
    use tower::ServiceExt as _;

    let ui = ui(BOOKS).await;
    for next in [
        "%2Fui%2Fruns%0ASet-Cookie%3A%20x%3D1",
        "%2Fui%01",
        "%2Fui%7F",
    ] {
        let req = Request::post("/ui/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "tenure.test")
            .body(Body::from(format!(
                "token={}&next={next}",
                support_ui::VIEWER_TOKEN
            )))
            .unwrap();
        let resp = ui.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(resp.headers()[header::LOCATION], "/ui/runs", "{next}");
        assert!(resp.headers().contains_key(header::SET_COOKIE), "{next}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_labels_and_follows_the_dom_contract() {
    let ui = ui(BOOKS).await;
    let (status, empty) = page(&ui, "/ui/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(empty.contains("No runs yet"), "{empty}");
    let a = leaver(&ui, 1, "contoso").await;
    let b = leaver(&ui, 2, "fabrikam").await;
    let r = start(&ui, "report", json!({"key": SECRET})).await;
    ui.engine.cancel(&b, "ops").await.unwrap();
    let (status, html) = page(&ui, "/ui/runs").await;
    assert_eq!(status, StatusCode::OK);
    let listed = rows(&html);
    assert_eq!(listed.len(), 3);
    assert!(listed.contains(&(b.clone(), "cancelled".into())));
    assert!(listed.contains(&(a.clone(), "running".into())));
    for text in [
        "Person1@contoso.example",
        "Person2@fabrikam.example",
        "T-5001",
        "fabrikam",
        &format!("href=\"/ui/runs/{a}\""),
        &format!("href=\"/ui/runs/{r}\""),
        "class=\"run-link\"",
        "<form class=\"filters\" id=\"filters\" method=\"get\" action=\"/ui/runs\"",
        "name=\"q\"",
        "<select id=\"f-status\" name=\"status\"",
        "<select id=\"f-runbook\" name=\"runbook\"",
        "<option value=\"leaver\">",
        "name=\"tenant\"",
        "id=\"apply-filters\" type=\"submit\"",
        "<table id=\"runs\"",
        "<tbody id=\"run-rows\" hx-get=\"/ui/runs/rows\" hx-trigger=\"every 2s\" hx-swap=\"innerHTML\"",
        "hide-narrow",
        // An unfinished run shows for how long it has run.
        "running for",
    ] {
        assert!(html.contains(text), "{text} missing: {html}");
    }
    // A finished run shows how long it took.
    let cancelled_row = html.split(&format!("data-run=\"{b}\"")).nth(1).unwrap();
    let cancelled_row = cancelled_row.split("</tr>").next().unwrap();
    assert!(!cancelled_row.contains(" for "), "{cancelled_row}");
    assert!(
        cancelled_row.contains(" ms</td>") || cancelled_row.contains(" s</td>"),
        "{cancelled_row}"
    );
    // One page: no pager.
    assert!(href(&html, "next-page").is_none());
    // The quick filters count runs by status.
    assert!(
        html.contains("href=\"/ui/runs?status=cancelled\""),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_narrows_the_list() {
    let ui = ui(BOOKS).await;
    let mut contoso = BTreeSet::new();
    for i in 0..4 {
        contoso.insert(leaver(&ui, i, "contoso").await);
    }
    let fab = leaver(&ui, 10, "fabrikam").await;
    let report = start(&ui, "report", json!({"key": SECRET})).await;
    ui.engine.cancel(&fab, "ops").await.unwrap();
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();

    let (_, html) = page(&ui, "/ui/runs?status=cancelled").await;
    assert_eq!(ids(&html), vec![fab.clone()]);
    assert!(
        html.contains("<option value=\"cancelled\" selected>"),
        "{html}"
    );
    // The live body polls with the same filters.
    assert!(
        html.contains("hx-get=\"/ui/runs/rows?status=cancelled\""),
        "{html}"
    );
    let (_, html) = page(&ui, "/ui/runs?runbook=report").await;
    assert_eq!(ids(&html), vec![report.clone()]);
    let (_, html) = page(&ui, "/ui/runs?tenant=CONTOSO&runbook=leaver").await;
    assert_eq!(set(ids(&html)), contoso);
    let (_, html) = page(&ui, "/ui/runs?tenant=fabrikam").await;
    assert_eq!(ids(&html), vec![fab.clone()]);
    // Free text: a UPN in any case, a ticket, part of an id.
    let (_, html) = page(&ui, "/ui/runs?q=person10%40FABRIKAM.example").await;
    assert_eq!(ids(&html), vec![fab.clone()]);
    let (_, html) = page(&ui, "/ui/runs?q=t-5002").await;
    assert_eq!(ids(&html).len(), 1);
    let (_, html) = page(&ui, &format!("/ui/runs?q={}", &report[..8])).await;
    assert_eq!(ids(&html), vec![report.clone()]);
    // Empty parameters mean "any"; a search for the secret finds nothing.
    let (_, html) = page(&ui, "/ui/runs?status=&runbook=&tenant=&q=").await;
    assert_eq!(ids(&html).len(), 6);
    // (The page echoes what its user typed into the search box, nothing more.)
    let (status, html) = ui.get(&format!("/ui/runs?q={SECRET}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ids(&html).is_empty());
    assert!(!html.contains("enc:v1:"));
    assert!(html.contains("No runs match these filters."), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_each_other_without_duplicates_or_gaps() {
    let ui = ui(BOOKS).await;
    let mut all = BTreeSet::new();
    for i in 0..112 {
        all.insert(leaver(&ui, i, if i % 3 == 0 { "fabrikam" } else { "contoso" }).await);
    }
    let mut seen = Vec::new();
    let mut path = "/ui/runs?runbook=leaver".to_string();
    let mut pages = 0;
    loop {
        let (status, html) = page(&ui, &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        pages += 1;
        seen.extend(ids(&html));
        // Only the first page refreshes itself; later ones link back to the newest.
        assert_eq!(
            html.contains("hx-trigger=\"every 2s\""),
            pages == 1,
            "{path}"
        );
        assert_eq!(href(&html, "newest").is_some(), pages > 1, "{path}");
        match href(&html, "next-page") {
            Some(next) => {
                assert!(
                    next.starts_with("/ui/runs?runbook=leaver&cursor="),
                    "{next}"
                );
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 112, "no duplicates");
    assert_eq!(
        seen.iter().cloned().collect::<BTreeSet<_>>(),
        all,
        "no gaps"
    );
    // The rows fragment of a later page is that page's rows.
    let cursor = path.split_once("cursor=").unwrap().1;
    let (status, frag) = page(
        &ui,
        &format!("/ui/runs/rows?runbook=leaver&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&frag), seen[100..].to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rows_fragment_is_the_table_body_only() {
    let ui = ui(BOOKS).await;
    let a = leaver(&ui, 1, "contoso").await;
    let b = leaver(&ui, 2, "contoso").await;
    ui.engine.cancel(&a, "ops").await.unwrap();
    let (status, frag) = page(&ui, "/ui/runs/rows?status=running").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&frag), vec![b.clone()]);
    assert!(frag.trim_start().starts_with("<tr"), "{frag}");
    assert!(
        !frag.contains("<html") && !frag.contains("<tbody"),
        "{frag}"
    );
    assert!(frag.contains("Person2@contoso.example"));
    // A new run shows up at the next poll.
    let c = leaver(&ui, 3, "contoso").await;
    let (_, frag) = page(&ui, "/ui/runs/rows?status=running").await;
    assert_eq!(ids(&frag), vec![c, b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filters_get_a_clear_400_page() {
    let ui = ui(BOOKS).await;
    leaver(&ui, 1, "contoso").await;
    for (path, says) in [
        ("/ui/runs?status=bogus", "There is no run status `bogus`"),
        (
            "/ui/runs/rows?status=bogus",
            "There is no run status `bogus`",
        ),
        (
            "/ui/runs?cursor=%25%25%25",
            "This page link is not one the runs list made",
        ),
        (
            "/ui/runs?cursor=bm90LWEtY3Vyc29y",
            "This page link is not one the runs list made",
        ),
        (
            "/ui/runs/rows?cursor=!!",
            "This page link is not one the runs list made",
        ),
        ("/ui/runs?status=failed&status=running", "Bad filter"),
    ] {
        let (status, html) = page(&ui, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {html}");
        assert!(html.contains(says), "{path}: {html}");
        assert!(html.contains("Back to runs"), "{path}");
    }
    // Text that looks like markup is shown as text.
    let (status, html) = page(&ui, "/ui/runs?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<script>alert"), "{html}");
}

/// Signing out ends the session everywhere: a copy of the cookie kept from before is sent to
/// the sign-in page afterwards, and a second sign-out with it changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_cookie_is_refused_after_sign_out() {
    use axum::body::Body;
    use axum::http::{header, Request};
    use tower::ServiceExt as _;
    let ui = ui(&[]).await;
    let (status, page) = ui.get("/ui/runs").await;
    assert_eq!(status, StatusCode::OK);
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("the sign-out form")
        + 19;
    let csrf = page[at..].split('"').next().unwrap().to_string();
    let sign_out = |csrf: String| {
        Request::post("/ui/sign-out")
            .header(header::HOST, "tenure.test")
            .header(header::COOKIE, &ui.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap()
    };
    let resp = ui
        .router
        .clone()
        .oneshot(sign_out(csrf.clone()))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/ui/sign-in");
    // The same cookie, kept by someone who copied it, no longer works.
    let (status, location, _) = ui.request("/ui/runs", true).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/ui/sign-in"), "{location}");
    let resp = ui.router.clone().oneshot(sign_out(csrf)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(resp.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/ui/sign-in"));
}
