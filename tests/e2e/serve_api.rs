//! `tenure serve` and its REST API through the binary: a configuration with `[[tokens]]`, a
//! run started with `POST /api/runs` and followed with `GET /api/runs/{id}` until it
//! finishes; a token whose variable is missing stops the server before it listens.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

const RUNBOOK: &str = "runbook: pause\nversion: 1\ntenant: acme\ninputs:\n  who: { type: string, required: true }\n  pin: { type: secret, required: false }\nsteps:\n  pause: { uses: wait, with: { for: 1s } }\n";

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("tenure.toml");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"sqlite:{}\"\n\n[[tenants]]\nid = \"acme\"\ntenant_id = \"contoso\"\ndomain = \"contoso.example\"\nname = \"Acme\"\n\n[[tokens]]\nname = \"psa-bot\"\nrole = \"operator\"\ntoken_env = \"TENURE_E2E_API_TOKEN\"\n",
            dir.join("t.db").display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/pause.yaml"), RUNBOOK).unwrap();
    path
}

#[tokio::test]
async fn a_run_started_through_the_api_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let server = crate::served::Served::start(
        crate::Tenure::new()
            .args([
                "--config",
                config.to_str().unwrap(),
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--runbooks",
            ])
            .arg(dir.path().join("runbooks"))
            .env("TENURE_E2E_API_TOKEN", "e2e-token-123")
            .env_remove("TENURE_DB")
            .env_remove("TENURE_SANDBOX"),
    );
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/runs"))
        .bearer_auth("e2e-token-123")
        .json(&json!({"runbook": "pause", "inputs": {"who": "ada", "pin": "4711-secret"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run: Value = http
            .get(format!("{base}/api/runs/{id}"))
            .bearer_auth("e2e-token-123")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if run["status"] == "succeeded" {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the run never finished: {run}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["trigger"]["by"], "psa-bot");
    assert_eq!(run["inputs"]["pin"], "***");
    assert_eq!(run["steps"][0]["state"], "succeeded");
    // Without the token: 401.
    let resp = http
        .get(format!("{base}/api/runs/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tenure_runs_total{status=\"succeeded\"} 1"),
        "{metrics}"
    );
    drop(server);
}

#[test]
fn a_token_without_its_variable_stops_the_server_before_it_listens() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let o = crate::Tenure::new()
        .args([
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("TENURE_E2E_API_TOKEN")
        .env_remove("TENURE_DB")
        .output();
    assert_ne!(o.status.code(), Some(0));
    let err = crate::stderr(&o);
    assert!(err.contains("TENURE_E2E_API_TOKEN"), "{err}");
    assert!(!err.contains("listening on"), "{err}");
}

/// A worker node without `tenure serve` serves its own `/metrics` (`--metrics-listen`): the
/// attempts it made are there, and SIGTERM stops it cleanly.
#[tokio::test]
async fn a_worker_node_serves_its_metrics_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let mut worker = crate::Tenure::new()
        .args([
            "--config",
            config.to_str().unwrap(),
            "worker",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .env_remove("TENURE_DB")
        .env_remove("TENURE_SANDBOX")
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut lines = BufReader::new(worker.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.split("metrics on ").nth(1).map(str::to_string))
        .expect("the worker says where its metrics are");
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let o = crate::Tenure::new()
        .args(["--config", config.to_str().unwrap(), "run", "--detach"])
        .arg(dir.path().join("runbooks/pause.yaml"))
        .args(["-i", "who=ada"])
        .env_remove("TENURE_DB")
        .output();
    assert_eq!(o.status.code(), Some(0), "{}", crate::stderr(&o));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if text.contains("tenure_runs_total{status=\"succeeded\"} 1") {
            assert!(
                text.contains("tenure_step_attempts_total{kind=\"wait\""),
                "{text}"
            );
            assert!(text.contains("tenure_queue_depth"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no finished run counted: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the worker ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}
