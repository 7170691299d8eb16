//! The run page of the web UI, through the real router (oneshot requests) over a fresh SQLite
//! database with a worker running: step states in the DAG, the log, the report, approvals,
//! the live fragment, and the operator actions with their confirmation page, CSRF and roles.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Map, Value};
use tenure_engine::store::Store;
use tenure_engine::{Engine, StartRun, Trigger};
use tenure_runbook::{compile, Plan, SourceFile};
use tenure_server::config::{Role, ServerSection, TokenEntry};
use tenure_server::{AppState, Library, LibrarySource, RunbookEntry, ServerConfig};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};
use tower::ServiceExt;

const SECRET: &str = "Ui-Run-Secret-Value-77";

const FLAKY: &str = r#"runbook: flaky
version: 1
tenant: contoso
inputs:
  upn: { type: string, required: true }
  password: { type: secret, required: false }
steps:
  first:
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/first", json: { upn: "{{inputs.upn}}", password: "{{inputs.password}}" } }
    compensate:
      uses: http.request
      with: { method: DELETE, url: "http://vendor.invalid/first" }
  second:
    needs: [first]
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/second" }
"#;

const GATE: &str = r#"runbook: gate
version: 1
tenant: contoso
inputs:
  token: { type: secret, default: "Ui-Run-Secret-Value-77" }
steps:
  approve:
    uses: approval
    with: { approvers: [Alice@MSP.example], expires: 1h, message: "Go?" }
  after:
    needs: [approve]
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/after" }
"#;

const MANY: &str = r#"runbook: many
version: 1
tenant: contoso
inputs:
  users: { type: list, required: true }
steps:
  each:
    uses: http.request
    for_each: "{{inputs.users}}"
    with: { method: POST, url: "http://vendor.invalid/users/{{item}}" }
"#;

/// `http.request` without a network: succeeds, except `/second` while `failing` is set.
#[derive(Clone, Default)]
struct Vendor {
    failing: Arc<AtomicBool>,
}

impl Executor for Vendor {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let url = call.params["url"].as_str().unwrap_or_default();
            if url.ends_with("/second") && self.failing.load(Ordering::SeqCst) {
                return Err(StepError::permanent("vendor_said_no", "the vendor said no"));
            }
            Ok(Outcome::Done(json!({"status": 200, "body": {}})))
        })
    }
}

fn compiled(name: &str, text: &str) -> (Option<Plan>, Vec<String>) {
    let src = SourceFile::new(name, text.to_string());
    let out = compile(&src, &tenure_steps::catalogue());
    let diags = out.diagnostics.iter().map(|d| d.render(&src)).collect();
    (out.plan, diags)
}

struct Books;

impl LibrarySource for Books {
    fn fingerprint(&self) -> u64 {
        1
    }
    fn load(&self) -> Library {
        let entries = [("flaky", FLAKY), ("gate", GATE), ("many", MANY)]
            .into_iter()
            .map(|(id, text)| {
                let (plan, diagnostics) = compiled(&format!("{id}.yaml"), text);
                assert!(plan.is_some(), "{diagnostics:?}");
                RunbookEntry {
                    id: id.into(),
                    path: format!("runbooks/{id}.yaml"),
                    plan: plan.map(Arc::new),
                    diagnostics,
                    source: text.into(),
                }
            })
            .collect();
        Library { entries }
    }
    fn compile(&self, name: &str, text: &str) -> (Option<Plan>, Vec<String>) {
        compiled(name, text)
    }
}

const TOKENS: [(&str, Role, &str, &str); 3] = [
    (
        "viewer-bot",
        Role::Viewer,
        "TENURE_UIRUN_VIEWER",
        "ui-viewer-1",
    ),
    (
        "alice@msp.example",
        Role::Approver,
        "TENURE_UIRUN_APPROVER",
        "ui-approver-1",
    ),
    (
        "ops-bot",
        Role::Operator,
        "TENURE_UIRUN_OPERATOR",
        "ui-operator-1",
    ),
];

fn token(role: Role) -> &'static str {
    TOKENS.iter().find(|t| t.1 == role).unwrap().3
}

struct Ui {
    app: Router,
    engine: Engine,
    vendor: Vendor,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Drop for Ui {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A page's answer.
struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

async fn ui() -> Ui {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = Store::open(&url).await.unwrap();
    let vendor = Vendor::default();
    let mut registry: Registry = tenure_engine::builtin::registry();
    registry.insert("http.request", vendor.clone());
    let engine = Engine::new(
        store,
        registry,
        Arc::new(|id: &str| Ok(json!({"id": id, "domain": "contoso.example", "name": "Contoso"}))),
    );
    let tokens = TOKENS
        .iter()
        .map(|(name, role, env, value)| {
            std::env::set_var(env, value);
            TokenEntry {
                name: name.to_string(),
                role: *role,
                token_env: env.to_string(),
            }
        })
        .collect();
    let config = ServerConfig {
        server: ServerSection::default(),
        webhooks: Vec::new(),
        tokens,
    };
    let state = AppState::new(engine.clone(), config, Arc::new(Books));
    let app = tenure_server::router(state);
    let stop = Arc::new(AtomicBool::new(false));
    let worker = engine.worker(0);
    let s = stop.clone();
    tokio::spawn(async move { worker.work_until(|| s.load(Ordering::SeqCst)).await });
    Ui {
        app,
        engine,
        vendor,
        stop,
        _dir: dir,
    }
}

impl Ui {
    async fn send(&self, req: Request<Body>) -> Page {
        let path = req.uri().to_string();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!body.contains(SECRET), "a secret in {path}: {body}");
        Page {
            status,
            location,
            body,
        }
    }

    /// Signs in with a role's token; the session cookie.
    async fn sign_in(&self, role: Role) -> String {
        let req = Request::post("/ui/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={}&next=/ui/runs", token(role))))
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let cookie = resp.headers()[header::SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_string()
    }

    async fn get(&self, cookie: &str, path: &str) -> Page {
        let req = Request::get(path)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        self.send(req).await
    }

    async fn post(&self, cookie: &str, path: &str, form: &str) -> Page {
        let req = Request::post(path)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap();
        self.send(req).await
    }

    async fn start(&self, runbook: &str, inputs: Value) -> String {
        let plan = Books
            .load()
            .get(runbook)
            .and_then(|e| e.plan.clone())
            .unwrap();
        let inputs: Map<String, Value> = serde_json::from_value(inputs).unwrap();
        let started = self
            .engine
            .start_run(StartRun {
                plan,
                inputs,
                trigger: Trigger::new("api", Some("ops-bot".into())),
                dedup_key: None,
            })
            .await
            .unwrap();
        started.id
    }

    async fn wait_for(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.engine.run(id).await.unwrap();
            let now = tenure_engine::machine::status_name(r.status);
            if now == status {
                return;
            }
            assert!(Instant::now() < deadline, "run {id} stuck at {now}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    async fn journal_len(&self, id: &str) -> usize {
        self.engine.events(id, 0).await.unwrap().len()
    }
}

/// The `data-state` of a step's box in the DAG.
fn state_of<'a>(page: &'a str, step: &str) -> &'a str {
    let at = page
        .find(&format!("data-step=\"{step}\" data-state=\""))
        .unwrap_or_else(|| panic!("no box for {step}: {page}"));
    let rest = &page[at + format!("data-step=\"{step}\" data-state=\"").len()..];
    &rest[..rest.find('"').unwrap()]
}

/// The CSRF token of the first form of a page.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with csrf");
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_succeeded_run_shows_states_log_report_and_no_secret() {
    let u = ui().await;
    let id = u
        .start(
            "flaky",
            json!({"upn": "ada@contoso.example", "password": SECRET}),
        )
        .await;
    u.wait_for(&id, "succeeded").await;
    let ops = u.sign_in(Role::Operator).await;
    let p = u.get(&ops, &format!("/ui/runs/{id}")).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let b = &p.body;
    assert!(
        b.contains("id=\"run-status\" data-status=\"succeeded\""),
        "{b}"
    );
    assert_eq!(state_of(b, "first"), "succeeded");
    assert_eq!(state_of(b, "second"), "succeeded");
    assert!(b.contains("succeeded · 1 attempt"), "{b}");
    for section in ["graph", "timeline", "log", "report", "approvals"] {
        assert!(b.contains(&format!("id=\"{section}\"")), "#{section}: {b}");
    }
    assert!(
        b.contains("href=\"/ui/runbooks/flaky\""),
        "runbook link: {b}"
    );
    assert!(b.contains("Contoso"), "tenant: {b}");
    assert!(b.contains("ops-bot"), "who started it: {b}");
    assert!(b.contains("ada@contoso.example"), "the person: {b}");
    assert!(b.contains("***"), "the secret input shows as ***: {b}");
    // The log and the timeline.
    assert!(b.contains("attempt 1 succeeded"), "{b}");
    assert!(b.contains("run finished succeeded"), "{b}");
    assert!(
        b.contains(
            "class=\"attempt\" data-step=\"second\" data-attempt=\"1\" data-outcome=\"succeeded\""
        ),
        "{b}"
    );
    // The report, rendered.
    let report = &b[b.find("id=\"report\"").unwrap()..];
    assert!(
        report.contains("<p>") || report.contains("<li>"),
        "{report}"
    );
    // Final: no polling, no buttons (nothing to retry, cancel or roll back).
    assert!(!b.contains("hx-trigger"), "{b}");
    assert!(!b.contains("action-retry"), "{b}");
    assert!(!b.contains("action-cancel"), "{b}");
    assert!(!b.contains("style="), "no inline style under the CSP: {b}");
    // The viewer reads it too.
    let viewer = u.sign_in(Role::Viewer).await;
    let p = u.get(&viewer, &format!("/ui/runs/{id}")).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(state_of(&p.body, "second"), "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_retries_a_failed_run_after_confirming_and_others_cannot() {
    let u = ui().await;
    u.vendor.failing.store(true, Ordering::SeqCst);
    let id = u
        .start(
            "flaky",
            json!({"upn": "ada@contoso.example", "password": SECRET}),
        )
        .await;
    u.wait_for(&id, "failed").await;
    let ops = u.sign_in(Role::Operator).await;
    let viewer = u.sign_in(Role::Viewer).await;
    let approver = u.sign_in(Role::Approver).await;

    let p = u.get(&ops, &format!("/ui/runs/{id}")).await;
    let b = &p.body;
    assert!(b.contains("data-status=\"failed\""), "{b}");
    assert_eq!(state_of(b, "first"), "succeeded");
    assert_eq!(state_of(b, "second"), "failed");
    assert!(
        b.contains("the vendor said no"),
        "the failure in the log: {b}"
    );
    assert!(b.contains("id=\"action-retry\""), "{b}");
    assert!(
        b.contains("class=\"button action-retry-step\" data-step=\"second\""),
        "{b}"
    );
    assert!(
        b.contains("id=\"action-rollback\""),
        "first has a compensate: {b}"
    );
    assert!(
        !b.contains("id=\"action-cancel\""),
        "a failed run has ended: {b}"
    );
    for who in [&viewer, &approver] {
        let p = u.get(who, &format!("/ui/runs/{id}")).await;
        assert_eq!(state_of(&p.body, "second"), "failed");
        assert!(!p.body.contains("action-retry"), "{}", p.body);
        assert!(!p.body.contains("action-rollback"), "{}", p.body);
        let p = u.get(who, &format!("/ui/runs/{id}/confirm/retry")).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN);
    }

    // The confirmation page says what will happen.
    let p = u.get(&ops, &format!("/ui/runs/{id}/confirm/retry")).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let b = &p.body;
    assert!(b.contains("id=\"confirm\""), "{b}");
    assert!(b.contains("id=\"confirm-button\""), "{b}");
    assert!(
        b.contains("Run again, with a fresh retry budget: <code>second</code>"),
        "{b}"
    );
    assert!(b.contains("Contoso"), "{b}");
    assert!(b.contains("done by <strong>ops-bot</strong>"), "{b}");
    assert!(
        b.contains(&format!("href=\"/ui/runs/{id}\"")),
        "a way back: {b}"
    );
    let csrf = csrf_of(b);
    let p = u
        .get(&ops, &format!("/ui/runs/{id}/confirm/rollback"))
        .await;
    assert!(
        p.body
            .contains("Undo <code>first</code> with <code>http.request</code>"),
        "{}",
        p.body
    );
    let p = u
        .get(
            &ops,
            &format!("/ui/runs/{id}/confirm/retry-step?step=second"),
        )
        .await;
    assert!(
        p.body.contains("name=\"step\" value=\"second\""),
        "{}",
        p.body
    );

    // Forced or forged: 403 and the journal is unchanged.
    let before = u.journal_len(&id).await;
    let p = u.post(&ops, &format!("/ui/runs/{id}/retry"), "").await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "no csrf: {}", p.body);
    let p = u
        .post(&ops, &format!("/ui/runs/{id}/retry"), "csrf=not-the-token")
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "a wrong csrf");
    for who in [&viewer, &approver] {
        let own = csrf_of(&u.get(who, &format!("/ui/runs/{id}")).await.body);
        let p = u
            .post(who, &format!("/ui/runs/{id}/retry"), &format!("csrf={own}"))
            .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.body);
        assert!(p.body.contains("Nothing was changed"), "{}", p.body);
    }
    assert_eq!(u.journal_len(&id).await, before, "nothing changed");
    let p = u
        .post(
            &ops,
            &format!("/ui/runs/{id}/explode"),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_eq!(u.journal_len(&id).await, before);

    // The operator's retry goes through, in their name, and the run succeeds.
    u.vendor.failing.store(false, Ordering::SeqCst);
    let p = u
        .post(
            &ops,
            &format!("/ui/runs/{id}/retry"),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/ui/runs/{id}").as_str())
    );
    u.wait_for(&id, "succeeded").await;
    let events = u.engine.events(&id, 0).await.unwrap();
    assert!(
        events.iter().any(|e| matches!(
            &e.kind,
            tenure_engine::journal::EventKind::RunRetried { by, .. } if by == "ops-bot"
        )),
        "retried in the operator's name"
    );
    let p = u.get(&ops, &format!("/ui/runs/{id}")).await;
    assert_eq!(state_of(&p.body, "second"), "succeeded");
    assert!(p.body.contains("run retried by ops-bot"), "{}", p.body);
    assert!(p.body.contains("data-attempt=\"2\""), "{}", p.body);

    // The engine refuses a retry of a succeeded run: a clear 409, nothing changed.
    let before = u.journal_len(&id).await;
    let p = u
        .post(
            &ops,
            &format!("/ui/runs/{id}/retry"),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.body);
    assert!(
        p.body.contains("only a failed run can be retried"),
        "{}",
        p.body
    );
    assert_eq!(u.journal_len(&id).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_polls_shows_its_gate_and_stops_polling_once_cancelled() {
    let u = ui().await;
    let id = u.start("gate", json!({})).await;
    u.wait_for(&id, "waiting").await;
    let ops = u.sign_in(Role::Operator).await;
    let p = u.get(&ops, &format!("/ui/runs/{id}")).await;
    let b = &p.body;
    assert_eq!(state_of(b, "approve"), "waiting");
    assert_eq!(state_of(b, "after"), "pending");
    assert!(b.contains("data-status=\"waiting\""), "{b}");
    assert!(
        b.contains(&format!(
            "hx-get=\"/ui/runs/{id}/live\" hx-trigger=\"every 1s\" hx-swap=\"outerHTML\""
        )),
        "{b}"
    );
    let gate = &b[b.find("id=\"approvals\"").unwrap()..];
    assert!(gate.contains("Waiting for: Alice@MSP.example"), "{gate}");
    assert!(gate.contains("Go?"), "{gate}");
    assert!(b.contains("id=\"action-cancel\""), "{b}");
    assert!(!b.contains("id=\"action-retry\""), "{b}");

    // The live fragment: no page shell, the same ids.
    let live = u.get(&ops, &format!("/ui/runs/{id}/live")).await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(live.body.starts_with("<div id=\"live\""), "{}", live.body);
    assert!(!live.body.contains("<html"), "{}", live.body);
    assert!(live.body.contains("hx-trigger=\"every 1s\""));
    assert_eq!(state_of(&live.body, "approve"), "waiting");
    assert!(
        !live.body.contains("id=\"report\""),
        "the report is not rebuilt every second: {}",
        live.body
    );
    assert!(b.contains("The report so far"), "{b}");

    // Cancel through the confirmation page.
    let p = u.get(&ops, &format!("/ui/runs/{id}/confirm/cancel")).await;
    assert!(p.body.contains("<code>approve</code>"), "{}", p.body);
    let csrf = csrf_of(&p.body);
    let p = u
        .post(
            &ops,
            &format!("/ui/runs/{id}/cancel"),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    u.wait_for(&id, "cancelled").await;
    let live = u.get(&ops, &format!("/ui/runs/{id}/live")).await;
    assert!(
        live.body.contains("data-status=\"cancelled\""),
        "{}",
        live.body
    );
    assert!(
        !live.body.contains("hx-trigger"),
        "polling stops: {}",
        live.body
    );
    assert!(!live.body.contains("hx-get"), "{}", live.body);
    assert!(
        live.body.contains("run cancelled by ops-bot"),
        "{}",
        live.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runs_are_404_pages_and_signing_in_comes_first() {
    let u = ui().await;
    let ops = u.sign_in(Role::Operator).await;
    for path in [
        "/ui/runs/no-such-run",
        "/ui/runs/no-such-run/live",
        "/ui/runs/no-such-run/confirm/retry",
    ] {
        let p = u.get(&ops, path).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{path}");
        assert!(p.body.contains("No such run"), "{path}: {}", p.body);
    }
    // Any page's forms carry the session's CSRF token (here the sign-out form).
    let csrf = csrf_of(&u.get(&ops, "/ui/runs").await.body);
    let p = u
        .post(&ops, "/ui/runs/no-such-run/cancel", &format!("csrf={csrf}"))
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND, "{}", p.body);
    let p = u.get(&ops, "/ui/runs/x/confirm/explode").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    let req = Request::get("/ui/runs/abc").body(Body::empty()).unwrap();
    let p = u.send(req).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(p.location.unwrap().starts_with("/ui/sign-in?next="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_for_each_step_counts_its_items() {
    let u = ui().await;
    let id = u.start("many", json!({"users": ["a", "b", "c"]})).await;
    u.wait_for(&id, "succeeded").await;
    let ops = u.sign_in(Role::Operator).await;
    let b = u.get(&ops, &format!("/ui/runs/{id}")).await.body;
    assert_eq!(state_of(&b, "each"), "succeeded");
    assert!(b.contains("succeeded · 3 attempts · "), "{b}");
    assert!(b.contains(" · 3/3 items</text>"), "{b}");
    assert!(b.contains("item 2: attempt 1 succeeded"), "{b}");
    assert!(b.contains(">each[2] #1</text>"), "{b}");
    assert!(!b.contains("id=\"log-all\""), "a short log is shown whole");

    // A long log: the last 200 lines, and a link to all of them.
    let users: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    let id = u.start("many", json!({ "users": users })).await;
    u.wait_for(&id, "succeeded").await;
    let total = u.journal_len(&id).await;
    assert!(total > 300, "{total}");
    let b = u.get(&ops, &format!("/ui/runs/{id}")).await.body;
    assert_eq!(b.matches("<tr data-seq=").count(), 200);
    assert!(
        b.contains(&format!("<tr data-seq=\"{total}\">")),
        "the newest line"
    );
    assert!(
        b.contains(&format!(
            "id=\"log-all\" href=\"/ui/runs/{id}?log=all#log\""
        )),
        "{b}"
    );
    let all = u.get(&ops, &format!("/ui/runs/{id}?log=all")).await.body;
    assert_eq!(all.matches("<tr data-seq=").count(), total);
    assert_eq!(
        b.matches("<g class=\"attempt\"").count(),
        100,
        "every attempt drawn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_rolls_a_failed_run_back() {
    let u = ui().await;
    u.vendor.failing.store(true, Ordering::SeqCst);
    let id = u
        .start("flaky", json!({"upn": "ada@contoso.example"}))
        .await;
    u.wait_for(&id, "failed").await;
    let ops = u.sign_in(Role::Operator).await;
    let csrf = csrf_of(
        &u.get(&ops, &format!("/ui/runs/{id}/confirm/rollback"))
            .await
            .body,
    );
    let p = u
        .post(
            &ops,
            &format!("/ui/runs/{id}/rollback"),
            &format!("csrf={csrf}"),
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.body);
    u.wait_for(&id, "rolled_back").await;
    let b = u.get(&ops, &format!("/ui/runs/{id}")).await.body;
    assert!(b.contains("data-status=\"rolled_back\""), "{b}");
    assert_eq!(state_of(&b, "first"), "compensated");
    assert_eq!(state_of(&b, "second"), "failed");
    assert!(b.contains("rollback started by ops-bot"), "{b}");
    assert!(
        b.contains("data-step=\"undo:first\""),
        "the compensation's attempt: {b}"
    );
    assert!(!b.contains("id=\"action-rollback\""), "{b}");
}
