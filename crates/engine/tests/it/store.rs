//! The store and the driver together: whole runs, approvals, retries, concurrent workers, and
//! lease takeover, with every journal verified. Every test runs on SQLite and on PostgreSQL
//! (`TENURE_TEST_PG`, see `db.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tenure_engine::builtin;
use tenure_engine::driver::{decide, start_context, Worker};
use tenure_engine::journal::{verify, EventKind};
use tenure_engine::machine::RunStatus;
use tenure_engine::store::{Change, Store};
use tenure_runbook::{compile, Plan, Renderer, SourceFile};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};

/// Counts executions per idempotency key; fails the first `fail_first` attempts transiently.
#[derive(Clone, Default)]
struct Counting {
    seen: Arc<Mutex<HashMap<String, u32>>>,
    fail_first: u32,
}

impl Executor for Counting {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let n = {
                let mut seen = self.seen.lock().unwrap();
                let n = seen.entry(call.idempotency_key()).or_insert(0);
                *n += 1;
                *n
            };
            if n <= self.fail_first {
                let mut e = StepError::transient("http_503", "busy");
                e.retry_after = Some(Duration::from_millis(10));
                return Err(e);
            }
            Ok(Outcome::Done(
                json!({"group_id": format!("g-{}", call.item), "added": true, "posted": true}),
            ))
        })
    }
}

fn plan(steps: &str) -> Plan {
    let text = format!("runbook: t\nversion: 1\ntenant: contoso\ninputs:\n  groups: {{ type: list, default: [a, b, c] }}\nsteps:\n{steps}");
    let src = SourceFile::new("t.yaml", text);
    let out = compile(&src, &tenure_steps::contract_catalogue());
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    out.plan.expect("compiles")
}

const DIAMOND: &str = "  a: { uses: notify.teams, with: { message: a } }\n  g:\n    uses: entra.add_to_group\n    needs: [a]\n    for_each: \"{{inputs.groups}}\"\n    max_parallel: 2\n    with: { user: u, group: \"{{item}}\" }\n  b: { uses: notify.teams, needs: [a], with: { message: \"b after {{steps.a.outputs.posted}}\" } }\n  c: { uses: notify.teams, needs: [g, b], with: { message: c } }\n";

use crate::db::Db;

fn registry(counting: &Counting) -> Registry {
    let mut r = builtin::registry();
    r.insert("notify.teams", counting.clone());
    r.insert("entra.add_to_group", counting.clone());
    r
}

async fn start(store: &Store, plan: &Plan) -> String {
    let inputs = tenure_runbook::inputs::resolve(&plan.inputs, &Map::new()).unwrap();
    let ctx = start_context(
        plan,
        inputs,
        json!({"id": "contoso", "domain": "contoso.example", "name": "Contoso"}),
        json!({"source": "test"}),
        &Renderer::new(),
    )
    .unwrap();
    store.create_run(plan, ctx, "test", None).await.unwrap()
}

async fn a_run_goes_from_start_to_finish_with_a_verified_journal(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let worker = Worker::new(store.clone(), registry(&counting), "w1");
    let p = plan(DIAMOND);
    let id = start(&store, &p).await;
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let events = store.events(&id).await.unwrap();
    verify(&id, &events).unwrap();
    assert!(matches!(
        events.first().unwrap().kind,
        EventKind::RunCreated { .. }
    ));
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::RunFinished { .. }
    ));
    let seen = counting.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "a, b, c and three groups: {seen:?}");
    assert!(seen.values().all(|n| *n == 1));
    let outputs = store.outputs(&id).await.unwrap();
    assert_eq!(outputs.iter().filter(|(s, _, _)| s == "g").count(), 3);
}

async fn transient_failures_are_retried_and_journaled(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting {
        fail_first: 2,
        ..Counting::default()
    };
    let worker = Worker::new(store.clone(), registry(&counting), "w1");
    let p = plan("  a:\n    uses: notify.teams\n    with: { message: a }\n    retry: { attempts: 3, delay: 10ms, max_delay: 50ms }\n");
    let id = start(&store, &p).await;
    let r = tokio::time::timeout(Duration::from_secs(3), worker.drive(&id, false)).await;
    if r.is_err() {
        for e in store.events(&id).await.unwrap() {
            eprintln!("{:?}", e.kind);
        }
        eprintln!("{:?}", store.run(&id).await.unwrap().machine);
        panic!("hung");
    }
    let failed = store
        .events(&id)
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::AttemptFailed { .. }))
        .count();
    assert_eq!(failed, 2);
    let p = plan("  a:\n    uses: notify.teams\n    with: { message: a }\n    retry: { attempts: 2, delay: 10ms, max_delay: 50ms }\n");
    let counting = Counting {
        fail_first: 5,
        ..Counting::default()
    };
    let worker = Worker::new(store.clone(), registry(&counting), "w1");
    let id = start(&store, &p).await;
    assert_eq!(worker.drive(&id, false).await.unwrap(), RunStatus::Failed);
}

async fn kinds_without_an_executor_fail_permanently_with_a_clear_message(db: Db) {
    let (store, _dir) = db.open().await;
    let worker = Worker::new(store.clone(), builtin::registry(), "w1");
    let p = plan("  u: { uses: entra.disable_sign_in, with: { user: x@contoso.example } }\n");
    let id = start(&store, &p).await;
    assert_eq!(worker.drive(&id, false).await.unwrap(), RunStatus::Failed);
    let events = store.events(&id).await.unwrap();
    let msg = events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::AttemptFailed { message, class, .. } => {
                Some((message.clone(), class.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(msg.1, "permanent");
    assert!(msg.0.contains("cannot run yet"), "{}", msg.0);
}

async fn approvals_park_the_run_until_the_quorum_decides(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let worker = Worker::new(store.clone(), registry(&counting), "w1");
    let p = plan("  ok:\n    uses: approval\n    with: { approvers: [lead@msp.example, boss@msp.example], quorum: 2, message: go? }\n  after: { uses: notify.teams, needs: [ok], with: { message: done } }\n");
    let id = start(&store, &p).await;
    assert_eq!(worker.drive(&id, true).await.unwrap(), RunStatus::Waiting);
    assert!(
        counting.seen.lock().unwrap().is_empty(),
        "nothing runs before approval"
    );
    let approval = format!("{id}:ok");
    assert!(
        decide(&store, &approval, "stranger@msp.example", true, None, "cli")
            .await
            .is_err()
    );
    assert_eq!(
        decide(&store, &approval, "LEAD@msp.example", true, None, "cli")
            .await
            .unwrap(),
        RunStatus::Waiting,
        "one of two"
    );
    assert_eq!(
        decide(
            &store,
            &approval,
            "boss@msp.example",
            true,
            Some("fine".into()),
            "cli"
        )
        .await
        .unwrap(),
        RunStatus::Running
    );
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let decided = store
        .events(&id)
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ApprovalDecided { .. }))
        .count();
    assert_eq!(decided, 2);

    let id = start(&store, &p).await;
    worker.drive(&id, true).await.unwrap();
    assert_eq!(
        decide(
            &store,
            &format!("{id}:ok"),
            "boss@msp.example",
            false,
            None,
            "cli"
        )
        .await
        .unwrap(),
        RunStatus::Denied
    );
    assert!(
        decide(
            &store,
            &format!("{id}:ok"),
            "lead@msp.example",
            true,
            None,
            "cli"
        )
        .await
        .is_err(),
        "decided gates take no more decisions"
    );
}

async fn waits_and_approval_expiry_fire_from_timers(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let worker = Worker::new(store.clone(), registry(&counting), "w1");
    let p = plan("  nap: { uses: wait, with: { for: 100ms } }\n  ok:\n    uses: approval\n    needs: [nap]\n    with: { approvers: [lead@msp.example], message: go?, expires: 100ms, on_expiry: approve }\n  after: { uses: notify.teams, needs: [ok], with: { message: done } }\n");
    let id = start(&store, &p).await;
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let fired = store
        .events(&id)
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TimerFired { .. }))
        .count();
    assert_eq!(fired, 2);
}

async fn concurrent_workers_share_runs_and_run_each_instance_once(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let p = plan(DIAMOND);
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(start(&store, &p).await);
    }
    let mut handles = Vec::new();
    for w in 0..3 {
        let worker = Worker::new(store.clone(), registry(&counting), format!("w{w}"));
        let store = store.clone();
        let ids = ids.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let mut all_done = true;
                for id in &ids {
                    if !store.run(id).await.unwrap().status.is_final() {
                        all_done = false;
                        break;
                    }
                }
                if all_done {
                    break;
                }
                if !worker.tick().await.unwrap() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    for id in &ids {
        assert_eq!(store.run(id).await.unwrap().status, RunStatus::Succeeded);
        verify(id, &store.events(id).await.unwrap()).unwrap();
    }
    let seen = counting.seen.lock().unwrap();
    assert_eq!(seen.len(), 30 * 6);
    assert!(seen.values().all(|n| *n == 1), "no instance ran twice");
}

async fn an_expired_lease_is_taken_over_and_the_old_worker_is_fenced_out(db: Db) {
    let (store, _dir) = db.open().await;
    let p = plan("  a: { uses: notify.teams, with: { message: a } }\n");
    let id = start(&store, &p).await;
    let counting = Counting::default();
    // The first worker prepares the step, then claims the attempt and "dies".
    let w1 =
        Worker::new(store.clone(), registry(&counting), "w1").with_lease(Duration::from_millis(50));
    assert!(w1.tick().await.unwrap());
    let (task, _) = store
        .claim("w1", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let w2 = Worker::new(store.clone(), registry(&counting), "w2");
    assert_eq!(w2.drive(&id, false).await.unwrap(), RunStatus::Succeeded);
    // The dead worker's late write is refused: it no longer holds the lease.
    let late = store
        .transition(&id, Some((task.id, "w1")), Default::default())
        .await;
    assert!(late.is_err());
    let _ = Value::Null;
}

/// Fails permanently while `broken` is set; records every call's step and message.
#[derive(Clone, Default)]
struct Switch {
    broken: Arc<Mutex<bool>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Executor for Switch {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let message = call.params["message"].as_str().unwrap_or("").to_string();
            self.calls
                .lock()
                .unwrap()
                .push(format!("{}: {message}", call.step));
            if message == "risky" && *self.broken.lock().unwrap() {
                return Err(StepError::permanent("http_400", "the vendor said no"));
            }
            Ok(Outcome::Done(json!({"posted": true})))
        })
    }
}

async fn failure_handling_retry_and_rollback(db: Db) {
    let (store, _dir) = db.open().await;
    let switch = Switch::default();
    *switch.broken.lock().unwrap() = true;
    let mut registry = builtin::registry();
    registry.insert("notify.teams", switch.clone());
    let worker = Worker::new(store.clone(), registry, "w1");
    let p = plan("  a: { uses: notify.teams, with: { message: create }, compensate: { uses: notify.teams, with: { message: \"undo {{steps.a.outputs.posted}}\" } } }\n  b: { uses: notify.teams, needs: [a], with: { message: risky } }\n  c: { uses: notify.teams, needs: [b], with: { message: after } }\non_failure:\n  tell: { uses: notify.teams, with: { message: \"{{run.failed_step}} failed: {{run.error}}\" } }\n");
    let id = start(&store, &p).await;
    assert_eq!(worker.drive(&id, false).await.unwrap(), RunStatus::Failed);
    let calls = switch.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            "a: create",
            "b: risky",
            "tell: b failed: the vendor said no"
        ]
    );

    // Fixed at the vendor: retry resumes at b; a is not repeated.
    *switch.broken.lock().unwrap() = false;
    let retry = Change {
        events: vec![tenure_engine::machine::Event::Retry { steps: vec![] }],
        journal: vec![EventKind::RunRetried {
            steps: vec![],
            by: "ops@msp.example".into(),
        }],
        ..Change::default()
    };
    store.transition(&id, None, retry).await.unwrap();
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let calls = switch.calls.lock().unwrap().clone();
    assert_eq!(&calls[3..], ["b: risky", "c: after"]);
    assert!(
        store
            .transition(
                &id,
                None,
                Change {
                    events: vec![tenure_engine::machine::Event::Rollback],
                    ..Change::default()
                }
            )
            .await
            .is_err(),
        "a succeeded run is not rolled back"
    );

    // A second run fails and is rolled back: a's compensation runs with a's outputs.
    *switch.broken.lock().unwrap() = true;
    let id = start(&store, &p).await;
    assert_eq!(worker.drive(&id, false).await.unwrap(), RunStatus::Failed);
    let rollback = Change {
        events: vec![tenure_engine::machine::Event::Rollback],
        journal: vec![EventKind::RollbackStarted {
            by: "ops@msp.example".into(),
        }],
        ..Change::default()
    };
    store.transition(&id, None, rollback).await.unwrap();
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::RolledBack
    );
    assert_eq!(
        switch.calls.lock().unwrap().last().unwrap(),
        "undo:a: undo true"
    );
    let events = store.events(&id).await.unwrap();
    verify(&id, &events).unwrap();
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::OnFailureStarted { failed_step } if failed_step == "b")
    ));
    assert!(
        matches!(&events.last().unwrap().kind, EventKind::RunFinished { status, .. } if status == "rolled_back")
    );
}

crate::on_both_databases!(
    failure_handling_retry_and_rollback,
    a_run_goes_from_start_to_finish_with_a_verified_journal,
    transient_failures_are_retried_and_journaled,
    kinds_without_an_executor_fail_permanently_with_a_clear_message,
    approvals_park_the_run_until_the_quorum_decides,
    waits_and_approval_expiry_fire_from_timers,
    concurrent_workers_share_runs_and_run_each_instance_once,
    an_expired_lease_is_taken_over_and_the_old_worker_is_fenced_out,
);
