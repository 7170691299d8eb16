//! `runbook.call` through the engine API, the store and the driver, on both databases: the
//! called run starts in the transaction that parks the calling step, its end wakes the caller
//! in the transaction that ends it (nothing to lose between the two), its outputs (secrets
//! still sealed) reach the caller, a failed called run fails the step and an operator's retry
//! resumes that same run, and cancelling the caller cancels the called run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};
use tenure_engine::journal::EventKind;
use tenure_engine::machine::{InstanceState, RunStatus};
use tenure_engine::store::{RunFilter, Store};
use tenure_engine::{Decide, Engine, StartRun, Trigger};
use tenure_runbook::{compile_with, Plan, Runbooks, SourceFile, Unresolved};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};

use crate::db::Db;

const PASSWORD: &str = "Tr1cky-Secret-Value";

/// The runbooks a test's caller may call, by id.
struct Books(HashMap<String, String>);

impl Runbooks for Books {
    fn resolve(&self, id: &str, _caller: &str) -> Result<Plan, Unresolved> {
        let text = self
            .0
            .get(id)
            .ok_or_else(|| Unresolved::Unknown(self.0.keys().cloned().collect()))?;
        compile_with(
            &SourceFile::new(format!("{id}.yaml"), text.clone()),
            &tenure_steps::catalogue(),
            self,
        )
        .plan
        .ok_or_else(|| Unresolved::Invalid(format!("{id} does not compile")))
    }
}

fn compiled(text: &str, books: &[(&str, &str)]) -> Plan {
    let books = Books(
        books
            .iter()
            .map(|(id, t)| (id.to_string(), t.to_string()))
            .collect(),
    );
    let src = SourceFile::new("caller.yaml", text.to_string());
    let out = compile_with(&src, &tenure_steps::catalogue(), &books);
    for d in &out.diagnostics {
        eprintln!("{}", d.render(&src));
    }
    out.plan.expect("compiles")
}

/// `http.request` that echoes its `json` (so a secret it is given would show in its output),
/// failing permanently while `broken`.
#[derive(Clone, Default)]
struct Echo {
    broken: Arc<Mutex<bool>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Executor for Echo {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(call.idempotency_key());
            if *self.broken.lock().unwrap() {
                return Err(StepError::permanent(
                    "http_404",
                    "the mailbox does not exist",
                ));
            }
            Ok(Outcome::Done(
                json!({"status": 200, "body": {"echo": call.params["json"]}}),
            ))
        })
    }
}

/// `password.generate` with a fixed password (a secret output).
struct Generate;

impl Executor for Generate {
    fn execute<'a>(&'a self, _call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move { Ok(Outcome::Done(json!({ "password": PASSWORD }))) })
    }
}

fn engine(store: &Store, echo: &Echo) -> Engine {
    let mut registry: Registry = tenure_engine::builtin::registry();
    registry.insert("http.request", echo.clone());
    registry.insert("password.generate", Generate);
    Engine::new(
        store.clone(),
        registry,
        Arc::new(|id: &str| Ok(json!({"id": id, "domain": "contoso.example", "name": "Contoso"}))),
    )
}

async fn start(engine: &Engine, plan: &Plan, inputs: Value) -> String {
    let inputs: Map<String, Value> = inputs.as_object().cloned().unwrap_or_default();
    engine
        .start_run(StartRun {
            plan: Arc::new(plan.clone()),
            inputs,
            trigger: Trigger::new("test", Some("tester".into())),
            dedup_key: None,
        })
        .await
        .unwrap()
        .id
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

async fn children(engine: &Engine, parent: &str) -> Vec<String> {
    let filter = RunFilter {
        parent: Some(parent.into()),
        ..RunFilter::default()
    };
    engine
        .runs(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

const CHILD: &str = r#"runbook: child
version: 4
tenant: "{{inputs.tenant}}"
inputs:
  tenant: { type: string, required: true }
  user: { type: string, required: true }
  note: { type: string }
steps:
  gen:
    uses: password.generate
  mailbox:
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/mailbox", json: { user: "{{inputs.user}}", note: "{{inputs.note}}" } }
"#;

const CALLER: &str = r#"runbook: caller
version: 1
tenant: contoso
inputs:
  pw: { type: secret, required: true }
steps:
  call:
    uses: runbook.call
    with:
      runbook: child
      inputs: { tenant: contoso, user: ada@contoso.example, note: "pw {{inputs.pw}}" }
  tell:
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/tell", json: { run: "{{steps.call.outputs.run_id}}", user: "{{steps.call.outputs.outputs.mailbox.body.echo.user}}", password: "{{steps.call.outputs.outputs.gen.password}}" } }
"#;

async fn a_call_runs_the_called_runbook_and_exposes_its_outputs(db: Db) {
    let (store, _dir) = db.open().await;
    let echo = Echo::default();
    let engine = engine(&store, &echo);
    let plan = compiled(CALLER, &[("child", CHILD)]);
    assert_eq!(plan.calls["child"].version, 4, "the called plan is pinned");
    let id = start(&engine, &plan, json!({"pw": "Caller-Pass-Word-9"})).await;
    let worker = engine.worker(0);
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded,
        "{:#?}",
        kinds(&store, &id).await
    );
    let kids = children(&engine, &id).await;
    assert_eq!(kids.len(), 1, "one called run");
    let child = &kids[0];
    let record = engine.run(child).await.unwrap();
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.parent, Some((id.clone(), "call".into(), 0)));
    // The parent journals the called run's id and end; the child, who called it.
    let parent_log = kinds(&store, &id).await;
    assert!(parent_log.iter().any(|e| matches!(e, EventKind::ChildRunStarted { run, runbook, .. } if run == child && runbook == "child")), "{parent_log:#?}");
    assert!(parent_log.iter().any(|e| matches!(e, EventKind::ChildRunEnded { run, status, .. } if run == child && status == "succeeded")));
    let child_log = kinds(&store, child).await;
    assert!(
        matches!(&child_log[0], EventKind::RunCreated { trigger, .. } if trigger == &format!("call by run {id} (step call)")),
        "{child_log:#?}"
    );
    // The step's outputs: the called run's id, status and step outputs.
    let outputs = engine.outputs(&id).await.unwrap();
    let call = &outputs.iter().find(|(s, _, _)| s == "call").unwrap().2;
    assert_eq!(call["run_id"], json!(child));
    assert_eq!(call["status"], "succeeded");
    assert_eq!(
        call["outputs"]["mailbox"]["body"]["echo"]["user"],
        "ada@contoso.example"
    );
    assert_eq!(
        call["outputs"]["gen"]["password"], PASSWORD,
        "opened for templates"
    );
    let tell = &outputs.iter().find(|(s, _, _)| s == "tell").unwrap().2;
    assert_eq!(tell["body"]["echo"]["user"], "ada@contoso.example");
    assert_eq!(tell["body"]["echo"]["run"], json!(child));
    // Secrets stay secret: the child's generated password and the caller's secret input
    // (passed to a plain `string` input) are sealed at rest and `***` in every journal and in
    // what later steps report.
    assert_eq!(tell["body"]["echo"]["password"], "***", "{tell}");
    for run in [&id, child] {
        let text = serde_json::to_string(&store.events(run).await.unwrap()).unwrap();
        assert!(
            !text.contains(PASSWORD) && !text.contains("Caller-Pass-Word-9"),
            "{text}"
        );
        let context = engine.run(run).await.unwrap().context.to_string();
        assert!(!context.contains("Caller-Pass-Word-9"), "{context}");
        assert!(engine.verify(run).await.unwrap().is_ok());
    }
    let child_outputs = engine.outputs(child).await.unwrap();
    let mailbox = &child_outputs
        .iter()
        .find(|(s, _, _)| s == "mailbox")
        .unwrap()
        .2;
    assert_eq!(
        mailbox["body"]["echo"]["note"], "***",
        "the value carrying the caller's secret is sealed, and scrubbed"
    );
}

const FLAKY_CHILD: &str = r#"runbook: flaky
version: 1
tenant: contoso
steps:
  mailbox:
    uses: http.request
    with: { method: POST, url: "http://vendor.invalid/mailbox", json: { a: 1 } }
"#;

async fn a_failed_call_fails_the_step_and_a_retry_resumes_the_same_run(db: Db) {
    let (store, _dir) = db.open().await;
    let echo = Echo::default();
    *echo.broken.lock().unwrap() = true;
    let engine = engine(&store, &echo);
    let caller = "runbook: caller\nversion: 1\ntenant: contoso\nsteps:\n  call:\n    uses: runbook.call\n    with: { runbook: flaky }\n";
    let plan = compiled(caller, &[("flaky", FLAKY_CHILD)]);
    let id = start(&engine, &plan, json!({})).await;
    let worker = engine.worker(0);
    assert_eq!(worker.drive(&id, false).await.unwrap(), RunStatus::Failed);
    let kids = children(&engine, &id).await;
    assert_eq!(kids.len(), 1);
    let child = kids[0].clone();
    assert_eq!(engine.run(&child).await.unwrap().status, RunStatus::Failed);
    let log = kinds(&store, &id).await;
    let reason = log
        .iter()
        .find_map(|e| match e {
            EventKind::GaveUp { step, reason, .. } if step == "call" => Some(reason.clone()),
            _ => None,
        })
        .expect("the call step gave up");
    assert_eq!(
        reason,
        format!("the called run {child} (flaky) ended failed at step `mailbox`: the mailbox does not exist")
    );
    // The operator fixes the cause and retries the caller: the same called run is retried
    // (no second one), and both succeed.
    *echo.broken.lock().unwrap() = false;
    engine.retry(&id, vec![], "ops").await.unwrap();
    assert_eq!(
        worker.drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
    assert_eq!(children(&engine, &id).await, vec![child.clone()]);
    assert_eq!(
        engine.run(&child).await.unwrap().status,
        RunStatus::Succeeded
    );
    let child_log = kinds(&store, &child).await;
    assert!(child_log.iter().any(|e| matches!(e, EventKind::RunRetried { by, .. } if by == &format!("run {id} (step call)"))), "{child_log:#?}");
    // The child's step ran twice (failed, then succeeded) with one idempotency key.
    let calls = echo.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0], calls[1]);
}

const GATED_CHILD: &str = r#"runbook: gated
version: 1
tenant: contoso
steps:
  approve:
    uses: approval
    with: { approvers: [it@msp.example], message: go? }
"#;

fn decide(run: &str, approve: bool) -> Decide {
    Decide {
        run_id: run.into(),
        step: "approve".into(),
        approver: "it@msp.example".into(),
        approve,
        comment: None,
        source: "test".into(),
        user_agent: None,
    }
}

/// Works until nothing is due (the called run parks on its approval).
async fn settle(engine: &Engine) {
    let worker = engine.worker(9);
    while worker.tick().await.unwrap() {}
}

async fn the_caller_wakes_in_the_transaction_that_ends_the_called_run(db: Db) {
    let (url, _dir) = db.url().await;
    let store = Store::open(&url).await.unwrap();
    let echo = Echo::default();
    let engine = engine(&store, &echo);
    let caller = "runbook: caller\nversion: 1\ntenant: contoso\nsteps:\n  call:\n    uses: runbook.call\n    with: { runbook: gated }\n  after:\n    uses: http.request\n    needs: [call]\n    with: { url: \"http://vendor.invalid/after\" }\n";
    let plan = compiled(caller, &[("gated", GATED_CHILD)]);
    let id = start(&engine, &plan, json!({})).await;
    settle(&engine).await;
    let child = children(&engine, &id).await.remove(0);
    // Both runs are parked: rows, no task of the caller's.
    assert_eq!(engine.run(&child).await.unwrap().status, RunStatus::Waiting);
    assert_eq!(engine.run(&id).await.unwrap().status, RunStatus::Waiting);
    // The decision ends the called run, and the caller's step succeeds in the same commit:
    // no worker runs in between, and a new process sees both.
    engine.decide(decide(&child, true)).await.unwrap();
    drop(engine);
    drop(store);
    let store = Store::open(&url).await.unwrap();
    let engine = self::engine(&store, &echo);
    assert_eq!(
        engine.run(&child).await.unwrap().status,
        RunStatus::Succeeded
    );
    let run = engine.run(&id).await.unwrap();
    assert_eq!(
        run.machine.instance("call", 0),
        Some(InstanceState::Succeeded)
    );
    assert_eq!(run.status, RunStatus::Running, "`after` is ready");
    let outputs = engine.outputs(&id).await.unwrap();
    let call = &outputs.iter().find(|(s, _, _)| s == "call").unwrap().2;
    assert_eq!(call["outputs"]["approve"]["decision"], "approved");
    assert_eq!(
        engine.worker(1).drive(&id, false).await.unwrap(),
        RunStatus::Succeeded
    );
}

async fn cancelling_the_caller_cancels_the_called_run(db: Db) {
    let (store, _dir) = db.open().await;
    let engine = engine(&store, &Echo::default());
    let caller = "runbook: caller\nversion: 1\ntenant: contoso\nsteps:\n  call:\n    uses: runbook.call\n    with: { runbook: gated }\n";
    let plan = compiled(caller, &[("gated", GATED_CHILD)]);
    let id = start(&engine, &plan, json!({})).await;
    settle(&engine).await;
    let child = children(&engine, &id).await.remove(0);
    assert_eq!(engine.run(&child).await.unwrap().status, RunStatus::Waiting);
    assert_eq!(
        engine.cancel(&id, "ops").await.unwrap(),
        RunStatus::Cancelled
    );
    assert_eq!(
        engine.run(&child).await.unwrap().status,
        RunStatus::Cancelled
    );
    let child_log = kinds(&store, &child).await;
    assert!(child_log.iter().any(|e| matches!(e, EventKind::RunCancelled { by } if by == &format!("run {id} (step call)"))), "{child_log:#?}");
    // A called run denied by its approver fails the calling step; a retry calls afresh (a
    // denied run cannot be resumed).
    let id = start(&engine, &plan, json!({})).await;
    settle(&engine).await;
    let first = children(&engine, &id).await.remove(0);
    engine.decide(decide(&first, false)).await.unwrap();
    assert_eq!(engine.run(&id).await.unwrap().status, RunStatus::Failed);
    engine.retry(&id, vec![], "ops").await.unwrap();
    settle(&engine).await;
    let kids = children(&engine, &id).await;
    assert_eq!(kids.len(), 2, "a second called run");
    let second = kids.into_iter().find(|k| k != &first).unwrap();
    engine.decide(decide(&second, true)).await.unwrap();
    assert_eq!(engine.run(&id).await.unwrap().status, RunStatus::Succeeded);
}

async fn calls_nest_at_most_eight_runs_deep(db: Db) {
    let (store, _dir) = db.open().await;
    let engine = engine(&store, &Echo::default());
    // r0 calls r1 calls ... r9: no cycle, but nine runs deep below r0.
    let texts: Vec<(String, String)> = (0..10)
        .map(|i| {
            let step = if i < 9 {
                format!(
                    "  next:\n    uses: runbook.call\n    with: {{ runbook: r{} }}\n",
                    i + 1
                )
            } else {
                "  nap:\n    uses: wait\n    with: { for: 1ms }\n".to_string()
            };
            (
                format!("r{i}"),
                format!("runbook: r{i}\nversion: 1\ntenant: contoso\nsteps:\n{step}"),
            )
        })
        .collect();
    let books: Vec<(&str, &str)> = texts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    // The compiler refuses such a chain (RB0047); a plan made elsewhere still meets the
    // run-time limit. r0 is compiled against a stand-in `r1` that calls nothing, then given
    // the real one.
    let r1 = compiled(&texts[1].1, &books[2..]);
    let stand_in = "runbook: r1\nversion: 1\ntenant: contoso\nsteps:\n  nap:\n    uses: wait\n    with: { for: 1ms }\n";
    let mut plan = compiled(&texts[0].1, &[("r1", stand_in)]);
    plan.calls.insert("r1".into(), r1);
    plan.hash = plan.compute_hash();
    let id = start(&engine, &plan, json!({})).await;
    settle(&engine).await;
    // The ninth call is refused; each caller above it fails in turn with the reason.
    assert_eq!(engine.run(&id).await.unwrap().status, RunStatus::Failed);
    let log = kinds(&store, &id).await;
    let reason = log
        .iter()
        .find_map(|e| match e {
            EventKind::GaveUp { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap();
    assert!(reason.contains("ended failed at step `next`"), "{reason}");
    let mut deepest = id.clone();
    for _ in 0..8 {
        deepest = children(&engine, &deepest).await.remove(0);
    }
    assert!(children(&engine, &deepest).await.is_empty(), "no ninth run");
    let failed = kinds(&store, &deepest).await;
    assert!(failed.iter().any(|e| matches!(e, EventKind::AttemptFailed { message, .. } if message == "runbook calls nest deeper than 8 runs")), "{failed:#?}");
}

crate::on_both_databases!(
    calls_nest_at_most_eight_runs_deep,
    a_call_runs_the_called_runbook_and_exposes_its_outputs,
    a_failed_call_fails_the_step_and_a_retry_resumes_the_same_run,
    the_caller_wakes_in_the_transaction_that_ends_the_called_run,
    cancelling_the_caller_cancels_the_called_run,
);
