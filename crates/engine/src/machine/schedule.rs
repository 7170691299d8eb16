//! The one decision about `schedule` triggers: given a schedule (cron with seconds, timezone,
//! `missed`), the last tick recorded for it and the time now, which ticks start a run, how many
//! were missed, and which tick to record. Pure: the scheduler reads the record, asks this, starts
//! the runs (each with a dedup key of its tick, so several nodes start each tick once) and
//! advances the record with a compare-and-set.
//!
//! - A schedule with nothing recorded (first seen now) starts nothing: ticks before it was first
//!   seen are not its to run. `now` is recorded.
//! - Ticks at most [`ON_TIME`] old are on time: each starts a run (a restart or a database
//!   hiccup shorter than that delays ticks, it does not miss them).
//! - Older ticks after the record were missed (no scheduler ran): `run_once` starts one run, for
//!   the latest of them; `skip` starts none.
//! - Daylight saving: a wall-clock time that happens twice (clocks go back) starts once, at its
//!   first occurrence; one that does not happen (clocks go forward) has no tick that day.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use tenure_runbook::Missed;

/// How old a tick may be and still start as on time rather than missed.
pub const ON_TIME: Duration = Duration::from_secs(60);

/// Most missed ticks counted one by one (beyond, the latest is found directly).
const COUNT_LIMIT: u64 = 100_000;

/// A schedule trigger, parsed.
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: cron::Schedule,
    tz: Tz,
    missed: Missed,
}

impl Schedule {
    /// Parses a cron expression (with seconds) evaluated in the IANA zone `timezone`.
    pub fn new(cron: &str, timezone: &str, missed: Missed) -> Result<Self, String> {
        let cron = cron::Schedule::from_str(cron)
            .map_err(|e| format!("invalid cron expression `{cron}`: {e}"))?;
        let tz = Tz::from_str(timezone).map_err(|_| format!("unknown timezone `{timezone}`"))?;
        Ok(Schedule { cron, tz, missed })
    }

    /// The zone the schedule is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// What it does with missed ticks.
    pub fn missed(&self) -> Missed {
        self.missed
    }

    /// The first tick strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.ticks_after(t).next()
    }

    fn ticks_after(&self, t: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.cron
            .after(&t.with_timezone(&self.tz))
            .map(|d| d.with_timezone(&Utc))
    }

    /// The latest tick at or before `t`.
    fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let from = t + chrono::Duration::seconds(1);
        self.cron
            .after(&from.with_timezone(&self.tz))
            .rev()
            .map(|d| d.with_timezone(&Utc))
            .find(|d| *d <= t)
    }

    fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.tz).naive_local()
    }
}

/// What the scheduler does now for one schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// The ticks to start a run for, oldest first.
    pub start: Vec<DateTime<Utc>>,
    /// How many ticks were missed (older than [`ON_TIME`], after the record); at most
    /// 100 000 are counted.
    pub missed: u64,
    /// How many missed ticks start no run.
    pub skipped: u64,
    /// The tick to record once the runs are started (`None`: keep the record).
    pub record: Option<DateTime<Utc>>,
    /// The schedule's next tick after `now`.
    pub next: Option<DateTime<Utc>>,
}

/// Which ticks of `schedule` are due at `now`, given the tick recorded last (`None`: first
/// seen now).
pub fn due(schedule: &Schedule, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Due {
    let next = schedule.next_after(now);
    let nothing = |record| Due {
        start: Vec::new(),
        missed: 0,
        skipped: 0,
        record,
        next,
    };
    let Some(last) = last else {
        return nothing(Some(now));
    };
    if last >= now {
        return nothing(None);
    }
    let cutoff = now - chrono::Duration::from_std(ON_TIME).unwrap_or_default();
    let mut previous = schedule.local(last);
    let mut missed = 0u64;
    let mut latest_missed = None;
    if cutoff > last {
        for t in schedule.ticks_after(last) {
            if t > cutoff {
                break;
            }
            if missed >= COUNT_LIMIT {
                latest_missed = schedule.latest_at_or_before(cutoff).or(latest_missed);
                break;
            }
            let local = schedule.local(t);
            if local == previous {
                continue;
            }
            previous = local;
            missed += 1;
            latest_missed = Some(t);
        }
        if let Some(t) = latest_missed {
            previous = schedule.local(t);
        }
    }
    let mut on_time = Vec::new();
    for t in schedule.ticks_after(last.max(cutoff)) {
        if t > now {
            break;
        }
        let local = schedule.local(t);
        if local == previous {
            continue;
        }
        previous = local;
        on_time.push(t);
    }
    let mut start = Vec::with_capacity(on_time.len() + 1);
    let skipped = match (schedule.missed, latest_missed) {
        (Missed::RunOnce, Some(t)) => {
            start.push(t);
            missed.saturating_sub(1)
        }
        _ => missed,
    };
    let record = on_time.last().copied().or(latest_missed);
    start.extend(on_time);
    Due {
        start,
        missed,
        skipped,
        record,
        next,
    }
}
