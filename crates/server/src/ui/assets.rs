//! The UI's static files, compiled into the binary and served under a name that carries their
//! content hash (`/ui/static/tenure-<hash>.css`), so a browser may cache them for ever and a
//! new build is fetched at once. htmx is vendored as published on the npm registry
//! (`htmx.org@2.0.4`, 0BSD; its licence is beside it).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The style sheet.
const CSS: &str = include_str!("assets/tenure.css");
/// htmx 2.0.4, `dist/htmx.min.js` of the npm package, unchanged.
const HTMX: &str = include_str!("assets/htmx-2.0.4.min.js");

/// One static file: its served name and body.
struct Asset {
    name: String,
    body: &'static str,
    mime: &'static str,
}

fn named(stem: &str, ext: &str, body: &'static str, mime: &'static str) -> Asset {
    let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
    Asset {
        name: format!("{stem}-{hash}.{ext}"),
        body,
        mime,
    }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        named("tenure", "css", CSS, "text/css; charset=utf-8"),
        named("htmx", "js", HTMX, "text/javascript; charset=utf-8"),
    ]
});

/// The URL of the style sheet.
pub fn css_url() -> String {
    format!("/ui/static/{}", ASSETS[0].name)
}

/// The URL of htmx.
pub fn htmx_url() -> String {
    format!("/ui/static/{}", ASSETS[1].name)
}

/// `GET /ui/static/{name}`: a file by its hashed name, cached for a year; 404 otherwise.
pub async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut resp = asset.body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_content_hash() {
        assert!(css_url().starts_with("/ui/static/tenure-") && css_url().ends_with(".css"));
        assert!(htmx_url().starts_with("/ui/static/htmx-") && htmx_url().ends_with(".js"));
        assert!(
            HTMX.starts_with("var htmx=function()"),
            "the vendored file is htmx"
        );
    }
}
