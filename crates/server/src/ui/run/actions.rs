//! The operator's actions on a run: a confirmation page saying exactly what will happen
//! (`GET /ui/runs/{id}/confirm/{action}`), then the action itself
//! (`POST /ui/runs/{id}/{action}`: CSRF and role checked, one Engine call in the signed-in
//! user's name, 303 back to the run page; the machine's refusal is a 409 page).

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;
use tenure_engine::machine::{status_name, undo_id, InstanceState, Stage, StepPhase};
use tenure_engine::store::RunRecord;

use super::{load, not_found, view};
use crate::state::AppState;
use crate::ui::layout::{self, Nav};
use crate::ui::session::Session;

/// An operator action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Retry,
    RetryStep,
    Cancel,
    Rollback,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "retry" => Some(Action::Retry),
            "retry-step" => Some(Action::RetryStep),
            "cancel" => Some(Action::Cancel),
            "rollback" => Some(Action::Rollback),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Retry => "retry",
            Action::RetryStep => "retry-step",
            Action::Cancel => "cancel",
            Action::Rollback => "rollback",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Action::Retry => "Retry the failed steps",
            Action::RetryStep => "Retry one step",
            Action::Cancel => "Cancel the run",
            Action::Rollback => "Roll the run back",
        }
    }
}

fn unknown_action(action: &str) -> Response {
    layout::error_page(
        StatusCode::NOT_FOUND,
        "No such action",
        &format!("`{action}` is not an action on a run (retry, retry-step, cancel, rollback)."),
    )
}

/// `?step=` of the confirmation page.
#[derive(Debug, Default, Deserialize)]
pub struct StepQuery {
    #[serde(default)]
    step: Option<String>,
}

/// `GET /ui/runs/{id}/confirm/{action}?step=`: what the action will do, and the form that
/// does it.
pub async fn confirm(
    State(state): State<AppState>,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    q: Result<Query<StepQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let Some(act) = Action::parse(&action) else {
        return unknown_action(&action);
    };
    if !session.may_operate() {
        return session.forbidden("retry, cancel or roll back runs");
    }
    let r = match load(&state, &id).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let step = q.step.filter(|s| !s.is_empty());
    if act == Action::RetryStep && step.is_none() {
        return layout::error_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Which step?",
            "Retrying one step needs the step: use a step's Retry button on the run page.",
        );
    }
    let body = html! {
        p.muted { a href={ "/ui/runs/" (r.id) } { "← Run " (r.id) } }
        h1 { (act.title()) }
        (context(&r, &session))
        div.notice #consequences { (consequences(&r, act, step.as_deref())) }
        form #confirm method="post" action={ "/ui/runs/" (r.id) "/" (act.name()) } {
            input type="hidden" name="csrf" value=(session.csrf);
            @if let Some(s) = &step { input type="hidden" name="step" value=(s); }
            div.actions {
                button #confirm-button type="submit"
                    class=(if matches!(act, Action::Retry | Action::RetryStep) { "primary" } else { "danger" }) {
                    (act.title())
                }
                a #confirm-cancel href={ "/ui/runs/" (r.id) } { "Back to the run, change nothing" }
            }
        }
    };
    layout::page(&session, Nav::Runs, act.title(), body)
}

/// Which run, tenant and requester, and in whose name the journal records the action.
fn context(r: &RunRecord, session: &Session) -> Markup {
    let ctx = &r.context;
    let tenant = ctx["tenant"]["name"]
        .as_str()
        .or(ctx["tenant"]["id"].as_str())
        .unwrap_or("(none)");
    let by = ctx["trigger"]["by"].as_str().unwrap_or("nobody named");
    let source = ctx["trigger"]["source"].as_str().unwrap_or("unknown");
    let inputs = crate::api::runs::inputs_view(r);
    html! {
        dl.facts {
            dt { "Run" } dd { code { (r.id) } " of " (r.plan.runbook) " v" (r.plan.version) ", now " (layout::status(&status_name(r.status))) }
            dt { "Tenant" } dd { (tenant) }
            dt { "Requested by" } dd { (by) " via " (source) }
            @if let serde_json::Value::Object(map) = &inputs {
                @for (name, v) in map {
                    dt { "Input " code { (name) } }
                    dd.mono { (v.as_str().map_or_else(|| v.to_string(), str::to_string)) }
                }
            }
            dt { "Recorded as" } dd { "done by " strong { (session.name) } " in the run's journal" }
        }
    }
}

/// Steps of the main group that depend on `step`, directly or through others.
fn downstream(r: &RunRecord, from: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut frontier: Vec<String> = from.to_vec();
    while let Some(current) = frontier.pop() {
        for s in &r.plan.steps {
            if s.needs.iter().any(|d| d.step == current) && !found.contains(&s.id) {
                found.push(s.id.clone());
                frontier.push(s.id.clone());
            }
        }
    }
    found
}

fn list(items: &[String]) -> Markup {
    html! {
        @for (i, s) in items.iter().enumerate() {
            @if i > 0 { ", " }
            code { (s) }
        }
    }
}

/// What the action will do, in words, from the run as it is now (the engine decides when
/// the form is sent, and may refuse).
fn consequences(r: &RunRecord, act: Action, step: Option<&str>) -> Markup {
    let m = &r.machine;
    let status = status_name(r.status);
    let failed = view::failed_steps(m);
    match act {
        Action::Retry | Action::RetryStep => {
            let again: Vec<String> = match (act, step) {
                (Action::RetryStep, Some(s)) => vec![s.to_string()],
                _ => failed.clone(),
            };
            let held: Vec<String> = failed
                .iter()
                .filter(|f| !again.contains(f))
                .cloned()
                .collect();
            let after: Vec<String> = downstream(r, &again)
                .into_iter()
                .filter(|s| {
                    !matches!(
                        m.phase(s),
                        Some(StepPhase::Succeeded) | Some(StepPhase::Skipped)
                    )
                })
                .collect();
            html! {
                @if status != "failed" {
                    p.errors { "This run is " (status) ": only a failed run can be retried. Sending this form will be refused." }
                }
                @if act == Action::RetryStep && !failed.iter().any(|f| Some(f.as_str()) == step) {
                    p.errors { "Step " code { (step.unwrap_or_default()) } " has not failed: sending this form will be refused." }
                }
                ul.consequences {
                    @if again.is_empty() {
                        li { "No step has failed: nothing would run again." }
                    } @else {
                        li { "Run again, with a fresh retry budget: " (list(&again)) "." }
                    }
                    @if !after.is_empty() {
                        li { "Then the steps after them that have not run yet: " (list(&after)) "." }
                    }
                    li { "Steps that succeeded do not run again." }
                    @if !held.is_empty() {
                        li { "These failed steps stay failed, and the run fails again once nothing else can run: " (list(&held)) "." }
                    }
                    @if !r.plan.on_failure.is_empty() {
                        li { "If the run fails again, its on_failure steps run again." }
                    }
                }
            }
        }
        Action::Cancel => {
            let in_flight: Vec<String> = m
                .steps_of(m.stage())
                .into_iter()
                .filter(|s| {
                    m.instances(s).iter().any(|i| {
                        matches!(
                            i,
                            InstanceState::Running { .. }
                                | InstanceState::Ready
                                | InstanceState::RetryWait { .. }
                                | InstanceState::Parked { .. }
                        )
                    })
                })
                .map(str::to_string)
                .collect();
            html! {
                @if r.status.is_final() {
                    p.errors { "This run has ended (" (status) "): it cannot be cancelled. Sending this form will be refused." }
                }
                ul.consequences {
                    @if !in_flight.is_empty() {
                        li { "Stopped now (an attempt under way is abandoned, waiting approvals close): " (list(&in_flight)) "." }
                    }
                    li { "No further step starts; the run ends as cancelled." }
                    li { "Nothing is undone: what succeeded stays done. To undo it, roll the run back afterwards"
                        @if m.steps_of(Stage::Rollback).is_empty() { " (this runbook has no compensations)" } "." }
                }
            }
        }
        Action::Rollback => {
            // Compensations run for steps with `compensate` whose instances succeeded, the
            // later steps first.
            let mut undo: Vec<(String, String, usize)> = Vec::new();
            let mut nothing: Vec<String> = Vec::new();
            let mut kept: Vec<String> = Vec::new();
            for s in r.plan.steps.iter().rev() {
                let Some(c) = &s.compensate else {
                    if m.phase(&s.id) == Some(StepPhase::Succeeded) {
                        kept.push(s.id.clone());
                    }
                    continue;
                };
                if m.phase(&undo_id(&s.id)) == Some(StepPhase::Succeeded) {
                    continue;
                }
                let done = m
                    .instances(&s.id)
                    .iter()
                    .filter(|i| **i == InstanceState::Succeeded)
                    .count();
                if done == 0 {
                    nothing.push(s.id.clone());
                } else {
                    undo.push((s.id.clone(), c.uses.clone(), done));
                }
            }
            html! {
                @if !matches!(status.as_str(), "failed" | "cancelled") {
                    p.errors { "This run is " (status) ": only a failed or cancelled run can be rolled back. Sending this form will be refused." }
                }
                ul.consequences {
                    @if undo.is_empty() {
                        li { "No step that succeeded has a compensation: nothing would be undone." }
                    }
                    @for (step, uses, n) in &undo {
                        li.undo data-step=(step) { "Undo " code { (step) } " with " code { (uses) }
                            @if *n > 1 { " for each of its " (n) " items" } "." }
                    }
                    @if undo.len() > 1 { li { "In that order: later steps are undone first." } }
                    @if !nothing.is_empty() {
                        li { "Not undone (they did not succeed): " (list(&nothing)) "." }
                    }
                    @if kept.is_empty() {
                        li { "Steps without a compensation are not undone." }
                    } @else {
                        li { "These succeeded and have no compensation, so they stay done: " (list(&kept)) "." }
                    }
                    li { "The run ends as rolled back when every compensation succeeded." }
                }
            }
        }
    }
}

/// The action form: its CSRF token and, for `retry-step`, the step.
#[derive(Debug, Default, Deserialize)]
pub struct ActForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    step: Option<String>,
}

/// `POST /ui/runs/{id}/{action}`: the action, in the signed-in user's name, then back to the
/// run page (303). A role that may not operate, or a missing or wrong CSRF token, gets 403
/// and nothing changes; the engine's refusal is a 409 page saying why.
pub async fn act(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: Result<Form<ActForm>, FormRejection>,
) -> Response {
    let Some(act) = Action::parse(&action) else {
        return unknown_action(&action);
    };
    if !session.may_operate() {
        tracing::warn!(user = %session.name, run = %id, action = act.name(), "UI: a forced action refused (role)");
        return session.forbidden("retry, cancel or roll back runs");
    }
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if let Err(resp) = session.check_csrf(&headers, &form.csrf) {
        return *resp;
    }
    let engine = state.engine();
    let by = session.name.as_str();
    let done = match act {
        Action::Retry => engine.retry(&id, Vec::new(), by).await,
        Action::RetryStep => {
            let step = form.step.unwrap_or_default();
            engine.retry(&id, vec![step], by).await
        }
        Action::Cancel => engine.cancel(&id, by).await,
        Action::Rollback => engine.rollback(&id, by).await,
    };
    match done {
        Ok(status) => {
            tracing::info!(user = %by, run = %id, action = act.name(), status = %status_name(status), "UI: run action");
            Redirect::to(&format!("/ui/runs/{id}")).into_response()
        }
        Err(tenure_engine::api::Error::NoRun(_)) => not_found(&id),
        Err(tenure_engine::api::Error::Refused(why)) => layout::bare(
            StatusCode::CONFLICT,
            "Refused",
            html! {
                h1 { "Refused" }
                p #refusal { "The engine refused to " (act.name().replace('-', " ")) " run " code { (id) } ": " (why.to_string()) "." }
                p { "Nothing was changed." }
                p { a href={ "/ui/runs/" (id) } { "Back to the run" } }
            },
        ),
        Err(e) => {
            tracing::error!(error = %e, run = %id, action = act.name(), "UI: run action failed");
            layout::error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The action could not be recorded; the server log has the cause. Reload the run to see where it stands.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_name_themselves() {
        for a in [
            Action::Retry,
            Action::RetryStep,
            Action::Cancel,
            Action::Rollback,
        ] {
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        assert_eq!(Action::parse("delete"), None);
    }
}
