//! The engine API, the store and the driver together: whole runs, approvals (also decided
//! concurrently, from two processes' stores), retries and their budget, throttling, "not
//! yet", concurrent workers, lease takeover and fencing, journal verification. Every test
//! runs on SQLite and on PostgreSQL (`TENURE_TEST_PG`, see `db.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tenure_engine::driver::Worker;
use tenure_engine::journal::{EventKind, VerifyError};
use tenure_engine::machine::{InstanceState, RunStatus, MAX_WAIT};
use tenure_engine::store::{now_ms, Store};
use tenure_engine::{Decide, Engine, StartRun, Trigger};
use tenure_runbook::{compile, Plan, SourceFile};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};

use crate::db::Db;

/// Counts executions per idempotency key; fails the first `fail_first` attempts transiently.
#[derive(Clone, Default)]
struct Counting {
    seen: Arc<Mutex<HashMap<String, u32>>>,
    fail_first: u32,
    retry_after: Option<Duration>,
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
                e.retry_after = self.retry_after;
                return Err(e);
            }
            Ok(Outcome::Done(
                json!({"status": 200, "body": {"item": call.item, "message": call.params["json"]}}),
            ))
        })
    }
}

fn plan(steps: &str) -> Plan {
    let text = format!("runbook: t\nversion: 1\ntenant: contoso\ninputs:\n  groups: {{ type: list, default: [a, b, c] }}\nsteps:\n{steps}");
    let src = SourceFile::new("t.yaml", text);
    let out = compile(&src, &tenure_steps::catalogue());
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    out.plan.expect("compiles")
}

/// A step the counting executor runs (`http.request` is a kind every build has).
fn call(id: &str, extra: &str) -> String {
    format!("  {id}:\n    uses: http.request\n{extra}    with: {{ method: POST, url: \"http://vendor.invalid/{id}\", json: {{ step: {id} }} }}\n")
}

fn diamond() -> String {
    call("a", "")
        + &call(
            "g",
            "    needs: [a]\n    for_each: \"{{inputs.groups}}\"\n    max_parallel: 2\n",
        )
        + &call("b", "    needs: [a]\n")
        + &call("c", "    needs: [g, b]\n")
}

fn registry(counting: &Counting) -> Registry {
    let mut r = tenure_engine::builtin::registry();
    r.insert("http.request", counting.clone());
    r
}

fn engine(store: &Store, registry: Registry) -> Engine {
    Engine::new(
        store.clone(),
        registry,
        Arc::new(|id: &str| Ok(json!({"id": id, "domain": "contoso.example", "name": "Contoso"}))),
    )
}

async fn start(engine: &Engine, plan: &Plan) -> String {
    engine
        .start_run(StartRun {
            plan: Arc::new(plan.clone()),
            inputs: Map::new(),
            trigger: Trigger::new("test", Some("tester".into())),
            dedup_key: None,
        })
        .await
        .unwrap()
        .id
}

fn decision(run: &str, step: &str, who: &str, approve: bool) -> Decide {
    Decide {
        run_id: run.into(),
        step: step.into(),
        approver: who.into(),
        approve,
        comment: Some(format!("{who} says so")),
        source: "test".into(),
        user_agent: None,
    }
}

async fn kinds(store: &Store, id: &str) -> Vec<EventKind> {
    store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn a_run_goes_from_start_to_finish_with_a_verified_journal(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let engine = engine(&store, registry(&counting));
    let worker = engine.worker(0);
    let id = start(&engine, &plan(&diamond())).await;
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let n = engine.verify(&id).await.unwrap().unwrap();
    assert_eq!(n, store.events(&id).await.unwrap().len());
    let events = kinds(&store, &id).await;
    assert!(matches!(events[0], EventKind::RunCreated { .. }));
    assert!(matches!(events.last(), Some(EventKind::RunFinished { .. })));
    let seen = counting.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6, "a, b, c and three groups: {seen:?}");
    assert!(seen.values().all(|n| *n == 1));
    let outputs = store.outputs(&id).await.unwrap();
    assert_eq!(outputs.iter().filter(|(s, _, _)| s == "g").count(), 3);
}

async fn a_dedup_key_starts_a_run_once(db: Db) {
    let (store, _dir) = db.open().await;
    let engine = engine(&store, registry(&Counting::default()));
    let p = Arc::new(plan(&call("a", "")));
    let start = |key: &str| StartRun {
        plan: p.clone(),
        inputs: Map::new(),
        trigger: Trigger::new("webhook:halo", None),
        dedup_key: Some(key.into()),
    };
    let first = engine.start_run(start("T-1042-new")).await.unwrap();
    let again = engine.start_run(start("T-1042-new")).await.unwrap();
    let other = engine.start_run(start("T-1043-new")).await.unwrap();
    assert!(!first.duplicate && again.duplicate && !other.duplicate);
    assert_eq!(first.id, again.id);
    assert_ne!(first.id, other.id);
    // Keys holding a NUL byte (a webhook payload's value) are stored, on PostgreSQL too,
    // which refuses NUL in text: the dedup key still finds its run.
    let nul = engine.start_run(start("T-1044\0")).await.unwrap();
    let nul_again = engine.start_run(start("T-1044\0")).await.unwrap();
    assert!(!nul.duplicate && nul_again.duplicate);
    assert_eq!(nul.id, nul_again.id);
    let src = SourceFile::new(
        "k.yaml",
        format!(
            "runbook: k\nversion: 1\ntenant: contoso\ninputs:\n  who: {{ type: string }}\nconcurrency: \"{{{{inputs.who}}}}\"\nsteps:\n{}",
            call("a", "")
        ),
    );
    let keyed = Arc::new(
        compile(&src, &tenure_steps::catalogue())
            .plan
            .expect("compiles"),
    );
    engine
        .start_run(StartRun {
            plan: keyed,
            inputs: [("who".to_string(), json!("a\0b"))].into_iter().collect(),
            trigger: Trigger::new("api", None),
            dedup_key: None,
        })
        .await
        .unwrap();
    let bad = StartRun {
        inputs: [("groups".to_string(), json!(7))].into_iter().collect(),
        ..start("T-9")
    };
    assert!(matches!(
        engine.start_run(bad).await,
        Err(tenure_engine::api::Error::Inputs(_))
    ));
}

async fn transient_failures_use_the_budget_and_an_operator_retry_renews_it(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting {
        fail_first: 3,
        ..Counting::default()
    };
    let engine = engine(&store, registry(&counting));
    let worker = engine.worker(0);
    let p = plan(&call(
        "a",
        "    retry: { attempts: 2, delay: 10ms, max_delay: 50ms }\n",
    ));
    let id = start(&engine, &p).await;
    assert_eq!(worker.drive(&id, false).await.unwrap(), RunStatus::Failed);
    let events = kinds(&store, &id).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, EventKind::GaveUp { reason, .. } if reason.contains("2 attempts"))));
    // The operator retries: attempt 3 fails transiently and is retried again (a fresh budget,
    // not the attempt number), and attempt 4 succeeds.
    engine.retry(&id, vec![], "ops").await.unwrap();
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded,
        "{:#?}",
        kinds(&store, &id).await
    );
    assert_eq!(counting.seen.lock().unwrap().values().sum::<u32>(), 4);
}

async fn throttling_is_waited_out_without_using_the_budget_and_capped(db: Db) {
    let (store, _dir) = db.open().await;
    // Throttled four times with a short Retry-After: a one-attempt budget still succeeds.
    let counting = Counting {
        fail_first: 4,
        retry_after: Some(Duration::from_millis(20)),
        ..Counting::default()
    };
    let engine = engine(&store, registry(&counting));
    let worker = engine.worker(0);
    let p = plan(&call("a", "    retry: { attempts: 1 }\n"));
    let id = start(&engine, &p).await;
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let throttled = kinds(&store, &id)
        .await
        .into_iter()
        .filter(|e| matches!(e, EventKind::AttemptFailed { class, .. } if class == "throttled"))
        .count();
    assert_eq!(throttled, 4);

    // A vendor asking for an absurd wait is waited out for 15 minutes at most, not until 2030
    // nor (wrapped) into the past.
    let absurd = Counting {
        fail_first: 1,
        retry_after: Some(Duration::from_secs(u64::MAX / 1000)),
        ..Counting::default()
    };
    let engine = self::engine(&store, registry(&absurd));
    let id = start(&engine, &p).await;
    let before = now_ms() as u64;
    let worker = engine.worker(1);
    while worker.tick().await.unwrap() {}
    let run = engine.run(&id).await.unwrap();
    match run.machine.instance("a", 0) {
        Some(InstanceState::RetryWait { at_ms, .. }) => {
            assert!(at_ms >= before + MAX_WAIT.as_millis() as u64 - 1000);
            assert!(at_ms <= now_ms() as u64 + MAX_WAIT.as_millis() as u64);
        }
        other => panic!("expected a capped wait, got {other:?}"),
    }
}

/// Says "not yet" `times` times, then succeeds.
#[derive(Clone)]
struct NotYet {
    left: Arc<Mutex<u32>>,
}

impl Executor for NotYet {
    fn execute<'a>(&'a self, _call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let mut left = self.left.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Ok(Outcome::Later {
                    at_ms: now_ms() as u64 + 20,
                    reason: "the mailbox is not provisioned yet".into(),
                });
            }
            Ok(Outcome::Done(json!({"status": 200, "body": null})))
        })
    }
}

async fn a_kind_saying_not_yet_frees_the_worker_and_keeps_its_budget(db: Db) {
    let (store, _dir) = db.open().await;
    let mut registry = tenure_engine::builtin::registry();
    registry.insert(
        "http.request",
        NotYet {
            left: Arc::new(Mutex::new(3)),
        },
    );
    let engine = engine(&store, registry);
    let p = plan(&call("a", "    retry: { attempts: 1 }\n"));
    let id = start(&engine, &p).await;
    assert_eq!(
        engine.worker(0).drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let deferred = kinds(&store, &id)
        .await
        .into_iter()
        .filter(|e| matches!(e, EventKind::AttemptDeferred { .. }))
        .count();
    assert_eq!(deferred, 3);
}

async fn approvals_park_the_run_until_the_quorum_decides(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let engine = engine(&store, registry(&counting));
    let worker = engine.worker(0);
    let p = plan(&format!("  ok:\n    uses: approval\n    with: {{ approvers: [lead@msp.example, boss@msp.example], quorum: 2, message: go? }}\n{}", call("after", "    needs: [ok]\n").replace("json: { step: after }", "json: { by: \"{{steps.ok.outputs.decided_by}}\", decision: \"{{steps.ok.outputs.decision}}\", comment: \"{{steps.ok.outputs.comment}}\" }")));
    let id = start(&engine, &p).await;
    assert_eq!(worker.drive(&id, true).await.unwrap(), RunStatus::Waiting);
    assert!(
        counting.seen.lock().unwrap().is_empty(),
        "nothing runs before approval"
    );
    assert!(engine
        .decide(decision(&id, "ok", "stranger@msp.example", true))
        .await
        .is_err());
    assert_eq!(
        engine
            .decide(decision(&id, "ok", "LEAD@msp.example", true))
            .await
            .unwrap(),
        RunStatus::Waiting,
        "one of two"
    );
    assert!(
        engine
            .decide(decision(&id, "ok", "lead@msp.example", true))
            .await
            .is_err(),
        "one person counts once"
    );
    assert_eq!(
        engine
            .decide(decision(&id, "ok", "boss@msp.example", true))
            .await
            .unwrap(),
        RunStatus::Running
    );
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let outputs = store.outputs(&id).await.unwrap();
    let ok = &outputs.iter().find(|(s, _, _)| s == "ok").unwrap().2;
    assert_eq!(ok["decision"], "approved");
    assert_eq!(
        ok["decided_by"],
        json!(["lead@msp.example", "boss@msp.example"])
    );
    assert_eq!(ok["comment"], "boss@msp.example says so");

    let id = start(&engine, &p).await;
    worker.drive(&id, true).await.unwrap();
    assert_eq!(
        engine
            .decide(decision(&id, "ok", "boss@msp.example", false))
            .await
            .unwrap(),
        RunStatus::Denied
    );
    assert!(
        engine
            .decide(decision(&id, "ok", "lead@msp.example", true))
            .await
            .is_err(),
        "decided gates take no more decisions"
    );
}

async fn concurrent_approvals_from_two_processes_reach_the_quorum(db: Db) {
    // Two stores on one database (two processes' writers), eight runs, both approvers deciding
    // each gate at the same moment: every gate opens.
    let (url, _guard) = db.url().await;
    let counting = Counting::default();
    let a = engine(&Store::open(&url).await.unwrap(), registry(&counting));
    let b = engine(&Store::open(&url).await.unwrap(), registry(&counting));
    let p = plan(&format!("  ok:\n    uses: approval\n    with: {{ approvers: [lead@msp.example, boss@msp.example], quorum: 2, message: go? }}\n{}", call("after", "    needs: [ok]\n")));
    let mut ids = Vec::new();
    for _ in 0..8 {
        let id = start(&a, &p).await;
        a.worker(0).drive(&id, true).await.unwrap();
        ids.push(id);
    }
    for id in &ids {
        let (x, y) = tokio::join!(
            a.decide(decision(id, "ok", "lead@msp.example", true)),
            b.decide(decision(id, "ok", "boss@msp.example", true)),
        );
        x.unwrap();
        y.unwrap();
    }
    for id in &ids {
        assert_eq!(
            a.worker(0).drive(id, false).await.unwrap(),
            RunStatus::Succeeded
        );
        let decided = kinds(a.store(), id)
            .await
            .into_iter()
            .filter(|e| matches!(e, EventKind::ApprovalDecided { .. }))
            .count();
        assert_eq!(decided, 2);
        assert_eq!(b.verify(id).await.unwrap(), a.verify(id).await.unwrap());
    }
}

async fn waits_and_approval_expiry_fire_from_timers(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let engine = engine(&store, registry(&counting));
    let p = plan(&format!("  nap: {{ uses: wait, with: {{ for: 100ms }} }}\n  ok:\n    uses: approval\n    needs: [nap]\n    with: {{ approvers: [lead@msp.example], message: go?, expires: 100ms, on_expiry: approve }}\n{}", call("after", "    needs: [ok]\n").replace("json: { step: after }", "json: { woke: \"{{steps.nap.outputs.resumed_at}}\", decision: \"{{steps.ok.outputs.decision}}\" }")));
    let id = start(&engine, &p).await;
    assert_eq!(
        engine.worker(0).drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let fired = kinds(&store, &id)
        .await
        .into_iter()
        .filter(|e| matches!(e, EventKind::TimerFired { .. }))
        .count();
    assert_eq!(fired, 2);
    let outputs = store.outputs(&id).await.unwrap();
    let after = &outputs.iter().find(|(s, _, _)| s == "after").unwrap().2;
    assert_eq!(after["body"]["message"]["decision"], "expired");
    assert!(after["body"]["message"]["woke"]
        .as_str()
        .unwrap()
        .starts_with("20"));

    // on_expiry: fail fails the step, and the run.
    let p = plan("  ok:\n    uses: approval\n    with: { approvers: [lead@msp.example], message: go?, expires: 50ms, on_expiry: fail }\n");
    let id = start(&engine, &p).await;
    assert_eq!(
        engine.worker(0).drive(&id, false).await.unwrap(),
        RunStatus::Failed
    );
}

async fn concurrent_workers_share_runs_and_run_each_instance_once(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let engine = engine(&store, registry(&counting));
    let p = plan(&diamond());
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(start(&engine, &p).await);
    }
    let mut handles = Vec::new();
    for w in 0..3 {
        let worker = engine.worker(w);
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
        engine.verify(id).await.unwrap().unwrap();
    }
    let seen = counting.seen.lock().unwrap();
    assert_eq!(seen.len(), 30 * 6);
    assert!(seen.values().all(|n| *n == 1), "no instance ran twice");
}

async fn a_stale_claim_with_the_same_worker_name_never_removes_live_work(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let engine = engine(&store, registry(&counting));
    let id = start(&engine, &plan(&call("a", ""))).await;
    // Two workers with one name (every container's PID 1): the first claims and stalls, its
    // lease runs out, the second takes the task over.
    let (stale, _) = store
        .claim("worker-1-0", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let (live, taken_over) = store
        .claim("worker-1-0", Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert!(taken_over);
    assert_eq!(stale.id, live.id, "the same task row");
    assert_ne!(stale.fence(), live.fence(), "each claim has its own lease");
    // The stale worker's clean-up and lease renewal are refused; the live claim keeps its task.
    assert!(!store.remove_task(&stale.fence()).await.unwrap());
    assert!(!store
        .renew(&stale.fence(), Duration::from_secs(30))
        .await
        .unwrap());
    assert!(store
        .renew(&live.fence(), Duration::from_secs(1))
        .await
        .unwrap());
    // The live claim's lease then lapses too (it "crashed"): a fresh worker finishes the run.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        engine.worker(9).drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let lost = kinds(&store, &id)
        .await
        .into_iter()
        .filter(|e| matches!(e, EventKind::AttemptFailed { code, .. } if code == "lease_expired"))
        .count();
    assert_eq!(lost, 2, "both lost leases are journaled");
}

async fn an_expired_lease_is_taken_over_and_the_old_worker_is_fenced_out(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let engine = engine(&store, registry(&counting));
    let id = start(&engine, &plan(&call("a", ""))).await;
    let (task, _) = store
        .claim("w1", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let w2 = Worker::new(store.clone(), registry(&counting), "w2");
    assert_eq!(w2.drive(&id, false).await.unwrap(), RunStatus::Succeeded);
    // The dead worker's late clean-up is refused: it no longer holds the lease.
    assert!(!store.remove_task(&task.fence()).await.unwrap());
    engine.verify(&id).await.unwrap().unwrap();
}

async fn a_truncated_or_emptied_journal_fails_verification(db: Db) {
    let (url, _guard) = db.url().await;
    let store = Store::open(&url).await.unwrap();
    let engine = engine(&store, registry(&Counting::default()));
    let id = start(&engine, &plan(&diamond())).await;
    engine.worker(0).drive(&id, false).await.unwrap();
    let n = engine.verify(&id).await.unwrap().unwrap();
    // Delete the last events (run_finished among them) straight in the database.
    use sqlx::Connection;
    let any_url = url.replace("sqlite:", "sqlite://");
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&any_url).await.unwrap();
    sqlx::query("DELETE FROM events WHERE run_id = $1 AND seq > $2")
        .bind(&id)
        .bind(n as i64 - 3)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        engine.verify(&id).await.unwrap(),
        Err(VerifyError::Truncated {
            expected: n as u64,
            found: n as u64 - 3
        })
    );
    // The stored head moved back with the deleted tail: the chain and head agree, but the
    // run ended and its journal no longer says so.
    let last = engine.events(&id, 0).await.unwrap().pop().unwrap();
    sqlx::query("UPDATE runs SET last_seq = $1, last_hash = $2 WHERE id = $3")
        .bind(last.seq as i64)
        .bind(&last.hash)
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        engine.verify(&id).await.unwrap(),
        Err(VerifyError::UnfinishedJournal {
            status: "succeeded".into()
        })
    );
    sqlx::query("DELETE FROM events WHERE run_id = $1")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(matches!(
        engine.verify(&id).await.unwrap(),
        Err(VerifyError::Truncated { found: 0, .. })
    ));
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
            let message = call.params["json"]["m"].as_str().unwrap_or("").to_string();
            self.calls
                .lock()
                .unwrap()
                .push(format!("{}: {message}", call.step));
            let broken = *self.broken.lock().unwrap();
            if message == "risky" && broken {
                // Slow enough that two workers hold two risky steps at once.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(StepError::permanent("http_400", "the vendor said no"));
            }
            Ok(Outcome::Done(json!({"status": 200, "body": true})))
        })
    }
}

fn say(id: &str, extra: &str, m: &str) -> String {
    format!("  {id}:\n    uses: http.request\n{extra}    with: {{ url: \"http://v.invalid\", json: {{ m: \"{m}\" }} }}\n")
}

async fn failure_handling_retry_and_rollback(db: Db) {
    let (store, _dir) = db.open().await;
    let switch = Switch::default();
    *switch.broken.lock().unwrap() = true;
    let mut registry = tenure_engine::builtin::registry();
    registry.insert("http.request", switch.clone());
    let engine = engine(&store, registry);
    let worker = engine.worker(0);
    let p = plan(&format!(
        "{}{}{}on_failure:\n{}",
        say("a", "    compensate: { uses: http.request, with: { url: \"http://v.invalid\", json: { m: \"undo {{steps.a.outputs.body}}\" } } }\n", "create"),
        say("b", "    needs: [a]\n", "risky"),
        say("c", "    needs: [b]\n", "after"),
        say("tell", "", "{{run.failed_step}} failed: {{run.error}}")
    ));
    let id = start(&engine, &p).await;
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
    engine.retry(&id, vec![], "ops@msp.example").await.unwrap();
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    let calls = switch.calls.lock().unwrap().clone();
    assert_eq!(&calls[3..], ["b: risky", "c: after"]);
    assert!(
        engine.rollback(&id, "ops").await.is_err(),
        "a succeeded run is not rolled back"
    );

    // A second run fails and is rolled back: a's compensation runs with a's outputs.
    *switch.broken.lock().unwrap() = true;
    let id = start(&engine, &p).await;
    assert_eq!(worker.drive(&id, false).await.unwrap(), RunStatus::Failed);
    engine.rollback(&id, "ops@msp.example").await.unwrap();
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::RolledBack
    );
    assert_eq!(
        switch.calls.lock().unwrap().last().unwrap(),
        "undo:a: undo true"
    );
    engine.verify(&id).await.unwrap().unwrap();
    let events = kinds(&store, &id).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, EventKind::OnFailureStarted { failed_step } if failed_step == "b")));
    assert!(
        matches!(events.last().unwrap(), EventKind::RunFinished { status, .. } if status == "rolled_back")
    );
    let _ = Value::Null;
}

async fn retrying_one_of_two_failed_steps_runs_it(db: Db) {
    let (store, _dir) = db.open().await;
    let switch = Switch::default();
    *switch.broken.lock().unwrap() = true;
    let mut registry = tenure_engine::builtin::registry();
    registry.insert("http.request", switch.clone());
    let engine = engine(&store, registry);
    let worker = engine.worker(0);
    let p = plan(&format!(
        "{}{}{}",
        say("a", "", "risky"),
        say("b", "", "risky"),
        say("after_b", "    needs: [b]\n", "never")
    ));
    let id = start(&engine, &p).await;
    // Two workers take a and b at once: both fail.
    let other = engine.worker(1);

    let (x, y) = tokio::join!(worker.tick(), other.tick());
    assert!(x.unwrap() && y.unwrap());

    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Failed,
        "{:#?}",
        kinds(&store, &id).await
    );
    let run = engine.run(&id).await.unwrap();
    assert_eq!(
        run.machine.instance("b", 0),
        Some(InstanceState::Failed),
        "{:#?}",
        kinds(&store, &id).await
    );
    *switch.broken.lock().unwrap() = false;
    assert_eq!(
        engine.retry(&id, vec!["a".into()], "ops").await.unwrap(),
        RunStatus::Running,
        "a runs again; the run does not fail in the same transition"
    );
    assert_eq!(worker.drive(&id, false).await.unwrap(), RunStatus::Failed);
    let calls = switch.calls.lock().unwrap().clone();
    assert_eq!(calls.iter().filter(|c| c.starts_with("a:")).count(), 2);
    assert!(!calls.iter().any(|c| c.starts_with("after_b")));
    let run = engine.run(&id).await.unwrap();
    assert_eq!(run.machine.instance("a", 0), Some(InstanceState::Succeeded));
    assert_eq!(run.machine.failed_step(), Some("b"));
}

/// A worker with its default concurrency claims many tasks per write and runs them at once;
/// the writer applies their reports in shared batches (runs and fences read once, writes sent
/// together). Every run must succeed with a verified journal, every step executed once.
async fn many_runs_are_worked_at_once_in_batches(db: Db) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let engine = engine(&store, registry(&counting));
    let p = plan(&diamond());
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(start(&engine, &p).await);
    }
    // One claim takes several due tasks, each under its own lease token; the next claim
    // gets none of them. Their short leases then lapse and the worker takes them over.
    let claimed = store
        .claim_many("w", Duration::from_millis(50), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 10);
    let leases: std::collections::HashSet<_> =
        claimed.iter().map(|(t, _)| t.lease.clone()).collect();
    assert_eq!(leases.len(), 10);
    let again = store
        .claim_many("w", Duration::from_millis(50), 5)
        .await
        .unwrap();
    assert_eq!(again.len(), 5);
    assert!(again
        .iter()
        .all(|(t, _)| claimed.iter().all(|(c, _)| c.id != t.id)));
    let worker = engine.worker(0);
    assert!(worker.concurrency() >= 64, "a high default");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let working = {
        let (worker, stop) = (worker.clone(), stop.clone());
        tokio::spawn(async move {
            worker
                .work_until(|| stop.load(std::sync::atomic::Ordering::Relaxed))
                .await
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut finished = 0;
        for id in &ids {
            if engine.run(id).await.unwrap().status.is_final() {
                finished += 1;
            }
        }
        if finished == ids.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{finished} of {} runs finished",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    working.await.unwrap().unwrap();
    for id in &ids {
        assert_eq!(engine.run(id).await.unwrap().status, RunStatus::Succeeded);
        let n = engine.verify(id).await.unwrap().unwrap();
        assert_eq!(n, store.events(id).await.unwrap().len());
    }
    let seen = counting.seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        ids.len() * 6,
        "a, b, c and three groups per run"
    );
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
}

async fn pending_approvals_name_the_open_gates_of_a_person_and_the_queue_depth_counts_due_work(
    db: Db,
) {
    let (store, _dir) = db.open().await;
    let counting = Counting::default();
    let engine = engine(&store, registry(&counting));
    let worker = engine.worker(0);
    let p = plan(&format!("  ok:\n    uses: approval\n    with: {{ approvers: [lead@msp.example, boss@msp.example], quorum: 2, message: go? }}\n{}", call("after", "    needs: [ok]\n")));
    let first = start(&engine, &p).await;
    let second = start(&engine, &p).await;
    // Two runs queued, nothing claimed: two tasks due.
    assert_eq!(engine.queue_depth().await.unwrap(), 2);
    assert!(
        engine
            .pending_approvals("lead@msp.example")
            .await
            .unwrap()
            .is_empty(),
        "not parked yet"
    );
    for id in [&first, &second] {
        assert_eq!(worker.drive(id, true).await.unwrap(), RunStatus::Waiting);
    }
    assert_eq!(
        engine.queue_depth().await.unwrap(),
        0,
        "parked runs wait on no worker"
    );
    let pending = engine.pending_approvals("LEAD@msp.example").await.unwrap();
    let runs: Vec<&str> = pending.iter().map(|p| p.run_id.as_str()).collect();
    assert_eq!(runs, [second.as_str(), first.as_str()], "newest first");
    assert!(pending
        .iter()
        .all(|p| p.step == "ok" && p.runbook == "t" && p.gate.quorum == 2));
    assert!(engine
        .pending_approvals("stranger@msp.example")
        .await
        .unwrap()
        .is_empty());
    engine
        .decide(decision(&first, "ok", "lead@msp.example", true))
        .await
        .unwrap();
    let pending = engine.pending_approvals("lead@msp.example").await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "decided by them: no longer pending for them"
    );
    assert_eq!(pending[0].run_id, second);
    assert_eq!(
        engine
            .pending_approvals("boss@msp.example")
            .await
            .unwrap()
            .len(),
        2
    );
}

crate::on_both_databases!(
    pending_approvals_name_the_open_gates_of_a_person_and_the_queue_depth_counts_due_work,
    many_runs_are_worked_at_once_in_batches,
    failure_handling_retry_and_rollback,
    a_run_goes_from_start_to_finish_with_a_verified_journal,
    a_dedup_key_starts_a_run_once,
    transient_failures_use_the_budget_and_an_operator_retry_renews_it,
    throttling_is_waited_out_without_using_the_budget_and_capped,
    a_kind_saying_not_yet_frees_the_worker_and_keeps_its_budget,
    approvals_park_the_run_until_the_quorum_decides,
    concurrent_approvals_from_two_processes_reach_the_quorum,
    waits_and_approval_expiry_fire_from_timers,
    concurrent_workers_share_runs_and_run_each_instance_once,
    a_stale_claim_with_the_same_worker_name_never_removes_live_work,
    an_expired_lease_is_taken_over_and_the_old_worker_is_fenced_out,
    a_truncated_or_emptied_journal_fails_verification,
    retrying_one_of_two_failed_steps_runs_it,
);
