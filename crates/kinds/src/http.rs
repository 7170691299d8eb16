//! `http.request`: any REST call, for what no built-in kind covers. It goes through the vendors
//! layer like every other kind ([`tenure_vendors::request`]), so its requests are journaled as
//! summaries, a failed connection or a 408/429/5xx answer is transient (with the server's
//! `Retry-After` kept) and any other unexpected status permanent. Every attempt sends the same
//! `Idempotency-Key: run:step:item`, so a server that honours it applies a repeat once.

use reqwest::Method;
use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, StepError};
use tenure_vendors::VendorError;

use crate::vendors::{step_error, Vendors};

/// Registers `http.request`, sharing the vendors' HTTP client (timeouts, TLS).
pub fn register(registry: &mut Registry, vendors: &Vendors) {
    registry.insert(
        "http.request",
        HttpRequest {
            http: vendors.http().clone(),
        },
    );
}

/// `http.request`.
struct HttpRequest {
    http: reqwest::Client,
}

crate::executor!(HttpRequest);

impl HttpRequest {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let p = call.params;
        let method = p["method"].as_str().unwrap_or("GET");
        let method = Method::from_bytes(method.as_bytes()).map_err(|_| {
            StepError::permanent("invalid_method", format!("`{method}` is not a method"))
        })?;
        let url = p["url"]
            .as_str()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .ok_or_else(|| {
                StepError::permanent("invalid_url", "`url` must be an absolute http(s) URL")
            })?;
        let mut headers: Vec<(String, String)> =
            vec![("Idempotency-Key".into(), call.idempotency_key())];
        for (k, v) in p["headers"].as_object().into_iter().flatten() {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            headers.push((k.clone(), v));
        }
        let what = format!("{method} {}", url.split('?').next().unwrap_or(url));
        let body = (!p["json"].is_null()).then_some(&p["json"]);
        let resp = tenure_vendors::request(
            &self.http,
            call.requests,
            &what,
            method,
            url,
            &headers,
            body,
        )
        .await
        .map_err(step_error)?;
        let expected: Option<Vec<u64>> = p["expect_status"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect());
        let ok = match &expected {
            Some(list) => list.contains(&u64::from(resp.status)),
            None => (200..300).contains(&resp.status),
        };
        if !ok {
            return Err(step_error(VendorError::from_response(
                &what,
                resp.status,
                resp.retry_after,
                &resp.text,
            )));
        }
        let body = if resp.text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&resp.text).unwrap_or(Value::String(resp.text))
        };
        Ok(Outcome::Done(json!({"status": resp.status, "body": body})))
    }
}
