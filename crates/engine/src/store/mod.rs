//! The durable store: runs (the machine's snapshot; pinned plans once per hash in `plans`), claimable tasks
//! with leases, the journal and step outputs (approval decisions live in the machine's gate,
//! inside the snapshot), in SQLite (WAL,
//! `synchronous=FULL`, the embedded default) or PostgreSQL (several worker nodes).
//!
//! Every transition is atomic: the machine's new state, the journal events derived from it
//! and the tasks its actions create commit together or not at all. The store decides nothing:
//! it applies machine events under the run row's lock and carries out the actions. All writes of a process go through
//! one writer task (`writer.rs`) that commits whatever is queued in one transaction (group
//! commit), so durability costs one fsync per batch, not per transition. The SQL is the same
//! for both databases (`tx.rs`); a [`Backend`] adds what differs.

mod backend;
mod batch;
mod calls;
mod people;
mod schedules;
mod sessions;
mod tx;
mod writer;
mod writes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tenure_runbook::Plan;
use tokio::sync::{broadcast, watch};

pub use backend::{Backend, Postgres, Sqlite, WAKE_CHANNEL};
pub use schedules::ScheduleMark;

use crate::journal::{ChainKey, Event as JournalEvent, EventKind};
use crate::machine::{self, Action, RunMachine, RunStatus};
use writer::{Op, Reply, Writer};

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database said no.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// No such run.
    #[error("no run `{0}`")]
    NoRun(String),
    /// The worker's lease on the task is gone (it expired and another worker took over).
    #[error("the lease on this task was lost")]
    LeaseLost,
    /// The machine refused the transition (stale attempt, wrong state).
    #[error("{0}")]
    Machine(#[from] machine::Error),
    /// Stored JSON is unreadable.
    #[error("corrupt stored state: {0}")]
    Corrupt(String),
    /// The database URL is not one this build supports (shown without its password).
    #[error("unsupported database URL `{}` (use sqlite:PATH or postgres://...)", redact_url(.0))]
    Url(String),
    /// The database cannot be opened: the real cause, at once (the URL without its password).
    #[error("cannot open the database {}: {cause}", redact_url(.url))]
    Connect {
        /// The URL as given.
        url: String,
        /// Why: refused, unknown host, wrong password, not a database...
        cause: String,
    },
    /// The transaction this write was batched in did not commit; nothing of it was applied.
    #[error("the write did not commit: {0}")]
    Commit(String),
    /// The key for secret outputs is missing or unreadable.
    #[error("{0}")]
    Secrets(String),
    /// The store's writer has stopped (the runtime is shutting down).
    #[error("the store is closed")]
    Closed,
}

/// A database URL as it may be shown: any password replaced by `***`
/// (`postgres://tenure:***@db/tenure`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) if query.to_ascii_lowercase().contains("password") => {
            format!("{path}?***")
        }
        _ => tail.to_string(),
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => format!("{scheme}://{userinfo}@{host}{tail}"),
    }
}

impl Error {
    /// A deadlock or serialization failure between concurrent transactions: trying the same
    /// operation again is safe.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Db(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40P01" | "40001"))
            }
            _ => false,
        }
    }
}

/// The most tasks one claim takes.
pub const MAX_CLAIM: usize = 256;

/// What kind of work a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Render a step's `if` and `for_each`.
    Prepare,
    /// Run an attempt of an instance.
    Attempt,
    /// A parked instance's timer (wait end, approval expiry).
    Timer,
}

impl TaskKind {
    fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "prepare" => TaskKind::Prepare,
            "attempt" => TaskKind::Attempt,
            "timer" => TaskKind::Timer,
            other => return Err(Error::Corrupt(format!("task kind {other}"))),
        })
    }
}

/// A claimed task.
#[derive(Clone, Debug)]
pub struct Task {
    /// Row id.
    pub id: i64,
    /// The run.
    pub run_id: String,
    /// The step.
    pub step: String,
    /// The instance.
    pub item: u32,
    /// What to do.
    pub kind: TaskKind,
    /// For an attempt task: the attempt the claim started (journaled and fenced in the same
    /// transaction); `None` when the instance was not claimable.
    pub attempt: Option<u32>,
    /// This claim's lease token (`WORKER#RANDOM`): reports are fenced by it.
    pub lease: String,
}

impl Task {
    /// The fence a report on this task carries.
    pub fn fence(&self) -> Fence {
        Fence {
            run_id: self.run_id.clone(),
            task_id: self.id,
            lease: self.lease.clone(),
        }
    }
}

/// A claim's proof: a report applies only while this lease still holds this task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The task's run (writes are ordered, and rows locked, by run).
    pub run_id: String,
    /// The task.
    pub task_id: i64,
    /// The claim's lease token.
    pub lease: String,
}

/// A run as stored.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// Id.
    pub id: String,
    /// The pinned plan.
    pub plan: Arc<Plan>,
    /// Inputs, vars, tenant, run and trigger values for templates.
    pub context: Value,
    /// The machine.
    pub machine: RunMachine,
    /// Status.
    pub status: RunStatus,
    /// Created (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
    /// The run, step and item of the `runbook.call` that started it.
    pub parent: Option<(String, String, u32)>,
}

/// A claimed task, with its run as the claim saw it.
#[derive(Clone, Debug)]
pub struct Claimed {
    /// The task.
    pub task: Task,
    /// Whether it was taken over from an expired lease.
    pub taken_over: bool,
    /// Its run and outputs (`None` if the run is gone).
    pub run: Option<Arc<ClaimedRun>>,
}

/// A run as a claim read it in its transaction: the record, every output (step, item, value;
/// sealed secrets opened) and every secret opened.
#[derive(Debug)]
pub struct ClaimedRun {
    /// The run.
    pub record: RunRecord,
    /// Its outputs, ordered by step and item.
    pub outputs: Vec<(String, u32, Value)>,
    /// Every secret opened in them.
    pub opened: Vec<String>,
    /// What the driver works out once for all the claim's tasks of this run.
    pub(crate) shared: crate::driver::Shared,
}

/// The `runbook.call` that started a run, from its three columns.
fn parent_of(cols: (Option<String>, Option<String>, Option<i64>)) -> Option<(String, String, u32)> {
    match cols {
        (Some(run), Some(step), Some(item)) => Some((run, step, u32::try_from(item).unwrap_or(0))),
        _ => None,
    }
}

/// Which runs to list: all filters optional, newest first, in pages.
#[derive(Clone, Debug)]
pub struct RunFilter {
    /// Only this status (`running`, `failed`...).
    pub status: Option<String>,
    /// Only runs of this runbook id.
    pub runbook: Option<String>,
    /// Only runs on this tenant id (any case).
    pub tenant: Option<String>,
    /// Free text found (any case) in the run id, the person, the ticket or the runbook id
    /// (not in the inputs or the trigger's payload: see `docs/server.md`).
    pub text: Option<String>,
    /// Only runs started by a `runbook.call` of this run.
    pub parent: Option<String>,
    /// The page after this run: (created_at, id) of the last run of the previous page.
    pub before: Option<(i64, String)>,
    /// At most this many runs.
    pub limit: usize,
}

impl Default for RunFilter {
    fn default() -> Self {
        RunFilter {
            status: None,
            runbook: None,
            tenant: None,
            text: None,
            parent: None,
            before: None,
            limit: 100,
        }
    }
}

impl RunFilter {
    /// The `WHERE ...` of the filter and its parameters, then its order and limit.
    fn sql(&self) -> (String, Vec<String>) {
        let mut sql = String::from(" WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut param = |sql: &mut String, clause: &str, value: String| {
            binds.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        };
        if let Some(status) = given(&self.status) {
            param(&mut sql, " AND status = ?", status);
        }
        if let Some(runbook) = given(&self.runbook) {
            param(&mut sql, " AND runbook = ?", runbook);
        }
        if let Some(tenant) = given(&self.tenant) {
            param(&mut sql, " AND lower(tenant) = ?", tenant.to_lowercase());
        }
        if let Some(parent) = given(&self.parent) {
            param(&mut sql, " AND parent_run = ?", parent);
        }
        if let Some(text) = given(&self.text) {
            let like = format!(
                "%{}%",
                text.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            // `search` holds the id, person, ticket and runbook in lower case (see
            // `labels::RunLabels::search_text`): one LIKE, the same on both databases.
            param(&mut sql, " AND search LIKE ? ESCAPE '\\'", like);
        }
        if let Some((created_at, id)) = &self.before {
            // Keyset paging: stays fast however deep the page.
            binds.push(created_at.to_string());
            let n = binds.len();
            binds.push(id.clone());
            sql.push_str(&format!(
                " AND (created_at < CAST(${n} AS BIGINT) OR (created_at = CAST(${n} AS BIGINT) AND id < ${}))",
                n + 1
            ));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT {}",
            self.limit.clamp(1, 10_000)
        ));
        (sql, binds)
    }
}

/// A run as a list shows it, read without its plan, context or machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    /// Id.
    pub id: String,
    /// Runbook id.
    pub runbook: String,
    /// Runbook version.
    pub version: u32,
    /// Status.
    pub status: RunStatus,
    /// Created (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
    /// Whom it acts on, its tenant, its ticket and how it was started
    /// ([`crate::labels`]).
    pub labels: crate::labels::RunLabels,
    /// The run, step and item of the `runbook.call` that started it.
    pub parent: Option<(String, String, u32)>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(crate) fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Counts a run that a committed transition finished (`tenure_runs_total{status}`).
fn count_finished(actions: &[Action]) {
    for a in actions {
        if let Action::Finish { status, .. } = a {
            metrics::counter!("tenure_runs_total", "status" => status_str(*status)).increment(1);
        }
    }
}

pub(crate) fn status_str(s: RunStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_status(s: &str) -> Result<RunStatus, Error> {
    serde_json::from_value(json!(s)).map_err(|_| Error::Corrupt(format!("status {s}")))
}

/// The durable store. Cheap to clone; clones share the pool and the writer.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Arc<dyn Backend>,
    writer: Writer,
    /// Bumped when a transaction of this process (or, on PostgreSQL, of any process) created
    /// work, so idle workers wake at once instead of polling.
    wake: Arc<watch::Sender<u64>>,
    /// Parsed plans by hash: runs of one runbook version share one.
    plans: Arc<Mutex<HashMap<String, Arc<Plan>>>>,
    /// Seals secret outputs before they are stored, opens them when read.
    secrets: crate::secrets::SecretBox,
    /// The id of every run a committed write of this process changed.
    changed: broadcast::Sender<String>,
}

const RUN_COLUMNS: &str = "id, plan_hash, context, machine, status, created_at, updated_at, parent_run, parent_step, parent_item";

/// A run prepared for a `runbook.call` report: created in the report's transaction if the
/// machine asks for it.
pub struct PreparedRun(Box<tx::NewRun>);

impl PreparedRun {
    /// The run's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` (`sqlite:PATH` or
    /// `postgres://USER@HOST/DB`) and migrates it.
    pub async fn open(url: &str) -> Result<Store, Error> {
        // The key first: a deployment without one fails before it touches the database.
        let secrets = crate::secrets::SecretBox::for_database(url)
            .map_err(|e| Error::Secrets(e.to_string()))?;
        Self::open_with(url, secrets).await
    }

    /// Opens the database at `url` with this secret key (instead of `TENURE_SECRET_KEY` or
    /// the key file).
    pub async fn open_with(url: &str, secrets: crate::secrets::SecretBox) -> Result<Store, Error> {
        let backend: Arc<dyn Backend> = backend::for_url(url)?.into();
        let pool = backend.connect(url).await?;
        let (wake, _) = watch::channel(0u64);
        backend.listen(url, wake.clone());
        let (changed, _) = broadcast::channel(1024);
        let writer = Writer::start(
            pool.clone(),
            backend.clone(),
            wake.clone(),
            secrets.chain_key().clone(),
            changed.clone(),
        );
        Ok(Store {
            changed,
            secrets,
            pool,
            backend,
            writer,
            wake: Arc::new(wake),
            plans: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The box that seals secret outputs at rest.
    pub fn secrets(&self) -> &crate::secrets::SecretBox {
        &self.secrets
    }

    /// The database this store runs on (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Creates a run of `plan` and starts it (or queues it behind a run with the same
    /// concurrency key). With a `dedup_key` already used by a run, nothing is created and that
    /// run is returned. Returns the run id and whether it already existed.
    pub(crate) async fn create_run(
        &self,
        plan: &Plan,
        context: Value,
        trigger: &str,
        concurrency_key: Option<String>,
        dedup_key: Option<String>,
    ) -> Result<(String, bool), Error> {
        let new = Self::new_run(
            plan,
            context,
            trigger,
            concurrency_key,
            dedup_key,
            None,
            None,
        )?;
        match self.writer.submit(Op::Create(new.0)).await? {
            Reply::Created(id, existed) => Ok((id, existed)),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    /// A run made ready to be created by a `runbook.call` report: `id` (derived from the
    /// call, so a repeat names the same run) and the calling run, step and item.
    pub(crate) fn new_run(
        plan: &Plan,
        context: Value,
        trigger: &str,
        concurrency_key: Option<String>,
        dedup_key: Option<String>,
        id: Option<uuid::Uuid>,
        parent: Option<(String, String, u32)>,
    ) -> Result<PreparedRun, Error> {
        // Runs share their plan by hash (one `plans` row per hash, a cache by hash): a plan
        // changed after it was compiled, its hash left as it was, would run as the other.
        if plan.compute_hash() != plan.hash {
            return Err(Error::Corrupt(format!(
                "the plan of runbook `{}` does not match its hash {} (it was changed after it was compiled)",
                plan.runbook, plan.hash
            )));
        }
        let uuid = id.unwrap_or_else(uuid::Uuid::new_v4);
        let id = uuid.to_string();
        let mut context = context;
        context["run"]["id"] = json!(id);
        let labels = crate::labels::derive(plan, &context);
        Ok(PreparedRun(Box::new(tx::NewRun {
            labels,
            id,
            runbook: plan.runbook.clone(),
            version: i64::from(plan.version),
            plan_hash: plan.hash.clone(),
            plan_json: serde_json::to_string(plan).map_err(|e| Error::Corrupt(e.to_string()))?,
            inputs: crate::journal::redact(&context["inputs"]),
            context: context.to_string(),
            machine: serde_json::to_string(&RunMachine::new(plan))
                .map_err(|e| Error::Corrupt(e.to_string()))?,
            trigger: trigger.to_string(),
            concurrency_key: concurrency_key.map(storable_key),
            dedup_key: dedup_key.map(storable_key),
            seed: uuid.as_u64_pair().0,
            parent,
        })))
    }

    /// Applies machine events to a run atomically, journaling what they and the machine's
    /// actions say. Refused events (stale, wrong state) change nothing.
    pub async fn apply(
        &self,
        run_id: &str,
        events: Vec<machine::Event>,
    ) -> Result<Vec<Action>, Error> {
        self.report(run_id, None, events).await
    }

    /// [`Store::apply`] for a worker's report on a claimed task: applies only while the claim
    /// still holds the task, and consumes it.
    pub(crate) async fn report(
        &self,
        run_id: &str,
        fence: Option<Fence>,
        events: Vec<machine::Event>,
    ) -> Result<Vec<Action>, Error> {
        let op = Op::Transition {
            run_id: run_id.to_string(),
            fence,
            events,
            child: None,
        };
        match self.writer.submit(op).await? {
            Reply::Actions(actions) => {
                count_finished(&actions);
                Ok(actions)
            }
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    /// [`Store::report`] of a `runbook.call` attempt with the run it calls, prepared: the
    /// run is created in the same transaction if the machine asks for it.
    pub(crate) async fn report_call(
        &self,
        run_id: &str,
        fence: Fence,
        events: Vec<machine::Event>,
        child: PreparedRun,
    ) -> Result<Vec<Action>, Error> {
        let op = Op::Transition {
            run_id: run_id.to_string(),
            fence: Some(fence),
            events,
            child: Some(child.0),
        };
        match self.writer.submit(op).await? {
            Reply::Actions(actions) => {
                count_finished(&actions);
                Ok(actions)
            }
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    /// Claims the oldest due task whose lease is free or expired, leasing it for `lease`.
    /// Returns the task and whether it was taken over from an expired lease.
    pub async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<(Task, bool)>, Error> {
        Ok(self.claim_many(owner, lease, 1).await?.pop())
    }

    /// Claims up to `limit` due tasks (oldest first) in one write, each with its own lease
    /// token. Returns each task and whether it was taken over from an expired lease.
    pub async fn claim_many(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<(Task, bool)>, Error> {
        let op = Op::Claim {
            owner: owner.to_string(),
            lease_ms: lease.as_millis() as i64,
            limit: limit.clamp(1, MAX_CLAIM),
            with_runs: false,
        };
        match self.writer.submit(op).await? {
            Reply::Claimed(tasks, _) => Ok(tasks),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    /// [`Store::claim_many`], with each task's run and outputs as the claim's transaction saw
    /// them (read there in one query each), so the tasks need not read them again. Tasks of
    /// one run share one [`ClaimedRun`].
    pub async fn claim_with_runs(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, Error> {
        let op = Op::Claim {
            owner: owner.to_string(),
            lease_ms: lease.as_millis() as i64,
            limit: limit.clamp(1, MAX_CLAIM),
            with_runs: true,
        };
        let (tasks, raws) = match self.writer.submit(op).await? {
            Reply::Claimed(tasks, runs) => (tasks, runs),
            _ => return Err(Error::Corrupt("unexpected writer reply".into())),
        };
        let mut runs: HashMap<String, Arc<ClaimedRun>> = HashMap::with_capacity(raws.len());
        for raw in raws {
            let id = raw.id.clone();
            runs.insert(id, Arc::new(self.claimed_run(raw).await?));
        }
        Ok(tasks
            .into_iter()
            .map(|(task, taken_over)| Claimed {
                run: runs.get(&task.run_id).cloned(),
                task,
                taken_over,
            })
            .collect())
    }

    async fn claimed_run(&self, raw: tx::RawRun) -> Result<ClaimedRun, Error> {
        let corrupt = |e: serde_json::Error| Error::Corrupt(e.to_string());
        let machine = match raw.machine {
            Ok(m) => m,
            Err(text) => serde_json::from_str(&text).map_err(corrupt)?,
        };
        let mut opened = Vec::new();
        let mut outputs: Vec<(String, u32, Value)> =
            serde_json::from_str(&raw.outputs).map_err(corrupt)?;
        for (_, _, value) in &mut outputs {
            self.open_nested(value, &mut opened)?;
        }
        let record = RunRecord {
            plan: self.plan(&raw.plan_hash, &raw.id).await?,
            context: serde_json::from_str(&raw.context).map_err(corrupt)?,
            status: parse_status(&raw.status)?,
            machine,
            created_at: raw.created_at,
            updated_at: raw.updated_at,
            parent: parent_of(raw.parent),
            id: raw.id,
        };
        Ok(ClaimedRun {
            record,
            outputs,
            opened,
            shared: Default::default(),
        })
    }

    /// A receiver that changes whenever new work may be claimable. A worker marks it seen
    /// before looking for work, so a wake-up between its look and its wait is not lost.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }

    /// The id of every run this process's writes change, as they commit. A receiver that
    /// falls behind skips ahead (it should then re-read what it shows).
    pub fn changes(&self) -> broadcast::Receiver<String> {
        self.changed.subscribe()
    }

    /// Deletes a task this claim still holds (a duplicate, or one whose run has ended). A task
    /// leased to another claim is never removed.
    pub async fn remove_task(&self, fence: &Fence) -> Result<bool, Error> {
        match self
            .writer
            .submit(Op::Remove {
                fence: fence.clone(),
            })
            .await?
        {
            Reply::Done(done) => Ok(done),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    /// Extends a lease the claim still holds; false if it was lost.
    pub async fn renew(&self, fence: &Fence, lease: Duration) -> Result<bool, Error> {
        let op = Op::Renew {
            fence: fence.clone(),
            lease_ms: lease.as_millis() as i64,
        };
        match self.writer.submit(op).await? {
            Reply::Done(done) => Ok(done),
            _ => Err(Error::Corrupt("unexpected writer reply".into())),
        }
    }

    /// How many tasks are due now and held by no live lease: the work waiting for a worker
    /// (`tenure_queue_depth`).
    pub async fn queue_depth(&self) -> Result<i64, Error> {
        let now = now_ms();
        Ok(sqlx::query("SELECT COUNT(*) FROM tasks WHERE due_at <= CAST($1 AS BIGINT) AND (lease_until IS NULL OR lease_until <= CAST($1 AS BIGINT))")
            .bind(now.to_string())
            .fetch_one(&self.pool)
            .await?
            .try_get::<i64, _>(0)?)
    }

    /// The earliest time any task is due, if there is one.
    pub async fn next_due(&self) -> Result<Option<i64>, Error> {
        Ok(sqlx::query("SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > due_at THEN lease_until ELSE due_at END) FROM tasks")
            .fetch_one(&self.pool).await?.try_get::<Option<i64>, _>(0)?)
    }

    /// Loads a run.
    pub async fn run(&self, id: &str) -> Result<RunRecord, Error> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NoRun(id.to_string()))?;
        self.record(&row).await
    }

    /// Runs matching `filter`, newest first, one page of at most `filter.limit`.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, Error> {
        let (clauses, binds) = filter.sql();
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs{clauses}");
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            records.push(self.record(row).await?);
        }
        Ok(records)
    }

    /// [`Store::runs`] as a list shows them: the small columns only, no plan, context or
    /// machine read or parsed.
    pub async fn run_rows(&self, filter: &RunFilter) -> Result<Vec<RunRow>, Error> {
        let (clauses, binds) = filter.sql();
        let sql = format!("SELECT id, runbook, version, status, created_at, updated_at, person, tenant, ticket, trigger_source, trigger_by, parent_run, parent_step, parent_item FROM runs{clauses}");
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(RunRow {
                    id: r.try_get("id")?,
                    runbook: r.try_get("runbook")?,
                    version: u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or(0),
                    status: parse_status(&r.try_get::<String, _>("status")?)?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                    labels: crate::labels::RunLabels {
                        person: r.try_get("person")?,
                        tenant: r.try_get("tenant")?,
                        ticket: r.try_get("ticket")?,
                        trigger_source: r.try_get("trigger_source")?,
                        trigger_by: r.try_get("trigger_by")?,
                    },
                    parent: parent_of((
                        r.try_get("parent_run")?,
                        r.try_get("parent_step")?,
                        r.try_get("parent_item")?,
                    )),
                })
            })
            .collect()
    }

    /// How many runs have each status.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, Error> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The pinned plan with this hash, parsed once per process.
    async fn plan(&self, hash: &str, run_id: &str) -> Result<Arc<Plan>, Error> {
        if let Some(plan) = self.plans.lock().ok().and_then(|p| p.get(hash).cloned()) {
            return Ok(plan);
        }
        let row = sqlx::query("SELECT plan FROM plans WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::Corrupt(format!("run {run_id}: no plan {hash}")))?;
        let plan: Arc<Plan> = Arc::new(
            serde_json::from_str(&row.try_get::<String, _>(0)?)
                .map_err(|e| Error::Corrupt(e.to_string()))?,
        );
        if let Ok(mut plans) = self.plans.lock() {
            if plans.len() >= 512 {
                plans.clear();
            }
            plans.insert(hash.to_string(), plan.clone());
        }
        Ok(plan)
    }

    async fn record(&self, row: &AnyRow) -> Result<RunRecord, Error> {
        let corrupt = |e: serde_json::Error| Error::Corrupt(e.to_string());
        let id: String = row.try_get("id")?;
        let hash: String = row.try_get("plan_hash")?;
        Ok(RunRecord {
            plan: self.plan(&hash, &id).await?,
            id,
            context: serde_json::from_str(&row.try_get::<String, _>("context")?)
                .map_err(corrupt)?,
            machine: serde_json::from_str(&row.try_get::<String, _>("machine")?)
                .map_err(corrupt)?,
            status: parse_status(&row.try_get::<String, _>("status")?)?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            parent: parent_of((
                row.try_get::<Option<String>, _>("parent_run")?,
                row.try_get::<Option<String>, _>("parent_step")?,
                row.try_get::<Option<i64>, _>("parent_item")?,
            )),
        })
    }

    /// A run's journal, in order.
    pub async fn events(&self, run_id: &str) -> Result<Vec<JournalEvent>, Error> {
        self.events_since(run_id, 0).await
    }

    /// A run's journal events after sequence number `after`, in order.
    pub async fn events_since(&self, run_id: &str, after: u64) -> Result<Vec<JournalEvent>, Error> {
        let rows = sqlx::query(
            "SELECT seq, at, body, prev_hash, hash FROM events WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(run_id)
        .bind(after.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: EventKind = serde_json::from_str(&r.try_get::<String, _>("body")?)
                    .map_err(|e| Error::Corrupt(e.to_string()))?;
                Ok(JournalEvent {
                    run_id: run_id.to_string(),
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    at: r.try_get("at")?,
                    kind,
                    prev_hash: r.try_get("prev_hash")?,
                    hash: r.try_get("hash")?,
                })
            })
            .collect()
    }

    /// Every output of a run: (step, item, value), ordered by step and item, with sealed
    /// secrets opened.
    pub async fn outputs(&self, run_id: &str) -> Result<Vec<(String, u32, Value)>, Error> {
        Ok(self.outputs_opened(run_id).await?.0)
    }

    /// [`Store::outputs`], and every secret it opened (wherever it stood, nested values of a
    /// `runbook.call`'s outputs included), so what a step reports can be scrubbed of them.
    pub async fn outputs_opened(
        &self,
        run_id: &str,
    ) -> Result<(Vec<(String, u32, Value)>, Vec<String>), Error> {
        let rows = sqlx::query(
            "SELECT step, item, output FROM outputs WHERE run_id = $1 ORDER BY step, item",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        let mut opened = Vec::new();
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut value: Value = serde_json::from_str(&r.try_get::<String, _>("output")?)
                .map_err(|e| Error::Corrupt(e.to_string()))?;
            self.open_nested(&mut value, &mut opened)?;
            out.push((
                r.try_get("step")?,
                r.try_get::<i64, _>("item")? as u32,
                value,
            ));
        }
        Ok((out, opened))
    }

    fn open_nested(&self, value: &mut Value, opened: &mut Vec<String>) -> Result<(), Error> {
        match value {
            Value::String(s) if s.starts_with(crate::secrets::SEALED) => {
                let clear = self
                    .secrets
                    .open(s)
                    .map_err(|e| Error::Secrets(e.to_string()))?;
                opened.push(clear.clone());
                *value = json!(clear);
            }
            Value::Array(items) => {
                for v in items {
                    self.open_nested(v, opened)?;
                }
            }
            Value::Object(map) => {
                for v in map.values_mut() {
                    self.open_nested(v, opened)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The head of a run's journal as the run row recorded it: (last sequence number, hash).
    pub async fn head(&self, run_id: &str) -> Result<(u64, String), Error> {
        let row = sqlx::query("SELECT last_seq, last_hash FROM runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| Error::NoRun(run_id.to_string()))?;
        Ok((
            row.try_get::<i64, _>("last_seq")?.max(0) as u64,
            row.try_get("last_hash")?,
        ))
    }

    /// The key the journal's hash chain is made with.
    pub fn chain_key(&self) -> &ChainKey {
        self.secrets.chain_key()
    }

    /// A key for `purpose` derived from the database's secret key (the same in every process
    /// on this database); see [`crate::secrets::SecretBox::derive_key`].
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        self.secrets.derive_key(purpose)
    }
}

/// Creates an empty PostgreSQL database `name` (letters, digits, `_`) on the server of
/// `admin_url`, for first-time setup and for tests that each want their own database.
pub async fn create_database(admin_url: &str, name: &str) -> Result<(), Error> {
    use sqlx::{Connection, Executor};
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::Url(format!("database name `{name}`")));
    }
    let mut conn = sqlx::postgres::PgConnection::connect(admin_url).await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await?;
    Ok(())
}

/// A concurrency or dedup key as stored: a NUL byte (a webhook payload's value can hold one)
/// becomes U+FFFD, since PostgreSQL refuses NUL in text; the same key always maps the same.
fn storable_key(key: String) -> String {
    if key.contains('\0') {
        key.replace('\0', "\u{FFFD}")
    } else {
        key
    }
}
