//! `POST /hooks/{source}`: ticket webhooks. A delivery is verified as its source's kind says
//! ([`verify`], [`connectwise`]), parsed, mapped through the runbooks' `triggers`
//! (`mapping`), and each selected runbook's run is created durably through
//! [`tenure_engine::Engine::start_run`] (with a dedup key namespaced by source and runbook)
//! before the answer; workers do the work.
//!
//! Answers: `202 {"run_id", "run_ids"}` for a new delivery; `200 {"run_id", "run_ids",
//! "duplicate": true}` when every selected run already existed for its dedup key. Errors are
//! `{"error": {"code", "message"}}`: 404 `unknown_source`, 413 `too_large`, 401 `unverified`
//! (never saying anything about the secret), 400 `malformed_json`, 422 `no_match` or
//! `invalid_inputs` (with `problems`), 503 `source_unusable` / `verification_unavailable`;
//! nothing is created in each case. Every delivery counts in
//! `tenure_webhooks_total{source, result}`.
//!
//! `?dry_run=true` verifies and maps a delivery as usual but starts nothing: it answers
//! `200 {"dry_run": true, "runs": [{"runbook", "inputs"}]}`, for checking a ticket system's
//! setup (and as the benchmark's non-durable baseline).
//!
//! Several runbooks may select one delivery: their inputs are all checked first (any problem
//! refuses the delivery and creates nothing), then each run is started; `run_id` is the first
//! (in runbook file order) and `run_ids` lists all.

pub mod connectwise;
mod mapping;
pub mod verify;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tenure_engine::api::Error as EngineError;
use tenure_engine::{StartRun, Trigger};

use crate::state::AppState;
use connectwise::Refusal;
use mapping::Unmapped;
use verify::Check;
pub use verify::Sources;

/// The largest delivery accepted (a ticket with its HTML body is a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// The `hooks` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/hooks/{source}", post(receive))
}

/// A refused delivery: status, code, message, and optionally every problem.
struct Refused {
    status: StatusCode,
    code: &'static str,
    message: String,
    problems: Vec<String>,
}

impl Refused {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refused {
            status,
            code,
            message: message.into(),
            problems: Vec::new(),
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.problems.is_empty() {
            error["problems"] = json!(self.problems);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}

fn count(source: &str, result: &'static str) {
    metrics::counter!("tenure_webhooks_total", "source" => source.to_string(), "result" => result)
        .increment(1);
}

async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let dry_run = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "dry_run=true" || p == "dry_run=1")
    });
    match deliver(&state, &name, &headers, body, dry_run).await {
        Ok((status, answer, result)) => {
            count(&name, result);
            (status, Json(answer)).into_response()
        }
        Err(refused) => {
            // An unknown source is not labelled by the name a caller chose (unbounded labels).
            let label = if refused.code == "unknown_source" {
                "(unknown)"
            } else {
                name.as_str()
            };
            count(label, refused.code);
            tracing::info!(source = %label, code = refused.code, status = refused.status.as_u16(), "webhook refused");
            refused.into_response()
        }
    }
}

fn too_large(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("length limit") {
            return true;
        }
        cur = err.source();
    }
    false
}

async fn deliver(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
    dry_run: bool,
) -> Result<(StatusCode, Value, &'static str), Refused> {
    let sources = state.hooks();
    let source = sources.get(name).ok_or_else(|| {
        Refused::new(
            StatusCode::NOT_FOUND,
            "unknown_source",
            format!("no webhook source `{name}` is configured"),
        )
    })?;
    let declared_too_large = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY);
    let refuse_size = || {
        Refused::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {MAX_BODY} bytes"),
        )
    };
    if declared_too_large {
        return Err(refuse_size());
    }
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        if too_large(&e) {
            refuse_size()
        } else {
            Refused::new(
                StatusCode::BAD_REQUEST,
                "unreadable",
                "the body could not be read",
            )
        }
    })?;
    let unverified = || {
        Refused::new(
            StatusCode::UNAUTHORIZED,
            "unverified",
            format!("the delivery could not be verified as coming from `{name}`"),
        )
    };
    let check = source.check.as_ref().map_err(|_| {
        Refused::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "source_unusable",
            format!("webhook source `{name}` is not usable (see the server log)"),
        )
    })?;
    let verified_before_parse = match check {
        Check::Halo { basic, bearer } => verify::halo(basic.as_ref(), bearer.as_ref(), headers),
        Check::Autotask { secret } => verify::autotask(secret, headers, &body),
        Check::Generic { secret } => verify::generic(secret, headers, &body),
        Check::Connectwise { .. } => true,
    };
    if !verified_before_parse {
        return Err(unverified());
    }
    let parsed = serde_json::from_slice::<Value>(&body);
    let mut payload = match (parsed, check) {
        (Ok(p), _) => p,
        // An unverified ConnectWise body is not worth a parse error: nothing vouches for it.
        (Err(_), Check::Connectwise { .. }) => return Err(unverified()),
        (Err(e), _) => {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not JSON: {e}"),
            ))
        }
    };
    if let Check::Connectwise { trusted, client_id } = check {
        sources
            .keys
            .verify(trusted, client_id.as_deref(), headers, &payload, &body)
            .await
            .map_err(|r| match r {
                Refusal::Unverified => unverified(),
                Refusal::KeyUnavailable => Refused::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "verification_unavailable",
                    "the signing key could not be fetched; deliver again later",
                ),
            })?;
        connectwise::open_entity(&mut payload);
    }

    let received_at = chrono::Utc::now().to_rfc3339();
    let ctx = mapping::context(name, &payload, &received_at);
    let library = state.library();
    let selected = mapping::select(&sources.renderer, &library, &source, &ctx, &body).map_err(
        |u| match u {
            Unmapped::NoMatch => Refused::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "no_match",
                format!("no runbook has a `webhook: {name}` trigger that selects this payload"),
            ),
            Unmapped::Invalid(problems) => Refused {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "invalid_inputs",
                message: format!(
                    "the payload does not make valid inputs: {}",
                    problems.join("; ")
                ),
                problems,
            },
        },
    )?;
    if dry_run {
        let runs: Vec<Value> = selected
            .iter()
            .map(|s| {
                let inputs: serde_json::Map<String, Value> = s
                    .inputs
                    .iter()
                    .map(|(k, v)| {
                        let secret = s.plan.inputs.get(k).is_some_and(|i| i.ty.is_secret());
                        (k.clone(), if secret { json!("***") } else { v.clone() })
                    })
                    .collect();
                json!({"runbook": s.runbook, "inputs": inputs})
            })
            .collect();
        return Ok((
            StatusCode::OK,
            json!({"dry_run": true, "runs": runs}),
            "dry_run",
        ));
    }
    let by = mapping::requester(&sources.renderer, source.requester.as_ref(), &ctx);
    let trigger = Trigger {
        source: format!("webhook:{name}"),
        by,
        payload,
    };
    let mut run_ids = Vec::new();
    let mut runbooks = Vec::new();
    let mut all_duplicate = true;
    for s in selected {
        let start = StartRun {
            plan: s.plan,
            inputs: s.inputs,
            trigger: trigger.clone(),
            dedup_key: Some(s.dedup_key),
        };
        match state.engine().start_run(start).await {
            Ok(started) => {
                all_duplicate &= started.duplicate;
                tracing::info!(source = %name, runbook = %s.runbook, run = %started.id, duplicate = started.duplicate, "webhook run");
                run_ids.push(started.id);
                runbooks.push(s.runbook);
            }
            Err(e) => return Err(start_failed(e, &s.runbook, &run_ids)),
        }
    }
    let mut answer = json!({"run_id": run_ids[0], "run_ids": run_ids, "runbooks": runbooks});
    if all_duplicate {
        answer["duplicate"] = json!(true);
        Ok((StatusCode::OK, answer, "duplicate"))
    } else {
        Ok((StatusCode::ACCEPTED, answer, "started"))
    }
}

/// A start the engine refused. Runs already started for other runbooks of this delivery stay
/// (a redelivery finds them by their dedup keys) and are named in the message.
fn start_failed(e: EngineError, runbook: &str, started: &[String]) -> Refused {
    let also = if started.is_empty() {
        String::new()
    } else {
        format!(" (already started: {})", started.join(", "))
    };
    match e {
        EngineError::Inputs(problems) => Refused {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_inputs",
            message: format!(
                "runbook `{runbook}`: invalid inputs: {}{also}",
                problems.join("; ")
            ),
            problems,
        },
        EngineError::Tenant(m) | EngineError::Template(m) => Refused {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_inputs",
            message: format!("runbook `{runbook}`: {m}{also}"),
            problems: vec![m],
        },
        other => {
            tracing::error!(runbook = %runbook, error = %other, "webhook run could not be created");
            Refused::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the run could not be created; deliver again later{also}"),
            )
        }
    }
}
