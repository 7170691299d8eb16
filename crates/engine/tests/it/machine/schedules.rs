//! The data-driven corpus of schedule decisions (`tests/data/schedules.cases`): for each cron,
//! timezone, `missed`, last tick recorded and time now, which ticks [`due`] starts, how many were
//! missed and skipped, what it records and the next tick, written to `schedules.snap`
//! (`UPDATE_EXPECT=1` rewrites it). Daylight-saving changes and long downtimes included.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use tenure_engine::machine::schedule::{due, Schedule};
use tenure_runbook::Missed;

use super::traces::check;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("time `{s}`: {e}"))
        .with_timezone(&Utc)
}

fn show(t: DateTime<Utc>, s: &Schedule) -> String {
    format!(
        "{} ({})",
        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        t.with_timezone(&s.timezone())
            .format("%a %Y-%m-%d %H:%M:%S %Z")
    )
}

#[test]
fn schedule_corpus_matches_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let text = std::fs::read_to_string(dir.join("schedules.cases")).unwrap();
    let mut out = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(f.len(), 6, "case line `{line}` needs 6 fields");
        let missed = Missed::parse(f[3]).unwrap_or_else(|| panic!("missed `{}`", f[3]));
        let schedule = Schedule::new(f[1], f[2], missed).unwrap();
        let last = (f[4] != "-").then(|| at(f[4]));
        let now = at(f[5]);
        let d = due(&schedule, last, now);
        writeln!(out, "## {}: `{}` in {}, missed: {}", f[0], f[1], f[2], f[3]).unwrap();
        match last {
            Some(l) => writeln!(out, "last  {}", show(l, &schedule)).unwrap(),
            None => writeln!(out, "last  (first seen now)").unwrap(),
        }
        writeln!(out, "now   {}", show(now, &schedule)).unwrap();
        if d.start.is_empty() {
            writeln!(out, "start nothing").unwrap();
        }
        for t in &d.start {
            writeln!(out, "start {}", show(*t, &schedule)).unwrap();
        }
        writeln!(out, "missed {}, skipped {}", d.missed, d.skipped).unwrap();
        match d.record {
            Some(r) => writeln!(out, "record {}", show(r, &schedule)).unwrap(),
            None => writeln!(out, "record unchanged").unwrap(),
        }
        if let Some(n) = d.next {
            writeln!(out, "next  {}", show(n, &schedule)).unwrap();
        }
        // Invariants every decision keeps.
        assert!(
            d.start.windows(2).all(|w| w[0] < w[1]),
            "{}: ticks in order",
            f[0]
        );
        assert!(
            d.start.iter().all(|t| *t <= now),
            "{}: no future tick",
            f[0]
        );
        if let Some(l) = last {
            assert!(
                d.start.iter().all(|t| *t > l),
                "{}: only ticks after the record",
                f[0]
            );
        } else {
            assert!(d.start.is_empty(), "{}: first seen starts nothing", f[0]);
        }
        assert!(d.skipped <= d.missed);
        out.push('\n');
    }
    if let Err(e) = check(&dir.join("schedules.snap"), &out) {
        panic!("{e}");
    }
}

/// Deciding again with the recorded tick starts nothing more: a scheduler that starts the
/// ticks, records, and asks again (the same instant, or any time before the next tick) never
/// starts a tick twice.
#[test]
fn deciding_again_after_recording_starts_nothing() {
    for missed in [Missed::RunOnce, Missed::Skip] {
        let s = Schedule::new("*/7 * * * * *", "Europe/London", missed).unwrap();
        let mut last = Some(at("2026-03-29T00:59:00Z"));
        let mut now = at("2026-03-29T00:59:00Z");
        let mut started = Vec::new();
        // Through London's change to summer time, in uneven steps (some past ON_TIME).
        for step_ms in [900, 3_100, 7_000, 61_000, 500, 250_000, 13_000, 1_000] {
            for _ in 0..20 {
                now += chrono::Duration::milliseconds(step_ms);
                let d = due(&s, last, now);
                started.extend(d.start.iter().copied());
                if d.record.is_some() {
                    last = d.record;
                }
                assert!(due(&s, last, now).start.is_empty(), "asked again at {now}");
            }
        }
        let mut unique = started.clone();
        unique.dedup();
        assert_eq!(unique, started, "no tick started twice ({missed:?})");
    }
}
