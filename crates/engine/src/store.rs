//! The durable store: runs (with the pinned plan and the machine's snapshot), claimable tasks
//! with leases, the journal, outputs and approval decisions, in SQLite (WAL,
//! `synchronous=FULL`). Every transition is one transaction: the machine's new state, the
//! journal events that describe it and the tasks it creates commit together or not at all.

use std::str::FromStr;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use tenure_runbook::Plan;

use crate::journal::{Event as JournalEvent, EventKind};
use crate::machine::{self, Action, RunMachine, RunStatus};

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
    /// The database URL is not one this build supports.
    #[error("unsupported database URL `{0}` (use sqlite:PATH)")]
    Url(String),
}

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
}

/// A run as stored.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// Id.
    pub id: String,
    /// The pinned plan.
    pub plan: Plan,
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
}

/// What one transition changes besides the machine.
#[derive(Default)]
pub struct Change {
    /// Machine events, applied in order.
    pub events: Vec<machine::Event>,
    /// Journal events the caller describes (attempt started, failed, approval requested...).
    pub journal: Vec<EventKind>,
    /// An output to store: (step, item, value).
    pub output: Option<(String, u32, Value)>,
    /// A task to delete.
    pub remove_task: Option<i64>,
    /// A timer task to add: (step, item, due unix ms).
    pub timer: Option<(String, u32, i64)>,
    /// An approval decision to record: (step, approver, decision).
    pub decision: Option<(String, String, String)>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn status_str(s: RunStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_status(s: &str) -> Result<RunStatus, Error> {
    serde_json::from_value(json!(s)).map_err(|_| Error::Corrupt(format!("status {s}")))
}

/// The durable store.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Wakes this process's idle workers when a transition creates work (other processes
    /// notice by polling).
    work: std::sync::Arc<tokio::sync::Notify>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` (`sqlite:PATH`) and migrates it.
    pub async fn open(url: &str) -> Result<Store, Error> {
        let path = url
            .strip_prefix("sqlite:")
            .ok_or_else(|| Error::Url(url.to_string()))?;
        let path = path.strip_prefix("//").unwrap_or(path);
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        // Several processes may open a new database at once; SQLite has no migration lock, so a
        // loser of that race sees "already exists" and simply tries again after the winner.
        let migrator = sqlx::migrate!("./migrations/sqlite");
        let mut tries = 0;
        loop {
            match migrator.run(&pool).await {
                Ok(()) => break,
                Err(_) if tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 * tries)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Store {
            pool,
            work: std::sync::Arc::new(tokio::sync::Notify::new()),
        })
    }

    async fn begin(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, Error> {
        let mut conn = self.pool.acquire().await?;
        // IMMEDIATE takes the write lock up front, so concurrent writers queue instead of
        // failing to upgrade a read lock.
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        Ok(conn)
    }

    async fn commit(mut conn: sqlx::pool::PoolConnection<sqlx::Sqlite>) -> Result<(), Error> {
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        Ok(())
    }

    async fn rollback(mut conn: sqlx::pool::PoolConnection<sqlx::Sqlite>) {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }

    /// Creates a run of `plan` and starts it (or queues it behind a run with the same
    /// concurrency key). Returns the run id.
    pub async fn create_run(
        &self,
        plan: &Plan,
        context: Value,
        trigger: &str,
        concurrency_key: Option<String>,
    ) -> Result<String, Error> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut conn = self.begin().await?;
        let result = async {
            let plan_json = serde_json::to_string(plan).map_err(|e| Error::Corrupt(e.to_string()))?;
            let mut ctx = context;
            ctx["run"]["id"] = json!(id);
            let machine = RunMachine::new(plan);
            let now = now_ms();
            sqlx::query("INSERT INTO runs (id, runbook, version, plan_hash, plan, context, machine, status, concurrency_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)")
                .bind(&id).bind(&plan.runbook).bind(plan.version).bind(&plan.hash).bind(plan_json)
                .bind(ctx.to_string()).bind(serde_json::to_string(&machine).unwrap_or_default())
                .bind(&concurrency_key).bind(now).bind(now)
                .execute(&mut *conn).await?;
            append(&mut conn, &id, vec![
                EventKind::RunCreated { runbook: plan.runbook.clone(), version: plan.version, plan_hash: plan.hash.clone(), trigger: trigger.to_string() },
                EventKind::InputsValidated { inputs: ctx["inputs"].clone() },
            ]).await?;
            let blocked = match &concurrency_key {
                Some(key) => sqlx::query("SELECT COUNT(*) FROM runs WHERE concurrency_key = ? AND id <> ? AND status IN ('running', 'waiting')")
                    .bind(key).bind(&id).fetch_one(&mut *conn).await?.get::<i64, _>(0) > 0,
                None => false,
            };
            if !blocked {
                transition_in(&mut conn, &id, None, Change { events: vec![machine::Event::Start], ..Change::default() }).await?;
            }
            Ok::<_, Error>(())
        }.await;
        match result {
            Ok(()) => {
                Self::commit(conn).await?;
                self.work.notify_waiters();
                Ok(id)
            }
            Err(e) => {
                Self::rollback(conn).await;
                Err(e)
            }
        }
    }

    /// Applies a change to a run in one transaction. With `fence`, the change applies only if
    /// the worker still holds the lease on that task.
    pub async fn transition(
        &self,
        run_id: &str,
        fence: Option<(i64, &str)>,
        change: Change,
    ) -> Result<Vec<Action>, Error> {
        let mut conn = self.begin().await?;
        match transition_in(&mut conn, run_id, fence, change).await {
            Ok(actions) => {
                Self::commit(conn).await?;
                if actions
                    .iter()
                    .any(|a| matches!(a, Action::Prepare { .. } | Action::Enqueue { .. }))
                {
                    self.work.notify_waiters();
                }
                Ok(actions)
            }
            Err(e) => {
                Self::rollback(conn).await;
                Err(e)
            }
        }
    }

    /// Claims the oldest due task whose lease is free or expired, leasing it for `lease`.
    /// Returns the task and whether it was taken over from an expired lease.
    pub async fn claim(&self, owner: &str, lease: Duration) -> Result<Option<(Task, bool)>, Error> {
        let now = now_ms();
        // Read the previous lease first so a takeover is known; both statements run under one
        // write lock.
        let mut conn = self.begin().await?;
        let picked = sqlx::query("SELECT id, run_id, step, item, kind, lease_owner FROM tasks WHERE due_at <= ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at, id LIMIT 1")
            .bind(now).bind(now).fetch_optional(&mut *conn).await;
        let picked = match picked {
            Ok(p) => p,
            Err(e) => {
                Self::rollback(conn).await;
                return Err(e.into());
            }
        };
        let Some(row) = picked else {
            Self::rollback(conn).await;
            return Ok(None);
        };
        let id: i64 = row.get("id");
        let taken_over = row.get::<Option<String>, _>("lease_owner").is_some();
        if let Err(e) =
            sqlx::query("UPDATE tasks SET lease_owner = ?, lease_until = ? WHERE id = ?")
                .bind(owner)
                .bind(now + lease.as_millis() as i64)
                .bind(id)
                .execute(&mut *conn)
                .await
        {
            Self::rollback(conn).await;
            return Err(e.into());
        }
        Self::commit(conn).await?;
        let task = Task {
            id,
            run_id: row.get("run_id"),
            step: row.get("step"),
            item: row.get::<i64, _>("item") as u32,
            kind: TaskKind::parse(row.get::<&str, _>("kind"))?,
        };
        Ok(Some((task, taken_over)))
    }

    /// Waits until this process creates new work, or `max` passes.
    pub async fn wait_for_work(&self, max: Duration) {
        let _ = tokio::time::timeout(max, self.work.notified()).await;
    }

    /// Deletes a task (a duplicate, or one whose run has ended).
    pub async fn remove_task(&self, task_id: i64) -> Result<bool, Error> {
        let r = sqlx::query("DELETE FROM tasks WHERE id = ?")
            .bind(task_id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Extends a lease the worker still holds; false if it was lost.
    pub async fn renew(&self, task_id: i64, owner: &str, lease: Duration) -> Result<bool, Error> {
        let r = sqlx::query("UPDATE tasks SET lease_until = ? WHERE id = ? AND lease_owner = ?")
            .bind(now_ms() + lease.as_millis() as i64)
            .bind(task_id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The earliest time any task is due, if there is one.
    pub async fn next_due(&self) -> Result<Option<i64>, Error> {
        Ok(sqlx::query("SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > due_at THEN lease_until ELSE due_at END) FROM tasks")
            .fetch_one(&self.pool).await?.get::<Option<i64>, _>(0))
    }

    /// Loads a run.
    pub async fn run(&self, id: &str) -> Result<RunRecord, Error> {
        let row = sqlx::query("SELECT id, plan, context, machine, status, created_at, updated_at FROM runs WHERE id = ?")
            .bind(id).fetch_optional(&self.pool).await?.ok_or_else(|| Error::NoRun(id.to_string()))?;
        record(&row)
    }

    /// Runs, newest first, optionally with one status.
    pub async fn runs(&self, status: Option<&str>) -> Result<Vec<RunRecord>, Error> {
        let rows = match status {
            Some(s) => sqlx::query("SELECT id, plan, context, machine, status, created_at, updated_at FROM runs WHERE status = ? ORDER BY created_at DESC").bind(s).fetch_all(&self.pool).await?,
            None => sqlx::query("SELECT id, plan, context, machine, status, created_at, updated_at FROM runs ORDER BY created_at DESC").fetch_all(&self.pool).await?,
        };
        rows.iter().map(record).collect()
    }

    /// A run's journal, in order.
    pub async fn events(&self, run_id: &str) -> Result<Vec<JournalEvent>, Error> {
        let rows = sqlx::query(
            "SELECT seq, at, body, prev_hash, hash FROM events WHERE run_id = ? ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: EventKind = serde_json::from_str(r.get::<&str, _>("body"))
                    .map_err(|e| Error::Corrupt(e.to_string()))?;
                Ok(JournalEvent {
                    run_id: run_id.to_string(),
                    seq: r.get::<i64, _>("seq") as u64,
                    at: r.get("at"),
                    kind,
                    prev_hash: r.get("prev_hash"),
                    hash: r.get("hash"),
                })
            })
            .collect()
    }

    /// Every output of a run as `{step: {outputs}}` (a list of outputs for `for_each` steps).
    pub async fn outputs(&self, run_id: &str) -> Result<Vec<(String, u32, Value)>, Error> {
        let rows = sqlx::query(
            "SELECT step, item, output FROM outputs WHERE run_id = ? ORDER BY step, item",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.get("step"),
                    r.get::<i64, _>("item") as u32,
                    serde_json::from_str(r.get::<&str, _>("output"))
                        .map_err(|e| Error::Corrupt(e.to_string()))?,
                ))
            })
            .collect()
    }

    /// Approval decisions so far for a step: (approver, decision).
    pub async fn decisions(
        &self,
        run_id: &str,
        step: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let rows = sqlx::query(
            "SELECT approver, decision FROM decisions WHERE run_id = ? AND step = ? ORDER BY at",
        )
        .bind(run_id)
        .bind(step)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("approver"), r.get("decision")))
            .collect())
    }

    /// The timer task of a parked instance, if any.
    pub async fn timer_task(&self, run_id: &str, step: &str) -> Result<Option<i64>, Error> {
        Ok(
            sqlx::query("SELECT id FROM tasks WHERE run_id = ? AND step = ? AND kind = 'timer'")
                .bind(run_id)
                .bind(step)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.get(0)),
        )
    }
}

fn record(row: &sqlx::sqlite::SqliteRow) -> Result<RunRecord, Error> {
    let corrupt = |e: serde_json::Error| Error::Corrupt(e.to_string());
    Ok(RunRecord {
        id: row.get("id"),
        plan: serde_json::from_str(row.get::<&str, _>("plan")).map_err(corrupt)?,
        context: serde_json::from_str(row.get::<&str, _>("context")).map_err(corrupt)?,
        machine: serde_json::from_str(row.get::<&str, _>("machine")).map_err(corrupt)?,
        status: parse_status(row.get::<&str, _>("status"))?,
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

/// Appends journal events after the run's last one, chaining hashes.
async fn append(
    conn: &mut SqliteConnection,
    run_id: &str,
    kinds: Vec<EventKind>,
) -> Result<(), Error> {
    if kinds.is_empty() {
        return Ok(());
    }
    let last = sqlx::query("SELECT seq, at, body, prev_hash, hash FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1").bind(run_id).fetch_optional(&mut *conn).await?;
    let mut prev: Option<JournalEvent> = match last {
        Some(r) => Some(JournalEvent {
            run_id: run_id.to_string(),
            seq: r.get::<i64, _>("seq") as u64,
            at: r.get("at"),
            kind: serde_json::from_str(r.get::<&str, _>("body"))
                .map_err(|e| Error::Corrupt(e.to_string()))?,
            prev_hash: r.get("prev_hash"),
            hash: r.get("hash"),
        }),
        None => None,
    };
    for kind in kinds {
        let e = JournalEvent::next(run_id, prev.as_ref(), now_text(), kind);
        sqlx::query(
            "INSERT INTO events (run_id, seq, at, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(e.seq as i64)
        .bind(&e.at)
        .bind(serde_json::to_string(&e.kind).unwrap_or_default())
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut *conn)
        .await?;
        prev = Some(e);
    }
    Ok(())
}

/// The body of [`Store::transition`], inside an open transaction.
async fn transition_in(
    conn: &mut SqliteConnection,
    run_id: &str,
    fence: Option<(i64, &str)>,
    change: Change,
) -> Result<Vec<Action>, Error> {
    if let Some((task_id, owner)) = fence {
        let held = sqlx::query("SELECT 1 FROM tasks WHERE id = ? AND lease_owner = ?")
            .bind(task_id)
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await?;
        if held.is_none() {
            return Err(Error::LeaseLost);
        }
    }
    let row = sqlx::query("SELECT machine, concurrency_key FROM runs WHERE id = ?")
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::NoRun(run_id.to_string()))?;
    let mut m: RunMachine = serde_json::from_str(row.get::<&str, _>("machine"))
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let concurrency_key: Option<String> = row.get("concurrency_key");
    let mut actions = Vec::new();
    let claimed: Vec<(String, u32)> = change
        .events
        .iter()
        .filter_map(|e| match e {
            machine::Event::AttemptStarted { step, item, .. } => Some((step.clone(), *item)),
            _ => None,
        })
        .collect();
    let claimed_now: Vec<(&str, u32)> = claimed.iter().map(|(s, i)| (s.as_str(), *i)).collect();
    for event in change.events {
        actions.extend(m.apply(event)?);
    }
    let mut journal = change.journal;
    let now = now_ms();
    let mut finished = None;
    for a in &actions {
        match a {
            Action::Prepare { step } => {
                sqlx::query("INSERT OR IGNORE INTO tasks (run_id, step, item, kind, due_at) VALUES (?, ?, 0, 'prepare', ?)").bind(run_id).bind(step).bind(now).execute(&mut *conn).await?;
            }
            Action::Enqueue { step, item } => {
                // An existing row keeps its lease: a re-enqueue (retry due, lease expired) happens
                // in the same transaction as the claimer's next attempt.
                sqlx::query("INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES (?, ?, ?, 'attempt', ?) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at")
                    .bind(run_id).bind(step).bind(*item as i64).bind(now).execute(&mut *conn).await?;
                if !claimed_now.contains(&(step.as_str(), *item)) {
                    journal.push(EventKind::StepReady {
                        step: step.clone(),
                        item: Some(*item),
                    });
                }
            }
            Action::ScheduleRetry { step, item, at_ms } => {
                sqlx::query("UPDATE tasks SET due_at = ?, lease_owner = NULL, lease_until = NULL WHERE run_id = ? AND step = ? AND item = ? AND kind = 'attempt'")
                    .bind(*at_ms as i64).bind(run_id).bind(step).bind(*item as i64).execute(&mut *conn).await?;
                journal.push(EventKind::TimerSet {
                    step: step.clone(),
                    at: chrono::DateTime::from_timestamp_millis(*at_ms as i64)
                        .map(|d| d.to_rfc3339())
                        .unwrap_or_default(),
                });
            }
            Action::Skipped { step, reason } => journal.push(EventKind::StepSkipped {
                step: step.clone(),
                item: None,
                reason: reason.to_string(),
            }),
            Action::Finish {
                status,
                failed_step,
            } => {
                finished = Some(*status);
                journal.push(EventKind::RunFinished {
                    status: status_str(*status),
                    error: failed_step.as_ref().map(|s| format!("step `{s}` failed")),
                });
            }
        }
    }
    if let Some((step, item, output)) = change.output {
        sqlx::query(
            "INSERT OR REPLACE INTO outputs (run_id, step, item, output) VALUES (?, ?, ?, ?)",
        )
        .bind(run_id)
        .bind(step)
        .bind(item as i64)
        .bind(output.to_string())
        .execute(&mut *conn)
        .await?;
    }
    if let Some(id) = change.remove_task {
        sqlx::query("DELETE FROM tasks WHERE id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    if let Some((step, item, due)) = change.timer {
        sqlx::query("INSERT OR REPLACE INTO tasks (run_id, step, item, kind, due_at) VALUES (?, ?, ?, 'timer', ?)").bind(run_id).bind(step).bind(item as i64).bind(due).execute(&mut *conn).await?;
    }
    if let Some((step, approver, decision)) = change.decision {
        sqlx::query("INSERT OR REPLACE INTO decisions (run_id, step, approver, decision, at) VALUES (?, ?, ?, ?, ?)").bind(run_id).bind(step).bind(approver).bind(decision).bind(now).execute(&mut *conn).await?;
    }
    if finished.is_some() {
        sqlx::query("DELETE FROM tasks WHERE run_id = ?")
            .bind(run_id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE runs SET machine = ?, status = ?, updated_at = ? WHERE id = ?")
        .bind(serde_json::to_string(&m).unwrap_or_default())
        .bind(status_str(m.status()))
        .bind(now)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    append(conn, run_id, journal).await?;
    if let (Some(_), Some(key)) = (finished, concurrency_key) {
        // Start the oldest run queued behind this one.
        let next = sqlx::query("SELECT id FROM runs WHERE concurrency_key = ? AND status = 'queued' ORDER BY created_at LIMIT 1").bind(key).fetch_optional(&mut *conn).await?;
        if let Some(next) = next {
            let next_id: String = next.get(0);
            Box::pin(transition_in(
                conn,
                &next_id,
                None,
                Change {
                    events: vec![machine::Event::Start],
                    ..Change::default()
                },
            ))
            .await?;
        }
    }
    Ok(actions)
}
