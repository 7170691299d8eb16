//! The store's writes, each run inside the writer's open transaction: the same SQL on SQLite
//! and PostgreSQL (`$n` parameters, `ON CONFLICT`), with the [`Backend`] adding row locks.
//! The store decides nothing: it loads a run's machine under the run row's lock, applies the
//! events it was given, journals what [`crate::journal::entries`] derives from each event and
//! its actions, and carries the actions out (tasks, timers, outputs, the next queued run).

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::backend::Backend;
use super::writes::{Bind, Writes};
use super::{now_ms, now_text, status_str, Error, Fence, Task, TaskKind};
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
}

/// Creates a run, or returns the run that already has its dedup key. Returns the run id and
/// whether it already existed.
pub(crate) async fn create_run(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    new: &NewRun,
) -> Result<(String, bool), Error> {
    if let Some(dedup) = &new.dedup_key {
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
    let mut writes = Writes::default();
    let (parent_run, parent_step, parent_item) = match &new.parent {
        Some((run, step, item)) => (
            Some(run.clone()),
            Some(step.clone()),
            Some(i64::from(*item)),
        ),
        None => (None, None, None),
    };
    writes.push("INSERT INTO runs (id, runbook, version, plan_hash, plan, context, machine, status, concurrency_key, dedup_key, created_at, updated_at, last_seq, last_hash, parent_run, parent_step, parent_item) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10, $11, 0, '', $12, $13, $14)",
        vec![(&new.id).into(), (&new.runbook).into(), new.version.into(), (&new.plan_hash).into(), (&new.plan_json).into(),
            (&new.context).into(), (&new.machine).into(), new.concurrency_key.clone().into(), new.dedup_key.clone().into(), now.into(), now.into(),
            parent_run.into(), parent_step.into(), parent_item.into()]);
    writes.flush(conn, backend).await?;
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
    transition(conn, backend, key, &new.id, None, events).await?;
    Ok((new.id.clone(), false))
}

/// Leases the oldest due task whose lease is free or expired. Returns it and whether it was
/// taken over from an expired lease.
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<(Task, bool)>, Error> {
    let now = now_ms();
    let sql = format!("SELECT id, run_id, step, item, kind, lease_owner FROM tasks WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until < $1) ORDER BY due_at, id LIMIT 1{}", backend.skip_locked());
    let Some(row) = sqlx::query(&sql)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let id: i64 = row.try_get("id")?;
    let taken_over = row.try_get::<Option<String>, _>("lease_owner")?.is_some();
    // Each claim gets its own lease token, so a report can only ever be fenced by the claim
    // that made it: a stale worker, even one with the same name, never matches a newer claim.
    let lease = format!("{owner}#{:016x}", rand::random::<u64>());
    let mut writes = Writes::default();
    writes.push(
        "UPDATE tasks SET lease_owner = $1, lease_until = $2 WHERE id = $3",
        vec![(&lease).into(), (now + lease_ms).into(), id.into()],
    );
    let mut task = Task {
        id,
        run_id: row.try_get("run_id")?,
        step: row.try_get("step")?,
        item: row.try_get::<i64, _>("item")? as u32,
        kind: TaskKind::parse(&row.try_get::<String, _>("kind")?)?,
        attempt: None,
        lease,
    };
    if task.kind == TaskKind::Attempt {
        task.attempt = start_attempt(conn, backend, key, &task, &mut writes).await?;
    }
    writes.flush(conn, backend).await?;
    Ok(Some((task, taken_over)))
}

/// Starts the next attempt of a claimed instance in the claim's own transaction, so claiming
/// and starting cost one write. An instance still `running` was left by a worker whose lease
/// ran out: the machine hears that first; one in `retry_wait` is due. Returns the attempt
/// number, or `None` when the instance is not claimable (the driver then drops the task).
async fn start_attempt(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    task: &Task,
    writes: &mut Writes,
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
    match transition_with(conn, backend, key, &task.run_id, None, writes, make, None).await {
        Ok(Some(actions)) => {
            // Going again may have been refused (the deadline passed while the lease was lost).
            let running = actions.iter().all(|a| !matches!(a, Action::Finish { .. }));
            Ok(started.filter(|_| running))
        }
        Ok(None) | Err(Error::Machine(_)) | Err(Error::NoRun(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) async fn renew(
    conn: &mut AnyConnection,
    task_id: i64,
    owner: &str,
    lease_ms: i64,
) -> Result<bool, Error> {
    let r = sqlx::query("UPDATE tasks SET lease_until = $1 WHERE id = $2 AND lease_owner = $3")
        .bind(now_ms() + lease_ms)
        .bind(task_id)
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes a task this claim still holds (a duplicate, or one whose run has ended); a task
/// leased to someone else is never touched.
pub(crate) async fn remove_task(conn: &mut AnyConnection, fence: &Fence) -> Result<bool, Error> {
    let r = sqlx::query("DELETE FROM tasks WHERE id = $1 AND lease_owner = $2")
        .bind(fence.task_id)
        .bind(&fence.lease)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
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

/// Adds the insert of journal events, as one statement.
fn insert_events(writes: &mut Writes, events: &[JournalEvent]) {
    if events.is_empty() {
        return;
    }
    let mut sql =
        String::from("INSERT INTO events (run_id, seq, at, body, prev_hash, hash) VALUES ");
    let mut binds: Vec<Bind> = Vec::with_capacity(events.len() * 6);
    for (i, e) in events.iter().enumerate() {
        let n = i * 6;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${})",
            n + 1,
            n + 2,
            n + 3,
            n + 4,
            n + 5,
            n + 6
        ));
        binds.extend([
            (&e.run_id).into(),
            (e.seq as i64).into(),
            (&e.at).into(),
            serde_json::to_string(&e.kind).unwrap_or_default().into(),
            (&e.prev_hash).into(),
            (&e.hash).into(),
        ]);
    }
    writes.push(sql, binds);
}

/// Applies machine events to a run: the machine's new state, the journal derived from each
/// event and its actions, and the actions carried out. With `fence`, only while that claim
/// holds its task, which the report consumes.
pub(crate) async fn transition(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    run_id: &str,
    fence: Option<&Fence>,
    events: Vec<Event>,
) -> Result<Vec<Action>, Error> {
    transition_child(conn, backend, key, run_id, fence, events, None).await
}

/// [`transition`] with the run a `runbook.call` report starts, prepared by the driver: it is
/// created only if the machine asks for it ([`Action::StartChild`] naming its id).
pub(crate) async fn transition_child(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    run_id: &str,
    fence: Option<&Fence>,
    events: Vec<Event>,
    child: Option<&NewRun>,
) -> Result<Vec<Action>, Error> {
    let mut writes = Writes::default();
    let actions = transition_with(
        conn,
        backend,
        key,
        run_id,
        fence,
        &mut writes,
        |_| Some(events),
        child,
    )
    .await?;
    Ok(actions.unwrap_or_default())
}

/// [`transition`] with the events made from the run's current machine (`None`: nothing to
/// do), after `writes` collected by the caller. Everything is checked before anything is
/// written; all writes are flushed before it returns. What the transition asks of other runs
/// (the next queued run, a called run started or cancelled, the caller of a run that ended
/// woken) is done afterwards in the same transaction.
#[allow(clippy::too_many_arguments)]
async fn transition_with(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    run_id: &str,
    fence: Option<&Fence>,
    writes: &mut Writes,
    make: impl FnOnce(&RunMachine) -> Option<Vec<Event>>,
    child: Option<&NewRun>,
) -> Result<Option<Vec<Action>>, Error> {
    if let Some(fence) = fence {
        let sql = format!(
            "SELECT id FROM tasks WHERE id = $1 AND lease_owner = $2{}",
            backend.lock_row()
        );
        let held = sqlx::query(&sql)
            .bind(fence.task_id)
            .bind(&fence.lease)
            .fetch_optional(&mut *conn)
            .await?;
        if held.is_none() {
            return Err(Error::LeaseLost);
        }
    }
    let sql = format!(
        "SELECT machine, last_seq, last_hash FROM runs WHERE id = $1{}",
        backend.lock_row()
    );
    let row = sqlx::query(&sql)
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::NoRun(run_id.to_string()))?;
    let mut m: RunMachine = serde_json::from_str(&row.try_get::<String, _>("machine")?)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let last_seq: i64 = row.try_get("last_seq")?;
    let mut head = (last_seq > 0)
        .then(|| Ok::<_, Error>((last_seq as u64, row.try_get::<String, _>("last_hash")?)))
        .transpose()?;
    let Some(events) = make(&m) else {
        writes.flush(conn, backend).await?;
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
        writes.push(
            "DELETE FROM tasks WHERE id = $1",
            vec![fence.task_id.into()],
        );
    }
    let mut queued = None;
    let mut finished = false;
    let mut others = Vec::new();
    for a in &all {
        carry_out(writes, run_id, a, now);
        match a {
            Action::Finish { .. } => finished = true,
            Action::StartQueued { key } => queued = Some(key.clone()),
            Action::StartChild { .. } | Action::CancelChild { .. } => others.push(a.clone()),
            _ => {}
        }
    }
    if finished {
        writes.push("DELETE FROM tasks WHERE run_id = $1", vec![run_id.into()]);
    }
    let lines = chain(key, run_id, &mut head, journal_lines);
    let (last_seq, last_hash) = head.unwrap_or_default();
    writes.push("UPDATE runs SET machine = $1, status = $2, updated_at = $3, last_seq = $4, last_hash = $5 WHERE id = $6",
        vec![serde_json::to_string(&m).unwrap_or_default().into(), status_str(m.status()).into(), now.into(),
            (last_seq as i64).into(), last_hash.into(), run_id.into()]);
    insert_events(writes, &lines);
    writes.flush(conn, backend).await?;
    if let Some(ck) = queued {
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
                    super::calls::start_child(conn, backend, key, run_id, &step, item, &run, new)
                        .await?;
                }
            }
            Action::CancelChild { step, item } => {
                super::calls::cancel_children(conn, backend, key, run_id, &step, item).await?;
            }
            _ => {}
        }
    }
    if finished {
        super::calls::wake_caller(conn, backend, key, run_id).await?;
    }
    Ok(Some(all))
}

/// The writes one action asks for.
fn carry_out(writes: &mut Writes, run_id: &str, action: &Action, now: i64) {
    let at = |ms: u64| ms.min(i64::MAX as u64) as i64;
    match action {
        Action::Prepare { step } => {
            writes.push("INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, 0, 'prepare', $3) ON CONFLICT (run_id, step, item, kind) DO NOTHING",
                vec![run_id.into(), step.into(), now.into()]);
        }
        Action::Enqueue { step, item } => {
            // An existing row keeps its lease: a re-enqueue (retry due, lease expired) happens
            // in the same transaction as the claimer's next attempt.
            writes.push("INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, $3, 'attempt', $4) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at",
                vec![run_id.into(), step.into(), i64::from(*item).into(), now.into()]);
        }
        Action::EnqueueAt {
            step, item, at_ms, ..
        } => {
            writes.push("INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, $3, 'attempt', $4) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at, lease_owner = NULL, lease_until = NULL",
                vec![run_id.into(), step.into(), i64::from(*item).into(), at(*at_ms).into()]);
        }
        Action::SetTimer { step, item, at_ms } => {
            writes.push("INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, $3, 'timer', $4) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at, lease_owner = NULL, lease_until = NULL",
                vec![run_id.into(), step.into(), i64::from(*item).into(), at(*at_ms).into()]);
        }
        Action::CancelTimer { step, item } => {
            writes.push("DELETE FROM tasks WHERE run_id = $1 AND step = $2 AND item = $3 AND kind = 'timer'",
                vec![run_id.into(), step.into(), i64::from(*item).into()]);
        }
        Action::Dequeue { step, item } => {
            writes.push("DELETE FROM tasks WHERE run_id = $1 AND step = $2 AND item = $3 AND kind = 'attempt'",
                vec![run_id.into(), step.into(), i64::from(*item).into()]);
        }
        Action::StoreOutput { step, item, output } => {
            writes.push("INSERT INTO outputs (run_id, step, item, output) VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, step, item) DO UPDATE SET output = excluded.output",
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
