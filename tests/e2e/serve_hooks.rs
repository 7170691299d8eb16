//! A ticket webhook through the real binary: the HaloPSA new-starter example
//! (`examples/webhooks/halo/new-starter.json`) delivered to `tenure serve` with the source's
//! HTTP Basic credentials starts a run, the in-process workers finish it, and the same delivery
//! again answers the same run. A wrong password is refused and starts nothing.

use std::time::{Duration, Instant};

use serde_json::Value;

const RUNBOOK: &str = r#"runbook: welcome-starter
version: 1
tenant: "{{inputs.tenant}}"
inputs:
  tenant: { type: string, required: true }
  first_name: { type: string, required: true }
  start_date: { type: date }
  ticket_id: { type: string }
triggers:
  - webhook: halo
    when: "{{eq payload.ticket.tickettype_name 'New Starter'}}"
    map:
      tenant: "{{lower payload.ticket.client_name}}"
      first_name: "{{field payload.ticket.details 'First name'}}"
      start_date: "{{field payload.ticket.details 'Start date'}}"
      ticket_id: "{{payload.ticket.id}}"
steps:
  settle:
    uses: wait
    with: { for: 1s }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halo_ticket_starts_a_run_that_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, sandbox_url) = crate::sandbox::serve(&dir.path().join("state.json"));
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    std::fs::write(runbooks.join("welcome-starter.yaml"), RUNBOOK).unwrap();
    let config = dir.path().join("tenure.toml");
    std::fs::write(
        &config,
        "[[webhooks]]\nsource = \"halo\"\nkind = \"halo\"\nusername = \"halo\"\npassword_env = \"E2E_HALO_HOOK_PASSWORD\"\n",
    )
    .unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());

    // A missing secret stops the start, naming the variable.
    let o = crate::Tenure::new()
        .args([
            "--config",
            config.to_str().unwrap(),
            "--db",
            &db,
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("E2E_HALO_HOOK_PASSWORD")
        .env("TENURE_SANDBOX", &sandbox_url)
        .output();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        crate::stderr(&o).contains("E2E_HALO_HOOK_PASSWORD"),
        "{}",
        crate::stderr(&o)
    );

    let server = crate::served::Served::start(
        crate::Tenure::new()
            .args([
                "--config",
                config.to_str().unwrap(),
                "--db",
                &db,
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--runbooks",
                runbooks.to_str().unwrap(),
            ])
            .env("E2E_HALO_HOOK_PASSWORD", "correct horse")
            .env("TENURE_SANDBOX", &sandbox_url),
    );
    let base = server.base.clone();

    let body =
        std::fs::read(crate::root().join("examples/webhooks/halo/new-starter.json")).unwrap();
    let client = reqwest::Client::new();
    let post = |password: &'static str| {
        client
            .post(format!("{base}/hooks/halo"))
            .basic_auth("halo", Some(password))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let refused = post("wrong").await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let resp = post("correct horse").await.unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let answer: Value = resp.json().await.unwrap();
    let run_id = answer["run_id"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let o = crate::tenure_db(&db, &["runs", "--json"]);
        let runs: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
        assert!(runs.len() <= 1, "{runs:?}");
        if let Some(r) = runs.into_iter().find(|r| r["id"] == run_id.as_str()) {
            if r["status"] == "succeeded" {
                break r;
            }
            assert_ne!(r["status"], "failed", "{r}");
        }
        assert!(Instant::now() < deadline, "the run did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["runbook"], "welcome-starter");

    let again = post("correct horse").await.unwrap();
    assert_eq!(again.status().as_u16(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["run_id"], run_id.as_str());
    assert_eq!(again["duplicate"], true);
    drop(server);
}
