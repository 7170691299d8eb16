//! JSON requests to vendor APIs with bearer tokens, classified errors and request summaries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

use crate::{Endpoints, TenantCredentials, TokenCache, VendorError};

/// What the journal keeps of one request: never tokens, query strings or bodies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSummary {
    /// `GET`, `POST`...
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// The status, if a response came.
    pub status: Option<u16>,
    /// How long it took.
    pub duration_ms: u64,
}

impl RequestSummary {
    /// A summary of a request to `path_and_query` (the query string is dropped).
    pub fn new(method: &str, path_and_query: &str, status: Option<u16>, started: Instant) -> Self {
        let path = path_and_query.split('?').next().unwrap_or("").to_string();
        RequestSummary {
            method: method.to_string(),
            path,
            status,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// The requests one attempt made, in order (shared with the caller that journals them).
#[derive(Clone, Default, Debug)]
pub struct Requests(Arc<Mutex<Vec<RequestSummary>>>);

impl Requests {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a summary.
    pub fn record(&self, summary: RequestSummary) {
        if let Ok(mut v) = self.0.lock() {
            v.push(summary);
        }
    }

    /// Takes every summary recorded so far.
    pub fn take(&self) -> Vec<RequestSummary> {
        self.0
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }
}

/// The seconds of a `Retry-After` header.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A vendor client for one managed tenant: base URLs, credentials, a shared token cache and
/// the attempt's request log.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Where each vendor lives.
    pub endpoints: Endpoints,
    creds: TenantCredentials,
    tokens: TokenCache,
    requests: Requests,
}

impl Client {
    /// A client for `creds`' tenant that records every request in `requests`.
    pub fn new(
        http: reqwest::Client,
        endpoints: Endpoints,
        creds: TenantCredentials,
        tokens: TokenCache,
        requests: Requests,
    ) -> Self {
        Client {
            http,
            endpoints,
            creds,
            tokens,
            requests,
        }
    }

    /// A reqwest client with Tenure's timeouts.
    pub fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("Tenure/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    }

    /// The tenant this client acts in.
    pub fn tenant(&self) -> &str {
        &self.creds.tenant
    }

    /// Sends a JSON request to `url` (absolute) with a bearer token for the resource the URL
    /// belongs to. Returns the status and the JSON body (`Null` when empty). Non-2xx answers
    /// become a classified [`VendorError`] described by `what`.
    pub async fn send(
        &self,
        what: &str,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<(u16, Value), VendorError> {
        let scope = self.endpoints.scope_for(url);
        let token = self
            .tokens
            .token(
                &self.http,
                &self.endpoints,
                &self.creds,
                scope,
                &self.requests,
            )
            .await?;
        let mut req = self.http.request(method.clone(), url).bearer_auth(token);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .unwrap_or_else(|| url.to_string());
        let started = Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.requests
                    .record(RequestSummary::new(method.as_str(), &path, None, started));
                return Err(VendorError::connection(what, &e));
            }
        };
        let status = resp.status().as_u16();
        let wait = retry_after(resp.headers());
        let text = resp.text().await;
        self.requests.record(RequestSummary::new(
            method.as_str(),
            &path,
            Some(status),
            started,
        ));
        let text = text.map_err(|e| VendorError::connection(what, &e))?;
        if status == 401 {
            // A revoked or expired token: sign in again on the next attempt.
            self.tokens.forget(&self.creds.tenant).await;
        }
        if !(200..300).contains(&status) {
            return Err(VendorError::from_response(what, status, wait, &text));
        }
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                VendorError::permanent("bad_response", format!("{what}: the answer is not JSON"))
            })?
        };
        Ok((status, json))
    }

    /// Sends Graph requests as JSON `$batch`es of up to 20 (one round trip each batch). Each
    /// request is `(method, path relative to the Graph base, body)`; each answer is its status
    /// and body, in order, or the classified error of that request. A sub-request's summary is
    /// journaled like any other request, with the batch's duration.
    pub async fn batch(
        &self,
        what: &str,
        requests: &[(Method, String, Option<Value>)],
    ) -> Result<Vec<Result<Value, VendorError>>, VendorError> {
        let url = format!("{}/$batch", self.endpoints.graph);
        let base_path = url
            .split_once("://")
            .and_then(|(_, rest)| {
                rest.find('/')
                    .map(|i| rest[i..].trim_end_matches("/$batch").to_string())
            })
            .unwrap_or_default();
        let mut answers = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(20) {
            let body = serde_json::json!({"requests": chunk.iter().enumerate().map(|(i, (method, path, body))| {
                let mut r = serde_json::json!({"id": (i + 1).to_string(), "method": method.as_str(), "url": path});
                if let Some(b) = body {
                    r["body"] = b.clone();
                    r["headers"] = serde_json::json!({"Content-Type": "application/json"});
                }
                r
            }).collect::<Vec<_>>()});
            let started = Instant::now();
            let (_, answer) = self
                .send(what, Method::POST, &url, Some(&body), &[])
                .await?;
            let responses = answer["responses"].as_array().cloned().unwrap_or_default();
            for (i, (method, path, _)) in chunk.iter().enumerate() {
                let id = (i + 1).to_string();
                let Some(r) = responses
                    .iter()
                    .find(|r| r["id"] == Value::String(id.clone()))
                else {
                    answers.push(Err(VendorError::permanent(
                        "bad_response",
                        format!("{what}: the batch has no answer for {method} {path}"),
                    )));
                    continue;
                };
                let status = r["status"].as_u64().unwrap_or(0) as u16;
                self.requests.record(RequestSummary::new(
                    method.as_str(),
                    &format!("{base_path}{path}"),
                    Some(status),
                    started,
                ));
                if (200..300).contains(&status) {
                    answers.push(Ok(r["body"].clone()));
                } else {
                    let wait = r["headers"]["Retry-After"]
                        .as_str()
                        .and_then(|v| v.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    answers.push(Err(VendorError::from_response(
                        &format!("{what} ({method} {path})"),
                        status,
                        wait,
                        &r["body"].to_string(),
                    )));
                }
            }
        }
        Ok(answers)
    }

    /// `GET` a Graph collection, following `@odata.nextLink` to the end.
    pub async fn list_all(&self, what: &str, url: &str) -> Result<Vec<Value>, VendorError> {
        let mut items = Vec::new();
        let mut next = Some(url.to_string());
        while let Some(url) = next {
            let (_, page) = self.send(what, Method::GET, &url, None, &[]).await?;
            items.extend(page["value"].as_array().cloned().unwrap_or_default());
            next = page["@odata.nextLink"].as_str().map(str::to_string);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn https_urls_are_supported() {
        // Nothing listens on port 1: the request must fail connecting, not because the client
        // cannot speak TLS.
        let e = Client::http()
            .get("https://127.0.0.1:1/")
            .send()
            .await
            .unwrap_err();
        assert!(e.is_connect(), "{e:?}");
        let v = VendorError::connection("reach the vendor", &e);
        assert!(v.transient);
        assert_eq!(v.message, "reach the vendor: could not connect");
    }

    #[test]
    fn summaries_drop_the_query_string() {
        let s = RequestSummary::new(
            "GET",
            "/v1.0/users?$filter=secret eq 'x'",
            Some(200),
            Instant::now(),
        );
        assert_eq!(s.path, "/v1.0/users");
    }
}
