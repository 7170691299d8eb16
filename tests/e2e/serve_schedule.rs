//! `schedule` triggers through the binary: `tenure serve --runbooks DIR` and
//! `tenure worker --runbooks DIR` on one SQLite database, with an every-second schedule. After
//! about four seconds every tick since the schedule was first seen has exactly one run (two
//! processes race for each tick; the dedup key of the tick lets one win), the tick is in the
//! run's `trigger.scheduled_at` and in the input mapped from it, and the runs are worked.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tenure_engine::store::RunFilter;
use tenure_engine::Engine;
use tenure_steps::Registry;

const RUNBOOK: &str = "runbook: every-second\nversion: 1\ntenant: contoso\ninputs:\n  at: { type: string, required: true }\ntriggers:\n  - schedule: \"* * * * * *\"\n    timezone: Australia/Sydney\n    map: { at: \"{{trigger.scheduled_at}}\" }\nsteps:\n  nap: { uses: wait, with: { for: 10ms } }\n";

/// Stops a process as Ctrl-C would, and waits (at most 15 s) for it to end.
fn interrupt(mut p: crate::Proc) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-INT", &p.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = p.try_wait() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = p.kill();
    panic!("tenure did not stop on Ctrl-C");
}

#[test]
fn serve_and_a_worker_start_each_tick_once() {
    let dir = tempfile::tempdir().unwrap();
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    std::fs::write(runbooks.join("every-second.yaml"), RUNBOOK).unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let dir_arg = runbooks.to_str().unwrap();

    let mut serve = crate::Tenure::new()
        .args([
            "--db",
            &db,
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--runbooks",
            dir_arg,
        ])
        .env_remove("TENURE_CONFIG")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    // Wait until it serves (its migrations are done), then start the worker beside it.
    let mut lines = BufReader::new(serve.stderr.take().unwrap()).lines();
    let listening = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on http://"));
    assert!(listening.is_some(), "tenure serve did not start");
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let worker = crate::Tenure::new()
        .args(["--db", &db, "worker", "--runbooks", dir_arg])
        .env_remove("TENURE_CONFIG")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    std::thread::sleep(Duration::from_millis(4_300));
    let worker_status = interrupt(worker);
    let serve_status = interrupt(serve);
    let serve_log = drain.join().unwrap().join("\n");
    assert!(
        serve_status.success(),
        "serve: {serve_status:?}\n{serve_log}"
    );
    assert!(worker_status.success(), "worker: {worker_status:?}");
    assert!(!serve_log.contains("not started"), "{serve_log}");

    let runs = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = tenure_engine::store::Store::open(&db).await.unwrap();
        let engine = Engine::new(
            store,
            Registry::new(),
            Arc::new(|id: &str| Ok(json!({ "id": id }))),
        );
        engine
            .runs(&RunFilter {
                limit: 1_000,
                ..RunFilter::default()
            })
            .await
            .unwrap()
    });
    let mut ticks: Vec<String> = runs
        .iter()
        .map(|r| {
            let tick = r.context["trigger"]["scheduled_at"]
                .as_str()
                .expect("a scheduled run names its tick")
                .to_string();
            assert_eq!(r.context["inputs"]["at"], tick.as_str());
            tick
        })
        .collect();
    ticks.sort();
    let unique: BTreeSet<&String> = ticks.iter().collect();
    assert_eq!(unique.len(), ticks.len(), "a tick started twice: {ticks:?}");
    assert!(
        (3..=6).contains(&ticks.len()),
        "about 4 s of an every-second schedule: {ticks:?}"
    );
    // Every tick between the first and the last, none left out.
    let first = chrono::DateTime::parse_from_rfc3339(&ticks[0]).unwrap();
    for (i, tick) in ticks.iter().enumerate() {
        let expected = first + chrono::Duration::seconds(i as i64);
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(tick).unwrap(),
            expected,
            "{ticks:?}"
        );
    }
    let worked = runs
        .iter()
        .filter(|r| r.status == tenure_engine::machine::RunStatus::Succeeded)
        .count();
    assert!(
        worked >= 1,
        "the runs are worked: {worked} of {}",
        runs.len()
    );
}
