//! Approval links: `GET /approvals/{token}` shows who asks for what (the runbook, the person,
//! the inputs with secrets as `***`, the message, what will happen after approval as
//! `tenure plan` previews it, any licence a step may buy, who decided so far, the expiry) and
//! one form; only `POST /approvals/{token}` with that form's CSRF token decides, through
//! [`tenure_engine::Engine::decide`] (the machine counts the quorum and refuses the requester,
//! a second decision and a gate that is not waiting).
//!
//! Each refusal is a page with a 4xx status and changes nothing: forged or altered link (403),
//! expired link (410), a link of another approval request (409), an approver the request does
//! not name (403), the person who requested the run (403), a reused link (409), a request no
//! longer waiting (409), a missing or stale CSRF token (403), an unreadable form (400).

pub mod links;
pub mod notify;
pub mod page;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use serde_json::{Map, Value};
use tenure_engine::machine::{Gate, InstanceState, StepPhase};
use tenure_engine::store::RunRecord;

use crate::state::AppState;
pub use links::{Claim, LinkError, Links};
use page::{refusal, text};

/// The longest comment kept (characters): the engine's bound, for the form's `maxlength`.
const COMMENT_MAX: usize = tenure_engine::api::COMMENT_MAX;

/// The `approvals` routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/approvals/{token}", get(show).post(decide))
}

/// `path` as request logs may show it: an approval link's token (a bearer credential) is
/// replaced by `***` (`/approvals/***`); other paths are returned as they are.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/approvals/") {
        Some(rest) if !rest.is_empty() => std::borrow::Cow::Borrowed("/approvals/***"),
        _ => std::borrow::Cow::Borrowed(path),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The request a valid link names, with its run and gate, or the refusal page.
struct Found {
    claim: Claim,
    run: RunRecord,
    gate: Gate,
}

async fn find(state: &AppState, token: &str, now: u64) -> Result<Found, Response> {
    let Some(links) = state.links() else {
        return Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "Approval links are not available",
            "This server has no key to check approval links with.",
        ));
    };
    let claim = match links.verify(token, now) {
        Ok(c) => c,
        Err(LinkError::Forged) => {
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "This link is not valid",
                "The link is not one this server signed, or it was altered. Use the link from your message as it is.",
            ))
        }
        Err(LinkError::Expired) => {
            return Err(refusal(
                StatusCode::GONE,
                "This link has expired",
                "The approval request this link belongs to has expired; it resolved as its runbook says.",
            ))
        }
    };
    let run = match state.engine().run(&claim.run).await {
        Ok(r) => r,
        Err(tenure_engine::api::Error::NoRun(_)) => {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                "No such run",
                "The run this link belongs to no longer exists.",
            ))
        }
        Err(e) => {
            tracing::error!(error = %e, "approval page: the run cannot be read");
            return Err(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "The run cannot be read right now.",
            ));
        }
    };
    // The links are sent while the attempt that requests the approval still runs: a click
    // that arrives before that attempt is recorded is told to come back in a moment.
    let sending = matches!(
        run.machine.instance(&claim.step, 0),
        Some(InstanceState::Running { attempt }) if attempt == claim.attempt
    );
    if sending
        && run
            .machine
            .gate(&claim.step)
            .is_none_or(|g| g.attempt < claim.attempt)
    {
        let mut page = refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "This request is still being sent",
            "The approval request is being sent to its approvers right now. Try again in a few seconds.",
        );
        page.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("2"),
        );
        return Err(page);
    }
    let Some(gate) = run.machine.gate(&claim.step).cloned() else {
        return Err(refusal(
            StatusCode::NOT_FOUND,
            "No such approval",
            "The run has no approval request for this link.",
        ));
    };
    if gate.attempt != claim.attempt {
        return Err(refusal(
            StatusCode::CONFLICT,
            "This link belongs to an earlier request",
            "The approval was requested again since this link was sent; use the link of the newest request.",
        ));
    }
    let Some(name) = gate.approver(&claim.approver).map(str::to_string) else {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "You are not an approver of this request",
            "This link names someone the request does not ask.",
        ));
    };
    if gate.is_requester(&name) {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "You requested this run",
            "Nobody approves their own request: another approver must decide.",
        ));
    }
    if let Some(d) = gate
        .decisions
        .iter()
        .find(|d| d.approver.eq_ignore_ascii_case(&name))
    {
        return Err(refusal(
            StatusCode::CONFLICT,
            "You have already decided",
            &format!(
                "You chose {} at {}. A link decides once.",
                if d.approve { "approve" } else { "deny" },
                notify::when(d.at_ms)
            ),
        ));
    }
    let waiting = matches!(
        run.machine.instance(&claim.step, 0),
        Some(InstanceState::Parked { .. })
    );
    if !waiting {
        let how = if gate.decisions.is_empty() {
            "It is no longer waiting for a decision".to_string()
        } else {
            format!("It was decided by {}", gate.decided_by().join(", "))
        };
        return Err(refusal(
            StatusCode::CONFLICT,
            "This request is no longer waiting",
            &format!(
                "{how} (the run is {}).",
                tenure_engine::machine::status_name(run.status)
            ),
        ));
    }
    Ok(Found { claim, run, gate })
}

/// `GET /approvals/{token}`: the request page. Never decides.
async fn show(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let now = now_ms();
    let found = match find(&state, &token, now).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let csrf = state
        .links()
        .map(|l| l.csrf(&token, now))
        .unwrap_or_default();
    page::html(
        StatusCode::OK,
        &format!("Approval: {}", found.run.plan.runbook),
        &request_page(&found, &csrf),
    )
}

/// `POST /approvals/{token}` with `csrf`, `decision` (`approve`/`deny`) and `comment`.
async fn decide(
    State(state): State<AppState>,
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let now = now_ms();
    let found = match find(&state, &token, now).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let Ok(Form(form)) = form else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            "Send the form of the approval page.",
        );
    };
    let csrf_ok = match (state.links(), form.get("csrf")) {
        (Some(l), Some(c)) => l.csrf_ok(&token, c, now),
        _ => false,
    };
    if !csrf_ok {
        return refusal(
            StatusCode::FORBIDDEN,
            "The page has expired",
            "The decision did not come from a current approval page. Open the link again and decide there.",
        );
    }
    let approve = match form.get("decision").map(String::as_str) {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "No decision",
                "Press Approve or Deny.",
            )
        }
    };
    let comment = form
        .get("comment")
        .and_then(|c| tenure_engine::api::clean_comment(c));
    let user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let decision = tenure_engine::Decide {
        run_id: found.claim.run.clone(),
        step: found.claim.step.clone(),
        approver: found.claim.approver.clone(),
        approve,
        comment,
        source: format!("link from {}", peer.ip()),
        user_agent,
    };
    match state.engine().decide(decision).await {
        Ok(status) => {
            tracing::info!(run = %found.claim.run, step = %found.claim.step, approve, "approval decided through a link");
            let what = if approve { "approved" } else { "denied" };
            page::html(
                StatusCode::OK,
                "Decision recorded",
                &format!(
                    "<h1 id=\"decision-result\" data-decision=\"{what}\">You {what} this request</h1>\n<p>{} v{} &middot; the run is now {}.</p>\n<p class=\"note\">Your decision is in the run's journal. You can close this page, or <a id=\"run-page\" href=\"/ui/runs/{}\">follow the run</a> (signed in to Tenure).</p>",
                    text(&found.run.plan.runbook),
                    found.run.plan.version,
                    text(&tenure_engine::machine::status_name(status)),
                    text(&found.claim.run)
                ),
            )
        }
        Err(tenure_engine::api::Error::Refused(e)) => {
            use tenure_engine::machine::Error as M;
            let status = match e {
                M::SelfApproval(_) | M::NotApprover(_) => StatusCode::FORBIDDEN,
                _ => StatusCode::CONFLICT,
            };
            refusal(status, "The decision was refused", &e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "approval decision could not be recorded");
            refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "The decision could not be recorded right now.",
            )
        }
    }
}

/// The inputs as shown: secrets (and sealed values) as `***`.
fn shown_inputs(run: &RunRecord) -> Vec<(String, String)> {
    let inputs = run.context["inputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    inputs
        .iter()
        .map(|(k, v)| {
            let secret = run.plan.inputs.get(k).is_some_and(|s| s.ty.is_secret());
            let shown = if secret && !v.is_null() {
                "***".to_string()
            } else {
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            };
            (k.clone(), shown)
        })
        .collect()
}

fn request_page(f: &Found, csrf: &str) -> String {
    let run = &f.run;
    let plan = &run.plan;
    let ctx = &run.context;
    let mut h = String::new();
    h.push_str(&format!(
        "<h1>Approval needed: {}</h1>\n",
        text(&plan.runbook)
    ));
    let by = ctx["trigger"]["by"].as_str();
    let source = ctx["trigger"]["source"].as_str().unwrap_or_default();
    h.push_str("<table>\n");
    let mut row = |k: &str, v: &str| {
        h.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            text(k),
            text(v)
        ));
    };
    row("Runbook", &format!("{} v{}", plan.runbook, plan.version));
    if let Some(p) = notify::person(&ctx["inputs"]) {
        row("Person", &p);
    }
    let tenant = &ctx["tenant"];
    row(
        "Tenant",
        &match (tenant["name"].as_str(), tenant["id"].as_str()) {
            (Some(n), Some(i)) if n != i => format!("{n} ({i})"),
            (Some(n), _) | (None, Some(n)) => n.to_string(),
            _ => String::new(),
        },
    );
    row(
        "Requested by",
        &match by {
            Some(b) => format!("{b} ({source})"),
            None => source.to_string(),
        },
    );
    row("Run", &run.id);
    row("You", &f.claim.approver);
    row(
        "Needs",
        &format!(
            "{} approval(s) of {}; any deny decides",
            f.gate.quorum,
            f.gate.eligible().join(", ")
        ),
    );
    row("Expires", &notify::when(f.gate.expires_at_ms));
    h.push_str("</table>\n");
    if let Some(m) = f.gate.message.as_deref().filter(|m| !m.is_empty()) {
        h.push_str(&format!(
            "<h2>Message</h2>\n<div class=\"msg\">{}</div>\n",
            page::markdown(m)
        ));
    }
    let inputs = shown_inputs(run);
    if !inputs.is_empty() {
        h.push_str("<h2>Inputs</h2>\n<table>\n");
        for (k, v) in &inputs {
            h.push_str(&format!(
                "<tr><th>{}</th><td><code>{}</code></td></tr>\n",
                text(k),
                text(v)
            ));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Decisions so far</h2>\n");
    if f.gate.decisions.is_empty() {
        h.push_str("<p>Nobody has decided yet.</p>\n");
    } else {
        h.push_str("<ul>\n");
        for d in &f.gate.decisions {
            h.push_str(&format!(
                "<li>{} chose {} at {}{}</li>\n",
                text(&d.approver),
                if d.approve { "approve" } else { "deny" },
                text(&notify::when(d.at_ms)),
                d.comment
                    .as_deref()
                    .map(|c| format!(": &ldquo;{}&rdquo;", text(c)))
                    .unwrap_or_default()
            ));
        }
        h.push_str("</ul>\n");
    }
    h.push_str(&after_approval(f));
    h.push_str(&format!(
        "<h2>Your decision</h2>\n<form method=\"post\">\n<input type=\"hidden\" name=\"csrf\" value=\"{}\">\n<p><label for=\"comment\">Comment (optional)</label><br><textarea id=\"comment\" name=\"comment\" maxlength=\"{COMMENT_MAX}\"></textarea></p>\n<p><button class=\"approve\" type=\"submit\" name=\"decision\" value=\"approve\">Approve</button><button class=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></p>\n</form>\n<p class=\"note\">Opening this page decided nothing; only the buttons do. This link is yours alone.</p>\n",
        text(csrf)
    ));
    h
}

/// What will happen after approval: the steps not yet run, as `tenure plan` previews them with
/// the run's inputs, and any licence a step may buy.
fn after_approval(f: &Found) -> String {
    let run = &f.run;
    let plan = &run.plan;
    let mut h = String::from("<h2>What happens after approval</h2>\n");
    let remaining: Vec<&str> = plan
        .steps
        .iter()
        .map(|s| s.id.as_str())
        .filter(|id| *id != f.claim.step)
        .filter(|id| {
            matches!(
                run.machine.phase(id),
                Some(StepPhase::Blocked | StepPhase::Preparing | StepPhase::Active)
            )
        })
        .collect();
    if remaining.is_empty() {
        h.push_str("<p>No further steps: the run ends when the request is approved.</p>\n");
        return h;
    }
    let given: Map<String, Value> = run.context["inputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let preview = tenure_runbook::preview::preview(
        plan,
        &given,
        run.context["tenant"].clone(),
        &tenure_steps::contract_catalogue(),
        &tenure_runbook::Renderer::new(),
    );
    h.push_str("<ol>\n");
    match &preview {
        Ok(p) => {
            for s in p
                .steps
                .iter()
                .filter(|s| remaining.contains(&s.id.as_str()))
            {
                h.push_str(&format!(
                    "<li><strong>{}</strong> <code>{}</code> &rarr; {}",
                    text(&s.id),
                    text(&s.uses),
                    text(&s.decision)
                ));
                for w in &s.with {
                    h.push_str(&format!("<br><code>with {}</code>", text(&w.to_string())));
                }
                if let Some(n) = &s.note {
                    h.push_str(&format!("<br><span class=\"note\">{}</span>", text(n)));
                }
                h.push_str("</li>\n");
            }
        }
        Err(e) => {
            for id in &remaining {
                let uses = plan.step(id).map(|s| s.uses.as_str()).unwrap_or_default();
                h.push_str(&format!(
                    "<li><strong>{}</strong> <code>{}</code></li>\n",
                    text(id),
                    text(uses)
                ));
            }
            h.push_str(&format!(
                "</ol>\n<p class=\"note\">The steps' parameters cannot be previewed: {}</p>\n<ol>\n",
                text(&e.to_string())
            ));
        }
    }
    h.push_str("</ol>\n");
    let buys: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| remaining.contains(&s.id.as_str()) && s.uses == "licence.assign")
        .filter_map(|s| {
            let source = s.with.get("source").map(|t| t.to_string()).unwrap_or_default();
            let source = source.trim_matches('"');
            let via = match source {
                "pax8" => "Pax8",
                "partner_center" => "Partner Center",
                "" | "direct" => return None,
                _ => "the distributor the run names",
            };
            let sku = s.with.get("sku").map(|t| t.to_string()).unwrap_or_default();
            Some(format!(
                "<li><strong>{}</strong> may buy one seat of <code>{}</code> through {via} if none is free. The price is not known here: it is {via}'s price for your agreement at the time of purchase.</li>",
                text(&s.id),
                text(sku.trim_matches('"'))
            ))
        })
        .collect();
    if !buys.is_empty() {
        h.push_str("<h2>Licence purchases</h2>\n<ul>\n");
        h.push_str(&buys.join("\n"));
        h.push_str("\n</ul>\n");
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_logs_never_show_a_link_token() {
        assert_eq!(super::loggable_path("/approvals/abc.def"), "/approvals/***");
        assert_eq!(super::loggable_path("/api/runs"), "/api/runs");
        assert_eq!(super::loggable_path("/approvals/"), "/approvals/");
    }
}
