//! `tenure sandbox serve` as its own process, with its state kept in a file.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::{json, Value};

pub(crate) struct Server(crate::Proc);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the sandbox on a free port and returns its base URL (read from its first line).
pub(crate) fn serve(state: &std::path::Path) -> (Server, String) {
    let mut child = crate::Tenure::new()
        .args([
            "sandbox",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--state",
            state.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    reader.read_line(&mut line).unwrap();
    // Keep draining what the server writes so it never meets a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (Server(child), url)
}

/// Runs `fut` to its end on a runtime of its own (for the tests that are not async).
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

/// The sandbox's whole state (`GET /_sandbox/state`).
pub(crate) async fn state_of(url: &str) -> Value {
    reqwest::get(format!("{url}/_sandbox/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// [`state_of`], for the tests that are not async.
pub(crate) fn state(url: &str) -> Value {
    block_on(state_of(url))
}

/// The users of the first tenant (`contoso`) of a [`state`].
pub(crate) fn users(state: &Value) -> &Vec<Value> {
    state["tenants"][0]["users"].as_array().unwrap()
}

/// The user `upn` of the first tenant of a [`state`]; panics when there is none.
pub(crate) fn user<'a>(state: &'a Value, upn: &str) -> &'a Value {
    users(state)
        .iter()
        .find(|u| u["userPrincipalName"] == upn)
        .unwrap_or_else(|| panic!("no user {upn}"))
}

/// A Graph token for the sandbox's `contoso` tenant through client credentials, as an
/// administrator's tool would get one.
pub(crate) async fn graph_token(url: &str) -> String {
    tenure_sandbox::testing::graph_token(url, "contoso")
        .await
        .unwrap()
}

/// Creates a user in the sandbox's `contoso` tenant through Graph, as an administrator would
/// (a client-credentials token, then `POST /users`); returns the answer's status.
pub(crate) async fn create_user(url: &str, upn: &str, display_name: &str) -> u16 {
    let http = reqwest::Client::new();
    let token = graph_token(url).await;
    let nickname = upn.split('@').next().unwrap_or(upn).replace('.', "");
    http.post(format!("{url}/graph.microsoft.com/v1.0/users"))
        .bearer_auth(token)
        .json(&json!({"accountEnabled": true, "displayName": display_name, "mailNickname": nickname, "userPrincipalName": upn, "passwordProfile": {"password": "Str0ng!Passw0rd"}}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `PATCH /users/{upn}` in the sandbox's `contoso` tenant, as an administrator would; panics
/// unless it succeeds.
pub(crate) fn patch_user(url: &str, upn: &str, body: Value) {
    block_on(async {
        let http = reqwest::Client::new();
        let token = graph_token(url).await;
        let status = http
            .patch(format!("{url}/graph.microsoft.com/v1.0/users/{upn}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "PATCH {upn}: {status}");
    });
}

#[tokio::test]
async fn sandbox_process_serves_and_keeps_state_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let upn = "restart.survivor@contoso.example";
    {
        let (_server, url) = serve(&state);
        assert_eq!(create_user(&url, upn, "S").await, 201);
    }
    let (_server, url) = serve(&state);
    let state = state_of(&url).await;
    assert!(
        users(&state).iter().any(|u| u["userPrincipalName"] == upn),
        "the user created before the restart is still there"
    );
    assert_eq!(
        state["counters"][format!("contoso/user/{upn}")]["created"],
        1
    );
}

#[tokio::test]
async fn entra_steps_run_against_the_sandbox_process() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&dir.path().join("state.json"));
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let file = dir.path().join("leaver.yaml");
    std::fs::write(&file, "runbook: leaver\nversion: 1\ntenant: contoso\ninputs:\n  user: { type: email, required: true }\nsteps:\n  block: { uses: entra.disable_sign_in, with: { user: \"{{inputs.user}}\" } }\n  revoke: { uses: entra.revoke_sessions, needs: [block], with: { user: \"{{inputs.user}}\" } }\n  groups: { uses: entra.remove_from_all_groups, needs: [revoke], with: { user: \"{{inputs.user}}\" } }\n").unwrap();
    let o = crate::Tenure::new()
        .args([
            "--db",
            &db,
            "run",
            file.to_str().unwrap(),
            "-i",
            "user=alex.wilber@contoso.example",
        ])
        .env("TENURE_SANDBOX", &url)
        .output();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("block PATCH /graph.microsoft.com/v1.0/users/"),
        "{out}"
    );
    assert!(out.contains("run succeeded"));
    let state = state_of(&url).await;
    let alex = user(&state, "alex.wilber@contoso.example").clone();
    assert_eq!(alex["accountEnabled"], false);
    assert!(alex["signInSessionsValidFrom"].is_string(), "{alex}");
}

#[tokio::test]
async fn tenants_and_the_sandbox_come_from_tenure_toml() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&dir.path().join("state.json"));
    let config = dir.path().join("tenure.toml");
    std::fs::write(&config, format!("[database]\nurl = \"sqlite:{}\"\n\n[sandbox]\nurl = \"{url}\"\n\n[[tenants]]\nid = \"acme\"\ntenant_id = \"contoso\"\ndomain = \"contoso.example\"\nname = \"Acme\"\n", dir.path().join("t.db").display())).unwrap();
    let file = dir.path().join("block.yaml");
    std::fs::write(&file, "runbook: block\nversion: 1\ntenant: acme\nsteps:\n  block: { uses: entra.disable_sign_in, with: { user: lee.gu@contoso.example } }\n").unwrap();
    let o = crate::Tenure::new()
        .args([
            "--config",
            config.to_str().unwrap(),
            "run",
            file.to_str().unwrap(),
        ])
        .env_remove("TENURE_DB")
        .env_remove("TENURE_SANDBOX")
        .output();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        dir.path().join("t.db").exists(),
        "the configured database was used"
    );

    // A secret written into the file is refused with the fix.
    std::fs::write(
        &config,
        "[microsoft]\nclient_id = \"x\"\nclient_secret = \"hunter2\"\n",
    )
    .unwrap();
    let o = crate::Tenure::new()
        .args(["--config", config.to_str().unwrap(), "runs"])
        .output();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("must not be written in the file") && err.contains("client_secret_env"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn the_example_configuration_parses() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/tenure.example.toml"
    );
    let o = crate::Tenure::new()
        .args(["--config", example, "--db", &db, "runs"])
        .output();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_demo_runs_a_joiner_and_a_leaver_through_webhooks_and_approval_links() {
    // Its temporary database goes into TMPDIR, and is gone when the demo ends.
    let tmp = tempfile::tempdir().unwrap();
    let o = crate::Tenure::new()
        .args(["demo", "--auto-approve"])
        .current_dir(crate::root())
        .env("TMPDIR", tmp.path())
        .env_remove("TENURE_CONFIG")
        .env_remove("TENURE_DB")
        .output();
    let out = crate::stdout(&o);
    assert!(out.contains(", temporary database sqlite:"), "{out}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the demo left its temporary directory behind"
    );
    assert_eq!(o.status.code(), Some(0), "{out}{}", crate::stderr(&o));
    for want in [
        "POST /hooks/halo -> 202 run ",
        " of onboard-user",
        " of offboard-user",
        "/ui/runs/",
        "Approval link for it-lead@msp.example (sent by Teams card and email): http://127.0.0.1:",
        "it-lead@msp.example opened the link and approved (GET the page, POST its form)",
        "Created user jose.nunez@contoso.example",
        "email to megan.bowen@contoso.example: \"Welcome to Contoso, José: your new account\"",
        "one-time password link: http://127.0.0.1:",
        "HaloPSA ticket 1001, internal note:",
        "A HaloPSA ticket says jose.nunez@contoso.example is leaving",
        "mailbox:           SharedMailbox",
        "sign-in blocked:   true",
        "Added an internal note to ticket 1002.",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let finished = out
        .lines()
        .filter(|l| l.ends_with("  run succeeded"))
        .count();
    assert_eq!(finished, 2, "{out}");
    // The one-time password never reaches the output, only its link.
    assert!(
        !out.contains("initial password ") || out.contains("initial password ***"),
        "{out}"
    );
}

/// `tenure demo | head -1`: with nobody reading its output any more the demo still ends
/// cleanly and removes its temporary directory (the database and its key).
#[test]
fn the_demo_cleans_up_when_its_output_is_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = crate::Tenure::new()
        .args(["demo", "--auto-approve"])
        .current_dir(crate::root())
        .env("TMPDIR", tmp.path())
        .env_remove("TENURE_CONFIG")
        .env_remove("TENURE_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 12];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(&first, b"Tenure demo:");
    drop(out);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", crate::stderr(&o));
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "a demo whose output was closed left its temporary directory behind"
    );
}

/// Directory replication lag on (a new user answers 404 for a moment, Exchange lags more): a
/// joiner run from the terminal waits for it instead of failing, and creates the user once.
#[tokio::test]
async fn a_joiner_waits_out_replication_lag() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&dir.path().join("state.json"));
    let r = reqwest::Client::new()
        .post(format!("{url}/_sandbox/config"))
        .json(&serde_json::json!({"replication": {"user_ms": 400, "exchange_ms": 800}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let file = dir.path().join("joiner.yaml");
    std::fs::write(&file, "runbook: joiner\nversion: 1\ntenant: contoso\nsteps:\n  create: { uses: entra.create_user, with: { user_principal_name: grace.hopper@contoso.example, display_name: Grace Hopper, usage_location: US } }\n  sales: { uses: entra.add_to_group, with: { user: \"{{steps.create.outputs.id}}\", group: Sales } }\n  boss: { uses: entra.set_manager, with: { user: \"{{steps.create.outputs.id}}\", manager: alex.wilber@contoso.example } }\n").unwrap();
    let o = crate::Tenure::new()
        .args(["--db", &db, "run", file.to_str().unwrap()])
        .env("TENURE_SANDBOX", &url)
        .output();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("run succeeded"), "{out}");
    let state = state_of(&url).await;
    assert_eq!(
        state["counters"]["contoso/user/grace.hopper@contoso.example"]["created"],
        1
    );
}

/// `tenure demo --db`: the run is recorded there (and readable afterwards), from a directory
/// without `runbooks/` (the built-in runbook is used); interrupted, the demo still removes its
/// temporary directory.
#[test]
fn the_demo_keeps_its_run_in_the_database_given() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("demo.db").display());
    let o = crate::Tenure::new()
        .args(["--db", &db, "demo", "--auto-approve"])
        .current_dir(dir.path())
        .env_remove("TENURE_CONFIG")
        .output();
    let out = crate::stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", crate::stderr(&o));
    assert!(out.contains(&format!(", database {db}\n")), "{out}");
    assert!(
        out.contains(&format!("The full logs: tenure --db {db} log ")),
        "{out}"
    );
    let runs = crate::tenure_db(&db, &["runs", "--json"]);
    let runs: Vec<Value> = serde_json::from_slice(&runs.stdout).unwrap();
    let mut seen: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            (
                r["runbook"].as_str().unwrap().into(),
                r["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("offboard-user".to_string(), "succeeded".to_string()),
            ("onboard-user".to_string(), "succeeded".to_string())
        ]
    );

    // Ctrl-C while it runs: the temporary directory goes too.
    let tmp = tempfile::tempdir().unwrap();
    let mut child = crate::Tenure::new()
        .arg("demo")
        .current_dir(crate::root())
        .env("TMPDIR", tmp.path())
        .env_remove("TENURE_CONFIG")
        .env_remove("TENURE_DB")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("Tenure demo:"), "{first}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    let ok = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let o = child.wait_with_output().unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 130)),
        "{:?} {}",
        o.status,
        crate::stderr(&o)
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "an interrupted demo left its temporary directory behind"
    );
}

#[tokio::test]
async fn email_goes_to_the_sandbox_process_over_smtp() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&dir.path().join("state.json"));
    let health: Value = reqwest::get(format!("{url}/_sandbox/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let smtp = health["smtp"].as_str().unwrap().to_string();
    assert!(smtp.starts_with("127.0.0.1:"), "{health}");
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let file = dir.path().join("mail.yaml");
    std::fs::write(&file, "runbook: mail\nversion: 1\ntenant: contoso\nsteps:\n  mail: { uses: notify.email, with: { to: [ada@contoso.example], subject: Welcome, body: \"Hello **Ada**\" } }\n").unwrap();
    let o = crate::Tenure::new()
        .args(["--db", &db, "run", file.to_str().unwrap()])
        .env("TENURE_SANDBOX", &url)
        .env("TENURE_SANDBOX_SMTP", &smtp)
        .output();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains(&format!("mail SMTP smtp://{smtp}")), "{out}");
    let state = state_of(&url).await;
    let mail = &state["inbox"]["email"][0];
    assert_eq!(mail["transport"], "smtp");
    assert_eq!(mail["from"], "tenure@msp.example");
    assert!(
        mail["html"]
            .as_str()
            .unwrap()
            .contains("<strong>Ada</strong>"),
        "{mail}"
    );
}
