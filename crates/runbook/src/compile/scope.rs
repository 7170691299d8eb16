//! Which variables a template may name where it stands, and the check of every path and
//! helper a template uses against that scope.

use std::collections::HashMap;
use std::rc::Rc;

use super::Cx;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::source::Span;
use crate::template::{analyze, HELPERS};
use crate::yaml::Node;

/// A top-level name a template can start a path with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// `inputs.<name>`
    Inputs,
    /// `vars.<name>`
    Vars,
    /// `tenant.id|domain|name|timezone`
    Tenant,
    /// `run.id|started_at|report|failed_step|error|runbook|version`
    Run,
    /// `trigger.payload|source|received_at|scheduled_at`
    Trigger,
    /// `payload.*` (inside a trigger's `when` and `map`)
    Payload,
    /// `secrets.<name>`
    Secrets,
    /// `steps.<id>.outputs.<name>`
    Steps,
    /// `item` and `index` (inside a `for_each` step)
    Item,
}

impl Root {
    fn name(self) -> &'static str {
        match self {
            Root::Inputs => "inputs",
            Root::Vars => "vars",
            Root::Tenant => "tenant",
            Root::Run => "run",
            Root::Trigger => "trigger",
            Root::Payload => "payload",
            Root::Secrets => "secrets",
            Root::Steps => "steps",
            Root::Item => "item",
        }
    }

    fn all() -> [Root; 9] {
        [
            Root::Inputs,
            Root::Vars,
            Root::Tenant,
            Root::Run,
            Root::Trigger,
            Root::Payload,
            Root::Secrets,
            Root::Steps,
            Root::Item,
        ]
    }
}

const TENANT_FIELDS: &[&str] = &["id", "domain", "name", "timezone"];
const RUN_FIELDS: &[&str] = &[
    "id",
    "started_at",
    "report",
    "failed_step",
    "error",
    "runbook",
    "version",
];
const TRIGGER_FIELDS: &[&str] = &["payload", "source", "received_at", "scheduled_at"];

/// What the compiler knows about a step when another step's template references it.
#[derive(Clone, Debug)]
pub(crate) struct StepInfo {
    /// The kind's declared outputs, if the kind is known.
    pub outputs: Option<Vec<String>>,
    /// Whether the step runs `for_each` (its outputs are then a list).
    pub for_each: bool,
    /// Whether it is an `on_failure` step.
    pub on_failure: bool,
}

/// Every step of the file, by id.
pub(crate) type StepTable = HashMap<String, StepInfo>;

/// The names a template may use where it stands.
#[derive(Clone, Debug)]
pub struct Scope {
    inputs: Rc<Vec<String>>,
    vars: Vec<String>,
    later_vars: Rc<Vec<String>>,
    roots: Vec<Root>,
    steps: Option<Rc<StepTable>>,
    in_failure: bool,
}

impl Scope {
    pub(crate) fn new(inputs: Vec<String>) -> Self {
        Scope {
            inputs: Rc::new(inputs),
            vars: Vec::new(),
            later_vars: Rc::new(Vec::new()),
            roots: vec![],
            steps: None,
            in_failure: false,
        }
    }

    /// A copy allowing exactly `roots`.
    pub fn with_roots(&self, roots: &[Root]) -> Scope {
        Scope {
            roots: roots.to_vec(),
            ..self.clone()
        }
    }

    pub(crate) fn declare_var(&mut self, name: &str) {
        self.vars.push(name.to_string());
    }

    pub(crate) fn with_all_vars(mut self, all: Vec<String>) -> Scope {
        self.later_vars = Rc::new(all);
        self
    }

    pub(crate) fn with_steps(&self, steps: Rc<StepTable>, in_failure: bool) -> Scope {
        Scope {
            steps: Some(steps),
            in_failure,
            ..self.clone()
        }
    }

    fn allows(&self, root: Root) -> bool {
        self.roots.contains(&root)
    }
}

/// A `steps.<id>` reference found in a template: an edge of the DAG.
#[derive(Clone, Debug)]
pub(crate) struct StepRef {
    pub id: String,
    pub span: Span,
}

impl Cx<'_> {
    /// Checks one template string standing in `node`. Returns the step references it makes,
    /// or `None` if it has errors (already reported).
    pub(crate) fn check_template(
        &mut self,
        node: &Node,
        text: &str,
        scope: &Scope,
    ) -> Option<Vec<StepRef>> {
        if !crate::template::contains_expression(text) {
            return Some(Vec::new());
        }
        let analysis = match analyze(text) {
            Ok(a) => a,
            Err(e) => {
                let span = self.offset_span(node, text, e.offset);
                self.push(
                    Diagnostic::error(
                        Code::TemplateSyntax,
                        span,
                        format!("invalid template: {}", first_line(&e.message)),
                    )
                    .with_label("template error here"),
                );
                return None;
            }
        };
        let before = self.diags.len();
        for h in &analysis.helpers {
            if !HELPERS.contains(&h.name.as_str()) || h.name.starts_with("__") {
                let span = self.span_in(node, &h.name);
                let known = HELPERS.iter().copied().filter(|n| !n.starts_with("__"));
                self.push(
                    Diagnostic::error(
                        Code::UnknownHelper,
                        span,
                        format!("unknown template helper `{}`", h.name),
                    )
                    .with_label("no such helper")
                    .with_help(
                        did_you_mean(&h.name, known.clone()).unwrap_or_else(|| {
                            format!(
                                "helpers are {}",
                                crate::catalogue::quoted_list(&known.collect::<Vec<_>>())
                            )
                        }),
                    ),
                );
            }
        }
        let mut refs = Vec::new();
        for p in &analysis.paths {
            if p.scoped {
                continue;
            }
            let span = self.span_in(node, &p.raw);
            if let Some(r) = self.check_path(&p.segments, span, scope) {
                refs.push(r);
            }
        }
        (self.diags.len() == before).then_some(refs)
    }

    fn offset_span(&self, node: &Node, text: &str, offset: usize) -> Span {
        let raw = self.src.slice(node.span);
        let quoted = raw.starts_with('"') || raw.starts_with('\'');
        let single_line = !text.contains('\n');
        if single_line && raw.len() >= text.len() {
            Span::at(
                node.span.start + usize::from(quoted) + offset.min(text.len()),
                1,
            )
        } else {
            node.span
        }
    }

    fn check_path(&mut self, segs: &[String], span: Span, scope: &Scope) -> Option<StepRef> {
        let first = segs.first()?.as_str();
        let second = segs.get(1).map(String::as_str);
        let root = match first {
            "inputs" => Root::Inputs,
            "vars" => Root::Vars,
            "tenant" => Root::Tenant,
            "run" => Root::Run,
            "trigger" => Root::Trigger,
            "payload" => Root::Payload,
            "secrets" => Root::Secrets,
            "steps" => Root::Steps,
            "item" | "index" => Root::Item,
            _ => {
                let allowed: Vec<&str> = Root::all()
                    .into_iter()
                    .filter(|r| scope.allows(*r))
                    .flat_map(|r| match r {
                        Root::Item => vec!["item", "index"],
                        r => vec![r.name()],
                    })
                    .collect();
                self.push(
                    Diagnostic::error(
                        Code::UnknownVariable,
                        span,
                        format!("unknown variable `{}`", segs.join(".")),
                    )
                    .with_label("not in this template's context")
                    .with_help(
                        did_you_mean(first, allowed.iter().copied()).unwrap_or_else(|| {
                            format!(
                                "templates here can use {}",
                                crate::catalogue::quoted_list(&allowed)
                            )
                        }),
                    ),
                );
                return None;
            }
        };
        if !scope.allows(root) {
            let why = match root {
                Root::Item => "`item` and `index` exist only in a step with `for_each`".to_string(),
                Root::Payload => {
                    "`payload` exists only in a trigger; steps read `trigger.payload`".to_string()
                }
                Root::Steps => "step outputs are not known here".to_string(),
                r => format!("`{}` is not available here", r.name()),
            };
            self.push(
                Diagnostic::error(
                    Code::UnknownVariable,
                    span,
                    format!("`{}` cannot be used here", segs.join(".")),
                )
                .with_label("not in this template's context")
                .with_help(why),
            );
            return None;
        }
        match (root, second) {
            (Root::Inputs, Some(name)) if !scope.inputs.iter().any(|i| i == name) => {
                self.push(
                    Diagnostic::error(Code::UnknownInput, span, format!("unknown input `{name}`"))
                        .with_label("not declared under `inputs`")
                        .with_help_opt(did_you_mean(name, scope.inputs.iter().map(String::as_str))),
                );
            }
            (Root::Vars, Some(name)) if !scope.vars.iter().any(|v| v == name) => {
                let later = scope.later_vars.iter().any(|v| v == name);
                let d = Diagnostic::error(Code::UnknownVar, span, format!("unknown var `{name}`"));
                let d = if later {
                    d.with_label("declared later").with_help(
                        "vars are computed in order: move this var after the one it uses",
                    )
                } else {
                    d.with_label("not declared under `vars`")
                        .with_help_opt(did_you_mean(name, scope.vars.iter().map(String::as_str)))
                };
                self.push(d);
            }
            (Root::Tenant, Some(f)) => self.check_field(span, "tenant", f, TENANT_FIELDS),
            (Root::Run, Some(f)) => self.check_field(span, "run", f, RUN_FIELDS),
            (Root::Trigger, Some(f)) => self.check_field(span, "trigger", f, TRIGGER_FIELDS),
            (Root::Steps, _) => return self.check_step_path(segs, span, scope),
            _ => {}
        }
        None
    }

    fn check_field(&mut self, span: Span, root: &str, field: &str, allowed: &[&str]) {
        if !allowed.contains(&field) {
            self.push(
                Diagnostic::error(
                    Code::UnknownVariable,
                    span,
                    format!("`{root}` has no field `{field}`"),
                )
                .with_label("unknown field")
                .with_help(
                    did_you_mean(field, allowed.iter().copied()).unwrap_or_else(|| {
                        format!("`{root}` has {}", crate::catalogue::quoted_list(allowed))
                    }),
                ),
            );
        }
    }

    fn check_step_path(&mut self, segs: &[String], span: Span, scope: &Scope) -> Option<StepRef> {
        let table = scope.steps.as_ref()?;
        let Some(id) = segs.get(1) else {
            self.push(
                Diagnostic::error(Code::UnknownStepRef, span, "`steps` needs a step id")
                    .with_help("write `steps.<id>.outputs.<name>`"),
            );
            return None;
        };
        let visible = |info: &StepInfo| scope.in_failure || !info.on_failure;
        let Some(info) = table.get(id.as_str()).filter(|i| visible(i)) else {
            let mut candidates: Vec<&str> = table
                .iter()
                .filter(|(_, i)| visible(i))
                .map(|(k, _)| k.as_str())
                .collect();
            candidates.sort_unstable();
            let on_failure_only = table.get(id.as_str()).is_some();
            let d = Diagnostic::error(
                Code::UnknownStepRef,
                span,
                format!("template references unknown step `{id}`"),
            )
            .with_label("no such step");
            let d = if on_failure_only {
                d.with_help("steps cannot read the outputs of `on_failure` steps")
            } else {
                d.with_help_opt(did_you_mean(id, candidates))
            };
            self.push(d);
            return None;
        };
        match segs.get(2).map(String::as_str) {
            None | Some("outputs") => {}
            Some(other) => {
                self.push(
                    Diagnostic::error(
                        Code::UnknownOutput,
                        span,
                        format!("`steps.{id}.{other}` is not a step field"),
                    )
                    .with_label("expected `outputs`")
                    .with_help(format!("write `steps.{id}.outputs.<name>`")),
                );
                return None;
            }
        }
        if let (Some(output), Some(outputs), false) = (segs.get(3), &info.outputs, info.for_each) {
            if !outputs.iter().any(|o| o == output) {
                let help =
                    did_you_mean(output, outputs.iter().map(String::as_str)).unwrap_or_else(|| {
                        if outputs.is_empty() {
                            "this step kind has no outputs".to_string()
                        } else {
                            format!("its outputs are {}", crate::catalogue::quoted_list(outputs))
                        }
                    });
                self.push(
                    Diagnostic::error(
                        Code::UnknownOutput,
                        span,
                        format!("step `{id}` has no output `{output}`"),
                    )
                    .with_label("unknown output")
                    .with_help(help),
                );
                return None;
            }
        }
        Some(StepRef {
            id: id.clone(),
            span,
        })
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim_end_matches('.')
}
