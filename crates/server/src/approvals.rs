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

use std::collections::{BTreeMap, HashMap};
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
use maud::{html, Markup};
use page::refusal;

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
        request_page(&found, &csrf, &state.config().server.prices),
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
            result_page(&found, approve, status)
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

/// The page after a decision: what was recorded, the run's status, and the run's page in the
/// UI (which asks them to sign in first if they have no session).
fn result_page(f: &Found, approve: bool, status: tenure_engine::machine::RunStatus) -> Response {
    let what = if approve { "approved" } else { "denied" };
    let run = &f.run;
    page::html(
        StatusCode::OK,
        "Decision recorded",
        html! {
            div.decision #decision-result data-decision=(if approve { "approved" } else { "denied" }) {
                h1 { "You " (what) " this request" }
                p { (run.plan.runbook) " v" (run.plan.version) " · the run is now "
                    (crate::ui::layout::status(&tenure_engine::machine::status_name(status))) "." }
            }
            p { "Your decision is in the run's journal. You can close this page." }
            p { a #run-page href=(format!("/ui/runs/{}", crate::ui::runbooks::path_segment(&run.id))) { "See the run" } }
            p.hint { "The run's page is part of Tenure's web UI: it asks you to sign in if you have no session." }
        },
    )
}

/// The inputs as shown: secrets (and sealed values) as `***`, an input a run was not given
/// (or a secret it was not given) as `not given`.
fn shown_inputs(run: &RunRecord) -> Vec<(String, String)> {
    let inputs = run.context["inputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    inputs
        .iter()
        .map(|(k, v)| {
            let secret = run.plan.inputs.get(k).is_some_and(|s| s.ty.is_secret());
            let shown = match v {
                Value::Null => "not given".to_string(),
                _ if secret => "***".to_string(),
                Value::String(s) => tenure_engine::journal::redact(&Value::String(s.clone()))
                    .as_str()
                    .unwrap_or("***")
                    .to_string(),
                other => tenure_engine::journal::redact(other).to_string(),
            };
            (k.clone(), shown)
        })
        .collect()
}

/// The tenant as people read it: `Contoso (contoso)`.
fn tenant_text(tenant: &Value) -> String {
    match (tenant["name"].as_str(), tenant["id"].as_str()) {
        (Some(n), Some(i)) if n != i => format!("{n} ({i})"),
        (Some(n), _) | (None, Some(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn request_page(f: &Found, csrf: &str, prices: &BTreeMap<String, String>) -> Markup {
    let run = &f.run;
    let plan = &run.plan;
    let ctx = &run.context;
    let by = ctx["trigger"]["by"].as_str();
    let source = ctx["trigger"]["source"].as_str().unwrap_or_default();
    let requested = match by {
        Some(b) => format!("{b} ({source})"),
        None => source.to_string(),
    };
    let person = notify::person(&ctx["inputs"]);
    let tenant = tenant_text(&ctx["tenant"]);
    let inputs = shown_inputs(run);
    html! {
        div.decision #request {
            h1 { "Approve " (plan.runbook) "?" }
            p.ask {
                strong { (by.unwrap_or(source)) } " asks you to approve "
                strong { (plan.runbook) } " v" (plan.version)
                @if let Some(p) = &person { " for " strong { (p) } }
                @if !tenant.is_empty() { " in the tenant " strong { (tenant) } }
                "."
            }
            dl.facts {
                dt { "Runbook" } dd { (plan.runbook) " v" (plan.version) }
                @if let Some(p) = &person { dt { "Person" } dd { (p) } }
                dt { "Tenant" } dd { (tenant) }
                dt { "Requested by" } dd { (requested) }
                dt { "You" } dd { (f.claim.approver) }
                dt { "Needs" } dd { (f.gate.quorum) " approval(s) of " (f.gate.eligible().join(", ")) "; any deny decides" }
                dt { "Expires" } dd { (notify::when(f.gate.expires_at_ms)) }
            }
            p { a.button.primary href="#decide" { "Go to Approve / Deny" } }
        }
        (after_approval(f, prices))
        @if let Some(m) = f.gate.message.as_deref().filter(|m| !m.is_empty()) {
            section #message {
                h2 { "Message" }
                div.msg { (page::markdown(m)) }
            }
        }
        @if !inputs.is_empty() {
            section #inputs {
                h2 { "Inputs" }
                dl.facts {
                    @for (k, v) in &inputs {
                        dt.mono { (k) }
                        dd { @if v == "not given" { span.muted { (v) } } @else { code { (v) } } }
                    }
                }
            }
        }
        section #decisions {
            h2 { "Decisions so far" }
            @if f.gate.decisions.is_empty() {
                p { "Nobody has decided yet." }
            } @else {
                ul {
                    @for d in &f.gate.decisions {
                        li {
                            (d.approver) " chose " (if d.approve { "approve" } else { "deny" })
                            " at " (notify::when(d.at_ms))
                            @if let Some(c) = &d.comment { ": “" (c) "”" }
                        }
                    }
                }
            }
            p { "This request expires at " strong { (notify::when(f.gate.expires_at_ms)) } "." }
        }
        section #decide {
            h2 { "Your decision" }
            form method="post" {
                input type="hidden" name="csrf" value=(csrf);
                label for="comment" { "Comment " span.hint { "(optional, kept in the run's journal)" } }
                textarea #comment name="comment" maxlength=(COMMENT_MAX) {}
                button.approve.big type="submit" name="decision" value="approve" { "Approve" }
                button.deny.big type="submit" name="decision" value="deny" { "Deny" }
            }
            p.hint { "Opening this page decided nothing; only the buttons do. This link is yours alone." }
        }
    }
}

/// What will happen after approval: the steps not yet run, in words and as `tenure plan`
/// previews them with the run's inputs, in which tenant and for whom, and any licence a step
/// may buy (seats and SKUs rendered from the run, with the price `[server.prices]` gives).
fn after_approval(f: &Found, prices: &BTreeMap<String, String>) -> Markup {
    let run = &f.run;
    let plan = &run.plan;
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
    let catalogue = tenure_steps::catalogue();
    let words = |uses: &str| {
        use tenure_runbook::catalogue::Catalogue as _;
        catalogue
            .get(uses)
            .map(|k| k.description.clone())
            .unwrap_or_default()
    };
    let tenant = tenant_text(&run.context["tenant"]);
    let person = notify::person(&run.context["inputs"]);
    let given: Map<String, Value> = run.context["inputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let preview = (!remaining.is_empty()).then(|| {
        tenure_runbook::preview::preview(
            plan,
            &given,
            run.context["tenant"].clone(),
            &catalogue,
            &tenure_runbook::Renderer::new(),
        )
    });
    let buys = purchases(plan, &remaining, &run.context);
    html! {
        section #consequences {
            h2 { "What happens after approval" }
            @if remaining.is_empty() {
                p { "No further steps: the run ends when the request is approved." }
            } @else {
                p {
                    "These steps run"
                    @if !tenant.is_empty() { " in the tenant " strong { (tenant) } }
                    @if let Some(p) = &person { " for " strong { (p) } }
                    ":"
                }
                ol.consequences {
                    @match &preview {
                        Some(Ok(p)) => {
                            @for s in p.steps.iter().filter(|s| remaining.contains(&s.id.as_str())) {
                                li {
                                    strong { (s.id) } " — " (words(&s.uses)) " "
                                    code { (s.uses) } " → " (s.decision)
                                    @if !s.with.is_empty() {
                                        details {
                                            summary { "Parameters" }
                                            @for w in &s.with { pre { "with " (w.to_string()) } }
                                        }
                                    }
                                    @if let Some(n) = &s.note { br; span.hint { (n) } }
                                }
                            }
                        }
                        _ => {
                            @for id in &remaining {
                                @let uses = plan.step(id).map(|s| s.uses.as_str()).unwrap_or_default();
                                li { strong { (id) } " — " (words(uses)) " " code { (uses) } }
                            }
                        }
                    }
                }
                @if let Some(Err(e)) = &preview {
                    p.hint { "The steps' parameters cannot be previewed: " (e.to_string()) }
                }
            }
            @if !buys.is_empty() {
                h2 { "Licence purchases" }
                ul.consequences {
                    @for b in &buys {
                        li {
                            strong { (b.step) } " may buy " strong { "1 seat" } " of " code { (b.sku) }
                            " through " (b.via) " if none is free"
                            @if let Some(p) = &person { ", for " (p) }
                            ". "
                            @match prices.get(&b.sku) {
                                Some(price) => { "Price: " strong { (price) } "." }
                                None => { "No price is configured for " code { (b.sku) } " (" code { "[server.prices]" } "): " (b.via) "'s price for your agreement applies." }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A seat a remaining `licence.assign` step may buy.
struct Purchase {
    step: String,
    sku: String,
    via: &'static str,
}

/// The seats the remaining `licence.assign` steps may buy at a distributor: their `sku` and
/// `source` rendered with the run's context (one per `for_each` item); steps whose values need
/// other steps' outputs are shown as written.
fn purchases(plan: &tenure_runbook::Plan, remaining: &[&str], ctx: &Value) -> Vec<Purchase> {
    let renderer = tenure_runbook::Renderer::new();
    let render = |v: &Value, item: Option<&Value>| {
        let mut c = ctx.clone();
        if let Some(i) = item {
            c["item"] = i.clone();
        }
        renderer.render_tree(v, &c).ok()
    };
    let mut out = Vec::new();
    for s in plan
        .steps
        .iter()
        .filter(|s| remaining.contains(&s.id.as_str()) && s.uses == "licence.assign")
    {
        let items: Vec<Option<Value>> = match &s.for_each {
            Some(Value::Array(list)) => list.iter().cloned().map(Some).collect(),
            Some(Value::String(t)) => {
                match renderer.render_value(&tenure_runbook::Template::new(t.clone()), ctx) {
                    Ok(Value::Array(list)) => list.into_iter().map(Some).collect(),
                    _ => vec![None],
                }
            }
            _ => vec![None],
        };
        for item in items {
            let field = |name: &str| {
                s.with
                    .get(name)
                    .and_then(|v| render(v, item.as_ref()))
                    .map(|v| match v {
                        Value::String(t) => t,
                        other => other.to_string(),
                    })
                    .unwrap_or_default()
            };
            let via = match field("source").as_str() {
                "pax8" => "Pax8",
                "partner_center" => "Partner Center",
                _ => continue,
            };
            out.push(Purchase {
                step: s.id.clone(),
                sku: field("sku"),
                via,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn purchases_render_the_skus_and_source_of_the_run() {
        let src = tenure_runbook::SourceFile::new(
            "t.yaml",
            "runbook: t\nversion: 1\ntenant: contoso\ninputs:\n  licences: { type: list, default: [SPB] }\n  source: { type: string, default: pax8 }\nsteps:\n  make: { uses: entra.create_user, with: { user_principal_name: a@contoso.example, display_name: A } }\n  each:\n    uses: licence.assign\n    for_each: \"{{inputs.licences}}\"\n    with: { user: \"{{steps.make.outputs.id}}\", sku: \"{{item}}\", source: \"{{inputs.source}}\" }\n  direct: { uses: licence.assign, with: { user: a@contoso.example, sku: E3 } }\n",
        );
        let plan = tenure_runbook::compile(&src, &tenure_steps::catalogue())
            .plan
            .unwrap();
        let ctx = json!({"inputs": {"licences": ["SPB", "EMS"], "source": "pax8"}, "tenant": {"id": "contoso"}});
        let buys = super::purchases(&plan, &["each", "direct"], &ctx);
        let got: Vec<(&str, &str, &str)> = buys
            .iter()
            .map(|b| (b.step.as_str(), b.sku.as_str(), b.via))
            .collect();
        assert_eq!(got, [("each", "SPB", "Pax8"), ("each", "EMS", "Pax8")]);
    }

    #[test]
    fn request_logs_never_show_a_link_token() {
        assert_eq!(super::loggable_path("/approvals/abc.def"), "/approvals/***");
        assert_eq!(super::loggable_path("/api/runs"), "/api/runs");
        assert_eq!(super::loggable_path("/approvals/"), "/approvals/");
    }
}
