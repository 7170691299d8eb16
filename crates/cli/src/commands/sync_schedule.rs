//! Scheduled people syncs in `tenure serve`: every `[[sync]]` with a `schedule` is synced at
//! its ticks, decided by the engine's pure [`due`] over a schedule mark in the store (key
//! `sync:{id}`), the mechanism `schedule` triggers use. However many nodes serve, the one whose
//! compare-and-set advances the mark syncs that tick; the others see it taken. (The mark moves
//! before the sync: a node that dies mid-sync loses that tick, and the next one syncs again;
//! runs started twice are impossible anyway, their dedup keys see to it.) Missed ticks make one
//! sync, not one per tick. A scheduled sync applies (mode `scheduled`), reading the tenant in
//! full every `full_every` (default 24 h) and its changes in between; a sync that cannot be
//! made is recorded as `failed` with its reason, so the web UI shows it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tenure_engine::machine::schedule::{due, Schedule};
use tenure_engine::people::SyncRecord;
use tenure_engine::store::ScheduleMark;
use tenure_engine::Engine;
use tenure_people::config::SyncSource;
use tenure_people::sync::SyncOptions;
use tenure_runbook::Missed;

use crate::tenants;

/// The default of `full_every`.
pub const FULL_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The longest the loop sleeps before looking again.
const POLL: Duration = Duration::from_secs(30);

/// The mark key of a source's schedule.
pub fn mark_key(id: &str) -> String {
    format!("sync:{id}")
}

/// Syncs the scheduled `[[sync]]` sources at their ticks.
pub struct SyncScheduler {
    /// The engine.
    pub engine: Engine,
    /// The sources (only those with a `schedule` are synced).
    pub sources: Vec<SyncSource>,
    /// Where relative source paths are read from (the configuration's directory).
    pub base: PathBuf,
    /// The directory runbooks are compiled from.
    pub runbooks: PathBuf,
    /// The vendors (Graph).
    pub vendors: tenure_kinds::Vendors,
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl SyncScheduler {
    /// One pass at `now`: the sources whose tick is due are synced (by this node if it wins
    /// the mark). Returns the earliest next tick, and the ids synced.
    pub async fn pass(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Option<DateTime<Utc>>, Vec<String>), tenure_engine::store::Error> {
        let store = self.engine.store();
        let marks = store.schedule_marks().await?;
        let mut next: Option<DateTime<Utc>> = None;
        let mut synced = Vec::new();
        for src in &self.sources {
            let Some(cron) = &src.schedule else { continue };
            let zone = src.timezone.clone().unwrap_or_else(|| "UTC".into());
            let schedule = match Schedule::new(cron, &zone, Missed::RunOnce) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(source = %src.id, error = %e, "sync schedule ignored");
                    continue;
                }
            };
            let spec = format!("{cron} @ {zone}");
            let key = mark_key(&src.id);
            let mark = marks.get(&(key.clone(), 0));
            let last = mark
                .filter(|m| m.spec == spec)
                .map(|m| from_ms(m.last_tick));
            let decision = due(&schedule, last, now);
            next = match (next, decision.next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let fresh = ScheduleMark {
                spec: spec.clone(),
                last_tick: now.timestamp_millis(),
            };
            let Some(m) = mark else {
                store.schedule_first_seen(&key, 0, &fresh).await?;
                continue;
            };
            if m.spec != spec {
                store.schedule_advance(&key, 0, m, &fresh).await?;
                continue;
            }
            let (Some(tick), Some(record)) = (decision.start.last(), decision.record) else {
                continue;
            };
            let to = ScheduleMark {
                spec,
                last_tick: record.timestamp_millis(),
            };
            if !store.schedule_advance(&key, 0, m, &to).await? {
                continue; // another node took this tick
            }
            tracing::info!(source = %src.id, tick = %tick, "scheduled people sync");
            self.sync(src).await;
            synced.push(src.id.clone());
        }
        Ok((next, synced))
    }

    async fn sync(&self, src: &SyncSource) {
        let started_ms = Utc::now().timestamp_millis();
        let failed = |message: String| SyncRecord {
            id: uuid::Uuid::new_v4().to_string(),
            source: src.id.clone(),
            tenant: src.tenant.clone(),
            started_ms,
            finished_ms: Some(Utc::now().timestamp_millis()),
            mode: "scheduled".into(),
            status: "failed".into(),
            summary: message.clone(),
            plan: json!(null),
            outcome: json!({"runs": [], "links": [], "errors": [message]}),
            requests: 0,
        };
        let Some(tenant) = tenants::find(&src.tenant) else {
            let rec = failed(format!("no managed tenant `{}`", src.tenant));
            let _ = self.engine.save_sync(&rec).await;
            return;
        };
        let full_every = src.full_every.as_ref().map(|d| d.0).unwrap_or(FULL_EVERY);
        let options = SyncOptions {
            apply: true,
            mode: "scheduled".into(),
            trigger: tenure_engine::SCHEDULE_SOURCE.into(),
            by: Some("schedule".into()),
            full_every_ms: Some(full_every.as_millis() as i64),
            ..SyncOptions::default()
        };
        let dir = self.runbooks.clone();
        let resolver = move |id: &str| super::sync::resolve_in(&dir, id);
        match tenure_people::sync::sync(
            &self.engine,
            &self.vendors,
            src,
            &self.base,
            &tenant.to_json(),
            &resolver,
            &options,
        )
        .await
        {
            Ok(s) => {
                tracing::info!(source = %src.id, status = %s.record.status, summary = %s.record.summary, "people sync done")
            }
            Err(tenure_people::sync::SyncError::Apply(e)) => {
                // Recorded by the sync itself.
                tracing::warn!(source = %src.id, error = %e, "people sync not applied");
            }
            Err(e) => {
                tracing::warn!(source = %src.id, error = %e, "people sync failed");
                let _ = self.engine.save_sync(&failed(e.to_string())).await;
            }
        }
    }

    /// Passes until `stop` is set: at each tick, and at least every 30 s.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = match self.pass(Utc::now()).await {
                Ok((next, _)) => {
                    backoff = Duration::from_secs(1);
                    next.map(|n| (n - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                        .unwrap_or(POLL)
                        .min(POLL)
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "sync scheduler pass failed");
                    let b = backoff;
                    backoff = (backoff * 2).min(POLL);
                    b
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

/// The people sync scheduler running in this process.
pub struct RunningSyncs {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSyncs {
    /// Stops it (a sync under way finishes first).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the scheduler of the configuration's `[[sync]]` sources that have a `schedule`
/// (none: nothing is started), compiling runbooks from `runbooks`.
pub fn spawn(engine: Engine, runbooks: &std::path::Path) -> anyhow::Result<Option<RunningSyncs>> {
    let config = crate::config::get();
    let sources: Vec<SyncSource> = config
        .sync
        .iter()
        .filter(|s| s.schedule.is_some())
        .cloned()
        .collect();
    if sources.is_empty() {
        return Ok(None);
    }
    super::batch_approvers::check(&sources, runbooks)?;
    let scheduler = Arc::new(SyncScheduler {
        engine,
        sources,
        base: config.dir.clone(),
        runbooks: runbooks.to_path_buf(),
        vendors: config.vendors()?,
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(scheduler.run(stopped));
    Ok(Some(RunningSyncs { stop, task }))
}
