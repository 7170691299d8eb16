//! The thin driver: claims tasks from the store, renders templates, runs step kinds, and feeds
//! what happened back to the state machine through [`Store::transition`]. Any number of
//! workers (tasks or processes) may drive one store; leases and attempt numbers keep them from
//! stepping on each other.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tenure_runbook::{Catalogue, FieldType, Plan, Renderer, Step, Template};

use crate::journal::EventKind;
use crate::machine::{Event, InstanceState, RunStatus};
use crate::retry;
use crate::store::{now_ms, Change, Error, RunRecord, Store, Task, TaskKind};
use tenure_steps::{Call, Outcome, Registry, Requests, StepError};

/// One worker.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    registry: Registry,
    renderer: Arc<Renderer>,
    catalogue: Arc<tenure_runbook::SchemaCatalogue>,
    owner: String,
    lease: Duration,
}

impl Worker {
    /// A worker named `owner` over `store`, running the kinds in `registry`.
    pub fn new(store: Store, registry: Registry, owner: impl Into<String>) -> Self {
        Worker {
            store,
            registry,
            renderer: Arc::new(Renderer::new()),
            catalogue: Arc::new(tenure_steps::catalogue()),
            owner: owner.into(),
            lease: Duration::from_secs(30),
        }
    }

    /// Sets how long a claim lasts without a heartbeat.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Does one due task, if there is one. Returns whether it did any work.
    pub async fn tick(&self) -> Result<bool, Error> {
        let Some((task, _taken_over)) = self.store.claim(&self.owner, self.lease).await? else {
            return Ok(false);
        };
        let run = self.store.run(&task.run_id).await?;
        if run.status.is_final() {
            self.drop_task(&task).await?;
            return Ok(true);
        }
        let Some(step) = step_for(&run.plan, &task.step) else {
            self.drop_task(&task).await?;
            return Ok(true);
        };
        let result = match task.kind {
            TaskKind::Prepare => self.prepare(&task, &run, &step).await,
            TaskKind::Attempt => self.attempt(&task, &run, &step).await,
            TaskKind::Timer => self.timer(&task, &run, &step).await,
        };
        match result {
            // Another worker took over, or the event no longer fits: the newer state wins.
            Err(Error::LeaseLost) => Ok(true),
            Err(Error::Machine(_)) => {
                self.drop_task(&task).await?;
                Ok(true)
            }
            other => other.map(|()| true),
        }
    }

    /// Works until `done` returns true, sleeping while nothing is due.
    pub async fn work_until(&self, done: impl Fn() -> bool) -> Result<(), Error> {
        let mut wake = self.store.subscribe();
        // Work created by other processes wakes a PostgreSQL worker through LISTEN/NOTIFY; on
        // SQLite it is found by polling.
        let poll: i64 = if self.store.backend() == "postgres" {
            1000
        } else {
            50
        };
        let mut failures = 0u32;
        while !done() {
            wake.borrow_and_update();
            let worked = match self.tick().await {
                Ok(worked) => {
                    failures = 0;
                    worked
                }
                // The database is unreachable or a batch did not commit: nothing was applied,
                // so back off and try again rather than stop working.
                Err(e @ (Error::Db(_) | Error::Commit(_))) => {
                    failures += 1;
                    eprintln!("worker {}: store error, retrying: {e}", self.owner);
                    let backoff = 50u64 << failures.min(5);
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !worked {
                // Sleep until the next task is due, new work appears, or the poll interval
                // passes.
                let wait = match self.store.next_due().await? {
                    Some(due) => (due - now_ms()).clamp(1, poll),
                    None => poll,
                };
                let _ =
                    tokio::time::timeout(Duration::from_millis(wait as u64), wake.changed()).await;
            }
        }
        Ok(())
    }

    /// Drives one run until it ends (or, with `stop_when_waiting`, until it only waits).
    pub async fn drive(&self, run_id: &str, stop_when_waiting: bool) -> Result<RunStatus, Error> {
        loop {
            let status = self.store.run(run_id).await?.status;
            if status.is_final() || (stop_when_waiting && status == RunStatus::Waiting) {
                return Ok(status);
            }
            if !self.tick().await? {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn drop_task(&self, task: &Task) -> Result<(), Error> {
        let _ = self.store.remove_task(task.id).await?;
        Ok(())
    }

    /// The template context of a run: inputs, vars, tenant, run, trigger, and every step's
    /// outputs so far (declared outputs of unfinished or skipped steps read as null).
    async fn context(&self, run: &RunRecord) -> Result<Value, Error> {
        let mut ctx = run.context.clone();
        let outputs = self.store.outputs(&run.id).await?;
        let mut steps = Map::new();
        for s in run.plan.steps.iter().chain(&run.plan.on_failure) {
            let empty: Value = self
                .catalogue
                .get(&s.uses)
                .map(|k| {
                    Value::Object(
                        k.outputs
                            .iter()
                            .map(|o| (o.name.clone(), Value::Null))
                            .collect(),
                    )
                })
                .unwrap_or_else(|| json!({}));
            let mine: Vec<&Value> = outputs
                .iter()
                .filter(|(st, _, _)| st == &s.id)
                .map(|(_, _, v)| v)
                .collect();
            let value = if s.for_each.is_some() {
                Value::Array(mine.into_iter().cloned().collect())
            } else {
                mine.first().map_or(empty, |v| (*v).clone())
            };
            steps.insert(s.id.clone(), json!({"outputs": value}));
        }
        ctx["steps"] = Value::Object(steps);
        if let Some(failed) = run.machine.failed_step() {
            // For on_failure steps: which step failed the run, and its last error.
            let error = self
                .store
                .events(&run.id)
                .await?
                .into_iter()
                .rev()
                .find_map(|e| match e.kind {
                    EventKind::AttemptFailed { step, message, .. } if step == failed => {
                        Some(message)
                    }
                    _ => None,
                });
            ctx["run"]["failed_step"] = json!(failed);
            ctx["run"]["error"] = json!(error);
        }
        Ok(ctx)
    }

    async fn prepare(&self, task: &Task, run: &RunRecord, step: &Step) -> Result<(), Error> {
        let ctx = self.context(run).await?;
        let fence = Some((task.id, self.owner.as_str()));
        let rendered = (|| {
            let skip = match &step.condition {
                Some(c) => !self
                    .renderer
                    .render_condition(c, &ctx)
                    .map_err(|e| e.to_string())?,
                None => false,
            };
            let items = match &step.for_each {
                None => None,
                Some(Value::Array(a)) => Some(a.len() as u32),
                Some(Value::String(t)) => match self
                    .renderer
                    .render_value(&Template::new(t.clone()), &ctx)
                    .map_err(|e| e.to_string())?
                {
                    Value::Array(a) => Some(a.len() as u32),
                    Value::Null => Some(0),
                    other => return Err(format!("`for_each` rendered {other}, not a list")),
                },
                Some(other) => return Err(format!("`for_each` is {other}, not a list")),
            };
            Ok((skip, items))
        })();
        let change = match rendered {
            Ok((skip, items)) => Change {
                events: vec![Event::Prepared {
                    step: step.id.clone(),
                    items,
                    skip,
                }],
                remove_task: Some(task.id),
                ..Change::default()
            },
            Err(message) => Change {
                events: vec![Event::PrepareFailed {
                    step: step.id.clone(),
                }],
                journal: vec![EventKind::AttemptFailed {
                    step: step.id.clone(),
                    item: None,
                    attempt: 0,
                    class: "permanent".into(),
                    code: "template".into(),
                    message,
                    retry_after_ms: None,
                }],
                remove_task: Some(task.id),
                ..Change::default()
            },
        };
        self.store
            .transition(&run.id, fence, change)
            .await
            .map(drop)
    }

    async fn attempt(&self, task: &Task, run: &RunRecord, step: &Step) -> Result<(), Error> {
        let fence = Some((task.id, self.owner.as_str()));
        // The claim started the attempt (see `Store::claim`); without one the instance was not
        // claimable and the task is stale.
        let Some(attempt) = task.attempt else {
            return Err(Error::Machine(crate::machine::Error::Invalid(
                "instance is not claimable".into(),
            )));
        };
        let item = Some(task.item);
        let requests = Requests::new();
        let result = self.execute(task, run, step, attempt, &requests).await;
        let (sid, it) = (step.id.clone(), task.item);
        let summaries: Vec<EventKind> = requests
            .take()
            .into_iter()
            .map(|r| EventKind::RequestSummary {
                step: sid.clone(),
                item,
                attempt,
                method: r.method,
                path: r.path,
                status: r.status,
                duration_ms: r.duration_ms,
            })
            .collect();
        let mut change = match result {
            Ok(Outcome::Done(output)) => Change {
                events: vec![Event::AttemptSucceeded {
                    step: sid.clone(),
                    item: it,
                    attempt,
                }],
                journal: vec![EventKind::AttemptSucceeded {
                    step: sid.clone(),
                    item,
                    attempt,
                    output: self.redact(step, &output),
                }],
                output: Some((sid, it, self.seal(step, output))),
                remove_task: Some(task.id),
                ..Change::default()
            },
            Ok(Outcome::Park { wake_at_ms, detail }) => {
                let at = chrono::DateTime::from_timestamp_millis(wake_at_ms as i64)
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default();
                let journal = if step.uses == "approval" {
                    let approvers = detail["approvers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect();
                    EventKind::ApprovalRequested {
                        step: sid.clone(),
                        approvers,
                        expires_at: at,
                    }
                } else {
                    EventKind::TimerSet {
                        step: sid.clone(),
                        at,
                    }
                };
                Change {
                    events: vec![Event::Parked {
                        step: sid.clone(),
                        item: it,
                        attempt,
                    }],
                    journal: vec![journal],
                    output: Some((sid.clone(), it, detail)),
                    remove_task: Some(task.id),
                    timer: Some((sid, it, wake_at_ms as i64)),
                    ..Change::default()
                }
            }
            // Minimal handling until the machine has an event of its own: a retry at the
            // kind's time that bypasses the error policy's budget, journaled as `later`.
            Ok(Outcome::Later { at_ms, reason }) => Change {
                events: vec![Event::AttemptFailed {
                    step: sid.clone(),
                    item: it,
                    attempt,
                    retry_at_ms: Some(at_ms.min(i64::MAX as u64)),
                }],
                journal: vec![EventKind::AttemptFailed {
                    step: sid,
                    item,
                    attempt,
                    class: "later".into(),
                    code: "not_ready".into(),
                    message: reason,
                    retry_after_ms: Some(at_ms.saturating_sub(now_ms() as u64)),
                }],
                ..Change::default()
            },
            Err(e) => {
                let policy = step.retry.clone().unwrap_or_else(retry::default_policy);
                let delay = if e.retryable {
                    retry::next_delay(&policy, attempt, e.retry_after, rand::random::<f64>())
                } else {
                    None
                };
                let retry_at_ms = delay.map(|d| due_after(d.as_millis()));
                Change {
                    events: vec![Event::AttemptFailed {
                        step: sid.clone(),
                        item: it,
                        attempt,
                        retry_at_ms,
                    }],
                    journal: vec![EventKind::AttemptFailed {
                        step: sid,
                        item,
                        attempt,
                        class: if e.retryable {
                            "transient".into()
                        } else {
                            "permanent".into()
                        },
                        code: e.code,
                        message: e.message,
                        retry_after_ms: e
                            .retry_after
                            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    }],
                    remove_task: retry_at_ms.is_none().then_some(task.id),
                    ..Change::default()
                }
            }
        };
        change.journal.splice(0..0, summaries);
        self.store
            .transition(&run.id, fence, change)
            .await
            .map(drop)
    }

    /// Renders `with` and runs the kind, renewing the lease while it works and bounding it by
    /// the step's `timeout`.
    async fn execute(
        &self,
        task: &Task,
        run: &RunRecord,
        step: &Step,
        attempt: u32,
        requests: &Requests,
    ) -> Result<Outcome, StepError> {
        let mut ctx = self
            .context(run)
            .await
            .map_err(|e| StepError::transient("store", e.to_string()))?;
        if let Some(items) = self.items(step, &ctx) {
            ctx["item"] = items
                .get(task.item as usize)
                .cloned()
                .unwrap_or(Value::Null);
            ctx["index"] = json!(task.item);
        }
        let params = self
            .renderer
            .render_tree(&step.with, &ctx)
            .map_err(|e| StepError::permanent("template", e.message))?;
        let executor = self.registry.get(&step.uses).ok_or_else(|| {
            StepError::permanent(
                "not_executable",
                format!(
                    "step kind `{}` cannot run yet: its vendor client is not built",
                    step.uses
                ),
            )
        })?;
        let heartbeat = {
            let (store, owner, lease, id) =
                (self.store.clone(), self.owner.clone(), self.lease, task.id);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    if !matches!(store.renew(id, &owner, lease).await, Ok(true)) {
                        break;
                    }
                }
            })
        };
        let call = Call {
            run_id: &run.id,
            step: &step.id,
            item: task.item,
            attempt,
            params: &params,
            context: &ctx,
            requests,
        };
        let work = executor.execute(call);
        let result = match step.timeout {
            Some(t) => tokio::time::timeout(t.0, work).await.unwrap_or_else(|_| {
                Err(StepError::transient(
                    "timeout",
                    format!("the attempt took longer than {t}"),
                ))
            }),
            None => work.await,
        };
        heartbeat.abort();
        result
    }

    fn items(&self, step: &Step, ctx: &Value) -> Option<Vec<Value>> {
        match step.for_each.as_ref()? {
            Value::Array(a) => Some(a.clone()),
            Value::String(t) => self
                .renderer
                .render_value(&Template::new(t.clone()), ctx)
                .ok()?
                .as_array()
                .cloned(),
            _ => None,
        }
    }

    /// Outputs as they are stored: secret outputs sealed (encrypted at rest).
    fn seal(&self, step: &Step, output: Value) -> Value {
        let Some(kind) = self.catalogue.get(&step.uses) else {
            return output;
        };
        let mut out = output;
        if let Value::Object(map) = &mut out {
            for o in kind.outputs.iter().filter(|o| o.ty == FieldType::Secret) {
                if let Some(v) = map.get_mut(&o.name) {
                    if let Some(text) = v.as_str() {
                        *v = json!(self.store.secrets().seal(text));
                    }
                }
            }
        }
        out
    }

    /// Outputs as they may be journaled: secret outputs become `***`.
    fn redact(&self, step: &Step, output: &Value) -> Value {
        let Some(kind) = self.catalogue.get(&step.uses) else {
            return output.clone();
        };
        let mut out = output.clone();
        if let Value::Object(map) = &mut out {
            for o in kind.outputs.iter().filter(|o| o.ty == FieldType::Secret) {
                if let Some(v) = map.get_mut(&o.name) {
                    *v = json!("***");
                }
            }
        }
        out
    }

    async fn timer(&self, task: &Task, run: &RunRecord, step: &Step) -> Result<(), Error> {
        let fence = Some((task.id, self.owner.as_str()));
        let sid = step.id.clone();
        let event = if step.uses == "approval" {
            let on_expiry = step.with["on_expiry"].as_str().unwrap_or("deny");
            Event::ApprovalResolved {
                step: sid.clone(),
                approved: on_expiry == "approve",
            }
        } else {
            Event::TimerFired {
                step: sid.clone(),
                item: task.item,
            }
        };
        let change = Change {
            events: vec![event],
            journal: vec![EventKind::TimerFired { step: sid }],
            remove_task: Some(task.id),
            ..Change::default()
        };
        self.store
            .transition(&run.id, fence, change)
            .await
            .map(drop)
    }
}

/// The step a task runs: a plan step, or for a compensation node `undo:STEP` the step's
/// `compensate` (its `uses` and `with`, over the same items, without `if` or `needs`).
pub fn step_for(plan: &Plan, id: &str) -> Option<Step> {
    if let Some(original) = crate::machine::undone_step(id) {
        let original = plan.step(original)?;
        let compensate = original.compensate.as_ref()?;
        let mut step = original.clone();
        step.id = id.to_string();
        step.uses = compensate.uses.clone();
        step.with = compensate.with.clone();
        step.condition = None;
        step.needs = Vec::new();
        step.continue_on_error = false;
        step.compensate = None;
        return Some(step);
    }
    plan.step(id).cloned()
}

/// Why an approval decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Error),
    /// The approval id is not `RUN:STEP` of a waiting approval.
    #[error("no approval `{0}` is waiting for a decision")]
    NotWaiting(String),
    /// The person is not an approver of this gate.
    #[error("{0} is not an approver of this request")]
    NotApprover(String),
}

/// Records an approval decision; resolves the gate when the quorum is reached or anyone
/// denies. `approval` is `RUN_ID:STEP`. Returns the run's status afterwards.
pub async fn decide(
    store: &Store,
    approval: &str,
    approver: &str,
    approve: bool,
    comment: Option<String>,
    source: &str,
) -> Result<RunStatus, DecideError> {
    let (run_id, step_id) = approval
        .rsplit_once(':')
        .ok_or_else(|| DecideError::NotWaiting(approval.into()))?;
    let run = store
        .run(run_id)
        .await
        .map_err(|_| DecideError::NotWaiting(approval.into()))?;
    let step = run
        .plan
        .step(step_id)
        .filter(|s| s.uses == "approval")
        .ok_or_else(|| DecideError::NotWaiting(approval.into()))?;
    if !matches!(
        run.machine.instance(step_id, 0),
        Some(InstanceState::Parked { .. })
    ) {
        return Err(DecideError::NotWaiting(approval.into()));
    }
    let outputs = store.outputs(run_id).await?;
    let detail = outputs
        .iter()
        .find(|(s, _, _)| s == step_id)
        .map(|(_, _, v)| v.clone())
        .unwrap_or(Value::Null);
    let approvers: Vec<String> = detail["approvers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_lowercase))
        .collect();
    if !approvers.contains(&approver.to_lowercase()) {
        return Err(DecideError::NotApprover(approver.into()));
    }
    let quorum = detail["quorum"]
        .as_u64()
        .or_else(|| step.with["quorum"].as_u64())
        .unwrap_or(1) as usize;
    let mut decisions = store.decisions(run_id, step_id).await?;
    decisions.retain(|(a, _)| !a.eq_ignore_ascii_case(approver));
    let approvals = decisions.iter().filter(|(_, d)| d == "approve").count() + usize::from(approve);
    let decision = if approve { "approve" } else { "deny" };
    let resolved = if !approve {
        Some(false)
    } else if approvals >= quorum {
        Some(true)
    } else {
        None
    };
    let timer = store.timer_task(run_id, step_id).await?;
    let change = Change {
        events: resolved
            .map(|approved| Event::ApprovalResolved {
                step: step_id.into(),
                approved,
            })
            .into_iter()
            .collect(),
        journal: vec![EventKind::ApprovalDecided {
            step: step_id.into(),
            approver: approver.into(),
            decision: decision.into(),
            source: source.into(),
            comment,
        }],
        decision: Some((step_id.into(), approver.to_lowercase(), decision.into())),
        remove_task: if resolved.is_some() { timer } else { None },
        ..Change::default()
    };
    store.transition(run_id, None, change).await?;
    Ok(store.run(run_id).await?.status)
}

/// Resolves a run's inputs, tenant and vars into the template context it starts with.
pub fn start_context(
    plan: &Plan,
    inputs: Map<String, Value>,
    tenant: Value,
    trigger: Value,
    renderer: &Renderer,
) -> Result<Value, String> {
    let mut ctx = json!({
        "inputs": inputs,
        "tenant": tenant,
        "run": {"id": "", "started_at": chrono::Utc::now().to_rfc3339(), "runbook": plan.runbook, "version": plan.version, "report": "", "failed_step": null, "error": null},
        "trigger": trigger,
        "secrets": {},
        "vars": {},
    });
    for (name, t) in &plan.vars {
        let v = renderer
            .render_value(t, &ctx)
            .map_err(|e| format!("var `{name}`: {}", e.message))?;
        ctx["vars"][name] = v;
    }
    Ok(ctx)
}

/// `now + ms` in unix ms, saturating at `i64::MAX` (the store's timestamps are `i64`), so a huge
/// `Retry-After` never wraps into the past. How long a wait may really be is the policy's call.
fn due_after(ms: u128) -> u64 {
    let ms = u64::try_from(ms).unwrap_or(u64::MAX);
    (now_ms().max(0) as u64)
        .saturating_add(ms)
        .min(i64::MAX as u64)
}
