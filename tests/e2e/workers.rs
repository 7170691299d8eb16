//! Several nodes, one database: three `tenure worker` processes share 500 runs of a 4-step
//! runbook, on PostgreSQL (claims with `FOR UPDATE SKIP LOCKED`, wake-ups by `LISTEN/NOTIFY`)
//! and on SQLite. Every run must succeed, every step must reach the vendor exactly once, and
//! all three workers must have done a share of the work.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::sync::Arc;

use serde_json::{json, Map};
use tenure_engine::journal::EventKind;
use tenure_engine::machine::RunStatus;
use tenure_engine::{Engine, StartRun, Trigger};
use tenure_runbook::{compile, SourceFile};
use tenure_steps::Registry;

use crate::crash::vendor;

const RUNS: usize = 500;
const STEPS: usize = 4;

/// The key PostgreSQL runs share (SQLite runs use the key file beside the database).
const PG_KEY: [u8; 32] = [0x11; 32];

fn spawn_worker(db: &str) -> crate::Proc {
    let mut cmd = crate::Tenure::new();
    if db.starts_with("postgres") {
        cmd.env("TENURE_SECRET_KEY", hex_key());
    }
    cmd.args(["--db", db, "worker", "--concurrency", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

async fn three_workers_share_the_runs(db: &str) {
    let (url, effects) = vendor().await;
    let step = |id: &str, needs: &str| {
        format!("  {id}:\n    uses: http.request\n    {needs}with: {{ method: POST, url: \"{url}/effect\", json: {{ step: {id} }} }}\n")
    };
    let text = format!(
        "runbook: effects\nversion: 1\ntenant: contoso\nsteps:\n{}{}{}{}",
        step("a", ""),
        step("b", "needs: [a]\n    "),
        step("c", "needs: [a]\n    "),
        step("d", "needs: [b, c]\n    ")
    );
    let plan = compile(
        &SourceFile::new("effects.yaml", text),
        &tenure_steps::catalogue(),
    )
    .plan
    .unwrap();

    let store = if db.starts_with("postgres") {
        tenure_engine::store::Store::open_with(db, tenure_engine::secrets::SecretBox::new(PG_KEY))
            .await
    } else {
        tenure_engine::store::Store::open(db).await
    };
    let engine = Engine::new(
        store.unwrap(),
        Registry::new(),
        Arc::new(|id: &str| Ok(json!({ "id": id }))),
    );
    let store = engine.store().clone();
    let mut workers: Vec<crate::Proc> = (0..3).map(|_| spawn_worker(db)).collect();
    let plan = Arc::new(plan);
    let mut ids = Vec::new();
    for _ in 0..RUNS {
        let start = StartRun {
            plan: plan.clone(),
            inputs: Map::new(),
            trigger: Trigger::new("test", None),
            dedup_key: None,
        };
        ids.push(engine.start_run(start).await.unwrap().id);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let counts = store.count_by_status().await.unwrap();
        let finished: i64 = counts
            .iter()
            .filter(|(s, _)| ["succeeded", "failed", "denied", "cancelled"].contains(&s.as_str()))
            .map(|(_, n)| n)
            .sum();
        if finished as usize == RUNS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {finished} of {RUNS} runs finished in time: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.wait();
    }

    let mut processes = HashSet::new();
    let mut retried = 0;
    for id in &ids {
        let run = store.run(id).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "run {id}");
        let events = store.events(id).await.unwrap();
        engine.verify(id).await.unwrap().unwrap();
        let mut started = HashMap::new();
        for e in &events {
            if let EventKind::AttemptStarted { step, owner, .. } = &e.kind {
                *started.entry(step.clone()).or_insert(0) += 1;
                // Owners are `HOST-PID-RANDOM-N#LEASE`: the process is `HOST-PID-RANDOM`.
                let worker = owner.split('#').next().unwrap_or_default();
                processes.insert(worker.rsplit_once('-').map(|(p, _)| p.to_string()));
            }
        }
        assert_eq!(started.len(), STEPS, "run {id}: {started:?}");
        // A second attempt is allowed only after a journaled failure (a transient error is
        // retried); the vendor check below shows the effect still happened once.
        for (step, n) in &started {
            let failed = events
                .iter()
                .filter(
                    |e| matches!(&e.kind, EventKind::AttemptFailed { step: s, .. } if s == step),
                )
                .count();
            retried += failed;
            assert_eq!(
                *n,
                1 + failed,
                "run {id}: step {step} was started {n} times after {failed} failures: {:#?}",
                events.iter().map(|e| &e.kind).collect::<Vec<_>>()
            );
        }
    }
    assert_eq!(
        processes.len(),
        3,
        "all three workers did a share: {processes:?}"
    );
    let effects = effects.lock().unwrap();
    assert_eq!(effects.received.len(), RUNS * STEPS);
    eprintln!(
        "{db}: {} requests for {} effects, {retried} attempts retried after a failure",
        effects.received.values().sum::<u32>(),
        RUNS * STEPS
    );
    let repeated: Vec<_> = effects.received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.len() <= retried,
        "more repeated requests than retried attempts: {repeated:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_500_runs_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("share.db").display());
    three_workers_share_the_runs(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_500_runs_on_postgres() {
    let Ok(admin) = std::env::var("TENURE_TEST_PG") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set TENURE_TEST_PG so the PostgreSQL store is tested"
        );
        eprintln!("TENURE_TEST_PG is not set: skipping");
        return;
    };
    let name = format!("tenure_e2e_{}", uuid::Uuid::new_v4().simple());
    tenure_engine::store::create_database(&admin, &name)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    three_workers_share_the_runs(&format!("{base}/{name}")).await;
}

fn hex_key() -> String {
    PG_KEY.iter().map(|b| format!("{b:02x}")).collect()
}
