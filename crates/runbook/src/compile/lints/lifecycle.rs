//! Lints on the order and guarding of lifecycle steps: licences removed before the mailbox is
//! shared (RB0070), destructive steps no approval guards (RB0071), `continue_on_error` on a
//! step that secures an account (RB0073), accounts created without `concurrency` (RB0077) and
//! approvers who may be the run's own subject (RB0078).

use super::model::Model;
use super::Finding;
use crate::catalogue::{Effect, KindClass, Role};
use crate::diagnostic::{Code, Diagnostic};
use crate::yaml::Value;

pub(super) fn check(m: &Model<'_>, out: &mut Vec<Finding>) {
    mailbox_before_licences(m, out);
    destructive_needs_approval(m, out);
    securing_must_not_fail_quietly(m, out);
    creating_needs_concurrency(m, out);
    no_self_approval(m, out);
}

fn finding(step: &str, diagnostic: Diagnostic) -> Finding {
    Finding {
        diagnostic,
        step: Some(step.to_string()),
    }
}

/// RB0070: a licence removal for a user whose mailbox conversion does not come first.
fn mailbox_before_licences(m: &Model<'_>, out: &mut Vec<Finding>) {
    for release in m
        .steps
        .iter()
        .filter(|s| s.kind.is_some_and(|k| k.has(Effect::ReleasesMailbox)))
    {
        let Some(subject) = m.subject(release) else {
            continue;
        };
        let before = m.ancestors(release.id);
        for keep in m.steps.iter().filter(|s| {
            s.on_failure == release.on_failure
                && s.kind.is_some_and(|k| k.has(Effect::PreservesMailbox))
        }) {
            if before.contains(keep.id) || m.subject(keep).as_deref() != Some(subject.as_str()) {
                continue;
            }
            out.push(finding(
                release.id,
                Diagnostic::warning(
                    Code::MailboxLoss,
                    release.uses_span(),
                    format!(
                        "`{}` may remove the licences before `{}` converts the mailbox to shared",
                        release.id, keep.id
                    ),
                )
                .with_label(format!("does not wait for `{}`", keep.id))
                .with_note(keep.key.span, "the mailbox is converted here")
                .with_help(format!(
                    "add `needs: [{}]` to `{}`: a user mailbox that loses its last Exchange licence is deleted 30 days later",
                    keep.id, release.id
                )),
            ));
        }
    }
}

/// RB0071: a destructive kind with no approval among the steps it waits for.
fn destructive_needs_approval(m: &Model<'_>, out: &mut Vec<Finding>) {
    for step in m
        .steps
        .iter()
        .filter(|s| s.kind.is_some_and(|k| k.has(Effect::Destructive)))
    {
        let approved = m.ancestors(step.id).iter().any(|a| {
            m.step(a)
                .and_then(|s| s.kind)
                .is_some_and(|k| k.class == KindClass::Approval)
        });
        if approved {
            continue;
        }
        out.push(finding(
            step.id,
            Diagnostic::warning(
                Code::UnapprovedDestructive,
                step.uses_span(),
                format!(
                    "`{}` ({}) cannot be undone and no approval comes before it",
                    step.id,
                    step.kind_name()
                ),
            )
            .with_label("runs without anyone approving it")
            .with_help(format!(
                "add an `approval` step and `needs: [<approval>]` to `{}`, or accept it with `allow: [{{code: RB0071, reason: \"...\"}}]`",
                step.id
            )),
        ));
    }
}

/// RB0073: `continue_on_error: true` on a step that secures an account.
fn securing_must_not_fail_quietly(m: &Model<'_>, out: &mut Vec<Finding>) {
    for step in m
        .steps
        .iter()
        .filter(|s| s.kind.is_some_and(|k| k.has(Effect::SecuresAccount)))
    {
        let Some((key, _)) = step.node.as_map().and_then(|map| {
            map.iter()
                .find(|(k, v)| k.name == "continue_on_error" && v.value == Value::Bool(true))
        }) else {
            continue;
        };
        out.push(finding(
            step.id,
            Diagnostic::warning(
                Code::ContinueSecuring,
                key.span,
                format!(
                    "`{}` ({}) secures the account, but may fail without failing the run",
                    step.id,
                    step.kind_name()
                ),
            )
            .with_label("a failure here leaves the account open")
            .with_help("remove `continue_on_error`: if the account cannot be secured, the run must stop and say so"),
        ));
    }
}

/// RB0077: a kind that creates accounts in a runbook without `concurrency`.
fn creating_needs_concurrency(m: &Model<'_>, out: &mut Vec<Finding>) {
    if m.root.get("concurrency").is_some() {
        return;
    }
    for step in m
        .steps
        .iter()
        .filter(|s| s.kind.is_some_and(|k| k.has(Effect::CreatesAccount)))
    {
        out.push(finding(
            step.id,
            Diagnostic::warning(
                Code::NoConcurrency,
                step.uses_span(),
                format!(
                    "`{}` creates an account, but the runbook has no `concurrency` key",
                    step.id
                ),
            )
            .with_label("two runs for one person would race")
            .with_help("add e.g. `concurrency: \"{{inputs.user_principal_name}}\"` at the top, so runs for one person wait for each other"),
        ));
    }
}

/// RB0078: an approver written as the person a step of the run acts on.
fn no_self_approval(m: &Model<'_>, out: &mut Vec<Finding>) {
    let subjects: Vec<(String, &str)> = m
        .steps
        .iter()
        .filter(|s| {
            s.kind.is_some_and(|k| {
                k.has(Effect::CreatesAccount)
                    || k.params.iter().any(|p| p.role == Some(Role::Subject))
            })
        })
        .filter_map(|s| Some((m.subject(s)?, s.id)))
        .collect();
    for gate in m
        .steps
        .iter()
        .filter(|s| s.kind.is_some_and(|k| k.class == KindClass::Approval))
    {
        let Some(approvers) = gate.param("approvers") else {
            continue;
        };
        let items: Vec<&crate::yaml::Node> = match &approvers.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![approvers],
        };
        for item in items {
            let Some(text) = item.scalar_text() else {
                continue;
            };
            if !crate::template::contains_expression(&text) {
                continue;
            }
            let who = m.canonical(&text, 0);
            let Some((_, acted_on_by)) = subjects.iter().find(|(s, _)| *s == who) else {
                continue;
            };
            let target = m.step(acted_on_by).map(|s| s.key.span);
            let mut d = Diagnostic::warning(
                Code::SelfApproval,
                item.span,
                format!(
                    "approval `{}` can be decided by the person the run acts on",
                    gate.id
                ),
            )
            .with_label(format!("the same person as `{acted_on_by}` acts on"))
            .with_help("approvers should be people other than the subject, e.g. their manager or the service desk lead");
            if let Some(span) = target {
                d = d.with_note(span, format!("`{acted_on_by}` acts on this person"));
            }
            out.push(finding(gate.id, d));
        }
    }
}
