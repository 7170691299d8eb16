//! Approval links over real HTTP: the server on a loopback port, the engine on a temporary
//! SQLite database, runs driven to their approval by a worker. The Teams and email kinds are
//! recorders here (what they were asked to send is what a person would receive); the real
//! kinds reaching the sandbox are exercised by the binary's end-to-end test.
//!
//! Every refusal is checked for its status and for leaving the run unchanged (the journal has
//! as many events after as before).

use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tenure_engine::machine::RunStatus;
use tenure_engine::{Engine, StartRun, Trigger};
use tenure_runbook::{compile, Plan, SourceFile};
use tenure_server::approvals::{notify, Claim, Links};
use tenure_server::{AppState, Library, LibrarySource, ServerConfig};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, StepError};

/// Records every call's parameters under its kind.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, Value)>>>, &'static str);

impl Executor for Recorder {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            self.0
                .lock()
                .unwrap()
                .push((self.1.to_string(), call.params.clone()));
            Ok(Outcome::Done(match self.1 {
                "http.request" => json!({"status": 200, "body": {}}),
                "notify.teams" => json!({"posted": true}),
                "licence.assign" => json!({"sku": "SPB", "sku_id": "s", "purchased": false}),
                _ => json!({"message_id": "m"}),
            }))
        })
    }
}

/// Fails every call (an unreachable mail server).
struct Failing;

impl Executor for Failing {
    fn execute<'a>(&'a self, _call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async {
            Err(StepError::permanent(
                "not_configured",
                "no mailbox to send from",
            ))
        })
    }
}

struct NoRunbooks;

impl LibrarySource for NoRunbooks {
    fn fingerprint(&self) -> u64 {
        0
    }
    fn load(&self) -> Library {
        Library::default()
    }
    fn compile(&self, _: &str, _: &str) -> (Option<Plan>, Vec<String>) {
        (None, Vec::new())
    }
}

struct Server {
    engine: Engine,
    links: Links,
    base: String,
    sent: Arc<Mutex<Vec<(String, Value)>>>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Hands the first card's link out and holds that post until released (a click that comes
/// while the request is still being sent).
#[derive(Clone)]
struct Holding {
    link: Arc<Mutex<Option<tokio::sync::oneshot::Sender<String>>>>,
    release: Arc<tokio::sync::Notify>,
}

impl Executor for Holding {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let first = self.link.lock().unwrap().take();
            if let Some(tx) = first {
                let url = call.params["links"]["Approve"].as_str().unwrap_or_default();
                let _ = tx.send(url.split('?').next().unwrap_or_default().to_string());
                self.release.notified().await;
            }
            Ok(Outcome::Done(json!({"posted": true})))
        })
    }
}

async fn server_with(email_fails: bool) -> Server {
    server_with_teams(email_fails, None).await
}

async fn server_with_teams(email_fails: bool, holding: Option<Holding>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let sent: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let mut registry = tenure_engine::builtin::registry();
    match holding {
        Some(h) => registry.insert("notify.teams", h),
        None => registry.insert("notify.teams", Recorder(sent.clone(), "notify.teams")),
    }
    if email_fails {
        registry.insert("notify.email", Failing);
    } else {
        registry.insert("notify.email", Recorder(sent.clone(), "notify.email"));
    }
    registry.insert("http.request", Recorder(sent.clone(), "http.request"));
    registry.insert("licence.assign", Recorder(sent.clone(), "licence.assign"));
    let slot = notify::LinkSlot::default();
    notify::wrap(&mut registry, slot.clone());
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let engine = Engine::open(
        &url,
        registry,
        Arc::new(|id: &str| Ok(json!({"id": id, "domain": "contoso.example", "name": "Contoso"}))),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let links = Links::new(&engine.derive_key("approval-links"), &base);
    slot.set(links.clone()).unwrap();
    // A price list, shown on the approval page for the seats a run may buy.
    let mut config = ServerConfig::default();
    config
        .server
        .prices
        .insert("SPB".into(), "AUD 32.90 per user per month".into());
    let state =
        AppState::new(engine.clone(), config, Arc::new(NoRunbooks)).with_links(links.clone());
    tokio::spawn(tenure_server::serve(
        state,
        listener,
        std::future::pending(),
    ));
    Server {
        engine,
        links,
        base,
        sent,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    }
}

async fn server() -> Server {
    server_with(false).await
}

fn plan(with: &str) -> Plan {
    // `notify: [teams, email]` unless the test says otherwise.
    let mut with = with.to_string();
    if !with.contains("notify:") {
        with.push_str(", notify: [teams, email]");
    }
    if !with.contains("message:") {
        with.push_str(", message: \"Offboard **{{inputs.user}}**? <script>alert(1)</script>\"");
    }
    let text = format!(
        "runbook: offboard\nversion: 3\ntenant: contoso\ninputs:\n  user: {{ type: email }}\n  token: {{ type: secret }}\nsteps:\n  ask:\n    uses: approval\n    with: {{ {with} }}\n  disable:\n    uses: http.request\n    needs: [ask]\n    with: {{ method: POST, url: \"http://vendor.invalid/disable\", json: {{ user: \"{{{{inputs.user}}}}\" }} }}\n  buy:\n    uses: licence.assign\n    needs: [ask]\n    with: {{ user: \"{{{{inputs.user}}}}\", sku: SPB, source: pax8 }}\n"
    );
    let src = SourceFile::new("offboard.yaml", text);
    let out = compile(&src, &tenure_steps::contract_catalogue());
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    out.plan.expect("compiles")
}

impl Server {
    /// Starts a run requested by `by` and drives it to its approval.
    async fn start(&self, with: &str, by: &str) -> String {
        let mut inputs = Map::new();
        inputs.insert("user".into(), json!("megan.bowen@contoso.example"));
        inputs.insert("token".into(), json!("hunter2-very-secret"));
        self.start_with(with, by, inputs).await
    }

    /// Starts a run with `inputs` requested by `by` and drives it to its approval.
    async fn start_with(&self, with: &str, by: &str, inputs: Map<String, Value>) -> String {
        let id = self
            .engine
            .start_run(StartRun {
                plan: Arc::new(plan(with)),
                inputs,
                trigger: Trigger::new("api", Some(by.into())),
                dedup_key: None,
            })
            .await
            .unwrap()
            .id;
        let status = self.engine.worker(0).drive(&id, true).await.unwrap();
        assert_eq!(status, RunStatus::Waiting);
        id
    }

    /// The link the Teams card for `approver` carried in run `run`.
    fn link(&self, run: &str, approver: &str) -> String {
        let sent = self.sent.lock().unwrap();
        let card = sent
            .iter()
            .rev()
            .find(|(k, p)| {
                k == "notify.teams"
                    && p["facts"]["For"] == approver
                    && p["links"]["Approve"]
                        .as_str()
                        .unwrap_or_default()
                        .contains(&self.base)
                    && self.claim_of(p["links"]["Approve"].as_str().unwrap()).run == run
            })
            .unwrap_or_else(|| panic!("a card for {approver}"));
        let url = card.1["links"]["Approve"].as_str().unwrap();
        url.split('?').next().unwrap().to_string()
    }

    fn claim_of(&self, url: &str) -> Claim {
        let token = url.split('?').next().unwrap().rsplit('/').next().unwrap();
        self.links.verify(token, 0).unwrap()
    }

    async fn journal_len(&self, run: &str) -> usize {
        self.engine.events(run, 0).await.unwrap().len()
    }

    async fn get(&self, url: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let r = self.http.get(url).send().await.unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.text().await.unwrap())
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .post(url)
            .header("user-agent", "Tests/1.0\t(x)")
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// The page's CSRF token.
    async fn csrf(&self, url: &str) -> String {
        let (status, _, page) = self.get(url).await;
        assert_eq!(status, 200, "{page}");
        let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        page[at..].split('"').next().unwrap().to_string()
    }

    async fn decide(&self, url: &str, decision: &str) -> (u16, String) {
        let csrf = self.csrf(url).await;
        self.post(
            url,
            &[
                ("csrf", &csrf),
                ("decision", decision),
                ("comment", "ok <b>by</b> me"),
            ],
        )
        .await
    }

    async fn status(&self, run: &str) -> RunStatus {
        self.engine.run(run).await.unwrap().status
    }
}

fn now() -> u64 {
    tenure_engine::store::now_ms().max(0) as u64
}

const ONE: &str = "approvers: [a@msp.example, b@msp.example]";
const TWO: &str = "approvers: [a@msp.example, b@msp.example, c@msp.example], quorum: 2";

#[tokio::test]
async fn each_approver_gets_a_card_and_an_email_with_their_own_link() {
    let s = server().await;
    let run = s.start(ONE, "ops@msp.example").await;
    let sent = s.sent.lock().unwrap().clone();
    for approver in ["a@msp.example", "b@msp.example"] {
        let card = sent
            .iter()
            .find(|(k, p)| k == "notify.teams" && p["facts"]["For"] == approver)
            .expect("a card");
        assert_eq!(card.1["facts"]["Runbook"], "offboard");
        assert_eq!(card.1["facts"]["Person"], "megan.bowen@contoso.example");
        assert_eq!(card.1["facts"]["Tenant"], "Contoso");
        assert!(card.1["facts"]["Expires"]
            .as_str()
            .unwrap()
            .ends_with("UTC"));
        let approve = card.1["links"]["Approve"].as_str().unwrap();
        let deny = card.1["links"]["Deny"].as_str().unwrap();
        assert!(
            approve.starts_with(&format!("{}/approvals/", s.base)),
            "{approve}"
        );
        assert!(approve.ends_with("?decision=approve") && deny.ends_with("?decision=deny"));
        let claim = s.claim_of(approve);
        assert_eq!(
            (claim.run.as_str(), claim.step.as_str()),
            (run.as_str(), "ask")
        );
        assert_eq!(claim.approver, approver);
        let mail = sent
            .iter()
            .find(|(k, p)| k == "notify.email" && p["to"] == json!([approver]))
            .expect("an email");
        let body = mail.1["body"].as_str().unwrap();
        assert!(body.contains(approve) && body.contains(deny), "{body}");
        assert!(mail.1["subject"].as_str().unwrap().contains("offboard"));
    }
    // The journal says who was notified and how, and holds no link.
    let events = s.engine.events(&run, 0).await.unwrap();
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        text.contains("a@msp.example via teams") && text.contains("b@msp.example via email"),
        "{text}"
    );
    assert!(
        !text.contains("/approvals/"),
        "a link was journaled: {text}"
    );
    let token = s.link(&run, "a@msp.example");
    let token = token.rsplit('/').next().unwrap();
    assert!(!text.contains(token.split('.').nth(1).unwrap()));
}

/// `notify: []` written in the runbook sends nothing (it is not an absent field that falls
/// back to the default `[email]`); the approvers decide through the API or the CLI.
#[tokio::test]
async fn notify_nothing_sends_nothing() {
    let s = server().await;
    let run = s
        .start(
            "approvers: [a@msp.example, b@msp.example], notify: []",
            "ops@msp.example",
        )
        .await;
    let sent = s.sent.lock().unwrap().clone();
    assert!(sent.is_empty(), "{sent:?}");
    let events = s.engine.events(&run, 0).await.unwrap();
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(" via "), "{text}");
}

/// A secret written into the message (RB0072 warns of it) is `***` on the page and in the
/// stored request, as everywhere else a secret is shown.
#[tokio::test]
async fn a_secret_in_the_message_is_masked_on_the_page_and_in_the_store() {
    let s = server().await;
    let run = s
        .start(
            "approvers: [a@msp.example], message: \"Token {{inputs.token}} for {{inputs.user}}\"",
            "ops@msp.example",
        )
        .await;
    let (status, _, page) = s.get(&s.link(&run, "a@msp.example")).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Token *** for megan.bowen@contoso.example"),
        "{page}"
    );
    assert!(!page.contains("hunter2"), "{page}");
    let record = s.engine.run(&run).await.unwrap();
    let stored = serde_json::to_string(&record.machine).unwrap();
    assert!(!stored.contains("hunter2"), "{stored}");
}

#[tokio::test]
async fn a_failed_notification_is_journaled_and_does_not_stop_the_others() {
    let s = server_with(true).await;
    let run = s.start(ONE, "ops@msp.example").await;
    let events = serde_json::to_string(&s.engine.events(&run, 0).await.unwrap()).unwrap();
    assert!(
        events.contains("a@msp.example via email failed: not_configured"),
        "{events}"
    );
    assert!(events.contains("b@msp.example via teams"), "{events}");
    assert_eq!(s.status(&run).await, RunStatus::Waiting);
    // The approver reached through Teams still decides.
    let (status, _) = s.decide(&s.link(&run, "b@msp.example"), "approve").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_page_shows_the_request_and_get_decides_nothing() {
    let s = server().await;
    let run = s.start(ONE, "ops@msp.example").await;
    let url = s.link(&run, "a@msp.example");
    let before = s.journal_len(&run).await;
    for _ in 0..3 {
        let (status, headers, page) = s.get(&format!("{url}?decision=approve")).await;
        assert_eq!(status, 200, "{page}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");
        // The UI's one style sheet, from this server; no inline style, no script at all.
        assert!(csp.contains("style-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("script-src"),
            "{csp}"
        );
        let css = tenure_server::ui::assets::css_url();
        assert!(
            page.contains(&format!("<link rel=\"stylesheet\" href=\"{css}\">")),
            "{page}"
        );
        assert!(
            !page.contains("<style") && !page.contains("style=\""),
            "{page}"
        );
        assert!(!page.contains("<script"), "{page}");
        let (status, css_headers, sheet) = s.get(&format!("{}{css}", s.base)).await;
        assert_eq!(status, 200);
        assert!(css_headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css"));
        assert!(sheet.contains("/* runbooks and approvals */"));
        // The decision comes first: who asks, for whom, in which tenant; the form last.
        let ask = page.find("asks you to approve").expect("the ask");
        assert!(ask < page.find("What happens after approval").unwrap());
        assert!(
            page.contains("for <strong>megan.bowen@contoso.example</strong>"),
            "{page}"
        );
        assert!(
            page.contains("in the tenant <strong>Contoso (contoso)</strong>"),
            "{page}"
        );
        assert!(
            page.contains("<textarea id=\"comment\" name=\"comment\""),
            "{page}"
        );
        assert!(
            page.contains("1 seat</strong> of <code>SPB</code>"),
            "{page}"
        );
        for shown in [
            "offboard v3",
            "megan.bowen@contoso.example",
            "Contoso",
            "ops@msp.example",
            "<strong>megan.bowen@contoso.example</strong>",
            "&lt;script&gt;",
            "disable",
            "http.request",
            "licence.assign",
            "through Pax8",
            "Price: <strong>AUD 32.90 per user per month</strong>",
            "<form method=\"post\">",
            "name=\"decision\" value=\"approve\"",
            "name=\"decision\" value=\"deny\"",
            "name=\"comment\"",
            "Nobody has decided yet",
        ] {
            assert!(page.contains(shown), "{shown} missing:\n{page}");
        }
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            !page.contains("hunter2"),
            "a secret input is shown:\n{page}"
        );
        assert!(page.contains("***"));
    }
    assert_eq!(s.journal_len(&run).await, before);
    assert_eq!(s.status(&run).await, RunStatus::Waiting);
}

/// A secret input the run was not given reads "not given" (not `null`, not `***`).
#[tokio::test]
async fn an_absent_secret_input_reads_not_given() {
    let s = server().await;
    let mut inputs = Map::new();
    inputs.insert("user".into(), json!("megan.bowen@contoso.example"));
    let run = s.start_with(ONE, "ops@msp.example", inputs).await;
    let (status, _, page) = s.get(&s.link(&run, "a@msp.example")).await;
    assert_eq!(status, 200, "{page}");
    let inputs = &page[page.find("id=\"inputs\"").expect("inputs")..];
    let inputs = &inputs[..inputs.find("</section>").unwrap()];
    assert!(
        inputs.contains("token</dt><dd><span class=\"muted\">not given</span>"),
        "{inputs}"
    );
    assert!(
        !inputs.contains("null") && !inputs.contains("***"),
        "{inputs}"
    );
}

#[tokio::test]
async fn the_pages_post_approves_and_the_run_finishes() {
    let s = server().await;
    let run = s.start(ONE, "ops@msp.example").await;
    let (status, page) = s.decide(&s.link(&run, "b@msp.example"), "approve").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You approved this request"), "{page}");
    assert!(page.contains("id=\"decision-result\""), "{page}");
    assert!(
        page.contains(&format!("<a id=\"run-page\" href=\"/ui/runs/{run}\">")),
        "{page}"
    );
    let status = s.engine.worker(0).drive(&run, false).await.unwrap();
    assert_eq!(status, RunStatus::Succeeded);
    let events = serde_json::to_string(&s.engine.events(&run, 0).await.unwrap()).unwrap();
    assert!(
        events.contains("\"source\":\"link from 127.0.0.1\""),
        "{events}"
    );
    assert!(
        events.contains("\"user_agent\":\"Tests/1.0(x)\""),
        "{events}"
    );
    assert!(events.contains("ok <b>by</b> me"), "{events}");
}

#[tokio::test]
async fn a_deny_denies() {
    let s = server().await;
    let run = s.start(TWO, "ops@msp.example").await;
    let (status, page) = s.decide(&s.link(&run, "c@msp.example"), "deny").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You denied this request"), "{page}");
    assert_eq!(s.status(&run).await, RunStatus::Denied);
}

#[tokio::test]
async fn a_quorum_of_two_decided_at_the_same_moment_counts_both() {
    let s = server().await;
    let run = s.start(TWO, "ops@msp.example").await;
    let (a, b) = (s.link(&run, "a@msp.example"), s.link(&run, "b@msp.example"));
    let (ca, cb) = (s.csrf(&a).await, s.csrf(&b).await);
    let (fa, fb) = (
        [("csrf", ca.as_str()), ("decision", "approve")],
        [("csrf", cb.as_str()), ("decision", "approve")],
    );
    let (ra, rb) = tokio::join!(s.post(&a, &fa), s.post(&b, &fb));
    assert_eq!((ra.0, rb.0), (200, 200), "{ra:?} {rb:?}");
    let gate = s
        .engine
        .run(&run)
        .await
        .unwrap()
        .machine
        .gate("ask")
        .cloned()
        .unwrap();
    assert_eq!(gate.approvals(), 2);
    assert_eq!(
        s.engine.worker(0).drive(&run, false).await.unwrap(),
        RunStatus::Succeeded
    );
    // The third approver's link now finds nothing waiting.
    let before = s.journal_len(&run).await;
    let (status, _, page) = s.get(&s.link(&run, "c@msp.example")).await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("no longer waiting"), "{page}");
    assert_eq!(s.journal_len(&run).await, before);
}

/// `POST`s `form` to `url` and checks the status, that the page says `says`, and that the run
/// did not change.
async fn refused(s: &Server, run: &str, url: &str, form: &[(&str, &str)], status: u16, says: &str) {
    let before = s.journal_len(run).await;
    let was = s.status(run).await;
    let (got, page) = s.post(url, form).await;
    assert_eq!(got, status, "{url}: {page}");
    assert!(page.contains(says), "{says} missing: {page}");
    assert!(page.contains("Nothing was changed"), "{page}");
    let (got, _, page) = s.get(url).await;
    if status != 403 || !says.contains("page has expired") {
        assert_eq!(got, status, "GET {url}: {page}");
    }
    assert_eq!(
        s.journal_len(run).await,
        before,
        "{url} changed the journal"
    );
    assert_eq!(s.status(run).await, was);
}

#[tokio::test]
async fn forged_tampered_expired_crossed_reused_and_csrf_less_links_change_nothing() {
    let s = server().await;
    let run = s.start(TWO, "ops@msp.example").await;
    let a = s.link(&run, "a@msp.example");
    let csrf = s.csrf(&a).await;
    let ok = |c: &str| vec![("csrf", c.to_string()), ("decision", "approve".to_string())];
    let form = ok(&csrf);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Forged: another key's token, and garbage.
    let forger = Links::new(&[1; 32], &s.base);
    let claim = s.claim_of(&a);
    refused(&s, &run, &forger.url(&claim), &form, 403, "not valid").await;
    refused(
        &s,
        &run,
        &format!("{}/approvals/nonsense", s.base),
        &form,
        403,
        "not valid",
    )
    .await;
    // Tampered: one character of the payload changed.
    let token = a.rsplit('/').next().unwrap();
    let mut chars: Vec<char> = token.chars().collect();
    chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
    let tampered = format!(
        "{}/approvals/{}",
        s.base,
        chars.into_iter().collect::<String>()
    );
    refused(&s, &run, &tampered, &form, 403, "not valid").await;
    // Expired.
    let mut old = claim.clone();
    old.expires_at_ms = 1;
    refused(&s, &run, &s.links.url(&old), &form, 410, "expired").await;
    // Cross-approver: a correctly signed link for someone the request does not name.
    let mut stranger = claim.clone();
    stranger.approver = "mallory@evil.example".into();
    refused(
        &s,
        &run,
        &s.links.url(&stranger),
        &form,
        403,
        "not an approver",
    )
    .await;
    // Cross-gate: a link of another request (another step, another attempt, another run).
    let mut other = claim.clone();
    other.attempt = 2;
    refused(
        &s,
        &run,
        &s.links.url(&other),
        &form,
        409,
        "earlier request",
    )
    .await;
    let mut other = claim.clone();
    other.step = "disable".into();
    refused(
        &s,
        &run,
        &s.links.url(&other),
        &form,
        404,
        "No such approval",
    )
    .await;
    // Missing, foreign and malformed CSRF tokens.
    refused(
        &s,
        &run,
        &a,
        &[("decision", "approve")],
        403,
        "page has expired",
    )
    .await;
    let b = s.link(&run, "b@msp.example");
    let foreign = s.links.csrf(b.rsplit('/').next().unwrap(), now());
    refused(
        &s,
        &run,
        &a,
        &[("csrf", &foreign), ("decision", "approve")],
        403,
        "page has expired",
    )
    .await;
    refused(
        &s,
        &run,
        &a,
        &[("csrf", "1.x"), ("decision", "approve")],
        403,
        "page has expired",
    )
    .await;
    let stale = s.links.csrf(token, now() - 2 * 3_600_000);
    refused(
        &s,
        &run,
        &a,
        &[("csrf", &stale), ("decision", "approve")],
        403,
        "page has expired",
    )
    .await;
    // No decision.
    let before = s.journal_len(&run).await;
    let (got, _) = s.post(&a, &[("csrf", &csrf), ("decision", "maybe")]).await;
    assert_eq!(got, 400);
    assert_eq!(s.journal_len(&run).await, before);

    // Reused: a decides once (quorum 2 keeps the gate open), then again.
    let (got, page) = s.post(&a, &form).await;
    assert_eq!(got, 200, "{page}");
    refused(&s, &run, &a, &form, 409, "already decided").await;
    // Already decided: b approves, the gate opens, c's link finds nothing waiting.
    assert_eq!(s.decide(&b, "approve").await.0, 200);
    let c = s.link(&run, "c@msp.example");
    let cc = s.links.csrf(c.rsplit('/').next().unwrap(), now());
    refused(
        &s,
        &run,
        &c,
        &[("csrf", &cc), ("decision", "deny")],
        409,
        "no longer waiting",
    )
    .await;
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_run() {
    let s = server().await;
    let run = s.start(ONE, "A@msp.example").await;
    // They were not sent a link...
    assert!(!s
        .sent
        .lock()
        .unwrap()
        .iter()
        .any(|(k, p)| k == "notify.teams" && p["facts"]["For"] == "a@msp.example"));
    let events = serde_json::to_string(&s.engine.events(&run, 0).await.unwrap()).unwrap();
    assert!(
        events.contains("not sent (they requested the run)"),
        "{events}"
    );
    // ...and a correctly signed one is refused, by the page and by the machine.
    let mut claim = s.claim_of(&s.link(&run, "b@msp.example"));
    claim.approver = "a@msp.example".into();
    let url = s.links.url(&claim);
    let csrf = s.links.csrf(url.rsplit('/').next().unwrap(), now());
    refused(
        &s,
        &run,
        &url,
        &[("csrf", &csrf), ("decision", "approve")],
        403,
        "requested this run",
    )
    .await;
    let e = s
        .engine
        .decide(tenure_engine::Decide {
            run_id: run.clone(),
            step: "ask".into(),
            approver: "a@msp.example".into(),
            approve: true,
            comment: None,
            source: "api".into(),
            user_agent: None,
        })
        .await
        .unwrap_err();
    assert!(e.to_string().contains("requested this run"), "{e}");
    assert_eq!(s.status(&run).await, RunStatus::Waiting);
}

#[tokio::test]
async fn an_approval_the_requester_would_have_to_complete_fails_at_once() {
    let s = server().await;
    let mut inputs = Map::new();
    inputs.insert("user".into(), json!("megan.bowen@contoso.example"));
    let id = s
        .engine
        .start_run(StartRun {
            plan: Arc::new(plan("approvers: [a@msp.example, b@msp.example], quorum: 2")),
            inputs,
            trigger: Trigger::new("api", Some("b@msp.example".into())),
            dedup_key: None,
        })
        .await
        .unwrap()
        .id;
    let status = s.engine.worker(0).drive(&id, true).await.unwrap();
    assert_eq!(status, RunStatus::Failed);
    let events = serde_json::to_string(&s.engine.events(&id, 0).await.unwrap()).unwrap();
    assert!(
        events.contains("besides the requester b@msp.example"),
        "{events}"
    );
}

#[tokio::test]
async fn an_expired_request_refuses_its_links() {
    let s = server().await;
    let run = s
        .start(
            "approvers: [a@msp.example, b@msp.example], expires: 1s",
            "ops@msp.example",
        )
        .await;
    let a = s.link(&run, "a@msp.example");
    let csrf = s.csrf(&a).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    refused(
        &s,
        &run,
        &a,
        &[("csrf", &csrf), ("decision", "approve")],
        410,
        "expired",
    )
    .await;
}

#[tokio::test]
async fn a_link_opened_while_its_request_is_being_sent_says_so_and_works_after() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let holding = Holding {
        link: Arc::new(Mutex::new(Some(tx))),
        release: Arc::default(),
    };
    let s = server_with_teams(false, Some(holding.clone())).await;
    let mut inputs = Map::new();
    inputs.insert("user".into(), json!("megan.bowen@contoso.example"));
    let run = s
        .engine
        .start_run(StartRun {
            plan: Arc::new(plan(ONE)),
            inputs,
            trigger: Trigger::new("api", Some("ops@msp.example".into())),
            dedup_key: None,
        })
        .await
        .unwrap()
        .id;
    let worker = s.engine.worker(0);
    let id = run.clone();
    let driving = tokio::spawn(async move { worker.drive(&id, true).await });
    let url = rx.await.unwrap();
    let before = s.journal_len(&run).await;
    let (status, headers, page) = s.get(&url).await;
    assert_eq!(status, 503, "{page}");
    assert_eq!(headers["retry-after"], "2");
    assert!(page.contains("still being sent"), "{page}");
    let (status, _) = s.post(&url, &[("decision", "approve")]).await;
    assert_eq!(status, 503);
    assert_eq!(s.journal_len(&run).await, before);
    holding.release.notify_one();
    assert_eq!(driving.await.unwrap().unwrap(), RunStatus::Waiting);
    assert_eq!(s.decide(&url, "approve").await.0, 200);
}
