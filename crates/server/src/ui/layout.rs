//! The page shell every UI page shares (header with navigation and the signed-in user, one
//! style sheet, htmx), the security headers, and small pieces used across pages: status
//! badges, times and durations.
//!
//! Pages are built with `maud`, which escapes every interpolated value; nothing is inserted
//! as raw HTML except markup this crate generated (SVG pictures, rendered Markdown whose raw
//! HTML is escaped).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::assets;
use super::session::{role_name, Session};

/// The Content-Security-Policy of UI pages: scripts and styles only from this server's
/// static files (no inline script, no eval), pictures inline or from here, forms post here,
/// no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Which part of the navigation a page belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// The runs list and run pages.
    Runs,
    /// The runbook catalogue.
    Runbooks,
    /// Approvals waiting on the signed-in user.
    Approvals,
    /// People syncs and links.
    People,
    /// None (sign-in, errors).
    None,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="robots" content="noindex";
            // htmx without eval and without the inline style it would add (the CSP allows neither).
            meta name="htmx-config" content=r#"{"allowEval":false,"includeIndicatorStyles":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;
            title { (title) " · Tenure" }
            link rel="stylesheet" href=(assets::css_url());
            script src=(assets::htmx_url()) defer {}
        }
    }
}

/// A page of the signed-in UI: header, navigation (with `current` marked), the user and the
/// sign-out button, then `body`.
pub fn page(session: &Session, current: Nav, title: &str, body: Markup) -> Response {
    let link = |nav: Nav, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(nav == current).then_some("page")] { (label) }
        }
    };
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/runs" { "Tenure" }
                    nav aria-label="Main" {
                        (link(Nav::Runs, "/ui/runs", "Runs"))
                        (link(Nav::Runbooks, "/ui/runbooks", "Runbooks"))
                        (link(Nav::Approvals, "/ui/approvals", "Approvals"))
                        (link(Nav::People, "/ui/people", "People"))
                    }
                    div.who {
                        span { (session.name) " · " (role_name(session.role)) }
                        form method="post" action="/ui/sign-out" {
                            input type="hidden" name="csrf" value=(session.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    };
    respond(StatusCode::OK, doc)
}

/// A page without navigation (sign-in, errors, the approval page) with `status`.
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top { span.brand { "Tenure" } }
                main.narrow #main { (body) }
            }
        }
    };
    respond(status, doc)
}

/// An error page: `status`, a heading and what happened.
pub fn error_page(status: StatusCode, heading: &str, detail: &str) -> Response {
    bare(
        status,
        heading,
        html! {
            h1 { (heading) }
            p { (detail) }
            p { a href="/ui/runs" { "Back to runs" } }
        },
    )
}

/// A fragment htmx swaps into a page (no shell), with the same headers.
pub fn fragment(markup: Markup) -> Response {
    respond(StatusCode::OK, markup)
}

/// `markup` as an HTML response with the UI's security headers.
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    html_response(status, markup, CSP, "same-origin")
}

/// `markup` as an HTML page that is never cached or framed, with `csp` and the referrer
/// policy `referrer` (the UI's pages, and the approval pages whose URL is a credential).
pub fn html_response(
    status: StatusCode,
    markup: Markup,
    csp: &'static str,
    referrer: &'static str,
) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static(referrer));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A status badge (`succeeded`, `failed`, `running`...), coloured by the style sheet.
pub fn status(name: &str) -> Markup {
    let class = format!("status st-{}", name.replace(' ', "_"));
    html! { span class=(class) { (name.replace('_', " ")) } }
}

/// Unix milliseconds as `2026-11-30 14:05:09` UTC.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A duration in milliseconds as people read it: `850 ms`, `12.4 s`, `3 min 05 s`, `2 h 10 min`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min {:02} s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{} h {:02} min", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// Markup this crate generated itself (an SVG picture, Markdown rendered with raw HTML
/// escaped), inserted as it is.
pub fn trusted(html: String) -> Markup {
    PreEscaped(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_400), "12.4 s");
        assert_eq!(duration(185_000), "3 min 05 s");
        assert_eq!(duration(7_800_000), "2 h 10 min");
        assert_eq!(duration(-5), "0 ms");
    }

    #[test]
    fn values_are_escaped() {
        let m = html! { p { ("<script>alert(1)</script>") } };
        assert_eq!(
            m.into_string(),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"
        );
    }
}
