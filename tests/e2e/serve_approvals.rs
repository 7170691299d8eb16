//! Approval links through the binary: `tenure sandbox serve`, `tenure serve` (its workers run
//! the approval and send the links) and runs started by a signed ticket webhook (a repeated
//! delivery answers the same run). The card lands in the sandbox's Teams messages and the
//! email in its mail, both with the link; a GET decides nothing; the page's form approves and
//! the run finishes; another run is denied through its link.

use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const RUNBOOK: &str = "runbook: offboard-approved\nversion: 1\ntenant: contoso\ninputs:\n  user: { type: email }\ntriggers:\n  - webhook: intake\n    map: { user: \"{{payload.user}}\" }\nsteps:\n  ask:\n    uses: approval\n    with:\n      approvers: [it.lead@msp.example, cfo@msp.example]\n      message: \"Offboard **{{inputs.user}}**?\"\n      notify: [teams, email]\n  done:\n    uses: notify.teams\n    needs: [ask]\n    with: { message: \"{{inputs.user}} offboarded, approved by {{steps.ask.outputs.decided_by}}\" }\n";

/// A generic intake webhook whose requester is a service-desk agent (no approver).
pub(crate) const CONFIG: &str = "[[webhooks]]\nsource = \"intake\"\nkind = \"generic\"\nsecret_env = \"INTAKE_HOOK_SECRET\"\ndedup = \"{{payload.request_id}}\"\nrequester = \"{{payload.requested_by}}\"\n";
/// The intake webhook's secret (`INTAKE_HOOK_SECRET`), for tests that sign their own bodies.
pub(crate) const HOOK_SECRET: &str = "e2e-intake-secret";

/// A sandbox and a `tenure serve` using it (approvals send their links there), with a
/// configuration and a runbook library in a temporary directory. Other tests (the browser
/// tests) start theirs through [`Setup::start`].
pub(crate) struct Setup {
    _dir: tempfile::TempDir,
    /// The database URL (`sqlite:…`).
    pub(crate) db: String,
    /// The sandbox's base URL.
    pub(crate) sandbox: String,
    _sandbox: crate::sandbox::Server,
    /// The server (its log helps a failing assertion).
    pub(crate) serve: crate::served::Served,
    /// The server's base URL.
    pub(crate) base: String,
}

async fn setup() -> Setup {
    Setup::start(CONFIG, &[("offboard.yaml", RUNBOOK)], &[])
}

impl Setup {
    /// Starts the sandbox and `tenure serve` with `config` as `tenure.toml` (the intake
    /// webhook's secret is set), the `runbooks` (file name, text) and `env`.
    pub(crate) fn start(config: &str, runbooks: &[(&str, &str)], env: &[(&str, &str)]) -> Setup {
        Setup::start_with(config, runbooks, env, &[])
    }

    /// [`Setup::start`] with more arguments for `tenure serve` (e.g. `--no-workers`).
    pub(crate) fn start_with(
        config: &str,
        runbooks: &[(&str, &str)],
        env: &[(&str, &str)],
        serve_args: &[&str],
    ) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let (sandbox_proc, sandbox) = crate::sandbox::serve(&dir.path().join("state.json"));
        let db = format!("sqlite:{}", dir.path().join("t.db").display());
        let library = dir.path().join("runbooks");
        std::fs::create_dir(&library).unwrap();
        for (name, text) in runbooks {
            std::fs::write(library.join(name), text).unwrap();
        }
        std::fs::write(dir.path().join("tenure.toml"), config).unwrap();
        let mut command = crate::Tenure::new();
        command
            .args([
                "--db",
                &db,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--runbooks",
            ])
            .arg(&library)
            .args(serve_args)
            .current_dir(dir.path())
            .env_remove("TENURE_CONFIG")
            .env("TENURE_SANDBOX", &sandbox)
            .env("INTAKE_HOOK_SECRET", HOOK_SECRET)
            // No `[teams]`, `[email]` or TENURE_SANDBOX_SMTP: the defaults reach the sandbox.
            .env_remove("TENURE_SANDBOX_SMTP");
        for (key, value) in env {
            command.env(key, value);
        }
        let serve = crate::served::Served::start(&mut command);
        let base = serve.base.clone();
        Setup {
            db,
            sandbox,
            _sandbox: sandbox_proc,
            serve,
            base,
            _dir: dir,
        }
    }

    /// Delivers an intake ticket for `user` (signed like the intake system signs), as often
    /// as `deliveries` says, and returns the run id and each answer's status.
    pub(crate) async fn deliver(
        &self,
        ticket: &str,
        user: &str,
        deliveries: usize,
    ) -> (String, Vec<u16>) {
        use hmac::{Hmac, Mac};
        let body = serde_json::json!({
            "request_id": ticket,
            "requested_by": "ops@msp.example",
            "user": user,
        })
        .to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let (mut run, mut statuses) = (String::new(), Vec::new());
        for _ in 0..deliveries {
            let r = reqwest::Client::new()
                .post(format!("{}/hooks/intake", self.base))
                .header("content-type", "application/json")
                .header("x-tenure-signature", &signature)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
            let answer: Value = r.json().await.unwrap();
            let id = answer["run_id"].as_str().unwrap_or_default().to_string();
            assert!(!id.is_empty(), "{answer}");
            assert!(
                run.is_empty() || run == id,
                "a repeat started another run: {answer}"
            );
            run = id;
        }
        (run, statuses)
    }

    /// The directory holding `tenure.toml`, the database and the runbook library.
    pub(crate) fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// What the sandbox holds now (`GET /_sandbox/state`).
    pub(crate) async fn state(&self) -> Value {
        reqwest::get(format!("{}/_sandbox/state", self.sandbox))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The `Approve` link of the card the sandbox received for `approver` in `run`, waiting
    /// for the workers to send it.
    pub(crate) async fn card_link(&self, run: &str, approver: &str) -> String {
        let started = Instant::now();
        loop {
            let state = self.state().await;
            for post in state["inbox"]["teams"].as_array().into_iter().flatten() {
                let content = &post["body"]["attachments"][0]["content"];
                let facts = content["body"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b["facts"].as_array())
                    .flatten()
                    .map(|f| {
                        (
                            f["title"].as_str().unwrap_or_default(),
                            f["value"].as_str().unwrap_or_default(),
                        )
                    })
                    .collect::<Vec<_>>();
                if facts.contains(&("Run", run)) && facts.contains(&("For", approver)) {
                    let actions = content["actions"].as_array().unwrap();
                    assert_eq!(actions[0]["type"], "Action.OpenUrl");
                    assert_eq!(actions[0]["title"], "Approve");
                    assert_eq!(actions[1]["title"], "Deny");
                    return actions[0]["url"].as_str().unwrap().to_string();
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no card for {approver} in run {run}: {state}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn journal(&self, run: &str) -> Vec<Value> {
        let o = crate::Tenure::new()
            .args(["--db", &self.db, "log", run, "--json"])
            .output();
        serde_json::from_slice(&o.stdout).unwrap_or_default()
    }

    /// Waits until the run's approval is requested (every notification has been sent then).
    pub(crate) async fn requested(&self, run: &str) {
        let started = Instant::now();
        while !self
            .journal(run)
            .iter()
            .any(|e| e["kind"]["type"] == "approval_requested")
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "run {run} asked nobody: {:?}",
                self.journal(run)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the run to end and returns its final status.
    pub(crate) async fn ended(&self, run: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(e) = self
                .journal(run)
                .iter()
                .find(|e| e["kind"]["type"] == "run_finished")
            {
                return e["kind"]["status"].as_str().unwrap_or_default().to_string();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "run {run} did not end: {:?}\n{}",
                self.journal(run),
                self.serve.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The CSRF token of an approval page's form.
pub(crate) fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field: {page}"))
        + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn approval_links_reach_the_sandbox_and_the_pages_form_decides() {
    let s = setup().await;
    let http = reqwest::Client::new();
    let (run, answers) = s
        .deliver("REQ-1001", "megan.bowen@contoso.example", 2)
        .await;
    // The first delivery created the run; the repeat answers the same run.
    assert_eq!(answers, [202, 200]);
    let approve = s.card_link(&run, "it.lead@msp.example").await;
    assert!(
        approve.starts_with(&format!("{}/approvals/", s.base)),
        "{approve}"
    );
    // The email to the same approver carries the same link.
    s.requested(&run).await;
    let page_url = approve.split('?').next().unwrap().to_string();
    let state = s.state().await;
    let mail = state["inbox"]["email"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m.to_string().contains(&page_url) && m.to_string().contains("it.lead@msp.example")
        })
        .unwrap_or_else(|| panic!("no email with the link: {}", state["inbox"]["email"]));
    assert!(mail.to_string().contains("offboard-approved"), "{mail}");
    // The journal says who was notified, without the link.
    let journal = serde_json::to_string(&s.journal(&run)).unwrap();
    assert!(
        journal.contains("it.lead@msp.example via teams"),
        "{journal}"
    );
    assert!(journal.contains("cfo@msp.example via email"), "{journal}");
    assert!(!journal.contains("/approvals/"), "{journal}");

    // GET decides nothing.
    let before = s.journal(&run).len();
    let page = http.get(&approve).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let page = page.text().await.unwrap();
    assert!(
        page.contains("megan.bowen@contoso.example") && page.contains("notify.teams"),
        "{page}"
    );
    assert_eq!(s.journal(&run).len(), before);

    // Without the page's CSRF token nothing is decided; with it the run is approved.
    let r = http
        .post(&page_url)
        .form(&[("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.journal(&run).len(), before);
    let r = http
        .post(&page_url)
        .header("user-agent", "e2e-browser/1")
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("decision", "approve"),
            ("comment", "fine"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(s.ended(&run).await, "succeeded");
    let decided = s
        .journal(&run)
        .into_iter()
        .find(|e| e["kind"]["type"] == "approval_decided")
        .unwrap()["kind"]
        .clone();
    assert_eq!(decided["approver"], "it.lead@msp.example");
    assert_eq!(decided["source"], "link from 127.0.0.1");
    assert_eq!(decided["user_agent"], "e2e-browser/1");
    let log = crate::Tenure::new()
        .args(["--db", &s.db, "log", &run])
        .output();
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.contains("it.lead@msp.example chose approve (link from 127.0.0.1, e2e-browser/1)"),
        "{log}"
    );
    assert!(
        log.contains("requested by ops@msp.example; notified: it.lead@msp.example via teams"),
        "{log}"
    );
    // The link decided once.
    assert_eq!(http.get(&approve).send().await.unwrap().status(), 409);

    // A second run is denied through its link.
    let (second, _) = s
        .deliver("REQ-1002", "alex.wilber@contoso.example", 1)
        .await;
    let link = s.card_link(&second, "cfo@msp.example").await;
    s.requested(&second).await;
    let page_url = link.split('?').next().unwrap().to_string();
    let page = http.get(&link).send().await.unwrap().text().await.unwrap();
    let r = http
        .post(&page_url)
        .form(&[("csrf", csrf_of(&page).as_str()), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.ended(&second).await, "denied");
}
