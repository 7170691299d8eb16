//! A run's page: `GET /ui/runs/{id}`, its live part `GET /ui/runs/{id}/live`, and the
//! operator actions (retry, retry a step, cancel, roll back): a confirmation page
//! `GET /ui/runs/{id}/confirm/{action}`, then `POST /ui/runs/{id}/{action}`.
//!
//! The page has the run's facts (runbook, tenant, trigger, times, parent and called runs,
//! inputs with secrets as `***`) and a live part htmx replaces every second until the run
//! ends: the status, the operator's buttons, the DAG coloured by step state (`#graph`), the
//! attempts' timeline (`#timeline`), approvals (`#approvals`) and the log (`#log`). The report
//! (`#report`) is built on page load and once more, swapped in out of band by the last
//! fragment, when the run ends (building it walks every item of a large `for_each`, too much
//! to repeat every second). Everything is read through the Engine API; every action is an
//! Engine call in the signed-in user's name, which the machine may refuse (a 409 page).

mod actions;
mod view;

use std::collections::HashSet;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use tenure_engine::journal::Event;
use tenure_engine::machine::{status_name, Stage};
use tenure_engine::store::{RunFilter, RunRecord, RunRow};
use tenure_runbook::KindClass;

use super::layout::{self, Nav};
use super::session::Session;
use crate::state::AppState;

pub use actions::{act, confirm};

/// How many log lines the page shows unless asked for all of them.
pub const LOG_TAIL: usize = 200;
/// How many attempts the timeline draws at most (a large `for_each` has thousands).
pub const TIMELINE_MAX: usize = 300;

/// `?log=all` shows the whole log.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    log: Option<String>,
}

impl PageQuery {
    fn all(&self) -> bool {
        self.log.as_deref() == Some("all")
    }
}

/// The run, or the page to answer instead (404 for an unknown run).
pub(super) async fn load(state: &AppState, id: &str) -> Result<RunRecord, Box<Response>> {
    match state.engine().run(id).await {
        Ok(r) => Ok(r),
        Err(tenure_engine::api::Error::NoRun(_)) => Err(Box::new(not_found(id))),
        Err(e) => Err(Box::new(engine_error(&e))),
    }
}

fn not_found(id: &str) -> Response {
    layout::error_page(
        StatusCode::NOT_FOUND,
        "No such run",
        &format!("There is no run `{id}`."),
    )
}

fn engine_error(e: &tenure_engine::api::Error) -> Response {
    tracing::error!(error = %e, "UI: reading a run failed");
    layout::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The run could not be read; the server log has the cause.",
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The run `id` and the live part of its page (what both the page and its fragment start
/// with), or the page answering why not.
async fn run_and_live(
    state: &AppState,
    session: &Session,
    id: &str,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<(RunRecord, Markup), Box<Response>> {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let r = load(state, id).await?;
    let live = live_part(state, session, &r, q.all()).await?;
    Ok((r, live))
}

/// `GET /ui/runs/{id}`.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let (r, live) = match run_and_live(&state, &session, &id, q).await {
        Ok(found) => found,
        Err(resp) => return *resp,
    };
    let report = match report_section(&state, &r, false).await {
        Ok(m) => m,
        Err(resp) => return *resp,
    };
    // The runs it called, from the light rows (no plan or machine read).
    let children = state
        .engine()
        .run_rows(&RunFilter {
            parent: Some(id.clone()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let body = html! {
        p.muted { a href="/ui/runs" { "← Runs" } }
        h1 { "Run " code { (r.id) } }
        (facts(&r, &children))
        (live)
        (report)
    };
    layout::page(&session, Nav::Runs, &format!("Run {id}"), body)
}

/// `GET /ui/runs/{id}/live`: the part of the page that changes.
pub async fn live(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let (r, live) = match run_and_live(&state, &session, &id, q).await {
        Ok(found) => found,
        Err(resp) => return *resp,
    };
    // The last fragment (the run has ended, polling stops) brings the complete report with
    // it, swapped in out of band; while the run goes on the report is not rebuilt each second.
    let report = if r.status.is_final() {
        match report_section(&state, &r, true).await {
            Ok(m) => m,
            Err(resp) => return *resp,
        }
    } else {
        html! {}
    };
    layout::fragment(html! { (live) (report) })
}

/// The run report (`#report`), rendered from its Markdown with raw HTML escaped; `oob` marks
/// it for htmx to swap in place of the page's report.
async fn report_section(
    state: &AppState,
    r: &RunRecord,
    oob: bool,
) -> Result<Markup, Box<Response>> {
    let report = state
        .engine()
        .report(&r.id)
        .await
        .map_err(|e| Box::new(engine_error(&e)))?;
    Ok(html! {
        section #report hx-swap-oob=[oob.then_some("true")] {
            h2 { "Report" }
            @if !r.status.is_final() {
                p.muted { "The report so far, as of " (layout::time(now_ms())) " UTC; the complete report replaces it when the run ends." }
            }
            div.report { (layout::trusted(report.html())) }
        }
    })
}

/// The header facts: runbook, tenant, trigger, times, parent and called runs, inputs.
fn facts(r: &RunRecord, children: &[RunRow]) -> Markup {
    let ctx = &r.context;
    let text = |v: &Value| v.as_str().map(str::to_string);
    let tenant = match (text(&ctx["tenant"]["name"]), text(&ctx["tenant"]["id"])) {
        (Some(name), Some(id)) if name != id => Some(format!("{name} ({id})")),
        (Some(name), _) => Some(name),
        (None, id) => id,
    };
    let trigger = &ctx["trigger"];
    let inputs = crate::api::runs::inputs_view(r);
    html! {
        section.panel #facts aria-label="Facts" {
            dl.facts {
                dt { "Runbook" }
                dd {
                    a.runbook-link data-runbook=(r.plan.runbook) href={ "/ui/runbooks/" (r.plan.runbook) } {
                        (r.plan.runbook) " v" (r.plan.version)
                    }
                    @if let Some(d) = &r.plan.description { span.muted { " · " (d) } }
                }
                @if let Some(t) = tenant { dt { "Tenant" } dd { (t) } }
                dt { "Started by" }
                dd {
                    (text(&trigger["by"]).unwrap_or_else(|| "nobody named".into()))
                    " via " (text(&trigger["source"]).unwrap_or_else(|| "unknown".into()))
                }
                dt { "Created" } dd { (layout::time(r.created_at)) " UTC" }
                @if let Some((parent, step, item)) = &r.parent {
                    dt { "Called by" }
                    dd {
                        a #parent-run href={ "/ui/runs/" (parent) } { (parent) }
                        " (step " code { (step) } @if *item > 0 { " item " (item) } ")"
                    }
                }
                @if !children.is_empty() {
                    dt { "Called runs" }
                    dd {
                        ul.called {
                            @for c in children {
                                li {
                                    a.called-run href={ "/ui/runs/" (c.id) } { (c.id) }
                                    " " (c.runbook) " "
                                    (layout::status(&status_name(c.status)))
                                }
                            }
                        }
                    }
                }
                @if let Value::Object(map) = &inputs {
                    @for (name, value) in map {
                        dt { "Input " code { (name) } }
                        dd.mono { (input_text(value)) }
                    }
                }
            }
        }
    }
}

fn input_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

/// The live part: status, actions, DAG, timeline, approvals, log. While the run is
/// not final it asks htmx to replace it every second; once final it carries no trigger, so
/// polling stops.
async fn live_part(
    state: &AppState,
    session: &Session,
    r: &RunRecord,
    all: bool,
) -> Result<Markup, Box<Response>> {
    let events = state
        .engine()
        .events(&r.id, 0)
        .await
        .map_err(|e| Box::new(engine_error(&e)))?;
    let now = now_ms();
    let finished = r.status.is_final();
    let status = status_name(r.status);
    let end = if finished { r.updated_at } else { now };
    let url = if all {
        format!("/ui/runs/{}/live?log=all", r.id)
    } else {
        format!("/ui/runs/{}/live", r.id)
    };
    let each: HashSet<&str> = r
        .plan
        .steps
        .iter()
        .chain(&r.plan.on_failure)
        .filter(|s| s.for_each.is_some())
        .map(|s| s.id.as_str())
        .collect();
    let overlay = view::overlay(r, &events, now);
    let svg = tenure_graph::to_svg_with(&r.plan, &overlay);
    Ok(html! {
        div #live hx-get=[(!finished).then_some(url.as_str())]
            hx-trigger=[(!finished).then_some("every 1s")]
            hx-swap=[(!finished).then_some("outerHTML")] {
            p #run-status data-status=(status) aria-live="polite" {
                (layout::status(&status))
                " · " (layout::duration(end - r.created_at))
                @if let Some(step) = r.machine.failed_step() { " · failed at step " code { (step) } }
                @if !finished { " " span.live { "updating every second" } }
            }
            (buttons(session, r))
            section #graph {
                h2 { "Steps" }
                div.dag { (layout::trusted(svg)) }
            }
            section #timeline {
                h2 { "Timeline" }
                (timeline(&events, &each, r.created_at, now, finished))
            }
            section #approvals {
                h2 { "Approvals" }
                (approvals(r))
            }
            section #log {
                h2 { "Log" }
                (log(&events, &each, &r.id, all))
            }
        }
    })
}

/// The operator's buttons (links to the confirmation page), for operators and admins only,
/// offered in the states the engine allows them.
fn buttons(session: &Session, r: &RunRecord) -> Markup {
    if !session.may_operate() {
        return html! {};
    }
    let m = &r.machine;
    let status = status_name(r.status);
    let failed = status == "failed";
    let cancellable = !r.status.is_final();
    let undoable = matches!(status.as_str(), "failed" | "cancelled")
        && !m.steps_of(Stage::Rollback).is_empty();
    let failed_steps = if failed {
        view::failed_steps(m)
    } else {
        Vec::new()
    };
    let base = format!("/ui/runs/{}/confirm", r.id);
    if !(failed || cancellable || undoable) {
        return html! {};
    }
    html! {
        div.actions #run-actions {
            @if failed {
                a.button.primary #action-retry href={ (base) "/retry" } { "Retry failed steps" }
            }
            @for step in &failed_steps {
                a.button.action-retry-step data-step=(step)
                    href={ (base) "/retry-step?step=" (encode(step)) } { "Retry " (step) " only" }
            }
            @if cancellable {
                a.button.danger #action-cancel href={ (base) "/cancel" } { "Cancel run" }
            }
            @if undoable {
                a.button.danger #action-rollback href={ (base) "/rollback" } { "Roll back" }
            }
        }
    }
}

/// A query value, percent-encoded.
pub(super) fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The attempts as an SVG Gantt strip: one row per attempt, a bar from its start to its end
/// relative to the run's creation, coloured by outcome and labelled.
fn timeline(
    events: &[Event],
    each: &HashSet<&str>,
    created: i64,
    now: i64,
    finished: bool,
) -> Markup {
    let attempts = view::attempts(events, now, finished);
    if attempts.is_empty() {
        return html! { p.muted { "No attempt has started yet." } };
    }
    let shown = &attempts[..attempts.len().min(TIMELINE_MAX)];
    let t0 = created.min(shown.iter().map(|a| a.start).min().unwrap_or(created));
    let span = (shown.iter().map(|a| a.end).max().unwrap_or(t0) - t0).max(1) as f64;
    const W: f64 = 960.0;
    const LABEL: f64 = 230.0;
    const ROW: f64 = 22.0;
    const TOP: f64 = 24.0;
    let plot = W - LABEL - 16.0;
    let height = TOP + ROW * shown.len() as f64 + 8.0;
    let x = |t: i64| LABEL + (t - t0) as f64 / span * plot;
    let ticks = [0.0, 0.25, 0.5, 0.75, 1.0];
    html! {
        div.dag.timeline {
            svg xmlns="http://www.w3.org/2000/svg" width=(W) height=(height)
                viewBox={ "0 0 " (W) " " (height) } font-family="Helvetica, Arial, sans-serif"
                role="img" aria-label="Attempts over time" {
                rect width="100%" height="100%" fill="#ffffff" {}
                @for f in ticks {
                    @let tx = LABEL + f * plot;
                    line x1=(tx) y1="16" x2=(tx) y2=(height) stroke="#d0d7de" stroke-width="1" {}
                    text x=(tx) y="12" font-size="10" fill="#57606a"
                        text-anchor=(if f == 0.0 { "start" } else if f == 1.0 { "end" } else { "middle" }) {
                        "+" (layout::duration((span * f) as i64))
                    }
                }
                @for (i, a) in shown.iter().enumerate() {
                    @let y = TOP + ROW * i as f64;
                    @let (fill, stroke) = tenure_graph::state_colours(outcome_state(a.outcome));
                    @let bx = x(a.start);
                    @let bw = (x(a.end) - bx).max(3.0);
                    @let label = attempt_label(a, each.contains(a.step.as_str()));
                    g.attempt data-step=(a.step) data-attempt=(a.attempt) data-outcome=(a.outcome) {
                        title { (label) ": " (a.outcome) ", " (layout::duration(a.end - a.start))
                            ", from +" (layout::duration(a.start - t0)) }
                        text x="4" y=(y + 14.0) font-size="11" fill="#1f2328" { (truncate(&label, 34)) }
                        rect x=(round(bx)) y=(y + 3.0) width=(round(bw)) height="15" rx="3"
                            fill=(fill) stroke=(stroke) {}
                        text x=(round((bx + bw + 4.0).min(W - 4.0))) y=(y + 14.0) font-size="10" fill="#57606a"
                            text-anchor=(if bx + bw + 90.0 > W { "end" } else { "start" }) {
                            (a.outcome) " · " (layout::duration(a.end - a.start))
                        }
                    }
                }
            }
        }
        @if attempts.len() > shown.len() {
            p.muted { (attempts.len() - shown.len()) " later attempts are not drawn; the log has them all." }
        }
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn attempt_label(a: &view::Attempt, each: bool) -> String {
    match a.item {
        Some(i) if each => format!("{}[{i}] #{}", a.step, a.attempt),
        _ => format!("{} #{}", a.step, a.attempt),
    }
}

/// The state colour of an attempt's outcome.
fn outcome_state(outcome: &str) -> &str {
    match outcome {
        "deferred" => "waiting",
        "stopped" => "cancelled",
        other => other,
    }
}

/// Every approval gate of the runbook: who may decide, who decided what, when, with which
/// comment and from where, and who has not decided yet.
fn approvals(r: &RunRecord) -> Markup {
    let m = &r.machine;
    let gates: Vec<&tenure_runbook::Step> = r
        .plan
        .steps
        .iter()
        .chain(&r.plan.on_failure)
        .filter(|s| s.class == KindClass::Approval)
        .collect();
    if gates.is_empty() {
        return html! { p.muted { "This runbook has no approval gate." } };
    }
    html! {
        @for s in gates {
            @let state = view::step_state(m, &s.id);
            div.card.gate data-step=(s.id) data-state=(state) {
                h3 { code { (s.id) } " " (layout::status(&state)) }
                @match m.gate(&s.id) {
                    None => { p.muted { "Not requested yet." } }
                    Some(g) => {
                        @if let Some(msg) = &g.message { p.msg { (msg) } }
                        dl.facts {
                            dt { "Approvers" } dd { (g.approvers.join(", ")) }
                            dt { "Needed" } dd { (g.quorum) " approval" @if g.quorum != 1 { "s" } }
                            @if let Some(by) = &g.requested_by {
                                dt { "Requested by" } dd { (by) " (may not decide)" }
                            }
                            dt { "Expires" } dd { (layout::time(g.expires_at_ms.min(i64::MAX as u64) as i64)) " UTC" }
                        }
                        @if g.decisions.is_empty() {
                            p.muted { "No decision yet." }
                        } @else {
                            div.table-wrap {
                                table.decisions {
                                    thead { tr { th { "Who" } th { "Decision" } th { "When (UTC)" } th { "Comment" } th { "From" } } }
                                    tbody {
                                        @for d in &g.decisions {
                                            tr.decision data-approver=(d.approver) {
                                                td { (d.approver) }
                                                td { (layout::status(if d.approve { "approved" } else { "denied" })) }
                                                td.at { (layout::time(d.at_ms.min(i64::MAX as u64) as i64)) }
                                                td { (d.comment.as_deref().unwrap_or("")) }
                                                td { (d.source) @if let Some(ua) = &d.user_agent { br; span.muted { (ua) } } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if state == "waiting" {
                            @let pending: Vec<&str> = g.eligible().into_iter().filter(|a| !g.has_decided(a)).collect();
                            p.pending-approvers { "Waiting for: " (pending.join(", ")) }
                        }
                    }
                }
            }
        }
    }
}

/// The execution log: time, step, what happened (the last [`LOG_TAIL`] events unless `all`).
fn log(events: &[Event], each: &HashSet<&str>, id: &str, all: bool) -> Markup {
    let skip = if all {
        0
    } else {
        events.len().saturating_sub(LOG_TAIL)
    };
    html! {
        @if skip > 0 {
            p.muted { "The last " (LOG_TAIL) " of " (events.len()) " events. "
                a #log-all href={ "/ui/runs/" (id) "?log=all#log" } { "Show all" } }
        }
        div.table-wrap {
            table.log {
                thead { tr { th { "Time (UTC)" } th { "Step" } th { "Event" } } }
                tbody {
                    @for e in &events[skip..] {
                        @let step = view::step_of(&e.kind);
                        tr data-seq=(e.seq) {
                            td.at { (e.at.get(11..23).unwrap_or(&e.at)) }
                            td { @if let Some((s, _)) = step { code { (s) } } }
                            td { (view::log_text(&e.kind, step.is_some_and(|(s, _)| each.contains(s)))) }
                        }
                    }
                }
            }
        }
    }
}
