//! Two `tenure worker` processes with one identity (every container replica is PID 1; here a
//! test hook, `TENURE_WORKER_ID`, gives both the same name). The first is paused with SIGSTOP
//! in the middle of an attempt, its lease runs out, the second takes the step over and
//! finishes the run; when the first wakes up, its stale report is refused and removes nothing.
//! The run must end `succeeded`, never stranded `running`.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;

use crate::tenure_db as tenure;

fn worker(db: &str) -> crate::Proc {
    crate::Tenure::new()
        .args(["--db", db, "worker", "--concurrency", "1", "--lease", "1s"])
        .env("TENURE_WORKER_ID", "pod-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn status(db: &str, id: &str) -> String {
    let o = tenure(db, &["runs", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    runs.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_with_the_same_name_cannot_strand_a_run() {
    // A vendor whose first call hangs for 4 s (the first worker is paused during it).
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/slow",
        post(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_secs(4)).await;
                }
                axum::Json(serde_json::json!({"ok": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("same.db").display());
    let runbook = dir.path().join("slow.yaml");
    std::fs::write(
        &runbook,
        format!("runbook: slow\nversion: 1\ntenant: contoso\nsteps:\n  a:\n    uses: http.request\n    with: {{ method: POST, url: \"{url}/slow\" }}\n  b:\n    uses: http.request\n    needs: [a]\n    with: {{ method: POST, url: \"{url}/slow\" }}\n"),
    )
    .unwrap();
    let o = tenure(&db, &["run", runbook.to_str().unwrap(), "--detach"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();

    let mut first = worker(&db);
    // Wait until the first worker is inside the hanging call, then pause it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while calls.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the first attempt never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&first, "-STOP");
    // Its lease (1 s) runs out; the second worker, same name, takes the step over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut second = worker(&db);
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&db, &id) != "succeeded" {
        assert!(
            Instant::now() < deadline,
            "the run is stranded: {}",
            status(&db, &id)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first worker wakes up and reports its stale attempt: refused, nothing changes.
    signal(&first, "-CONT");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(status(&db, &id), "succeeded");
    let o = tenure(&db, &["log", "verify", &id]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // And both workers still work: a new run finishes.
    let o = tenure(&db, &["run", runbook.to_str().unwrap(), "--detach"]);
    let next = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&db, &next) != "succeeded" {
        assert!(Instant::now() < deadline, "a later run did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for w in [&mut first, &mut second] {
        let _ = w.kill();
        let _ = w.wait();
    }
    let log = String::from_utf8_lossy(&tenure(&db, &["log", &id]).stdout).into_owned();
    assert!(log.contains("lease_expired"), "{log}");
}
