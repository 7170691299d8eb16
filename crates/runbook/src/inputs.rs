//! Typed runbook inputs: the declared types, and checking (and coercing) the values a run is
//! started with, whether they come from JSON, a webhook mapping, `--input k=v` or an input
//! file (where text-typed inputs take each scalar as written, see [`from_yaml`]).

use chrono::{DateTime, NaiveDate};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::yaml::{self, Node};

/// The type of an input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "items")]
pub enum InputType {
    /// Text.
    String,
    /// A whole number.
    Int,
    /// `true` / `false`.
    Bool,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 datetime.
    Datetime,
    /// An email address.
    Email,
    /// A list whose items have the inner type.
    List(Box<InputType>),
    /// A mapping of any values.
    Object,
    /// Text that is never shown in logs, events, errors or reports.
    Secret,
}

impl InputType {
    /// The type names a runbook may write.
    pub const NAMES: &'static [&'static str] = &[
        "string", "int", "bool", "date", "datetime", "email", "list", "object", "secret",
    ];

    /// Parses a type name; `items` gives a list's item type.
    pub fn from_name(name: &str, items: Option<InputType>) -> Option<Self> {
        Some(match name {
            "string" => InputType::String,
            "int" => InputType::Int,
            "bool" => InputType::Bool,
            "date" => InputType::Date,
            "datetime" => InputType::Datetime,
            "email" => InputType::Email,
            "list" => InputType::List(Box::new(items.unwrap_or(InputType::String))),
            "object" => InputType::Object,
            "secret" => InputType::Secret,
            _ => return None,
        })
    }

    /// The name as written in a runbook.
    pub fn name(&self) -> String {
        match self {
            InputType::String => "string".into(),
            InputType::Int => "int".into(),
            InputType::Bool => "bool".into(),
            InputType::Date => "date".into(),
            InputType::Datetime => "datetime".into(),
            InputType::Email => "email".into(),
            InputType::List(items) => format!("list of {}", items.name()),
            InputType::Object => "object".into(),
            InputType::Secret => "secret".into(),
        }
    }

    /// Whether values of this type are secret: `secret`, or a list of secrets. They are sealed
    /// at rest, shown as `***` and never echoed by an error.
    pub fn is_secret(&self) -> bool {
        match self {
            InputType::Secret => true,
            InputType::List(items) => items.is_secret(),
            _ => false,
        }
    }

    /// Checks `value` against the type, converting text where the type allows it
    /// (`"42"` for an int, `"a,b"` for a list). Returns the typed value or why it does not fit.
    pub fn coerce(&self, value: &Value) -> Result<Value, String> {
        match (self, value) {
            (InputType::String | InputType::Secret, Value::String(_)) => Ok(value.clone()),
            (InputType::String, Value::Number(n)) => Ok(Value::String(number_text(n))),
            (InputType::Int, Value::Number(n)) if n.is_i64() => Ok(value.clone()),
            (InputType::Int, Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("`{s}` is not an integer")),
            (InputType::Bool, Value::Bool(_)) => Ok(value.clone()),
            (InputType::Bool, Value::String(s)) => match s.trim() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(format!("`{s}` is not `true` or `false`")),
            },
            (InputType::Date, Value::String(s)) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map(|d| Value::String(d.to_string()))
                .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)")),
            (InputType::Datetime, Value::String(s)) => DateTime::parse_from_rfc3339(s.trim())
                .map(|d| Value::String(d.to_rfc3339()))
                .map_err(|_| format!("`{s}` is not an RFC 3339 datetime")),
            (InputType::Email, Value::String(s)) => {
                if is_email(s.trim()) {
                    Ok(Value::String(s.trim().to_string()))
                } else {
                    Err(format!("`{s}` is not an email address"))
                }
            }
            (InputType::List(items), Value::Array(values)) => values
                .iter()
                .enumerate()
                .map(|(i, v)| items.coerce(v).map_err(|e| format!("item {}: {e}", i + 1)))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            (InputType::List(items), Value::String(s)) => {
                if s.trim_start().starts_with('[') {
                    let parsed: Value = serde_json::from_str(s)
                        .map_err(|e| format!("`{s}` is not a JSON list: {e}"))?;
                    return self.coerce(&parsed);
                }
                let parts: Vec<Value> = s
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect();
                items.coerce_all(&parts).map(Value::Array)
            }
            (InputType::Object, Value::Object(_)) => Ok(value.clone()),
            (InputType::Object, Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(v @ Value::Object(_)) => Ok(v),
                _ => Err("expected a JSON object".to_string()),
            },
            (t, v) => Err(format!("expected {}, found {}", t.name(), json_type(v))),
        }
    }

    fn coerce_all(&self, values: &[Value]) -> Result<Vec<Value>, String> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| self.coerce(v).map_err(|e| format!("item {}: {e}", i + 1)))
            .collect()
    }
}

/// The value a YAML (or JSON, which is YAML) node gives an input of type `ty`. Text types
/// (`string`, `secret`, and lists of them) take every scalar as written: `ticket: 0012` is
/// `"0012"` and `1e3` is `"1e3"`, not a number turned back into text. `null` stays null (the
/// input is not given). Every other type takes the YAML value, which [`InputSpec::check`] then
/// checks.
pub fn from_yaml(ty: &InputType, node: &Node) -> Value {
    match (ty, &node.value) {
        (
            InputType::String | InputType::Secret,
            yaml::Value::Int(_) | yaml::Value::Float(_) | yaml::Value::Bool(_),
        ) => node.scalar_text().map_or(Value::Null, Value::String),
        (InputType::List(items), yaml::Value::Seq(nodes)) => {
            Value::Array(nodes.iter().map(|n| from_yaml(items, n)).collect())
        }
        _ => node.to_json(),
    }
}

/// The inputs an input file gives, typed by the runbook's declarations through [`from_yaml`]
/// (names it does not declare keep their YAML value, for [`resolve`] to report). `None` if
/// the document is not a mapping.
pub fn given_from_yaml(
    specs: &IndexMap<String, InputSpec>,
    node: &Node,
) -> Option<serde_json::Map<String, Value>> {
    let entries = node.as_map()?;
    Some(
        entries
            .iter()
            .map(|(k, v)| {
                let value = match specs.get(&k.name) {
                    Some(spec) => from_yaml(&spec.ty, v),
                    None => v.to_json(),
                };
                (k.name.clone(), value)
            })
            .collect(),
    )
}

/// A plain check for `local@domain.tld`, enough to catch typos; the vendor has the last word.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.starts_with('.')
        && domain.contains('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',')
        && !domain.contains('@')
}

/// A JSON number as a string input's text: integers as written, and a whole number sent in
/// floating-point form (`1e3`, `12.0`) without its fraction (`1000`, `12`), since a ticket id
/// or a number typed into a PSA field is meant; other numbers as serde prints them (`2.5`).
pub fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
            format!("{}", f as i64)
        }
        _ => n.to_string(),
    }
}

/// A JSON value's type, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// One declared input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Its type.
    #[serde(rename = "type")]
    pub ty: InputType,
    /// Whether a run must give it (an input with a default never has to).
    pub required: bool,
    /// The value used when a run does not give one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The only values allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<Value>>,
    /// A regular expression every string value (or list item) must match in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl InputSpec {
    /// Checks one value against type, enum and pattern. The error of a secret input never
    /// shows the value (nor the allowed values, which would narrow it down).
    pub fn check(&self, value: &Value) -> Result<Value, String> {
        let secret = self.ty.is_secret();
        let v = self.ty.coerce(value).map_err(|e| {
            if secret {
                format!(
                    "expected {}, and the value given is not one",
                    self.ty.name()
                )
            } else {
                e
            }
        })?;
        if let Some(allowed) = &self.allowed {
            let items: Vec<&Value> = match &v {
                Value::Array(items) if !matches!(allowed.first(), Some(Value::Array(_))) => {
                    items.iter().collect()
                }
                other => vec![other],
            };
            for item in items {
                if !allowed.contains(item) && secret {
                    return Err("`***` is not one of the allowed values".into());
                }
                if !allowed.contains(item) {
                    let show = |v: &Value| format!("`{}`", crate::template::helpers_text(v));
                    let list: Vec<String> = allowed.iter().map(show).collect();
                    return Err(format!("{} is not one of {}", show(item), list.join(", ")));
                }
            }
        }
        if let Some(pattern) = &self.pattern {
            let re = regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("invalid pattern: {e}"))?;
            let texts: Vec<&str> = match &v {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            for t in texts {
                if !re.is_match(t) {
                    let shown = if secret { "***" } else { t };
                    return Err(format!("`{shown}` does not match the pattern `{pattern}`"));
                }
            }
        }
        Ok(v)
    }
}

/// One reason the inputs of a run were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("input `{name}`: {message}")]
pub struct InputError {
    /// The input's name.
    pub name: String,
    /// What is wrong with it.
    pub message: String,
}

/// Checks the inputs given to a run against the declarations: fills defaults, coerces types,
/// and reports every missing, unknown or ill-typed input at once. Absent optional inputs are
/// present as `null` so strict templates can still name them.
pub fn resolve(
    specs: &IndexMap<String, InputSpec>,
    given: &serde_json::Map<String, Value>,
) -> Result<serde_json::Map<String, Value>, Vec<InputError>> {
    let mut out = serde_json::Map::new();
    let mut errors = Vec::new();
    for name in given.keys() {
        if !specs.contains_key(name) {
            let hint = crate::diagnostic::did_you_mean(name, specs.keys().map(String::as_str))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            errors.push(InputError {
                name: name.clone(),
                message: format!("the runbook declares no such input{hint}"),
            });
        }
    }
    for (name, spec) in specs {
        let value = match given.get(name) {
            Some(Value::Null) | None => spec.default.clone(),
            // Empty means absent: a required input given as blank text or an empty list
            // would leave out every field it feeds, so it counts as not given.
            Some(Value::String(t)) if spec.required && t.trim().is_empty() => {
                errors.push(InputError {
                    name: name.clone(),
                    message: "is required, and was given empty".into(),
                });
                continue;
            }
            Some(Value::Array(a)) if spec.required && a.is_empty() => {
                errors.push(InputError {
                    name: name.clone(),
                    message: "is required, and was given an empty list".into(),
                });
                continue;
            }
            Some(v) => Some(v.clone()),
        };
        match value {
            Some(v) => match spec.check(&v) {
                Ok(v) => {
                    out.insert(name.clone(), v);
                }
                Err(message) => errors.push(InputError {
                    name: name.clone(),
                    message,
                }),
            },
            None if spec.required => errors.push(InputError {
                name: name.clone(),
                message: "is required".into(),
            }),
            None => {
                out.insert(name.clone(), Value::Null);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_required_input_given_empty_is_refused() {
        let mut specs = IndexMap::new();
        let mut required = spec(InputType::String);
        required.required = true;
        specs.insert("pw".to_string(), required);
        specs.insert("opt".to_string(), spec(InputType::String));
        let given = json!({"pw": "  ", "opt": ""});
        let errors = resolve(&specs, given.as_object().unwrap()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].name, "pw");
        assert!(errors[0].message.contains("given empty"), "{errors:?}");
        let given = json!({"pw": "x", "opt": ""});
        let ok = resolve(&specs, given.as_object().unwrap()).unwrap();
        assert_eq!(ok["opt"], json!(""));
    }

    fn spec(ty: InputType) -> InputSpec {
        InputSpec {
            ty,
            required: false,
            default: None,
            allowed: None,
            pattern: None,
            description: None,
        }
    }

    #[test]
    fn coerces_cli_text() {
        assert_eq!(InputType::Int.coerce(&json!("42")).unwrap(), json!(42));
        assert_eq!(
            InputType::List(Box::new(InputType::String))
                .coerce(&json!("SPB, E3"))
                .unwrap(),
            json!(["SPB", "E3"])
        );
        assert_eq!(
            InputType::List(Box::new(InputType::Int))
                .coerce(&json!("[1,2]"))
                .unwrap(),
            json!([1, 2])
        );
        assert!(InputType::Date.coerce(&json!("2026-02-30")).is_err());
        assert!(InputType::Email.coerce(&json!("not-an-email")).is_err());
        assert!(InputType::Bool.coerce(&json!("yes")).is_err());
    }

    #[test]
    fn numbers_for_string_inputs_read_as_written() {
        let n = |t: &str| number_text(&serde_json::from_str(t).unwrap());
        assert_eq!(n("4711"), "4711");
        assert_eq!(n("1e3"), "1000");
        assert_eq!(n("12.0"), "12");
        assert_eq!(n("2.5"), "2.5");
        assert_eq!(n("-3"), "-3");
    }

    #[test]
    fn resolve_reports_everything_at_once() {
        let mut specs = IndexMap::new();
        specs.insert(
            "tenant".to_string(),
            InputSpec {
                required: true,
                ..spec(InputType::String)
            },
        );
        specs.insert(
            "licences".to_string(),
            InputSpec {
                default: Some(json!(["SPB"])),
                ..spec(InputType::List(Box::new(InputType::String)))
            },
        );
        specs.insert("start".to_string(), spec(InputType::Date));
        let given = json!({"tenat": "x", "start": "tomorrow"});
        let errs = resolve(&specs, given.as_object().unwrap()).unwrap_err();
        let msgs: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            [
                "input `tenat`: the runbook declares no such input (did you mean `tenant`?)",
                "input `tenant`: is required",
                "input `start`: `tomorrow` is not a date (YYYY-MM-DD)",
            ]
        );
        let ok = resolve(&specs, json!({"tenant": "contoso"}).as_object().unwrap()).unwrap();
        assert_eq!(ok["licences"], json!(["SPB"]));
        assert_eq!(ok["start"], json!(null));
    }

    #[test]
    fn enum_and_pattern_apply_to_list_items() {
        let s = InputSpec {
            allowed: Some(vec![json!("SPB"), json!("E3")]),
            pattern: Some("[A-Z0-9_]+".into()),
            ..spec(InputType::List(Box::new(InputType::String)))
        };
        assert!(s.check(&json!(["SPB"])).is_ok());
        assert!(s.check(&json!(["E5"])).is_err());
        let secret = InputSpec {
            pattern: Some("[0-9]+".into()),
            ..spec(InputType::Secret)
        };
        let err = secret.check(&json!("hunter2")).unwrap_err();
        assert!(!err.contains("hunter2"));
        let secrets = InputSpec {
            allowed: Some(vec![json!("hunter3")]),
            ..spec(InputType::List(Box::new(InputType::Secret)))
        };
        for bad in [json!(["hunter2"]), json!("[\"hunter2"), json!([7])] {
            let err = secrets.check(&bad).unwrap_err();
            assert!(!err.contains("hunter"), "{err}");
        }
        assert_eq!(
            secrets.check(&json!(["hunter2"])).unwrap_err(),
            "`***` is not one of the allowed values"
        );
    }

    #[test]
    fn text_inputs_take_scalars_as_written() {
        let text = "ticket: 0012\nratio: 1e3\nflag: true\nkey: 007\nkeys: [01, 2.50, x]\n\
                    count: 0012\nnone: ~\nother: 0x1F\n";
        let (node, diags) = yaml::parse(&crate::SourceFile::new("in.yaml", text));
        assert!(diags.is_empty(), "{diags:?}");
        let mut specs = IndexMap::new();
        specs.insert("ticket".to_string(), spec(InputType::String));
        specs.insert("ratio".to_string(), spec(InputType::String));
        specs.insert("flag".to_string(), spec(InputType::String));
        specs.insert("key".to_string(), spec(InputType::Secret));
        specs.insert(
            "keys".to_string(),
            spec(InputType::List(Box::new(InputType::Secret))),
        );
        specs.insert("count".to_string(), spec(InputType::Int));
        specs.insert("none".to_string(), spec(InputType::String));
        let given = given_from_yaml(&specs, &node.unwrap()).unwrap();
        assert_eq!(
            Value::Object(given.clone()),
            json!({"ticket": "0012", "ratio": "1e3", "flag": "true", "key": "007",
                   "keys": ["01", "2.50", "x"], "count": 12, "none": null, "other": "0x1F"})
        );
        let resolved = resolve(&specs, &given).unwrap_err();
        assert_eq!(resolved[0].name, "other");
        let list = yaml::parse(&crate::SourceFile::new("l.yaml", "[1]"))
            .0
            .unwrap();
        assert!(given_from_yaml(&specs, &list).is_none());
    }

    #[test]
    fn strings_are_not_coerced() {
        let s = spec(InputType::String);
        assert_eq!(s.check(&json!("0012")).unwrap(), json!("0012"));
        assert_eq!(s.check(&json!("1e3")).unwrap(), json!("1e3"));
    }
}
