//! `password.share`: delivers a secret (a password, a Temporary Access Pass).
//!
//! - `secure_link`: a Password Pusher push that dies after `expire_after_views` views or
//!   `expire_after_days` days; the link is a secret output (sealed, `***` in the journal),
//!   shown only where a later step delivers it. Password Pusher has no idempotency, so the push
//!   carries the step instance's key in its private `note`, and with an API token the active
//!   pushes are looked through first: a repeat finds the push an earlier attempt made and
//!   returns its link instead of making a second one. Anonymous pushes (no token) cannot be
//!   listed: a repeat after a crash between the push and the journal may push twice.
//! - `direct`: hands the secret to the message that delivers it (output `secret`, sealed).
//! - `none`: delivers nothing.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, StepError};
use tenure_vendors::{Secret, VendorError};

use crate::vendors::{param, step_error, Vendors};

/// Where Password Pusher is, and the API token that makes pushes listable.
#[derive(Clone, Debug)]
pub struct PwPushConfig {
    /// The instance (`https://pwpush.com` or self-hosted), no trailing slash.
    pub url: String,
    /// The API token (`Authorization: Bearer`); without it pushes are anonymous.
    pub token: Option<Secret>,
}

impl Default for PwPushConfig {
    fn default() -> Self {
        PwPushConfig {
            url: "https://pwpush.com".into(),
            token: None,
        }
    }
}

/// Registers `password.share`.
pub fn register(registry: &mut Registry, vendors: &Vendors) {
    registry.insert(
        "password.share",
        Share(Arc::new((vendors.pwpush().clone(), vendors.http().clone()))),
    );
}

struct Share(Arc<(PwPushConfig, reqwest::Client)>);

crate::executor!(Share);

/// A number parameter within `lo..=hi` (Password Pusher would silently replace it).
fn bounded(p: &Value, name: &str, default: u64, lo: u64, hi: u64) -> Result<u64, StepError> {
    let n = match &p[name] {
        Value::Null => default,
        v => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0),
    };
    if (lo..=hi).contains(&n) {
        Ok(n)
    } else {
        Err(StepError::permanent(
            "invalid_params",
            format!("`{name}` must be {lo} to {hi}"),
        ))
    }
}

impl Share {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let p = call.params;
        let method = p["method"].as_str().unwrap_or("secure_link");
        match method {
            "none" => Ok(Outcome::Done(
                json!({"method": "none", "url": null, "secret": null}),
            )),
            "direct" => {
                let secret = param(p, "secret")?;
                Ok(Outcome::Done(
                    json!({"method": "direct", "url": null, "secret": secret}),
                ))
            }
            "secure_link" => {
                let url = self.push(&call).await?;
                Ok(Outcome::Done(
                    json!({"method": "secure_link", "url": url, "secret": null}),
                ))
            }
            other => Err(StepError::permanent(
                "invalid_params",
                format!("`method` must be secure_link, direct or none, not `{other}`"),
            )),
        }
    }

    async fn push(&self, call: &Call<'_>) -> Result<String, StepError> {
        let (config, http) = (&self.0 .0, &self.0 .1);
        let p = call.params;
        let secret = param(p, "secret")?;
        let views = bounded(p, "expire_after_views", 1, 1, 100)?;
        let days = bounded(p, "expire_after_days", 7, 1, 90)?;
        let marker = format!("tenure {}", call.idempotency_key());
        let mut headers = Vec::new();
        if let Some(t) = &config.token {
            headers.push((
                "Authorization".to_string(),
                format!("Bearer {}", t.expose()),
            ));
            // Look before pushing: the push an earlier attempt made carries the marker.
            let what = "list the active Password Pusher pushes";
            let url = format!("{}/p/active.json", config.url);
            let resp = tenure_vendors::request(
                http,
                call.requests,
                what,
                Method::GET,
                &url,
                &headers,
                None,
            )
            .await
            .map_err(step_error)?;
            if !(200..300).contains(&resp.status) {
                return Err(step_error(VendorError::from_response(
                    what,
                    resp.status,
                    resp.retry_after,
                    &resp.text,
                )));
            }
            let pushes: Value = serde_json::from_str(&resp.text).unwrap_or(Value::Null);
            if let Some(link) = pushes
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["note"].as_str() == Some(marker.as_str()))
                .and_then(|x| x["html_url"].as_str())
            {
                return Ok(link.to_string());
            }
        }
        let mut push = json!({
            "payload": secret,
            "expire_after_days": days,
            "expire_after_views": views,
            "deletable_by_viewer": false,
            "retrieval_step": true,
            "note": marker,
        });
        if let Some(name) = p["note"].as_str().filter(|n| !n.is_empty()) {
            push["name"] = json!(name);
        }
        let what = "create a Password Pusher link";
        let resp = tenure_vendors::request(
            http,
            call.requests,
            what,
            Method::POST,
            &format!("{}/p.json", config.url),
            &headers,
            Some(&json!({"password": push})),
        )
        .await
        .map_err(step_error)?;
        if !(200..300).contains(&resp.status) {
            return Err(step_error(VendorError::from_response(
                what,
                resp.status,
                resp.retry_after,
                &resp.text,
            )));
        }
        let body: Value = serde_json::from_str(&resp.text).unwrap_or(Value::Null);
        body["html_url"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| StepError::permanent("bad_response", format!("{what}: no html_url")))
    }
}
