//! The durability guarantee under fire: two `tenure worker` processes execute 200 runs while
//! the test kills them with SIGKILL at random moments and restarts them. Every run must
//! finish, none may be lost, every journal must verify, and every step's side effect must be
//! applied exactly once (the vendor here dedups by the `Idempotency-Key` Tenure derives from
//! run, step and item, so a repeated attempt after a crash changes nothing twice).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::Value;

use crate::stdout;

const RUNS: usize = 200;
const STEPS: usize = 4;

#[derive(Default)]
pub(crate) struct Effects {
    /// Requests received per idempotency key.
    pub(crate) received: HashMap<String, u32>,
}

pub(crate) async fn vendor() -> (String, Arc<Mutex<Effects>>) {
    let effects = Arc::new(Mutex::new(Effects::default()));
    let shared = effects.clone();
    let app = axum::Router::new().route(
        "/effect",
        post(move |headers: HeaderMap| {
            let shared = shared.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let first = {
                    let mut e = shared.lock().unwrap();
                    let n = e.received.entry(key).or_insert(0);
                    *n += 1;
                    *n == 1
                };
                axum::Json(serde_json::json!({"applied": first}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, effects)
}

use crate::tenure_db as tenure;

fn spawn_worker(db: &str) -> crate::Proc {
    crate::Tenure::new()
        .args(["--db", db, "worker", "--concurrency", "3", "--lease", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_workers_killed_at_random_moments() {
    let (url, effects) = vendor().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("crash.db").display());
    let runbook = dir.path().join("effects.yaml");
    let step = |id: &str, needs: &str| {
        format!("  {id}:\n    uses: http.request\n    {needs}with: {{ method: POST, url: \"{url}/effect\", json: {{ step: {id} }} }}\n    retry: {{ attempts: 20, delay: 50ms, max_delay: 500ms }}\n")
    };
    let text = format!(
        "runbook: effects\nversion: 1\ntenant: contoso\nsteps:\n{}{}{}{}",
        step("a", ""),
        step("b", "needs: [a]\n    "),
        step("c", "needs: [a]\n    "),
        step("d", "needs: [b, c]\n    ")
    );
    std::fs::write(&runbook, text).unwrap();
    let path = runbook.to_str().unwrap().to_string();

    // Enqueue the runs while the workers are already being killed and restarted.
    let mut workers = vec![spawn_worker(&db), spawn_worker(&db)];
    let mut ids = Vec::new();
    let mut rng = XorShift(0x5eed_1234_abcd_ef01);
    let mut kills = 0;
    let mut last_kill = Instant::now();
    for _ in 0..RUNS {
        let o = tenure(&db, &["run", &path, "--detach"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        ids.push(stdout(&o).trim().to_string());
        if last_kill.elapsed() > Duration::from_millis(150 + rng.next() % 250) {
            let i = (rng.next() % 2) as usize;
            workers[i].kill().unwrap();
            workers[i].wait().unwrap();
            workers[i] = spawn_worker(&db);
            kills += 1;
            last_kill = Instant::now();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    let kill_phase_until = Instant::now() + Duration::from_secs(4);
    loop {
        tokio::time::sleep(Duration::from_millis(100 + rng.next() % 300)).await;
        if Instant::now() < kill_phase_until {
            let i = (rng.next() % 2) as usize;
            workers[i].kill().unwrap();
            workers[i].wait().unwrap();
            workers[i] = spawn_worker(&db);
            kills += 1;
        }
        let o = tenure(&db, &["runs", "--json"]);
        let runs: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
        let done = runs
            .iter()
            .filter(|r| {
                ["succeeded", "failed", "denied", "cancelled"]
                    .contains(&r["status"].as_str().unwrap_or(""))
            })
            .count();
        if done == RUNS {
            break;
        }
        if Instant::now() > deadline {
            panic!("only {done} of {RUNS} runs finished in time");
        }
    }
    for w in &mut workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    let runs: Vec<Value> =
        serde_json::from_slice(&tenure(&db, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.len(), RUNS, "no run lost, none created twice");
    assert!(
        runs.iter().all(|r| r["status"] == "succeeded"),
        "every run succeeded"
    );
    for id in ids.iter().step_by(10) {
        let o = tenure(&db, &["log", "verify", id]);
        assert!(
            o.status.success(),
            "journal of {id}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let effects = effects.lock().unwrap();
    assert_eq!(
        effects.received.len(),
        RUNS * STEPS,
        "one idempotency key per run, step and item"
    );
    for id in &ids {
        for s in ["a", "b", "c", "d"] {
            assert!(
                effects.received.contains_key(&format!("{id}:{s}:0")),
                "{id}:{s} never reached the vendor"
            );
        }
    }
    let repeats: u32 = effects.received.values().map(|n| n - 1).sum();
    eprintln!("crash test: {kills} SIGKILLs, {} requests for {} effects ({repeats} repeated after a crash, each applied once)", effects.received.values().sum::<u32>(), RUNS * STEPS);
    assert!(kills >= 10, "the test must actually kill workers ({kills})");
}
