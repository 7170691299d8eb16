//! The thin driver: claims tasks from the store, renders templates, runs step kinds, and
//! reports what happened to the state machine as events (through the store, fenced by the
//! claim's lease token). It decides nothing: whether a failure is retried, when, and what a
//! timer means are the machine's. Any number of workers (tasks or processes) may drive one
//! store; per-claim lease tokens and attempt numbers keep them from stepping on each other.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tenure_runbook::{Catalogue, FieldType, Plan, Renderer, Step, Template};
use tenure_steps::{Call, Outcome, Registry, Requests, StepError};
use tracing::Instrument;

use crate::api::{prepare, TenantLookup, Trigger};
use crate::journal::EventKind;
use crate::machine::{Event, Failure, FailureClass, OnExpiry, Park, Request, RunStatus};
use crate::names::{names_of, Names};
use crate::store::{now_ms, ClaimedRun, Error, PreparedRun, RunRecord, Store, Task, TaskKind};

/// How deep `runbook.call`s may nest at run time (the compiler refuses cycles and deeper
/// chains; this holds for plans made elsewhere too).
pub const MAX_CALL_DEPTH: u64 = tenure_runbook::compile::MAX_CALL_DEPTH;

/// The id of the run a `runbook.call` starts, derived from its dedup key
/// (`call:PARENT:STEP:ITEM:GENERATION`), so a repeated report names the same run.
pub fn call_run_id(key: &str) -> uuid::Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A worker identity unique to this process: host name, process id and a random suffix, so
/// replicas that share a process id (every container's PID 1) never share a name.
/// `TENURE_WORKER_ID` replaces it (tests use it to give two processes the same name).
pub fn worker_identity() -> String {
    static IDENTITY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(new_identity).clone()
}

fn new_identity() -> String {
    if let Ok(id) = std::env::var("TENURE_WORKER_ID") {
        if !id.trim().is_empty() {
            return id.trim().to_string();
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// One worker.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    registry: Registry,
    renderer: Arc<Renderer>,
    catalogue: Arc<tenure_runbook::SchemaCatalogue>,
    owner: String,
    lease: Duration,
    concurrency: usize,
    tenants: Option<TenantLookup>,
}

/// How many tasks a worker runs at once unless told otherwise. Steps wait on I/O (vendor
/// APIs, approvals): a task in flight costs a few KiB, so the bound is memory, not cores.
pub const DEFAULT_CONCURRENCY: usize = 256;

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
            concurrency: DEFAULT_CONCURRENCY,
            tenants: None,
        }
    }

    /// Sets how many tasks [`Worker::work_until`] runs at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// How many tasks [`Worker::work_until`] runs at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Sets how the tenants of runs started by `runbook.call` are found (without it, a called
    /// run may only act on its caller's tenant).
    pub fn with_tenants(mut self, tenants: TenantLookup) -> Self {
        self.tenants = Some(tenants);
        self
    }

    /// Sets how long a claim lasts without a heartbeat.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The worker's name.
    pub fn owner(&self) -> &str {
        &self.owner
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
        self.run_task(task, None).await
    }

    /// Does one claimed task, with its run as the claim read it (else it is read now).
    /// Returns whether it did any work (always, unless it failed).
    async fn run_task(&self, task: Task, claimed: Option<Arc<ClaimedRun>>) -> Result<bool, Error> {
        let claimed = match claimed {
            Some(c) => c,
            None => {
                let record = self.store.run(&task.run_id).await?;
                let (outputs, opened) = self.store.outputs_opened(&record.id).await?;
                Arc::new(ClaimedRun {
                    record,
                    outputs,
                    opened,
                    shared: Default::default(),
                })
            }
        };
        let run = &claimed.record;
        if run.status.is_final() {
            self.drop_task(&task).await?;
            return Ok(true);
        }
        let Some(step) = step_for(&run.plan, &task.step) else {
            self.drop_task(&task).await?;
            return Ok(true);
        };
        let span = tracing::info_span!("step", run = %run.id, runbook = %run.plan.runbook, step = %step.id, item = task.item, kind = %step.uses);
        let result = async {
            match task.kind {
                TaskKind::Prepare => self.prepare(&task, &claimed, &step).await,
                TaskKind::Attempt => self.attempt(&task, &claimed, &step).await,
                TaskKind::Timer => self.timer(&task, run, &step).await,
            }
        }
        .instrument(span)
        .await;
        match result {
            // Another claim took over, or the run ended: the newer state wins.
            Err(Error::LeaseLost) => Ok(true),
            Err(Error::Machine(e)) => {
                // Refused by the machine: only this claim's own task is dropped (never work
                // leased to anyone else).
                tracing::debug!(run = %run.id, step = %step.id, "report refused: {e}");
                self.drop_task(&task).await?;
                Ok(true)
            }
            other => other.map(|()| true),
        }
    }

    /// Works until `done` returns true: claims as many due tasks as it has free slots (up to
    /// its concurrency) in one write, runs them at once, and sleeps while nothing is due
    /// until new work is committed (this process's writes, or another's through
    /// `LISTEN/NOTIFY` on PostgreSQL), the next task is due, or a poll interval passes (other
    /// processes' work on SQLite). Returns once the tasks in flight have finished.
    pub async fn work_until(&self, done: impl Fn() -> bool) -> Result<(), Error> {
        let mut wake = self.store.subscribe();
        let poll: i64 = if self.store.backend() == "postgres" {
            1000
        } else {
            50
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let mut running = tokio::task::JoinSet::new();
        let mut failures = 0u32;
        let mut fatal = None;
        while !done() && fatal.is_none() {
            // Reap what finished: a task that failed for good stops the worker.
            while let Some(joined) = running.try_join_next() {
                if let Some(e) = settle(joined) {
                    fatal = Some(e);
                }
            }
            if fatal.is_some() {
                break;
            }
            // At least one free slot, without missing `done` for long.
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => permit.expect("never closed"),
                _ = tokio::time::sleep(Duration::from_millis(poll as u64)) => continue,
            };
            let free = 1 + slots.available_permits();
            wake.borrow_and_update();
            let tasks = match self
                .store
                .claim_with_runs(&self.owner, self.lease, free)
                .await
            {
                Ok(tasks) => {
                    failures = 0;
                    tasks
                }
                // The database is unreachable or a batch did not commit: nothing was applied,
                // so back off and try again rather than stop working.
                Err(e @ (Error::Db(_) | Error::Commit(_))) => {
                    failures += 1;
                    tracing::warn!(worker = %self.owner, "store error, retrying: {e}");
                    let backoff = 50u64 << failures.min(5);
                    tokio::time::sleep(Duration::from_millis(backoff)).await;
                    continue;
                }
                Err(e) => {
                    fatal = Some(e);
                    break;
                }
            };
            let claimed = tasks.len();
            let mut permits = std::iter::once(first).chain(std::iter::from_fn(|| {
                slots.clone().try_acquire_owned().ok()
            }));
            for claim in tasks {
                let permit = permits.next().expect("a slot per claimed task");
                let worker = self.clone();
                running.spawn(async move {
                    let result = worker.run_task(claim.task, claim.run).await;
                    drop(permit);
                    result
                });
            }
            if claimed == 0 {
                // Sleep until the next task is due, new work appears, or the poll interval
                // passes.
                let wait = match self.store.next_due().await {
                    Ok(Some(due)) => (due - now_ms()).clamp(1, poll),
                    _ => poll,
                };
                let _ =
                    tokio::time::timeout(Duration::from_millis(wait as u64), wake.changed()).await;
            }
        }
        while let Some(joined) = running.join_next().await {
            if let Some(e) = settle(joined) {
                fatal.get_or_insert(e);
            }
        }
        fatal.map_or(Ok(()), Err)
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
        let _ = self.store.remove_task(&task.fence()).await?;
        Ok(())
    }

    async fn report(&self, task: &Task, run: &RunRecord, event: Event) -> Result<(), Error> {
        self.store
            .report(&run.id, Some(task.fence()), vec![event])
            .await
            .map(drop)
    }

    /// The template context of a claimed run and the secrets it holds in clear, worked out
    /// once for all the claim's tasks of the run (see [`Worker::context`]).
    async fn base<'a>(&self, claimed: &'a ClaimedRun) -> Result<&'a (Value, Vec<String>), Error> {
        claimed
            .shared
            .base
            .get_or_try_init(|| async {
                let mut secrets = Vec::new();
                let ctx = self.context(claimed, &mut secrets).await?;
                Ok((ctx, secrets))
            })
            .await
    }

    /// What a claim's tasks of `step` share: the step's `for_each` items (rendered once) and
    /// what its `with` names of the context.
    fn step_memo(&self, claimed: &ClaimedRun, step: &Step, base: &Value) -> Arc<StepMemo> {
        let mut memo = claimed
            .shared
            .steps
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        memo.entry(step.id.clone())
            .or_insert_with(|| {
                Arc::new(StepMemo {
                    items: self.items(step, base),
                    names: names_of(&step.with),
                })
            })
            .clone()
    }

    /// The template context of a run: inputs, vars, tenant, run, trigger, and every step's
    /// outputs so far (declared outputs of unfinished or skipped steps read as null).
    /// Sealed inputs and vars are opened; `secrets` receives every secret in clear (secret
    /// inputs and secret outputs), so what the step reports can be scrubbed of them.
    async fn context(
        &self,
        claimed: &ClaimedRun,
        secrets: &mut Vec<String>,
    ) -> Result<Value, Error> {
        let run = &claimed.record;
        let mut ctx = run.context.clone();
        secrets.extend(
            self.store
                .secrets()
                .open_all(&mut ctx)
                .map_err(|e| Error::Secrets(e.to_string()))?,
        );
        let outputs = &claimed.outputs;
        secrets.extend(claimed.opened.iter().cloned());
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
            for o in self
                .catalogue
                .get(&s.uses)
                .into_iter()
                .flat_map(|k| &k.outputs)
            {
                if o.ty == FieldType::Secret {
                    secrets.extend(
                        mine.iter()
                            .filter_map(|v| v[&o.name].as_str())
                            .map(str::to_string),
                    );
                }
            }
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

    async fn prepare(&self, task: &Task, claimed: &ClaimedRun, step: &Step) -> Result<(), Error> {
        let run = &claimed.record;
        let (ctx, _) = self.base(claimed).await?;
        let rendered = (|| {
            let skip = match &step.condition {
                Some(c) => !self
                    .renderer
                    .render_condition(c, ctx)
                    .map_err(|e| e.to_string())?,
                None => false,
            };
            let items = match &step.for_each {
                None => None,
                Some(Value::Array(a)) => Some(a.len() as u32),
                Some(Value::String(t)) => match self
                    .renderer
                    .render_value(&Template::new(t.clone()), ctx)
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
        let event = match rendered {
            Ok((skip, items)) => Event::Prepared {
                step: step.id.clone(),
                items,
                skip,
            },
            Err(message) => Event::PrepareFailed {
                step: step.id.clone(),
                message,
            },
        };
        self.report(task, run, event).await
    }

    async fn attempt(&self, task: &Task, claimed: &ClaimedRun, step: &Step) -> Result<(), Error> {
        let run = &claimed.record;
        // The claim started the attempt (see `Store::claim`); without one the instance was not
        // claimable and the task is stale.
        let Some(attempt) = task.attempt else {
            return Err(Error::Machine(crate::machine::Error::Invalid(
                "instance is not claimable".into(),
            )));
        };
        let requests = Requests::new();
        let span = tracing::info_span!("attempt", attempt);
        let mut secrets = Vec::new();
        let started = std::time::Instant::now();
        let result = self
            .execute(task, claimed, step, attempt, &requests, &mut secrets)
            .instrument(span)
            .await;
        count_attempt(step, &result, started.elapsed());
        // Nothing the step reports may carry a secret it was given (an error or an answer
        // that echoes it): every occurrence becomes `***` before it is logged or stored.
        let scrub = |text: &str| crate::secrets::scrub(text, &secrets);
        let result = match result {
            Ok(Outcome::Done(output)) => {
                let mut output = self.complete(step, output);
                if let Some(kind) = self.catalogue.get(&step.uses) {
                    if let Value::Object(map) = &mut output {
                        for (name, v) in map.iter_mut() {
                            let secret = kind
                                .outputs
                                .iter()
                                .any(|o| &o.name == name && o.ty == FieldType::Secret);
                            if secret {
                                if let Some(s) = v.as_str() {
                                    secrets.push(s.to_string());
                                }
                            } else {
                                crate::secrets::scrub_value(v, &secrets);
                            }
                        }
                    }
                }
                Ok(Outcome::Done(output))
            }
            Ok(Outcome::Later { at_ms, reason }) => Ok(Outcome::Later {
                at_ms,
                reason: scrub(&reason),
            }),
            // A parked step's detail is stored with the run (an approval's message, shown on
            // its page and by the API). `runbook.call` keeps its detail whole: it seals the
            // secrets it passes to the child itself.
            Ok(Outcome::Park {
                wake_at_ms,
                mut detail,
            }) if step.uses != tenure_runbook::compile::CALL_KIND => {
                crate::secrets::scrub_value(&mut detail, &secrets);
                Ok(Outcome::Park { wake_at_ms, detail })
            }
            Err(mut e) => {
                e.message = scrub(&e.message);
                Err(e)
            }
            other => other,
        };
        let requests: Vec<Request> = requests
            .take()
            .into_iter()
            .map(|r| Request {
                method: r.method,
                path: crate::secrets::scrub(&r.path, &secrets),
                status: r.status,
                duration_ms: r.duration_ms,
            })
            .collect();
        if step.uses == tenure_runbook::compile::CALL_KIND {
            if let Ok(Outcome::Park { detail, .. }) = &result {
                return self
                    .call(task, run, step, attempt, detail, &secrets, requests)
                    .await;
            }
        }
        let (sid, item) = (step.id.clone(), task.item);
        let event = match result {
            Ok(Outcome::Done(output)) => {
                tracing::info!(attempt, "attempt succeeded");
                Event::AttemptSucceeded {
                    step: sid,
                    item,
                    attempt,
                    output: self.seal(step, output),
                    requests,
                }
            }
            Ok(Outcome::Later { at_ms, reason }) => {
                tracing::info!(attempt, %reason, "not ready yet");
                Event::AttemptDeferred {
                    step: sid,
                    item,
                    attempt,
                    at_ms,
                    reason,
                    requests,
                }
            }
            Ok(Outcome::Park { wake_at_ms, detail }) => Event::Parked {
                step: sid,
                item,
                attempt,
                park: park_of(step, wake_at_ms, &detail),
                requests,
            },
            Err(e) => {
                tracing::warn!(attempt, code = %e.code, retryable = e.retryable, "attempt failed: {}", e.message);
                Event::AttemptFailed {
                    step: sid,
                    item,
                    attempt,
                    failure: failure_of(e),
                    requests,
                }
            }
        };
        self.report(task, run, event).await
    }

    /// Renders `with` and runs the kind, renewing the lease while it works and bounding it by
    /// the step's `timeout`.
    async fn execute(
        &self,
        task: &Task,
        claimed: &ClaimedRun,
        step: &Step,
        attempt: u32,
        requests: &Requests,
        secrets: &mut Vec<String>,
    ) -> Result<Outcome, StepError> {
        let run = &claimed.record;
        let (base, known) = self
            .base(claimed)
            .await
            .map_err(|e| StepError::transient("store", e.to_string()))?;
        secrets.extend(known.iter().cloned());
        // The context `with` is rendered against: only what its templates name (copying the
        // whole context per item would make a large `for_each` quadratic), or all of it.
        let memo = self.step_memo(claimed, step, base);
        let mut ctx = match &memo.names {
            Some(names) => names.pick(base),
            None => base.clone(),
        };
        if let Some(items) = &memo.items {
            ctx["item"] = items
                .get(task.item as usize)
                .cloned()
                .unwrap_or(Value::Null);
            ctx["index"] = json!(task.item);
        }
        if mentions(&step.with, "run.report") {
            // The report so far, without the step being rendered.
            let events = self
                .store
                .events(&run.id)
                .await
                .map_err(|e| StepError::transient("store", e.to_string()))?;
            let report = crate::report::build(&run.plan, &run.context, &events, Some(&step.id));
            ctx["run"]["report"] = json!(report.markdown);
        }
        let params = self
            .renderer
            .render_tree(&step.with, &ctx)
            .map_err(|e| StepError::permanent("template", e.message))?;
        let params = absent_if_empty(&self.catalogue, step, params)?;
        let executor = self.registry.get(&step.uses).ok_or_else(|| {
            StepError::permanent(
                "not_executable",
                format!("step kind `{}` has no executor in this build", step.uses),
            )
        })?;
        let heartbeat = {
            let (store, fence, lease) = (self.store.clone(), task.fence(), self.lease);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    if !matches!(store.renew(&fence, lease).await, Ok(true)) {
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
            context: base,
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

    /// Outputs with every declared output present (a kind that leaves one out gives null,
    /// and the omission is logged: the catalogue conformance test catches it).
    fn complete(&self, step: &Step, output: Value) -> Value {
        let Some(kind) = self.catalogue.get(&step.uses) else {
            return output;
        };
        let mut out = match output {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => return other,
        };
        for o in &kind.outputs {
            if !out.contains_key(&o.name) {
                tracing::warn!(kind = %step.uses, output = %o.name, "the kind did not produce a declared output");
                out.insert(o.name.clone(), Value::Null);
            }
        }
        Value::Object(out)
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

    /// Reports a `runbook.call` attempt: the run it calls, prepared here (inputs checked,
    /// tenant found, vars rendered, secrets sealed), is started by the store in the report's
    /// transaction; inputs that do not fit fail the step for good.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        task: &Task,
        run: &RunRecord,
        step: &Step,
        attempt: u32,
        detail: &Value,
        secrets: &[String],
        requests: Vec<Request>,
    ) -> Result<(), Error> {
        let (sid, item) = (step.id.clone(), task.item);
        match self.prepare_call(task, run, step, detail, secrets) {
            Ok((park, child)) => {
                tracing::info!(attempt, "calling another runbook");
                let event = Event::Parked {
                    step: sid,
                    item,
                    attempt,
                    park,
                    requests,
                };
                self.store
                    .report_call(&run.id, task.fence(), vec![event], child)
                    .await
                    .map(drop)
            }
            Err(message) => {
                let message = crate::secrets::scrub(&message, secrets);
                tracing::warn!(attempt, "call failed: {message}");
                let event = Event::AttemptFailed {
                    step: sid,
                    item,
                    attempt,
                    failure: Failure::permanent("call", message),
                    requests,
                };
                self.report(task, run, event).await
            }
        }
    }

    fn prepare_call(
        &self,
        task: &Task,
        run: &RunRecord,
        step: &Step,
        detail: &Value,
        secrets: &[String],
    ) -> Result<(Park, PreparedRun), String> {
        let runbook = detail["runbook"].as_str().unwrap_or_default().to_string();
        let plan =
            run.plan.calls.get(&runbook).ok_or_else(|| {
                format!("runbook `{runbook}` was not compiled with this run's plan")
            })?;
        let depth = run.context["run"]["depth"].as_u64().unwrap_or(0) + 1;
        if depth > MAX_CALL_DEPTH {
            return Err(format!(
                "runbook calls nest deeper than {MAX_CALL_DEPTH} runs"
            ));
        }
        let inputs = detail["inputs"].as_object().cloned().unwrap_or_default();
        let at = if step.for_each.is_some() {
            format!("{}[{}]", step.id, task.item)
        } else {
            step.id.clone()
        };
        let trigger = Trigger::new("call", Some(format!("run {} (step {at})", run.id)));
        let tenants = self.tenants.clone().unwrap_or_else(|| {
            let own = run.context["tenant"].clone();
            Arc::new(move |id: &str| {
                if own["id"].as_str() == Some(id) {
                    Ok(own.clone())
                } else {
                    Err(format!("tenant `{id}` is not known to this worker"))
                }
            })
        });
        let secret_box = self.store.secrets();
        let mut ready = prepare(
            plan,
            &inputs,
            &trigger,
            &tenants,
            &self.renderer,
            secret_box,
        )
        .map_err(|e| format!("cannot start runbook `{runbook}`: {e}"))?;
        // A secret of this run passed to an input of another type stays sealed there.
        secret_box.seal_containing(&mut ready.context["inputs"], secrets);
        secret_box.seal_containing(&mut ready.context["vars"], secrets);
        ready.context["run"]["depth"] = json!(depth);
        let generation = run.machine.call_generation(&step.id, task.item);
        let key = format!("call:{}:{}:{}:{generation}", run.id, step.id, task.item);
        let id = call_run_id(&key);
        let child = Store::new_run(
            plan,
            ready.context,
            &ready.trigger,
            ready.concurrency_key,
            Some(key.clone()),
            Some(id),
            Some((run.id.clone(), step.id.clone(), task.item)),
        )
        .map_err(|e| e.to_string())?;
        let park = Park::Call {
            runbook,
            run: id.to_string(),
            key,
        };
        Ok((park, child))
    }

    async fn timer(&self, task: &Task, run: &RunRecord, step: &Step) -> Result<(), Error> {
        let event = Event::TimerDue {
            step: step.id.clone(),
            item: task.item,
        };
        self.report(task, run, event).await
    }
}

/// What a finished task leaves for the worker: an error that should stop it. Store errors
/// that only mean "try again" (unreachable database, a batch that did not commit) are logged:
/// the task's lease runs out and it is claimed again.
fn settle(joined: Result<Result<bool, Error>, tokio::task::JoinError>) -> Option<Error> {
    match joined {
        Ok(Ok(_)) => None,
        Ok(Err(e @ (Error::Db(_) | Error::Commit(_)))) => {
            tracing::warn!("store error, the task will be tried again: {e}");
            None
        }
        Ok(Err(e)) => Some(e),
        Err(e) => {
            tracing::error!("a task panicked: {e}");
            None
        }
    }
}

/// What a claim's tasks of one run share, worked out once: the run's template context (sealed
/// values opened) with the secrets it holds in clear, and per step its [`StepMemo`].
#[derive(Debug, Default)]
pub(crate) struct Shared {
    base: tokio::sync::OnceCell<(Value, Vec<String>)>,
    steps: std::sync::Mutex<std::collections::HashMap<String, Arc<StepMemo>>>,
}

/// What the tasks of one step of a claimed run share.
#[derive(Debug)]
struct StepMemo {
    /// The `for_each` items, rendered once.
    items: Option<Vec<Value>>,
    /// What the step's `with` names of the context (`None`: all of it may be needed).
    names: Option<Names>,
}

/// Whether any string of a `with` tree mentions `needle` (e.g. `run.report`, which costs a read
/// of the journal, so it is rendered only for the steps that use it).
fn mentions(tree: &Value, needle: &str) -> bool {
    match tree {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|v| mentions(v, needle)),
        Value::Object(m) => m.values().any(|v| mentions(v, needle)),
        _ => false,
    }
}

/// Empty means absent: a top-level `with` field whose template rendered to nothing (an input
/// not given), an empty (or blank) string or an empty list is left out, as if it were not
/// written, so the kind keeps what is there; a required field that renders empty is a clear,
/// permanent error. A value written without a template is kept as written: `notify: []` on an
/// approval means "send nothing", not "the default".
fn absent_if_empty(
    catalogue: &tenure_runbook::SchemaCatalogue,
    step: &Step,
    params: Value,
) -> Result<Value, StepError> {
    let Value::Object(map) = params else {
        return Ok(params);
    };
    let kind = catalogue.get(&step.uses);
    let mut out = Map::new();
    for (name, value) in map {
        let empty = match &value {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        let templated = step.with.get(&name).is_some_and(|w| mentions(w, "{{"));
        if !empty || (!templated && !value.is_null()) {
            out.insert(name, value);
            continue;
        }
        if kind
            .and_then(|k| k.find_param(&name))
            .is_some_and(|f| f.required)
        {
            return Err(StepError::permanent(
                "invalid_params",
                format!(
                    "`{name}` of step `{}` rendered empty, and `{}` needs it: check the template `{}`",
                    step.id,
                    step.uses,
                    step.with[&name].as_str().unwrap_or("")
                ),
            ));
        }
    }
    Ok(Value::Object(out))
}

/// Counts an attempt through the `metrics` facade (a no-op unless the process installed a
/// recorder, as `tenure serve` does): `tenure_step_attempts_total{kind,outcome}`,
/// `tenure_step_duration_seconds{kind}`, and for a failed attempt of a vendor kind
/// `tenure_vendor_errors_total{vendor,code}` (the vendor is the kind's family, `entra` in
/// `entra.create_user`; the code is the kind's error code).
fn count_attempt(step: &Step, result: &Result<Outcome, StepError>, took: Duration) {
    let kind = step.uses.clone();
    let outcome = match result {
        Ok(Outcome::Done(_)) => "succeeded",
        Ok(Outcome::Later { .. }) => "deferred",
        Ok(Outcome::Park { .. }) => "parked",
        Err(e) if e.retryable => "retryable_error",
        Err(_) => "failed",
    };
    metrics::counter!("tenure_step_attempts_total", "kind" => kind.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("tenure_step_duration_seconds", "kind" => kind).record(took.as_secs_f64());
    if let Err(e) = result {
        let own = matches!(step.uses.as_str(), "approval" | "wait")
            || step.uses == tenure_runbook::compile::CALL_KIND;
        if !own {
            let vendor = step.uses.split('.').next().unwrap_or_default().to_string();
            metrics::counter!("tenure_vendor_errors_total", "vendor" => vendor, "code" => e.code.clone())
                .increment(1);
        }
    }
}

/// A kind's error as the machine sees it.
fn failure_of(e: StepError) -> Failure {
    Failure {
        class: if e.retryable {
            FailureClass::Transient
        } else {
            FailureClass::Permanent
        },
        code: e.code,
        message: e.message,
        retry_after_ms: e
            .retry_after
            .map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64),
    }
}

/// What a parking attempt waits for: an approval gate (approvers, quorum, expiry) or a time.
fn park_of(step: &Step, wake_at_ms: u64, detail: &Value) -> Park {
    if step.uses != "approval" {
        return Park::Wait {
            until_ms: wake_at_ms,
        };
    }
    let approvers = detail["approvers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let on_expiry = match detail["on_expiry"].as_str() {
        Some("approve") => OnExpiry::Approve,
        Some("fail") => OnExpiry::Fail,
        _ => OnExpiry::Deny,
    };
    Park::Approval {
        approvers,
        quorum: detail["quorum"]
            .as_u64()
            .unwrap_or(1)
            .clamp(1, u64::from(u32::MAX)) as u32,
        on_expiry,
        expires_at_ms: wake_at_ms,
        message: detail["message"].as_str().map(str::to_string),
        requested_by: detail["requested_by"]
            .as_str()
            .filter(|r| !r.trim().is_empty())
            .map(str::to_string),
        notified: detail["notified"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A large run's context: what a `for_each` item's `with` is rendered against must not
    /// carry the other items' inputs and outputs (copying them per item made a 3,000-item
    /// run quadratic), and must render exactly as the whole context does.
    #[test]
    fn an_item_renders_against_only_what_its_templates_name() {
        let users: Vec<Value> = (0..3000).map(|i| json!(format!("u{i}"))).collect();
        let outputs: Vec<Value> = (0..3000).map(|i| json!({"id": i})).collect();
        let base = json!({
            "inputs": {"users": users, "greeting": "hello"},
            "tenant": {"id": "contoso", "name": "Contoso"},
            "steps": {"each": {"outputs": outputs}, "first": {"outputs": {"id": "x"}}},
            "run": {"id": "r1", "report": ""},
            "vars": {}, "secrets": {}, "trigger": {},
        });
        let with = json!({"message": "{{ inputs.greeting }} {{ item }} of {{ tenant.name }}", "to": ["{{ steps.first.outputs.id }}"]});
        let names = names_of(&with).expect("plain paths");
        let mut small = names.pick(&base);
        assert_eq!(
            small,
            json!({"inputs": {"greeting": "hello"}, "tenant": {"name": "Contoso"}, "steps": {"first": base["steps"]["first"].clone()}})
        );
        let renderer = Renderer::new();
        let mut whole = base.clone();
        for ctx in [&mut small, &mut whole] {
            ctx["item"] = json!("u7");
            ctx["index"] = json!(7);
        }
        assert_eq!(
            renderer.render_tree(&with, &small).unwrap(),
            renderer.render_tree(&with, &whole).unwrap()
        );
        // A path the context lacks is missing from the part too: the same answer either way.
        for missing in [json!("{{ inputs.nope }}"), json!("a {{ nope.x }}")] {
            let part = names_of(&missing).unwrap().pick(&base);
            assert_eq!(
                renderer.render_tree(&missing, &part),
                renderer.render_tree(&missing, &base)
            );
        }
        // A whole top-level key stays whole; nothing named, nothing copied.
        let whole_steps = names_of(&json!("{{ len steps }}")).unwrap().pick(&base);
        assert_eq!(whole_steps["steps"], base["steps"]);
        assert_eq!(
            names_of(&json!({"m": "plain text"})).unwrap().pick(&base),
            json!({})
        );
    }

    #[test]
    fn paths_that_cannot_be_told_for_sure_use_the_whole_context() {
        for with in [
            json!("{{#each steps.each.outputs}}{{this.id}}{{/each}}"),
            json!("{{#with tenant}}{{name}}{{/with}}"),
            json!("{{ unclosed"),
        ] {
            assert!(names_of(&with).is_none(), "{with}");
        }
    }
}
