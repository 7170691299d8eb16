//! The start form: one typed field per runbook input, and the conversion of what it posts
//! into the JSON inputs every other front end sends.
//!
//! | input type | field | posted text becomes |
//! |---|---|---|
//! | `string` | `text` | the text |
//! | `email` | `email` | the text |
//! | `int` | `number` (step 1) | the text (the checker reads the number) |
//! | `bool` | checkbox | `true` when ticked, `false` otherwise |
//! | `date` | `date` | `YYYY-MM-DD` |
//! | `datetime` | `datetime-local` (UTC) | RFC 3339 with `Z` |
//! | `secret` | `password` | the text; never written back into a page |
//! | `list` | textarea, one item per line | a JSON list of the lines |
//! | list of secrets | `password`, comma separated | the text (the checker splits it) |
//! | `object` | textarea holding JSON | the text (the checker parses it) |
//! | any with allowed values | `select` (`multiple` for a list) | the chosen value(s) |
//!
//! A blank field of an optional input is not given (its default applies); a blank required
//! field is given empty, which the checker refuses by name. Nothing here decides whether a
//! value fits: [`tenure_runbook::inputs::resolve`] does, as for the CLI and the API.

use std::collections::HashMap;

use maud::{html, Markup};
use serde_json::{Map, Value};
use tenure_runbook::inputs::{InputSpec, InputType};
use tenure_runbook::Plan;

/// The form's field name of input `name`.
fn field_name(name: &str) -> String {
    format!("in.{name}")
}

/// A value as one line of text (strings as they are, other values as JSON).
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Allowed values as the page lists them.
pub fn allowed_text(allowed: &[Value]) -> String {
    allowed
        .iter()
        .map(scalar_text)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An input's default as the page shows it: `***` for a secret, nothing when it has none.
pub fn default_text(spec: &InputSpec) -> String {
    match &spec.default {
        None | Some(Value::Null) => String::new(),
        Some(_) if spec.ty.is_secret() => "***".into(),
        Some(Value::Array(items)) => items.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
        Some(v) => scalar_text(v),
    }
}

/// An RFC 3339 datetime as a `datetime-local` value in UTC.
fn to_local(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|d| {
            d.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| text.to_string())
}

/// A `datetime-local` value (`YYYY-MM-DDTHH:MM[:SS]`, no zone) read as UTC, in RFC 3339;
/// other text as it is (the checker says what is wrong with it).
fn from_local(text: &str) -> String {
    let t = text.trim();
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return d.and_utc().to_rfc3339();
        }
    }
    t.to_string()
}

/// Whether the input is shown as one select (with `multiple` for a list).
fn is_choice(spec: &InputSpec) -> bool {
    spec.allowed.as_ref().is_some_and(|a| !a.is_empty())
        && !matches!(spec.ty, InputType::Bool | InputType::Object)
        && !spec.ty.is_secret()
}

/// The text of every field of the form, by input name, as typed (a list's items one per line).
#[derive(Clone, Debug, Default)]
pub struct Filled {
    values: HashMap<String, String>,
    /// Input names posted that the runbook does not declare (a forced request).
    extra: Vec<(String, String)>,
}

impl Filled {
    /// The form as a runbook's page first shows it: defaults filled in, secrets left empty.
    pub fn defaults(plan: &Plan) -> Self {
        let mut values = HashMap::new();
        for (name, spec) in &plan.inputs {
            if spec.ty.is_secret() {
                continue;
            }
            let text = match (&spec.ty, &spec.default) {
                (_, None | Some(Value::Null)) => continue,
                (InputType::Datetime, Some(Value::String(s))) => to_local(s),
                (InputType::List(_), Some(Value::Array(items))) => {
                    items.iter().map(scalar_text).collect::<Vec<_>>().join("\n")
                }
                (_, Some(v)) => scalar_text(v),
            };
            values.insert(name.clone(), text);
        }
        Filled {
            values,
            extra: Vec::new(),
        }
    }

    /// What the form posted (`in.NAME` fields; a multiple select's choices one per line).
    pub fn from_form(plan: &Plan, fields: &[(String, String)]) -> Self {
        let mut values: HashMap<String, String> = HashMap::new();
        let mut extra = Vec::new();
        for (k, v) in fields {
            let Some(name) = k.strip_prefix("in.") else {
                continue;
            };
            if !plan.inputs.contains_key(name) {
                extra.push((name.to_string(), v.clone()));
                continue;
            }
            values
                .entry(name.to_string())
                .and_modify(|t| {
                    t.push('\n');
                    t.push_str(v);
                })
                .or_insert_with(|| v.clone());
        }
        Filled { values, extra }
    }

    /// The same form with every secret field emptied, to show it again.
    pub fn without_secrets(&self, plan: &Plan) -> Self {
        let mut out = self.clone();
        out.values
            .retain(|name, _| plan.inputs.get(name).is_some_and(|s| !s.ty.is_secret()));
        out.extra.clear();
        out
    }

    /// The text of input `name`'s field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The JSON inputs these fields give, as `POST /api/runs` would send them.
    pub fn to_inputs(&self, plan: &Plan) -> Map<String, Value> {
        let mut out = Map::new();
        for (name, spec) in &plan.inputs {
            let text = self.get(name).unwrap_or_default();
            if matches!(spec.ty, InputType::Bool) {
                out.insert(name.clone(), Value::Bool(text.trim() == "true"));
                continue;
            }
            if text.trim().is_empty() {
                if spec.required {
                    out.insert(name.clone(), Value::String(String::new()));
                }
                continue;
            }
            let value = match &spec.ty {
                InputType::Datetime => Value::String(from_local(text)),
                InputType::List(items) if items.is_secret() => Value::String(text.to_string()),
                InputType::List(_) => Value::Array(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| Value::String(l.to_string()))
                        .collect(),
                ),
                _ => Value::String(text.to_string()),
            };
            out.insert(name.clone(), value);
        }
        for (name, v) in &self.extra {
            out.insert(name.clone(), Value::String(v.clone()));
        }
        out
    }
}

/// One field of the start form.
pub struct Field<'a> {
    /// The input's name.
    pub name: &'a str,
    /// Its declaration.
    pub spec: &'a InputSpec,
    /// The text to show in it (never a secret's).
    pub value: Option<&'a str>,
    /// What the checker said about it.
    pub errors: &'a [&'a str],
}

impl Field<'_> {
    /// The label, the control and its errors.
    pub fn render(&self) -> Markup {
        let spec = self.spec;
        let id = format!("in-{}", self.name);
        let name = field_name(self.name);
        let err_id = format!("err-{}", self.name);
        let invalid = (!self.errors.is_empty()).then_some("true");
        let described = (!self.errors.is_empty()).then_some(err_id.as_str());
        let value = if spec.ty.is_secret() {
            None
        } else {
            self.value
        };
        let text = value.unwrap_or_default();
        let control = match &spec.ty {
            _ if is_choice(spec) => {
                let multiple = matches!(spec.ty, InputType::List(_));
                let chosen: Vec<&str> = text.lines().map(str::trim).collect();
                let options = spec.allowed.as_deref().unwrap_or_default();
                html! {
                    select id=(id) name=(name) multiple[multiple] required[spec.required]
                        aria-invalid=[invalid] aria-describedby=[described] {
                        @if !multiple { option value="" { "(choose)" } }
                        @for o in options {
                            @let t = scalar_text(o);
                            option value=(t) selected[chosen.contains(&t.as_str())] { (t) }
                        }
                    }
                }
            }
            InputType::Bool => html! {
                input id=(id) name=(name) type="checkbox" value="true" checked[text.trim() == "true"]
                    aria-invalid=[invalid] aria-describedby=[described];
            },
            InputType::Int => html! {
                input id=(id) name=(name) type="number" step="1" value=(text) required[spec.required]
                    aria-invalid=[invalid] aria-describedby=[described];
            },
            InputType::Date => html! {
                input id=(id) name=(name) type="date" value=(text) required[spec.required]
                    aria-invalid=[invalid] aria-describedby=[described];
            },
            InputType::Datetime => html! {
                input id=(id) name=(name) type="datetime-local" step="1" value=(text) required[spec.required]
                    aria-invalid=[invalid] aria-describedby=[described];
            },
            InputType::Email => html! {
                input id=(id) name=(name) type="email" value=(text) required[spec.required]
                    autocomplete="off" aria-invalid=[invalid] aria-describedby=[described];
            },
            InputType::Secret => html! {
                input id=(id) name=(name) type="password" required[spec.required]
                    autocomplete="new-password" aria-invalid=[invalid] aria-describedby=[described];
            },
            InputType::List(items) if items.is_secret() => html! {
                input id=(id) name=(name) type="password" required[spec.required]
                    autocomplete="new-password" aria-invalid=[invalid] aria-describedby=[described];
            },
            InputType::List(_) => html! {
                textarea id=(id) name=(name) rows="4" required[spec.required]
                    aria-invalid=[invalid] aria-describedby=[described] { (text) }
            },
            InputType::Object => html! {
                textarea.mono id=(id) name=(name) rows="4" placeholder="{\"key\": \"value\"}" required[spec.required]
                    aria-invalid=[invalid] aria-describedby=[described] { (text) }
            },
            InputType::String => html! {
                input id=(id) name=(name) type="text" value=(text) required[spec.required]
                    autocomplete="off" aria-invalid=[invalid] aria-describedby=[described];
            },
        };
        let hint = match &spec.ty {
            _ if is_choice(spec) && matches!(spec.ty, InputType::List(_)) => {
                Some("choose one or more")
            }
            InputType::List(items) if items.is_secret() => Some("items separated by commas"),
            InputType::List(_) => Some("one item per line"),
            InputType::Datetime => Some("UTC"),
            InputType::Object => Some("a JSON object"),
            InputType::Secret => Some("never shown again"),
            _ => None,
        };
        html! {
            div.field data-input=(self.name) {
                label for=(id) {
                    code { (self.name) }
                    @if spec.required { " " abbr.req title="required" { "*" } }
                    " " span.hint { "(" (spec.ty.name()) @if let Some(h) = hint { "; " (h) } ")" }
                    @if let Some(d) = &spec.description { br; span.hint { (d) } }
                }
                (control)
                @if let Some(p) = &spec.pattern { div.hint { "must match " code { (p) } } }
                @if !self.errors.is_empty() {
                    div.field-error id=(err_id) {
                        @for e in self.errors { div { (e) } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_reads_as_utc() {
        assert_eq!(from_local("2026-12-01T09:30"), "2026-12-01T09:30:00+00:00");
        assert_eq!(
            from_local("2026-12-01T09:30:15"),
            "2026-12-01T09:30:15+00:00"
        );
        assert_eq!(from_local("tomorrow"), "tomorrow");
        assert_eq!(to_local("2026-12-01T10:30:00+01:00"), "2026-12-01T09:30:00");
    }
}
