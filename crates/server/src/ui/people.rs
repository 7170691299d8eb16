//! `GET /ui/people`: the people syncs, read through the [`tenure_engine::Engine`] API (the
//! server does not depend on the people crate; it shows the records the syncs saved): the
//! recent syncs (source, tenant, when, mode, status, summary, Graph requests), a sync's page
//! (`/ui/people/syncs/{id}`: its stored plan as the four lists, what needs a person, what is
//! blocked, and the runs it started, each linked to its run page) and a tenant's links
//! (`/ui/people/tenants/{tenant}`). Every role may read them; nothing here decides or writes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{self, Nav};
use super::people_plan;
use super::runbooks::path_segment;
use super::session::Session;
use crate::state::AppState;

/// How many syncs the list shows.
const SHOWN: i64 = 100;

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "the UI could not read {what}");
    layout::error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again later",
        &format!("The {what} cannot be read right now."),
    )
}

/// `GET /ui/people`.
pub async fn list(State(state): State<AppState>, session: Session) -> Response {
    let syncs = match state.engine().sync_summaries(None, SHOWN).await {
        Ok(s) => s,
        Err(e) => return unavailable("people syncs", &e),
    };
    let mut tenants: Vec<&str> = syncs.iter().map(|s| s.tenant.as_str()).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let body = html! {
        h1 { "People" }
        p.hint { "Syncs of HR sources with the tenants (" code { "tenure sync" } ", or on schedule by " code { "tenure serve" } "), newest first." }
        @if syncs.is_empty() {
            p #no-syncs { "No sync yet. " code { "tenure sync SOURCE" } " makes the first plan." }
        } @else {
            table #syncs {
                thead { tr {
                    th { "When" } th { "Source" } th { "Tenant" } th { "Mode" } th { "Status" }
                    th { "Summary" } th { "Graph requests" }
                } }
                tbody {
                    @for s in &syncs {
                        tr {
                            td { a href=(format!("/ui/people/syncs/{}", path_segment(&s.id))) { (layout::time(s.started_ms)) } }
                            td { (s.source) }
                            td { a href=(format!("/ui/people/tenants/{}", path_segment(&s.tenant))) { (s.tenant) } }
                            td { (s.mode) }
                            td { (layout::status(&s.status)) }
                            td { (s.summary) }
                            td { (s.requests) }
                        }
                    }
                }
            }
        }
        @if !tenants.is_empty() {
            h2 { "Links by tenant" }
            ul #tenants {
                @for t in &tenants {
                    li { a href=(format!("/ui/people/tenants/{}", path_segment(t))) { (t) } }
                }
            }
        }
    };
    layout::page(&session, Nav::People, "People", body)
}

/// `GET /ui/people/syncs/{id}`.
pub async fn show(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let rec = match state.engine().sync_record(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return layout::error_page(
                StatusCode::NOT_FOUND,
                "No such sync",
                &format!("There is no people sync `{id}`."),
            )
        }
        Err(e) => return unavailable("people sync", &e),
    };
    let title = format!("Sync of {} for {}", rec.source, rec.tenant);
    let body = html! {
        h1 { (title) }
        dl.facts {
            dt { "Started" } dd { (layout::time(rec.started_ms)) }
            @if let Some(f) = rec.finished_ms { dt { "Took" } dd { (layout::duration(f - rec.started_ms)) } }
            dt { "Mode" } dd { (rec.mode) }
            dt { "Status" } dd { (layout::status(&rec.status)) }
            dt { "Summary" } dd #summary { (rec.summary) }
            dt { "Graph requests" } dd { (rec.requests) }
        }
        @if rec.plan.is_object() {
            (people_plan::plan(&rec.plan))
        } @else {
            p.hint { "No plan was made." }
        }
        (people_plan::outcome(&rec.outcome))
        p { a href="/ui/people" { "All syncs" } }
    };
    layout::page(&session, Nav::People, &title, body)
}

/// `GET /ui/people/tenants/{tenant}`.
pub async fn tenant(
    State(state): State<AppState>,
    session: Session,
    Path(tenant): Path<String>,
) -> Response {
    let links = match state.engine().person_links(&tenant, None).await {
        Ok(l) => l,
        Err(e) => return unavailable("links", &e),
    };
    if links.is_empty() && !state.engine().knows_tenant(&tenant) {
        return layout::error_page(
            StatusCode::NOT_FOUND,
            "No such tenant",
            &format!("There is no managed tenant `{tenant}`."),
        );
    }
    let title = format!("People linked in {tenant}");
    let body = html! {
        h1 { (title) }
        @if links.is_empty() {
            p #no-links { "Nobody is linked in this tenant yet." }
        } @else {
            table #links {
                thead { tr {
                    th { "Source" } th { "Person" } th { "Account" } th { "Linked by" } th { "Run" } th { "Since" }
                } }
                tbody {
                    @for l in &links {
                        tr {
                            td { (l.source) }
                            td { code { (l.person_key) } }
                            td {
                                @match (&l.user_principal_name, &l.account_id) {
                                    (Some(upn), _) => { (upn) }
                                    (None, Some(id)) => { code { (id) } }
                                    (None, None) => { em { "pending: the account is being created" } }
                                }
                            }
                            td { (l.via) }
                            td {
                                @if let Some(run) = &l.run_id {
                                    a href=(format!("/ui/runs/{}", path_segment(run))) { (run) }
                                }
                            }
                            td { (layout::time(l.created_ms)) }
                        }
                    }
                }
            }
        }
        p { a href="/ui/people" { "All syncs" } }
    };
    layout::page(&session, Nav::People, &title, body)
}
