//! Checking a step's `with` against its kind's schema: unknown and missing parameters, literal
//! types and enum values, and every template inside.

use serde_json::Value as Json;

use super::scope::{Scope, StepRef};
use super::Cx;
use crate::catalogue::{FieldType, KindSchema};
use crate::diagnostic::{did_you_mean, Code, Diagnostic};
use crate::inputs::is_email;
use crate::source::Span;
use crate::yaml::{Key, Node, Value};

impl Cx<'_> {
    /// Checks `with` and returns it as JSON with defaults filled in.
    pub(super) fn check_with(
        &mut self,
        kind: &KindSchema,
        with: Option<&(Key, Node)>,
        fallback: Span,
        scope: &Scope,
        refs: &mut Vec<StepRef>,
    ) -> Json {
        let mut out = serde_json::Map::new();
        let (key_span, entries): (Span, &[(Key, Node)]) = match with {
            Some((k, n)) => match &n.value {
                Value::Map(m) => (k.span, m),
                Value::Null => (k.span, &[]),
                _ => {
                    self.wrong_type(n, "`with`", "a mapping");
                    return Json::Null;
                }
            },
            None => (fallback, &[]),
        };
        for (k, v) in entries {
            match kind.find_param(&k.name) {
                Some(field) => {
                    self.check_value(&field.ty, v, scope, refs, &format!("`{}`", k.name));
                    out.insert(k.name.clone(), v.to_json());
                }
                None => {
                    let names: Vec<&str> = kind.params.iter().map(|p| p.name.as_str()).collect();
                    let help = did_you_mean(&k.name, names.iter().copied()).unwrap_or_else(|| {
                        if names.is_empty() {
                            format!("`{}` takes no parameters", kind.kind)
                        } else {
                            format!(
                                "`{}` takes {}",
                                kind.kind,
                                crate::catalogue::quoted_list(&names)
                            )
                        }
                    });
                    self.push(
                        Diagnostic::error(
                            Code::UnknownParam,
                            k.span,
                            format!("`{}` has no parameter `{}`", kind.kind, k.name),
                        )
                        .with_label("unknown parameter")
                        .with_help(help),
                    );
                }
            }
        }
        let missing: Vec<&str> = kind
            .params
            .iter()
            .filter(|p| p.required && !entries.iter().any(|(k, _)| k.name == p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            let plural = if missing.len() == 1 { "" } else { "s" };
            self.push(
                Diagnostic::error(
                    Code::MissingParam,
                    key_span,
                    format!(
                        "`{}` is missing required parameter{plural} {}",
                        kind.kind,
                        crate::catalogue::quoted_list(&missing)
                    ),
                )
                .with_label(if with.is_some() {
                    "in this `with`"
                } else {
                    "this step has no `with`"
                }),
            );
        }
        for field in &kind.params {
            if let (Some(default), false) = (&field.default, out.contains_key(&field.name)) {
                out.insert(field.name.clone(), default.clone());
            }
        }
        Json::Object(out)
    }

    /// Checks templates in any value (for `object` and `any` parameters).
    pub(super) fn check_any(&mut self, node: &Node, scope: &Scope, refs: &mut Vec<StepRef>) {
        match &node.value {
            Value::Str(s) => {
                if let Some(r) = self.check_template(node, s, scope) {
                    refs.extend(r);
                }
            }
            Value::Seq(items) => {
                for i in items {
                    self.check_any(i, scope, refs);
                }
            }
            Value::Map(entries) => {
                for (_, v) in entries {
                    self.check_any(v, scope, refs);
                }
            }
            _ => {}
        }
    }

    fn check_value(
        &mut self,
        ty: &FieldType,
        node: &Node,
        scope: &Scope,
        refs: &mut Vec<StepRef>,
        what: &str,
    ) {
        if let Value::Str(s) = &node.value {
            if crate::template::contains_expression(s) {
                if let Some(r) = self.check_template(node, s, scope) {
                    refs.extend(r);
                }
                return;
            }
        }
        let expected = ty.describe();
        let ok = match (ty, &node.value) {
            (FieldType::Any, _) | (FieldType::Object, Value::Map(_)) => {
                self.check_any(node, scope, refs);
                true
            }
            (
                FieldType::String,
                Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_),
            ) => true,
            (FieldType::Int, Value::Int(_)) | (FieldType::Bool, Value::Bool(_)) => true,
            (FieldType::Duration, Value::Str(_)) => {
                self.duration(node, what);
                true
            }
            (FieldType::Datetime, Value::Str(s)) => {
                if chrono::DateTime::parse_from_rfc3339(s).is_err() {
                    self.push(
                        Diagnostic::error(
                            Code::ParamType,
                            node.span,
                            format!("{what} must be an RFC 3339 datetime, found `{s}`"),
                        )
                        .with_label("not a datetime")
                        .with_help("e.g. `2026-03-01T17:00:00+11:00`"),
                    );
                }
                true
            }
            (FieldType::Email, Value::Str(s)) => {
                if !is_email(s) {
                    self.push(
                        Diagnostic::error(
                            Code::ParamType,
                            node.span,
                            format!("{what} must be an email address, found `{s}`"),
                        )
                        .with_label("not an email address"),
                    );
                }
                true
            }
            (FieldType::Secret, Value::Str(_)) => {
                self.push(
                    Diagnostic::error(
                        Code::ParamType,
                        node.span,
                        format!("{what} is a secret and cannot be written in the runbook"),
                    )
                    .with_label("a secret in plain text")
                    .with_help(
                        "reference it instead: `{{secrets.<name>}}` or a `type: secret` input",
                    ),
                );
                true
            }
            (FieldType::Enum { values }, Value::Str(s)) => {
                if !values.contains(s) {
                    self.push(
                        Diagnostic::error(
                            Code::ParamEnum,
                            node.span,
                            format!("{what} must be {expected}, found `{s}`"),
                        )
                        .with_label("not an allowed value")
                        .with_help_opt(did_you_mean(s, values.iter().map(String::as_str))),
                    );
                }
                true
            }
            (FieldType::List { items }, Value::Seq(values)) => {
                for v in values {
                    self.check_value(items, v, scope, refs, &format!("an item of {what}"));
                }
                true
            }
            _ => false,
        };
        if !ok {
            self.push(
                Diagnostic::error(
                    Code::ParamType,
                    node.span,
                    format!("{what} must be {expected}, found {}", node.type_name()),
                )
                .with_label(format!("expected {}", short(ty))),
            );
        }
    }
}

fn short(ty: &FieldType) -> &'static str {
    match ty {
        FieldType::String | FieldType::Secret | FieldType::Email | FieldType::Datetime => {
            "a string"
        }
        FieldType::Int => "an integer",
        FieldType::Bool => "a boolean",
        FieldType::Duration => "a duration",
        FieldType::Enum { .. } => "one of the allowed values",
        FieldType::List { .. } => "a list",
        FieldType::Object => "a mapping",
        FieldType::Any => "a value",
    }
}
