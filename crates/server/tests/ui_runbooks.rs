//! The web UI's runbook catalogue, runbook page and start form, and its approvals list, over
//! real HTTP: the server on a loopback port, the engine on a temporary SQLite database,
//! people signed in with configured tokens (viewer, approver, operator).
//!
//! A start from the form must create exactly the run `POST /api/runs` would (same checked
//! inputs, trigger `ui` by the signed-in user); every refused start must create nothing; a
//! secret typed into the form must never come back in any page.

use std::sync::Arc;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::Client;
use serde_json::{json, Map, Value};
use tenure_engine::machine::RunStatus;
use tenure_engine::store::RunFilter;
use tenure_engine::{Engine, StartRun, Trigger};
use tenure_runbook::{Plan, SourceFile};
use tenure_server::config::{Role, TokenEntry};
use tenure_server::{AppState, Library, LibrarySource, RunbookEntry, ServerConfig};

const SECRET: &str = "Typed-Secret-Value-77";

const ONBOARD: &str = r#"runbook: onboard
version: 4
description: Creates a mailbox user and licenses them
tenant: "{{inputs.tenant}}"
inputs:
  tenant: { type: string, required: true, description: The managed tenant id }
  upn: { type: email, required: true, description: Their sign-in name }
  start: { type: date }
  at: { type: datetime }
  seats: { type: int, default: 1 }
  licences: { type: list, items: string, default: [SPB] }
  welcome: { type: bool, default: true }
  tier: { type: string, enum: [basic, premium], default: basic }
  password: { type: secret, required: true, description: First password }
  extra: { type: object }
triggers:
  - webhook: halo
    when: "{{eq payload.event 'new_starter'}}"
    map: { tenant: "{{payload.tenant}}", upn: "{{payload.upn}}", password: "{{payload.pw}}" }
steps:
  create:
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/users", json: { upn: "{{inputs.upn}}" } }
"#;

const NIGHTLY: &str = r#"runbook: nightly
version: 1
tenant: contoso
triggers:
  - schedule: "0 0 2 * * *"
    timezone: Europe/Berlin
    missed: skip
steps:
  ping:
    uses: http.request
    with: { method: GET, url: "http://vendor.invalid/ping" }
"#;

const BROKEN: &str = r#"runbook: broken
version: 1
tenant: contoso
steps:
  nope:
    uses: no.such.kind
"#;

const GATE: &str = r#"runbook: gate
version: 1
tenant: contoso
inputs:
  user: { type: email, required: true }
steps:
  ask:
    uses: approval
    with: { approvers: [approver@msp.example, root@msp.example], expires: 1h, message: "Disable **{{inputs.user}}**?" }
  after:
    needs: [ask]
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/after" }
"#;

/// The runbooks above, compiled as the server would (a broken one included).
struct Books;

impl LibrarySource for Books {
    fn fingerprint(&self) -> u64 {
        0
    }
    fn load(&self) -> Library {
        let entries = [
            ("onboard.yaml", ONBOARD),
            ("nightly.yaml", NIGHTLY),
            ("broken.yaml", BROKEN),
            ("gate.yaml", GATE),
        ]
        .iter()
        .map(|(name, text)| {
            let source = SourceFile::new(*name, *text);
            let out = tenure_runbook::compile(&source, &tenure_steps::contract_catalogue());
            let plan = out.plan.map(Arc::new);
            RunbookEntry {
                id: name.trim_end_matches(".yaml").to_string(),
                path: name.to_string(),
                plan,
                diagnostics: out.diagnostics.iter().map(|d| d.render(&source)).collect(),
                source: text.to_string(),
            }
        })
        .collect();
        Library { entries }
    }
    fn compile(&self, _: &str, _: &str) -> (Option<Plan>, Vec<String>) {
        (None, Vec::new())
    }
}

const TOKENS: [(&str, Role, &str, &str); 5] = [
    (
        "viewer@msp.example",
        Role::Viewer,
        "TENURE_UI_T_VIEWER",
        "ui-viewer-token-1",
    ),
    (
        "approver@msp.example",
        Role::Approver,
        "TENURE_UI_T_APPROVER",
        "ui-approver-token-1",
    ),
    (
        "ops@msp.example",
        Role::Operator,
        "TENURE_UI_T_OPERATOR",
        "ui-operator-token-1",
    ),
    (
        "root@msp.example",
        Role::Admin,
        "TENURE_UI_T_ADMIN",
        "ui-admin-token-1",
    ),
    (
        "other@msp.example",
        Role::Approver,
        "TENURE_UI_T_OTHER",
        "ui-other-token-1",
    ),
];

struct Server {
    base: String,
    engine: Engine,
    http: Client,
    _dir: tempfile::TempDir,
}

/// A signed-in browser: its session cookie.
struct Browser<'a> {
    s: &'a Server,
    cookie: String,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let engine = Engine::open(
        &url,
        tenure_engine::builtin::registry(),
        Arc::new(|id: &str| match id {
            "contoso" | "fabrikam" => {
                Ok(json!({"id": id, "name": id, "domain": format!("{id}.example")}))
            }
            other => Err(format!("`{other}` is not a managed tenant")),
        }),
    )
    .await
    .unwrap();
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
        tokens,
        ..Default::default()
    };
    let state = AppState::new(engine.clone(), config, Arc::new(Books));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(tenure_server::serve(
        state,
        listener,
        std::future::pending(),
    ));
    Server {
        base,
        engine,
        http: Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        _dir: dir,
    }
}

impl Server {
    async fn sign_in(&self, role: Role) -> Browser<'_> {
        self.sign_in_as(TOKENS.iter().find(|t| t.1 == role).unwrap().0)
            .await
    }

    async fn sign_in_as(&self, name: &str) -> Browser<'_> {
        let token = TOKENS.iter().find(|t| t.0 == name).unwrap().3;
        let r = self
            .http
            .post(format!("{}/ui/sign-in", self.base))
            .form(&[("token", token), ("next", "/ui/runbooks")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "sign-in");
        let set = r.headers()[SET_COOKIE].to_str().unwrap();
        Browser {
            s: self,
            cookie: set.split(';').next().unwrap().to_string(),
        }
    }

    async fn runs(&self) -> Vec<tenure_engine::store::RunRecord> {
        self.engine
            .runs(&RunFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

impl Browser<'_> {
    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let r = self
            .s
            .http
            .get(format!("{}{path}", self.s.base))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        (status, headers, r.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
        let r = self
            .s
            .http
            .post(format!("{}{path}", self.s.base))
            .header(COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_string());
        (status, location, r.text().await.unwrap())
    }

    /// The CSRF token of a page's forms.
    async fn csrf(&self, path: &str) -> String {
        let (status, _, page) = self.get(path).await;
        assert_eq!(status, 200, "{page}");
        let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
        page[at..].split('"').next().unwrap().to_string()
    }
}

/// The element of `page` that opens with `start` (up to the next `>`).
fn tag<'a>(page: &'a str, start: &str) -> &'a str {
    let at = page
        .find(start)
        .unwrap_or_else(|| panic!("{start} missing:\n{page}"));
    let rest = &page[at..];
    &rest[..rest.find('>').unwrap() + 1]
}

#[tokio::test]
async fn the_catalogue_lists_every_runbook_with_its_validation_and_triggers() {
    let s = server().await;
    let b = s.sign_in(Role::Viewer).await;
    let (status, headers, page) = b.get("/ui/runbooks").await;
    assert_eq!(status, 200, "{page}");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    for id in ["onboard", "nightly", "broken", "gate"] {
        assert!(
            page.contains(&format!(
                "<a class=\"runbook-link\" data-runbook=\"{id}\" href=\"/ui/runbooks/{id}\">"
            )),
            "{id}: {page}"
        );
    }
    let row = |id: &str| {
        let at = page
            .find(&format!("<tr class=\"runbook-row\" data-runbook=\"{id}\""))
            .unwrap();
        let rest = &page[at..];
        rest[..rest.find("</tr>").unwrap()].to_string()
    };
    let onboard = row("onboard");
    for shown in [
        ">4<",
        "Creates a mailbox user",
        "onboard.yaml",
        "lint warnings</span>",
        "webhook `halo` when {{eq payload.event &#39;new_starter&#39;}}",
    ] {
        let shown = shown.replace("&#39;", "'");
        assert!(onboard.contains(&shown), "{shown}: {onboard}");
    }
    assert!(
        row("nightly").contains("schedule `0 0 2 * * *` (Europe/Berlin; missed ticks: skipped)")
    );
    assert!(
        row("broken").contains("st-failed") && row("broken").contains("1 error"),
        "{}",
        row("broken")
    );
    assert!(row("gate").contains("started by people"));
    assert!(row("gate").contains(">ok<"), "{}", row("gate"));
}

#[tokio::test]
async fn the_runbook_page_shows_graph_inputs_triggers_and_typed_fields() {
    let s = server().await;
    let b = s.sign_in(Role::Operator).await;
    let (status, _, page) = b.get("/ui/runbooks/onboard").await;
    assert_eq!(status, 200, "{page}");
    // Facts, graph, inputs table, triggers, validation.
    for shown in [
        "Creates a mailbox user and licenses them",
        "onboard.yaml",
        "<div class=\"dag\"><svg",
        "href=\"/ui/runbooks/onboard/graph.svg\"",
        "The managed tenant id",
        "secret: shown as ***",
        "one of basic, premium",
        "webhook `halo`",
        "<pre class=\"diagnostics\">onboard.yaml:",
        ": warning[",
    ] {
        assert!(page.contains(shown), "{shown} missing:\n{page}");
    }
    // One typed field per input, named in.NAME with id in-NAME.
    let form = tag(&page, "<form id=\"start-run\"");
    assert!(
        form.contains("method=\"post\" action=\"/ui/runbooks/onboard/start\""),
        "{form}"
    );
    for (name, want) in [
        ("tenant", "type=\"text\""),
        ("upn", "type=\"email\""),
        ("start", "type=\"date\""),
        ("at", "type=\"datetime-local\""),
        ("seats", "type=\"number\""),
        ("welcome", "type=\"checkbox\""),
        ("password", "type=\"password\""),
    ] {
        let field = tag(
            &page,
            &format!("<input id=\"in-{name}\" name=\"in.{name}\""),
        );
        assert!(field.contains(want), "{name}: {field}");
    }
    assert!(
        tag(&page, "<input id=\"in-seats\"").contains("value=\"1\""),
        "default prefilled"
    );
    assert!(
        tag(&page, "<input id=\"in-welcome\"").contains("checked"),
        "bool default"
    );
    assert!(tag(&page, "<input id=\"in-tenant\"").contains("required"));
    assert!(!tag(&page, "<input id=\"in-password\"").contains("value="));
    assert!(
        page.contains("<textarea id=\"in-licences\" name=\"in.licences\""),
        "{page}"
    );
    assert!(
        page.contains("rows=\"4\">SPB</textarea>"),
        "list default, one per line"
    );
    assert!(page.contains("<textarea class=\"mono\" id=\"in-extra\" name=\"in.extra\""));
    let select = &page[page
        .find("<select id=\"in-tier\" name=\"in.tier\"")
        .expect("a select")..];
    let select = &select[..select.find("</select>").unwrap()];
    assert!(
        select.contains("<option value=\"basic\" selected>basic</option>"),
        "{select}"
    );
    assert!(
        select.contains("<option value=\"premium\">premium</option>"),
        "{select}"
    );
    assert!(
        page.contains("<label for=\"in-upn\"><code>upn</code> <abbr class=\"req\""),
        "{page}"
    );
    assert!(page.contains("<button class=\"primary\" id=\"start-button\" type=\"submit\">"));

    // The picture on its own.
    let (status, headers, svg) = b.get("/ui/runbooks/onboard/graph.svg").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    assert!(svg.starts_with("<svg") && svg.contains("create"), "{svg}");

    // A viewer sees the runbook but no form; unknown runbooks are 404 pages.
    let v = s.sign_in(Role::Viewer).await;
    let (status, _, page) = v.get("/ui/runbooks/onboard").await;
    assert_eq!(status, 200);
    assert!(
        !page.contains("start-run") && !page.contains("in-tenant"),
        "{page}"
    );
    assert!(page.contains("Your role may not start runs"));
    let (status, _, page) = v.get("/ui/runbooks/nope").await;
    assert_eq!(status, 404, "{page}");
    assert_eq!(v.get("/ui/runbooks/nope/graph.svg").await.0, 404);
}

#[tokio::test]
async fn a_runbook_that_does_not_compile_shows_its_errors_and_cannot_start() {
    let s = server().await;
    let b = s.sign_in(Role::Admin).await;
    let (status, _, page) = b.get("/ui/runbooks/broken").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("does not compile, so it cannot be started"),
        "{page}"
    );
    assert!(
        page.contains("broken.yaml:6:"),
        "diagnostics as the compiler prints them: {page}"
    );
    assert!(!page.contains("start-run"));
    let csrf = b.csrf("/ui/runbooks/onboard").await;
    let (status, _, page) = b
        .post("/ui/runbooks/broken/start", &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("cannot be started"), "{page}");
    assert_eq!(b.get("/ui/runbooks/broken/graph.svg").await.0, 409);
    assert!(s.runs().await.is_empty());
}

#[tokio::test]
async fn starting_from_the_form_creates_the_run_the_api_would() {
    let s = server().await;
    let b = s.sign_in(Role::Operator).await;
    let csrf = b.csrf("/ui/runbooks/onboard").await;
    let (status, location, page) = b
        .post(
            "/ui/runbooks/onboard/start",
            &[
                ("csrf", &csrf),
                ("in.tenant", "contoso"),
                ("in.upn", " megan.bowen@contoso.example "),
                ("in.start", "2026-12-01"),
                ("in.at", "2026-12-01T09:30"),
                ("in.seats", "3"),
                ("in.licences", "SPB\r\n\r\nO365_BUSINESS_PREMIUM\r\n"),
                ("in.tier", "premium"),
                ("in.password", SECRET),
                ("in.extra", "{\"desk\": 12}"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let runs = s.runs().await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(
        location.as_deref(),
        Some(format!("/ui/runs/{}", run.id).as_str())
    );
    assert_eq!(run.plan.runbook, "onboard");
    let t = &run.context["trigger"];
    assert_eq!(
        (t["source"].as_str(), t["by"].as_str()),
        (Some("ui"), Some("ops@msp.example"))
    );
    let inputs = &run.context["inputs"];
    assert_eq!(inputs["tenant"], "contoso");
    assert_eq!(inputs["upn"], "megan.bowen@contoso.example");
    assert_eq!(inputs["start"], "2026-12-01");
    assert_eq!(inputs["at"], "2026-12-01T09:30:00+00:00");
    assert_eq!(inputs["seats"], 3);
    assert_eq!(inputs["licences"], json!(["SPB", "O365_BUSINESS_PREMIUM"]));
    assert_eq!(inputs["welcome"], false, "an unticked box is false");
    assert_eq!(inputs["tier"], "premium");
    assert_eq!(inputs["extra"], json!({"desk": 12}));
    assert_ne!(inputs["password"], SECRET, "secrets are stored sealed");
    assert!(!serde_json::to_string(&run.context)
        .unwrap()
        .contains(SECRET));

    // The same inputs through the engine as the API sends them give the same run context.
    let api = s
        .engine
        .start_run(StartRun {
            plan: run.plan.clone(),
            inputs: serde_json::from_value::<Map<String, Value>>(json!({
                "tenant": "contoso", "upn": "megan.bowen@contoso.example", "start": "2026-12-01",
                "at": "2026-12-01T09:30:00Z", "seats": 3, "licences": ["SPB", "O365_BUSINESS_PREMIUM"],
                "welcome": false, "tier": "premium", "password": SECRET, "extra": {"desk": 12}
            }))
            .unwrap(),
            trigger: Trigger::new("api", Some("ops@msp.example".into())),
            dedup_key: None,
        })
        .await
        .unwrap();
    let api = s.engine.run(&api.id).await.unwrap();
    let strip = |v: &Value| {
        let mut v = v.clone();
        v["password"] = json!("sealed");
        v
    };
    assert_eq!(strip(&api.context["inputs"]), strip(inputs));

    // Optional fields left blank take their defaults.
    let (status, _, page) = b
        .post(
            "/ui/runbooks/onboard/start",
            &[
                ("csrf", &csrf),
                ("in.tenant", "fabrikam"),
                ("in.upn", "a@fabrikam.example"),
                ("in.password", SECRET),
                ("in.welcome", "true"),
                ("in.seats", ""),
                ("in.licences", ""),
                ("in.tier", ""),
            ],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let newest = &s.runs().await[0];
    let inputs = &newest.context["inputs"];
    assert_eq!(inputs["seats"], 1);
    assert_eq!(inputs["licences"], json!(["SPB"]));
    assert_eq!(inputs["tier"], "basic");
    assert_eq!(inputs["welcome"], true);
    assert_eq!(inputs["start"], Value::Null);
}

#[tokio::test]
async fn bad_inputs_come_back_with_field_errors_values_kept_secrets_not() {
    let s = server().await;
    let b = s.sign_in(Role::Operator).await;
    let csrf = b.csrf("/ui/runbooks/onboard").await;
    let (status, _, page) = b
        .post(
            "/ui/runbooks/onboard/start",
            &[
                ("csrf", &csrf),
                ("in.tenant", "contoso"),
                ("in.upn", "not-an-email"),
                ("in.start", "2026-02-30"),
                ("in.seats", "three"),
                ("in.tier", "gold"),
                ("in.password", SECRET),
                ("in.extra", "[1]"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("<div class=\"errors\" role=\"alert\">"),
        "{page}"
    );
    for (field, says) in [
        ("upn", "`not-an-email` is not an email address"),
        ("start", "`2026-02-30` is not a date (YYYY-MM-DD)"),
        ("seats", "`three` is not an integer"),
        ("tier", "`gold` is not one of `basic`, `premium`"),
        ("extra", "expected a JSON object"),
    ] {
        let err = &page[page
            .find(&format!("<div class=\"field-error\" id=\"err-{field}\">"))
            .unwrap_or_else(|| panic!("no field error for {field}:\n{page}"))..];
        assert!(
            err[..err.find("</div></div>").unwrap()].contains(says),
            "{field}: {err}"
        );
        assert!(tag(&page, &format!("id=\"in-{field}\"")).contains("aria-invalid=\"true\""));
    }
    // Values kept, the secret not.
    assert!(tag(&page, "<input id=\"in-upn\"").contains("value=\"not-an-email\""));
    assert!(tag(&page, "<input id=\"in-tenant\"").contains("value=\"contoso\""));
    assert!(!page.contains(SECRET), "the secret came back:\n{page}");
    assert!(s.runs().await.is_empty(), "nothing created");

    // Missing required fields (the secret too) are named; the secret never shown.
    let (status, _, page) = b
        .post(
            "/ui/runbooks/onboard/start",
            &[("csrf", &csrf), ("in.upn", "x@y.example")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"err-tenant\""), "{page}");
    assert!(page.contains("id=\"err-password\""), "{page}");
    assert!(page.contains("is required"), "{page}");
    // A secret that does not fit is refused without echoing it.
    let (status, _, page) = b
        .post(
            "/ui/runbooks/onboard/start",
            &[
                ("csrf", &csrf),
                ("in.tenant", "nowhere"),
                ("in.upn", "x@y.example"),
                ("in.password", SECRET),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("`nowhere` is not a managed tenant"), "{page}");
    assert!(!page.contains(SECRET));
    assert!(s.runs().await.is_empty(), "nothing created");
}

#[tokio::test]
async fn a_viewer_or_a_form_without_csrf_starts_nothing() {
    let s = server().await;
    let good = [
        ("in.tenant", "contoso"),
        ("in.upn", "megan.bowen@contoso.example"),
        ("in.password", SECRET),
    ];
    // A viewer forcing the POST, with a valid CSRF token of their own session.
    let v = s.sign_in(Role::Viewer).await;
    let csrf = v.csrf("/ui/runbooks").await;
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(&good);
    let (status, _, page) = v.post("/ui/runbooks/onboard/start", &form).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("may not start runs"), "{page}");
    // An approver too.
    let a = s.sign_in(Role::Approver).await;
    let csrf = a.csrf("/ui/runbooks").await;
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(&good);
    assert_eq!(a.post("/ui/runbooks/onboard/start", &form).await.0, 403);
    // An operator without the token, with a wrong one, or from another site.
    let o = s.sign_in(Role::Operator).await;
    assert_eq!(o.post("/ui/runbooks/onboard/start", &good).await.0, 403);
    let mut form = vec![("csrf", "0123456789abcdef0123456789abcdef")];
    form.extend_from_slice(&good);
    assert_eq!(o.post("/ui/runbooks/onboard/start", &form).await.0, 403);
    let csrf = o.csrf("/ui/runbooks").await;
    let r = s
        .http
        .post(format!("{}/ui/runbooks/onboard/start", s.base))
        .header(COOKIE, &o.cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("in.tenant", "contoso")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Without a session: sent to sign in.
    let r = s
        .http
        .post(format!("{}/ui/runbooks/onboard/start", s.base))
        .form(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/ui/sign-in"));
    assert!(s.runs().await.is_empty(), "nothing created");
}

/// Starts a `gate` run requested by `by` and drives it to its approval.
async fn waiting(s: &Server, by: &str) -> String {
    let library = Books.load();
    let plan = library.get("gate").unwrap().plan.clone().unwrap();
    let id = s
        .engine
        .start_run(StartRun {
            plan,
            inputs: serde_json::from_value(json!({"user": "megan.bowen@contoso.example"})).unwrap(),
            trigger: Trigger::new("api", Some(by.into())),
            dedup_key: None,
        })
        .await
        .unwrap()
        .id;
    assert_eq!(
        s.engine.worker(0).drive(&id, true).await.unwrap(),
        RunStatus::Waiting
    );
    id
}

#[tokio::test]
async fn the_approvals_list_shows_what_waits_and_decides_through_the_engine() {
    let s = server().await;
    let run = waiting(&s, "ops@msp.example").await;
    let a = s.sign_in(Role::Approver).await;
    let (status, _, page) = a.get("/ui/approvals").await;
    assert_eq!(status, 200, "{page}");
    let card = tag(&page, "<div class=\"card pending\"");
    assert!(
        card.contains(&format!("data-run=\"{run}\" data-step=\"ask\"")),
        "{card}"
    );
    for shown in [
        format!("href=\"/ui/runs/{run}\""),
        "megan.bowen@contoso.example".to_string(),
        "ops@msp.example".to_string(),
        "Disable **megan.bowen@contoso.example**?".to_string(),
        "name=\"decision\" value=\"approve\"".to_string(),
        format!("action=\"/ui/approvals/{run}/ask\""),
    ] {
        assert!(page.contains(&shown), "{shown} missing:\n{page}");
    }
    // A viewer lists nothing (not an approver) and may not decide even by forcing it.
    let v = s.sign_in(Role::Viewer).await;
    let (_, _, page) = v.get("/ui/approvals").await;
    assert!(page.contains("Nothing is waiting for your decision") && !page.contains("data-run="));
    let csrf = v.csrf("/ui/approvals").await;
    let before = s.engine.events(&run, 0).await.unwrap().len();
    let path = format!("/ui/approvals/{run}/ask");
    let (status, _, _) = v
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(status, 403);
    // No CSRF token: refused.
    assert_eq!(a.post(&path, &[("decision", "approve")]).await.0, 403);
    // Not an approver of this step: the refusal says so.
    let other = s.sign_in_as("other@msp.example").await;
    let csrf = other.csrf("/ui/approvals").await;
    let (status, _, page) = other
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("id=\"decision-refused\"") && page.contains("is not an approver"),
        "{page}"
    );
    assert_eq!(s.engine.events(&run, 0).await.unwrap().len(), before);

    // The approver decides; the engine records it with source `ui`.
    let csrf = a.csrf("/ui/approvals").await;
    let (status, location, page) = a
        .post(
            &path,
            &[
                ("csrf", &csrf),
                ("decision", "approve"),
                ("comment", "fine by me"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let location = location.unwrap();
    assert_eq!(location, format!("/ui/approvals?decided={run}&step=ask"));
    let (_, _, page) = a.get(&location).await;
    assert!(
        page.contains("id=\"decision-recorded\"") && page.contains("You approved step"),
        "{page}"
    );
    assert!(
        !page.contains("class=\"card pending\""),
        "decided: no longer pending\n{page}"
    );
    let record = s.engine.run(&run).await.unwrap();
    let gate = record.machine.gate("ask").unwrap();
    assert_eq!(gate.decisions[0].approver, "approver@msp.example");
    assert_eq!(gate.decisions[0].source, "ui");
    assert_eq!(gate.decisions[0].comment.as_deref(), Some("fine by me"));
    // A second decision is refused by the machine, shown as it said.
    let (status, _, page) = a
        .post(&path, &[("csrf", &csrf), ("decision", "deny")])
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("The decision was refused"), "{page}");
}

#[tokio::test]
async fn the_requester_is_refused_by_the_machine_in_the_ui() {
    let s = server().await;
    // The admin requested it and is named as an approver: the machine refuses them.
    let run = waiting(&s, "root@msp.example").await;
    let root = s.sign_in(Role::Admin).await;
    let (_, _, page) = root.get("/ui/approvals").await;
    let csrf = root.csrf("/ui/approvals").await;
    let before = s.engine.events(&run, 0).await.unwrap().len();
    let path = format!("/ui/approvals/{run}/ask");
    let (status, _, page2) = root
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(status, 403, "{page}\n{page2}");
    assert!(page2.contains("The decision was refused"), "{page2}");
    assert_eq!(s.engine.events(&run, 0).await.unwrap().len(), before);
    // An operator may not decide at all.
    let o = s.sign_in(Role::Operator).await;
    let csrf = o.csrf("/ui/approvals").await;
    let (status, _, page) = o
        .post(&path, &[("csrf", &csrf), ("decision", "approve")])
        .await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("may not decide approvals"), "{page}");
    assert_eq!(s.engine.events(&run, 0).await.unwrap().len(), before);
}

#[tokio::test]
async fn a_form_sent_twice_starts_one_run() {
    let s = server().await;
    let b = s.sign_in(Role::Operator).await;
    let (_, _, page) = b.get("/ui/runbooks/onboard").await;
    let once = tag(&page, "<input type=\"hidden\" name=\"once\"");
    let once = once
        .split("value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(once.len(), 32, "{once}");
    let csrf = b.csrf("/ui/runbooks/onboard").await;
    let form = [
        ("csrf", csrf.as_str()),
        ("once", once),
        ("in.tenant", "contoso"),
        ("in.upn", "megan.bowen@contoso.example"),
        ("in.password", SECRET),
    ];
    let first = b.post("/ui/runbooks/onboard/start", &form).await;
    let second = b.post("/ui/runbooks/onboard/start", &form).await;
    assert_eq!((first.0, second.0), (303, 303));
    assert_eq!(first.1, second.1, "the same run");
    assert_eq!(s.runs().await.len(), 1);
    // A fresh page is a fresh form.
    let (_, _, page) = b.get("/ui/runbooks/onboard").await;
    assert!(!page.contains(once));
}
