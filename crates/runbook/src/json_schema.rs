//! JSON Schema (draft-07, which editors' YAML support understands) for the runbook language,
//! with one `if uses = X then with = schema of X` clause per step kind.

use serde_json::{json, Map, Value};

use crate::catalogue::{Catalogue, Field, FieldType};
use crate::compile::TOP_KEYS;
use crate::diagnostic::Code;
use crate::inputs::InputType;
use crate::plan::Backoff;

/// The JSON Schema of a runbook file, covering every kind in `catalogue` that can run (an
/// unavailable kind is left out, so editors flag it as `tenure validate` does).
pub fn runbook_schema(catalogue: &dyn Catalogue) -> Value {
    let mut kinds = catalogue.kinds();
    kinds.retain(|k| k.unavailable.is_none());
    let kind_names: Vec<&str> = kinds.iter().map(|k| k.kind.as_str()).collect();
    let per_kind: Vec<Value> = kinds
        .iter()
        .map(|k| {
            json!({
                "if": {"properties": {"uses": {"const": k.kind}}, "required": ["uses"]},
                "then": {"properties": {"with": with_schema(&k.params)}}
            })
        })
        .collect();
    let step = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["uses"],
        "properties": {
            "uses": {"type": "string", "enum": kind_names, "description": "The step kind."},
            "with": {"type": "object", "description": "Parameters of the step kind."},
            "needs": {"description": "Steps that must finish first.",
                      "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "if": {"description": "Skip the step when this is false.", "type": ["string", "boolean"]},
            "for_each": {"description": "Run one instance per item: a template rendering a list, or a list.",
                         "anyOf": [{"$ref": "#/definitions/template"}, {"type": "array"}]},
            "max_parallel": {"type": "integer", "minimum": 1},
            "retry": {"anyOf": [{"type": "integer", "minimum": 1}, {
                "type": "object", "additionalProperties": false,
                "properties": {
                    "attempts": {"type": "integer", "minimum": 1},
                    "backoff": {"enum": Backoff::NAMES},
                    "delay": {"$ref": "#/definitions/duration"},
                    "max_delay": {"$ref": "#/definitions/duration"}
                }}]},
            "timeout": {"$ref": "#/definitions/duration"},
            "continue_on_error": {"type": "boolean"},
            "allow": {"$ref": "#/definitions/allow"},
            "compensate": {"type": "object", "required": ["uses"], "additionalProperties": false,
                           "properties": {"uses": {"enum": kind_names}, "with": {"type": "object"}}}
        },
        "allOf": per_kind
    });
    let input = json!({
        "anyOf": [
            {"enum": InputType::NAMES},
            {"type": "object", "additionalProperties": false, "required": ["type"],
             "properties": {
                "type": {"enum": InputType::NAMES},
                "items": {"enum": InputType::NAMES},
                "required": {"type": "boolean"},
                "default": {},
                "enum": {"type": "array"},
                "pattern": {"type": "string", "format": "regex"},
                "description": {"type": "string"}
             }}
        ]
    });
    let trigger = json!({
        "oneOf": [
            {"type": "object", "additionalProperties": false, "required": ["webhook"],
             "properties": {"webhook": {"type": "string"}, "when": {"$ref": "#/definitions/template"},
                            "map": {"type": "object"}}},
            {"type": "object", "additionalProperties": false, "required": ["schedule"],
             "properties": {"schedule": {"type": "string", "description": "Cron with seconds: `0 0 6 * * Mon-Fri`."},
                            "timezone": {"type": "string"},
                            "missed": {"enum": ["run_once", "skip"], "description": "Ticks missed while no scheduler ran: one run for them (`run_once`, the default) or none (`skip`)."},
                            "map": {"type": "object"}}}
        ]
    });
    let mut properties = Map::new();
    properties.insert(
        "runbook".into(),
        json!({"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$"}),
    );
    properties.insert("version".into(), json!({"type": "integer", "minimum": 1}));
    properties.insert("description".into(), json!({"type": "string"}));
    properties.insert("tenant".into(), json!({"type": "string"}));
    properties.insert(
        "inputs".into(),
        json!({"type": "object", "additionalProperties": input}),
    );
    properties.insert(
        "vars".into(),
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
    );
    properties.insert(
        "triggers".into(),
        json!({"type": "array", "items": trigger}),
    );
    properties.insert("concurrency".into(), json!({"type": "string"}));
    properties.insert("allow".into(), json!({"$ref": "#/definitions/allow"}));
    properties.insert(
        "steps".into(),
        json!({"type": "object", "minProperties": 1, "additionalProperties": {"$ref": "#/definitions/step"}}),
    );
    properties.insert(
        "on_failure".into(),
        json!({"type": "object", "additionalProperties": {"$ref": "#/definitions/step"}}),
    );
    debug_assert!(TOP_KEYS.iter().all(|k| properties.contains_key(*k)));
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://tenure.dev/schema/runbook-v1.json",
        "title": "Tenure runbook",
        "type": "object",
        "additionalProperties": false,
        "required": ["runbook", "version", "tenant", "steps"],
        "properties": properties,
        "definitions": {
            "template": {"type": "string", "pattern": "\\{\\{"},
            "duration": {"type": "string", "pattern": "^([0-9]+(ms|s|m|h|d))+$"},
            "step": step,
            "allow": {
                "type": "array",
                "description": "Warnings accepted on purpose, each with the reason.",
                "items": {"type": "object", "additionalProperties": false, "required": ["code", "reason"],
                          "properties": {
                              "code": {"enum": Code::LINTS.iter().map(|c| c.as_str()).collect::<Vec<_>>()},
                              "reason": {"type": "string", "minLength": 1}
                          }}
            }
        }
    })
}

fn with_schema(params: &[Field]) -> Value {
    let mut props = Map::new();
    for p in params {
        let mut s = field_schema(&p.ty);
        if let Value::Object(o) = &mut s {
            o.insert("description".into(), Value::String(p.description.clone()));
            if let Some(d) = &p.default {
                o.insert("default".into(), d.clone());
            }
        }
        props.insert(p.name.clone(), s);
    }
    let required: Vec<&str> = params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    json!({"type": "object", "additionalProperties": false, "properties": props, "required": required})
}

/// The schema of one field type; every type also accepts a template string.
pub fn field_schema(ty: &FieldType) -> Value {
    let literal = match ty {
        FieldType::String => json!({"type": ["string", "number", "boolean"]}),
        FieldType::Int => json!({"type": "integer"}),
        FieldType::Bool => json!({"type": "boolean"}),
        FieldType::Duration => json!({"$ref": "#/definitions/duration"}),
        FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
        FieldType::Email => json!({"type": "string", "format": "email"}),
        FieldType::Secret => return json!({"$ref": "#/definitions/template"}),
        FieldType::Enum { values } => json!({"enum": values}),
        FieldType::List { items } => json!({"type": "array", "items": field_schema(items)}),
        FieldType::Object => json!({"type": "object"}),
        FieldType::Any => return json!({}),
    };
    json!({"anyOf": [literal, {"$ref": "#/definitions/template"}]})
}
