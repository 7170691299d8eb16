//! Signing in to the UI: a configured API token (`[[tokens]]`) is exchanged once, on the
//! sign-in form, for a session cookie; the token itself is never stored in the browser.
//!
//! The cookie `tenure_session` is `HttpOnly`, `SameSite=Strict`, `Path=/ui` (and `Secure` when
//! `public_url` is `https://`), valid [`SESSION_HOURS`] hours, and signed with HMAC-SHA256 under
//! a key derived from the database's secret key (every node of one database accepts it). It
//! carries the token's name, the expiry, a random nonce and a fingerprint of the token's
//! secret: rotating or removing the token ends its sessions at once, and the role is read from
//! the configuration on every request (a downgraded token loses its buttons immediately).
//!
//! Every form that changes something carries a CSRF token, HMAC of the session's nonce, which
//! [`Session::check_csrf`] compares in constant time; a request that a browser marks
//! cross-site (`Sec-Fetch-Site`) or whose `Origin` is not this server is refused as well.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use base64::Engine as _;
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use maud::html;
use serde::Deserialize;
use sha2::Sha256;

use super::layout;
use crate::api::auth::{Identity, Tokens};
use crate::config::Role;
use crate::state::AppState;

/// The cookie's name.
pub const COOKIE: &str = "tenure_session";
/// How long a session lasts.
pub const SESSION_HOURS: i64 = 8;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A signed-in user of the UI.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token's name: who the journal says acted.
    pub name: String,
    /// Its role, as configured now.
    pub role: Role,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// The session's random nonce (what signing out ends).
    nonce: String,
    /// When its cookie expires (unix seconds).
    expires: i64,
}

impl Session {
    /// Whether the role may cancel, retry and roll back runs.
    pub fn may_operate(&self) -> bool {
        matches!(self.role, Role::Operator | Role::Admin)
    }

    /// Whether the role may start runs.
    pub fn may_start(&self) -> bool {
        matches!(self.role, Role::Operator | Role::Admin)
    }

    /// Whether the role may decide approvals (that name it).
    pub fn may_decide(&self) -> bool {
        matches!(self.role, Role::Approver | Role::Admin)
    }

    /// `Ok` when `presented` is this session's CSRF token and the request is not cross-site;
    /// otherwise a 403 page saying nothing changed.
    pub fn check_csrf(&self, headers: &HeaderMap, presented: &str) -> Result<(), Box<Response>> {
        if !same_origin(headers) {
            return Err(Box::new(layout::error_page(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was sent from another site. Nothing was changed.",
            )));
        }
        let ok = presented.len() == self.csrf.len()
            && presented
                .bytes()
                .zip(self.csrf.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if ok {
            Ok(())
        } else {
            Err(Box::new(layout::error_page(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form was missing its security token or it has expired. Reload the page and try again. Nothing was changed.",
            )))
        }
    }

    /// A 403 page saying the role may not do `what`, for a forced request.
    pub fn forbidden(&self, what: &str) -> Response {
        layout::error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            &format!(
                "`{}` has the role {}, which may not {what}. Nothing was changed.",
                self.name,
                role_name(self.role)
            ),
        )
    }
}

/// The role as users read it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Viewer => "viewer",
        Role::Approver => "approver",
        Role::Operator => "operator",
        Role::Admin => "admin",
    }
}

/// Whether the browser says the request came from this site: `Sec-Fetch-Site` is absent or
/// `same-origin`/`none`, and `Origin`, when sent, names the `Host` it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let bare = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .unwrap_or("");
            !host.is_empty() && bare.eq_ignore_ascii_case(host)
        }
    }
}

fn key(state: &AppState) -> [u8; 32] {
    state.engine().derive_key("ui-session")
}

fn mac(key: &[u8; 32], parts: &[&str]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p.as_bytes());
        m.update(b"\n");
    }
    hex::encode(m.finalize().into_bytes())
}

fn fingerprint(key: &[u8; 32], id: &Identity) -> String {
    mac(key, &["token", &hex::encode(id.digest)])[..24].to_string()
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The cookie's value for `id`, valid until `expires` (unix seconds).
fn issue(key: &[u8; 32], id: &Identity, expires: i64, nonce: &str) -> String {
    let name = B64.encode(id.name.as_bytes());
    let exp = expires.to_string();
    let fp = fingerprint(key, id);
    let sig = mac(key, &["session", &name, &exp, &fp, nonce]);
    format!("{name}.{exp}.{fp}.{nonce}.{sig}")
}

/// The session a cookie value stands for, if it is genuine, unexpired and its token is still
/// configured with the same secret.
fn open(key: &[u8; 32], tokens: &Tokens, value: &str, now: i64) -> Option<Session> {
    let mut it = value.split('.');
    let (name, exp, fp, nonce, sig) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let want = mac(key, &["session", name, exp, fp, nonce]);
    if want.len() != sig.len()
        || want
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            != 0
    {
        return None;
    }
    let expires = exp.parse::<i64>().ok()?;
    if expires <= now {
        return None;
    }
    let name = String::from_utf8(B64.decode(name).ok()?).ok()?;
    let id = tokens.named(&name)?;
    if fingerprint(key, &id) != fp {
        return None;
    }
    Some(Session {
        name: id.name,
        role: id.role,
        csrf: mac(key, &["csrf", nonce])[..32].to_string(),
        nonce: nonce.to_string(),
        expires,
    })
}

fn tokens_of(parts: &Parts) -> Arc<Tokens> {
    parts
        .extensions
        .get::<Arc<Tokens>>()
        .cloned()
        .unwrap_or_default()
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_string())
}

/// Without a valid session: the sign-in page for a page request (coming back to it after),
/// `401` with `HX-Redirect` for a fragment htmx asked for.
pub struct SignInFirst {
    next: String,
    htmx: bool,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        let to = format!(
            "/ui/sign-in?next={}",
            percent_encoding::utf8_percent_encode(&self.next, percent_encoding::NON_ALPHANUMERIC)
        );
        if self.htmx {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert("hx-redirect", v);
            }
            return r;
        }
        Redirect::to(&to).into_response()
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = SignInFirst;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, SignInFirst> {
        let tokens = tokens_of(parts);
        let mut found =
            cookie_value(&parts.headers).and_then(|v| open(&key(state), &tokens, &v, now_secs()));
        // A session ended by signing out stays ended on every node; when that cannot be read,
        // the session is refused too (fail closed).
        if let Some(s) = &found {
            match state.engine().session_revoked(&s.nonce).await {
                Ok(false) => {}
                Ok(true) => found = None,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read whether a UI session was ended");
                    found = None;
                }
            }
        }
        found.ok_or_else(|| SignInFirst {
            next: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .filter(|p| !p.starts_with("/ui/runs/rows") && !p.contains("/live"))
                .unwrap_or_else(|| "/ui/runs".into()),
            htmx: parts.headers.contains_key("hx-request"),
        })
    }
}

/// Where to go after signing in: a path of the UI (no `..` segment leading out of it, even
/// percent-encoded), never another site, and nothing a `Location` header cannot carry (a
/// control character would make the redirect fail).
fn safe_next(next: Option<&str>) -> String {
    let in_ui = |n: &str| {
        let path = n.split(['?', '#']).next().unwrap_or_default();
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        (path == "/ui" || path.starts_with("/ui/"))
            && !decoded.split('/').any(|segment| segment == "..")
            && !n.contains('\\')
            && !n.chars().any(char::is_control)
    };
    match next {
        Some(n) if in_ui(n) => n.to_string(),
        _ => "/ui/runs".into(),
    }
}

/// `?next=` of the sign-in page.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /ui/sign-in`.
pub async fn sign_in_page(Query(q): Query<NextQuery>) -> Response {
    sign_in_form(StatusCode::OK, &safe_next(q.next.as_deref()), None)
}

fn sign_in_form(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Sign in to Tenure" }
        @if let Some(e) = error { p.errors role="alert" { (e) } }
        form method="post" action="/ui/sign-in" {
            input type="hidden" name="next" value=(next);
            label for="token" { "API token" span.hint { " (a [[tokens]] entry of tenure.toml; it is exchanged for a session and not kept in the browser)" } }
            input #token type="password" name="token" autocomplete="current-password" required autofocus;
            div.actions { button.primary type="submit" { "Sign in" } }
        }
        p.hint { "Sessions last " (SESSION_HOURS) " hours. Approvers do not need to sign in: the links in their email or Teams card open the approval page directly." }
    };
    layout::bare(status, "Sign in", body)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    token: String,
    next: Option<String>,
}

/// `POST /ui/sign-in`: a configured token gets a session cookie and goes where it was going.
pub async fn sign_in(
    State(state): State<AppState>,
    Extension(tokens): Extension<Arc<Tokens>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    if !same_origin(&headers) {
        return sign_in_form(
            StatusCode::FORBIDDEN,
            &next,
            Some("This sign-in was sent from another site and was refused."),
        );
    }
    if tokens.is_empty() {
        return sign_in_form(
            StatusCode::SERVICE_UNAVAILABLE,
            &next,
            Some("No tokens are configured: add a [[tokens]] entry (name, role, token_env) to tenure.toml."),
        );
    }
    let Some(id) = tokens.identify(&form.token) else {
        tracing::warn!("UI sign-in with a token that is not configured");
        return sign_in_form(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That token is not one configured on this server."),
        );
    };
    let key = key(&state);
    let nonce = hex::encode(rand_bytes());
    let value = issue(&key, &id, now_secs() + SESSION_HOURS * 3600, &nonce);
    tracing::info!(user = %id.name, role = role_name(id.role), "UI sign-in");
    let cookie = Cookie::build((COOKIE, value))
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(&state))
        .max_age(cookie::time::Duration::hours(SESSION_HOURS))
        .build();
    with_cookie(Redirect::to(&next).into_response(), &cookie)
}

fn rand_bytes() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

fn secure(state: &AppState) -> bool {
    state
        .config()
        .server
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

fn with_cookie(mut resp: Response, cookie: &Cookie<'_>) -> Response {
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /ui/sign-out`: the session is ended on every node (its nonce recorded until the
/// cookie would have expired) and the cookie is removed.
pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = session.check_csrf(&headers, &form.csrf) {
        return *r;
    }
    if let Err(e) = state
        .engine()
        .revoke_session(&session.nonce, session.expires * 1000)
        .await
    {
        tracing::error!(error = %e, "cannot record a UI sign-out");
        return layout::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again",
            "Signing out could not be recorded; your session is still open. Try again in a moment.",
        );
    }
    tracing::info!(user = %session.name, "UI sign-out");
    let cookie = Cookie::build((COOKIE, ""))
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(&state))
        .max_age(cookie::time::Duration::ZERO)
        .build();
    with_cookie(Redirect::to("/ui/sign-in").into_response(), &cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(role: Role, secret: &str) -> Tokens {
        Tokens::for_tests(&[("ops@msp.example", role, secret)])
    }

    #[test]
    fn a_cookie_opens_only_as_issued() {
        let key = [7u8; 32];
        let t = tokens(Role::Operator, "s3cret-token");
        let id = t.identify("s3cret-token").unwrap();
        let v = issue(&key, &id, 2_000, "abcd");
        let s = open(&key, &t, &v, 1_000).expect("valid");
        assert_eq!(
            (s.name.as_str(), s.role),
            ("ops@msp.example", Role::Operator)
        );
        assert!(open(&key, &t, &v, 2_000).is_none(), "expired");
        assert!(open(&[8u8; 32], &t, &v, 1_000).is_none(), "other key");
        let tampered = v.replacen("2000", "9000", 1);
        assert!(
            open(&key, &t, &tampered, 1_000).is_none(),
            "tampered expiry"
        );
        let rotated = tokens(Role::Operator, "new-token");
        assert!(open(&key, &rotated, &v, 1_000).is_none(), "rotated token");
        let downgraded = tokens(Role::Viewer, "s3cret-token");
        assert_eq!(
            open(&key, &downgraded, &v, 1_000).unwrap().role,
            Role::Viewer
        );
        assert!(open(&key, &t, "a.b.c", 1_000).is_none());
        assert!(open(&key, &t, "", 1_000).is_none());
    }

    #[test]
    fn next_stays_on_the_ui() {
        for ok in ["/ui/runs/r1", "/ui", "/ui/runs?q=a..b", "/ui/runs/a..b"] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "/api/runs",
            "/ui/runs\nSet-Cookie: x=1",
            "/ui/runs\u{1}",
            "/ui/runs\u{7f}",
            "/ui/../api/runs",
            "/ui/%2e%2E/api/runs",
            "/ui/runs/%2E./..",
            "/uievil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/runs", "{bad}");
        }
    }

    #[test]
    fn cross_site_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }
}
