//! What the store does for `runbook.call`, inside the transaction of the transition that asks
//! for it: start the called run (or resume it, or report its end, when it exists already),
//! cancel it, and wake the caller when it ends. The caller's machine hears of the called run's
//! end ([`Event::ChildEnded`]) in the very transaction that ends it, so a crash cannot lose
//! the wake-up: either both commit or neither does.
//!
//! A refusal by a machine (the caller was cancelled meanwhile, the called run had ended) is
//! nothing to do; database errors fail the transaction as usual.

use serde_json::{json, Map, Value};
use sqlx::{AnyConnection, Row};
use tenure_runbook::Plan;

use super::backend::Backend;
use super::batch::Batch;
use super::tx::{create_run, transition, NewRun};
use super::{parse_status, Error};
use crate::journal::{ChainKey, EventKind};
use crate::machine::{status_name, Event, RunStatus};

/// A refusal by a machine (or a run that is gone) is nothing to do; anything else fails.
fn refusal_is_fine(result: Result<Vec<crate::machine::Action>, Error>) -> Result<(), Error> {
    match result {
        Ok(_) => Ok(()),
        Err(Error::Machine(e)) => {
            tracing::debug!("call bookkeeping refused: {e}");
            Ok(())
        }
        Err(Error::NoRun(run)) => {
            tracing::debug!("call bookkeeping: no run {run}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Who a called run's operator-like events are from.
fn by(parent: &str, step: &str, item: u32) -> String {
    if item == 0 {
        format!("run {parent} (step {step})")
    } else {
        format!("run {parent} (step {step}[{item}])")
    }
}

/// Starts the called run `run` prepared as `new`. If it exists already (the report is a
/// repeat, or an operator retried the calling step): a failed run is retried, a run that
/// ended otherwise wakes the caller at once, a run still going is left to finish.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start_child(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    parent: &str,
    step: &str,
    item: u32,
    run: &str,
    new: &NewRun,
) -> Result<(), Error> {
    // What this transaction wrote so far is read back below.
    batch.flush(conn, backend).await?;
    let existing = sqlx::query("SELECT status FROM runs WHERE id = $1")
        .bind(run)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = existing else {
        Box::pin(create_run(conn, backend, key, batch, new)).await?;
        return Ok(());
    };
    let status = parse_status(&row.try_get::<String, _>(0)?)?;
    if status == RunStatus::Failed {
        let retry = Event::Retry {
            steps: Vec::new(),
            by: by(parent, step, item),
        };
        refusal_is_fine(
            Box::pin(transition(
                conn,
                backend,
                key,
                batch,
                run,
                None,
                vec![retry],
            ))
            .await,
        )
    } else if status.is_final() {
        Box::pin(wake_caller(conn, backend, key, batch, run)).await
    } else {
        Ok(())
    }
}

/// Cancels the unfinished runs called by `parent`'s instance `step[item]`.
pub(crate) async fn cancel_children(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    parent: &str,
    step: &str,
    item: u32,
) -> Result<(), Error> {
    batch.flush(conn, backend).await?;
    let rows = sqlx::query("SELECT id FROM runs WHERE parent_run = $1 AND parent_step = $2 AND parent_item = $3 AND status IN ('queued', 'running', 'waiting')")
        .bind(parent)
        .bind(step)
        .bind(i64::from(item))
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let id: String = row.try_get(0)?;
        let cancel = Event::Cancel {
            by: by(parent, step, item),
        };
        refusal_is_fine(
            Box::pin(transition(
                conn,
                backend,
                key,
                batch,
                &id,
                None,
                vec![cancel],
            ))
            .await,
        )?;
    }
    Ok(())
}

/// `run` has ended: if a `runbook.call` started it, its caller's machine hears how.
pub(crate) async fn wake_caller(
    conn: &mut AnyConnection,
    backend: &dyn Backend,
    key: &ChainKey,
    batch: &mut Batch,
    run: &str,
) -> Result<(), Error> {
    batch.flush(conn, backend).await?;
    let row =
        sqlx::query("SELECT parent_run, parent_step, parent_item, status FROM runs WHERE id = $1")
            .bind(run)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let (Some(parent), Some(step), Some(item)) = (
        row.try_get::<Option<String>, _>("parent_run")?,
        row.try_get::<Option<String>, _>("parent_step")?,
        row.try_get::<Option<i64>, _>("parent_item")?,
    ) else {
        return Ok(());
    };
    let status = parse_status(&row.try_get::<String, _>("status")?)?;
    let plan: Plan = {
        let text: String = sqlx::query(
            "SELECT plans.plan FROM runs JOIN plans ON plans.hash = runs.plan_hash WHERE runs.id = $1",
        )
            .bind(run)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        serde_json::from_str(&text).map_err(|e| Error::Corrupt(e.to_string()))?
    };
    let (output, message) = if status == RunStatus::Succeeded {
        (outputs_of(conn, run, &plan).await?, None)
    } else {
        (
            Value::Null,
            Some(failure_of(conn, run, &plan, status).await?),
        )
    };
    let event = Event::ChildEnded {
        step,
        item: u32::try_from(item).unwrap_or(0),
        run: run.to_string(),
        status,
        output,
        message,
    };
    refusal_is_fine(
        Box::pin(transition(
            conn,
            backend,
            key,
            batch,
            &parent,
            None,
            vec![event],
        ))
        .await,
    )
}

/// The calling step's outputs: `run_id`, `status`, and the called run's step outputs by step
/// id (a list for a `for_each` step; null for a step that did not run). Sealed secrets stay
/// sealed.
async fn outputs_of(conn: &mut AnyConnection, run: &str, plan: &Plan) -> Result<Value, Error> {
    let rows =
        sqlx::query("SELECT step, item, output FROM outputs WHERE run_id = $1 ORDER BY step, item")
            .bind(run)
            .fetch_all(&mut *conn)
            .await?;
    let mut stored: Vec<(String, Value)> = Vec::with_capacity(rows.len());
    for r in rows {
        let value: Value = serde_json::from_str(&r.try_get::<String, _>("output")?)
            .map_err(|e| Error::Corrupt(e.to_string()))?;
        stored.push((r.try_get("step")?, value));
    }
    let mut steps = Map::new();
    for s in &plan.steps {
        let mine = stored
            .iter()
            .filter(|(id, _)| id == &s.id)
            .map(|(_, v)| v.clone());
        let value = if s.for_each.is_some() {
            Value::Array(mine.collect())
        } else {
            mine.into_iter().next().unwrap_or(Value::Null)
        };
        steps.insert(s.id.clone(), value);
    }
    Ok(json!({"run_id": run, "status": status_name(RunStatus::Succeeded), "outputs": steps}))
}

/// Why the called run did not succeed: its status, its failed step and that step's last error.
async fn failure_of(
    conn: &mut AnyConnection,
    run: &str,
    plan: &Plan,
    status: RunStatus,
) -> Result<String, Error> {
    let machine: String = sqlx::query("SELECT machine FROM runs WHERE id = $1")
        .bind(run)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    let machine: crate::machine::RunMachine =
        serde_json::from_str(&machine).map_err(|e| Error::Corrupt(e.to_string()))?;
    let head = format!(
        "the called run {run} ({}) ended {}",
        plan.runbook,
        status_name(status)
    );
    let Some(failed) = machine.failed_step().map(str::to_string) else {
        return Ok(head);
    };
    let rows = sqlx::query("SELECT body FROM events WHERE run_id = $1 ORDER BY seq DESC")
        .bind(run)
        .fetch_all(&mut *conn)
        .await?;
    let mut gave_up = None;
    let mut error = None;
    for r in rows {
        let Ok(kind) = serde_json::from_str::<EventKind>(&r.try_get::<String, _>(0)?) else {
            continue;
        };
        match kind {
            EventKind::AttemptFailed { step, message, .. } if step == failed => {
                error = Some(message);
                break;
            }
            EventKind::GaveUp { step, reason, .. } if step == failed && gave_up.is_none() => {
                gave_up = Some(reason)
            }
            _ => {}
        }
    }
    Ok(match error.or(gave_up) {
        Some(e) => format!("{head} at step `{failed}`: {e}"),
        None => format!("{head} at step `{failed}`"),
    })
}
