//! Token endpoints (Microsoft identity platform, Pax8, HaloPSA) and the extractors that check a
//! request's credentials the way each vendor does, answering with the vendor's own error.

use axum::extract::{Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use crate::http::{graph_error, reply};
use crate::shared::{now_ms, Audience, Shared, Token};

/// Token routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
            post(entra_token),
        )
        .route(
            "/login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration",
            axum::routing::get(openid_configuration),
        )
        .route("/token-manager.pax8.com/oauth/token", post(pax8_token))
        .route("/sandbox.halopsa.com/auth/token", post(halo_token))
}

fn aadsts(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    reply(
        status,
        json!({"error": error, "error_description": format!("AADSTS{code}: {description}"),
               "error_codes": [code], "timestamp": crate::shared::now_rfc3339(),
               "trace_id": uuid::Uuid::new_v4().to_string(), "correlation_id": uuid::Uuid::new_v4().to_string()}),
    )
}

async fn entra_token(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let creds = s.read(|w| w.credentials.clone());
    let lifetime = s.read(|w| w.settings.token_lifetime_s);
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    let scope = form.get("scope").map(String::as_str).unwrap_or("");
    if form.get("client_id").map(String::as_str) != Some(creds.client_id.as_str()) {
        return aadsts(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory '{tenant}'.",
                form.get("client_id").map(String::as_str).unwrap_or("")
            ),
        );
    }
    if form.get("client_secret").map(String::as_str) != Some(creds.client_secret.as_str()) {
        return aadsts(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.");
    }
    let audience = match scope {
        "https://graph.microsoft.com/.default" => Audience::Graph,
        "https://outlook.office365.com/.default" => Audience::Exchange,
        "https://api.partnercenter.microsoft.com/.default"
        | "https://api.partnercenter.microsoft.com/user_impersonation" => Audience::PartnerCenter,
        _ => {
            return aadsts(StatusCode::BAD_REQUEST, "invalid_scope", 1002012, &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ))
        }
    };
    match (grant, audience) {
        ("client_credentials", Audience::PartnerCenter) => {
            return aadsts(StatusCode::BAD_REQUEST, "invalid_grant", 50126, "Partner Center transactions need App+User: use grant_type=refresh_token with the partner's refresh token.");
        }
        ("client_credentials", _) => {}
        ("refresh_token", Audience::PartnerCenter) => {
            if form.get("refresh_token").map(String::as_str) != Some(creds.refresh_token.as_str()) {
                return aadsts(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity.",
                );
            }
        }
        _ => {
            return aadsts(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            )
        }
    }
    let tenant_key = s.read(|w| w.tenant(&tenant).map(|i| w.tenants[i].id.clone()));
    let tenant_id = match (audience, tenant_key) {
        (Audience::PartnerCenter, t) => t,
        (_, Some(t)) => Some(t),
        (_, None) => {
            return aadsts(StatusCode::BAD_REQUEST, "invalid_request", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
        }
    };
    let token = s.issue(Token {
        tenant: tenant_id,
        audience,
        expires_at_ms: now_ms() + lifetime * 1000,
    });
    reply(
        StatusCode::OK,
        json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
    )
}

/// The OpenID Connect discovery document of a tenant, so identity libraries find the token
/// endpoint (issuer and endpoints in the sandbox's own URL space).
async fn openid_configuration(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(tenant_id) = s.read(|w| w.tenant(&tenant).map(|t| w.tenants[t].tenant_id.clone()))
    else {
        return aadsts(StatusCode::BAD_REQUEST, "invalid_tenant", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
    };
    let base = format!(
        "{}/login.microsoftonline.com",
        crate::http::base_url(&headers)
    );
    reply(
        StatusCode::OK,
        json!({
            "issuer": format!("https://login.microsoftonline.com/{tenant_id}/v2.0"),
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "device_authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/devicecode"),
            "end_session_endpoint": format!("{base}/{tenant}/oauth2/v2.0/logout"),
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "private_key_jwt"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "grant_types_supported": ["client_credentials", "refresh_token", "authorization_code"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "OC",
            "cloud_instance_name": "microsoftonline.com",
        }),
    )
}

async fn pax8_token(State(s): State<Arc<Shared>>, body: Option<Json<Value>>) -> Response {
    let creds = s.read(|w| w.credentials.clone());
    let body = body.map(|Json(b)| b).unwrap_or(Value::Null);
    let ok = body["client_id"] == creds.client_id.as_str()
        && body["client_secret"] == creds.client_secret.as_str()
        && body["grant_type"] == "client_credentials";
    if !ok {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "access_denied", "error_description": "Unauthorized"}),
        );
    }
    let token = s.issue(Token {
        tenant: None,
        audience: Audience::Pax8,
        expires_at_ms: now_ms() + 86_400_000,
    });
    reply(
        StatusCode::OK,
        json!({"access_token": token, "expires_in": 86400, "token_type": "Bearer"}),
    )
}

async fn halo_token(
    State(s): State<Arc<Shared>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let creds = s.read(|w| w.credentials.clone());
    let ok = form.get("client_id") == Some(&creds.client_id)
        && form.get("client_secret") == Some(&creds.client_secret)
        && form.get("grant_type").map(String::as_str) == Some("client_credentials");
    if !ok {
        return reply(StatusCode::BAD_REQUEST, json!({"error": "invalid_client"}));
    }
    let token = s.issue(Token {
        tenant: None,
        audience: Audience::Halo,
        expires_at_ms: now_ms() + 3_600_000,
    });
    reply(
        StatusCode::OK,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": 3600, "scope": form.get("scope").cloned().unwrap_or_else(|| "all".into())}),
    )
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
}

fn check(s: &Shared, parts: &Parts, audience: Audience) -> Result<Token, &'static str> {
    let value = bearer(parts).ok_or("missing")?;
    let token = s.token(value).ok_or("invalid")?;
    if token.audience != audience {
        return Err("audience");
    }
    if token.expires_at_ms <= now_ms() {
        return Err("expired");
    }
    Ok(token)
}

/// A request authenticated for Graph; holds the tenant's short id.
pub struct GraphAuth(pub String);

impl FromRequestParts<Arc<Shared>> for GraphAuth {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Self, Response> {
        match check(s, parts, Audience::Graph) {
            Ok(t) => Ok(GraphAuth(t.tenant.unwrap_or_default())),
            Err("missing") => Err(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            )),
            Err("expired") => Err(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            )),
            Err(_) => Err(graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            )),
        }
    }
}

/// A request authenticated for Exchange Online; holds the tenant's short id.
pub struct ExoAuth(pub String);

impl FromRequestParts<Arc<Shared>> for ExoAuth {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Self, Response> {
        check(s, parts, Audience::Exchange)
            .map(|t| ExoAuth(t.tenant.unwrap_or_default()))
            .map_err(|_| reply(StatusCode::UNAUTHORIZED, json!({"error": {"code": "Unauthorized", "message": "The token is missing, invalid or not for outlook.office365.com."}})))
    }
}

/// A request authenticated for Partner Center.
pub struct PcAuth;

impl FromRequestParts<Arc<Shared>> for PcAuth {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Self, Response> {
        check(s, parts, Audience::PartnerCenter)
            .map(|_| PcAuth)
            .map_err(|_| reply(StatusCode::UNAUTHORIZED, json!({"code": 401, "description": "Unauthorized: the access token is missing, invalid or expired.", "data": [], "source": "PartnerFD"})))
    }
}

/// A request authenticated for Pax8.
pub struct Pax8Auth;

impl FromRequestParts<Arc<Shared>> for Pax8Auth {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Self, Response> {
        check(s, parts, Audience::Pax8).map(|_| Pax8Auth).map_err(|_| {
            reply(StatusCode::UNAUTHORIZED, json!({"type": "Unauthorized", "message": "Invalid or expired token", "instance": parts.uri.path(), "status": 401, "details": []}))
        })
    }
}

/// A request authenticated for HaloPSA.
pub struct HaloAuth;

impl FromRequestParts<Arc<Shared>> for HaloAuth {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Self, Response> {
        check(s, parts, Audience::Halo)
            .map(|_| HaloAuth)
            .map_err(|_| reply(StatusCode::UNAUTHORIZED, json!("Unauthorized")))
    }
}

/// A request carrying ConnectWise's Basic `company+public:private` and `clientId` headers.
pub struct CwAuth;

impl FromRequestParts<Arc<Shared>> for CwAuth {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Self, Response> {
        let c = s.read(|w| w.credentials.clone());
        let expected = format!(
            "{}+{}:{}",
            c.connectwise_company, c.connectwise_public_key, c.client_secret
        );
        let basic = parts
            .headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let client_id = parts.headers.get("clientid").and_then(|h| h.to_str().ok());
        if client_id.is_none() {
            return Err(reply(
                StatusCode::UNAUTHORIZED,
                json!({"code": "Unauthorized", "message": "clientId header is required", "errors": []}),
            ));
        }
        if basic.as_deref() != Some(expected.as_str()) || client_id != Some(c.client_id.as_str()) {
            return Err(reply(
                StatusCode::UNAUTHORIZED,
                json!({"code": "Unauthorized", "message": "Unauthorized", "errors": []}),
            ));
        }
        Ok(CwAuth)
    }
}

/// A request carrying Autotask's `ApiIntegrationCode`, `UserName` and `Secret` headers.
pub struct AtAuth;

impl FromRequestParts<Arc<Shared>> for AtAuth {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Shared>) -> Result<Self, Response> {
        let c = s.read(|w| w.credentials.clone());
        let h = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let ok = h("apiintegrationcode").as_deref() == Some(c.autotask_integration_code.as_str())
            && h("username").as_deref() == Some(c.autotask_user.as_str())
            && h("secret").as_deref() == Some(c.client_secret.as_str());
        if ok {
            Ok(AtAuth)
        } else {
            Err(reply(
                StatusCode::UNAUTHORIZED,
                json!({"errors": ["User is not authorized for this operation."]}),
            ))
        }
    }
}
