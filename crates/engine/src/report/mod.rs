//! The run report: what a run did, step by step, in words a service desk reads without knowing
//! what a journal is: what changed, what was skipped and why, warnings, failures with the
//! vendor's message, approvals (who, when, their comment) and waits. It is derived from the
//! journal and the pinned plan alone (never from sealed values), so secrets show as `***`.
//! Every value in it (a display name, a vendor's message, a comment) is escaped as Markdown
//! text on one line, so it cannot add links, images or lines to the report.
//! Each kind's wording is a row of a table (`report/wording.rs`); this module only gathers the
//! facts.

mod wording;

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Map, Value};
use tenure_runbook::{Catalogue, Plan, Renderer, Step, Template};

use crate::journal::{redact, Event, EventKind};

/// At most this many item lines of one `for_each` step, and lines of warnings or failures,
/// so a run over thousands of items still makes a report a ticket note or a Teams message
/// can carry; the rest are counted.
const MAX_LINES: usize = 25;

/// A run report in Markdown (for tickets, Teams and terminals) and HTML (for email).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The report as Markdown.
    pub markdown: String,
}

impl Report {
    /// The report as HTML (raw HTML in values is escaped).
    pub fn html(&self) -> String {
        tenure_steps::markdown::to_html(&self.markdown)
    }
}

/// What happened to one instance of a step.
#[derive(Default)]
struct Instance {
    attempts: u32,
    output: Option<Value>,
    failure: Option<(String, String, bool)>,
    gave_up: Option<String>,
    deferred: Option<String>,
    skipped: Option<String>,
    started: bool,
    /// When a `wait` instance resumes, while it waits.
    waiting_until: Option<String>,
}

/// What happened to one step.
#[derive(Default)]
struct StepFacts {
    instances: BTreeMap<u32, Instance>,
    skipped: Option<String>,
    approval: Approval,
    seen: bool,
}

#[derive(Default)]
struct Approval {
    requested: Option<(Vec<String>, String)>,
    decisions: Vec<(String, String, String, String, Option<String>)>,
    resolved: Option<String>,
}

/// Builds the report of a run from its pinned plan, its stored context (inputs, vars, tenant;
/// sealed values are shown as `***`) and its journal. `leave_out` names a step not to report
/// (the step whose `with` is being rendered, for `{{run.report}}`).
pub fn build(plan: &Plan, context: &Value, events: &[Event], leave_out: Option<&str>) -> Report {
    let catalogue = tenure_steps::catalogue();
    let renderer = Renderer::new();
    let mut facts: HashMap<&str, StepFacts> = HashMap::new();
    let mut run = RunFacts::default();
    for e in events {
        run.id.clone_from(&e.run_id);
        let at = short_time(&e.at);
        match &e.kind {
            EventKind::RunCreated {
                runbook,
                version,
                trigger,
                ..
            } => {
                run.started = Some(at);
                run.title = format!("{runbook} v{version}");
                run.trigger = md_text(trigger);
            }
            EventKind::StepReady { step, .. } => step_mut(&mut facts, step).seen = true,
            EventKind::AttemptStarted {
                step,
                item,
                attempt,
                ..
            } => {
                let f = step_mut(&mut facts, step);
                f.seen = true;
                let i = f.instances.entry(item.unwrap_or(0)).or_default();
                i.started = true;
                i.attempts = i.attempts.max(*attempt);
            }
            EventKind::AttemptSucceeded {
                step, item, output, ..
            } => {
                let i = instance(&mut facts, step, *item);
                i.output = Some(output.clone());
                i.deferred = None;
            }
            EventKind::AttemptFailed {
                step,
                item,
                class,
                code,
                message,
                ..
            } => {
                instance(&mut facts, step, *item).failure =
                    Some((md_text(code), md_text(message), class == "permanent"))
            }
            EventKind::AttemptDeferred {
                step, item, reason, ..
            } => instance(&mut facts, step, *item).deferred = Some(md_text(reason)),
            EventKind::GaveUp { step, item, reason } => {
                instance(&mut facts, step, *item).gave_up = Some(md_text(reason))
            }
            EventKind::StepSkipped { step, item, reason } => match item {
                Some(i) => instance(&mut facts, step, Some(*i)).skipped = Some(reason.clone()),
                None => step_mut(&mut facts, step).skipped = Some(reason.clone()),
            },
            EventKind::ApprovalRequested {
                step,
                approvers,
                expires_at,
                ..
            } => {
                step_mut(&mut facts, step).approval.requested = Some((
                    approvers.iter().map(|a| md_text(a)).collect(),
                    short_time(expires_at),
                ))
            }
            EventKind::ApprovalDecided {
                step,
                approver,
                decision,
                source,
                comment,
                ..
            } => step_mut(&mut facts, step).approval.decisions.push((
                md_text(approver),
                decision.clone(),
                source.clone(),
                at,
                comment.as_deref().map(md_text),
            )),
            EventKind::ApprovalResolved { step, decision, .. } => {
                step_mut(&mut facts, step).approval.resolved = Some(decision.clone())
            }
            EventKind::TimerSet {
                step,
                at: when,
                reason,
                item,
            } if reason.as_deref() == Some("wait") => {
                instance(&mut facts, step, *item).waiting_until = Some(short_time(when))
            }
            // A wait ends with its timer (the journal names the step, not the instance: the
            // first one still waiting resumes).
            EventKind::TimerFired { step } => {
                if let Some(i) = facts.get_mut(step.as_str()).and_then(|f| {
                    f.instances
                        .values_mut()
                        .find(|i| i.waiting_until.is_some() && i.output.is_none())
                }) {
                    i.waiting_until = None;
                    i.output = Some(json!({ "resumed_at": e.at }));
                }
            }
            // A called run ended: its outputs are the calling step's.
            EventKind::ChildRunEnded {
                step,
                item,
                output: Some(output),
                ..
            } => instance(&mut facts, step, *item).output = Some(output.clone()),
            EventKind::OnFailureStarted { failed_step } => {
                run.failed_step = Some(failed_step.clone())
            }
            EventKind::RunCancelled { by } => {
                run.notes.push(format!("Cancelled by {}.", md_text(by)))
            }
            EventKind::RunRetried { steps, by } => run.notes.push(if steps.is_empty() {
                format!("Retried by {} at {at}.", md_text(by))
            } else {
                format!("Retried by {} at {at} ({}).", md_text(by), steps.join(", "))
            }),
            EventKind::RollbackStarted { by } => run
                .notes
                .push(format!("Rolled back by {} at {at}.", md_text(by))),
            EventKind::RunFinished { status, error } => {
                run.finished = Some((status.clone(), at, error.as_deref().map(md_text)))
            }
            _ => {}
        }
    }

    // The context the report renders `with` in: what is journaled (secrets `***`).
    let mut ctx = redact(context);
    ctx["run"]["id"] = json!(run.id);
    ctx["run"]["report"] = json!("");
    let mut steps_ctx = Map::new();
    let mut names: HashMap<String, String> = HashMap::new();
    for s in plan.steps.iter().chain(&plan.on_failure) {
        let outputs: Vec<Value> = facts
            .get(s.id.as_str())
            .map(|f| {
                f.instances
                    .values()
                    .filter_map(|i| i.output.clone())
                    .collect()
            })
            .unwrap_or_default();
        for o in &outputs {
            if let (Some(id), Some(upn)) = (o["id"].as_str(), o["user_principal_name"].as_str()) {
                names.insert(id.to_string(), upn.to_string());
            }
        }
        let value = if s.for_each.is_some() {
            Value::Array(outputs)
        } else {
            outputs.into_iter().next().unwrap_or_else(|| {
                let declared = catalogue.get(&s.uses).map(|k| &k.outputs);
                Value::Object(
                    declared
                        .into_iter()
                        .flatten()
                        .map(|o| (o.name.clone(), Value::Null))
                        .collect(),
                )
            })
        };
        steps_ctx.insert(s.id.clone(), json!({ "outputs": value }));
    }
    ctx["steps"] = Value::Object(steps_ctx);
    if let Some(failed) = &run.failed_step {
        ctx["run"]["failed_step"] = json!(failed);
    }

    // A user a step named by user principal name, known by the object id it reported.
    for s in plan.steps.iter().chain(&plan.on_failure) {
        let Some(Value::String(t)) = s.with.get("user") else {
            continue;
        };
        let Ok(Value::String(upn)) = renderer.render_value(&Template::new(t.clone()), &ctx) else {
            continue;
        };
        if !upn.contains('@') {
            continue;
        }
        for i in facts
            .get(s.id.as_str())
            .into_iter()
            .flat_map(|f| f.instances.values())
        {
            if let Some(id) = i.output.as_ref().and_then(|o| o["id"].as_str()) {
                names.entry(id.to_string()).or_insert_with(|| upn.clone());
            }
        }
    }
    let cx = Cx {
        catalogue: &catalogue,
        renderer: &renderer,
        ctx: &ctx,
        names: &names,
        finished: run.finished.is_some() || run.failed_step.is_some(),
        ended: run.finished.is_some(),
    };
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    let mut not_run = Vec::new();
    let finished = run.finished.is_some();
    for (s, recovery) in plan
        .steps
        .iter()
        .map(|s| (s, false))
        .chain(plan.on_failure.iter().map(|s| (s, true)))
    {
        if leave_out == Some(s.id.as_str()) {
            continue;
        }
        let Some(f) = facts
            .get(s.id.as_str())
            .filter(|f| f.seen || f.skipped.is_some())
        else {
            if finished && !recovery && crate::machine::undone_step(&s.id).is_none() {
                not_run.push(format!("**{}**", s.id));
            }
            continue;
        };
        let mut out = cx.step_lines(s, f, &mut warnings, &mut failures);
        if recovery && !out.is_empty() {
            out[0] = out[0].replacen("**: ", "** (after the failure): ", 1);
        }
        lines.extend(out);
    }

    let mut md = String::new();
    md.push_str(&format!("## Run report: {}\n\n", run.title));
    let status = match &run.finished {
        Some((status, at, _)) => format!("**{}** at {at}", outcome_word(status)),
        None => match &run.failed_step {
            Some(step) => format!("**Failed** at **{step}**; the `on_failure` steps are running"),
            None => "**In progress**: the report so far".to_string(),
        },
    };
    let tenant = match (ctx["tenant"]["name"].as_str(), ctx["tenant"]["id"].as_str()) {
        (Some(n), Some(id)) if n != id => format!(" for {} ({})", md_text(n), md_text(id)),
        (_, Some(id)) => format!(" for {}", md_text(id)),
        _ => String::new(),
    };
    md.push_str(&format!("{status}. Run `{}`{tenant}", run.id));
    if let Some(at) = &run.started {
        md.push_str(&format!(", started {at} ({})", trigger_words(&run.trigger)));
    }
    md.push_str(".\n");
    for n in &run.notes {
        md.push_str(&format!("{n}\n"));
    }
    if let Some((_, _, Some(error))) = &run.finished {
        md.push_str(&format!("\nWhy it stopped: {error}\n"));
    }
    md.push_str("\n### Steps\n\n");
    if lines.is_empty() {
        md.push_str("Nothing has run yet.\n");
    }
    for l in &lines {
        md.push_str(l);
        md.push('\n');
    }
    if !not_run.is_empty() {
        md.push_str(&format!(
            "\nNot run (the run ended first): {}.\n",
            not_run.join(", ")
        ));
    }
    for (title, list) in [("Warnings", &warnings), ("Failures", &failures)] {
        if list.is_empty() {
            continue;
        }
        md.push_str(&format!("\n### {title}\n\n"));
        for l in list.iter().take(MAX_LINES) {
            md.push_str(&format!("- {l}\n"));
        }
        if list.len() > MAX_LINES {
            md.push_str(&format!(
                "- \u{2026} and {} more (`tenure log {}` has them all).\n",
                list.len() - MAX_LINES,
                run.id
            ));
        }
    }
    Report { markdown: md }
}

#[derive(Default)]
struct RunFacts {
    id: String,
    title: String,
    trigger: String,
    started: Option<String>,
    finished: Option<(String, String, Option<String>)>,
    failed_step: Option<String>,
    notes: Vec<String>,
}

fn step_mut<'a, 'm>(
    facts: &'m mut HashMap<&'a str, StepFacts>,
    step: &'a str,
) -> &'m mut StepFacts {
    facts.entry(step).or_default()
}

fn instance<'a, 'm>(
    facts: &'m mut HashMap<&'a str, StepFacts>,
    step: &'a str,
    item: Option<u32>,
) -> &'m mut Instance {
    let f = facts.entry(step).or_default();
    f.seen = true;
    f.instances.entry(item.unwrap_or(0)).or_default()
}

struct Cx<'a> {
    catalogue: &'a tenure_runbook::SchemaCatalogue,
    renderer: &'a Renderer,
    ctx: &'a Value,
    names: &'a HashMap<String, String>,
    finished: bool,
    /// The run has ended: nothing still waiting will go on.
    ended: bool,
}

impl Cx<'_> {
    /// The lines of one step: one bullet, with one sub-bullet per `for_each` item.
    fn step_lines(
        &self,
        s: &Step,
        f: &StepFacts,
        warnings: &mut Vec<String>,
        failures: &mut Vec<String>,
    ) -> Vec<String> {
        let head = format!("- **{}**: ", s.id);
        if let Some(reason) = &f.skipped {
            return vec![format!("{head}Skipped: {}.", skip_words(reason))];
        }
        if s.uses == "approval" {
            return vec![format!("{head}{}", approval_words(&f.approval, self.ended))];
        }
        let items = s.for_each.as_ref().map(|fe| self.items(fe));
        // What the step's templates read of the context, picked once for all its items.
        let picked = crate::names::names_of(&s.with).map(|n| n.pick(self.ctx));
        let base = picked.as_ref().unwrap_or(self.ctx);
        let mut texts = Vec::new();
        for (idx, inst) in &f.instances {
            let item = items
                .as_ref()
                .map(|list| list.get(*idx as usize).cloned().unwrap_or(Value::Null));
            let label = item.as_ref().map(|v| md_text(&display(v, self.names)));
            let (text, warn, fail) = self.instance_words(s, inst, item, base);
            let place = match &label {
                Some(l) => format!("**{}** ({l})", s.id),
                None => format!("**{}**", s.id),
            };
            if let Some(w) = warn {
                warnings.push(format!("{place}: {w}"));
            }
            if let Some(e) = fail {
                failures.push(format!("{place}: {e}"));
            }
            texts.push((label, text));
        }
        match (items.is_some(), texts.len()) {
            (_, 0) if self.ended => vec![format!("{head}The run ended before it started.")],
            (_, 0) => vec![format!("{head}Waiting to start.")],
            (false, _) | (true, 1) => vec![format!("{head}{}", texts[0].1)],
            (true, _) => {
                let mut out = vec![format!("{head}{} item(s):", texts.len())];
                let more = texts.len().saturating_sub(MAX_LINES);
                out.extend(
                    texts
                        .into_iter()
                        .take(MAX_LINES)
                        .map(|(_, t)| format!("  - {t}")),
                );
                if more > 0 {
                    out.push(format!("  - \u{2026} and {more} more item(s)."));
                }
                out
            }
        }
    }

    /// The wording of one instance, and its warning and failure, if any.
    fn instance_words(
        &self,
        s: &Step,
        inst: &Instance,
        item: Option<Value>,
        base: &Value,
    ) -> (String, Option<String>, Option<String>) {
        if let Some(reason) = &inst.skipped {
            return (format!("Skipped: {}.", skip_words(reason)), None, None);
        }
        let retries = if inst.attempts > 1 {
            format!(" (after {} attempts)", inst.attempts)
        } else {
            String::new()
        };
        if let Some(output) = &inst.output {
            let with = self.with_of(s, item, base);
            let facts = self.wording_context(s, &with, output);
            let row = wording::TABLE.iter().find(|r| r.kind == s.uses);
            let text = row
                .and_then(|r| self.render(r.done, &facts))
                .unwrap_or_else(|| format!("Done ({}).", s.uses));
            let warn = row
                .and_then(|r| r.warn)
                .and_then(|w| self.render(w, &facts))
                .filter(|w| !w.trim().is_empty());
            return (format!("{}{retries}", sentence(&text)), warn, None);
        }
        let permanent = inst.failure.as_ref().is_some_and(|f| f.2);
        if inst.gave_up.is_some() || (inst.failure.is_some() && (permanent || self.finished)) {
            let vendor = inst
                .failure
                .as_ref()
                .map(|(code, msg, _)| format!("{msg} ({code})"))
                .unwrap_or_default();
            let why = match &inst.gave_up {
                Some(reason) => format!(" {}", sentence(reason)),
                None if permanent => " Not retried: retrying cannot fix this.".to_string(),
                None => String::new(),
            };
            let message = if vendor.is_empty() {
                format!("Failed after {} attempt(s).{why}", inst.attempts.max(1))
            } else {
                format!(
                    "Failed after {} attempt(s): {vendor}.{why}",
                    inst.attempts.max(1),
                )
            };
            let text = if s.continue_on_error {
                format!("{message} The run carried on (`continue_on_error`).")
            } else {
                message.clone()
            };
            let fail = if s.continue_on_error {
                None
            } else {
                Some(message)
            };
            let warn = s.continue_on_error.then(|| match &inst.gave_up {
                _ if !vendor.is_empty() => format!("failed and the run carried on: {vendor}"),
                Some(reason) => format!("failed and the run carried on: {reason}"),
                None => "failed and the run carried on".to_string(),
            });
            return (text, warn, fail);
        }
        if self.ended && inst.waiting_until.is_none() {
            let text = if inst.started {
                "Started; the run ended before it finished."
            } else {
                "The run ended before it started."
            };
            return (text.into(), None, None);
        }
        if let Some(reason) = &inst.deferred {
            return (
                format!("Not ready yet, looking again later: {reason}."),
                None,
                None,
            );
        }
        if let Some(until) = &inst.waiting_until {
            if self.ended {
                return (
                    format!("Was waiting until {until} when the run ended."),
                    None,
                    None,
                );
            }
            return (format!("Waiting until {until}."), None, None);
        }
        if let Some((code, msg, _)) = &inst.failure {
            return (
                format!(
                    "Attempt {} failed ({code}: {msg}); it will be retried.",
                    inst.attempts
                ),
                None,
                None,
            );
        }
        if inst.started {
            return ("In progress.".into(), None, None);
        }
        ("Waiting to start.".into(), None, None)
    }

    fn items(&self, for_each: &Value) -> Vec<Value> {
        match for_each {
            Value::Array(a) => a.clone(),
            Value::String(t) => self
                .renderer
                .render_value(&Template::new(t.clone()), self.ctx)
                .ok()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The step's `with` rendered against `base` (the journaled context, or the part of it
    /// the step's templates name), every declared parameter present (null when not written
    /// or when it cannot be rendered).
    fn with_of(&self, s: &Step, item: Option<Value>, base: &Value) -> Value {
        let mut ctx = base.clone();
        if let Some(item) = item {
            ctx["item"] = item;
        }
        let rendered = self
            .renderer
            .render_tree(&s.with, &ctx)
            .unwrap_or_else(|_| {
                // One field that cannot be rendered (it needs a secret) does not lose the rest.
                let mut out = Map::new();
                for (k, v) in s.with.as_object().into_iter().flatten() {
                    if let Ok(r) = self.renderer.render_tree(v, &ctx) {
                        out.insert(k.clone(), r);
                    }
                }
                Value::Object(out)
            });
        let mut map = match rendered {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for p in self
            .catalogue
            .get(&s.uses)
            .into_iter()
            .flat_map(|k| &k.params)
        {
            let v = map.entry(p.name.clone()).or_insert(Value::Null);
            if v.is_null() {
                if let Some(d) = &p.default {
                    *v = d.clone();
                }
            }
        }
        Value::Object(map)
    }

    /// What a wording row may name: `with`, `out`, and friendly names (`user`, `sku`,
    /// `source`, and every list output joined as `list.<name>`).
    fn wording_context(&self, s: &Step, with: &Value, output: &Value) -> Value {
        let mut out = match output {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        for o in self
            .catalogue
            .get(&s.uses)
            .into_iter()
            .flat_map(|k| &k.outputs)
        {
            out.entry(o.name.clone()).or_insert(Value::Null);
        }
        let lists: Map<String, Value> = out
            .iter()
            .filter_map(|(k, v)| {
                let a = v.as_array()?;
                let words: Vec<String> = a
                    .iter()
                    .map(|x| match x.as_str() {
                        Some(sku) if s.uses.starts_with("licence.") => wording::sku_name(sku),
                        // Field names (`job_title`) as words.
                        Some(field) if k == "changed" => field.replace('_', " "),
                        _ => display(x, self.names),
                    })
                    .collect();
                Some((k.clone(), json!(words.join(", "))))
            })
            .collect();
        let sku = out
            .get("sku")
            .and_then(Value::as_str)
            .or_else(|| with["sku"].as_str())
            .map(wording::sku_name);
        md_values(json!({
            "with": with,
            "out": out,
            "user": display(&with["user"], self.names),
            "sku": sku,
            "source": with["source"].as_str().map(wording::source_name),
            "list": lists,
        }))
    }

    fn render(&self, template: &str, ctx: &Value) -> Option<String> {
        self.renderer
            .render_text(&Template::new(template), ctx)
            .map_err(|e| tracing::debug!("report wording: {e}"))
            .ok()
    }
}

/// A value as the report shows it: a known user id as its user principal name.
fn display(v: &Value, names: &HashMap<String, String>) -> String {
    match v {
        Value::String(s) => names.get(s).cloned().unwrap_or_else(|| s.clone()),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Text as Markdown that shows it as written, on one line: line breaks become spaces, and
/// the characters that start a link, an image, an autolink or emphasis are escaped
/// (`_` only at a word's edge, where it could emphasise, so `first_last@x` stays readable;
/// backticks stay: a code span shows its text as written, and messages quote names in them).
/// A secret's mask, `***`, stays as it is.
fn md_text(text: &str) -> String {
    if text == "***" {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\r' | '\n' => out.push(' '),
            '\\' | '*' | '[' | ']' | '<' | '>' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '_' => {
                let inside = i > 0
                    && chars[i - 1].is_alphanumeric()
                    && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
                if !inside {
                    out.push('\\');
                }
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Every string in a JSON value through [`md_text`].
fn md_values(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(md_text(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(md_values).collect()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, md_values(v))).collect()),
        other => other,
    }
}

fn sentence(text: &str) -> String {
    let t = text.trim();
    if t.split_whitespace().next().is_some_and(|w| w.contains('@')) {
        let mut out = t.to_string();
        if !out.ends_with(['.', '!', '?', ':']) {
            out.push('.');
        }
        return out;
    }
    let mut chars = t.chars();
    let mut out: String = match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?', ':']) {
        out.push('.');
    }
    out
}

fn skip_words(reason: &str) -> String {
    match reason {
        "condition is false" => "its condition (`if`) was false".into(),
        "no items" => "its `for_each` list was empty".into(),
        other => md_text(other),
    }
}

fn outcome_word(status: &str) -> &str {
    match status {
        "succeeded" => "Succeeded",
        "failed" => "Failed",
        "denied" => "Denied",
        "cancelled" => "Cancelled",
        "rolled_back" => "Rolled back",
        other => other,
    }
}

fn trigger_words(trigger: &str) -> String {
    match trigger.split_once(" by ") {
        Some(("cli", by)) => format!("from the command line by {by}"),
        Some((how, by)) => format!("{how} by {by}"),
        None if trigger == "cli" => "from the command line".into(),
        None => trigger.to_string(),
    }
}

fn approval_words(a: &Approval, ended: bool) -> String {
    let mut parts = Vec::new();
    for (who, decision, source, at, comment) in &a.decisions {
        let verb = if decision == "approve" {
            "Approved"
        } else {
            "Denied"
        };
        let via = match source.split_whitespace().next().unwrap_or_default() {
            "cli" => " from the terminal",
            "link" => " by link",
            "api" => " through the API",
            _ => "",
        };
        let said = comment
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| format!(": \u{201c}{}\u{201d}", c.trim()))
            .unwrap_or_default();
        parts.push(format!("{verb} by {who}{via} at {at}{said}"));
    }
    match (&a.resolved, &a.requested) {
        (Some(r), _) if r == "expired" => parts.push("The request expired".into()),
        (None, Some((approvers, _))) if ended => parts.push(format!(
            "Asked {}; the run ended before a decision",
            approvers.join(", ")
        )),
        (None, None) if ended => parts.push("The run ended before approval was asked".into()),
        (None, Some((approvers, expires))) => parts.push(format!(
            "Waiting for {} (asked; expires {expires})",
            approvers.join(", ")
        )),
        (None, None) => parts.push("Waiting to ask for approval".into()),
        _ => {}
    }
    if parts.is_empty() {
        return format!("{}.", a.resolved.as_deref().unwrap_or("decided"));
    }
    format!("{}.", parts.join(". "))
}

/// `2026-11-30T10:22:21.663Z` as `2026-11-30 10:22 UTC`.
fn short_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

#[cfg(test)]
mod tests;
