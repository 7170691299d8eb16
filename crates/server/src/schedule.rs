//! `schedule` triggers: the scheduler that `tenure serve` and `tenure worker --runbooks` run.
//!
//! Each pass reads every schedule's record from the store, asks the engine's one decision
//! ([`tenure_engine::machine::schedule::due`]) which ticks are due, starts a run for each through
//! [`Engine::start_scheduled`] (dedup key = runbook, trigger index, tick: however many nodes
//! start a tick, one run exists for it) and then advances the record with a compare-and-set.
//! A crash between the start and the record only makes the next pass find the run again.
//!
//! The loop sleeps until the earliest next tick of all schedules, waking at least every
//! [`LIBRARY_POLL`] to look for edited runbooks (a file check, no database query): between ticks
//! it costs nothing. A database failure is logged at `warn` and the pass retried with backoff.
//! A tick whose run is refused (invalid inputs, an unknown tenant) is logged at `warn` once and
//! consumed, so a broken schedule never spins.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tenure_engine::api::Error as EngineError;
use tenure_engine::machine::schedule::{due, Schedule};
use tenure_engine::store::ScheduleMark;
use tenure_engine::Engine;
use tenure_runbook::{Plan, Trigger};

use crate::library::Library;
use crate::state::AppState;

/// How often the loop looks for edited runbooks while no tick is due.
pub const LIBRARY_POLL: Duration = Duration::from_secs(1);

/// The longest wait before a failed pass is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What one pass did.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// The runs this pass created: (runbook, tick, run id).
    pub started: Vec<(String, DateTime<Utc>, String)>,
    /// Ticks whose run another scheduler had already created.
    pub duplicates: usize,
    /// Ticks whose run was refused (logged).
    pub refused: usize,
    /// The earliest next tick of every schedule.
    pub next: Option<DateTime<Utc>>,
}

/// Starts the runs of `schedule` triggers, once per tick.
#[derive(Clone)]
pub struct Scheduler {
    state: AppState,
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Scheduler {
    /// A scheduler over the state's engine and runbook library.
    pub fn new(state: AppState) -> Self {
        Scheduler { state }
    }

    fn engine(&self) -> &Engine {
        self.state.engine()
    }

    /// One pass at `now` over every schedule trigger of `library`. Fails only when the
    /// database does (nothing is recorded past a tick whose start failed, so the next pass
    /// starts it again).
    pub async fn pass(&self, library: &Library, now: DateTime<Utc>) -> Result<Pass, EngineError> {
        let marks = self.engine().store().schedule_marks().await?;
        let mut pass = Pass::default();
        for entry in &library.entries {
            let Some(plan) = &entry.plan else { continue };
            if library.get(&entry.id).is_none() {
                tracing::debug!(runbook = %entry.id, "schedules of a runbook id declared by several files are not run");
                continue;
            }
            for (index, trigger) in plan.triggers.iter().enumerate() {
                if let Trigger::Schedule {
                    cron,
                    timezone,
                    missed,
                    ..
                } = trigger
                {
                    let schedule = match Schedule::new(cron, timezone, *missed) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(runbook = %plan.runbook, trigger = index, error = %e, "schedule ignored");
                            continue;
                        }
                    };
                    let spec = format!("{cron} @ {timezone}");
                    self.one(plan, index, &schedule, spec, &marks, now, &mut pass)
                        .await?;
                }
            }
        }
        Ok(pass)
    }

    #[allow(clippy::too_many_arguments)]
    async fn one(
        &self,
        plan: &Arc<Plan>,
        index: usize,
        schedule: &Schedule,
        spec: String,
        marks: &HashMap<(String, u32), ScheduleMark>,
        now: DateTime<Utc>,
        pass: &mut Pass,
    ) -> Result<(), EngineError> {
        let store = self.engine().store();
        let runbook = plan.runbook.as_str();
        let key_index = u32::try_from(index).unwrap_or(u32::MAX);
        let mark = marks.get(&(runbook.to_string(), key_index));
        let last = mark
            .filter(|m| m.spec == spec)
            .map(|m| from_ms(m.last_tick));
        let decision = due(schedule, last, now);
        pass.next = match (pass.next, decision.next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let fresh = ScheduleMark {
            spec: spec.clone(),
            last_tick: now.timestamp_millis(),
        };
        match mark {
            None => {
                if store
                    .schedule_first_seen(runbook, key_index, &fresh)
                    .await?
                {
                    tracing::info!(runbook, trigger = index, schedule = %spec, next = ?decision.next.map(text), "schedule first seen: ticks from now on start runs");
                }
                return Ok(());
            }
            Some(m) if m.spec != spec => {
                if store
                    .schedule_advance(runbook, key_index, m, &fresh)
                    .await?
                {
                    tracing::info!(runbook, trigger = index, schedule = %spec, was = %m.spec, "schedule changed: ticks from now on start runs");
                }
                return Ok(());
            }
            Some(_) => {}
        }
        for tick in &decision.start {
            match self
                .engine()
                .start_scheduled(plan.clone(), index, *tick)
                .await
            {
                Ok(s) if s.duplicate => pass.duplicates += 1,
                Ok(s) => {
                    tracing::info!(runbook, tick = %text(*tick), run = %s.id, "scheduled run started");
                    pass.started.push((runbook.to_string(), *tick, s.id));
                }
                Err(EngineError::Store(e)) => return Err(EngineError::Store(e)),
                Err(e) => {
                    pass.refused += 1;
                    tracing::warn!(runbook, trigger = index, tick = %text(*tick), error = %e, "scheduled run not started");
                }
            }
        }
        if let (Some(record), Some(m)) = (decision.record, mark) {
            let to = ScheduleMark {
                spec,
                last_tick: record.timestamp_millis(),
            };
            // Only the scheduler whose compare-and-set wins reports what was missed.
            if store.schedule_advance(runbook, key_index, m, &to).await? && decision.missed > 0 {
                tracing::warn!(
                    runbook,
                    trigger = index,
                    missed = decision.missed,
                    skipped = decision.skipped,
                    policy = schedule.missed().name(),
                    "ticks were missed while no scheduler ran"
                );
            }
        }
        Ok(())
    }

    /// Runs passes until `stop` completes: at each schedule's tick, when the runbooks change,
    /// and again after a failure (backing off up to 30 s). A pass under way finishes first.
    pub async fn run(self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        let mut seen: Option<Arc<Library>> = None;
        let mut next: Option<DateTime<Utc>> = None;
        let mut retry_at: Option<DateTime<Utc>> = None;
        let mut backoff = Duration::from_secs(1);
        loop {
            let library = self.state.library();
            let now = Utc::now();
            let changed = !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, &library));
            let due_now = next.is_some_and(|n| n <= now) || retry_at.is_some_and(|r| r <= now);
            if changed || due_now {
                let result = self.pass(&library, now).await;
                seen = Some(library);
                match result {
                    Ok(p) => {
                        next = p.next;
                        retry_at = None;
                        backoff = Duration::from_secs(1);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "scheduler pass failed; retrying");
                        next = None;
                        retry_at =
                            Some(now + chrono::Duration::from_std(backoff).unwrap_or_default());
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
            let now = Utc::now();
            let wake = [next, retry_at]
                .into_iter()
                .flatten()
                .min()
                .map(|t| (t - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(LIBRARY_POLL)
                .min(LIBRARY_POLL);
            tokio::select! {
                () = tokio::time::sleep(wake) => {}
                () = &mut stop => return,
            }
        }
    }
}
