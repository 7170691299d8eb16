//! OAuth2 client-credentials tokens, cached per (tenant, scope) and refreshed before expiry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

use tenure_steps::{RequestSummary, Requests};

use crate::{Endpoints, TenantCredentials, VendorError};

enum Body {
    Form(Vec<(&'static str, String)>),
    Json(Value),
}

/// Refresh a token this long before it expires.
const EARLY: Duration = Duration::from_secs(300);

#[derive(Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
}

/// Tokens per (tenant, scope). Cheap to clone; clones share the cache.
#[derive(Clone, Default)]
pub struct TokenCache {
    tokens: Arc<Mutex<HashMap<(String, String), Cached>>>,
}

impl TokenCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// A bearer token for `scope` in the credentials' tenant, from the cache while it has more
    /// than five minutes left, else from the identity platform.
    pub async fn token(
        &self,
        http: &reqwest::Client,
        endpoints: &Endpoints,
        creds: &TenantCredentials,
        scope: &str,
        requests: &Requests,
    ) -> Result<String, VendorError> {
        let key = (creds.tenant.clone(), scope.to_string());
        // Holding the lock while fetching means concurrent callers wait for one request.
        let mut tokens = self.tokens.lock().await;
        if let Some(c) = tokens.get(&key) {
            if Instant::now() < c.refresh_at {
                return Ok(c.token.clone());
            }
        }
        let api = endpoints.api_of_scope(scope);
        let missing = |what: &str| {
            VendorError::permanent(
                "not_configured",
                format!(
                    "no {what} credentials are configured for tenant {}",
                    creds.tenant
                ),
            )
        };
        let (url, path, body) = match api {
            crate::Api::Pax8 => {
                let (id, secret) = creds.pax8.as_ref().ok_or_else(|| missing("Pax8"))?;
                let path = "/oauth/token".to_string();
                let body = Body::Json(serde_json::json!({
                    "client_id": id, "client_secret": secret.expose(),
                    "audience": "api://p8p.client", "grant_type": "client_credentials",
                }));
                (format!("{}{path}", endpoints.pax8_login), path, body)
            }
            crate::Api::PartnerCenter => {
                let (partner, refresh) = creds
                    .partner_center
                    .as_ref()
                    .ok_or_else(|| missing("Partner Center"))?;
                let path = format!("/{partner}/oauth2/v2.0/token");
                let body = Body::Form(vec![
                    ("client_id", creds.client_id.clone()),
                    ("client_secret", creds.client_secret.expose().to_string()),
                    ("scope", scope.to_string()),
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", refresh.expose().to_string()),
                ]);
                (format!("{}{path}", endpoints.login), path, body)
            }
            crate::Api::Graph | crate::Api::Exchange => {
                let path = format!("/{}/oauth2/v2.0/token", creds.tenant);
                let body = Body::Form(vec![
                    ("client_id", creds.client_id.clone()),
                    ("client_secret", creds.client_secret.expose().to_string()),
                    ("scope", scope.to_string()),
                    ("grant_type", "client_credentials".to_string()),
                ]);
                (format!("{}{path}", endpoints.login), path, body)
            }
        };
        let started = Instant::now();
        let what = format!("sign in to tenant {}", creds.tenant);
        let req = http.post(&url);
        let body_sent = body;
        let req = match &body_sent {
            Body::Form(f) => req.form(f),
            Body::Json(j) => req.json(j),
        };
        let resp = req.send().await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                requests.record(RequestSummary::new("POST", &path, None, started));
                return Err(VendorError::connection(&what, &e));
            }
        };
        let status = resp.status().as_u16();
        requests.record(RequestSummary::new("POST", &path, Some(status), started));
        let retry_after = crate::retry_after::retry_after(resp.headers());
        // Bounded like every answer, and without the credentials just sent (a login endpoint
        // that echoes its form must not put the client secret into an error).
        let body = crate::client::read_bounded(resp, &what).await?;
        let sent: Vec<&str> = match &body_sent {
            Body::Form(f) => f
                .iter()
                .filter(|(k, _)| matches!(*k, "client_secret" | "refresh_token"))
                .map(|(_, v)| v.as_str())
                .collect(),
            Body::Json(j) => vec![j["client_secret"].as_str().unwrap_or_default()],
        };
        let body = crate::client::scrub_credentials(body, &sent);
        if !(200..300).contains(&status) {
            return Err(VendorError::from_response(
                &what,
                status,
                retry_after,
                &body,
            ));
        }
        let json: Value = serde_json::from_str(&body).map_err(|_| {
            VendorError::permanent(
                "bad_token_response",
                format!("{what}: the token response is not JSON"),
            )
        })?;
        let token = json["access_token"]
            .as_str()
            .ok_or_else(|| {
                VendorError::permanent(
                    "bad_token_response",
                    format!("{what}: no access_token in the response"),
                )
            })?
            .to_string();
        let lifetime = Duration::from_secs(json["expires_in"].as_u64().unwrap_or(3599));
        tokens.insert(
            key,
            Cached {
                token: token.clone(),
                refresh_at: Instant::now() + lifetime.saturating_sub(EARLY),
            },
        );
        Ok(token)
    }

    /// Forgets a tenant's tokens (after the vendor rejected one as invalid).
    pub async fn forget(&self, tenant: &str) {
        self.tokens.lock().await.retain(|(t, _), _| t != tenant);
    }
}
