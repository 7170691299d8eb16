//! From a verified payload to the runs it starts: every runbook with a `webhook: SOURCE`
//! trigger whose `when` is truthy is selected (a runbook's first such trigger counts), its
//! `map` rendered into inputs, and its inputs checked before anything is created. The
//! template context is `payload` plus `trigger` (`source`, `received_at`, `payload`), as the
//! compiler allows in a trigger and as a run's steps later see `trigger.*`.

use std::sync::Arc;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tenure_runbook::plan::Trigger as PlanTrigger;
use tenure_runbook::{Plan, Renderer, Template};

use super::verify::Source;
use crate::library::Library;

/// Dedup keys longer than this are stored as their SHA-256.
const MAX_KEY: usize = 200;

/// A runbook a delivery selected, with its rendered inputs.
#[derive(Debug)]
pub(crate) struct Selected {
    /// The runbook id.
    pub runbook: String,
    /// Its plan.
    pub plan: Arc<Plan>,
    /// The inputs its trigger's `map` rendered.
    pub inputs: Map<String, Value>,
    /// The dedup key, namespaced by source and runbook.
    pub dedup_key: String,
}

/// Why a delivery starts nothing.
#[derive(Debug)]
pub(crate) enum Unmapped {
    /// No trigger of this source selected the payload.
    NoMatch,
    /// Selected, but inputs or templates do not fit: every problem.
    Invalid(Vec<String>),
}

/// The template context of a delivery.
pub(crate) fn context(source: &str, payload: &Value, received_at: &str) -> Value {
    json!({
        "payload": payload,
        "trigger": {
            "source": format!("webhook:{source}"),
            "received_at": received_at,
            "payload": payload,
        },
    })
}

fn is_missing(e: &tenure_runbook::template::RenderError) -> bool {
    e.message.contains("` has no value")
}

/// Renders a trigger's `map`: a value whose template names a payload field that is absent, or
/// renders empty, is left out (empty means absent); any other failure is a problem.
fn render_map<'a>(
    renderer: &Renderer,
    runbook: &str,
    map: impl IntoIterator<Item = (&'a String, &'a Value)>,
    ctx: &Value,
    problems: &mut Vec<String>,
) -> Map<String, Value> {
    let mut inputs = Map::new();
    for (name, tree) in map {
        match renderer.render_tree(tree, ctx) {
            Ok(Value::Null) => {}
            Ok(Value::String(s)) if s.trim().is_empty() => {}
            Ok(Value::Array(a)) if a.is_empty() => {}
            Ok(v) => {
                inputs.insert(name.clone(), v);
            }
            Err(e) if is_missing(&e) => {}
            Err(e) => problems.push(format!(
                "runbook `{runbook}`: input `{name}`: {}",
                e.message
            )),
        }
    }
    inputs
}

/// The runbooks `payload` selects among `library`, with their inputs checked.
pub(crate) fn select(
    renderer: &Renderer,
    library: &Library,
    source: &Source,
    ctx: &Value,
    body: &[u8],
) -> Result<Vec<Selected>, Unmapped> {
    let name = &source.config.source;
    let mut selected = Vec::new();
    let mut problems = Vec::new();
    for entry in &library.entries {
        let Some(plan) = &entry.plan else { continue };
        let trigger = plan.triggers.iter().find_map(|t| match t {
            PlanTrigger::Webhook { source, when, map } if source == name => {
                let chosen = match when {
                    None => true,
                    Some(w) => match renderer.render_condition(w, ctx) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::debug!(runbook = %plan.runbook, error = %e.message, "webhook `when` did not render; not selected");
                            false
                        }
                    },
                };
                chosen.then_some(map)
            }
            _ => None,
        });
        let Some(map) = trigger else { continue };
        let before = problems.len();
        let inputs = render_map(renderer, &plan.runbook, map, ctx, &mut problems);
        if let Err(errors) = tenure_runbook::inputs::resolve(&plan.inputs, &inputs) {
            problems.extend(
                errors
                    .iter()
                    .map(|e| format!("runbook `{}`: {e}", plan.runbook)),
            );
        }
        let key = match dedup_key(renderer, source, ctx, body) {
            Ok(k) => k,
            Err(e) => {
                problems.push(e);
                String::new()
            }
        };
        if problems.len() == before {
            selected.push(Selected {
                runbook: plan.runbook.clone(),
                plan: plan.clone(),
                inputs,
                dedup_key: namespaced(name, &plan.runbook, &key),
            });
        }
    }
    if !problems.is_empty() {
        Err(Unmapped::Invalid(problems))
    } else if selected.is_empty() {
        Err(Unmapped::NoMatch)
    } else {
        Ok(selected)
    }
}

/// The delivery's key: the source's dedup template, or the SHA-256 of the raw body when there
/// is none, or when a kind's default template does not fit this payload. A configured template
/// that does not render is the sender's error.
fn dedup_key(
    renderer: &Renderer,
    source: &Source,
    ctx: &Value,
    body: &[u8],
) -> Result<String, String> {
    let body_hash = || format!("body-{}", hex::encode(Sha256::digest(body)));
    let Some(t) = &source.dedup else {
        return Ok(body_hash());
    };
    match renderer.render_text(t, ctx) {
        Ok(k) if !k.trim().is_empty() => Ok(k),
        Ok(_) if source.dedup_configured => Err(format!(
            "dedup: `{}` rendered empty for this payload",
            t.source()
        )),
        Err(e) if source.dedup_configured => Err(format!("dedup: {}", e.message)),
        _ => Ok(body_hash()),
    }
}

fn namespaced(source: &str, runbook: &str, key: &str) -> String {
    let key = if key.len() > MAX_KEY {
        format!("sha256-{}", hex::encode(Sha256::digest(key.as_bytes())))
    } else {
        key.to_string()
    };
    format!("webhook:{source}:{runbook}:{key}")
}

/// Who asked: the source's requester template, when it renders to something.
pub(crate) fn requester(
    renderer: &Renderer,
    template: Option<&Template>,
    ctx: &Value,
) -> Option<String> {
    let t = template?;
    renderer
        .render_text(t, ctx)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
