//! `GET /ui/approvals`: the approval requests waiting on the signed-in user, each with a link
//! to its run and, for an approver or admin, a small form; `POST /ui/approvals/{run}/{step}`
//! records that decision through [`tenure_engine::Engine::decide`] as the API does (the
//! machine counts the quorum and refuses what does not count: the requester approving their
//! own run, a second decision, a gate no longer waiting), and shows any refusal as it is.

use std::collections::HashMap;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use tenure_engine::Decide;

use super::layout::{self, Nav};
use super::runbooks::path_segment;
use super::session::Session;
use crate::approvals::notify;
use crate::state::AppState;

/// The longest message excerpt in the list (characters).
const EXCERPT: usize = 160;

/// `?decided=RUN&step=STEP`: the decision just recorded, shown as read back from the run.
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    decided: Option<String>,
    step: Option<String>,
}

fn excerpt(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= EXCERPT {
        one_line
    } else {
        let cut: String = one_line.chars().take(EXCERPT).collect();
        format!("{cut}…")
    }
}

/// The most requests the page lists at once.
const SHOWN: usize = 100;

/// `GET /ui/approvals`.
pub async fn list(
    State(state): State<AppState>,
    session: Session,
    Query(done): Query<DoneQuery>,
) -> Response {
    let notice = match (done.decided.as_deref(), done.step.as_deref()) {
        (Some(run), Some(step)) => recorded(&state, &session, run, step).await,
        _ => None,
    };
    page(&state, &session, notice, None, StatusCode::OK).await
}

/// What `session.name` decided on `step` of `run`, read from the run itself.
async fn recorded(state: &AppState, session: &Session, run: &str, step: &str) -> Option<Markup> {
    let record = state.engine().run(run).await.ok()?;
    let gate = record.machine.gate(step)?;
    let d = gate
        .decisions
        .iter()
        .find(|d| d.approver.eq_ignore_ascii_case(&session.name))?;
    Some(html! {
        p.notice #decision-recorded role="status" {
            "You " (if d.approve { "approved" } else { "denied" }) " step " code { (step) }
            " of run " a href=(format!("/ui/runs/{}", path_segment(run))) { (run) }
            " (" (record.plan.runbook) ") at " (notify::when(d.at_ms))
            ". The run is now " (layout::status(&tenure_engine::machine::status_name(record.status))) "."
        }
    })
}

async fn page(
    state: &AppState,
    session: &Session,
    notice: Option<Markup>,
    refusal: Option<(String, String)>,
    status: StatusCode,
) -> Response {
    let pending = match state.engine().pending_approvals(&session.name).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "the UI could not list approvals");
            return layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "The approval requests cannot be read right now.",
            );
        }
    };
    // The oldest requests first would bury new ones: newest first, at most SHOWN of them.
    let total = pending.len();
    let rows: Vec<_> = pending
        .into_iter()
        .take(SHOWN)
        .map(|p| {
            let person = notify::person(&p.inputs);
            (p, person)
        })
        .collect();
    let body = html! {
        h1 { "Approvals" }
        p.hint { "Approval requests that name " strong { (session.name) } " and wait for your decision." }
        @if let Some(n) = notice { (n) }
        @if let Some((heading, detail)) = &refusal {
            div.errors #decision-refused role="alert" {
                p { strong { (heading) } }
                p { (detail) }
                p { "Nothing was changed." }
            }
        }
        @if total > rows.len() {
            p.notice { "Showing the newest " (rows.len()) " of " (total) " requests waiting on you; decide these and the next ones appear." }
        }
        @if rows.is_empty() {
            p.notice #no-approvals { "Nothing is waiting for your decision." }
        }
        @for (p, person) in &rows {
            @let run_href = format!("/ui/runs/{}", path_segment(&p.run_id));
            div.card.pending data-run=(p.run_id) data-step=(p.step) {
                h3 { (p.runbook) " · " code { (p.step) } }
                dl.facts {
                    dt { "Run" } dd { a href=(run_href) { (p.run_id) } }
                    @if let Some(who) = person { dt { "Person" } dd { (who) } }
                    @if let Some(by) = &p.gate.requested_by { dt { "Requested by" } dd { (by) } }
                    dt { "Needs" } dd { (p.gate.approvals()) " of " (p.gate.quorum) " approval(s); any deny decides" }
                    dt { "Expires" } dd { (notify::when(p.gate.expires_at_ms)) }
                }
                @if let Some(m) = p.gate.message.as_deref().filter(|m| !m.trim().is_empty()) {
                    p.msg { (excerpt(m)) }
                }
                @if session.may_decide() {
                    form.decide method="post" action=(format!("/ui/approvals/{}/{}", path_segment(&p.run_id), path_segment(&p.step))) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        @let cid = format!("comment-{}-{}", p.run_id, p.step);
                        label for=(cid) { "Comment " span.hint { "(optional, kept in the journal)" } }
                        textarea id=(cid) name="comment" maxlength=(tenure_engine::api::COMMENT_MAX) {}
                        div.actions {
                            button.approve type="submit" name="decision" value="approve" { "Approve" }
                            button.deny type="submit" name="decision" value="deny" { "Deny" }
                            a href=(run_href) { "See the run first" }
                        }
                    }
                } @else {
                    p.hint { "Your role may not decide here; use the link in your email or Teams card, or ask an approver." }
                }
            }
        }
    };
    let mut resp = layout::page(session, Nav::Approvals, "Approvals", body);
    *resp.status_mut() = status;
    resp
}

/// `POST /ui/approvals/{run}/{step}` with `csrf`, `decision` and `comment`: `303` back to the
/// list with the decision, or the list again with the refusal (4xx) and nothing changed.
pub async fn decide(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path((run, step)): Path<(String, String)>,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return layout::error_page(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            "Send the decision form of the approvals page. Nothing was changed.",
        );
    };
    let csrf = form.get("csrf").map(String::as_str).unwrap_or_default();
    if let Err(r) = session.check_csrf(&headers, csrf) {
        return *r;
    }
    if !session.may_decide() {
        return session.forbidden("decide approvals");
    }
    let refuse = |status: StatusCode, heading: &str, detail: String| {
        let (state, session) = (state.clone(), session.clone());
        let refusal = Some((heading.to_string(), detail));
        async move { page(&state, &session, None, refusal, status).await }
    };
    let approve = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "No decision",
                "Press Approve or Deny.".into(),
            )
            .await
        }
    };
    let record = match state.engine().run(&run).await {
        Ok(r) => r,
        Err(tenure_engine::api::Error::NoRun(_)) => {
            return layout::error_page(
                StatusCode::NOT_FOUND,
                "No such run",
                &format!("There is no run `{run}`. Nothing was changed."),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "the UI could not read a run");
            return layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "The run cannot be read right now. Nothing was changed.",
            );
        }
    };
    if !record
        .plan
        .steps
        .iter()
        .chain(&record.plan.on_failure)
        .any(|s| s.id == step && s.uses == "approval")
    {
        return layout::error_page(
            StatusCode::NOT_FOUND,
            "No such approval",
            &format!("Run `{run}` has no approval step `{step}`. Nothing was changed."),
        );
    }
    if let Some(gate) = record.machine.gate(&step) {
        if gate.approver(&session.name).is_none() {
            return refuse(
                StatusCode::FORBIDDEN,
                "You are not an approver of this request",
                format!(
                    "`{}` is not an approver of step `{step}` (approvers: {}).",
                    session.name,
                    gate.approvers.join(", ")
                ),
            )
            .await;
        }
    }
    let decided = state
        .engine()
        .decide(Decide {
            run_id: run.clone(),
            step: step.clone(),
            approver: session.name.clone(),
            approve,
            comment: form
                .get("comment")
                .filter(|c| !c.trim().is_empty())
                .cloned(),
            source: "ui".into(),
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        })
        .await;
    match decided {
        Ok(_) => {
            tracing::info!(%run, %step, by = %session.name, approve, "approval decided in the UI");
            Redirect::to(&format!(
                "/ui/approvals?decided={}&step={}",
                path_segment(&run),
                path_segment(&step)
            ))
            .into_response()
        }
        Err(tenure_engine::api::Error::Refused(e)) => {
            use tenure_engine::machine::Error as M;
            let status = match e {
                M::SelfApproval(_) | M::NotApprover(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            refuse(status, "The decision was refused", e.to_string()).await
        }
        Err(e) => {
            tracing::error!(error = %e, "the UI could not record a decision");
            layout::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "The decision could not be recorded right now. Nothing was changed.",
            )
        }
    }
}
