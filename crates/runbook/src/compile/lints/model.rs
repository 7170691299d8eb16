//! What the lints look at: the compiled plan (its dependency graph) beside the YAML nodes
//! (for spans), each step's kind from the catalogue, and the template paths in a node.

use std::collections::{HashMap, HashSet};

use crate::catalogue::{Catalogue, KindSchema, Role};
use crate::plan::{Plan, Step};
use crate::source::{SourceFile, Span};
use crate::template::analyze;
use crate::yaml::{Key, Node, Value};

/// One step as written, with its kind.
pub(super) struct StepNode<'a> {
    /// The step id.
    pub id: &'a str,
    /// Its key in `steps` / `on_failure`.
    pub key: &'a Key,
    /// The step's mapping.
    pub node: &'a Node,
    /// Whether it is an `on_failure` step.
    pub on_failure: bool,
    /// Its kind.
    pub kind: Option<&'a KindSchema>,
}

impl<'a> StepNode<'a> {
    /// The `with` parameter `name`.
    pub fn param(&self, name: &str) -> Option<&'a Node> {
        self.node.get("with").and_then(|w| w.get(name))
    }

    /// The span of the `uses` value (the kind), else the step's key.
    pub fn uses_span(&self) -> Span {
        self.node.get("uses").map_or(self.key.span, |n| n.span)
    }

    /// The step's kind name.
    pub fn kind_name(&self) -> &str {
        self.kind.map_or("", |k| k.kind.as_str())
    }
}

/// A variable path found in a template, with where it is written.
pub(super) struct Path {
    /// The path split at dots.
    pub segments: Vec<String>,
    /// Where it stands in the file.
    pub span: Span,
}

impl Path {
    /// The path joined with dots.
    pub fn joined(&self) -> String {
        self.segments.join(".")
    }
}

/// The lints' view of one compiled runbook.
pub(super) struct Model<'a> {
    pub src: &'a SourceFile,
    pub root: &'a Node,
    pub plan: &'a Plan,
    pub steps: Vec<StepNode<'a>>,
    index: HashMap<&'a str, usize>,
    plan_steps: HashMap<&'a str, &'a Step>,
}

impl<'a> Model<'a> {
    pub fn new(
        src: &'a SourceFile,
        catalogue: &'a dyn Catalogue,
        root: &'a Node,
        plan: &'a Plan,
    ) -> Self {
        let mut steps = Vec::new();
        for (set, on_failure) in [("steps", false), ("on_failure", true)] {
            for (key, node) in root.get(set).and_then(Node::as_map).unwrap_or(&[]) {
                let kind = node
                    .get("uses")
                    .and_then(Node::as_str)
                    .and_then(|k| catalogue.get(k));
                steps.push(StepNode {
                    id: key.name.as_str(),
                    key,
                    node,
                    on_failure,
                    kind,
                });
            }
        }
        let index = steps.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        let plan_steps = plan
            .steps
            .iter()
            .chain(&plan.on_failure)
            .map(|s| (s.id.as_str(), s))
            .collect();
        Model {
            src,
            root,
            plan,
            steps,
            index,
            plan_steps,
        }
    }

    /// The step called `id`.
    pub fn step(&self, id: &str) -> Option<&StepNode<'a>> {
        self.index.get(id).map(|&i| &self.steps[i])
    }

    /// Every step `id` waits for, directly or through others.
    pub fn ancestors(&self, id: &str) -> HashSet<&'a str> {
        let mut seen = HashSet::new();
        let mut stack = vec![id];
        while let Some(s) = stack.pop() {
            let Some(step) = self.plan_steps.get(s) else {
                continue;
            };
            for d in &step.needs {
                if let Some((&name, _)) = self.plan_steps.get_key_value(d.step.as_str()) {
                    if seen.insert(name) {
                        stack.push(name);
                    }
                }
            }
        }
        seen
    }

    /// Every template path in `node` (any depth), skipping paths relative to a block.
    pub fn paths(&self, node: &Node) -> Vec<Path> {
        let mut out = Vec::new();
        self.walk(node, &mut |n, text| {
            if let Ok(a) = analyze(text) {
                for p in a.paths.into_iter().filter(|p| !p.scoped) {
                    out.push(Path {
                        span: self.span_in(n, &p.raw, p.offset),
                        segments: p.segments,
                    });
                }
            }
        });
        out
    }

    /// Calls `f` with every string scalar holding a template under `node`.
    pub fn walk(&self, node: &Node, f: &mut dyn FnMut(&Node, &str)) {
        match &node.value {
            Value::Str(s) if crate::template::contains_expression(s) => f(node, s),
            Value::Seq(items) => items.iter().for_each(|i| self.walk(i, f)),
            Value::Map(m) => m.iter().for_each(|(_, v)| self.walk(v, f)),
            _ => {}
        }
    }

    /// The span of `needle` in a scalar's source text, near `offset` in its value (the node
    /// itself when the text is not found, e.g. in a block scalar with escapes).
    pub fn span_in(&self, node: &Node, needle: &str, offset: usize) -> Span {
        let raw = self.src.slice(node.span);
        if needle.is_empty() {
            return node.span;
        }
        let found = raw
            .match_indices(needle)
            .map(|(i, _)| i)
            .min_by_key(|&i| i.abs_diff(offset));
        match found {
            Some(i) => Span::at(node.span.start + i, needle.len()),
            None => node.span,
        }
    }

    /// Whom a step acts on, as a canonical text: its `Subject` parameter's template with the
    /// whitespace inside `{{ }}` removed, and `steps.X.outputs.id` followed to `X`'s own
    /// subject (a step that creates the person is the subject `steps.X`).
    pub fn subject(&self, step: &StepNode<'_>) -> Option<String> {
        self.subject_at(step, 0)
    }

    fn subject_at(&self, step: &StepNode<'_>, depth: usize) -> Option<String> {
        let kind = step.kind?;
        let Some(param) = kind.params.iter().find(|p| p.role == Some(Role::Subject)) else {
            // A kind that makes the person (it has no `user` to act on) is its own subject.
            return Some(format!("steps.{}", step.id));
        };
        let text = step.param(&param.name)?.scalar_text()?;
        Some(self.canonical(&text, depth))
    }

    /// A template naming a person as a canonical text (see [`Model::subject`]).
    pub fn canonical(&self, text: &str, depth: usize) -> String {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let inner = compact
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .filter(|t| !t.contains("{{") && !t.contains('}'));
        let Some(inner) = inner else {
            return compact;
        };
        let segs: Vec<&str> = inner.split('.').collect();
        if let ["steps", id, "outputs", output] = segs.as_slice() {
            if let Some(s) = self.step(id).filter(|_| depth < 8) {
                // An output the catalogue says names the person the step acted on.
                let names_person = s.kind.is_some_and(|k| {
                    k.outputs
                        .iter()
                        .any(|o| o.name == *output && o.role == Some(Role::Subject))
                });
                if let Some(subject) = names_person
                    .then(|| self.subject_at(s, depth + 1))
                    .flatten()
                {
                    return subject;
                }
            }
        }
        inner.to_string()
    }
}
