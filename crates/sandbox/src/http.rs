//! Response helpers shared by the vendor modules: error bodies in each vendor's shape, JSON
//! responses, OData paging and the small `$filter` language clients use.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// A handler result: the response either way.
pub type Reply = Result<Response, Response>;

/// A JSON response with a status.
pub fn reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// An empty response (204 and friends).
pub fn empty(status: StatusCode) -> Response {
    status.into_response()
}

/// Graph's error body `{"error":{"code","message","innerError"}}`.
pub fn graph_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    reply(
        status,
        json!({"error": {"code": code, "message": message.into(),
            "innerError": {"date": crate::shared::now_rfc3339(), "request-id": request_id, "client-request-id": request_id}}}),
    )
}

/// Graph's 404 for a missing object.
pub fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// Graph's 400.
pub fn bad_request(message: impl Into<String>) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

/// The sandbox's own base URL as the client called it (`http://127.0.0.1:PORT`).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// A parsed `$filter`: `a eq 'x'`, `a eq true`, `startswith(a,'x')`, joined by `and`.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// `prop eq value`.
    Eq(String, Value),
    /// `startswith(prop,'x')`.
    StartsWith(String, String),
    /// `endswith(prop,'x')` (an advanced query).
    EndsWith(String, String),
    /// `prop ne value` (an advanced query).
    Ne(String, Value),
}

/// Parses the supported `$filter` subset; `Err` carries Graph's message for anything else.
pub fn parse_filter(filter: &str) -> Result<Vec<Clause>, String> {
    let mut out = Vec::new();
    for part in filter.split(" and ") {
        let p = part.trim();
        let lower = p.to_lowercase();
        for (name, ends) in [("startswith(", false), ("endswith(", true)] {
            if lower.starts_with(name) && p.ends_with(')') {
                let inner = &p[name.len()..p.len() - 1];
                let (prop, value) = inner.split_once(',').ok_or("Invalid filter clause")?;
                let (prop, value) = (prop.trim().to_string(), unquote(value.trim())?);
                out.push(if ends {
                    Clause::EndsWith(prop, value)
                } else {
                    Clause::StartsWith(prop, value)
                });
            }
        }
        if lower.starts_with("startswith(") || lower.starts_with("endswith(") {
            continue;
        }
        let mut words = p.splitn(3, ' ');
        let (Some(prop), Some(op), Some(value)) = (words.next(), words.next(), words.next()) else {
            return Err(format!("Invalid filter clause: {p}"));
        };
        if op != "eq" && op != "ne" {
            return Err(format!("Unsupported filter operator '{op}'"));
        }
        let value = match value.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            v => Value::String(unquote(v)?),
        };
        out.push(if op == "ne" {
            Clause::Ne(prop.to_string(), value)
        } else {
            Clause::Eq(prop.to_string(), value)
        });
    }
    Ok(out)
}

fn unquote(v: &str) -> Result<String, String> {
    v.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .map(|s| s.replace("''", "'"))
        .ok_or_else(|| format!("Invalid filter clause: expected a quoted string, found {v}"))
}

/// Whether a JSON object matches every clause (string comparison is case-insensitive, as
/// Graph's is for these properties).
pub fn matches(obj: &Value, clauses: &[Clause]) -> bool {
    let eq = |prop: &str, want: &Value| match (obj.get(prop), want) {
        (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Some(a), b) => a == b,
        (None, Value::Null) => true,
        (None, _) => false,
    };
    clauses.iter().all(|c| match c {
        Clause::Eq(prop, want) => eq(prop, want),
        Clause::Ne(prop, want) => !eq(prop, want),
        Clause::EndsWith(prop, suffix) => obj
            .get(prop)
            .and_then(Value::as_str)
            .is_some_and(|s| s.to_lowercase().ends_with(&suffix.to_lowercase())),
        Clause::StartsWith(prop, prefix) => obj
            .get(prop)
            .and_then(Value::as_str)
            .is_some_and(|s| s.to_lowercase().starts_with(&prefix.to_lowercase())),
    })
}

/// Keeps only the `$select`ed properties (comma-separated), plus `@odata.type`.
pub fn select(obj: Value, selected: Option<&str>) -> Value {
    let Some(sel) = selected else { return obj };
    let keep: Vec<&str> = sel.split(',').map(str::trim).collect();
    match obj {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| keep.contains(&k.as_str()) || k.starts_with("@odata"))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match() {
        let c =
            parse_filter("userPrincipalName eq 'a@b.example' and accountEnabled eq true").unwrap();
        let obj = json!({"userPrincipalName": "A@b.example", "accountEnabled": true});
        assert!(matches(&obj, &c));
        let c = parse_filter("startswith(displayName,'meg')").unwrap();
        assert!(matches(&json!({"displayName": "Megan Bowen"}), &c));
        assert!(parse_filter("displayName gt 'x'").is_err());
        let c = parse_filter("endswith(mail,'@contoso.example')").unwrap();
        assert!(matches(&json!({"mail": "a@Contoso.example"}), &c));
    }
}
