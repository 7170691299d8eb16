//! What the store keeps for `schedule` triggers: per (runbook, trigger index), the last tick
//! handled and the schedule (cron and timezone) it was recorded for. It decides nothing
//! ([`crate::machine::schedule::due`] does); it records first sight and advances the mark with
//! a compare-and-set, so of two schedulers that read the same mark only one moves it.

use std::collections::HashMap;

use sqlx::Row;

use super::{now_ms, Error, Store};

/// A schedule trigger's record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleMark {
    /// The schedule it was recorded for (`CRON @ TIMEZONE`): a changed schedule starts afresh.
    pub spec: String,
    /// The last tick handled (or the time the schedule was first seen), unix ms.
    pub last_tick: i64,
}

impl Store {
    /// Every schedule record, by (runbook, trigger index).
    pub async fn schedule_marks(&self) -> Result<HashMap<(String, u32), ScheduleMark>, Error> {
        let rows =
            sqlx::query("SELECT runbook, trigger_index, spec, last_tick FROM schedule_marks")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let index: i64 = r.try_get("trigger_index")?;
                Ok((
                    (
                        r.try_get("runbook")?,
                        u32::try_from(index).unwrap_or(u32::MAX),
                    ),
                    ScheduleMark {
                        spec: r.try_get("spec")?,
                        last_tick: r.try_get("last_tick")?,
                    },
                ))
            })
            .collect()
    }

    /// Records a schedule seen for the first time (`mark`), unless another scheduler already
    /// did. Returns whether this call recorded it.
    pub async fn schedule_first_seen(
        &self,
        runbook: &str,
        index: u32,
        mark: &ScheduleMark,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "INSERT INTO schedule_marks (runbook, trigger_index, spec, last_tick, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (runbook, trigger_index) DO NOTHING",
        )
        .bind(runbook)
        .bind(i64::from(index))
        .bind(&mark.spec)
        .bind(mark.last_tick)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a schedule's record from `from` to `to` if it still is `from` (compare-and-set).
    /// Returns whether it moved; `false` means another scheduler moved it first.
    pub async fn schedule_advance(
        &self,
        runbook: &str,
        index: u32,
        from: &ScheduleMark,
        to: &ScheduleMark,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE schedule_marks SET spec = $1, last_tick = $2, updated_at = $3 WHERE runbook = $4 AND trigger_index = $5 AND spec = $6 AND last_tick = $7",
        )
        .bind(&to.spec)
        .bind(to.last_tick)
        .bind(now_ms())
        .bind(runbook)
        .bind(i64::from(index))
        .bind(&from.spec)
        .bind(from.last_tick)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
