//! JSON requests to vendor APIs with bearer tokens, classified errors and request summaries
//! (recorded in the attempt's request log, [`tenure_steps::Requests`], which the engine journals).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use tenure_steps::{RequestSummary, Requests};

use crate::retry_after::{retry_after, retry_after_value};
use crate::{Endpoints, TenantCredentials, TokenCache, VendorError};

/// The answer to a [`request`]: any status, the body as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` the server gave, parsed safely.
    pub retry_after: Option<Duration>,
    /// The body, as text.
    pub text: String,
}

/// Sends one request to any URL, without a vendor's token (for `http.request`): the headers
/// and JSON body as given, a summary recorded in `requests`. Any status is an answer; only a
/// failure before a complete answer (refused, reset, timed out) is an error, classified
/// transient. Use [`VendorError::from_response`] to classify a status the caller does not
/// accept.
pub async fn request(
    http: &reqwest::Client,
    requests: &Requests,
    what: &str,
    method: Method,
    url: &str,
    headers: &[(String, String)],
    json: Option<&Value>,
) -> Result<Response, VendorError> {
    let mut req = http.request(method.clone(), url);
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    if let Some(b) = json {
        req = req.json(b);
    }
    let path = path_of(url);
    let started = Instant::now();
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            requests.record(RequestSummary::new(method.as_str(), &path, None, started));
            return Err(VendorError::connection(what, &e));
        }
    };
    let status = resp.status().as_u16();
    let wait = retry_after(resp.headers());
    let text = read_bounded(resp, what).await;
    requests.record(RequestSummary::new(
        method.as_str(),
        &path,
        Some(status),
        started,
    ));
    let sent = credentials(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    Ok(Response {
        status,
        retry_after: wait,
        text: scrub_credentials(text?, &sent),
    })
}

/// Whether a header carries a credential (`Authorization`, API keys and tokens, cookies).
fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "key",
        "token",
        "secret",
        "password",
        "cookie",
        "signature",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The credentials among request headers: each such header's value, and the token of an
/// `Authorization: Bearer …` (or any `SCHEME value`).
fn credentials<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<&'a str> {
    let mut out = Vec::new();
    for (_, value) in headers.filter(|(n, _)| is_credential_header(n)) {
        out.push(value);
        if let Some((_, token)) = value.split_once(' ') {
            out.push(token.trim());
        }
    }
    out
}

/// `text` (a vendor's answer) with every credential the request carried replaced by `***`: a
/// vendor that echoes its request, in an error or an answer, must not carry a client secret
/// or token into step errors, outputs or logs.
pub(crate) fn scrub_credentials(mut text: String, credentials: &[&str]) -> String {
    for c in credentials {
        // Very short values would also match ordinary text; no real credential is that short.
        if c.len() >= 6 && text.contains(c) {
            text = text.replace(c, "***");
        }
    }
    text
}

/// The default of [`max_response_bytes`]: 4 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 << 20;

/// The largest response body read: `TENURE_MAX_RESPONSE_BYTES`, else
/// [`DEFAULT_MAX_RESPONSE_BYTES`] (with a warning if the variable is not a positive number).
pub fn max_response_bytes() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        let Ok(text) = std::env::var("TENURE_MAX_RESPONSE_BYTES") else {
            return DEFAULT_MAX_RESPONSE_BYTES;
        };
        match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                tracing::warn!(
                    value = %text,
                    "TENURE_MAX_RESPONSE_BYTES is not a positive number of bytes; using the default, {DEFAULT_MAX_RESPONSE_BYTES}"
                );
                DEFAULT_MAX_RESPONSE_BYTES
            }
        }
    })
}

/// The body as text, refused (permanently) past [`max_response_bytes`] without reading the rest.
pub(crate) async fn read_bounded(
    mut resp: reqwest::Response,
    what: &str,
) -> Result<String, VendorError> {
    let limit = max_response_bytes();
    let too_large = || {
        VendorError::permanent(
            "response_too_large",
            format!(
                "{what}: the answer is larger than {limit} bytes, the most Tenure reads; if it \
                 is expected, set TENURE_MAX_RESPONSE_BYTES to a larger number of bytes"
            ),
        )
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| VendorError::connection(what, &e))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The scheme and host (with port) of an absolute URL.
fn origin_of(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[..url.len() - rest.len() + end])
}

/// The path of an absolute URL: a summary drops the query and fragment (they may carry
/// secrets: API keys, signatures, one-time tokens).
fn path_of(url: &str) -> String {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    path.split(['?', '#']).next().unwrap_or("/").to_string()
}

/// The most pages [`Client::list_all`] follows.
pub const MAX_PAGES: usize = 1000;

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
        let mut req = self.http.request(method.clone(), url).bearer_auth(&token);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let path = path_of(url);
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
        let text = read_bounded(resp, what).await;
        self.requests.record(RequestSummary::new(
            method.as_str(),
            &path,
            Some(status),
            started,
        ));
        let mut sent = credentials(headers.iter().map(|(n, v)| (*n, v.as_str())));
        sent.push(token.as_str());
        let text = scrub_credentials(text?, &sent);
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
                    // Header names in a batch answer are not case-normalized (Graph writes
                    // `Retry-After`, others `retry-after`); the value may be a string or a number.
                    let wait = r["headers"]
                        .as_object()
                        .and_then(|h| {
                            h.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                                .map(|(_, v)| v)
                        })
                        .and_then(|v| match v {
                            Value::String(s) => retry_after_value(s),
                            Value::Number(n) => retry_after_value(&n.to_string()),
                            _ => None,
                        });
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

    /// `GET` a Graph collection, following `@odata.nextLink` to the end: only links on the
    /// collection's own scheme and host (the token goes with them), at most
    /// [`MAX_PAGES`] pages.
    pub async fn list_all(&self, what: &str, url: &str) -> Result<Vec<Value>, VendorError> {
        let origin = origin_of(url).unwrap_or_default().to_string();
        let mut items = Vec::new();
        let mut next = Some(url.to_string());
        let mut pages = 0;
        while let Some(url) = next {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(VendorError::permanent(
                    "bad_response",
                    format!("{what}: more than {MAX_PAGES} pages"),
                ));
            }
            let (_, page) = self.send(what, Method::GET, &url, None, &[]).await?;
            items.extend(page["value"].as_array().cloned().unwrap_or_default());
            next = page["@odata.nextLink"].as_str().map(str::to_string);
            if let Some(link) = &next {
                if origin_of(link) != Some(origin.as_str()) {
                    return Err(VendorError::permanent(
                        "bad_response",
                        format!("{what}: the next page is on another host; not followed"),
                    ));
                }
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_echoed_credential_is_scrubbed() {
        let headers = [
            ("Authorization", "Bearer tok-123456"),
            ("X-Api-Key", "k-abcdef"),
            ("Content-Type", "application/json"),
        ];
        let sent = credentials(headers.iter().copied());
        let echo = "auth: Bearer tok-123456, key k-abcdef, type application/json".to_string();
        assert_eq!(
            scrub_credentials(echo, &sent),
            "auth: ***, key ***, type application/json"
        );
    }

    use super::*;

    #[test]
    fn origins_and_paths_drop_what_may_be_secret() {
        assert_eq!(
            origin_of("https://graph.example:8443/v1.0/users?$skiptoken=x"),
            Some("https://graph.example:8443")
        );
        assert_eq!(
            origin_of("https://evil.example/v1.0/users"),
            Some("https://evil.example")
        );
        assert_eq!(path_of("https://h/a/b?key=s#f"), "/a/b");
    }

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
}
