//! Compiling `steps:` and `on_failure:`: each step's keys, its kind, and the control keys
//! (`needs if for_each max_parallel retry timeout continue_on_error compensate`).

use std::rc::Rc;

use super::graph::RawStep;
use super::scope::{Root, Scope, StepInfo, StepTable};
use super::Cx;
use crate::catalogue::{KindClass, KindSchema};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::duration::{self, HumanDuration};
use crate::plan::{Backoff, Compensation, RetryPolicy, Step};
use crate::source::Span;
use crate::template::Template;
use crate::yaml::{Key, Node, Value};

/// The keys a step may have.
pub const STEP_KEYS: &[&str] = &[
    "uses",
    "with",
    "needs",
    "if",
    "for_each",
    "max_parallel",
    "retry",
    "timeout",
    "continue_on_error",
    "compensate",
    "allow",
];

const RETRY_KEYS: &[&str] = &["attempts", "backoff", "delay", "max_delay"];
const STEP_ROOTS: &[Root] = &[
    Root::Inputs,
    Root::Vars,
    Root::Tenant,
    Root::Run,
    Root::Trigger,
    Root::Secrets,
    Root::Steps,
];

impl<'a> Cx<'a> {
    pub(super) fn all_steps(
        &mut self,
        root: &Node,
        scope: &Scope,
    ) -> Option<(Vec<Step>, Vec<Step>)> {
        let Some(steps_node) = root.get("steps") else {
            self.push(
                Diagnostic::error(
                    Code::MissingKey,
                    super::first_key_span(root),
                    "missing `steps`",
                )
                .with_help("a runbook needs at least one step"),
            );
            return None;
        };
        let main = self.map(steps_node, "`steps`")?;
        if main.is_empty() {
            self.push(Diagnostic::error(
                Code::NoSteps,
                steps_node.span,
                "`steps` is empty",
            ));
        }
        let failure: &[(Key, Node)] = match root.get("on_failure") {
            Some(n) if !matches!(n.value, Value::Null) => {
                self.map(n, "`on_failure`").unwrap_or(&[])
            }
            _ => &[],
        };
        let mut table = StepTable::new();
        for (key, node) in main {
            table.insert(key.name.clone(), self.step_info(node, false));
        }
        for (key, node) in failure {
            if table.contains_key(&key.name) {
                self.push(
                    Diagnostic::error(
                        Code::DuplicateKey,
                        key.span,
                        format!(
                            "step id `{}` is used in both `steps` and `on_failure`",
                            key.name
                        ),
                    )
                    .with_label("defined again here"),
                );
                continue;
            }
            table.insert(key.name.clone(), self.step_info(node, true));
        }
        let table = Rc::new(table);
        let main_raw: Vec<RawStep> = main
            .iter()
            .filter_map(|(k, n)| self.step(k, n, &scope.with_steps(table.clone(), false), false))
            .collect();
        let failure_raw: Vec<RawStep> = failure
            .iter()
            .filter(|(k, _)| table.get(&k.name).is_some_and(|i| i.on_failure))
            .filter_map(|(k, n)| self.step(k, n, &scope.with_steps(table.clone(), true), true))
            .collect();
        let all_valid = main_raw.len() == main.len()
            && failure_raw.len() == failure.len()
            && main_raw.iter().chain(&failure_raw).all(|r| r.valid);
        let main_ids: Vec<&str> = main.iter().map(|(k, _)| k.name.as_str()).collect();
        let steps = self.order(main_raw, "steps", &[]);
        let on_failure = self.order(failure_raw, "on_failure", &main_ids);
        let (steps, on_failure) = (steps?, on_failure?);
        all_valid.then_some((steps, on_failure))
    }

    fn step_info(&self, node: &Node, on_failure: bool) -> StepInfo {
        let outputs = node
            .get("uses")
            .and_then(Node::as_str)
            .and_then(|k| self.catalogue.get(k))
            .map(|k| k.outputs.iter().map(|o| o.name.clone()).collect());
        StepInfo {
            outputs,
            for_each: node.get("for_each").is_some(),
            on_failure,
        }
    }

    fn step(&mut self, key: &Key, node: &Node, scope: &Scope, on_failure: bool) -> Option<RawStep> {
        let before = self.diags.len();
        let id = &key.name;
        if !is_step_id(id) {
            self.push(
                Diagnostic::error(Code::InvalidId, key.span, format!("invalid step id `{id}`"))
                    .with_label("letters, digits, `_` and `-`, starting with a letter"),
            );
        }
        let map = self.map(node, &format!("step `{id}`"))?;
        self.unknown_keys(map, STEP_KEYS, "a step");
        let has_for_each = node.get("for_each").is_some();
        let mut roots = STEP_ROOTS.to_vec();
        if has_for_each {
            roots.push(Root::Item);
        }
        let step_scope = scope.with_roots(&roots);
        let mut refs = Vec::new();

        let kind = self.uses(node, key, &format!("step `{id}`"));
        let with_entry = map.iter().find(|(k, _)| k.name == "with");
        let with = match kind {
            Some(kind) => self.check_with(kind, with_entry, key.span, &step_scope, &mut refs),
            None => serde_json::Value::Null,
        };
        if let Some(kind) = kind {
            self.kind_rules(kind, node, id);
        }

        let needs = self.needs(node);
        let condition = node.get("if").and_then(|n| match &n.value {
            Value::Bool(b) => Some(Template::new(b.to_string())),
            _ => {
                let text = self.string(n, "`if`")?;
                refs.extend(self.check_template(n, &text, &step_scope)?);
                Some(Template::new(text))
            }
        });
        let for_each = node.get("for_each").and_then(|n| {
            let scope = scope.with_roots(STEP_ROOTS);
            match &n.value {
                Value::Seq(_) => {
                    let mut value_refs = Vec::new();
                    self.check_any(n, &scope, &mut value_refs);
                    refs.extend(value_refs);
                    Some(n.to_json())
                }
                Value::Str(text) if crate::template::contains_expression(text) => {
                    refs.extend(self.check_template(n, text, &scope)?);
                    Some(serde_json::Value::String(text.clone()))
                }
                _ => {
                    self.wrong_type(n, "`for_each`", "a template that renders a list, or a list");
                    None
                }
            }
        });
        let max_parallel = node.get("max_parallel").and_then(|n| match n.value {
            Value::Int(v) if v >= 1 && v <= i64::from(u32::MAX) => {
                if !has_for_each {
                    self.push(
                        Diagnostic::error(
                            Code::InvalidParallelism,
                            n.span,
                            "`max_parallel` needs `for_each`",
                        )
                        .with_label("this step runs once")
                        .with_help("remove `max_parallel` or add `for_each`"),
                    );
                }
                Some(v as u32)
            }
            _ => {
                self.push(
                    Diagnostic::error(
                        Code::InvalidParallelism,
                        n.span,
                        "`max_parallel` must be a positive integer",
                    )
                    .with_label("expected 1 or more"),
                );
                None
            }
        });
        let retry = node.get("retry").and_then(|n| self.retry(n));
        let timeout = node.get("timeout").and_then(|n| {
            if let Some(kind) = kind.filter(|k| k.class != KindClass::Action) {
                let instead = if kind.class == KindClass::Approval {
                    "`with.expires`"
                } else {
                    "`with.until` or `with.for`"
                };
                self.push(
                    Diagnostic::error(
                        Code::MisplacedTimeout,
                        n.span,
                        format!("`{}` steps do not take `timeout`", kind.kind),
                    )
                    .with_label("not used by this kind")
                    .with_help(format!("bound how long it waits with {instead}")),
                );
                return None;
            }
            self.duration(n, "`timeout`")
        });
        let continue_on_error = match node.get("continue_on_error") {
            Some(n) => self.boolean(n, "`continue_on_error`").unwrap_or(false),
            None => false,
        };
        let compensate = node.get("compensate").and_then(|n| {
            let map = self.map(n, "`compensate`")?;
            self.unknown_keys(map, &["uses", "with"], "`compensate`");
            let kind = self.uses(n, key, "`compensate`")?;
            let with_entry = map.iter().find(|(k, _)| k.name == "with");
            let mut comp_refs = Vec::new();
            let with = self.check_with(kind, with_entry, n.span, &step_scope, &mut comp_refs);
            Some(Compensation {
                uses: kind.kind.clone(),
                with,
            })
        });

        let valid = kind.is_some() && !self.diags[before..].iter().any(Diagnostic::is_error);
        Some(RawStep {
            step: Step {
                id: id.clone(),
                uses: kind.map_or_else(String::new, |k| k.kind.clone()),
                class: kind.map_or(KindClass::Action, |k| k.class),
                with,
                needs: Vec::new(),
                condition,
                for_each,
                max_parallel,
                retry,
                timeout,
                continue_on_error,
                compensate,
                location: self.src.location(key.span.start),
            },
            key_span: key.span,
            needs,
            refs,
            on_failure,
            valid,
        })
    }

    fn uses(&mut self, node: &Node, key: &Key, what: &str) -> Option<&'a KindSchema> {
        let Some(uses) = node.get("uses") else {
            self.push(
                Diagnostic::error(Code::MissingKey, key.span, format!("{what} has no `uses`"))
                    .with_label("which step kind does this run?")
                    .with_help("add `uses: <kind>`; `tenure schema` lists every kind"),
            );
            return None;
        };
        let name = self.string(uses, "`uses`")?;
        let catalogue: &'a dyn crate::catalogue::Catalogue = self.catalogue;
        match catalogue.get(&name) {
            Some(k) => {
                if let Some(why) = &k.unavailable {
                    self.push(
                        Diagnostic::error(
                            Code::UnavailableKind,
                            uses.span,
                            format!("step kind `{name}` is not available: {why}"),
                        )
                        .with_label("not available in this version of Tenure")
                        .with_help(
                            "remove the step until the kind ships, or call the vendor's API with `http.request`",
                        ),
                    );
                }
                // Its `with` is still checked, so every error of the step shows at once.
                Some(k)
            }
            None => {
                let kinds = catalogue.kinds();
                let help =
                    did_you_mean(&name, kinds.iter().map(|k| k.kind.as_str())).or_else(|| {
                        let prefix = name.split('.').next().unwrap_or("");
                        let family: Vec<&str> = kinds
                            .iter()
                            .map(|k| k.kind.as_str())
                            .filter(|k| k.starts_with(&format!("{prefix}.")))
                            .collect();
                        (!family.is_empty()).then(|| {
                            format!(
                                "`{prefix}` kinds are {}",
                                crate::catalogue::quoted_list(&family)
                            )
                        })
                    });
                self.push(
                    Diagnostic::error(
                        Code::UnknownKind,
                        uses.span,
                        format!("unknown step kind `{name}`"),
                    )
                    .with_label("no such kind")
                    .with_help(help.unwrap_or_else(|| "`tenure schema` lists every kind".into())),
                );
                None
            }
        }
    }

    fn needs(&mut self, node: &Node) -> Vec<(String, Span)> {
        let Some(n) = node.get("needs") else {
            return Vec::new();
        };
        match &n.value {
            Value::Str(s) => vec![(s.clone(), n.span)],
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.string(i, "an entry of `needs`").map(|s| (s, i.span)))
                .collect(),
            Value::Null => Vec::new(),
            _ => {
                self.wrong_type(n, "`needs`", "a step id or a list of step ids");
                Vec::new()
            }
        }
    }

    fn retry(&mut self, n: &Node) -> Option<RetryPolicy> {
        let mut policy = RetryPolicy {
            attempts: 3,
            backoff: Backoff::Exponential,
            delay: HumanDuration(std::time::Duration::from_secs(1)),
            max_delay: HumanDuration(std::time::Duration::from_secs(300)),
        };
        let attempts_of = |cx: &mut Self, n: &Node| match n.value {
            Value::Int(v) if (1..=1000).contains(&v) => Some(v as u32),
            _ => {
                cx.push(
                    Diagnostic::error(
                        Code::InvalidRetry,
                        n.span,
                        "`attempts` must be an integer from 1 to 1000",
                    )
                    .with_label("attempts in all, the first included"),
                );
                None
            }
        };
        match &n.value {
            Value::Int(_) => policy.attempts = attempts_of(self, n)?,
            Value::Map(map) => {
                self.unknown_keys(map, RETRY_KEYS, "`retry`");
                if let Some(a) = n.get("attempts") {
                    policy.attempts = attempts_of(self, a)?;
                }
                if let Some(b) = n.get("backoff") {
                    let name = self.string(b, "`backoff`")?;
                    policy.backoff = match name.as_str() {
                        "exponential" => Backoff::Exponential,
                        "linear" => Backoff::Linear,
                        "fixed" => Backoff::Fixed,
                        _ => {
                            self.push(
                                Diagnostic::error(
                                    Code::InvalidRetry,
                                    b.span,
                                    format!("unknown backoff `{name}`"),
                                )
                                .with_help(
                                    did_you_mean(&name, Backoff::NAMES.iter().copied())
                                        .unwrap_or_else(|| {
                                            format!(
                                                "backoffs are {}",
                                                crate::catalogue::quoted_list(Backoff::NAMES)
                                            )
                                        }),
                                ),
                            );
                            return None;
                        }
                    };
                }
                if let Some(d) = n.get("delay") {
                    policy.delay = self.duration(d, "`delay`")?;
                }
                if let Some(d) = n.get("max_delay") {
                    policy.max_delay = self.duration(d, "`max_delay`")?;
                }
                if policy.max_delay < policy.delay {
                    self.push(
                        Diagnostic::error(
                            Code::InvalidRetry,
                            n.get("max_delay").map_or(n.span, |m| m.span),
                            format!(
                                "`max_delay` ({}) is shorter than `delay` ({})",
                                policy.max_delay, policy.delay
                            ),
                        )
                        .with_label("must be at least `delay`"),
                    );
                    return None;
                }
            }
            _ => {
                self.wrong_type(n, "`retry`", "a mapping or a number of attempts");
                return None;
            }
        }
        Some(policy)
    }

    /// Parses a duration value, reporting RB0050 on failure.
    pub(crate) fn duration(&mut self, n: &Node, what: &str) -> Option<HumanDuration> {
        let text = match &n.value {
            Value::Str(s) => s.clone(),
            _ => {
                self.push(
                    Diagnostic::error(
                        Code::InvalidDuration,
                        n.span,
                        format!("{what} must be a duration such as `30s`, `10m` or `48h`"),
                    )
                    .with_label("expected a number with a unit"),
                );
                return None;
            }
        };
        match duration::parse(&text) {
            Ok(d) => Some(HumanDuration(d)),
            Err(e) => {
                self.push(
                    Diagnostic::error(
                        Code::InvalidDuration,
                        n.span,
                        format!("invalid duration in {what}: {e}"),
                    )
                    .with_label("not a duration"),
                );
                None
            }
        }
    }

    /// Rules a kind's schema cannot say: an approval's quorum must be reachable, a wait needs
    /// exactly one of `until` and `for`.
    fn kind_rules(&mut self, kind: &KindSchema, node: &Node, id: &str) {
        let with = node.get("with");
        match kind.class {
            KindClass::Approval => {
                let approvers = with.and_then(|w| w.get("approvers")).and_then(Node::as_seq);
                let quorum = with.and_then(|w| w.get("quorum"));
                if let (Some(approvers), Some(q)) = (approvers, quorum) {
                    // One person counts once, however often they are listed.
                    let mut people: Vec<String> = approvers
                        .iter()
                        .map(|a| a.scalar_text().unwrap_or_default().trim().to_lowercase())
                        .collect();
                    people.sort();
                    people.dedup();
                    let distinct = people.len();
                    if let Value::Int(n) = q.value {
                        if n < 1 || n as usize > distinct {
                            self.push(
                                Diagnostic::error(
                                    Code::InvalidApproval,
                                    q.span,
                                    format!(
                                        "approval `{id}` needs a quorum of {n} but lists {distinct} distinct approver(s)",
                                    ),
                                )
                                .with_label("can never be reached")
                                .with_help(format!("use a quorum from 1 to {distinct}")),
                            );
                        }
                    }
                }
                if let Some(a) = approvers.filter(|a| a.is_empty()) {
                    let span = with
                        .and_then(|w| w.get("approvers"))
                        .map_or(node.span, |n| n.span);
                    let _ = a;
                    self.push(
                        Diagnostic::error(
                            Code::InvalidApproval,
                            span,
                            format!("approval `{id}` has no approvers"),
                        )
                        .with_label("empty list"),
                    );
                }
            }
            KindClass::Wait => {
                let until = with.and_then(|w| w.get("until"));
                let for_ = with.and_then(|w| w.get("for"));
                if until.is_some() == for_.is_some() {
                    let span = with.map_or(node.span, |w| w.span);
                    self.push(
                        Diagnostic::error(
                            Code::InvalidWait,
                            span,
                            format!("wait `{id}` needs exactly one of `until` and `for`"),
                        )
                        .with_help("`until: 2026-03-01T17:00:00+11:00` or `for: 2h`"),
                    );
                }
            }
            KindClass::Action => {}
        }
    }
}

/// Whether `s` is a valid step id.
fn is_step_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
