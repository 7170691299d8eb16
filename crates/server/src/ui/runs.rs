//! The runs list: `GET /ui/runs` (filters by status, runbook, tenant and free text, keyset
//! paging) and `GET /ui/runs/rows`, the table body htmx polls for live refresh.
//!
//! Each row is read with [`tenure_engine::Engine::run_rows`]: the small columns only (status,
//! times, and the labels person, tenant, ticket worked out when the run was created), never
//! a plan, context or machine, so a page costs the same at 100 or 100,000 runs. Pages are
//! keyset pages by (created_at, id): the "Older" link carries the last row's cursor. The
//! first page's body refreshes itself every 2 s (`hx-get` of the same query); older pages
//! stay still. The pager lives in the table's last row, so a refresh keeps it in step with
//! the rows it shows.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use tenure_engine::machine::status_name;
use tenure_engine::store::{now_ms, RunFilter, RunRow};

use super::layout::{self, Nav};
use super::session::Session;
use crate::api::runs::{decode_cursor, encode_cursor, STATUSES};
use crate::state::AppState;

/// Runs per page.
pub const PAGE: usize = 50;

/// The query of both pages: every field optional, an empty one means "any".
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunsQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Only this runbook id.
    pub runbook: Option<String>,
    /// Only this tenant id (any case).
    pub tenant: Option<String>,
    /// Free text: run id, person, ticket, runbook.
    pub q: Option<String>,
    /// The page after this cursor (from an "Older" link).
    pub cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl RunsQuery {
    /// The filters as a query string (`status=failed&q=ada`), without the cursor; with
    /// `status` replaced when `status` is given (`Some(None)`: any status).
    fn to_query(&self, status: Option<Option<&str>>) -> String {
        let status = match status {
            Some(s) => s.map(str::to_string),
            None => given(&self.status),
        };
        [
            ("status", status),
            ("runbook", given(&self.runbook)),
            ("tenant", given(&self.tenant)),
            ("q", given(&self.q)),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            v.map(|v| format!("{k}={}", utf8_percent_encode(&v, NON_ALPHANUMERIC)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }

    /// The engine's filter for one page (one run more than shown, to know whether there is
    /// an older page), or a 400 page saying what is wrong.
    fn filter(&self) -> Result<RunFilter, Box<Response>> {
        let bad = |detail: String| {
            Box::new(layout::error_page(
                StatusCode::BAD_REQUEST,
                "Bad filter",
                &detail,
            ))
        };
        let status = given(&self.status);
        if let Some(s) = &status {
            if !STATUSES.contains(&s.as_str()) {
                return Err(bad(format!(
                    "There is no run status `{s}`: use one of {}.",
                    STATUSES.join(", ")
                )));
            }
        }
        let before = match given(&self.cursor) {
            Some(c) => Some(decode_cursor(&c).ok_or_else(|| {
                bad("This page link is not one the runs list made. Start again from the newest runs.".into())
            })?),
            None => None,
        };
        Ok(RunFilter {
            status,
            runbook: given(&self.runbook),
            tenant: given(&self.tenant),
            text: given(&self.q),
            parent: None,
            before,
            limit: PAGE + 1,
        })
    }
}

/// The query, or a 400 page (a repeated or malformed parameter).
fn query_of(q: Result<Query<RunsQuery>, QueryRejection>) -> Result<RunsQuery, Box<Response>> {
    q.map(|Query(q)| q).map_err(|e| {
        Box::new(layout::error_page(
            StatusCode::BAD_REQUEST,
            "Bad filter",
            &e.body_text(),
        ))
    })
}

/// One page of rows and whether an older page exists, or an error page.
async fn page_of(state: &AppState, q: &RunsQuery) -> Result<(Vec<RunRow>, bool), Box<Response>> {
    let filter = q.filter()?;
    let mut rows = state.engine().run_rows(&filter).await.map_err(|e| {
        tracing::warn!(error = %e, "the runs list could not be read");
        Box::new(layout::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The runs could not be read",
            "The database did not answer. Try again in a moment.",
        ))
    })?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    Ok((rows, more))
}

/// `GET /ui/runs`.
pub async fn list(
    session: Session,
    State(state): State<AppState>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Response {
    let q = match query_of(q) {
        Ok(q) => q,
        Err(page) => return *page,
    };
    let (rows, more) = match page_of(&state, &q).await {
        Ok(page) => page,
        Err(page) => return *page,
    };
    let counts = state.engine().count_by_status().await.unwrap_or_default();
    let library = state.library();
    let mut runbooks: Vec<&str> = library.entries.iter().map(|e| e.id.as_str()).collect();
    runbooks.sort_unstable();
    let runbook = given(&q.runbook);
    if let Some(r) = runbook.as_deref() {
        if !runbooks.contains(&r) {
            runbooks.push(r);
        }
    }
    let status = given(&q.status);
    let first_page = given(&q.cursor).is_none();
    let live = first_page.then(|| {
        let filters = q.to_query(None);
        if filters.is_empty() {
            "/ui/runs/rows".to_string()
        } else {
            format!("/ui/runs/rows?{filters}")
        }
    });
    let body = html! {
        h1 { "Runs" }
        (chips(&q, &counts, status.as_deref()))
        form #filters .filters method="get" action="/ui/runs" role="search" {
            div.grow {
                label for="f-q" { "Search" }
                input #f-q type="search" name="q" value=[given(&q.q)]
                    placeholder="Person, ticket, run id or runbook";
            }
            div {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    @for s in STATUSES {
                        option value=(s) selected[status.as_deref() == Some(s)] { (s.replace('_', " ")) }
                    }
                }
            }
            div {
                label for="f-runbook" { "Runbook" }
                select #f-runbook name="runbook" {
                    option value="" { "Any" }
                    @for r in &runbooks {
                        option value=(r) selected[runbook.as_deref() == Some(*r)] { (r) }
                    }
                }
            }
            div {
                label for="f-tenant" { "Tenant" }
                input #f-tenant type="text" name="tenant" value=[given(&q.tenant)] placeholder="Tenant id";
            }
            div {
                button #apply-filters .primary type="submit" { "Apply" }
            }
        }
        div.table-wrap {
            table #runs {
                caption.sr-only { "Runs, newest first" }
                thead {
                    tr {
                        th scope="col" { "Status" }
                        th scope="col" { "Runbook" }
                        th scope="col" { "Person" }
                        th.hide-narrow scope="col" { "Tenant" }
                        th.hide-narrow scope="col" { "Ticket" }
                        th.hide-narrow scope="col" { "Started (UTC)" }
                        th scope="col" { "Duration" }
                    }
                }
                @if let Some(url) = &live {
                    tbody #run-rows hx-get=(url) hx-trigger="every 2s" hx-swap="innerHTML" {
                        (rows_markup(&q, &rows, more))
                    }
                } @else {
                    tbody #run-rows { (rows_markup(&q, &rows, more)) }
                }
            }
        }
        @if live.is_some() {
            p.live { "This list refreshes itself every 2 seconds." }
        }
    };
    layout::page(&session, Nav::Runs, "Runs", body)
}

/// `GET /ui/runs/rows`: the rows of the list, for live refresh.
pub async fn rows(
    _session: Session,
    State(state): State<AppState>,
    q: Result<Query<RunsQuery>, QueryRejection>,
) -> Response {
    let q = match query_of(q) {
        Ok(q) => q,
        Err(page) => return *page,
    };
    match page_of(&state, &q).await {
        Ok((rows, more)) => layout::fragment(rows_markup(&q, &rows, more)),
        Err(page) => *page,
    }
}

/// The quick filters: one link per status with how many runs have it (all runs, whatever
/// the other filters), keeping the other filters.
fn chips(q: &RunsQuery, counts: &[(String, i64)], current: Option<&str>) -> Markup {
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let href = |status: Option<&str>| {
        let query = q.to_query(Some(status));
        if query.is_empty() {
            "/ui/runs".to_string()
        } else {
            format!("/ui/runs?{query}")
        }
    };
    html! {
        nav.chips aria-label="Runs by status" {
            a.chip href=(href(None)) aria-current=[current.is_none().then_some("page")] {
                "All " span.count { (total) }
            }
            @for s in STATUSES {
                @let n = counts.iter().find(|(name, _)| name == s).map_or(0, |(_, n)| *n);
                @if n > 0 || current == Some(s) {
                    a.chip data-status=(s) href=(href(Some(s))) aria-current=[(current == Some(s)).then_some("page")] {
                        (layout::status(s)) " " span.count { (n) }
                    }
                }
            }
        }
    }
}

/// The body of the table: a row per run (or a line saying none match), then the pager.
fn rows_markup(q: &RunsQuery, rows: &[RunRow], more: bool) -> Markup {
    let now = now_ms();
    let filters = q.to_query(None);
    let with = |extra: String| {
        let parts: Vec<&str> = [filters.as_str(), extra.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            "/ui/runs".to_string()
        } else {
            format!("/ui/runs?{}", parts.join("&"))
        }
    };
    let older = more
        .then(|| rows.last())
        .flatten()
        .map(|last| with(format!("cursor={}", encode_cursor(last))));
    let paged = given(&q.cursor).is_some();
    html! {
        @if rows.is_empty() {
            tr.empty {
                td colspan="7" {
                    @if paged { "No older runs." }
                    @else if filters.is_empty() { "No runs yet. Start one from a runbook's page." }
                    @else { "No runs match these filters." }
                }
            }
        }
        @for r in rows {
            (row(r, now))
        }
        @if paged || older.is_some() {
            tr.pager-row {
                td colspan="7" {
                    div.pager {
                        @if paged { a #newest href=(with(String::new())) { "← Newest" } } @else { span {} }
                        @if let Some(href) = &older { a #next-page href=(href) { "Older →" } }
                    }
                }
            }
        }
    }
}

fn row(r: &RunRow, now: i64) -> Markup {
    let status = status_name(r.status);
    let href = format!("/ui/runs/{}", r.id);
    let short: String = r.id.chars().take(8).collect();
    let took = if r.status.is_final() {
        layout::duration(r.updated_at - r.created_at)
    } else {
        format!(
            "{} for {}",
            status.replace('_', " "),
            layout::duration(now - r.created_at)
        )
    };
    let dash = || html! { span.muted title="none" { "—" } };
    html! {
        tr.run-row data-run=(r.id) data-status=(status) {
            td { (layout::status(&status)) }
            td {
                a.run-link href=(href) { (r.runbook) } " " span.muted { "v" (r.version) }
                div.hint.mono { (short) }
            }
            td.person { @if let Some(p) = &r.labels.person { (p) } @else { (dash()) } }
            td.hide-narrow { @if let Some(t) = &r.labels.tenant { (t) } @else { (dash()) } }
            td.hide-narrow { @if let Some(t) = &r.labels.ticket { (t) } @else { (dash()) } }
            td.hide-narrow { time datetime=(iso(r.created_at)) { (layout::time(r.created_at)) } }
            td { (took) }
        }
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_keeps_the_filters_encoded() {
        let q = RunsQuery {
            status: Some("failed".into()),
            runbook: Some(" ".into()),
            tenant: None,
            q: Some("ada lovelace&x=1".into()),
            cursor: Some("abc".into()),
        };
        assert_eq!(q.to_query(None), "status=failed&q=ada%20lovelace%26x%3D1");
        assert_eq!(q.to_query(Some(None)), "q=ada%20lovelace%26x%3D1");
        assert_eq!(
            q.to_query(Some(Some("running"))),
            "status=running&q=ada%20lovelace%26x%3D1"
        );
    }

    #[test]
    fn bad_filters_are_refused() {
        let q = RunsQuery {
            status: Some("bogus".into()),
            ..Default::default()
        };
        assert_eq!(q.filter().unwrap_err().status(), StatusCode::BAD_REQUEST);
        let q = RunsQuery {
            cursor: Some("%%%".into()),
            ..Default::default()
        };
        assert_eq!(q.filter().unwrap_err().status(), StatusCode::BAD_REQUEST);
        let ok = RunsQuery {
            status: Some("".into()),
            ..Default::default()
        }
        .filter()
        .unwrap();
        assert_eq!((ok.status, ok.limit), (None, PAGE + 1));
    }
}
