//! What one writer transaction has read and not yet written. On SQLite (one writer at a time,
//! no row locks) a batch reads the run rows and fenced tasks of all its operations in one
//! query each, applies every operation to those snapshots in memory, and sends all its writes
//! at the end as one multi-statement query: each run row updated once, the journal events of
//! the whole batch in multi-row inserts. Every statement of sqlx's SQLite driver is a hand-off
//! to the connection's thread and back, so this turns a few round trips per operation into a
//! few per batch. Anything read that pending writes could change is read only after they are
//! sent. On PostgreSQL the same holds because the batch locks what it read: the run rows
//! (`FOR UPDATE`, in id order, the one lock order) and then the fenced task rows. A backend
//! whose operations need their own savepoints (none today) sends each operation's writes at
//! its end and caches nothing across operations.

use std::collections::HashMap;

use sqlx::{AnyConnection, Row};

use super::backend::Backend;
use super::writes::{Bind, Writes};
use super::{status_str, Error, Fence};
use crate::journal::Event as JournalEvent;
use crate::machine::RunMachine;

/// The most rows one multi-row insert or `IN` list takes (SQLite allows 32,766 parameters).
pub(crate) const CHUNK: usize = 400;

/// A run's state as this transaction sees it.
pub(crate) struct Snapshot {
    /// The machine.
    pub machine: RunMachine,
    /// The journal's head: last sequence number and hash (`None` before the first event).
    pub head: Option<(u64, String)>,
    /// When it last changed (ms); written with it.
    pub updated_at: i64,
    /// Whether it changed since it was read or written.
    pub dirty: bool,
}

/// A task row as a fence check needs it.
struct TaskRow {
    run_id: String,
    step: String,
    item: i64,
    kind: String,
    /// `None` once the row is gone or its lease was cleared.
    owner: Option<String>,
}

/// One writer transaction's reads and pending writes.
pub(crate) struct Batch {
    defer: bool,
    /// Statements waiting to be sent, in order.
    pub writes: Writes,
    runs: HashMap<String, Snapshot>,
    tasks: HashMap<i64, TaskRow>,
    events: Vec<JournalEvent>,
}

impl Batch {
    /// A batch for `backend`: deferring writes where operations need no savepoints.
    pub(crate) fn new(backend: &dyn Backend) -> Self {
        Batch {
            defer: !backend.isolate_ops(),
            writes: Writes::default(),
            runs: HashMap::new(),
            tasks: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// Reads, in one query each, the runs and fenced tasks the batch's operations will need
    /// (only where writes are deferred; elsewhere each operation reads under its own locks).
    pub(crate) async fn prefetch(
        &mut self,
        conn: &mut AnyConnection,
        backend: &dyn Backend,
        runs: Vec<&str>,
        fences: Vec<&Fence>,
    ) -> Result<(), Error> {
        if !self.defer {
            return Ok(());
        }
        let mut runs: Vec<&str> = runs
            .into_iter()
            .filter(|r| !self.runs.contains_key(*r))
            .collect();
        runs.sort_unstable();
        runs.dedup();
        for chunk in runs.chunks(CHUNK) {
            let sql = format!(
                "SELECT id, machine, last_seq, last_hash, updated_at FROM runs WHERE id IN ({}) ORDER BY id{}",
                params(chunk.len()),
                backend.lock_row()
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for r in chunk {
                query = query.bind(*r);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let id: String = row.try_get("id")?;
                let snapshot = snapshot(&row)?;
                self.runs.insert(id, snapshot);
            }
        }
        let mut ids: Vec<i64> = fences
            .iter()
            .map(|f| f.task_id)
            .filter(|id| !self.tasks.contains_key(id))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT id, run_id, step, item, kind, lease_owner FROM tasks WHERE id IN ({}) ORDER BY id{}",
                params(chunk.len()),
                backend.lock_row()
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for id in chunk {
                query = query.bind(*id);
            }
            let rows = query.fetch_all(&mut *conn).await?;
            for id in chunk {
                // A task that is gone fails its fence.
                self.tasks.insert(
                    *id,
                    TaskRow {
                        run_id: String::new(),
                        step: String::new(),
                        item: -1,
                        kind: String::new(),
                        owner: None,
                    },
                );
            }
            for row in rows {
                self.tasks.insert(row.try_get("id")?, task_row(&row)?);
            }
        }
        Ok(())
    }

    /// The run's snapshot, read (under the run row's lock where rows are locked) unless this
    /// transaction has it already.
    pub(crate) async fn run(
        &mut self,
        conn: &mut AnyConnection,
        backend: &dyn Backend,
        run_id: &str,
    ) -> Result<Option<&mut Snapshot>, Error> {
        if !self.runs.contains_key(run_id) {
            self.flush(conn, backend).await?;
            let sql = format!(
                "SELECT machine, last_seq, last_hash, updated_at FROM runs WHERE id = $1{}",
                backend.lock_row()
            );
            let Some(row) = sqlx::query(&sql)
                .bind(run_id)
                .fetch_optional(&mut *conn)
                .await?
            else {
                return Ok(None);
            };
            self.runs.insert(run_id.to_string(), snapshot(&row)?);
        }
        Ok(self.runs.get_mut(run_id))
    }

    /// Reads the runs of `ids` this transaction does not have yet, in one query (where
    /// writes are deferred).
    pub(crate) async fn load_runs(
        &mut self,
        conn: &mut AnyConnection,
        backend: &dyn Backend,
        ids: Vec<&str>,
    ) -> Result<(), Error> {
        self.prefetch(conn, backend, ids, Vec::new()).await
    }

    /// The machine of a run this transaction holds in memory, if it does.
    pub(crate) fn machine(&self, run_id: &str) -> Option<&RunMachine> {
        self.runs.get(run_id).map(|s| &s.machine)
    }

    /// A run this transaction creates, as inserted.
    pub(crate) fn created(&mut self, run_id: &str, machine: RunMachine, now: i64) {
        self.runs.insert(
            run_id.to_string(),
            Snapshot {
                machine,
                head: None,
                updated_at: now,
                dirty: false,
            },
        );
    }

    /// Whether `fence`'s claim still holds its task (locking the task row, after its run's,
    /// where rows are locked).
    pub(crate) async fn holds(
        &mut self,
        conn: &mut AnyConnection,
        backend: &dyn Backend,
        fence: &Fence,
    ) -> Result<bool, Error> {
        if let Some(t) = self.tasks.get(&fence.task_id) {
            return Ok(t.owner.as_deref() == Some(fence.lease.as_str()));
        }
        self.flush(conn, backend).await?;
        let sql = format!(
            "SELECT id, run_id, step, item, kind, lease_owner FROM tasks WHERE id = $1{}",
            backend.lock_row()
        );
        let row = sqlx::query(&sql)
            .bind(fence.task_id)
            .fetch_optional(&mut *conn)
            .await?;
        let held = match row {
            Some(row) => {
                let task = task_row(&row)?;
                let held = task.owner.as_deref() == Some(fence.lease.as_str());
                if self.defer {
                    self.tasks.insert(fence.task_id, task);
                }
                held
            }
            None => false,
        };
        Ok(held)
    }

    /// Notes that pending writes removed task `id` or cleared its lease.
    pub(crate) fn task_released(&mut self, id: i64) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.owner = None;
        }
    }

    /// Notes that pending writes removed or re-leased the tasks of `run_id` that match
    /// (`None` matches every step, item and kind).
    pub(crate) fn tasks_released(&mut self, run_id: &str, which: Option<(&str, i64, &str)>) {
        for t in self.tasks.values_mut().filter(|t| t.run_id == run_id) {
            if which
                .is_none_or(|(step, item, kind)| t.step == step && t.item == item && t.kind == kind)
            {
                t.owner = None;
            }
        }
    }

    /// Notes that task `id` was leased to `lease`.
    pub(crate) fn task_leased(&mut self, id: i64, lease: &str) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.owner = Some(lease.to_string());
        }
    }

    /// Queues journal events.
    pub(crate) fn journal(&mut self, events: Vec<JournalEvent>) {
        self.events.extend(events);
    }

    /// Ends an operation: where writes are not deferred, sends them and forgets what was
    /// read (the next operation reads under its own savepoint).
    pub(crate) async fn end_op(
        &mut self,
        conn: &mut AnyConnection,
        backend: &dyn Backend,
    ) -> Result<(), Error> {
        if !self.defer {
            self.flush(conn, backend).await?;
            self.forget();
        }
        Ok(())
    }

    /// Drops everything pending (the operation or transaction was rolled back).
    pub(crate) fn discard(&mut self) {
        self.writes = Writes::default();
        self.events.clear();
        self.forget();
    }

    fn forget(&mut self) {
        self.runs.clear();
        self.tasks.clear();
    }

    /// Sends every pending write: the statements in order, then each changed run row, then
    /// the journal events (after the rows of runs created in this batch).
    pub(crate) async fn flush(
        &mut self,
        conn: &mut AnyConnection,
        backend: &dyn Backend,
    ) -> Result<(), Error> {
        let mut changed: Vec<(&String, &mut Snapshot)> =
            self.runs.iter_mut().filter(|(_, s)| s.dirty).collect();
        changed.sort_by(|a, b| a.0.cmp(b.0));
        for (id, s) in changed {
            s.dirty = false;
            let (last_seq, last_hash) = s.head.clone().unwrap_or_default();
            self.writes.push_for(id, "UPDATE runs SET machine = $1, status = $2, updated_at = $3, last_seq = $4, last_hash = $5 WHERE id = $6",
                vec![serde_json::to_string(&s.machine).map_err(|e| Error::Corrupt(e.to_string()))?.into(),
                    status_str(s.machine.status()).into(), s.updated_at.into(), (last_seq as i64).into(), last_hash.into(), id.into()]);
        }
        let events = std::mem::take(&mut self.events);
        for chunk in events.chunks(CHUNK) {
            insert_events(&mut self.writes, chunk);
        }
        self.writes.flush(conn, backend).await
    }
}

/// `$1, $2, ... $n`.
pub(crate) fn params(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn snapshot(row: &sqlx::any::AnyRow) -> Result<Snapshot, Error> {
    let machine: RunMachine = serde_json::from_str(&row.try_get::<String, _>("machine")?)
        .map_err(|e| Error::Corrupt(e.to_string()))?;
    let last_seq: i64 = row.try_get("last_seq")?;
    let head = (last_seq > 0)
        .then(|| Ok::<_, Error>((last_seq as u64, row.try_get::<String, _>("last_hash")?)))
        .transpose()?;
    Ok(Snapshot {
        machine,
        head,
        updated_at: row.try_get("updated_at")?,
        dirty: false,
    })
}

fn task_row(row: &sqlx::any::AnyRow) -> Result<TaskRow, Error> {
    Ok(TaskRow {
        run_id: row.try_get("run_id")?,
        step: row.try_get("step")?,
        item: row.try_get("item")?,
        kind: row.try_get("kind")?,
        owner: row.try_get("lease_owner")?,
    })
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
