//! RB0072: a secret (a `secret` input, a configured secret, a var built from one, or an
//! output the catalogue types as a secret) written into a parameter the catalogue marks as
//! stored or broadcast ([`Role::Publishes`]). Outputs made to be sent ([`Role::Delivers`]:
//! `password.share`'s link) are not secrets here, unless the parameter is posted where many
//! read it at once ([`Role::Broadcasts`]: a Teams channel), where a one-time link is used up
//! by its first reader; a `runbook.call` input the called runbook declares `secret` stays
//! sealed, so it is no leak.

use std::collections::HashSet;

use super::model::{Model, Path};
use super::Finding;
use crate::catalogue::{FieldType, Role};
use crate::diagnostic::{Code, Diagnostic};
use crate::yaml::Node;

pub(super) fn check(m: &Model<'_>, out: &mut Vec<Finding>) {
    let secret_vars = secret_vars(m);
    for step in &m.steps {
        let Some(kind) = step.kind else { continue };
        for param in kind
            .params
            .iter()
            .filter(|p| matches!(p.role, Some(Role::Publishes | Role::Broadcasts)))
        {
            let broadcast = param.role == Some(Role::Broadcasts);
            let Some(value) = step.param(&param.name) else {
                continue;
            };
            for path in published(m, kind.kind.as_str(), step, value) {
                let Some(what) = secret(m, &secret_vars, &path)
                    .or_else(|| broadcast.then(|| one_time_link(m, &path)).flatten())
                else {
                    continue;
                };
                if what == ONE_TIME_LINK {
                    out.push(Finding {
                        step: Some(step.id.to_string()),
                        diagnostic: Diagnostic::warning(
                            Code::SecretPublished,
                            path.span,
                            format!(
                                "the one-time link `{}` is posted into `{}` of `{}`, where the first of many readers uses it up",
                                path.joined(),
                                param.name,
                                kind.kind
                            ),
                        )
                        .with_label("a one-time link, posted to a channel")
                        .with_help(
                            "send the link to the one person it is for (`notify.email` to them), and say in the channel where it went",
                        ),
                    });
                    continue;
                }
                out.push(Finding {
                    step: Some(step.id.to_string()),
                    diagnostic: Diagnostic::warning(
                        Code::SecretPublished,
                        path.span,
                        format!(
                            "{what} `{}` is written into `{}` of `{}`, where others can read it",
                            path.joined(),
                            param.name,
                            kind.kind
                        ),
                    )
                    .with_label("a secret, stored or sent in the clear")
                    .with_help(
                        "deliver it with `password.share` (a one-time link) and send the link instead",
                    ),
                });
            }
        }
    }
}

/// The template paths in a published value; for `runbook.call`, leaving out the inputs the
/// called runbook declares `secret`.
fn published(
    m: &Model<'_>,
    kind: &str,
    step: &super::model::StepNode<'_>,
    value: &Node,
) -> Vec<Path> {
    let mut out = Vec::new();
    let sealed: HashSet<&str> = if kind == crate::compile::CALL_KIND {
        let called = step
            .param("runbook")
            .and_then(Node::as_str)
            .and_then(|id| m.plan.calls.get(id));
        called
            .map(|p| {
                p.inputs
                    .iter()
                    .filter(|(_, spec)| spec.ty.is_secret())
                    .map(|(k, _)| k.as_str())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        HashSet::new()
    };
    match value.as_map() {
        Some(map) if !sealed.is_empty() => {
            for (k, v) in map {
                if !sealed.contains(k.name.as_str()) {
                    out.extend(m.paths(v));
                }
            }
        }
        _ => out.extend(m.paths(value)),
    }
    out
}

/// What [`one_time_link`] calls a delivered secret.
const ONE_TIME_LINK: &str = "the one-time link";

/// Whether `path` reads an output made to be sent to one person (`password.share`'s link).
fn one_time_link(m: &Model<'_>, path: &Path) -> Option<&'static str> {
    let segs: Vec<&str> = path.segments.iter().map(String::as_str).collect();
    let ["steps", id, "outputs", output, ..] = segs.as_slice() else {
        return None;
    };
    let kind = m.step(id)?.kind?;
    let field = kind.outputs.iter().find(|o| o.name == *output)?;
    (field.role == Some(Role::Delivers)).then_some(ONE_TIME_LINK)
}

/// The vars whose templates read a secret, directly or through an earlier var.
fn secret_vars(m: &Model<'_>) -> HashSet<String> {
    let mut out = HashSet::new();
    for (key, node) in m.root.get("vars").and_then(Node::as_map).unwrap_or(&[]) {
        if m.paths(node).iter().any(|p| secret(m, &out, p).is_some()) {
            out.insert(key.name.clone());
        }
    }
    out
}

/// What kind of secret `path` reads, if it reads one.
fn secret(m: &Model<'_>, secret_vars: &HashSet<String>, path: &Path) -> Option<&'static str> {
    let segs: Vec<&str> = path.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["inputs", name, ..] => m
            .plan
            .inputs
            .get(*name)
            .filter(|spec| spec.ty.is_secret())
            .map(|_| "the secret input"),
        ["secrets", ..] => Some("the configured secret"),
        ["vars", name, ..] if secret_vars.contains(*name) => Some("the var, built from a secret,"),
        ["steps", id, "outputs", output, ..] => {
            let kind = m.step(id)?.kind?;
            let field = kind.outputs.iter().find(|o| o.name == *output)?;
            (field.ty == FieldType::Secret && field.role != Some(Role::Delivers))
                .then_some("the secret output")
        }
        _ => None,
    }
}
