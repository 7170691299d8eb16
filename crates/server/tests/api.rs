//! The REST API over real HTTP: a server on 127.0.0.1:0 over a fresh SQLite database with
//! workers running, driven with reqwest under each role's token.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use tenure_engine::store::Store;
use tenure_engine::Engine;
use tenure_runbook::{compile, Plan, SourceFile};
use tenure_server::config::{Role, ServerSection, TokenEntry};
use tenure_server::{AppState, Library, LibrarySource, RunbookEntry, ServerConfig};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};

const SECRET: &str = "Sup3r-Secret-Value-42";

const FLAKY: &str = r#"runbook: flaky
version: 1
tenant: contoso
inputs:
  upn: { type: string, required: true }
  password: { type: secret, required: false }
  count: { type: int, required: false }
steps:
  first:
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/first", json: { upn: "{{inputs.upn}}" } }
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
  token: { type: secret, default: "default-Secret-99" }
steps:
  approve:
    uses: approval
    with: { approvers: [Alice@MSP.example], expires: 1h, message: "Go?" }
  after:
    needs: [approve]
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/after" }
"#;

/// `http.request` without a network: succeeds, except `/second` while `failing` is set
/// (a permanent vendor error).
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

/// Two runbooks held in memory.
struct Books;

impl LibrarySource for Books {
    fn fingerprint(&self) -> u64 {
        1
    }
    fn load(&self) -> Library {
        let entries = [("flaky", FLAKY), ("gate", GATE)]
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

const TOKENS: [(&str, Role, &str, &str); 4] = [
    (
        "viewer-bot",
        Role::Viewer,
        "TENURE_T_VIEWER",
        "viewer-token-1",
    ),
    (
        "alice@msp.example",
        Role::Approver,
        "TENURE_T_APPROVER",
        "approver-token-1",
    ),
    (
        "ops-bot",
        Role::Operator,
        "TENURE_T_OPERATOR",
        "operator-token-1",
    ),
    ("root", Role::Admin, "TENURE_T_ADMIN", "admin-token-1"),
];

fn tokens() -> Vec<TokenEntry> {
    TOKENS
        .iter()
        .map(|(name, role, env, value)| {
            std::env::set_var(env, value);
            TokenEntry {
                name: name.to_string(),
                role: *role,
                token_env: env.to_string(),
            }
        })
        .collect()
}

fn token(role: Role) -> &'static str {
    TOKENS.iter().find(|t| t.1 == role).unwrap().3
}

struct Server {
    base: String,
    engine: Engine,
    vendor: Vendor,
    http: Client,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

async fn server_with(section: ServerSection, tokens: Vec<TokenEntry>) -> Server {
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
    let config = ServerConfig {
        server: section,
        webhooks: Vec::new(),
        tokens,
    };
    let state = AppState::new(engine.clone(), config, Arc::new(Books));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tenure_server::serve(
        state,
        listener,
        std::future::pending(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = engine.worker(0);
    let s = stop.clone();
    tokio::spawn(async move { worker.work_until(|| s.load(Ordering::SeqCst)).await });
    Server {
        base,
        engine,
        vendor,
        http: Client::new(),
        stop,
        _dir: dir,
    }
}

async fn server() -> Server {
    server_with(ServerSection::default(), tokens()).await
}

impl Server {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains(SECRET),
            "a secret in the answer to {path}: {text}"
        );
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, role: Role) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token(role)), None).await
    }

    async fn post(&self, path: &str, role: Role, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token(role)), Some(body))
            .await
    }

    async fn start(&self, runbook: &str, inputs: Value) -> String {
        let (status, body) = self
            .post(
                "/api/runs",
                Role::Operator,
                json!({"runbook": runbook, "inputs": inputs}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn wait_for(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, run) = self.get(&format!("/api/runs/{id}"), Role::Viewer).await;
            assert_eq!(code, StatusCode::OK, "{run}");
            if run["status"] == status {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} never reached {status}: {run}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn run_count(&self) -> usize {
        self.engine.runs(&Default::default()).await.unwrap().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_starts_a_run_and_everyone_reads_it() {
    let s = server().await;
    let id = s
        .start(
            "flaky",
            json!({"upn": "ada@contoso.example", "password": SECRET}),
        )
        .await;
    let run = s.wait_for(&id, "succeeded").await;
    assert_eq!(run["id"], id.as_str());
    assert_eq!(run["runbook"], "flaky");
    assert_eq!(run["version"], 1);
    assert_eq!(run["trigger"]["source"], "api");
    assert_eq!(run["trigger"]["by"], "ops-bot");
    assert_eq!(run["inputs"]["password"], "***");
    assert_eq!(run["inputs"]["upn"], "ada@contoso.example");
    let steps: Vec<(String, String, u64)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["item"], 0);
            (
                s["id"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
                s["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps[0], ("first".into(), "succeeded".into(), 1));
    assert_eq!(steps[1], ("second".into(), "succeeded".into(), 1));
    assert!(run["created_at"].as_str().unwrap().ends_with('Z'));

    for role in [Role::Viewer, Role::Approver, Role::Operator, Role::Admin] {
        let (status, _) = s.get(&format!("/api/runs/{id}"), role).await;
        assert_eq!(status, StatusCode::OK, "{role:?}");
    }
    // The journal, all of it and after a sequence number.
    let (status, all) = s.get(&format!("/api/runs/{id}/events"), Role::Viewer).await;
    assert_eq!(status, StatusCode::OK);
    let all = all["events"].as_array().unwrap().clone();
    assert_eq!(all[0]["seq"], 1);
    assert_eq!(
        all[0]["kind"]["type"].as_str().map(|_| ()),
        Some(()),
        "{}",
        all[0]
    );
    let (_, tail) = s
        .get(&format!("/api/runs/{id}/events?after=2"), Role::Viewer)
        .await;
    let tail = tail["events"].as_array().unwrap();
    assert_eq!(tail.len(), all.len() - 2);
    assert_eq!(tail[0]["seq"], 3);
    // The runbook library.
    let (status, list) = s.get("/api/runbooks", Role::Viewer).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["runbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["flaky", "gate"]);
    assert_eq!(list["runbooks"][0]["valid"], true);
    let (status, gate) = s.get("/api/runbooks/gate", Role::Viewer).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(gate["inputs"]["token"]["type"], "secret");
    assert_eq!(gate["inputs"]["token"]["default"], "***");
    let (status, _) = s.get("/api/runbooks/nope", Role::Viewer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.get("/api/runs/no-such-run", Role::Viewer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_what_a_token_may_do() {
    let s = server().await;
    for role in [Role::Viewer, Role::Approver] {
        let (status, body) = s
            .post("/api/runs", role, json!({"runbook": "gate", "inputs": {}}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role:?} {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    assert_eq!(s.run_count().await, 0);
    let (status, _) = s
        .post(
            "/api/runs",
            Role::Admin,
            json!({"runbook": "gate", "inputs": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = s.start("gate", json!({})).await;
    s.wait_for(&id, "waiting").await;
    for role in [Role::Viewer, Role::Approver] {
        for op in ["cancel", "retry", "rollback"] {
            let (status, _) = s
                .post(&format!("/api/runs/{id}/{op}"), role, json!({}))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role:?} {op}");
        }
    }
    // Operators may not decide approvals; viewers neither.
    for role in [Role::Viewer, Role::Operator] {
        let (status, _) = s
            .post(
                &format!("/api/approvals/{id}/approve"),
                role,
                json!({"decision": "approve"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role:?}");
    }
    // An operator cancels; the journal says who.
    let (status, body) = s
        .post(&format!("/api/runs/{id}/cancel"), Role::Operator, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    let (_, events) = s.get(&format!("/api/runs/{id}/events"), Role::Viewer).await;
    assert!(events.to_string().contains("ops-bot"), "{events}");
    // The machine refuses a second cancel: 409.
    let (status, body) = s
        .post(&format!("/api/runs/{id}/cancel"), Role::Operator, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_and_rollback_go_through_the_engine_in_the_tokens_name() {
    let s = server().await;
    s.vendor.failing.store(true, Ordering::SeqCst);
    let id = s.start("flaky", json!({"upn": "a@contoso.example"})).await;
    let run = s.wait_for(&id, "failed").await;
    assert_eq!(run["failed_step"], "second");
    // Retry of a step that did not fail is refused by the machine.
    let (status, body) = s
        .post(
            &format!("/api/runs/{id}/retry"),
            Role::Operator,
            json!({"steps": ["first"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    s.vendor.failing.store(false, Ordering::SeqCst);
    let (status, body) = s
        .post(
            &format!("/api/runs/{id}/retry"),
            Role::Operator,
            json!({"steps": ["second"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.wait_for(&id, "succeeded").await;

    s.vendor.failing.store(true, Ordering::SeqCst);
    let id = s.start("flaky", json!({"upn": "b@contoso.example"})).await;
    s.wait_for(&id, "failed").await;
    // A retry with no body retries every failed step (and fails again).
    let (status, _) = s
        .call(
            Method::POST,
            &format!("/api/runs/{id}/retry"),
            Some(token(Role::Admin)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    s.wait_for(&id, "failed").await;
    let (status, body) = s
        .post(
            &format!("/api/runs/{id}/rollback"),
            Role::Operator,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let run = s.wait_for(&id, "rolled_back").await;
    assert!(run["steps"].to_string().contains("undo:first"), "{run}");
    let (_, events) = s.get(&format!("/api/runs/{id}/events"), Role::Viewer).await;
    let text = events.to_string();
    assert!(text.contains("ops-bot") && text.contains("root"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_list_the_gates_waiting_on_the_caller_and_decide_them() {
    let s = server().await;
    let id = s.start("gate", json!({})).await;
    s.wait_for(&id, "waiting").await;
    let (status, mine) = s.get("/api/approvals", Role::Approver).await;
    assert_eq!(status, StatusCode::OK);
    let mine = mine["approvals"].as_array().unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["run"], id.as_str());
    assert_eq!(mine[0]["step"], "approve");
    assert_eq!(mine[0]["message"], "Go?");
    let (_, theirs) = s.get("/api/approvals", Role::Operator).await;
    assert_eq!(theirs["approvals"], json!([]));
    // An admin is not named on the gate.
    let (status, body) = s
        .post(
            &format!("/api/approvals/{id}/approve"),
            Role::Admin,
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = s
        .post(
            &format!("/api/approvals/{id}/approve"),
            Role::Approver,
            json!({"decision": "maybe"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s
        .post(
            &format!("/api/approvals/{id}/nope"),
            Role::Approver,
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s
        .post(
            &format!("/api/approvals/{id}/approve"),
            Role::Approver,
            json!({"decision": "approve", "comment": "fine"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.wait_for(&id, "succeeded").await;
    let (_, events) = s.get(&format!("/api/runs/{id}/events"), Role::Viewer).await;
    let text = events.to_string();
    assert!(text.contains("api from 127.0.0.1"), "{text}");
    assert!(text.contains("fine"), "{text}");
    let (_, mine) = s.get("/api/approvals", Role::Approver).await;
    assert_eq!(mine["approvals"], json!([]));
    // Deciding again: the machine refuses.
    let (status, body) = s
        .post(
            &format!("/api/approvals/{id}/approve"),
            Role::Approver,
            json!({"decision": "deny"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

/// A comment decided through the API is bounded and cleaned as one sent through a link: no
/// terminal escapes or carriage returns reach the journal (and `tenure log`), and a megabyte
/// of text is not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_comment_is_bounded_and_stripped_of_control_characters() {
    let s = server().await;
    let id = s.start("gate", json!({})).await;
    s.wait_for(&id, "waiting").await;
    let comment = format!("ok\u{1b}[2J\r\nfake line{}", "x".repeat(100_000));
    let (status, body) = s
        .post(
            &format!("/api/approvals/{id}/approve"),
            Role::Approver,
            json!({"decision": "approve", "comment": comment}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.wait_for(&id, "succeeded").await;
    let (_, events) = s.get(&format!("/api/runs/{id}/events"), Role::Viewer).await;
    let kept = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| {
            (e["kind"]["type"] == "approval_decided").then(|| e["kind"]["comment"].clone())
        })
        .unwrap();
    let kept = kept.as_str().unwrap();
    assert!(kept.starts_with("ok[2J\nfake line"), "{kept:.40}");
    assert_eq!(kept.chars().count(), 2_000);
    assert!(!kept.chars().any(|c| c.is_control() && c != '\n'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_first_in_keyset_pages() {
    let s = server().await;
    let mut started = Vec::new();
    for _ in 0..5 {
        started.push(s.start("gate", json!({})).await);
    }
    let flaky = s.start("flaky", json!({"upn": "x@contoso.example"})).await;
    s.wait_for(&flaky, "succeeded").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/runs?runbook=gate&limit=2&cursor={c}"),
            None => "/api/runs?runbook=gate&limit=2".to_string(),
        };
        let (status, page) = s.get(&path, Role::Viewer).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for r in page["runs"].as_array().unwrap() {
            assert_eq!(r["runbook"], "gate");
            seen.push(r["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    started.reverse();
    assert_eq!(seen, started);
    let (_, done) = s.get("/api/runs?status=succeeded", Role::Viewer).await;
    assert_eq!(done["runs"].as_array().unwrap().len(), 1);
    assert_eq!(done["runs"][0]["id"], flaky.as_str());
    // Free text: part of the run id, or the runbook, in any case.
    for q in [&flaky[..8].to_uppercase(), "FLAKY"] {
        let (_, found) = s.get(&format!("/api/runs?q={q}"), Role::Viewer).await;
        assert_eq!(found["runs"].as_array().unwrap().len(), 1, "{q}");
        assert_eq!(found["runs"][0]["id"], flaky.as_str());
        assert_eq!(found["runs"][0]["tenant"], "contoso");
    }
    let (_, found) = s
        .get("/api/runs?tenant=CONTOSO&runbook=flaky", Role::Viewer)
        .await;
    assert_eq!(found["runs"].as_array().unwrap().len(), 1);
    for bad in [
        "/api/runs?status=bogus",
        "/api/runs?cursor=%%%",
        "/api/runs?limit=0",
        "/api/runs?limit=abc",
    ] {
        let (status, body) = s.get(bad, Role::Viewer).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_key_returns_the_first_run() {
    let s = server().await;
    let body = json!({"runbook": "gate", "inputs": {}, "dedup_key": "T-1001"});
    let (status, first) = s.post("/api/runs", Role::Operator, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(first.get("duplicate").is_none(), "{first}");
    let (status, again) = s.post("/api/runs", Role::Operator, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["duplicate"], true);
    assert_eq!(s.run_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_create_nothing() {
    let s = server().await;
    // 422: every problem listed.
    let (status, body) = s
        .post(
            "/api/runs",
            Role::Operator,
            json!({"runbook": "flaky", "inputs": {"count": "abc", "password": SECRET}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_inputs");
    assert_eq!(
        body["error"]["problems"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    // 400: malformed JSON, a body of the wrong shape.
    let resp = s
        .http
        .post(format!("{}/api/runs", s.base))
        .bearer_auth(token(Role::Operator))
        .header("content-type", "application/json")
        .body("{\"runbook\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    let (status, _) = s
        .post("/api/runs", Role::Operator, json!({"inputs": {}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .post("/api/runs", Role::Operator, json!({"runbook": "nope"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // 413: a body over the limit (1 MiB by default).
    let big = json!({"runbook": "flaky", "inputs": {"upn": "x".repeat(2 * 1024 * 1024)}});
    let (status, body) = s.post("/api/runs", Role::Operator, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(s.run_count().await, 0);
    // Unknown routes and methods answer JSON too.
    let (status, body) = s.get("/api/nothing-here", Role::Viewer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_and_checked() {
    let s = server().await;
    for token in [None, Some("not-a-token")] {
        let resp = s.http.get(format!("{}/api/runs", s.base));
        let resp = match token {
            Some(t) => resp.bearer_auth(t),
            None => resp,
        }
        .send()
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let resp = s
        .http
        .get(format!("{}/api/runs", s.base))
        .header("authorization", format!("Basic {}", token(Role::Admin)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Without any [[tokens]] the API is closed and says why.
    let closed = server_with(ServerSection::default(), Vec::new()).await;
    let (status, body) = closed.get("/api/runs", Role::Admin).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[[tokens]]"),
        "{body}"
    );
    // A token whose variable is not set stops the server from starting, naming it.
    let missing = ServerConfig {
        tokens: vec![TokenEntry {
            name: "ghost".into(),
            role: Role::Admin,
            token_env: "TENURE_T_NEVER_SET".into(),
        }],
        ..Default::default()
    };
    let err = tenure_server::check_config(&missing)
        .unwrap_err()
        .to_string();
    assert!(err.contains("TENURE_T_NEVER_SET"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_or_made() {
    let s = server().await;
    let resp = s
        .http
        .get(format!("{}/api/runs", s.base))
        .header("x-request-id", "req-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers()["x-request-id"], "req-abc-123");
    let a = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    let b = s
        .http
        .get(format!("{}/healthz", s.base))
        .send()
        .await
        .unwrap();
    let (a, b) = (&a.headers()["x-request-id"], &b.headers()["x-request-id"]);
    assert!(!a.is_empty() && a != b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_and_approval_links_are_rate_limited_per_address() {
    let section = ServerSection {
        hooks_per_minute: Some(3),
        approvals_per_minute: Some(2),
        ..Default::default()
    };
    let s = server_with(section, tokens()).await;
    for (path, budget) in [("/hooks/anything", 3), ("/approvals/some-link", 2)] {
        for _ in 0..budget {
            let r = s
                .http
                .get(format!("{}{path}", s.base))
                .send()
                .await
                .unwrap();
            assert_ne!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        }
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{path}");
        let wait: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
    }
    // The API is not limited this way.
    for _ in 0..10 {
        let (status, _) = s.get("/api/runs", Role::Viewer).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Guessing tokens is: refused bearer tokens spend the approvals budget (2 here), then the
    // address is refused (429 with Retry-After) whatever it presents, for the wait.
    for _ in 0..2 {
        let r = s
            .http
            .get(format!("{}/api/runs", s.base))
            .bearer_auth("a-guess")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = s
        .http
        .get(format!("{}/api/runs", s.base))
        .bearer_auth("another-guess")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the third guess is counted"
    );
    let (status, _) = s.get("/api/runs", Role::Viewer).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is refused for a while"
    );
    // The UI's sign-in page is not counted; posting it is, and a refusal is a page.
    let r = s
        .http
        .get(format!("{}/ui/sign-in", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_every_contract_metric_after_runs() {
    let s = server().await;
    let ok = s
        .start(
            "flaky",
            json!({"upn": "m@contoso.example", "password": SECRET}),
        )
        .await;
    s.wait_for(&ok, "succeeded").await;
    s.vendor.failing.store(true, Ordering::SeqCst);
    let bad = s.start("flaky", json!({"upn": "n@contoso.example"})).await;
    s.wait_for(&bad, "failed").await;
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains(SECRET));
    for name in [
        "tenure_runs_total",
        "tenure_step_attempts_total",
        "tenure_step_duration_seconds",
        "tenure_queue_depth",
        "tenure_vendor_errors_total",
        "tenure_webhooks_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    let sample = |prefix: &str, parts: &[&str]| {
        text.lines()
            .any(|l| l.starts_with(prefix) && parts.iter().all(|p| l.contains(p)))
    };
    assert!(
        sample("tenure_runs_total{", &["status=\"succeeded\""]),
        "{text}"
    );
    assert!(
        sample("tenure_runs_total{", &["status=\"failed\""]),
        "{text}"
    );
    assert!(
        sample(
            "tenure_step_attempts_total{",
            &["kind=\"http.request\"", "outcome=\"succeeded\""]
        ),
        "{text}"
    );
    assert!(
        sample(
            "tenure_step_attempts_total{",
            &["kind=\"http.request\"", "outcome=\"failed\""]
        ),
        "{text}"
    );
    assert!(
        sample(
            "tenure_step_duration_seconds_bucket{",
            &["kind=\"http.request\""]
        ),
        "{text}"
    );
    assert!(
        sample(
            "tenure_vendor_errors_total{",
            &["vendor=\"http\"", "code=\"vendor_said_no\""]
        ),
        "{text}"
    );
    assert!(sample("tenure_queue_depth", &[]), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runbooks_validate_and_draw() {
    let s = server().await;
    let post = |text: &'static str| {
        s.http
            .post(format!("{}/api/runbooks/validate?name=new.yaml", s.base))
            .bearer_auth(token(Role::Viewer))
            .header("content-type", "application/yaml")
            .body(text)
            .send()
    };
    let good: Value = post(GATE).await.unwrap().json().await.unwrap();
    assert_eq!(good["valid"], true, "{good}");
    assert_eq!(good["runbook"], "gate");
    let bad: Value = post("runbook: broken\nversion: 1\nsteps:\n  a:\n    uses: no.such.kind\n")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(bad["valid"], false);
    let diags = bad["diagnostics"].as_array().unwrap();
    assert!(
        diags
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("new.yaml:")),
        "{bad}"
    );
    for (format, needle, content_type) in [
        ("svg", "<svg", "image/svg+xml"),
        ("dot", "digraph", "text/vnd.graphviz"),
        ("mermaid", "flowchart", "text/plain"),
    ] {
        let r = s
            .http
            .get(format!(
                "{}/api/runbooks/flaky/graph?format={format}",
                s.base
            ))
            .bearer_auth(token(Role::Viewer))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(content_type));
        let text = r.text().await.unwrap();
        assert!(
            text.contains(needle) && text.contains("second"),
            "{format}: {text}"
        );
    }
    let (status, _) = s
        .get("/api/runbooks/flaky/graph?format=png", Role::Viewer)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Every API route, as (method, path template).
const ROUTES: [(&str, &str); 14] = [
    ("get", "/api/runbooks"),
    ("get", "/api/runbooks/{id}"),
    ("post", "/api/runbooks/validate"),
    ("get", "/api/runbooks/{id}/graph"),
    ("post", "/api/runs"),
    ("get", "/api/runs"),
    ("get", "/api/runs/{id}"),
    ("get", "/api/runs/{id}/events"),
    ("post", "/api/runs/{id}/cancel"),
    ("post", "/api/runs/{id}/retry"),
    ("post", "/api/runs/{id}/rollback"),
    ("get", "/api/approvals"),
    ("post", "/api/approvals/{run}/{step}"),
    ("get", "/api/openapi.json"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route() {
    let s = server().await;
    // No token needed.
    let (status, doc) = s.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()), ());
        }
    }
    let expected: BTreeMap<(String, String), ()> = ROUTES
        .iter()
        .map(|(m, p)| ((m.to_string(), p.to_string()), ()))
        .collect();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    let list = &doc["paths"]["/api/runs"]["get"]["parameters"];
    let query: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        query,
        ["status", "runbook", "tenant", "q", "limit", "cursor"],
        "{list}"
    );
    // Every documented route is served (not the router's "no such route").
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{id}", "x")
            .replace("{run}", "x")
            .replace("{step}", "y");
        let method: Method = method.to_uppercase().parse().unwrap();
        let body = (method == Method::POST).then(|| json!({}));
        let (status, body) = s
            .call(method.clone(), &concrete, Some(token(Role::Admin)), body)
            .await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if status == StatusCode::NOT_FOUND {
            assert_ne!(
                body["error"]["message"], "not found",
                "{method} {path} is not routed"
            );
        }
    }
}

/// A client that never finishes its request headers (slowloris) is disconnected after
/// `tenure_server::HEADER_READ_TIMEOUT` instead of holding a connection (a file descriptor)
/// for ever; other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server().await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /hooks/intake HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (status, _) = s.get("/healthz", Role::Viewer).await;
    assert_eq!(status, StatusCode::OK);
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the half-sent request was still open after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_timeout_gets_a_json_503() {
    use axum::middleware::from_fn_with_state;
    let app = axum::Router::new()
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/quick", axum::routing::get(|| async { "ok" }))
        .layer(from_fn_with_state(
            Duration::from_millis(100),
            tenure_server::middleware::timeout,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let started = Instant::now();
    let r = reqwest::get(format!("{base}/slow")).await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_secs(2));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "timeout");
    let r = reqwest::get(format!("{base}/quick")).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_over_the_limit_gets_a_json_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let section = ServerSection {
        max_body_bytes: Some(1000),
        ..Default::default()
    };
    let s = server_with(section, tokens()).await;
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let chunk = "x".repeat(800);
    let request = format!(
        "POST /api/runbooks/validate HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        token(Role::Viewer),
        chunk.len(),
        chunk.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    // Under the limit, the same way, it is read.
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "POST /api/runbooks/validate HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        token(Role::Viewer),
        chunk.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Everything logged by this test binary (every test's requests), captured once.
fn captured_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buffer
    })
    .clone()
}

struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_logs_carry_the_id_and_path_but_no_token_query_body_or_link() {
    let logs = captured_logs();
    let s = server().await;
    let id = s
        .start(
            "flaky",
            json!({"upn": "log@contoso.example", "password": SECRET}),
        )
        .await;
    s.wait_for(&id, "succeeded").await;
    let (status, _) = s.get("/api/runs?q=findme-query-42", Role::Viewer).await;
    assert_eq!(status, StatusCode::OK);
    let r = s
        .http
        .get(format!("{}/approvals/link-token-secret-77", s.base))
        .header("x-request-id", "trace-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-1");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("request_id=trace-me-1"), "{text}");
    assert!(text.contains("path=/approvals/***"), "{text}");
    assert!(
        text.contains("path=/api/runs") && text.contains("status=201"),
        "{text}"
    );
    for hidden in [
        SECRET,
        "findme-query-42",
        "link-token-secret-77",
        token(Role::Viewer),
        token(Role::Operator),
        token(Role::Approver),
        token(Role::Admin),
    ] {
        assert!(!text.contains(hidden), "`{hidden}` was logged");
    }
}
