//! The store's writes, each run inside the writer's open transaction: the same SQL on SQLite
//! and PostgreSQL (`$n` parameters, `ON CONFLICT`), with the [`Backend`] adding row locks.

use sqlx::{AnyConnection, Row};

use super::backend::Backend;
use super::writes::{Bind, Writes};
use super::{now_ms, now_text, status_str, Change, Error, Task, TaskKind};
use crate::journal::{Event as JournalEvent, EventKind};
use crate::machine::{self, Action, RunMachine};

/// A run to insert, serialized by the caller so the writer's transaction stays short.
pub(crate) struct NewRun {
    pub id: String,
    pub runbook: String,
    pub version: i64,
    pub plan_hash: String,
    pub plan_json: String,
    pub context: String,
    pub machine: String,
    pub inputs: serde_json::Value,
    pub trigger: String,
    pub concurrency_key: Option<String>,
}

pub(crate) async fn create_run(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    new: &NewRun,
) -> Result<(), Error> {
    let now = now_ms();
    let mut head = None;
    let events = chain(
        &new.id,
        &mut head,
        vec![
            EventKind::RunCreated {
                runbook: new.runbook.clone(),
                version: new.version as u32,
                plan_hash: new.plan_hash.clone(),
                trigger: new.trigger.clone(),
            },
            EventKind::InputsValidated {
                inputs: new.inputs.clone(),
            },
        ],
    );
    let (last_seq, last_hash) = head.unwrap_or_default();
    let mut writes = Writes::default();
    writes.push("INSERT INTO runs (id, runbook, version, plan_hash, plan, context, machine, status, concurrency_key, created_at, updated_at, last_seq, last_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $9, $10, $11, $12)",
        vec![(&new.id).into(), (&new.runbook).into(), new.version.into(), (&new.plan_hash).into(), (&new.plan_json).into(),
            (&new.context).into(), (&new.machine).into(), new.concurrency_key.clone().into(), now.into(), now.into(),
            (last_seq as i64).into(), last_hash.into()]);
    insert_events(&mut writes, &events);
    writes.flush(conn, backend).await?;
    let blocked = match &new.concurrency_key {
        Some(key) => {
            if let Some(lock) = backend.lock_key() {
                sqlx::query(lock).bind(key).execute(&mut *conn).await?;
            }
            sqlx::query("SELECT COUNT(*) FROM runs WHERE concurrency_key = $1 AND id <> $2 AND status IN ('running', 'waiting')")
                .bind(key).bind(&new.id).fetch_one(&mut *conn).await?.try_get::<i64, _>(0)? > 0
        }
        None => false,
    };
    if !blocked {
        let start = Change {
            events: vec![machine::Event::Start],
            ..Change::default()
        };
        transition(conn, backend, &new.id, None, &start).await?;
    }
    Ok(())
}

/// Leases the oldest due task whose lease is free or expired. Returns it and whether it was
/// taken over from an expired lease.
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
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
    let mut writes = Writes::default();
    writes.push(
        "UPDATE tasks SET lease_owner = $1, lease_until = $2 WHERE id = $3",
        vec![owner.into(), (now + lease_ms).into(), id.into()],
    );
    let mut task = Task {
        id,
        run_id: row.try_get("run_id")?,
        step: row.try_get("step")?,
        item: row.try_get::<i64, _>("item")? as u32,
        kind: TaskKind::parse(&row.try_get::<String, _>("kind")?)?,
        attempt: None,
    };
    if task.kind == TaskKind::Attempt {
        task.attempt = start_attempt(conn, backend, &task, owner, &mut writes).await?;
    }
    writes.flush(conn, backend).await?;
    Ok(Some((task, taken_over)))
}

/// Starts the next attempt of a claimed instance in the claim's own transaction, so claiming
/// and starting cost one write. An instance still `running` was left by a worker whose lease
/// ran out: that attempt is closed as expired first. Returns the attempt number, or `None`
/// when the instance is not claimable (the driver then drops the task).
async fn start_attempt(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    task: &Task,
    owner: &str,
    writes: &mut Writes,
) -> Result<Option<u32>, Error> {
    let (step, item) = (task.step.clone(), task.item);
    let mut started = None;
    let change = |m: &RunMachine| {
        let mut events = match m.instance(&step, item) {
            Some(machine::InstanceState::Running { attempt }) => {
                vec![machine::Event::LeaseExpired {
                    step: step.clone(),
                    item,
                    attempt,
                }]
            }
            Some(machine::InstanceState::RetryWait { .. }) => vec![machine::Event::RetryDue {
                step: step.clone(),
                item,
            }],
            Some(machine::InstanceState::Ready) if !m.status().is_final() => vec![],
            _ => return None,
        };
        let mut journal = Vec::new();
        if let Some(machine::InstanceState::Running { attempt: lost }) = m.instance(&step, item) {
            // Say in the log why the step runs again without a reported failure.
            journal.push(EventKind::AttemptFailed {
                step: step.clone(),
                item: Some(item),
                attempt: lost,
                class: "transient".into(),
                code: "lease_expired".into(),
                message: "the worker's lease ran out before its result was committed (it crashed, or its report did not commit); the next attempt finds work already done".into(),
                retry_after_ms: None,
            });
        }
        let attempt = m.next_attempt(&step, item);
        started = Some(attempt);
        events.push(machine::Event::AttemptStarted {
            step: step.clone(),
            item,
            attempt,
        });
        Some(Change {
            events,
            journal: journal
                .into_iter()
                .chain([EventKind::AttemptStarted {
                    step: step.clone(),
                    item: Some(item),
                    attempt,
                    owner: owner.to_string(),
                }])
                .collect(),
            ..Change::default()
        })
    };
    match transition_with(conn, backend, &task.run_id, None, writes, change).await {
        Ok(Some(_)) => Ok(started),
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

pub(crate) async fn remove_task(conn: &mut AnyConnection, task_id: i64) -> Result<bool, Error> {
    let r = sqlx::query("DELETE FROM tasks WHERE id = $1")
        .bind(task_id)
        .execute(&mut *conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Chains journal events after `head` (the last event's sequence number and hash; `None`
/// before the first), moving `head` to the last new event.
fn chain(
    run_id: &str,
    head: &mut Option<(u64, String)>,
    kinds: Vec<EventKind>,
) -> Vec<JournalEvent> {
    let mut events = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let e = JournalEvent::after(
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

/// Applies a change to a run: the machine's new state, the journal events that describe it
/// and the tasks its actions create. With `fence`, only while the worker holds that lease.
pub(crate) async fn transition(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    run_id: &str,
    fence: Option<(i64, &str)>,
    change: &Change,
) -> Result<Vec<Action>, Error> {
    let mut writes = Writes::default();
    let actions = transition_with(conn, backend, run_id, fence, &mut writes, |_| {
        Some(change.clone())
    })
    .await?;
    Ok(actions.unwrap_or_default())
}

/// [`transition`] with the change made from the run's current machine (`None`: nothing to
/// do), after `writes` collected by the caller. Everything is checked before anything is
/// written; all writes are flushed before it returns.
async fn transition_with(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    run_id: &str,
    fence: Option<(i64, &str)>,
    writes: &mut Writes,
    make: impl FnOnce(&RunMachine) -> Option<Change>,
) -> Result<Option<Vec<Action>>, Error> {
    if let Some((task_id, owner)) = fence {
        let sql = format!(
            "SELECT id FROM tasks WHERE id = $1 AND lease_owner = $2{}",
            backend.lock_row()
        );
        let held = sqlx::query(&sql)
            .bind(task_id)
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await?;
        if held.is_none() {
            return Err(Error::LeaseLost);
        }
    }
    let sql = format!(
        "SELECT machine, concurrency_key, last_seq, last_hash FROM runs WHERE id = $1{}",
        backend.lock_row()
    );
    let row = sqlx::query(&sql)
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| Error::NoRun(run_id.to_string()))?;
    let mut m: RunMachine = serde_json::from_str(&row.try_get::<String, _>("machine")?)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let concurrency_key: Option<String> = row.try_get("concurrency_key")?;
    let last_seq: i64 = row.try_get("last_seq")?;
    let mut head = (last_seq > 0)
        .then(|| Ok::<_, Error>((last_seq as u64, row.try_get::<String, _>("last_hash")?)))
        .transpose()?;
    let Some(change) = make(&m) else {
        writes.flush(conn, backend).await?;
        return Ok(None);
    };
    let claimed: Vec<(String, u32)> = change
        .events
        .iter()
        .filter_map(|e| match e {
            machine::Event::AttemptStarted { step, item, .. } => Some((step.clone(), *item)),
            _ => None,
        })
        .collect();
    let mut actions = Vec::new();
    for event in change.events {
        actions.extend(m.apply(event)?);
    }
    let mut journal = change.journal;
    let now = now_ms();
    let mut finished = None;
    for a in &actions {
        match a {
            Action::Prepare { step } => {
                writes.push("INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, 0, 'prepare', $3) ON CONFLICT (run_id, step, item, kind) DO NOTHING",
                    vec![run_id.into(), step.into(), now.into()]);
            }
            Action::Enqueue { step, item } => {
                // An existing row keeps its lease: a re-enqueue (retry due, lease expired) happens
                // in the same transaction as the claimer's next attempt.
                writes.push("INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, $3, 'attempt', $4) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at",
                    vec![run_id.into(), step.into(), i64::from(*item).into(), now.into()]);
                if !claimed.iter().any(|(s, i)| s == step && i == item) {
                    journal.push(EventKind::StepReady {
                        step: step.clone(),
                        item: Some(*item),
                    });
                }
            }
            Action::ScheduleRetry { step, item, at_ms } => {
                writes.push("UPDATE tasks SET due_at = $1, lease_owner = NULL, lease_until = NULL WHERE run_id = $2 AND step = $3 AND item = $4 AND kind = 'attempt'",
                    vec![(*at_ms as i64).into(), run_id.into(), step.into(), i64::from(*item).into()]);
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
            Action::OnFailure { failed_step } => journal.push(EventKind::OnFailureStarted {
                failed_step: failed_step.clone(),
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
    if let Some((step, item, output)) = &change.output {
        writes.push("INSERT INTO outputs (run_id, step, item, output) VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, step, item) DO UPDATE SET output = excluded.output",
            vec![run_id.into(), step.into(), i64::from(*item).into(), output.to_string().into()]);
    }
    if let Some(id) = change.remove_task {
        writes.push("DELETE FROM tasks WHERE id = $1", vec![id.into()]);
    }
    if let Some((step, item, due)) = &change.timer {
        writes.push("INSERT INTO tasks (run_id, step, item, kind, due_at) VALUES ($1, $2, $3, 'timer', $4) ON CONFLICT (run_id, step, item, kind) DO UPDATE SET due_at = excluded.due_at, lease_owner = NULL, lease_until = NULL",
            vec![run_id.into(), step.into(), i64::from(*item).into(), (*due).into()]);
    }
    if let Some((step, approver, decision)) = &change.decision {
        writes.push("INSERT INTO decisions (run_id, step, approver, decision, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (run_id, step, approver) DO UPDATE SET decision = excluded.decision, at = excluded.at",
            vec![run_id.into(), step.into(), approver.into(), decision.into(), now.into()]);
    }
    if finished.is_some() {
        writes.push("DELETE FROM tasks WHERE run_id = $1", vec![run_id.into()]);
    }
    let events = chain(run_id, &mut head, journal);
    let (last_seq, last_hash) = head.unwrap_or_default();
    writes.push("UPDATE runs SET machine = $1, status = $2, updated_at = $3, last_seq = $4, last_hash = $5 WHERE id = $6",
        vec![serde_json::to_string(&m).unwrap_or_default().into(), status_str(m.status()).into(), now.into(),
            (last_seq as i64).into(), last_hash.into(), run_id.into()]);
    insert_events(writes, &events);
    writes.flush(conn, backend).await?;
    if let (Some(_), Some(key)) = (finished, concurrency_key) {
        if let Some(lock) = backend.lock_key() {
            sqlx::query(lock).bind(&key).execute(&mut *conn).await?;
        }
        // Start the oldest run queued behind this one.
        let next = sqlx::query("SELECT id FROM runs WHERE concurrency_key = $1 AND status = 'queued' ORDER BY created_at LIMIT 1")
            .bind(&key).fetch_optional(&mut *conn).await?;
        if let Some(next) = next {
            let next_id: String = next.try_get(0)?;
            let start = Change {
                events: vec![machine::Event::Start],
                ..Change::default()
            };
            Box::pin(transition(conn, backend, &next_id, None, &start)).await?;
        }
    }
    Ok(Some(actions))
}
