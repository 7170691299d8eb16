//! The runbook catalogue: `GET /ui/runbooks`, a runbook's page `GET /ui/runbooks/{id}` (graph,
//! inputs, triggers, validation, the start form), its picture, and `POST
//! /ui/runbooks/{id}/start`.
//!
//! The start form has one typed field per input (see [`form`]); what it posts is turned into
//! the same JSON inputs the CLI and `POST /api/runs` send and checked by the same function,
//! [`tenure_runbook::inputs::resolve`], which [`tenure_engine::Engine::start_run`] applies
//! again when it starts the run. A secret input's value is never written back into a page.

pub mod form;

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use tenure_engine::{StartRun, Trigger};
use tenure_runbook::{Missed, Plan};

use super::layout::{self, Nav};
use super::session::Session;
use crate::library::{Library, RunbookEntry};
use crate::state::AppState;
use form::{Field, Filled};

/// How many diagnostics of each severity an entry has: `(errors, warnings)`.
fn counts(e: &RunbookEntry) -> (usize, usize) {
    let errors = e
        .diagnostics
        .iter()
        .filter(|d| d.contains("error["))
        .count();
    let warnings = e
        .diagnostics
        .iter()
        .filter(|d| d.contains("warning["))
        .count();
    // A file that does not compile has at least one error even if none is marked.
    (
        if e.plan.is_none() {
            errors.max(1)
        } else {
            errors
        },
        warnings,
    )
}

fn validation_badge(e: &RunbookEntry) -> Markup {
    let (errors, warnings) = counts(e);
    html! {
        @if errors > 0 {
            span.status.st-failed { (errors) " error" @if errors != 1 { "s" } }
        } @else if warnings > 0 {
            span.status.st-waiting { (warnings) " lint warning" @if warnings != 1 { "s" } }
        } @else {
            span.status.st-succeeded { "ok" }
        }
    }
}

fn schedule_text(cron: &str, timezone: &str, missed: Missed) -> String {
    let missed = match missed {
        Missed::RunOnce => "missed ticks: one run",
        Missed::Skip => "missed ticks: skipped",
    };
    format!("schedule `{cron}` ({timezone}; {missed})")
}

/// One line per trigger: `webhook halo when …`, `schedule … (timezone; missed …)`.
fn trigger_lines(plan: &Plan) -> Vec<String> {
    plan.triggers
        .iter()
        .map(|t| match t {
            tenure_runbook::plan::Trigger::Webhook { source, when, .. } => match when {
                Some(w) => format!("webhook `{source}` when {w}"),
                None => format!("webhook `{source}`"),
            },
            tenure_runbook::plan::Trigger::Schedule {
                cron,
                timezone,
                missed,
                ..
            } => schedule_text(cron, timezone, *missed),
        })
        .collect()
}

/// The entry declaring `id`, or the page saying there is none or more than one.
fn entry(library: &Library, id: &str) -> Result<RunbookEntry, Box<Response>> {
    let found: Vec<&RunbookEntry> = library.entries.iter().filter(|e| e.id == id).collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Box::new(layout::error_page(
            StatusCode::NOT_FOUND,
            "No such runbook",
            &format!("No runbook file declares `{id}`."),
        ))),
        many => Err(Box::new(layout::error_page(
            StatusCode::CONFLICT,
            "More than one file declares this runbook",
            &format!(
                "{} files declare `{id}`: {}. Give each its own `runbook:` id.",
                many.len(),
                many.iter()
                    .map(|e| e.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))),
    }
}

/// `GET /ui/runbooks`.
pub async fn list(State(state): State<AppState>, session: Session) -> Response {
    let library = state.library();
    let body = html! {
        h1 { "Runbooks" }
        @if library.entries.is_empty() {
            p.notice { "No runbook files were found in the runbooks directory." }
        } @else {
            div.table-wrap {
                table #runbooks {
                    thead { tr {
                        th { "Runbook" } th.num { "Version" } th { "Description" }
                        th.hide-narrow { "File" } th { "Validation" } th.hide-narrow { "Triggers" }
                    } }
                    tbody {
                        @for e in &library.entries {
                            @let plan = e.plan.as_deref();
                            tr.runbook-row data-runbook=(e.id) {
                                td { a.runbook-link data-runbook=(e.id) href=(format!("/ui/runbooks/{}", enc(&e.id))) { (e.id) } }
                                td.num { @if let Some(p) = plan { (p.version) } }
                                td { @if let Some(d) = plan.and_then(|p| p.description.as_deref()) { (d) } }
                                td.hide-narrow.mono { (e.path) }
                                td { (validation_badge(e)) }
                                td.hide-narrow {
                                    @match plan.map(trigger_lines) {
                                        Some(lines) if !lines.is_empty() => {
                                            @for l in lines { div { (l) } }
                                        }
                                        _ => { span.muted { "started by people" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&session, Nav::Runbooks, "Runbooks", body)
}

/// What a URL path segment must escape: controls, space and the characters that end or
/// reshape a segment (`/ ? # %`) or that HTML and URLs treat specially.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `s` as one URL path segment (a run id stays as it is: `/ui/runs/0190-…`).
pub(crate) fn path_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

fn enc(s: &str) -> String {
    path_segment(s)
}

/// `GET /ui/runbooks/{id}`.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let library = state.library();
    let e = match entry(&library, &id) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let filled = e.plan.as_deref().map(Filled::defaults).unwrap_or_default();
    runbook_page(&session, &e, (&filled, &new_once()), &[], StatusCode::OK)
}

/// The runbook page, with the start form holding `filled` and the `problems` of a refused
/// start (summary first, then by field).
fn runbook_page(
    session: &Session,
    e: &RunbookEntry,
    form: (&Filled, &str),
    problems: &[(Option<String>, String)],
    status: StatusCode,
) -> Response {
    let (filled, once) = form;
    let plan = e.plan.as_deref();
    let body = html! {
        h1 { (e.id) }
        dl.facts {
            @if let Some(p) = plan {
                dt { "Version" } dd { (p.version) }
                @if let Some(d) = &p.description { dt { "Description" } dd { (d) } }
                dt { "Tenant" } dd.mono { (p.tenant) }
            }
            dt { "File" } dd.mono { (e.path) }
            dt { "Validation" } dd { (validation_badge(e)) }
        }
        @if let Some(p) = plan {
            section #start {
                (start_section(session, p, (filled, once), problems))
            }
            section #graph {
                h2 { "Steps" }
                div.dag { (layout::trusted(tenure_graph::to_svg(p))) }
                p.hint { a href=(format!("/ui/runbooks/{}/graph.svg", enc(&e.id))) { "Open the picture on its own" } }
            }
            section #inputs {
                h2 { "Inputs" }
                @if p.inputs.is_empty() {
                    p.muted { "This runbook takes no inputs." }
                } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Name" } th { "Type" } th { "Required" } th { "Default" } th { "Description" } } }
                        tbody {
                            @for (name, spec) in &p.inputs {
                                tr {
                                    td.mono { (name) }
                                    td { (spec.ty.name())
                                        @if spec.ty.is_secret() { " " span.badge { "secret: shown as ***" } }
                                        @if let Some(a) = &spec.allowed { br; span.hint { "one of " (form::allowed_text(a)) } }
                                        @if let Some(pat) = &spec.pattern { br; span.hint { "matching " code { (pat) } } }
                                    }
                                    td { @if spec.required { "yes" } @else { "no" } }
                                    td.mono { (form::default_text(spec)) }
                                    td { @if let Some(d) = &spec.description { (d) } }
                                }
                            }
                        }
                    } }
                }
            }
            section #triggers {
                h2 { "Triggers" }
                @let lines = trigger_lines(p);
                @if lines.is_empty() {
                    p.muted { "No webhook or schedule: runs are started by people (here, the CLI or the API)." }
                } @else {
                    ul { @for l in lines { li { (l) } } }
                }
            }
        } @else {
            section #start {
                h2 { "Start a run" }
                p.errors role="alert" { "This runbook does not compile, so it cannot be started. Fix the errors below in " code { (e.path) } "; the server picks up the change by itself." }
            }
        }
        section #validation {
            h2 { "Validation" }
            @if e.diagnostics.is_empty() {
                p { "The compiler found nothing to report." }
            } @else {
                pre.diagnostics { @for d in &e.diagnostics { (d) "\n" } }
            }
        }
    };
    let mut resp = layout::page(session, Nav::Runbooks, &e.id, body);
    *resp.status_mut() = status;
    resp
}

fn start_section(
    session: &Session,
    plan: &Plan,
    form: (&Filled, &str),
    problems: &[(Option<String>, String)],
) -> Markup {
    let (filled, once) = form;
    html! {
        h2 { "Start a run" }
        @if !session.may_start() {
            p.muted { "Your role may not start runs: an operator or admin can start this runbook here." }
        } @else {
            @if !problems.is_empty() {
                div.errors role="alert" {
                    p { strong { "The run was not started." } " Correct these and start it again:" }
                    ul { @for (field, message) in problems {
                        li { @if let Some(f) = field { a href=(format!("#in-{f}")) { code { (f) } } ": " } (message) }
                    } }
                }
            }
            form #start-run method="post" action=(format!("/ui/runbooks/{}/start", enc(&plan.runbook))) {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="once" value=(once);
                @for (name, spec) in &plan.inputs {
                    @let errors: Vec<&str> = problems.iter().filter(|(f, _)| f.as_deref() == Some(name.as_str())).map(|(_, m)| m.as_str()).collect();
                    (Field { name, spec, value: filled.get(name), errors: &errors }.render())
                }
                p.hint { "Required fields are marked *. Lists take one item per line. Date-times are UTC. Secret fields are never shown again, not even after an error." }
                div.actions { button.primary #start-button type="submit" { "Start run" } }
            }
        }
    }
}

/// A fresh value for the form's `once` field.
fn new_once() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The form's `once` value if it is one this page could have issued (32 hex digits).
fn posted_once(fields: &[(String, String)]) -> Option<String> {
    fields
        .iter()
        .find(|(k, _)| k == "once")
        .map(|(_, v)| v.clone())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `GET /ui/runbooks/{id}/graph.svg`.
pub async fn graph(
    State(state): State<AppState>,
    _session: Session,
    Path(id): Path<String>,
) -> Response {
    let library = state.library();
    let e = match entry(&library, &id) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let Some(plan) = e.plan else {
        return layout::error_page(
            StatusCode::CONFLICT,
            "This runbook does not compile",
            "Its graph cannot be drawn until the errors on its page are fixed.",
        );
    };
    let mut resp = tenure_graph::to_svg(&plan).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `POST /ui/runbooks/{id}/start`: checks the CSRF token and the role, converts the form into
/// JSON inputs, checks them as every start does, and starts the run (trigger `ui` by the
/// signed-in user); `303` to the run's page, or the form again (`422`) with every problem.
pub async fn start(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let Ok(Form(fields)) = form else {
        return layout::error_page(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            "Send the start form of the runbook's page. Nothing was started.",
        );
    };
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if let Err(r) = session.check_csrf(&headers, csrf) {
        return *r;
    }
    if !session.may_start() {
        return session.forbidden("start runs");
    }
    let library = state.library();
    let e = match entry(&library, &id) {
        Ok(e) => e,
        Err(r) => return *r,
    };
    let Some(plan) = e.plan.clone() else {
        return runbook_page(
            &session,
            &e,
            (&Filled::default(), ""),
            &[],
            StatusCode::CONFLICT,
        );
    };
    let filled = Filled::from_form(&plan, &fields);
    // A form is started at most once: sent again (a double click, a reload after the
    // redirect) it finds the run it started.
    let once = posted_once(&fields);
    let shown_once = once.clone().unwrap_or_else(new_once);
    let inputs = filled.to_inputs(&plan);
    // The same check the engine applies on every start, run here first to place each
    // problem beside its field.
    if let Err(errors) = tenure_runbook::inputs::resolve(&plan.inputs, &inputs) {
        let problems: Vec<(Option<String>, String)> = errors
            .into_iter()
            .map(|e| (Some(e.name), e.message))
            .collect();
        return runbook_page(
            &session,
            &e,
            (&filled.without_secrets(&plan), &shown_once),
            &problems,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let started = state
        .engine()
        .start_run(StartRun {
            plan: Arc::clone(&plan),
            inputs,
            trigger: Trigger::new("ui", Some(session.name.clone())),
            dedup_key: once.map(|o| format!("ui:{}:{}:{o}", plan.runbook, session.name)),
        })
        .await;
    match started {
        Ok(s) => {
            tracing::info!(run = %s.id, by = %session.name, duplicate = s.duplicate, "run started from the UI");
            Redirect::to(&format!("/ui/runs/{}", enc(&s.id))).into_response()
        }
        Err(err) => {
            use tenure_engine::api::Error as E;
            let problems: Vec<(Option<String>, String)> = match err {
                E::Inputs(list) => list.into_iter().map(|m| (None, m)).collect(),
                E::Tenant(m) | E::Template(m) => vec![(None, m)],
                other => {
                    tracing::error!(error = %other, "the UI could not start a run");
                    return layout::error_page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Try again later",
                        "The run could not be stored right now. Nothing was started.",
                    );
                }
            };
            runbook_page(
                &session,
                &e,
                (&filled.without_secrets(&plan), &shown_once),
                &problems,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}
