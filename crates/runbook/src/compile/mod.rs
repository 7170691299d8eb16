//! The compiler: YAML node tree → checked [`Plan`]. Every problem becomes a [`Diagnostic`];
//! the compiler never stops at the first one and never panics on any input.

mod calls;
mod graph;
mod inputs;
mod lints;
mod params;
mod scope;
mod steps;
mod triggers;

use indexmap::IndexMap;

use crate::catalogue::Catalogue;
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::plan::Plan;
use crate::source::{SourceFile, Span};
use crate::template::Template;
use crate::yaml::{self, Key, Node, Value};

pub use calls::{Runbooks, Unresolved, CALL_KIND, MAX_CALL_DEPTH};
pub use scope::{Root, Scope};

/// What compiling one file produced: the plan if there were no errors, and every diagnostic
/// (warnings too) in source order.
#[derive(Debug)]
pub struct Output {
    /// The plan, if the file has no errors.
    pub plan: Option<Plan>,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Output {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// The keys a runbook may have at the top level.
pub const TOP_KEYS: &[&str] = &[
    "runbook",
    "version",
    "description",
    "tenant",
    "inputs",
    "vars",
    "triggers",
    "concurrency",
    "steps",
    "on_failure",
    "allow",
];

/// Compiles one runbook file against a catalogue of step kinds. A `runbook.call` is not
/// linked (its plan has no `calls`; a run of it is refused): use [`compile_with`] for that.
pub fn compile(source: &SourceFile, catalogue: &dyn Catalogue) -> Output {
    compile_inner(source, catalogue, None)
}

/// [`compile`], with the runbooks its `runbook.call` steps name found through `runbooks`,
/// checked, and embedded in the plan ([`Plan::calls`]).
pub fn compile_with(
    source: &SourceFile,
    catalogue: &dyn Catalogue,
    runbooks: &dyn Runbooks,
) -> Output {
    compile_inner(source, catalogue, Some(runbooks))
}

fn compile_inner(
    source: &SourceFile,
    catalogue: &dyn Catalogue,
    runbooks: Option<&dyn Runbooks>,
) -> Output {
    let (root, mut diagnostics) = yaml::parse(source);
    let mut plan = None;
    if let Some(root) = root {
        let mut cx = Cx {
            src: source,
            catalogue,
            runbooks,
            diags: std::mem::take(&mut diagnostics),
        };
        plan = cx.runbook(&root);
        diagnostics = cx.diags;
        lints::run(source, catalogue, &root, plan.as_ref(), &mut diagnostics);
    } else if diagnostics.is_empty() {
        diagnostics.push(
            Diagnostic::error(Code::MissingKey, Span::at(0, 0), "the file is empty")
                .with_help("a runbook needs at least `runbook`, `version`, `tenant` and `steps`"),
        );
    }
    diagnostics.sort_by_key(|d| (d.span.start, d.code));
    let has_errors = diagnostics.iter().any(Diagnostic::is_error);
    Output {
        plan: if has_errors { None } else { plan },
        diagnostics,
    }
}

/// The compiler's working state for one file.
pub(crate) struct Cx<'a> {
    pub src: &'a SourceFile,
    pub catalogue: &'a dyn Catalogue,
    /// Where `runbook.call` finds the runbooks it names (`None`: calls are not linked).
    pub runbooks: Option<&'a dyn Runbooks>,
    pub diags: Vec<Diagnostic>,
}

impl Cx<'_> {
    pub fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }

    /// Reports keys of `map` not in `allowed`, with a suggestion.
    pub fn unknown_keys(&mut self, map: &[(Key, Node)], allowed: &[&str], what: &str) {
        for (k, _) in map {
            if !allowed.contains(&k.name.as_str()) {
                let help = did_you_mean(&k.name, allowed.iter().copied()).unwrap_or_else(|| {
                    format!("{what} takes {}", crate::catalogue::quoted_list(allowed))
                });
                self.push(
                    Diagnostic::error(
                        Code::UnknownKey,
                        k.span,
                        format!("unknown key `{}` in {what}", k.name),
                    )
                    .with_label("not part of the runbook language")
                    .with_help(help),
                );
            }
        }
    }

    /// The node as a mapping, or a wrong-type error.
    pub fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Key, Node)]> {
        match &node.value {
            Value::Map(m) => Some(m),
            _ => {
                self.wrong_type(node, what, "a mapping");
                None
            }
        }
    }

    /// Reports that `node` is not what `what` must be.
    pub fn wrong_type(&mut self, node: &Node, what: &str, expected: &str) {
        self.push(
            Diagnostic::error(
                Code::WrongType,
                node.span,
                format!("{what} must be {expected}, found {}", node.type_name()),
            )
            .with_label(format!("expected {expected}")),
        );
    }

    /// A string value (numbers and booleans are not accepted).
    pub fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(node, what, "a string");
                None
            }
        }
    }

    /// A boolean value.
    pub fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong_type(node, what, "`true` or `false`");
                None
            }
        }
    }

    /// The source span of `needle` inside a scalar node's text (falls back to the node).
    pub fn span_in(&self, node: &Node, needle: &str) -> Span {
        let text = self.src.text();
        let start = node.span.start.min(text.len());
        let window_end = (start + 4096).min(text.len());
        let mut end = window_end;
        while end > start && !text.is_char_boundary(end) {
            end -= 1;
        }
        match text.get(start..end).and_then(|w| w.find(needle)) {
            Some(i) if !needle.is_empty() => Span::at(start + i, needle.len()),
            _ => node.span,
        }
    }

    fn runbook(&mut self, root: &Node) -> Option<Plan> {
        let map = self.map(root, "a runbook")?;
        self.unknown_keys(map, TOP_KEYS, "a runbook");
        let errors_before = self.error_count();

        let id = self.runbook_id(root);
        let version = self.version(root);
        let description = root.get("description").and_then(|n| match &n.value {
            Value::Null => None,
            _ => self.string(n, "`description`"),
        });
        let inputs = match root.get("inputs") {
            Some(n) => self.inputs(n),
            None => IndexMap::new(),
        };
        let all_vars: Vec<String> = root
            .get("vars")
            .and_then(Node::as_map)
            .map(|m| m.iter().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default();
        // Every declared input name is in scope, even one whose declaration has errors, so
        // one mistake does not cascade into "unknown input" everywhere it is used.
        let input_names: Vec<String> = root
            .get("inputs")
            .and_then(Node::as_map)
            .map(|m| m.iter().map(|(k, _)| k.name.clone()).collect())
            .unwrap_or_default();
        let mut scope = Scope::new(input_names).with_all_vars(all_vars);
        let tenant = match root.get("tenant") {
            Some(n) => self.template(n, &scope.with_roots(&[Root::Inputs]), "`tenant`"),
            None => {
                self.push(
                    Diagnostic::error(Code::MissingKey, first_key_span(root), "missing `tenant`")
                        .with_help("say which managed tenant the run acts on, e.g. `tenant: \"{{inputs.tenant}}\"`"),
                );
                None
            }
        };
        let vars = match root.get("vars") {
            Some(n) => self.vars(n, &mut scope),
            None => IndexMap::new(),
        };
        let steps = self.all_steps(root, &scope);
        let triggers = match root.get("triggers") {
            Some(n) => self.triggers(n, &inputs),
            None => Vec::new(),
        };
        let concurrency = root.get("concurrency").and_then(|n| {
            self.template(
                n,
                &scope.with_roots(&[Root::Inputs, Root::Vars, Root::Tenant]),
                "`concurrency`",
            )
        });

        if self.error_count() > errors_before {
            return None;
        }
        let (steps, on_failure) = steps?;
        let mut plan = Plan {
            runbook: id?,
            version: version?,
            description,
            source: self.src.name().to_string(),
            tenant: tenant?,
            inputs,
            vars,
            triggers,
            concurrency,
            steps,
            on_failure,
            calls: Default::default(),
            hash: String::new(),
        };
        self.link_calls(root, &mut plan);
        if self.error_count() > errors_before {
            return None;
        }
        plan.hash = plan.compute_hash();
        Some(plan)
    }

    fn runbook_id(&mut self, root: &Node) -> Option<String> {
        let Some(node) = root.get("runbook") else {
            self.push(
                Diagnostic::error(Code::MissingKey, first_key_span(root), "missing `runbook`")
                    .with_help("name the runbook, e.g. `runbook: onboard-user`"),
            );
            return None;
        };
        let id = self.string(node, "`runbook`")?;
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !id.starts_with('-');
        if !valid {
            self.push(
                Diagnostic::error(
                    Code::InvalidId,
                    node.span,
                    format!("invalid runbook id `{id}`"),
                )
                .with_label("lowercase letters, digits and `-` only")
                .with_help(format!("try `{}`", crate::template::slugify(&id))),
            );
            return None;
        }
        Some(id)
    }

    fn version(&mut self, root: &Node) -> Option<u32> {
        let Some(node) = root.get("version") else {
            self.push(
                Diagnostic::error(Code::MissingKey, first_key_span(root), "missing `version`")
                    .with_help("add `version: 1` and bump it on every change"),
            );
            return None;
        };
        match node.value {
            Value::Int(v) if v >= 1 && v <= i64::from(u32::MAX) => Some(v as u32),
            _ => {
                self.push(
                    Diagnostic::error(
                        Code::InvalidVersion,
                        node.span,
                        format!(
                            "`version` must be a positive integer, found {}",
                            describe(self.src, node)
                        ),
                    )
                    .with_label("not a positive integer"),
                );
                None
            }
        }
    }

    fn vars(&mut self, node: &Node, scope: &mut Scope) -> IndexMap<String, Template> {
        let mut out = IndexMap::new();
        let Some(map) = self.map(node, "`vars`") else {
            return out;
        };
        for (key, value) in map {
            let var_scope = scope.with_roots(&[
                Root::Inputs,
                Root::Vars,
                Root::Tenant,
                Root::Run,
                Root::Trigger,
                Root::Secrets,
            ]);
            if let Some(t) = self.template(value, &var_scope, &format!("var `{}`", key.name)) {
                out.insert(key.name.clone(), t);
            }
            scope.declare_var(&key.name);
        }
        out
    }

    /// Checks a template-bearing scalar and returns it as a [`Template`].
    pub fn template(&mut self, node: &Node, scope: &Scope, what: &str) -> Option<Template> {
        let text = match node.scalar_text() {
            Some(t) => t,
            None => {
                self.wrong_type(node, what, "a string");
                return None;
            }
        };
        let ok = self.check_template(node, &text, scope).is_some();
        ok.then(|| Template::new(text))
    }
}

/// A value as the author wrote it, for messages.
fn describe(src: &SourceFile, node: &Node) -> String {
    let text = src.slice(node.span);
    if text.is_empty() || text.len() > 40 {
        node.type_name().to_string()
    } else {
        format!("`{text}`")
    }
}

/// Where to point when a top-level key is missing: the first key of the file.
fn first_key_span(root: &Node) -> Span {
    root.as_map()
        .and_then(|m| m.first())
        .map(|(k, _)| k.span)
        .unwrap_or(root.span)
}
