//! What the journal says about a transition: one pure function of the machine's event and the
//! actions it answered with. Nothing else writes journal lines, so the log cannot disagree
//! with what the machine decided.

use serde_json::Value;

use super::EventKind;
use crate::machine::{rfc3339, status_name, Action, Again, Event, FailureClass, Park, Request};
use crate::secrets::SEALED;

/// A value as it may be journaled: every sealed (encrypted) string becomes `***`.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::String(s) if s.starts_with(SEALED) => Value::String("***".into()),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), redact(v))).collect()),
        other => other.clone(),
    }
}

fn summaries(step: &str, item: u32, attempt: u32, requests: &[Request]) -> Vec<EventKind> {
    requests
        .iter()
        .map(|r| EventKind::RequestSummary {
            step: step.to_string(),
            item: Some(item),
            attempt,
            method: r.method.clone(),
            path: r.path.clone(),
            status: r.status,
            duration_ms: r.duration_ms,
        })
        .collect()
}

/// The journal entries of one applied event: what happened, then what the machine decided.
pub fn entries(event: &Event, actions: &[Action]) -> Vec<EventKind> {
    let mut out = Vec::new();
    match event {
        Event::Created {
            runbook,
            version,
            plan_hash,
            trigger,
            inputs,
            ..
        } => {
            out.push(EventKind::RunCreated {
                runbook: runbook.clone(),
                version: *version,
                plan_hash: plan_hash.clone(),
                trigger: trigger.clone(),
            });
            out.push(EventKind::InputsValidated {
                inputs: redact(inputs),
            });
        }
        Event::Start | Event::Prepared { .. } => {}
        Event::PrepareFailed { step, message } => out.push(EventKind::AttemptFailed {
            step: step.clone(),
            item: None,
            attempt: 0,
            class: "permanent".into(),
            code: "template".into(),
            message: message.clone(),
            retry_after_ms: None,
        }),
        Event::AttemptStarted {
            step,
            item,
            attempt,
            owner,
        } => out.push(EventKind::AttemptStarted {
            step: step.clone(),
            item: Some(*item),
            attempt: *attempt,
            owner: owner.clone(),
        }),
        Event::AttemptSucceeded {
            step,
            item,
            attempt,
            output,
            requests,
        } => {
            out.extend(summaries(step, *item, *attempt, requests));
            out.push(EventKind::AttemptSucceeded {
                step: step.clone(),
                item: Some(*item),
                attempt: *attempt,
                output: redact(output),
            });
        }
        Event::AttemptFailed {
            step,
            item,
            attempt,
            failure,
            requests,
        } => {
            out.extend(summaries(step, *item, *attempt, requests));
            out.push(EventKind::AttemptFailed {
                step: step.clone(),
                item: Some(*item),
                attempt: *attempt,
                class: match failure.class {
                    FailureClass::Transient if failure.is_throttling() => "throttled".into(),
                    FailureClass::Transient => "transient".into(),
                    FailureClass::Permanent => "permanent".into(),
                },
                code: failure.code.clone(),
                message: failure.message.clone(),
                retry_after_ms: failure.retry_after_ms,
            });
        }
        Event::AttemptDeferred {
            step,
            item,
            attempt,
            reason,
            requests,
            ..
        } => {
            out.extend(summaries(step, *item, *attempt, requests));
            out.push(EventKind::AttemptDeferred {
                step: step.clone(),
                item: Some(*item),
                attempt: *attempt,
                reason: reason.clone(),
            });
        }
        Event::Parked {
            step,
            item,
            attempt,
            park,
            requests,
        } => {
            out.extend(summaries(step, *item, *attempt, requests));
            if let Park::Approval {
                approvers,
                expires_at_ms,
                requested_by,
                notified,
                ..
            } = park
            {
                out.push(EventKind::ApprovalRequested {
                    step: step.clone(),
                    approvers: approvers.clone(),
                    expires_at: rfc3339(*expires_at_ms),
                    requested_by: requested_by.clone(),
                    notified: notified.clone(),
                });
            }
        }
        Event::ApprovalDecided {
            step,
            approver,
            approve,
            comment,
            source,
            user_agent,
        } => out.push(EventKind::ApprovalDecided {
            step: step.clone(),
            approver: approver.clone(),
            decision: if *approve { "approve" } else { "deny" }.into(),
            source: source.clone(),
            comment: comment.clone(),
            user_agent: user_agent.clone(),
        }),
        Event::TimerDue { step, .. } => out.push(EventKind::TimerFired { step: step.clone() }),
        Event::LeaseExpired {
            step,
            item,
            attempt,
        } => out.push(EventKind::AttemptFailed {
            step: step.clone(),
            item: Some(*item),
            attempt: *attempt,
            class: "transient".into(),
            code: "lease_expired".into(),
            message: "the worker's lease ran out before its result was committed (it crashed, or its report did not commit); the next attempt finds work already done".into(),
            retry_after_ms: None,
        }),
        Event::ChildEnded {
            step,
            item,
            run,
            status,
            output,
            message,
        } => out.push(EventKind::ChildRunEnded {
            step: step.clone(),
            item: Some(*item),
            run: run.clone(),
            status: status_name(*status),
            output: (*status == crate::machine::RunStatus::Succeeded).then(|| redact(output)),
            error: message.clone(),
        }),
        Event::Cancel { by } => out.push(EventKind::RunCancelled { by: by.clone() }),
        Event::Retry { steps, by } => out.push(EventKind::RunRetried {
            steps: steps.clone(),
            by: by.clone(),
        }),
        Event::Rollback { by } => out.push(EventKind::RollbackStarted { by: by.clone() }),
    }
    let claimed = match event {
        Event::AttemptStarted { step, item, .. } => Some((step.as_str(), *item)),
        _ => None,
    };
    let timer_reason = match event {
        Event::Parked {
            park: Park::Wait { .. },
            ..
        } => "wait",
        Event::Parked {
            park: Park::Call { .. },
            ..
        } => "call timeout",
        _ => "approval expiry",
    };
    for a in actions {
        match a {
            Action::Prepare { .. }
            | Action::CancelTimer { .. }
            | Action::Dequeue { .. }
            | Action::StoreOutput { .. } => {}
            Action::StartQueued { .. } | Action::CancelChild { .. } => {}
            Action::StartChild {
                step,
                item,
                runbook,
                run,
                ..
            } => out.push(EventKind::ChildRunStarted {
                step: step.clone(),
                item: Some(*item),
                runbook: runbook.clone(),
                run: run.clone(),
            }),
            Action::Enqueue { step, item } => {
                if claimed != Some((step.as_str(), *item)) {
                    out.push(EventKind::StepReady {
                        step: step.clone(),
                        item: Some(*item),
                    });
                }
            }
            Action::EnqueueAt {
                step,
                item,
                at_ms,
                why,
            } => out.push(EventKind::TimerSet {
                step: step.clone(),
                at: rfc3339(*at_ms),
                item: Some(*item),
                reason: Some(
                    match why {
                        Again::Error => "retry after an error",
                        Again::Throttled => "throttled: waiting out the vendor's Retry-After",
                        Again::NotReady => "not ready: looking again",
                    }
                    .into(),
                ),
            }),
            Action::SetTimer { step, item, at_ms } => out.push(EventKind::TimerSet {
                step: step.clone(),
                at: rfc3339(*at_ms),
                item: Some(*item),
                reason: Some(timer_reason.into()),
            }),
            Action::ApprovalResolved {
                step,
                decision,
                decided_by,
            } => out.push(EventKind::ApprovalResolved {
                step: step.clone(),
                decision: decision.clone(),
                decided_by: decided_by.clone(),
            }),
            Action::GaveUp { step, item, reason } => out.push(EventKind::GaveUp {
                step: step.clone(),
                item: Some(*item),
                reason: reason.clone(),
            }),
            Action::Skipped { step, reason } => out.push(EventKind::StepSkipped {
                step: step.clone(),
                item: None,
                reason: reason.to_string(),
            }),
            Action::OnFailure { failed_step } => out.push(EventKind::OnFailureStarted {
                failed_step: failed_step.clone(),
            }),
            Action::Finish {
                status,
                failed_step,
            } => out.push(EventKind::RunFinished {
                status: status_name(*status),
                error: failed_step.as_ref().map(|s| format!("step `{s}` failed")),
            }),
        }
    }
    out
}
