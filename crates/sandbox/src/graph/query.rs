//! OData query options of Graph collections, checked the way Graph checks them: `$top` within
//! 1..=999, `$select` of known properties only, and the advanced queries (`$search`, `$count`,
//! `endsWith`, `ne`, `$orderby` beyond the basic properties or with `$filter`) only with the
//! `ConsistencyLevel: eventual` header, as Graph's directory objects require.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::http::{bad_request, base_url, graph_error, matches, parse_filter, reply, Clause};

/// A list request's query, validated.
#[derive(Debug, Default)]
pub struct ListQuery {
    /// `$filter` clauses.
    pub clauses: Vec<Clause>,
    /// Page size.
    pub top: usize,
    /// Offset from `$skiptoken`.
    pub skip: usize,
    /// `$search` terms: (property, word); any term matching selects an item.
    pub search: Vec<(String, String)>,
    /// `$orderby`: property and whether descending.
    pub orderby: Option<(String, bool)>,
    /// `$count=true`.
    pub count: bool,
    /// `$select`, validated.
    pub select: Option<String>,
}

/// What a collection allows: its entity type name and properties, and which properties sort
/// without an advanced query.
pub struct Shape {
    /// `user`, `group`.
    pub type_name: &'static str,
    /// Properties `$select`, `$filter` and `$orderby` may name.
    pub properties: &'static [&'static str],
    /// Properties `$orderby` accepts without `ConsistencyLevel: eventual`.
    pub basic_order: &'static [&'static str],
}

fn unsupported(message: impl Into<String>) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
}

fn advanced_needed(operator: &str) -> Response {
    unsupported(format!("Operator '{operator}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"))
}

/// Whether the request carries `ConsistencyLevel: eventual`.
pub fn eventual(headers: &HeaderMap) -> bool {
    headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("eventual"))
}

/// Checks `$select` names against a type's properties.
pub fn check_select(sel: Option<&String>, shape: &Shape) -> Result<Option<String>, Response> {
    let Some(sel) = sel else { return Ok(None) };
    for name in sel.split(',').map(str::trim) {
        if !shape.properties.contains(&name) {
            return Err(bad_request(format!(
                "Could not find a property named '{name}' on type 'microsoft.graph.{}'.",
                shape.type_name
            )));
        }
    }
    Ok(Some(sel.clone()))
}

/// Parses and checks `$top`: absent gives `default_top`; Graph refuses anything outside 1..=999.
pub fn check_top(q: &HashMap<String, String>, default_top: usize) -> Result<usize, Response> {
    match q.get("$top") {
        None => Ok(default_top),
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=999).contains(&n) => Ok(n),
            _ => Err(bad_request(format!(
                "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
            ))),
        },
    }
}

impl ListQuery {
    /// Validates a list request's options against a collection's shape.
    pub fn parse(
        q: &HashMap<String, String>,
        headers: &HeaderMap,
        default_top: usize,
        shape: &Shape,
    ) -> Result<ListQuery, Response> {
        let advanced = eventual(headers);
        let count = match q.get("$count").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(bad_request(format!(
                    "Invalid $count value '{other}': expected true or false."
                )))
            }
        };
        if count && !advanced {
            return Err(bad_request("$count is not currently supported without the 'ConsistencyLevel: eventual' header. Refer to https://aka.ms/graph-docs/advanced-queries for more information"));
        }
        let clauses = match q.get("$filter") {
            Some(f) => parse_filter(f).map_err(bad_request)?,
            None => Vec::new(),
        };
        for c in &clauses {
            let (prop, op) = match c {
                Clause::Eq(p, _) => (p, None),
                Clause::StartsWith(p, _) => (p, None),
                Clause::EndsWith(p, _) => (p, Some("endsWith")),
                Clause::Ne(p, _) => (p, Some("ne")),
            };
            if !shape.properties.contains(&prop.as_str()) {
                return Err(bad_request(format!(
                    "Could not find a property named '{prop}' on type 'microsoft.graph.{}'.",
                    shape.type_name
                )));
            }
            if let Some(op) = op {
                if !(advanced && count) {
                    return Err(advanced_needed(op));
                }
            }
        }
        let search = match q.get("$search") {
            None => Vec::new(),
            Some(s) => {
                if !advanced {
                    return Err(unsupported("Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'"));
                }
                parse_search(s, shape)?
            }
        };
        let orderby = match q.get("$orderby") {
            None => None,
            Some(o) => {
                let mut words = o.split_whitespace();
                let prop = words.next().unwrap_or_default().to_string();
                let desc = match words.next() {
                    None | Some("asc") => false,
                    Some("desc") => true,
                    Some(other) => {
                        return Err(bad_request(format!(
                            "Invalid $orderby direction '{other}'."
                        )))
                    }
                };
                if !shape.properties.contains(&prop.as_str()) {
                    return Err(bad_request(format!(
                        "Could not find a property named '{prop}' on type 'microsoft.graph.{}'.",
                        shape.type_name
                    )));
                }
                let basic = shape.basic_order.contains(&prop.as_str()) && clauses.is_empty();
                if !(basic || (advanced && count)) {
                    return Err(unsupported("Sorting not supported for current query."));
                }
                Some((prop, desc))
            }
        };
        Ok(ListQuery {
            clauses,
            top: check_top(q, default_top)?,
            skip: q
                .get("$skiptoken")
                .and_then(|t| t.parse().ok())
                .unwrap_or(0),
            search,
            orderby,
            count,
            select: check_select(q.get("$select"), shape)?,
        })
    }

    /// Filters, searches and sorts the full representations.
    pub fn apply(&self, items: Vec<Value>) -> Vec<Value> {
        let mut out: Vec<Value> = items
            .into_iter()
            .filter(|i| matches(i, &self.clauses))
            .filter(|i| {
                self.search.is_empty()
                    || self
                        .search
                        .iter()
                        .any(|(p, w)| search_hit(&i[p.as_str()], w))
            })
            .collect();
        if let Some((prop, desc)) = &self.orderby {
            out.sort_by_key(|i| {
                i[prop.as_str()]
                    .as_str()
                    .map(str::to_lowercase)
                    .unwrap_or_default()
            });
            if *desc {
                out.reverse();
            }
        }
        out
    }

    /// One page of `items` (already projected) with `@odata.count` when asked and an absolute
    /// `@odata.nextLink` that keeps every query option of the request.
    pub fn page(
        &self,
        items: Vec<Value>,
        headers: &HeaderMap,
        uri: &axum::http::Uri,
        context: &str,
    ) -> Value {
        let total = items.len();
        let page: Vec<Value> = items.into_iter().skip(self.skip).take(self.top).collect();
        let mut body = json!({"@odata.context": context});
        if self.count {
            body["@odata.count"] = json!(total);
        }
        body["value"] = Value::Array(page);
        if self.skip + self.top < total {
            body["@odata.nextLink"] = json!(next_link(
                headers,
                uri,
                &[("$skiptoken", (self.skip + self.top).to_string())]
            ));
        }
        body
    }

    /// The `200` answer of a list: `items` (full representations) filtered, searched and
    /// sorted, each projected by `project` to the `$select`ed properties, then one
    /// [`Self::page`] of them under `context`.
    pub fn answer(
        &self,
        items: Vec<Value>,
        project: fn(Value, Option<&str>) -> Value,
        headers: &HeaderMap,
        uri: &axum::http::Uri,
        context: &str,
    ) -> Response {
        let items = self
            .apply(items)
            .into_iter()
            .map(|i| project(i, self.select.as_deref()))
            .collect();
        reply(StatusCode::OK, self.page(items, headers, uri, context))
    }
}

/// The request's own URL with some query options replaced (all others kept, `$skiptoken` and
/// `$deltatoken` dropped unless given).
pub fn next_link(headers: &HeaderMap, uri: &axum::http::Uri, set: &[(&str, String)]) -> String {
    let mut pairs: Vec<(String, String)> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .filter(|(k, _)| k != "$skiptoken" && k != "$deltatoken")
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in set {
        pairs.push(((*k).to_string(), v.clone()));
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{}{}?{}", base_url(headers), uri.path(), query.join("&"))
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~$,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `"displayName:meg" OR "mail:meg"`: each term quoted, `property:word`.
fn parse_search(s: &str, shape: &Shape) -> Result<Vec<(String, String)>, Response> {
    let mut out = Vec::new();
    for term in s.split(" OR ").flat_map(|t| t.split(" AND ")) {
        let t = term.trim();
        let Some(inner) = t.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
            return Err(bad_request(format!(
                "Syntax error: the $search term {t} must be quoted, as \"property:value\"."
            )));
        };
        let Some((prop, word)) = inner.split_once(':') else {
            return Err(bad_request(format!(
                "Syntax error: the $search term \"{inner}\" must name a property, as \"property:value\"."
            )));
        };
        if !shape.properties.contains(&prop) {
            return Err(bad_request(format!(
                "Could not find a property named '{prop}' on type 'microsoft.graph.{}'.",
                shape.type_name
            )));
        }
        out.push((prop.to_string(), word.to_lowercase()));
    }
    Ok(out)
}

/// Graph's `$search` tokenizes a value and matches words by prefix.
fn search_hit(value: &Value, word: &str) -> bool {
    let Some(v) = value.as_str() else {
        return false;
    };
    let v = v.to_lowercase();
    v.starts_with(word)
        || v.split(|c: char| !c.is_alphanumeric())
            .any(|token| token.starts_with(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips() {
        let s = "startswith(displayName,'a b')";
        assert_eq!(decode(&encode(s)), s);
    }

    #[test]
    fn search_matches_word_prefixes() {
        assert!(search_hit(&json!("Megan Bowen"), "bow"));
        assert!(!search_hit(&json!("Megan Bowen"), "owen"));
    }
}
