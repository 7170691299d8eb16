//! A dry view of what a run would do: inputs resolved, vars rendered, and each step's
//! condition, `for_each` items and `with` rendered as far as they can be before anything runs.
//! Step outputs show as `<steps.id.outputs.name>` placeholders; secrets show as `***`.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::catalogue::{Catalogue, FieldType};
use crate::inputs::{self, InputError};
use crate::plan::{Plan, Step};
use crate::template::{analyze, Renderer, Template};

/// What [`preview`] shows.
#[derive(Debug, Serialize)]
pub struct Preview {
    /// Runbook id.
    pub runbook: String,
    /// Version.
    pub version: u32,
    /// Plan hash.
    pub hash: String,
    /// The tenant id the run would act on.
    pub tenant: String,
    /// Resolved inputs (secrets masked).
    pub inputs: Map<String, Value>,
    /// Rendered vars.
    pub vars: Map<String, Value>,
    /// The concurrency key, if the runbook has one.
    pub concurrency: Option<String>,
    /// The steps in execution order.
    pub steps: Vec<StepPreview>,
    /// The `on_failure` steps.
    pub on_failure: Vec<StepPreview>,
}

/// One step of a [`Preview`].
#[derive(Debug, Serialize)]
pub struct StepPreview {
    /// Step id.
    pub id: String,
    /// Kind.
    pub uses: String,
    /// Layer in the DAG (0 runs first).
    pub level: usize,
    /// Steps it waits for.
    pub needs: Vec<String>,
    /// `run`, `skip`, or `decided at run time`.
    pub decision: String,
    /// Rendered `with`, one per instance for a `for_each` step whose items are known.
    pub with: Vec<Value>,
    /// Why something could not be rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a preview could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The inputs were refused.
    #[error("invalid inputs:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Inputs(Vec<InputError>),
    /// The tenant template rendered to a tenant that is not configured.
    #[error("{0}")]
    Tenant(String),
    /// A var could not be rendered.
    #[error("var `{name}`: {message}")]
    Var {
        /// The var.
        name: String,
        /// Why.
        message: String,
    },
}

/// Resolves the tenant id from the plan's `tenant` template and the inputs.
pub fn tenant_id(
    plan: &Plan,
    inputs: &Map<String, Value>,
    renderer: &Renderer,
) -> Result<String, Error> {
    renderer
        .render_text(&plan.tenant, &json!({ "inputs": inputs }))
        .map_err(|e| Error::Tenant(format!("cannot work out the tenant: {}", e.message)))
}

/// Builds the preview. `tenant` is the `tenant` context object (`id`, `domain`, `name`).
pub fn preview(
    plan: &Plan,
    given: &Map<String, Value>,
    tenant: Value,
    catalogue: &dyn Catalogue,
    renderer: &Renderer,
) -> Result<Preview, Error> {
    let resolved = inputs::resolve(&plan.inputs, given).map_err(Error::Inputs)?;
    let masked: Map<String, Value> = resolved
        .iter()
        .map(|(k, v)| {
            let secret = plan.inputs.get(k).is_some_and(|s| s.ty.is_secret());
            (
                k.clone(),
                if secret && !v.is_null() {
                    json!("***")
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    let tenant_id = tenant
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut ctx = json!({
        "inputs": masked,
        "tenant": tenant,
        "run": {"id": "<run id>", "started_at": "<start time>", "report": "<run report>",
                "failed_step": "<failed step>", "error": "<error>", "runbook": plan.runbook, "version": plan.version},
        "trigger": {"source": "cli", "received_at": "<start time>", "scheduled_at": null, "payload": {}},
        "secrets": secret_placeholders(plan),
        "vars": {},
    });
    let mut vars = Map::new();
    for (name, t) in &plan.vars {
        let v = renderer.render_value(t, &ctx).map_err(|e| Error::Var {
            name: name.clone(),
            message: e.message,
        })?;
        vars.insert(name.clone(), v);
        ctx["vars"] = Value::Object(vars.clone());
    }
    let concurrency = plan
        .concurrency
        .as_ref()
        .and_then(|t| renderer.render_text(t, &ctx).ok());
    ctx["steps"] = output_placeholders(plan, catalogue);
    let levels = levels(&plan.steps);
    let steps = plan
        .steps
        .iter()
        .zip(levels)
        .map(|(s, level)| step_preview(s, level, &ctx, renderer))
        .collect();
    let failure_levels = self::levels(&plan.on_failure);
    let on_failure = plan
        .on_failure
        .iter()
        .zip(failure_levels)
        .map(|(s, level)| step_preview(s, level, &ctx, renderer))
        .collect();
    Ok(Preview {
        runbook: plan.runbook.clone(),
        version: plan.version,
        hash: plan.hash.clone(),
        tenant: tenant_id,
        inputs: masked,
        vars,
        concurrency,
        steps,
        on_failure,
    })
}

fn levels(steps: &[Step]) -> Vec<usize> {
    let mut level = vec![0usize; steps.len()];
    for (i, s) in steps.iter().enumerate() {
        for d in &s.needs {
            if let Some(j) = steps[..i].iter().position(|x| x.id == d.step) {
                level[i] = level[i].max(level[j] + 1);
            }
        }
    }
    level
}

fn depends_on_run_time(t: &str) -> bool {
    analyze(t).is_ok_and(|a| {
        a.paths.iter().any(|p| {
            p.segments
                .first()
                .is_some_and(|s| s == "steps" || s == "run")
        })
    })
}

fn step_preview(step: &Step, level: usize, ctx: &Value, renderer: &Renderer) -> StepPreview {
    let mut note = None;
    let decision = match &step.condition {
        None => "run".to_string(),
        Some(c) if depends_on_run_time(c.source()) => "decided at run time".to_string(),
        Some(c) => match renderer.render_condition(c, ctx) {
            Ok(true) => "run".into(),
            Ok(false) => "skip".into(),
            Err(e) => {
                note = Some(e.message);
                "decided at run time".into()
            }
        },
    };
    let items: Option<Vec<Value>> = match &step.for_each {
        None => None,
        Some(Value::Array(items)) => Some(items.clone()),
        Some(Value::String(t)) if !depends_on_run_time(t) => {
            match renderer.render_value(&Template::new(t.clone()), ctx) {
                Ok(Value::Array(items)) => Some(items),
                Ok(Value::Null) => Some(Vec::new()),
                Ok(other) => {
                    note = Some(format!("`for_each` rendered {other}, not a list"));
                    Some(Vec::new())
                }
                Err(e) => {
                    note = Some(e.message);
                    Some(Vec::new())
                }
            }
        }
        Some(_) => {
            note = Some("`for_each` items are known at run time".into());
            None
        }
    };
    let decision = match (&items, decision.as_str()) {
        (Some(items), "run") if items.is_empty() && note.is_none() => "skip (no items)".to_string(),
        _ => decision,
    };
    let render =
        |ctx: &Value, note: &mut Option<String>| match renderer.render_tree(&step.with, ctx) {
            Ok(v) => v,
            Err(e) => {
                note.get_or_insert(e.message);
                step.with.clone()
            }
        };
    let with = match items {
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut c = ctx.clone();
                c["item"] = item.clone();
                c["index"] = json!(i);
                render(&c, &mut note)
            })
            .collect(),
        None => {
            let mut c = ctx.clone();
            c["item"] = json!("<item>");
            c["index"] = json!("<index>");
            vec![render(&c, &mut note)]
        }
    };
    StepPreview {
        id: step.id.clone(),
        uses: step.uses.clone(),
        level,
        needs: step.needs.iter().map(|d| d.step.clone()).collect(),
        decision,
        with,
        note,
    }
}

fn output_placeholders(plan: &Plan, catalogue: &dyn Catalogue) -> Value {
    let mut steps = Map::new();
    for s in plan.steps.iter().chain(&plan.on_failure) {
        let mut outputs = Map::new();
        if let Some(kind) = catalogue.get(&s.uses) {
            for o in &kind.outputs {
                let v = if o.ty == FieldType::Secret {
                    json!("***")
                } else {
                    json!(format!("<steps.{}.outputs.{}>", s.id, o.name))
                };
                outputs.insert(o.name.clone(), v);
            }
        }
        let outputs = if s.for_each.is_some() {
            json!([Value::Object(outputs)])
        } else {
            Value::Object(outputs)
        };
        steps.insert(s.id.clone(), json!({ "outputs": outputs }));
    }
    Value::Object(steps)
}

fn secret_placeholders(plan: &Plan) -> Value {
    let mut names = Map::new();
    let mut visit = |text: &str| {
        if let Ok(a) = analyze(text) {
            for p in a.paths {
                if p.segments.first().is_some_and(|s| s == "secrets") {
                    if let Some(name) = p.segments.get(1) {
                        names.insert(name.clone(), json!("***"));
                    }
                }
            }
        }
    };
    for t in plan.vars.values() {
        visit(t.source());
    }
    for s in plan.steps.iter().chain(&plan.on_failure) {
        visit(&s.with.to_string());
    }
    Value::Object(names)
}
