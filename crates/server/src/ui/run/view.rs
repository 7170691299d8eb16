//! What a run page shows, worked out from the run's machine and its journal (read through the
//! Engine API): each step's state for the DAG overlay, every attempt with its start, end and
//! outcome for the timeline, and each journal event as a log line. Reading only: nothing here
//! decides.

use std::collections::HashMap;

use tenure_engine::journal::{Event, EventKind};
use tenure_engine::machine::{undo_id, InstanceState, RunMachine, Stage, StepPhase};
use tenure_engine::store::RunRecord;
use tenure_graph::StepOverlay;

/// An RFC 3339 journal time as unix milliseconds.
pub fn ms(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|d| d.timestamp_millis())
}

/// The step (and item) an event is about, if any.
pub fn step_of(kind: &EventKind) -> Option<(&str, Option<u32>)> {
    use EventKind as K;
    match kind {
        K::StepReady { step, item }
        | K::AttemptStarted { step, item, .. }
        | K::RequestSummary { step, item, .. }
        | K::AttemptSucceeded { step, item, .. }
        | K::AttemptFailed { step, item, .. }
        | K::AttemptDeferred { step, item, .. }
        | K::GaveUp { step, item, .. }
        | K::StepSkipped { step, item, .. }
        | K::ChildRunStarted { step, item, .. }
        | K::ChildRunEnded { step, item, .. }
        | K::TimerSet { step, item, .. } => Some((step, *item)),
        K::ApprovalRequested { step, .. }
        | K::ApprovalDecided { step, .. }
        | K::ApprovalResolved { step, .. }
        | K::TimerFired { step } => Some((step, None)),
        K::OnFailureStarted { failed_step } => Some((failed_step, None)),
        K::RunCreated { .. }
        | K::InputsValidated { .. }
        | K::RunCancelled { .. }
        | K::RunRetried { .. }
        | K::RollbackStarted { .. }
        | K::RunFinished { .. } => None,
    }
}

/// Where a step of the run stands, in one word: `pending`, `running`, `retry_wait`,
/// `waiting` (an approval or a timer), `succeeded`, `failed`, `skipped`, `cancelled`.
pub fn step_state(m: &RunMachine, id: &str) -> String {
    let state = match m.phase(id) {
        None | Some(StepPhase::Blocked) => "pending",
        Some(StepPhase::Preparing) => "running",
        Some(StepPhase::Succeeded) => "succeeded",
        Some(StepPhase::Failed) => "failed",
        Some(StepPhase::Skipped) => "skipped",
        Some(StepPhase::Cancelled) => "cancelled",
        Some(StepPhase::Active) => {
            let is = |f: fn(&InstanceState) -> bool| m.instances(id).iter().any(f);
            if is(|s| matches!(s, InstanceState::Running { .. } | InstanceState::Ready)) {
                "running"
            } else if is(|s| matches!(s, InstanceState::RetryWait { .. })) {
                "retry_wait"
            } else if is(|s| matches!(s, InstanceState::Parked { .. })) {
                "waiting"
            } else if is(|s| matches!(s, InstanceState::Failed)) {
                "failed"
            } else {
                "running"
            }
        }
    };
    state.to_string()
}

/// The state a step shows once a rollback touched it: `compensated`, `compensating` or
/// `compensation_failed`; `None` while its compensation has not run.
fn compensation_state(m: &RunMachine, id: &str) -> Option<&'static str> {
    match m.phase(&undo_id(id))? {
        StepPhase::Succeeded => Some("compensated"),
        StepPhase::Active | StepPhase::Preparing => Some("compensating"),
        StepPhase::Failed => Some("compensation_failed"),
        _ => None,
    }
}

/// The first and last time the journal mentions each step (unix ms).
fn spans(events: &[Event]) -> HashMap<&str, (Option<i64>, i64)> {
    let mut out: HashMap<&str, (Option<i64>, i64)> = HashMap::new();
    for e in events {
        let (Some((step, _)), Some(at)) = (step_of(&e.kind), ms(&e.at)) else {
            continue;
        };
        let entry = out.entry(step).or_insert((None, at));
        if matches!(e.kind, EventKind::AttemptStarted { .. }) && entry.0.is_none() {
            entry.0 = Some(at);
        }
        entry.1 = entry.1.max(at);
    }
    out
}

/// Each step's overlay for the DAG picture: state, attempts, duration (from its first attempt
/// to its last event, or to `now` while it is in flight) and items done of a `for_each`.
pub fn overlay(r: &RunRecord, events: &[Event], now: i64) -> HashMap<String, StepOverlay> {
    let m = &r.machine;
    let spans = spans(events);
    let mut out = HashMap::new();
    for stage in [Stage::Main, Stage::OnFailure] {
        for id in m.steps_of(stage) {
            let instances = m.instances(id);
            let mut state = step_state(m, id);
            if let Some(c) = compensation_state(m, id) {
                state = c.to_string();
            }
            let attempts = if instances.is_empty() {
                m.attempts(id, 0)
            } else {
                (0..instances.len() as u32).map(|i| m.attempts(id, i)).sum()
            };
            let in_flight = matches!(state.as_str(), "running" | "retry_wait" | "waiting")
                && !r.status.is_final();
            let duration_ms = spans.get(id).and_then(|(start, last)| {
                let end = if in_flight { now } else { *last };
                start.map(|s| end - s)
            });
            let items = r.plan.step(id).and_then(|s| s.for_each.as_ref()).map(|_| {
                let done = instances.iter().filter(|s| s.is_terminal()).count() as u32;
                (done, instances.len() as u32)
            });
            out.insert(
                id.to_string(),
                StepOverlay {
                    state,
                    attempts,
                    duration_ms,
                    items,
                },
            );
        }
    }
    out
}

/// One attempt of a step instance, for the timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Step id (`undo:STEP` for a compensation).
    pub step: String,
    /// Item of a `for_each` step.
    pub item: Option<u32>,
    /// Attempt number.
    pub attempt: u32,
    /// Started (unix ms).
    pub start: i64,
    /// Ended (unix ms; `now` while in flight).
    pub end: i64,
    /// `succeeded`, `failed`, `deferred`, `running`, `waiting`, `stopped`.
    pub outcome: &'static str,
}

/// Every attempt in the journal, in the order they started. An attempt ends with its
/// success, failure or deferral, an approval's resolution, a timer firing or the end of the
/// run it called; one still open
/// is `running` or `waiting` until `now`, or `stopped` at the last event if the run ended.
pub fn attempts(events: &[Event], now: i64, finished: bool) -> Vec<Attempt> {
    let mut out: Vec<Attempt> = Vec::new();
    let mut open: HashMap<(String, Option<u32>), usize> = HashMap::new();
    let mut last = now;
    for e in events {
        let Some(at) = ms(&e.at) else { continue };
        last = at;
        let mut close = |step: &str, item: Option<u32>, outcome: &'static str| {
            let keys: Vec<(String, Option<u32>)> = open
                .keys()
                .filter(|(s, i)| s == step && (item.is_none() || *i == item))
                .cloned()
                .collect();
            for k in keys {
                if let Some(i) = open.remove(&k) {
                    out[i].end = at;
                    out[i].outcome = outcome;
                }
            }
        };
        match &e.kind {
            EventKind::AttemptStarted {
                step,
                item,
                attempt,
                ..
            } => {
                open.insert((step.clone(), *item), out.len());
                out.push(Attempt {
                    step: step.clone(),
                    item: *item,
                    attempt: *attempt,
                    start: at,
                    end: at,
                    outcome: "running",
                });
            }
            EventKind::AttemptSucceeded { step, item, .. } => close(step, *item, "succeeded"),
            EventKind::AttemptFailed { step, item, .. } => close(step, *item, "failed"),
            EventKind::AttemptDeferred { step, item, .. } => close(step, *item, "deferred"),
            EventKind::GaveUp { step, item, .. } => close(step, *item, "failed"),
            EventKind::ApprovalResolved { step, decision, .. } => close(
                step,
                None,
                if decision == "approved" {
                    "succeeded"
                } else {
                    "failed"
                },
            ),
            EventKind::TimerFired { step } => close(step, None, "succeeded"),
            EventKind::ChildRunEnded {
                step, item, status, ..
            } => close(
                step,
                *item,
                if status == "succeeded" {
                    "succeeded"
                } else {
                    "failed"
                },
            ),
            EventKind::ApprovalRequested { step, .. }
            | EventKind::TimerSet {
                step, item: None, ..
            } => {
                for ((s, _), &i) in &open {
                    if s == step {
                        out[i].outcome = "waiting";
                    }
                }
            }
            EventKind::TimerSet {
                step,
                item: Some(item),
                reason,
                ..
            } if reason.as_deref() != Some("retry after an error") => {
                if let Some(&i) = open.get(&(step.clone(), Some(*item))) {
                    out[i].outcome = "waiting";
                }
            }
            _ => {}
        }
    }
    for &i in open.values() {
        if finished {
            out[i].end = last;
            out[i].outcome = "stopped";
        } else {
            out[i].end = now;
        }
    }
    out
}

/// One journal event as a log line: the text after the time and the step, as the journal
/// records it (outputs, inputs and request bodies are left out; the journal has secrets as
/// `***` already). `each`: the event's step is a `for_each` step, so its item is named.
pub fn log_text(kind: &EventKind, each: bool) -> String {
    use EventKind as K;
    let item = |i: &Option<u32>| match i {
        Some(i) if each => format!("item {i}: "),
        _ => String::new(),
    };
    match kind {
        K::RunCreated {
            runbook,
            version,
            trigger,
            ..
        } => format!("run created from {runbook} v{version} ({trigger})"),
        K::InputsValidated { .. } => "inputs validated".into(),
        K::StepReady { item: i, .. } => format!("{}ready", item(i)),
        K::AttemptStarted {
            item: i,
            attempt,
            owner,
            ..
        } => format!("{}attempt {attempt} started by {owner}", item(i)),
        K::RequestSummary {
            item: i,
            method,
            path,
            status,
            duration_ms,
            ..
        } => format!(
            "{}{method} {path} → {} in {duration_ms} ms",
            item(i),
            status.map_or("no answer".into(), |s| s.to_string())
        ),
        K::AttemptSucceeded {
            item: i, attempt, ..
        } => format!("{}attempt {attempt} succeeded", item(i)),
        K::AttemptFailed {
            item: i,
            attempt,
            class,
            code,
            message,
            ..
        } => format!(
            "{}attempt {attempt} failed ({class} {code}): {message}",
            item(i)
        ),
        K::AttemptDeferred {
            item: i,
            attempt,
            reason,
            ..
        } => format!("{}attempt {attempt}: not ready yet ({reason})", item(i)),
        K::GaveUp {
            item: i, reason, ..
        } => format!("{}failed for good: {reason}", item(i)),
        K::StepSkipped {
            item: i, reason, ..
        } => format!("{}skipped: {reason}", item(i)),
        K::ApprovalRequested {
            approvers,
            expires_at,
            requested_by,
            notified,
            ..
        } => {
            let mut line = format!("asks {} (expires {expires_at})", approvers.join(", "));
            if let Some(by) = requested_by {
                line.push_str(&format!("; requested by {by}"));
            }
            if !notified.is_empty() {
                line.push_str(&format!("; notified: {}", notified.join(", ")));
            }
            line
        }
        K::ApprovalDecided {
            approver,
            decision,
            source,
            ..
        } => format!("{approver} chose {decision} ({source})"),
        K::ApprovalResolved {
            decision,
            decided_by,
            ..
        } => {
            if decided_by.is_empty() {
                decision.clone()
            } else {
                format!("{decision} ({})", decided_by.join(", "))
            }
        }
        K::ChildRunStarted {
            item: i,
            runbook,
            run,
            ..
        } => format!("{}called runbook {runbook}: run {run}", item(i)),
        K::ChildRunEnded {
            item: i,
            run,
            status,
            error,
            ..
        } => match error {
            Some(e) => format!("{}called run {run} ended {status}: {e}", item(i)),
            None => format!("{}called run {run} ended {status}", item(i)),
        },
        K::TimerSet {
            at,
            item: i,
            reason,
            ..
        } => match reason {
            Some(r) => format!("{}waits until {at}: {r}", item(i)),
            None => format!("{}sleeps until {at}", item(i)),
        },
        K::TimerFired { .. } => "woke".into(),
        K::OnFailureStarted { .. } => "failed the run: on_failure steps start".into(),
        K::RunCancelled { by } => format!("run cancelled by {by}"),
        K::RunRetried { steps, by } => {
            if steps.is_empty() {
                format!("run retried by {by} (every failed step)")
            } else {
                format!("run retried by {by} (steps {})", steps.join(", "))
            }
        }
        K::RollbackStarted { by } => format!("rollback started by {by}"),
        K::RunFinished { status, error } => match error {
            Some(e) => format!("run finished {status}: {e}"),
            None => format!("run finished {status}"),
        },
    }
}

/// The failed steps an operator may retry one by one (the group the run is in: the main
/// steps, or the compensations during a rollback).
pub fn failed_steps(m: &RunMachine) -> Vec<String> {
    let group = if m.stage() == Stage::Rollback {
        Stage::Rollback
    } else {
        Stage::Main
    };
    m.steps_of(group)
        .into_iter()
        .filter(|id| m.phase(id) == Some(StepPhase::Failed))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, at_ms: i64, kind: EventKind) -> Event {
        Event {
            run_id: "r".into(),
            seq,
            at: chrono::DateTime::from_timestamp_millis(at_ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            kind,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn started(step: &str, attempt: u32) -> EventKind {
        EventKind::AttemptStarted {
            step: step.into(),
            item: Some(0),
            attempt,
            owner: "w".into(),
        }
    }

    #[test]
    fn attempts_end_with_their_outcome() {
        let events = vec![
            ev(1, 1_000, started("a", 1)),
            ev(
                2,
                1_400,
                EventKind::AttemptFailed {
                    step: "a".into(),
                    item: Some(0),
                    attempt: 1,
                    class: "transient".into(),
                    code: "x".into(),
                    message: "m".into(),
                    retry_after_ms: None,
                },
            ),
            ev(3, 2_000, started("a", 2)),
            ev(
                4,
                2_500,
                EventKind::AttemptSucceeded {
                    step: "a".into(),
                    item: Some(0),
                    attempt: 2,
                    output: serde_json::json!({}),
                },
            ),
            ev(5, 3_000, started("gate", 1)),
            ev(
                6,
                3_001,
                EventKind::ApprovalRequested {
                    step: "gate".into(),
                    approvers: vec!["x".into()],
                    expires_at: "later".into(),
                    requested_by: None,
                    notified: vec![],
                },
            ),
        ];
        let a = attempts(&events, 9_000, false);
        let seen: Vec<(&str, u32, i64, i64, &str)> = a
            .iter()
            .map(|a| (a.step.as_str(), a.attempt, a.start, a.end, a.outcome))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("a", 1, 1_000, 1_400, "failed"),
                ("a", 2, 2_000, 2_500, "succeeded"),
                ("gate", 1, 3_000, 9_000, "waiting"),
            ]
        );
        // A `runbook.call` attempt ends with the run it called.
        let call = vec![
            ev(1, 100, started("call", 1)),
            ev(
                2,
                900,
                EventKind::ChildRunEnded {
                    step: "call".into(),
                    item: Some(0),
                    run: "c".into(),
                    status: "failed".into(),
                    output: None,
                    error: Some("no".into()),
                },
            ),
        ];
        let c = attempts(&call, 5_000, false);
        assert_eq!((c[0].end, c[0].outcome), (900, "failed"));
        // Once the run has ended, an open attempt stops at the last event.
        let a = attempts(&events, 9_000, true);
        assert_eq!((a[2].end, a[2].outcome), (3_001, "stopped"));
    }

    #[test]
    fn log_lines_read_like_the_cli() {
        assert_eq!(
            log_text(
                &EventKind::RequestSummary {
                    step: "s".into(),
                    item: None,
                    attempt: 1,
                    method: "POST".into(),
                    path: "/v1.0/users".into(),
                    status: Some(201),
                    duration_ms: 12,
                },
                false
            ),
            "POST /v1.0/users → 201 in 12 ms"
        );
        assert_eq!(
            log_text(
                &EventKind::RunRetried {
                    steps: vec![],
                    by: "ops".into()
                },
                false
            ),
            "run retried by ops (every failed step)"
        );
        let ready = EventKind::StepReady {
            step: "each".into(),
            item: Some(3),
        };
        assert_eq!(log_text(&ready, true), "item 3: ready");
        assert_eq!(log_text(&ready, false), "ready");
    }
}
