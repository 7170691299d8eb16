//! The store's writes, each run inside the writer's open transaction: the same SQL on SQLite
//! and PostgreSQL (`$n` parameters, `ON CONFLICT`), with the [`Backend`] adding row locks.
//! The store decides nothing: it loads a run's machine under the run row's lock, applies the
//! events it was given, journals what [`crate::journal::entries`] derives from each event and
//! its actions, and carries the actions out (tasks, timers, outputs, the next queued run).
//! Reads and writes go through the transaction's [`Batch`], which on SQLite serves run
//! snapshots and fences from memory and sends all writes at the end.

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::backend::Backend;
use super::batch::Batch;
use super::{now_ms, now_text, Error, Fence, Task, TaskKind};
use crate::journal::{self, ChainKey, Event as JournalEvent, EventKind};
use crate::machine::{self, Action, Event, RunMachine};

/// A run to insert, serialized by the caller so the writer's transaction stays short.
pub(crate) struct NewRun {
    pub id: String,
    pub runbook: String,
    pub version: i64,
    pub plan_hash: String,
    pub plan_json: String,
    pub context: String,
    pub machine: String,
    pub inputs: Value,
    pub trigger: String,
    pub concurrency_key: Option<String>,
    pub dedup_key: Option<String>,
    pub seed: u64,
    /// The run, step and item of the `runbook.call` that starts it.
    pub parent: Option<(String, String, u32)>,
    /// What a runs list shows of it.
    pub labels: crate::labels::RunLabels,
}

/// Creates a run, or returns the run that already has its dedup key. Returns the run id and
/// whether it already existed.
pub(crate) async fn create_run(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    new: &NewRun,
) -> Result<(String, bool), Error> {
    if let Some(dedup) = &new.dedup_key {
        // Another run of this batch may have the key.
        batch.flush(conn, backend).await?;
        if let Some(lock) = backend.lock_key() {
            sqlx::query(lock).bind(dedup).execute(&mut *conn).await?;
        }
        let existing = sqlx::query("SELECT id FROM runs WHERE dedup_key = $1")
            .bind(dedup)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = existing {
            return Ok((row.try_get(0)?, true));
        }
    }
    let now = now_ms();
    let (parent_run, parent_step, parent_item) = match &new.parent {
        Some((run, step, item)) => (
            Some(run.clone()),
            Some(step.clone()),
            Some(i64::from(*item)),
        ),
        None => (None, None, None),
    };
    let machine: RunMachine =
        serde_json::from_str(&new.machine).map_err(|e| Error::Corrupt(e.to_string()))?;
    // The plan is stored once per hash (a run of a plan already stored writes nothing more);
    // the run's row names it by hash. Where several processes write at once the writer
    // stored it before the transaction (see `writer::commit`).
    if backend.lock_key().is_none() {
        batch.writes.push_for(
            &new.id,
            "INSERT INTO plans (hash, plan) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
            vec![(&new.plan_hash).into(), (&new.plan_json).into()],
        );
    }
    batch.writes.push_for(&new.id, "INSERT INTO runs (id, runbook, version, plan_hash, context, machine, status, concurrency_key, dedup_key, created_at, updated_at, last_seq, last_hash, parent_run, parent_step, parent_item, person, tenant, ticket, trigger_source, trigger_by, search) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $8, $9, $10, 0, '', $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        vec![(&new.id).into(), (&new.runbook).into(), new.version.into(), (&new.plan_hash).into(),
            (&new.context).into(), (&new.machine).into(), new.concurrency_key.clone().into(), new.dedup_key.clone().into(), now.into(), now.into(),
            parent_run.into(), parent_step.into(), parent_item.into(), new.labels.person.clone().into(), new.labels.tenant.clone().into(),
            new.labels.ticket.clone().into(), new.labels.trigger_source.clone().into(), new.labels.trigger_by.clone().into(),
            new.labels.search_text(&new.id, &new.runbook).into()]);
    batch.created(&new.id, machine, now);
    let created = Event::Created {
        runbook: new.runbook.clone(),
        version: new.version as u32,
        plan_hash: new.plan_hash.clone(),
        trigger: new.trigger.clone(),
        inputs: new.inputs.clone(),
        concurrency_key: new.concurrency_key.clone(),
        seed: new.seed,
    };
    let blocked = match &new.concurrency_key {
        Some(ck) => {
            batch.flush(conn, backend).await?;
            if let Some(lock) = backend.lock_key() {
                sqlx::query(lock).bind(ck).execute(&mut *conn).await?;
            }
            sqlx::query("SELECT COUNT(*) FROM runs WHERE concurrency_key = $1 AND id <> $2 AND status IN ('running', 'waiting')")
                .bind(ck).bind(&new.id).fetch_one(&mut *conn).await?.try_get::<i64, _>(0)? > 0
        }
        None => false,
    };
    let mut events = vec![created];
    if !blocked {
        events.push(Event::Start);
    }
    transition(conn, backend, key, batch, &new.id, None, events).await?;
    Ok((new.id.clone(), false))
}

/// Leases up to `limit` of the oldest due tasks whose lease is free or expired, each under
/// its own lease token. Returns them and whether each was taken over from an expired lease.
/// A claim never waits for a lock: tasks and runs another transaction holds are skipped (on
/// PostgreSQL) and claimed by a later claim.
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    owner: &str,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<(Task, bool)>, Error> {
    // The claim sees the tasks this batch created.
    batch.flush(conn, backend).await?;
    let now = now_ms();
    let sql = format!("SELECT id, run_id, step, item, kind, lease_owner FROM tasks WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until < $1) ORDER BY due_at, id LIMIT $2{}", backend.skip_locked());
    // The limit is a parameter: one prepared statement, whatever the number of free slots.
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(limit.max(1) as i64)
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let locked = lock_runs(conn, backend, &rows).await?;
    // The runs this claim holds, in one read (never one it skipped: reading it would wait).
    let runs = rows
        .iter()
        .map(|r| r.try_get::<String, _>("run_id"))
        .collect::<Result<Vec<_>, _>>()?;
    let runs = runs
        .iter()
        .filter(|r| locked.as_ref().is_none_or(|l| l.contains(*r)))
        .map(String::as_str)
        .collect();
    batch.load_runs(conn, backend, runs).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let run_id: String = row.try_get("run_id")?;
        if locked.as_ref().is_some_and(|l| !l.contains(&run_id)) {
            continue;
        }
        let id: i64 = row.try_get("id")?;
        let taken_over = row.try_get::<Option<String>, _>("lease_owner")?.is_some();
        // Each claim gets its own lease token, so a report can only ever be fenced by the claim
        // that made it: a stale worker, even one with the same name, never matches a newer
        // claim.
        let lease = format!("{owner}#{:016x}", rand::random::<u64>());
        batch.writes.push_for(
            &run_id,
            "UPDATE tasks SET lease_owner = $1, lease_until = $2 WHERE id = $3",
            vec![(&lease).into(), (now + lease_ms).into(), id.into()],
        );
        batch.task_leased(id, &lease);
        let mut task = Task {
            id,
            run_id,
            step: row.try_get("step")?,
            item: row.try_get::<i64, _>("item")? as u32,
            kind: TaskKind::parse(&row.try_get::<String, _>("kind")?)?,
            attempt: None,
            lease,
        };
        if task.kind == TaskKind::Attempt {
            task.attempt = start_attempt(conn, backend, key, batch, &task).await?;
        }
        batch.end_op(conn, backend).await?;
        claimed.push((task, taken_over));
    }
    Ok(claimed)
}

/// A claimed task's run as the claim's transaction left it, unparsed (the claimant parses it,
/// off the writer), so a task does not read its run and outputs again.
pub(crate) struct RawRun {
    pub id: String,
    pub plan_hash: String,
    pub context: String,
    /// The machine where the batch holds it (SQLite), else its stored JSON. Everything else is
    /// read after the batch's writes so far were sent, so it is what the claim commits.
    pub machine: Result<RunMachine, String>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub parent: (Option<String>, Option<String>, Option<i64>),
    /// Its stored outputs as one JSON array of `[step, item, output]`, by step and item.
    pub outputs: String,
}

/// Reads, in the claim's transaction and in one query each, the runs of `claimed` and their
/// outputs.
pub(crate) async fn claimed_runs(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    batch: &mut Batch,
    claimed: &[(Task, bool)],
) -> Result<Vec<RawRun>, Error> {
    let mut ids: Vec<&str> = claimed.iter().map(|(t, _)| t.run_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Every write so far is sent first, so what is read is what the claim commits.
    batch.flush(conn, backend).await?;
    let mut runs: Vec<RawRun> = Vec::with_capacity(ids.len());
    // The machine is read only where the batch does not hold it (it always does on SQLite),
    // and each run's outputs come in its own row as one JSON array, so a claim is one query
    // and one row per run however many outputs the runs have.
    let held = ids.iter().all(|id| batch.machine(id).is_some());
    let machine = if held { "NULL" } else { "machine" };
    let outputs = backend.outputs_array("runs.id");
    for chunk in ids.chunks(super::batch::CHUNK) {
        let params = super::batch::params(chunk.len());
        let sql = format!("SELECT id, plan_hash, context, {machine} AS machine, status, created_at, updated_at, parent_run, parent_step, parent_item, {outputs} AS outputs FROM runs WHERE id IN ({params}) ORDER BY id");
        let mut query = sqlx::query(&sql).persistent(false);
        for id in chunk {
            query = query.bind(*id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let id: String = row.try_get("id")?;
            let machine = match batch.machine(&id) {
                Some(m) => Ok(m.clone()),
                None => Err(row.try_get::<String, _>("machine")?),
            };
            runs.push(RawRun {
                plan_hash: row.try_get("plan_hash")?,
                context: row.try_get("context")?,
                machine,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                status: row.try_get("status")?,
                parent: (
                    row.try_get("parent_run")?,
                    row.try_get("parent_step")?,
                    row.try_get("parent_item")?,
                ),
                outputs: row.try_get("outputs")?,
                id,
            });
        }
    }
    Ok(runs)
}

/// Where rows are locked (PostgreSQL): locks the runs of the candidate tasks in id order,
/// skipping those another transaction holds, and returns the ones this one now holds.
/// `None` where write transactions are exclusive (SQLite): every run is available.
async fn lock_runs(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    rows: &[sqlx::any::AnyRow],
) -> Result<Option<std::collections::HashSet<String>>, Error> {
    if backend.lock_row().is_empty() {
        return Ok(None);
    }
    let mut runs = rows
        .iter()
        .map(|r| r.try_get::<String, _>("run_id"))
        .collect::<Result<Vec<_>, _>>()?;
    runs.sort();
    runs.dedup();
    let list = (1..=runs.len())
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT id FROM runs WHERE id IN ({list}) ORDER BY id{}",
        backend.skip_locked()
    );
    let mut query = sqlx::query(&sql).persistent(false);
    for r in &runs {
        query = query.bind(r);
    }
    let locked = query.fetch_all(&mut *conn).await?;
    Ok(Some(
        locked
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?,
    ))
}

/// Starts the next attempt of a claimed instance in the claim's own transaction, so claiming
/// and starting cost one write. An instance still `running` was left by a worker whose lease
/// ran out: the machine hears that first; one in `retry_wait` is due. Returns the attempt
/// number, or `None` when the instance is not claimable (the driver then drops the task).
async fn start_attempt(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    task: &Task,
) -> Result<Option<u32>, Error> {
    let (step, item) = (task.step.clone(), task.item);
    let mut started = None;
    let make = |m: &RunMachine| {
        let mut events = match m.instance(&step, item) {
            Some(machine::InstanceState::Running { attempt }) => vec![Event::LeaseExpired {
                step: step.clone(),
                item,
                attempt,
            }],
            Some(machine::InstanceState::RetryWait { .. }) => vec![Event::TimerDue {
                step: step.clone(),
                item,
            }],
            Some(machine::InstanceState::Ready) if !m.status().is_final() => vec![],
            _ => return None,
        };
        let attempt = m.next_attempt(&step, item);
        started = Some(attempt);
        events.push(Event::AttemptStarted {
            step: step.clone(),
            item,
            attempt,
            owner: task.lease.clone(),
        });
        Some(events)
    };
    match transition_with(conn, backend, key, batch, &task.run_id, None, make, None).await {
        Ok(Some(actions)) => {
            // Going again may have been refused (the deadline passed while the lease was lost).
            let running = actions.iter().all(|a| !matches!(a, Action::Finish { .. }));
            Ok(started.filter(|_| running))
        }
        Ok(None) | Err(Error::Machine(_)) | Err(Error::NoRun(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Extends a lease this claim still holds.
pub(crate) async fn renew(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    batch: &mut Batch,
    fence: &Fence,
    lease_ms: i64,
) -> Result<bool, Error> {
    batch.flush(conn, backend).await?;
    let r = sqlx::query("UPDATE tasks SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
        .bind(now_ms() + lease_ms)
        .bind(fence.task_id)
        .bind(&fence.lease)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes a task this claim still holds (a duplicate, or one whose run has ended); a task
/// leased to someone else is never touched.
pub(crate) async fn remove_task(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    batch: &mut Batch,
    fence: &Fence,
) -> Result<bool, Error> {
    batch.flush(conn, backend).await?;
    let r = sqlx::query("DELETE FROM tasks WHERE id = $1 AND lease_owner = $2")
        .bind(fence.task_id)
        .bind(&fence.lease)
        .execute(&mut *conn)
        .await?;
    let removed = r.rows_affected() == 1;
    if removed {
        batch.task_released(fence.task_id);
    }
    Ok(removed)
}

/// Chains journal events after `head` (the last event's sequence number and hash; `None`
/// before the first), moving `head` to the last new event.
fn chain(
    key: &ChainKey,
    run_id: &str,
    head: &mut Option<(u64, String)>,
    kinds: Vec<EventKind>,
) -> Vec<JournalEvent> {
    let mut events = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let e = JournalEvent::after(
            key,
            run_id,
            head.as_ref().map(|(seq, hash)| (*seq, hash.as_str())),
            now_text(),
            kind,
        );
        *head = Some((e.seq, e.hash.clone()));
        events.push(e);
    }
    events
}

/// Applies machine events to a run: the machine's new state, the journal derived from each
/// event and its actions, and the actions carried out. With `fence`, only while that claim
/// holds its task, which the report consumes.
pub(crate) async fn transition(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    run_id: &str,
    fence: Option<&Fence>,
    events: Vec<Event>,
) -> Result<Vec<Action>, Error> {
    transition_child(conn, backend, key, batch, run_id, fence, events, None).await
}

/// [`transition`] with the run a `runbook.call` report starts, prepared by the driver: it is
/// created only if the machine asks for it ([`Action::StartChild`] naming its id).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn transition_child(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    run_id: &str,
    fence: Option<&Fence>,
    events: Vec<Event>,
    child: Option<&NewRun>,
) -> Result<Vec<Action>, Error> {
    let actions = transition_with(
        conn,
        backend,
        key,
        batch,
        run_id,
        fence,
        |_| Some(events),
        child,
    )
    .await?;
    batch.end_op(conn, backend).await?;
    Ok(actions.unwrap_or_default())
}

/// [`transition`] with the events made from the run's current machine (`None`: nothing to
/// do). Everything is checked before anything is written or the batch's snapshot changes.
/// What the transition asks of other runs (the next queued run, a called run started or
/// cancelled, the caller of a run that ended woken) is done afterwards in the same
/// transaction.
#[allow(clippy::too_many_arguments)]
async fn transition_with(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    run_id: &str,
    fence: Option<&Fence>,
    make: impl FnOnce(&RunMachine) -> Option<Vec<Event>>,
    child: Option<&NewRun>,
) -> Result<Option<Vec<Action>>, Error> {
    // The run row first, then its task rows: the one lock order (see `writer.rs`).
    let Some(snapshot) = batch.run(conn, backend, run_id).await? else {
        return Err(match fence {
            Some(_) => Error::LeaseLost,
            None => Error::NoRun(run_id.to_string()),
        });
    };
    let mut m = snapshot.machine.clone();
    let mut head = snapshot.head.clone();
    if let Some(fence) = fence {
        if !batch.holds(conn, backend, fence).await? {
            return Err(Error::LeaseLost);
        }
    }
    let Some(events) = make(&m) else {
        return Ok(None);
    };
    let now = now_ms();
    let mut all = Vec::new();
    let mut journal_lines = Vec::new();
    for event in events {
        let actions = m.apply(event.clone(), now.max(0) as u64)?;
        journal_lines.extend(journal::entries(&event, &actions));
        all.extend(actions);
    }
    for a in &all {
        if let Action::StartChild { run, .. } = a {
            if child.is_none_or(|c| &c.id != run) {
                return Err(Error::Corrupt(format!(
                    "the report does not carry the called run {run}"
                )));
            }
        }
    }
    if let Some(fence) = fence {
        // The report consumes the task it reports on; what the machine enqueues again is a
        // new row.
        batch.writes.push_for(
            run_id,
            "DELETE FROM tasks WHERE id = $1",
            vec![fence.task_id.into()],
        );
        batch.task_released(fence.task_id);
    }
    let mut queued = None;
    let mut finished = false;
    let mut others = Vec::new();
    for a in &all {
        carry_out(batch, run_id, a, now);
        match a {
            Action::Finish { .. } => finished = true,
            Action::StartQueued { key } => queued = Some(key.clone()),
            Action::StartChild { .. } | Action::CancelChild { .. } => others.push(a.clone()),
            _ => {}
        }
    }
    if finished {
        batch.writes.push_for(
            run_id,
            "DELETE FROM tasks WHERE run_id = $1",
            vec![run_id.into()],
        );
        batch.tasks_released(run_id, None);
    }
    let lines = chain(key, run_id, &mut head, journal_lines);
    batch.journal(lines);
    if let Some(snapshot) = batch.run(conn, backend, run_id).await? {
        snapshot.machine = m;
        snapshot.head = head;
        snapshot.updated_at = now;
        snapshot.dirty = true;
    }
    if let Some(ck) = queued {
        batch.flush(conn, backend).await?;
        if let Some(lock) = backend.lock_key() {
            sqlx::query(lock).bind(&ck).execute(&mut *conn).await?;
        }
        // Start the oldest run queued behind this one.
        let next = sqlx::query("SELECT id FROM runs WHERE concurrency_key = $1 AND status = 'queued' ORDER BY created_at LIMIT 1")
            .bind(&ck).fetch_optional(&mut *conn).await?;
        if let Some(next) = next {
            let next_id: String = next.try_get(0)?;
            Box::pin(transition(
                conn,
                backend,
                key,
                batch,
                &next_id,
                None,
                vec![Event::Start],
            ))
            .await?;
        }
    }
    for a in others {
        match a {
            Action::StartChild {
                step, item, run, ..
            } => {
                if let Some(new) = child {
                    super::calls::start_child(
                        conn, backend, key, batch, run_id, &step, item, &run, new,
                    )
                    .await?;
                }
            }
            Action::CancelChild { step, item } => {
                super::calls::cancel_children(conn, backend, key, batch, run_id, &step, item)
                    .await?;
            }
            _ => {}
        }
    }
    if finished {
        super::calls::wake_caller(conn, backend, key, batch, run_id).await?;
    }
    Ok(Some(all))
}

/// The writes one action asks for.
fn carry_out(batch: &mut Batch, run_id: &str, action: &Action, now: i64) {
    let at = |ms: u64| ms.min(i64::MAX as u64) as i64;
    // Fences a later operation of this batch checks see what these writes do to leases.
    match action {
        Action::EnqueueAt { step, item, .. } | Action::Dequeue { step, item } => {
            batch.tasks_released(run_id, Some((step, i64::from(*item), "attempt")));
        }
        Action::SetTimer { step, item, .. } | Action::CancelTimer { step, item } => {
            batch.tasks_released(run_id, Some((step, i64::from(*item), "timer")));
        }
        _ => {}
    }
    let writes = &mut batch.writes;
    match action {
        Action::Prepare { step } => {
            writes.push_for(run_id, "INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, 0, 'prepare', $3) ON CONFLICT (run_id, step, item, kind) DO NOTHING",
                vec![run_id.into(), step.into(), now.into()]);
        }
        Action::Enqueue { step, item } => {
            // An existing row keeps its lease: a re-enqueue (retry due, lease expired) happens
            // in the same transaction as the claimer's next attempt.
            writes.push_for(run_id, "INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, $3, 'attempt', $4) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at",
                vec![run_id.into(), step.into(), i64::from(*item).into(), now.into()]);
        }
        Action::EnqueueAt {
            step, item, at_ms, ..
        } => {
            writes.push_for(run_id, "INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, $3, 'attempt', $4) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at, lease_owner = NULL, lease_until = NULL",
                vec![run_id.into(), step.into(), i64::from(*item).into(), at(*at_ms).into()]);
        }
        Action::SetTimer { step, item, at_ms } => {
            writes.push_for(run_id, "INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, $3, 'timer', $4) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at, lease_owner = NULL, lease_until = NULL",
                vec![run_id.into(), step.into(), i64::from(*item).into(), at(*at_ms).into()]);
        }
        Action::CancelTimer { step, item } => {
            writes.push_for(run_id, "DELETE FROM tasks WHERE run_id = $1 AND step = $2 AND item = $3 AND kind = 'timer'",
                vec![run_id.into(), step.into(), i64::from(*item).into()]);
        }
        Action::Dequeue { step, item } => {
            writes.push_for(run_id, "DELETE FROM tasks WHERE run_id = $1 AND step = $2 AND item = $3 AND kind = 'attempt'",
                vec![run_id.into(), step.into(), i64::from(*item).into()]);
        }
        Action::StoreOutput { step, item, output } => {
            writes.push_for(run_id, "INSERT INTO outputs (run_id, step, item, output) VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, step, item) DO UPDATE SET output = excluded.output",
                vec![run_id.into(), step.into(), i64::from(*item).into(), output.to_string().into()]);
        }
        Action::ApprovalResolved { .. }
        | Action::GaveUp { .. }
        | Action::Skipped { .. }
        | Action::OnFailure { .. }
        | Action::Finish { .. }
        | Action::StartQueued { .. }
        | Action::StartChild { .. }
        | Action::CancelChild { .. } => {}
    }
}
