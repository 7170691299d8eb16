//! `GET /api/runbooks`, `GET /api/runbooks/{id}`, `POST /api/runbooks/validate` and
//! `GET /api/runbooks/{id}/graph`: the runbook library as the server compiled it.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tenure_runbook::Plan;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Permission};
use super::error::{ApiError, ErrorBody};
use crate::library::RunbookEntry;
use crate::state::AppState;

/// One runbook file in the library.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunbookSummary {
    /// Its id (`runbook:`), or the file name when it has none.
    pub id: String,
    /// Its version, when it compiles.
    pub version: Option<u32>,
    /// The file it came from.
    pub path: String,
    /// Whether it compiles without errors (only valid runbooks can start runs).
    pub valid: bool,
    /// Its `triggers` (webhook sources and schedules).
    #[schema(value_type = Vec<Object>)]
    pub triggers: Vec<Value>,
}

/// The runbook library.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunbookList {
    /// Every runbook file, in path order.
    pub runbooks: Vec<RunbookSummary>,
}

/// One runbook in detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunbookDetail {
    /// Id, version, path, validity and triggers.
    #[serde(flatten)]
    pub summary: RunbookSummary,
    /// What it is for.
    pub description: Option<String>,
    /// Its inputs by name: type, required, default (`***` for a secret), allowed values,
    /// pattern, description.
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// Every diagnostic, `file:line:col: error[CODE]: message`.
    pub diagnostics: Vec<String>,
}

/// What `POST /api/runbooks/validate` found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    /// Whether the text compiles.
    pub valid: bool,
    /// The runbook id it declares, when it compiles.
    pub runbook: Option<String>,
    /// Every diagnostic, `file:line:col: error[CODE]: message`.
    pub diagnostics: Vec<String>,
}

/// Query of `POST /api/runbooks/validate`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ValidateQuery {
    /// The file name diagnostics use (default `runbook.yaml`).
    pub name: Option<String>,
}

/// Query of `GET /api/runbooks/{id}/graph`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphQuery {
    /// `svg` (default), `dot` or `mermaid`.
    pub format: Option<String>,
}

fn triggers(plan: Option<&Plan>) -> Vec<Value> {
    plan.map(|p| {
        p.triggers
            .iter()
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect()
    })
    .unwrap_or_default()
}

fn summary(e: &RunbookEntry) -> RunbookSummary {
    RunbookSummary {
        id: e.id.clone(),
        version: e.plan.as_ref().map(|p| p.version),
        path: e.path.clone(),
        valid: e.plan.is_some(),
        triggers: triggers(e.plan.as_deref()),
    }
}

/// A plan's inputs as the API shows them: a secret input's default is `***`.
pub fn inputs_of(plan: &Plan) -> Value {
    let mut out = serde_json::Map::new();
    for (name, spec) in &plan.inputs {
        let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
        v["type"] = json!(spec.ty.name());
        if spec.ty.is_secret() {
            if let Some(d) = v.get_mut("default") {
                *d = json!("***");
            }
        }
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn entry(state: &AppState, id: &str) -> Result<RunbookEntry, ApiError> {
    let library = state.library();
    let found: Vec<&RunbookEntry> = library.entries.iter().filter(|e| e.id == id).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ApiError::not_found(format!("no runbook `{id}`"))),
        many => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "conflict",
            format!(
                "{} files declare the runbook `{id}`: {}",
                many.len(),
                many.iter()
                    .map(|e| e.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Every runbook the server knows.
#[utoipa::path(get, path = "/api/runbooks", tag = "runbooks",
    security(("bearer" = [])),
    responses((status = 200, description = "The runbook library", body = RunbookList),
        (status = 401, description = "No or unknown token", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<RunbookList>, ApiError> {
    caller.may(Permission::Read)?;
    let library = state.library();
    Ok(Json(RunbookList {
        runbooks: library.entries.iter().map(summary).collect(),
    }))
}

/// One runbook: its inputs and diagnostics.
#[utoipa::path(get, path = "/api/runbooks/{id}", tag = "runbooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The runbook id")),
    responses((status = 200, description = "The runbook", body = RunbookDetail),
        (status = 404, description = "No such runbook", body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunbookDetail>, ApiError> {
    caller.may(Permission::Read)?;
    let e = entry(&state, &id)?;
    Ok(Json(RunbookDetail {
        summary: summary(&e),
        description: e.plan.as_ref().and_then(|p| p.description.clone()),
        inputs: e
            .plan
            .as_deref()
            .map(inputs_of)
            .unwrap_or_else(|| json!({})),
        diagnostics: e.diagnostics.clone(),
    }))
}

/// Compiles a runbook's YAML text (the request body) as if it were a file among the
/// runbooks, and returns every diagnostic. Nothing is saved.
#[utoipa::path(post, path = "/api/runbooks/validate", tag = "runbooks",
    security(("bearer" = [])),
    params(ValidateQuery),
    request_body(content = String, content_type = "application/yaml", description = "The runbook's YAML text"),
    responses((status = 200, description = "What the compiler found", body = Validation),
        (status = 400, description = "The body is not UTF-8 text", body = ErrorBody)))]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ValidateQuery>, QueryRejection>,
    body: axum::body::Bytes,
) -> Result<Json<Validation>, ApiError> {
    caller.may(Permission::Read)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    let name = query
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "runbook.yaml".into());
    let source = state.library_source().clone();
    let text = text.to_string();
    let (plan, diagnostics) = tokio::task::spawn_blocking(move || source.compile(&name, &text))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(Validation {
        valid: plan.is_some(),
        runbook: plan.map(|p| p.runbook),
        diagnostics,
    }))
}

/// A runbook's step graph as SVG, Graphviz DOT or Mermaid.
#[utoipa::path(get, path = "/api/runbooks/{id}/graph", tag = "runbooks",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The runbook id"), GraphQuery),
    responses((status = 200, description = "The graph", content(
            (String = "image/svg+xml"), (String = "text/vnd.graphviz"), (String = "text/plain"))),
        (status = 400, description = "Unknown format", body = ErrorBody),
        (status = 404, description = "No such runbook", body = ErrorBody),
        (status = 409, description = "The runbook does not compile", body = ErrorBody)))]
pub async fn graph(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<GraphQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.may(Permission::Read)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let format: tenure_graph::Format = query
        .format
        .as_deref()
        .unwrap_or("svg")
        .parse()
        .map_err(ApiError::bad_request)?;
    let e = entry(&state, &id)?;
    let plan = e.plan.ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "invalid_runbook",
            format!(
                "the runbook `{id}` does not compile: {}",
                e.diagnostics.join("; ")
            ),
        )
    })?;
    let content_type = match format {
        tenure_graph::Format::Svg => "image/svg+xml",
        tenure_graph::Format::Dot => "text/vnd.graphviz; charset=utf-8",
        tenure_graph::Format::Mermaid => "text/plain; charset=utf-8",
    };
    Ok((
        [(CONTENT_TYPE, content_type)],
        tenure_graph::render(&plan, format),
    )
        .into_response())
}
