//! How journal events read for people: one line each, as `tenure run`, `tenure log` and the
//! demo print them, with a progress bar per `for_each` step.

use tenure_engine::journal::{Event, EventKind};

/// `step [#########...........] 9/20 items`
pub fn progress_bar(step: &str, done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!(
        "             {step} [{}{}] {done}/{total} items",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    )
}

/// One journal event as a line for people.
pub fn line(e: &Event) -> String {
    let at = e.at.get(11..23).unwrap_or(&e.at);
    let item = |i: &Option<u32>| i.map(|i| format!("[{i}]")).unwrap_or_default();
    let what = match &e.kind {
        EventKind::RunCreated {
            runbook,
            version,
            trigger,
            ..
        } => format!("run created from {runbook} v{version} ({trigger})"),
        EventKind::InputsValidated { .. } => "inputs validated".into(),
        EventKind::StepReady { step, item: i } => format!("{step}{} ready", item(i)),
        EventKind::AttemptStarted {
            step,
            item: i,
            attempt,
            owner,
        } => format!("{step}{} attempt {attempt} started by {owner}", item(i)),
        EventKind::RequestSummary {
            step,
            method,
            path,
            status,
            duration_ms,
            ..
        } => format!(
            "{step} {method} {path} -> {} in {duration_ms} ms",
            status.map_or("no answer".into(), |s| s.to_string())
        ),
        EventKind::AttemptSucceeded {
            step,
            item: i,
            attempt,
            ..
        } => format!("{step}{} attempt {attempt} succeeded", item(i)),
        EventKind::AttemptFailed {
            step,
            item: i,
            attempt,
            class,
            code,
            message,
            ..
        } => format!(
            "{step}{} attempt {attempt} failed ({class} {code}): {message}",
            item(i)
        ),
        EventKind::AttemptDeferred {
            step,
            item: i,
            attempt,
            reason,
        } => format!(
            "{step}{} attempt {attempt}: not ready yet ({reason})",
            item(i)
        ),
        EventKind::GaveUp {
            step,
            item: i,
            reason,
        } => format!("{step}{} failed for good: {reason}", item(i)),
        EventKind::ApprovalResolved {
            step,
            decision,
            decided_by,
        } => {
            if decided_by.is_empty() {
                format!("{step}: {decision}")
            } else {
                format!("{step}: {decision} ({})", decided_by.join(", "))
            }
        }
        EventKind::StepSkipped { step, reason, .. } => format!("{step} skipped: {reason}"),
        EventKind::ApprovalRequested {
            step,
            approvers,
            expires_at,
            requested_by,
            notified,
        } => {
            let mut line = format!(
                "{step} asks {} (expires {expires_at})",
                approvers.join(", ")
            );
            if let Some(by) = requested_by {
                line.push_str(&format!("; requested by {by}"));
            }
            if !notified.is_empty() {
                line.push_str(&format!("; notified: {}", notified.join(", ")));
            }
            line
        }
        EventKind::ApprovalDecided {
            step,
            approver,
            decision,
            source,
            user_agent,
            ..
        } => match user_agent {
            Some(ua) => format!("{step}: {approver} chose {decision} ({source}, {ua})"),
            None => format!("{step}: {approver} chose {decision} ({source})"),
        },
        EventKind::TimerSet {
            step,
            at,
            item: i,
            reason,
        } => match reason {
            Some(r) => format!("{step}{} waits until {at}: {r}", item(i)),
            None => format!("{step}{} sleeps until {at}", item(i)),
        },
        EventKind::TimerFired { step } => format!("{step} woke"),
        EventKind::ChildRunStarted {
            step,
            item: i,
            runbook,
            run,
        } => format!("{step}{} called runbook {runbook}: run {run}", item(i)),
        EventKind::ChildRunEnded {
            step,
            item: i,
            run,
            status,
            error,
            ..
        } => match error {
            Some(e) => format!("{step}{}: called run {run} ended {status}: {e}", item(i)),
            None => format!("{step}{}: called run {run} ended {status}", item(i)),
        },
        EventKind::OnFailureStarted { failed_step } => {
            format!("{failed_step} failed the run: on_failure steps start")
        }
        EventKind::RunCancelled { by } => format!("cancelled by {by}"),
        EventKind::RunRetried { steps, by } => {
            if steps.is_empty() {
                format!("retried by {by}: every failed step runs again")
            } else {
                format!("retried by {by}: {} run again", steps.join(", "))
            }
        }
        EventKind::RollbackStarted { by } => {
            format!("rollback started by {by}: compensations run in reverse order")
        }
        EventKind::RunFinished { status, error } => format!(
            "run {status}{}",
            error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    };
    format!("{at}  {what}")
}
