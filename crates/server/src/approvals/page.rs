//! The HTML shell of approval pages: the request page (who asks for what, what will happen, the
//! form) and the pages that say why a link was refused or what a decision did. They share the
//! UI's one style sheet (served from this server, allowed by `style-src 'self'`) and its look,
//! but load no script and keep their own headers: the URL holds a bearer token, so no page
//! is ever sent as a referrer, cached or framed.
//!
//! Pages are built with `maud`, which escapes every interpolated value; the message is
//! Markdown rendered with raw HTML escaped.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use tenure_steps::markdown::to_html;

/// The Content-Security-Policy of every approval page: only this server's style sheet loads
/// (no script at all); forms post only to this server; no framing.
pub const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page: status, title and body, in the UI's look, with the security headers.
pub fn html(status: StatusCode, title: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                meta name="referrer" content="no-referrer";
                title { (title) " · Tenure" }
                link rel="stylesheet" href=(crate::ui::assets::css_url());
            }
            body.approval {
                header.top { span.brand { "Tenure" } span { "Approval" } }
                main.narrow #main { (body) }
            }
        }
    };
    crate::ui::layout::html_response(status, doc, CSP, "no-referrer")
}

/// A refusal: `status`, a heading and a sentence saying what is wrong and that nothing changed.
pub fn refusal(status: StatusCode, heading: &str, detail: &str) -> Response {
    html(
        status,
        heading,
        maud::html! {
            h1 { (heading) }
            p.errors role="alert" { (detail) }
            p.muted { "Nothing was changed." }
        },
    )
}

/// Markdown to HTML (raw HTML in it is escaped).
pub fn markdown(s: &str) -> Markup {
    PreEscaped(to_html(s))
}
