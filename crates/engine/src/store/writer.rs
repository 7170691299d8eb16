//! Group commit: every write of this process goes through one writer task that applies
//! whatever is queued (transitions, claims, new runs, lease renewals) in one transaction and
//! one fsync. Each operation runs inside its own savepoint, so one refused operation (a lost
//! lease, a stale attempt) rolls back alone; everyone gets their answer only after the
//! commit is durable.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::backend::Backend;
use super::batch::Batch;
use super::tx::{self, NewRun};
use super::{Error, Fence, Task};
use crate::journal::ChainKey;
use crate::machine::{Action, Event};

/// The most operations one transaction takes.
const MAX_BATCH: usize = 256;
/// How long the writer keeps its connection with nothing to write.
const IDLE: std::time::Duration = std::time::Duration::from_secs(1);
/// The most plan hashes the writer remembers having stored.
const MAX_STORED_PLANS: usize = 4096;
/// How often an operation that hit a deadlock or serialization failure is tried again.
const MAX_TRIES: u32 = 5;

/// A write, as queued for the writer.
pub(crate) enum Op {
    Create(Box<NewRun>),
    Transition {
        run_id: String,
        fence: Option<Fence>,
        events: Vec<Event>,
        /// The run a `runbook.call` report starts (the machine's `StartChild` names it).
        child: Option<Box<NewRun>>,
    },
    Claim {
        owner: String,
        lease_ms: i64,
        limit: usize,
        /// Whether the reply carries the claimed tasks' runs and outputs.
        with_runs: bool,
    },
    Renew {
        fence: Fence,
        lease_ms: i64,
    },
    Remove {
        fence: Fence,
    },
}

/// The answer to an [`Op`].
pub(crate) enum Reply {
    Created(String, bool),
    Actions(Vec<Action>),
    Claimed(Vec<(Task, bool)>, Vec<tx::RawRun>),
    Done(bool),
}

impl Op {
    /// The run a committed operation changed, if any (for subscribers).
    fn changed_run(&self, reply: &Reply) -> Option<String> {
        match (self, reply) {
            (Op::Create(_), Reply::Created(id, false)) => Some(id.clone()),
            (Op::Transition { run_id, .. }, Reply::Actions(_)) => Some(run_id.clone()),
            _ => None,
        }
    }

    /// The runs whose attempts a committed claim started (for subscribers).
    fn claimed_runs<'a>(&self, reply: &'a Reply) -> impl Iterator<Item = &'a str> {
        let tasks = match (self, reply) {
            (Op::Claim { .. }, Reply::Claimed(tasks, _)) => tasks.as_slice(),
            _ => &[],
        };
        tasks
            .iter()
            .filter(|(t, _)| t.attempt.is_some())
            .map(|(t, _)| t.run_id.as_str())
    }

    /// Whether this operation may have created claimable work.
    fn creates_work(&self, reply: &Reply) -> bool {
        match reply {
            Reply::Created(_, existed) => !existed,
            Reply::Actions(actions) => actions.iter().any(|a| {
                matches!(
                    a,
                    Action::Prepare { .. }
                        | Action::Enqueue { .. }
                        | Action::EnqueueAt { .. }
                        | Action::SetTimer { .. }
                        | Action::Finish { .. }
                        | Action::StartChild { .. }
                        | Action::CancelChild { .. }
                )
            }),
            _ => false,
        }
    }

    /// The run this operation may create (a new run, or the run a `runbook.call` report
    /// starts).
    fn new_run(&self) -> Option<&NewRun> {
        match self {
            Op::Create(new) => Some(new),
            Op::Transition { child, .. } => child.as_deref(),
            _ => None,
        }
    }

    /// Sort key, the one lock order: a batch takes a run's rows (the run row first, then its
    /// tasks) in run id order, so two writers (two processes on PostgreSQL) never wait on
    /// each other in a cycle. Claims come last and never wait (they skip locked rows).
    fn order(&self) -> (u8, &str) {
        match self {
            Op::Create(new) => (0, new.id.as_str()),
            Op::Transition { run_id, .. } => (0, run_id.as_str()),
            Op::Renew { fence, .. } | Op::Remove { fence } => (0, fence.run_id.as_str()),
            Op::Claim { .. } => (1, ""),
        }
    }
}

struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Reply, Error>>,
}

/// The handle callers queue writes on.
#[derive(Clone)]
pub(crate) struct Writer {
    queue: mpsc::UnboundedSender<Job>,
}

impl Writer {
    /// Starts the writer task on its own connection.
    pub(crate) fn start(
        pool: AnyPool,
        backend: Arc<dyn Backend>,
        wake: watch::Sender<u64>,
        key: ChainKey,
        changed: broadcast::Sender<String>,
    ) -> Writer {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, backend, jobs, wake, key, changed));
        Writer { queue }
    }

    /// Queues a write and waits until it is committed (or refused).
    pub(crate) async fn submit(&self, op: Op) -> Result<Reply, Error> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { op, reply })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

async fn run(
    pool: AnyPool,
    backend: Arc<dyn Backend>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    wake: watch::Sender<u64>,
    key: ChainKey,
    changed: broadcast::Sender<String>,
) {
    // The writer keeps its connection while there is work: the pool hands its idle
    // connections out in turn, and on SQLite a connection other than the last writer's finds
    // the database changed and reads every page it needs again (its page cache is dropped).
    let mut held: Option<PoolConnection<Any>> = None;
    // The plan hashes this writer stored ahead of its transactions (PostgreSQL).
    let mut stored = HashSet::new();
    loop {
        let first = if held.is_some() {
            match tokio::time::timeout(IDLE, jobs.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(_) => {
                    // Idle: the connection goes back to the pool.
                    held = None;
                    continue;
                }
            }
        } else {
            match jobs.recv().await {
                Some(job) => job,
                None => break,
            }
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batch.sort_by(|a, b| a.op.order().cmp(&b.op.order()));
        let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|j| (j.op, j.reply)).unzip();
        let mut tries = 0;
        let outcome = loop {
            let conn = match held.take() {
                Some(conn) => Ok(conn),
                None => pool.acquire().await,
            };
            let outcome = match conn {
                Ok(mut conn) => {
                    let outcome =
                        commit(&mut conn, backend.as_ref(), &key, &ops, &mut stored).await;
                    if outcome.is_err() {
                        // Nothing of this batch is committed; the connection may be broken,
                        // so it is closed rather than reused.
                        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                        conn.close_on_drop();
                    } else {
                        held = Some(conn);
                    }
                    outcome
                }
                Err(e) => Err(e.into()),
            };
            match outcome {
                // A deadlock or serialization failure (the one lock order leaves only rare
                // cases: a queued run started behind another): the whole batch again, after
                // the other transaction finished.
                Err(e) if e.is_conflict() && tries < MAX_TRIES => {
                    tries += 1;
                    tracing::debug!("batch conflicted, trying again: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(5 * u64::from(tries)))
                        .await;
                }
                other => break other,
            }
        };
        match outcome {
            Ok(results) => {
                let woke = ops
                    .iter()
                    .zip(&results)
                    .any(|(op, r)| r.as_ref().is_ok_and(|r| op.creates_work(r)));
                if woke {
                    wake.send_modify(|n| *n = n.wrapping_add(1));
                }
                for (op, r) in ops.iter().zip(&results) {
                    let Ok(r) = r else { continue };
                    // Nobody listening is fine.
                    if let Some(run) = op.changed_run(r) {
                        let _ = changed.send(run);
                    }
                    for run in op.claimed_runs(r) {
                        let _ = changed.send(run.to_string());
                    }
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                // Everyone hears why and may try again.
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(Error::Commit(message.clone())));
                }
            }
        }
    }
}

/// Applies a batch in one transaction. The outer error means nothing was committed.
async fn commit(
    conn: &mut PoolConnection<Any>,
    backend: &dyn Backend,
    key: &ChainKey,
    ops: &[Op],
    stored: &mut HashSet<String>,
) -> Result<Vec<Result<Reply, Error>>, Error> {
    if backend.lock_key().is_some() {
        // Where several processes write at once (PostgreSQL), the plans of new runs are
        // stored before the transaction, each in its own: a plan row inserted inside it would
        // make another process inserting the same plan wait for this whole transaction while
        // holding its own locks (a dedup or concurrency key, a run), and this one wait for
        // those: a deadlock. Plans are immutable and named by their hash, so one stored for a
        // batch that then fails is harmless.
        // Plans are never deleted: one this writer stored is not sent again.
        if stored.len() > MAX_STORED_PLANS {
            stored.clear();
        }
        for new in ops.iter().filter_map(Op::new_run) {
            if stored.contains(&new.plan_hash) {
                continue;
            }
            sqlx::query(
                "INSERT INTO plans (hash, plan) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
            )
            .bind(&new.plan_hash)
            .bind(&new.plan_json)
            .execute(&mut **conn)
            .await?;
            stored.insert(new.plan_hash.clone());
        }
    }
    sqlx::query(backend.begin()).execute(&mut **conn).await?;
    let mut batch = Batch::new(backend);
    // Where writes are deferred: the runs and fences of every transition, in one read each
    // (on PostgreSQL, locking them in id order). The runs of renewals and removals are locked
    // with them, so their task rows are only ever waited for under their run's lock.
    let mut runs = Vec::new();
    let mut fences = Vec::new();
    for op in ops {
        match op {
            Op::Transition { run_id, fence, .. } => {
                runs.push(run_id.as_str());
                fences.extend(fence.as_ref());
            }
            Op::Renew { fence, .. } | Op::Remove { fence } => runs.push(fence.run_id.as_str()),
            Op::Create(_) | Op::Claim { .. } => {}
        }
    }
    batch.prefetch(conn, backend, runs, fences).await?;
    let mut results = Vec::with_capacity(ops.len());
    let mut woke = false;
    for op in ops {
        let result = if backend.isolate_ops() {
            isolated(conn, backend, key, &mut batch, op).await?
        } else {
            match apply(conn, backend, key, &mut batch, op).await {
                // A refusal (lost lease, stale attempt) happens before the operation writes.
                Err(e @ (Error::Db(_) | Error::Migrate(_))) => return Err(e),
                other => other,
            }
        };
        if let Ok(reply) = &result {
            woke |= op.creates_work(reply);
        }
        results.push(result);
    }
    batch.flush(conn, backend).await?;
    if woke {
        if let Some(wake) = backend.wake_others() {
            sqlx::query(wake).execute(&mut **conn).await?;
        }
    }
    sqlx::query("COMMIT").execute(&mut **conn).await?;
    Ok(results)
}

/// Applies one operation inside a savepoint, retrying it after a deadlock or serialization
/// failure. The outer error means the transaction itself is broken.
async fn isolated(
    conn: &mut PoolConnection<Any>,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    op: &Op,
) -> Result<Result<Reply, Error>, Error> {
    let mut tries = 0;
    loop {
        sqlx::query("SAVEPOINT op").execute(&mut **conn).await?;
        let mut result = apply(conn, backend, key, batch, op).await;
        if result.is_ok() {
            // Its writes go out inside its savepoint.
            if let Err(e) = batch.end_op(conn, backend).await {
                result = Err(e);
            }
        }
        if result.is_ok() {
            sqlx::query("RELEASE SAVEPOINT op")
                .execute(&mut **conn)
                .await?;
        } else {
            batch.discard();
            sqlx::query("ROLLBACK TO SAVEPOINT op")
                .execute(&mut **conn)
                .await?;
            sqlx::query("RELEASE SAVEPOINT op")
                .execute(&mut **conn)
                .await?;
        }
        match result {
            Err(e) if e.is_conflict() && tries < MAX_TRIES => {
                // Let the other transaction finish before trying again.
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10 * u64::from(tries))).await;
            }
            other => return Ok(other),
        }
    }
}

async fn apply(
    conn: &mut PoolConnection<Any>,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    op: &Op,
) -> Result<Reply, Error> {
    match op {
        Op::Create(new) => tx::create_run(conn, backend, key, batch, new)
            .await
            .map(|(id, existed)| Reply::Created(id, existed)),
        Op::Transition {
            run_id,
            fence,
            events,
            child,
        } => tx::transition_child(
            conn,
            backend,
            key,
            batch,
            run_id,
            fence.as_ref(),
            events.clone(),
            child.as_deref(),
        )
        .await
        .map(Reply::Actions),
        Op::Claim {
            owner,
            lease_ms,
            limit,
            with_runs,
        } => {
            let tasks = tx::claim(conn, backend, key, batch, owner, *lease_ms, *limit).await?;
            let runs = if *with_runs {
                tx::claimed_runs(conn, backend, batch, &tasks).await?
            } else {
                Vec::new()
            };
            Ok(Reply::Claimed(tasks, runs))
        }
        Op::Renew { fence, lease_ms } => tx::renew(conn, backend, batch, fence, *lease_ms)
            .await
            .map(Reply::Done),
        Op::Remove { fence } => tx::remove_task(conn, backend, batch, fence)
            .await
            .map(Reply::Done),
    }
}
