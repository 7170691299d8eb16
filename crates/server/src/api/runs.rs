//! The runs endpoints: start (`POST /api/runs`), list with keyset paging, read one, its
//! journal events, and cancel / retry / rollback. Every operation is an [`Engine`] call made
//! in the token's name; nothing here decides.
//!
//! [`Engine`]: tenure_engine::Engine

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tenure_engine::machine::{status_name, InstanceState, Stage};
use tenure_engine::store::{RunFilter, RunRecord, RunRow};
use tenure_engine::{StartRun, Trigger};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Permission};
use super::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The run statuses a filter may name.
pub(crate) const STATUSES: [&str; 8] = [
    "queued",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "denied",
    "cancelled",
    "rolled_back",
];

/// The body of a request, or 400 (413 when too large) saying what is wrong with it.
pub fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match json {
        Ok(Json(v)) => Ok(v),
        Err(e) => {
            let status = match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                _ => StatusCode::BAD_REQUEST,
            };
            Err(ApiError::new(
                status,
                super::error::code_of(status),
                e.body_text(),
            ))
        }
    }
}

/// `POST /api/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The runbook id.
    pub runbook: String,
    /// Its inputs by name.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    /// A key identifying this request (a ticket id and event): a second start with the same
    /// key returns the first run and creates nothing.
    #[serde(default)]
    pub dedup_key: Option<String>,
}

/// A started (or found) run.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartResponse {
    /// The run id.
    pub id: String,
    /// Present and true when the dedup key had been used: this is the existing run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// How a run was started.
#[derive(Debug, Serialize, ToSchema)]
pub struct TriggerView {
    /// `cli`, `api`, `webhook:<source>`, `schedule`.
    pub source: Option<String>,
    /// Who started it.
    pub by: Option<String>,
    /// When it was received (RFC 3339); only in a run's detail, null in a list.
    pub received_at: Option<String>,
}

/// A run in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunSummary {
    /// Id.
    pub id: String,
    /// Runbook id.
    pub runbook: String,
    /// Runbook version.
    pub version: u32,
    /// `queued running waiting succeeded failed denied cancelled rolled_back`.
    pub status: String,
    /// How it was started.
    pub trigger: TriggerView,
    /// Whom the run acts on (a UPN), when its steps name one person.
    pub person: Option<String>,
    /// The tenant id.
    pub tenant: Option<String>,
    /// The PSA ticket number, when the run has one.
    pub ticket: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

/// One page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    /// The runs.
    pub runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One instance of a step.
#[derive(Debug, Serialize, ToSchema)]
pub struct StepView {
    /// Step id (`undo:STEP` for a compensation).
    pub id: String,
    /// Item index (0 for a step without `for_each`).
    pub item: u32,
    /// `blocked preparing pending ready running retry_wait parked succeeded failed skipped
    /// cancelled`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
}

/// A run in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    /// Id, runbook, version, status, trigger and times.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// Every step instance, in plan order (then `on_failure`, then compensations).
    pub steps: Vec<StepView>,
    /// The inputs (secret ones as `***`).
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// The step whose failure failed the run.
    pub failed_step: Option<String>,
    /// The run whose `runbook.call` started this one.
    pub parent: Option<String>,
}

/// Query of `GET /api/runs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only runs of this runbook id.
    pub runbook: Option<String>,
    /// Only runs on this tenant id (any case).
    pub tenant: Option<String>,
    /// Free text found (any case) in the run id, the person, the ticket number or the
    /// runbook id.
    pub q: Option<String>,
    /// Page size (1-500, default 50).
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Query of `GET /api/runs/{id}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this sequence number (default 0: all).
    pub after: Option<u64>,
}

/// A run's journal events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// The events, in order (`seq`, `at`, `kind` with its fields, `prev_hash`, `hash`).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// `POST /api/runs/{id}/retry`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// Only these failed steps (default: every failed step).
    #[serde(default)]
    pub steps: Vec<String>,
}

/// A run's status after an operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    /// The run id.
    pub id: String,
    /// Its status now.
    pub status: String,
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn summary_of(r: &RunRecord) -> RunSummary {
    let t = &r.context["trigger"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let labels = tenure_engine::labels::derive(&r.plan, &r.context);
    RunSummary {
        person: labels.person,
        tenant: labels.tenant,
        ticket: labels.ticket,
        id: r.id.clone(),
        runbook: r.plan.runbook.clone(),
        version: r.plan.version,
        status: status_name(r.status),
        trigger: TriggerView {
            source: text(&t["source"]),
            by: text(&t["by"]),
            received_at: text(&t["received_at"]),
        },
        created_at: time(r.created_at),
        updated_at: time(r.updated_at),
    }
}

/// A run's inputs as the API shows them: sealed values and every value of a secret input
/// are `***`.
pub(crate) fn inputs_view(r: &RunRecord) -> Value {
    let mut inputs = tenure_engine::journal::redact(&r.context["inputs"]);
    if let Value::Object(map) = &mut inputs {
        for (name, spec) in &r.plan.inputs {
            if spec.ty.is_secret() {
                if let Some(v) = map.get_mut(name) {
                    if !v.is_null() {
                        *v = json!("***");
                    }
                }
            }
        }
    }
    inputs
}

fn steps_of(r: &RunRecord) -> Vec<StepView> {
    let m = &r.machine;
    let mut out = Vec::new();
    for stage in [Stage::Main, Stage::OnFailure, Stage::Rollback] {
        for id in m.steps_of(stage) {
            let instances = m.instances(id);
            if instances.is_empty() {
                let phase = m
                    .phase(id)
                    .and_then(|p| serde_json::to_value(p).ok())
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                out.push(StepView {
                    id: id.to_string(),
                    item: 0,
                    state: phase,
                    attempts: 0,
                });
            }
            for (i, s) in instances.iter().enumerate() {
                let item = i as u32;
                out.push(StepView {
                    id: id.to_string(),
                    item,
                    state: state_name(*s),
                    attempts: m.attempts(id, item),
                });
            }
        }
    }
    out
}

fn state_name(s: InstanceState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn row_summary(r: RunRow) -> RunSummary {
    RunSummary {
        id: r.id,
        runbook: r.runbook,
        version: r.version,
        status: status_name(r.status),
        trigger: TriggerView {
            source: r.labels.trigger_source,
            by: r.labels.trigger_by,
            received_at: None,
        },
        person: r.labels.person,
        tenant: r.labels.tenant,
        ticket: r.labels.ticket,
        created_at: time(r.created_at),
        updated_at: time(r.updated_at),
    }
}

/// The `cursor` naming the page after `r`.
pub(crate) fn encode_cursor(r: &RunRow) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", r.created_at, r.id))
}

/// The (created_at, id) a `cursor` names, if it is one [`encode_cursor`] made.
pub(crate) fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (at, id) = text.split_once(':')?;
    if id.contains('\0') {
        return None;
    }
    Some((at.parse().ok()?, id.to_string()))
}

/// Starts a run of a runbook in the token's name (trigger `api`).
#[utoipa::path(post, path = "/api/runs", tag = "runs",
    security(("bearer" = [])),
    request_body = StartRequest,
    responses((status = 201, description = "Started", body = StartResponse),
        (status = 200, description = "The dedup key was used: the existing run", body = StartResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The role may not start runs", body = ErrorBody),
        (status = 404, description = "No such runbook", body = ErrorBody),
        (status = 409, description = "The runbook does not compile", body = ErrorBody),
        (status = 422, description = "Invalid inputs (each problem listed); nothing created", body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    req: Result<Json<StartRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<StartResponse>), ApiError> {
    caller.may(Permission::Start)?;
    let req = body(req)?;
    let library = state.library();
    let entry = library
        .get(&req.runbook)
        .ok_or_else(|| ApiError::not_found(format!("no runbook `{}`", req.runbook)))?;
    let plan = entry.plan.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "invalid_runbook",
            format!(
                "the runbook `{}` does not compile: {}",
                req.runbook,
                entry.diagnostics.join("; ")
            ),
        )
    })?;
    let started = state
        .engine()
        .start_run(StartRun {
            plan,
            inputs: req.inputs,
            trigger: Trigger::new("api", Some(caller.name.clone())),
            dedup_key: req.dedup_key,
        })
        .await?;
    let status = if started.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    tracing::info!(run = %started.id, by = %caller.name, duplicate = started.duplicate, "run started");
    Ok((
        status,
        Json(StartResponse {
            id: started.id,
            duplicate: started.duplicate,
        }),
    ))
}

/// Lists runs, newest first, one page at a time.
#[utoipa::path(get, path = "/api/runs", tag = "runs",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, description = "One page of runs", body = RunPage),
        (status = 400, description = "A bad parameter", body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    caller.may(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = q.status.filter(|s| !s.is_empty());
    if let Some(s) = &status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown status `{s}` (one of {})",
                STATUSES.join(", ")
            )));
        }
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ApiError::bad_request("the cursor is not one this API gave (use next_cursor)")
        })?),
        None => None,
    };
    let filter = RunFilter {
        status,
        runbook: q.runbook.filter(|s| !s.is_empty()),
        tenant: q.tenant,
        text: q.q,
        parent: None,
        before,
        limit,
    };
    let runs = state.engine().run_rows(&filter).await?;
    let next_cursor = (runs.len() == limit)
        .then(|| runs.last().map(encode_cursor))
        .flatten();
    Ok(Json(RunPage {
        runs: runs.into_iter().map(row_summary).collect(),
        next_cursor,
    }))
}

/// One run: status, every step instance, inputs (secrets as `***`), trigger and times.
#[utoipa::path(get, path = "/api/runs/{id}", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, description = "The run", body = RunDetail),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    caller.may(Permission::Read)?;
    let r = state.engine().run(&id).await?;
    Ok(Json(RunDetail {
        summary: summary_of(&r),
        steps: steps_of(&r),
        inputs: inputs_view(&r),
        failed_step: r.machine.failed_step().map(str::to_string),
        parent: r.parent.as_ref().map(|(run, _, _)| run.clone()),
    }))
}

/// A run's journal events after a sequence number.
#[utoipa::path(get, path = "/api/runs/{id}/events", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id"), EventsQuery),
    responses((status = 200, description = "The events", body = EventList),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    caller.may(Permission::Read)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let events = state.engine().events(&id, q.after.unwrap_or(0)).await?;
    Ok(Json(EventList {
        events: events
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect(),
    }))
}

fn done(id: String, status: tenure_engine::machine::RunStatus) -> Json<StatusResponse> {
    Json(StatusResponse {
        id,
        status: status_name(status),
    })
}

/// Cancels a run (journaled as done by the token's name).
#[utoipa::path(post, path = "/api/runs/{id}/cancel", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, description = "Cancelled", body = StatusResponse),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Refused in the run's state", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StatusResponse>, ApiError> {
    caller.may(Permission::Operate)?;
    let status = state.engine().cancel(&id, &caller.name).await?;
    Ok(done(id, status))
}

/// Resumes a failed run from its failed steps (all, or those named in `steps`).
#[utoipa::path(post, path = "/api/runs/{id}/retry", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    request_body(content = Option<RetryRequest>, description = "Optional: the steps to retry"),
    responses((status = 200, description = "Resumed", body = StatusResponse),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Refused in the run's state", body = ErrorBody)))]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Result<Json<StatusResponse>, ApiError> {
    caller.may(Permission::Operate)?;
    let req: RetryRequest = if raw.iter().all(u8::is_ascii_whitespace) {
        RetryRequest::default()
    } else {
        serde_json::from_slice(&raw)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
    };
    let status = state.engine().retry(&id, req.steps, &caller.name).await?;
    Ok(done(id, status))
}

/// Rolls a failed or cancelled run back through its steps' `compensate`.
#[utoipa::path(post, path = "/api/runs/{id}/rollback", tag = "runs",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The run id")),
    responses((status = 200, description = "Rolling back", body = StatusResponse),
        (status = 403, description = "The role may not", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Refused in the run's state", body = ErrorBody)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StatusResponse>, ApiError> {
    caller.may(Permission::Operate)?;
    let status = state.engine().rollback(&id, &caller.name).await?;
    Ok(done(id, status))
}
