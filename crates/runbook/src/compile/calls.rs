//! `runbook.call` steps: the called runbook is named by a literal id, found through the
//! [`Runbooks`] the caller of the compiler provides (the CLI: the runbooks beside the file),
//! compiled, checked for cycles, and its plan embedded in the caller's [`Plan::calls`], so a
//! run pins the plans it calls with its own. `with.inputs` is checked against the called
//! runbook's declared inputs, and an optional `with.version` against its version.

use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::plan::Plan;
use crate::yaml::Node;

use super::Cx;

/// The step kind that runs another runbook.
pub const CALL_KIND: &str = "runbook.call";

/// Why a called runbook could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// No runbook has that id; the ids that exist, for a suggestion.
    Unknown(Vec<String>),
    /// Calling it closes a cycle: the chain of runbook ids, first and last equal.
    Cycle(Vec<String>),
    /// The runbook exists but does not compile (its first error, rendered).
    Invalid(String),
    /// More than one runbook declares the id: where each is.
    Ambiguous(Vec<String>),
}

/// How deep `runbook.call`s may nest: a run's calls, their calls and so on, at most this many
/// runs below it (checked when runbooks are compiled and again when a call starts).
pub const MAX_CALL_DEPTH: u64 = 8;

/// How many runs deep the calls of `plan` nest below it (0: it calls nothing).
fn call_depth(plan: &Plan) -> u64 {
    plan.calls
        .values()
        .map(|p| 1 + call_depth(p))
        .max()
        .unwrap_or(0)
}

/// Where the compiler finds the runbooks a `runbook.call` names. The compiler does no I/O;
/// the caller reads and compiles the files (with the same `Runbooks`, so calls nest).
pub trait Runbooks {
    /// The compiled plan of runbook `id`, called from runbook `caller`.
    fn resolve(&self, id: &str, caller: &str) -> Result<Plan, Unresolved>;
}

impl Cx<'_> {
    /// Links every `runbook.call` step of `plan` (steps and `on_failure`): resolves the called
    /// runbooks into `plan.calls` and checks each call's `with` against them.
    pub(super) fn link_calls(&mut self, root: &Node, plan: &mut Plan) {
        let groups = [("steps", &plan.steps), ("on_failure", &plan.on_failure)];
        let mut calls = std::collections::BTreeMap::new();
        for (group, steps) in groups {
            for step in steps.iter().filter(|s| s.uses == CALL_KIND) {
                let Some(with) = root
                    .get(group)
                    .and_then(|g| g.get(&step.id))
                    .and_then(|s| s.get("with"))
                else {
                    continue;
                };
                if let Some(callee) = self.link_call(with, &plan.runbook) {
                    calls.insert(callee.runbook.clone(), callee);
                }
            }
        }
        plan.calls = calls;
    }

    fn link_call(&mut self, with: &Node, caller: &str) -> Option<Plan> {
        let node = with.get("runbook")?;
        let id = node.scalar_text()?;
        if id.contains("{{") {
            self.push(
                Diagnostic::error(
                    Code::UnknownRunbook,
                    node.span,
                    "the called runbook must be named by a literal id, not a template",
                )
                .with_help(
                    "the called runbook is compiled with this one, so its id must be known now",
                ),
            );
            return None;
        }
        if id == caller {
            self.push(
                Diagnostic::error(
                    Code::CallCycle,
                    node.span,
                    format!("runbook `{id}` calls itself"),
                )
                .with_label("a runbook cannot call itself")
                .with_help("move the repeated work into its own runbook and call that"),
            );
            return None;
        }
        let runbooks = self.runbooks?;
        let callee = match runbooks.resolve(&id, caller) {
            Ok(plan) => plan,
            Err(Unresolved::Unknown(known)) => {
                let suggestion = did_you_mean(&id, known.iter().map(String::as_str));
                let help = match suggestion {
                    Some(s) => s,
                    None if known.is_empty() => "no other runbook was found beside this one".into(),
                    None => format!("runbooks found: {}", known.join(", ")),
                };
                self.push(
                    Diagnostic::error(
                        Code::UnknownRunbook,
                        node.span,
                        format!("no runbook `{id}` to call"),
                    )
                    .with_label("not found")
                    .with_help(help),
                );
                return None;
            }
            Err(Unresolved::Cycle(chain)) => {
                self.push(
                    Diagnostic::error(
                        Code::CallCycle,
                        node.span,
                        format!("runbooks call each other in a cycle: {}", chain.join(" → ")),
                    )
                    .with_label("this call closes the cycle"),
                );
                return None;
            }
            Err(Unresolved::Ambiguous(files)) => {
                self.push(
                    Diagnostic::error(
                        Code::UnknownRunbook,
                        node.span,
                        format!("runbook id `{id}` is declared by more than one file"),
                    )
                    .with_label("ambiguous")
                    .with_help(format!(
                        "declared by {}; each id must be unique",
                        files.join(" and ")
                    )),
                );
                return None;
            }
            Err(Unresolved::Invalid(first)) => {
                self.push(
                    Diagnostic::error(
                        Code::UnknownRunbook,
                        node.span,
                        format!("runbook `{id}` does not compile"),
                    )
                    .with_label("has errors")
                    .with_help(first),
                );
                return None;
            }
        };
        let runs = 1 + call_depth(&callee);
        if runs > MAX_CALL_DEPTH {
            self.push(
                Diagnostic::error(
                    Code::CallCycle,
                    node.span,
                    format!(
                        "calls through runbook `{id}` nest {runs} runs deep, more than the {MAX_CALL_DEPTH} a run allows"
                    ),
                )
                .with_label("too deep")
                .with_help("call fewer runbooks in a chain: let one runbook do more of the work"),
            );
            return None;
        }
        let errors = self.error_count();
        if let Some(v) = with.get("version") {
            if let Some(want) = v.scalar_text().and_then(|t| t.parse::<u32>().ok()) {
                if want != callee.version {
                    self.push(
                        Diagnostic::error(
                            Code::CallInputs,
                            v.span,
                            format!(
                                "runbook `{id}` is at version {}, not {want}",
                                callee.version
                            ),
                        )
                        .with_help(
                            "update `version` to the called runbook's version, or remove it",
                        ),
                    );
                }
            }
        }
        self.call_inputs(with, &callee);
        (self.error_count() == errors).then_some(callee)
    }

    /// Every given input is declared by the called runbook; every input it requires is given.
    fn call_inputs(&mut self, with: &Node, callee: &Plan) {
        let given = with.get("inputs");
        let entries = given.and_then(Node::as_map).unwrap_or(&[]);
        for (key, _) in entries {
            if !callee.inputs.contains_key(&key.name) {
                let suggestion = did_you_mean(&key.name, callee.inputs.keys().map(String::as_str));
                self.push(
                    Diagnostic::error(
                        Code::CallInputs,
                        key.span,
                        format!("runbook `{}` has no input `{}`", callee.runbook, key.name),
                    )
                    .with_label("not declared by the called runbook")
                    .with_help_opt(suggestion),
                );
            }
        }
        let missing: Vec<&str> = callee
            .inputs
            .iter()
            .filter(|(_, spec)| spec.required && spec.default.is_none())
            .map(|(name, _)| name.as_str())
            .filter(|name| !entries.iter().any(|(k, _)| k.name == *name))
            .collect();
        if !missing.is_empty() {
            let span = given.map_or(with.span, |g| g.span);
            self.push(
                Diagnostic::error(
                    Code::CallInputs,
                    span,
                    format!(
                        "runbook `{}` requires {} {}",
                        callee.runbook,
                        if missing.len() == 1 {
                            "input"
                        } else {
                            "inputs"
                        },
                        crate::catalogue::quoted_list(&missing)
                    ),
                )
                .with_help("give each under `with.inputs`"),
            );
        }
    }
}
