//! `allow:` on a step or at the top of a runbook: a list of `{code, reason}` entries, each
//! accepting one lint on purpose. The reason is required, so the file says why the warning
//! does not apply; an entry without one, or naming a code that is not a lint, is an error
//! (RB0079).

use std::collections::HashMap;

use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::yaml::{Node, Value};

/// The accepted lints: at the top level (for the whole file) and per step.
#[derive(Default)]
pub(super) struct Allows {
    top: Vec<Code>,
    steps: HashMap<String, Vec<Code>>,
}

impl Allows {
    /// Whether a warning `code` about `step` is accepted.
    pub fn accepts(&self, code: Code, step: Option<&str>) -> bool {
        self.top.contains(&code)
            || step
                .and_then(|s| self.steps.get(s))
                .is_some_and(|codes| codes.contains(&code))
    }
}

/// Reads every `allow` key, reporting malformed entries.
pub(super) fn collect(root: &Node, diags: &mut Vec<Diagnostic>) -> Allows {
    let mut allows = Allows::default();
    if let Some(n) = root.get("allow") {
        allows.top = entries(n, diags);
    }
    for set in ["steps", "on_failure"] {
        let Some(steps) = root.get(set).and_then(Node::as_map) else {
            continue;
        };
        for (key, step) in steps {
            if let Some(n) = step.get("allow") {
                let codes = entries(n, diags);
                allows
                    .steps
                    .entry(key.name.clone())
                    .or_default()
                    .extend(codes);
            }
        }
    }
    allows
}

fn lint_names() -> impl Iterator<Item = &'static str> + Clone {
    Code::LINTS.iter().map(|c| c.as_str())
}

fn entries(node: &Node, diags: &mut Vec<Diagnostic>) -> Vec<Code> {
    let Value::Seq(items) = &node.value else {
        diags.push(
            Diagnostic::error(
                Code::InvalidAllow,
                node.span,
                "`allow` must be a list of `{code, reason}` entries",
            )
            .with_label("expected a list")
            .with_help("e.g. `allow: [{code: RB0071, reason: \"the ticket is the approval\"}]`"),
        );
        return Vec::new();
    };
    items.iter().filter_map(|i| entry(i, diags)).collect()
}

fn entry(item: &Node, diags: &mut Vec<Diagnostic>) -> Option<Code> {
    let Value::Map(map) = &item.value else {
        let help = match &item.value {
            Value::Str(s) => format!("write `{{code: {s}, reason: \"why it does not apply\"}}`"),
            _ => "write `{code: RB0071, reason: \"why it does not apply\"}`".into(),
        };
        diags.push(
            Diagnostic::error(
                Code::InvalidAllow,
                item.span,
                "an `allow` entry needs a `code` and a `reason`",
            )
            .with_label("no reason given")
            .with_help(help),
        );
        return None;
    };
    let mut ok = true;
    for (k, _) in map {
        if k.name != "code" && k.name != "reason" {
            ok = false;
            diags.push(
                Diagnostic::error(
                    Code::InvalidAllow,
                    k.span,
                    format!("unknown key `{}` in an `allow` entry", k.name),
                )
                .with_help("an entry takes `code` and `reason`"),
            );
        }
    }
    let code = match item.get("code") {
        None => {
            diags.push(
                Diagnostic::error(
                    Code::InvalidAllow,
                    item.span,
                    "an `allow` entry has no `code`",
                )
                .with_help("name the warning, e.g. `code: RB0071`"),
            );
            None
        }
        Some(n) => {
            let text = n.scalar_text().unwrap_or_default();
            match Code::parse(&text) {
                Some(c) if c.is_lint() => Some(c),
                Some(c) => {
                    diags.push(
                        Diagnostic::error(
                            Code::InvalidAllow,
                            n.span,
                            format!(
                                "{} is an error, not a lint: it cannot be allowed",
                                c.as_str()
                            ),
                        )
                        .with_label("not a lint")
                        .with_help(format!(
                            "only warnings can be accepted: {}",
                            crate::catalogue::quoted_list(&lint_names().collect::<Vec<_>>())
                        )),
                    );
                    None
                }
                None => {
                    diags.push(
                        Diagnostic::error(
                            Code::InvalidAllow,
                            n.span,
                            format!("unknown lint code `{text}`"),
                        )
                        .with_label("no such lint")
                        .with_help(
                            did_you_mean(&text, lint_names()).unwrap_or_else(|| {
                                format!(
                                    "lints are {}",
                                    crate::catalogue::quoted_list(
                                        &lint_names().collect::<Vec<_>>()
                                    )
                                )
                            }),
                        ),
                    );
                    None
                }
            }
        }
    };
    let reason = item.get("reason");
    let has_reason = reason
        .and_then(Node::as_str)
        .is_some_and(|r| !r.trim().is_empty());
    if !has_reason {
        ok = false;
        diags.push(
            Diagnostic::error(
                Code::InvalidAllow,
                reason.map_or(item.span, |r| r.span),
                "an `allow` entry needs a `reason`",
            )
            .with_label("say why the warning does not apply")
            .with_help("e.g. `reason: \"the ticket that starts this run is the approval\"`"),
        );
    }
    code.filter(|_| ok)
}
