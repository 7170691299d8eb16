//! The API's approvals: `GET /api/approvals` lists the gates waiting on the caller (the
//! token's name matched against each gate's approvers, case-insensitive) and
//! `POST /api/approvals/{run}/{step}` records the caller's decision through
//! [`tenure_engine::Engine::decide`]. The machine counts the quorum and refuses what does not
//! count (already decided, not waiting, the requester approving their own run).

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tenure_engine::Decide;
use utoipa::ToSchema;

use super::auth::{Caller, Permission};
use super::error::{ApiError, ErrorBody};
use super::runs::body;
use crate::state::AppState;

/// A gate waiting on the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingView {
    /// The run.
    pub run: String,
    /// Its runbook.
    pub runbook: String,
    /// The approval step.
    pub step: String,
    /// What is asked.
    pub message: Option<String>,
    /// Who may decide.
    pub approvers: Vec<String>,
    /// Approvals needed.
    pub quorum: u32,
    /// Approvals so far.
    pub approvals: u32,
    /// When the gate expires (RFC 3339).
    pub expires_at: String,
}

/// The gates waiting on the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingList {
    /// Newest run first.
    pub approvals: Vec<PendingView>,
}

/// A decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `approve` or `deny`.
    pub decision: String,
    /// An optional comment (journaled).
    #[serde(default)]
    pub comment: Option<String>,
}

/// The run after a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionResponse {
    /// The run.
    pub run: String,
    /// The approval step.
    pub step: String,
    /// The run's status now.
    pub status: String,
}

fn time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms.min(i64::MAX as u64) as i64)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The approval gates waiting on the caller's decision.
#[utoipa::path(get, path = "/api/approvals", tag = "approvals",
    security(("bearer" = [])),
    responses((status = 200, description = "Gates waiting on the caller", body = PendingList),
        (status = 401, description = "No or unknown token", body = ErrorBody)))]
pub async fn pending(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PendingList>, ApiError> {
    caller.may(Permission::Read)?;
    let pending = state.engine().pending_approvals(&caller.name).await?;
    Ok(Json(PendingList {
        approvals: pending
            .into_iter()
            .map(|p| PendingView {
                approvals: p.gate.approvals(),
                run: p.run_id,
                runbook: p.runbook,
                step: p.step,
                message: p.gate.message.clone(),
                approvers: p.gate.approvers.clone(),
                quorum: p.gate.quorum,
                expires_at: time(p.gate.expires_at_ms),
            })
            .collect(),
    }))
}

/// Approves or denies an approval step in the caller's name.
#[utoipa::path(post, path = "/api/approvals/{run}/{step}", tag = "approvals",
    security(("bearer" = [])),
    params(("run" = String, Path, description = "The run id"),
        ("step" = String, Path, description = "The approval step")),
    request_body = DecisionRequest,
    responses((status = 200, description = "Recorded", body = DecisionResponse),
        (status = 400, description = "Malformed JSON or decision", body = ErrorBody),
        (status = 403, description = "The role may not decide, or the caller is not an approver of this step", body = ErrorBody),
        (status = 404, description = "No such run or approval step", body = ErrorBody),
        (status = 409, description = "Refused by the run (not waiting, already decided...)", body = ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((run, step)): Path<(String, String)>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: axum::http::HeaderMap,
    req: Result<Json<DecisionRequest>, JsonRejection>,
) -> Result<Json<DecisionResponse>, ApiError> {
    caller.may(Permission::Decide)?;
    let req = body(req)?;
    let approve = match req.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "decision must be `approve` or `deny`, not `{other}`"
            )))
        }
    };
    let record = state.engine().run(&run).await?;
    if !record
        .plan
        .steps
        .iter()
        .chain(&record.plan.on_failure)
        .any(|s| s.id == step && s.uses == "approval")
    {
        return Err(ApiError::not_found(format!(
            "run `{run}` has no approval step `{step}`"
        )));
    }
    if let Some(gate) = record.machine.gate(&step) {
        if gate.approver(&caller.name).is_none() {
            return Err(ApiError::forbidden(format!(
                "`{}` is not an approver of step `{step}` (approvers: {})",
                caller.name,
                gate.approvers.join(", ")
            )));
        }
    }
    let source = match peer {
        Some(Extension(ConnectInfo(addr))) => format!("api from {}", addr.ip()),
        None => "api".to_string(),
    };
    let status = state
        .engine()
        .decide(Decide {
            run_id: run.clone(),
            step: step.clone(),
            approver: caller.name.clone(),
            approve,
            comment: req.comment.filter(|c| !c.trim().is_empty()),
            source,
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        })
        .await?;
    tracing::info!(%run, %step, by = %caller.name, approve, "approval decided");
    Ok(Json(DecisionResponse {
        run,
        step,
        status: tenure_engine::machine::status_name(status),
    }))
}
