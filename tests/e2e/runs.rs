//! `tenure run`, `approve`, `runs`, `log` and `cancel` against a SQLite database.

use serde_json::Value;

use crate::{stderr, stdout};

use crate::tenure_db as tenure;

const GATE: &str = "runbook: gate\nversion: 1\ntenant: contoso\ninputs:\n  who: { type: email, required: true }\nsteps:\n  approve:\n    uses: approval\n    with: { approvers: [\"{{inputs.who}}\"], message: go? }\n  nap:\n    needs: [approve]\n    uses: wait\n    with: { for: 100ms }\n";

#[test]
fn run_in_process_exits_0_on_success_and_1_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "runbook: ok\nversion: 1\ntenant: contoso\nsteps:\n  nap: { uses: wait, with: { for: 50ms } }\n").unwrap();
    let o = tenure(&db, &["run", ok.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("nap woke"), "{}", stdout(&o));
    assert!(stdout(&o).contains("run succeeded"));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "runbook: bad\nversion: 1\ntenant: contoso\nsteps:\n  block: { uses: entra.disable_sign_in, with: { user: x@contoso.example } }\n").unwrap();
    let o = tenure(&db, &["run", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("no vendor is configured"),
        "{}",
        stdout(&o)
    );
    let o = tenure(&db, &["run", ok.to_str().unwrap(), "-i", "nope=1"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "unknown inputs are refused before anything is created"
    );
    let runs: Vec<Value> =
        serde_json::from_slice(&tenure(&db, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.len(), 2);
}

#[test]
fn approve_deny_and_cancel_from_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let gate = dir.path().join("gate.yaml");
    std::fs::write(&gate, GATE).unwrap();
    let path = gate.to_str().unwrap();
    let id = stdout(&tenure(
        &db,
        &["run", path, "-i", "who=lead@msp.example", "--detach"],
    ))
    .trim()
    .to_string();
    let mut worker = crate::Tenure::new()
        .args(["--db", &db, "worker", "--concurrency", "1"])
        .spawn();
    let wait_for = |status: &str| {
        for _ in 0..100 {
            let runs: Vec<Value> =
                serde_json::from_slice(&tenure(&db, &["runs", "--json"]).stdout).unwrap();
            if runs
                .iter()
                .any(|r| r["id"] == id.as_str() && r["status"] == status)
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("run {id} never became {status}");
    };
    wait_for("waiting");
    let o = tenure(
        &db,
        &[
            "approve",
            &format!("{id}:approve"),
            "--as",
            "someone@else.example",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not an approver"), "{}", stderr(&o));
    let o = tenure(
        &db,
        &[
            "approve",
            &format!("{id}:approve"),
            "--as",
            "lead@msp.example",
            "--deny",
            "--comment",
            "not today",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait_for("denied");
    let log = stdout(&tenure(&db, &["log", &id]));
    assert!(log.contains("lead@msp.example chose deny (cli)"), "{log}");
    assert!(
        !log.contains("nap[0] attempt"),
        "nothing runs after a denial: {log}"
    );
    assert_eq!(tenure(&db, &["log", "verify", &id]).status.code(), Some(0));

    let second = stdout(&tenure(
        &db,
        &["run", path, "-i", "who=lead@msp.example", "--detach"],
    ))
    .trim()
    .to_string();
    let o = tenure(&db, &["cancel", &second]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tenure(&db, &["cancel", &second]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an ended run cannot be cancelled again"
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
}

/// A vendor that refuses `/risky` with 400 while `broken`, and records every request.
async fn flaky_vendor() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let broken = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (b, s) = (broken.clone(), seen.clone());
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, body: String| {
            let (b, s) = (b.clone(), s.clone());
            async move {
                s.lock()
                    .unwrap()
                    .push(format!("{method} {} {body}", uri.path()));
                if uri.path() == "/risky" && b.load(Ordering::SeqCst) {
                    return (axum::http::StatusCode::BAD_REQUEST, "no".to_string());
                }
                (
                    axum::http::StatusCode::OK,
                    "{\"id\": \"acc-1\"}".to_string(),
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, broken, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_then_retry_and_rollback_from_the_terminal() {
    let (url, broken, seen) = flaky_vendor().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let file = dir.path().join("risky.yaml");
    std::fs::write(&file, format!("runbook: risky\nversion: 1\ntenant: contoso\nsteps:\n  create:\n    uses: http.request\n    with: {{ method: POST, url: \"{url}/accounts\", json: {{ name: ada }} }}\n    compensate: {{ uses: http.request, with: {{ method: DELETE, url: \"{url}/accounts/{{{{steps.create.outputs.body.id}}}}\" }} }}\n  risky:\n    uses: http.request\n    needs: [create]\n    with: {{ method: POST, url: \"{url}/risky\" }}\non_failure:\n  tell:\n    uses: http.request\n    with: {{ method: POST, url: \"{url}/tell\", json: {{ failed: \"{{{{run.failed_step}}}}\" }} }}\n")).unwrap();
    let path = file.to_str().unwrap().to_string();
    let run_json = |args: &[&str]| {
        let o = tenure(&db, args);
        let line = stdout(&o).lines().last().unwrap_or("{}").to_string();
        (
            o.status.code(),
            serde_json::from_str::<Value>(&line).unwrap_or(Value::Null),
            o,
        )
    };

    let (code, v, o) = run_json(&["run", &path, "--json"]);
    assert_eq!(code, Some(1), "{}", stderr(&o));
    assert_eq!(v["status"], "failed");
    let id = v["id"].as_str().unwrap().to_string();
    assert!(
        seen.lock()
            .unwrap()
            .contains(&"POST /tell {\"failed\":\"risky\"}".to_string()),
        "{:?}",
        seen.lock().unwrap()
    );

    // Nothing to retry on a step that did not fail; then fixed at the vendor, retry succeeds.
    let o = tenure(&db, &["retry", &id, "--step", "create"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("step `create` has not failed"),
        "{}",
        stderr(&o)
    );
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let o = tenure(&db, &["retry", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("retried by"), "{}", stdout(&o));
    assert!(stdout(&o).contains("run succeeded"), "{}", stdout(&o));
    let creates = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("POST /accounts"))
        .count();
    assert_eq!(creates, 1, "the account was not created again");

    // A second run fails and is rolled back: the compensation deletes what it created.
    broken.store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, v, _) = run_json(&["run", &path, "--json"]);
    let id = v["id"].as_str().unwrap().to_string();
    let o = tenure(&db, &["rollback", &id]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("undo:create[0] attempt 1 succeeded"),
        "{}",
        stdout(&o)
    );
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.starts_with("DELETE /accounts/acc-1")));
    let o = tenure(&db, &["rollback", &id]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a rolled-back run is not rolled back twice"
    );
    let o = tenure(&db, &["log", "verify", &id]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn for_each_steps_show_a_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let file = dir.path().join("each.yaml");
    std::fs::write(&file, "runbook: each\nversion: 1\ntenant: contoso\nsteps:\n  naps:\n    uses: wait\n    for_each: [a, b, c, d]\n    max_parallel: 2\n    with: { for: 20ms }\n").unwrap();
    let o = tenure(&db, &["run", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("naps [....................] 0/4 items"),
        "{out}"
    );
    assert!(
        out.contains("naps [####################] 4/4 items"),
        "{out}"
    );
}

/// A foreground `tenure run` whose reader goes away (`| head -2`) goes on quietly to its end
/// and exits 0; one killed half way (its terminal closed) leaves its run to a worker, which
/// finishes it. Every step reaches the vendor once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_run_outlives_its_reader() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let (url, effects) = crate::crash::vendor().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let rb = dir.path().join("bg.yaml");
    std::fs::write(&rb, format!("runbook: bg\nversion: 1\ntenant: contoso\nsteps:\n  a: {{ uses: http.request, with: {{ method: POST, url: \"{url}/effect\", json: {{ step: a }} }} }}\n  nap: {{ uses: wait, needs: [a], with: {{ for: 1s }} }}\n  b: {{ uses: http.request, needs: [nap], with: {{ method: POST, url: \"{url}/effect\", json: {{ step: b }} }} }}\n")).unwrap();
    let rb = rb.to_str().unwrap().to_string();

    // `| head -2`: two lines read, then the pipe is closed.
    let (db1, rb1) = (db.clone(), rb.clone());
    let o = tokio::task::spawn_blocking(move || {
        let mut child = crate::Tenure::new()
            .args(["--db", &db1, "run", &rb1])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        {
            let mut reader = BufReader::new(child.stdout.take().unwrap());
            for _ in 0..2 {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
            }
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.trim_end().ends_with(": succeeded"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let runs: Vec<Value> =
        serde_json::from_slice(&tenure(&db, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs[0]["status"], "succeeded");
    let log = stdout(&tenure(&db, &["log", runs[0]["id"].as_str().unwrap()]));
    assert!(log.contains("b[0] attempt 1 succeeded"), "{log}");

    // Killed while its run waits: a worker finishes the run.
    let (db2, rb2) = (db.clone(), rb.clone());
    let id = tokio::task::spawn_blocking(move || {
        let mut child = crate::Tenure::new()
            .args(["--db", &db2, "run", &rb2])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut first = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let id = first.split_whitespace().nth(1).unwrap().to_string();
        for _ in 0..200 {
            if stdout(&tenure(&db2, &["log", &id])).contains("nap[0] waits until") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        child.kill().unwrap();
        let _ = child.wait();
        id
    })
    .await
    .unwrap();
    let log = stdout(&tenure(&db, &["log", &id]));
    assert!(log.contains("nap[0] waits until"), "{log}");
    assert!(!log.contains("b[0] ready"), "killed before b: {log}");
    let mut worker = crate::Tenure::new()
        .args(["--db", &db, "worker", "--lease", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut status = String::new();
    for _ in 0..300 {
        let runs: Vec<Value> =
            serde_json::from_slice(&tenure(&db, &["runs", "--json"]).stdout).unwrap();
        status = runs
            .iter()
            .find(|r| r["id"] == id.as_str())
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap();
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    worker.kill().unwrap();
    let _ = worker.wait();
    assert_eq!(status, "succeeded");
    let received = effects.lock().unwrap().received.clone();
    assert_eq!(received.len(), 4, "{received:?}");
    assert!(received.values().all(|n| *n == 1), "{received:?}");
}
