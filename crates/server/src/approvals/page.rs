//! The HTML of approval pages: the request page (who asks for what, what will happen, the
//! form) and the pages that say why a link was refused or what a decision did. Everything
//! shown is escaped (the message is Markdown rendered with raw HTML escaped); the one style
//! sheet is allowed by its hash in the Content-Security-Policy, nothing else loads.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest;
use tenure_steps::markdown::{escape_html as esc, to_html};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}table{border-collapse:collapse}td,th{text-align:left;padding:.2rem .8rem .2rem 0;vertical-align:top}code,pre{background:#f3f3f3;padding:0 .2rem;white-space:pre-wrap;word-break:break-all}.msg{border-left:4px solid #888;padding:.2rem 1rem;background:#fafafa}.note{color:#555}button{font-size:1rem;padding:.5rem 1.4rem;margin-right:1rem}.approve{background:#1a7f37;color:#fff;border:0}.deny{background:#cf222e;color:#fff;border:0}textarea{width:100%;min-height:4rem}td{overflow-wrap:anywhere}";

/// The Content-Security-Policy of every approval page: nothing loads but the page's own
/// style sheet (by hash); forms post only to the page; no framing.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE.as_bytes()));
    format!("default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
});

/// A page: status, title and body HTML (already escaped), with the security headers.
pub fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let doc = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><meta name=\"robots\" content=\"noindex\"><title>{} - Tenure</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        esc(title)
    );
    let mut resp = (status, doc).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A refusal: `status`, a heading and a sentence saying what is wrong and that nothing changed.
pub fn refusal(status: StatusCode, heading: &str, detail: &str) -> Response {
    html(
        status,
        heading,
        &format!(
            "<h1>{}</h1>\n<p>{}</p>\n<p class=\"note\">Nothing was changed.</p>",
            esc(heading),
            esc(detail)
        ),
    )
}

/// Escapes text for HTML.
pub fn text(s: &str) -> String {
    esc(s)
}

/// Markdown to HTML (raw HTML in it is escaped).
pub fn markdown(s: &str) -> String {
    to_html(s)
}
