//! `http.request`: any REST call, for what no built-in kind covers. It goes through the vendors
//! layer like every other kind ([`tenure_vendors::request`]), so its requests are journaled as
//! summaries, a failed connection or a 408/429/5xx answer is transient (with the server's
//! `Retry-After` kept) and any other unexpected status permanent. Every attempt sends the same
//! `Idempotency-Key: run:step:item` (unless the runbook's `headers` give one), so a server that
//! honours it applies a repeat once.

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
        let mut headers: Vec<(String, String)> = Vec::new();
        for (k, v) in p["headers"].as_object().into_iter().flatten() {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            headers.push((k.clone(), v));
        }
        // The instance's key, unless the runbook gives its own (the server's format wins).
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
        {
            headers.push(("Idempotency-Key".into(), call.idempotency_key()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_steps::{Executor, Requests};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers one request with `response` and hands back the request's head.
    async fn one_shot(response: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            socket.shutdown().await.ok();
            String::from_utf8_lossy(&seen).to_lowercase()
        });
        (url, task)
    }

    async fn call(
        params: Value,
    ) -> (
        Result<Outcome, StepError>,
        Vec<tenure_steps::RequestSummary>,
    ) {
        let kind = HttpRequest {
            http: tenure_vendors::Client::http(),
        };
        let (ctx, requests) = (Value::Null, Requests::new());
        let result = kind
            .execute(Call {
                run_id: "r1",
                step: "hook",
                item: 3,
                attempt: 2,
                params: &params,
                context: &ctx,
                requests: &requests,
            })
            .await;
        (result, requests.take())
    }

    #[tokio::test]
    async fn sends_the_idempotency_key_and_journals_a_summary() {
        let (url, server) = one_shot(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 10\r\nconnection: close\r\n\r\n{\"id\":\"a\"}",
        )
        .await;
        let (result, summaries) = call(json!({"method": "POST", "url": format!("{url}/accounts?token=x"), "json": {"name": "ada"}, "headers": {"X-Tenant": "contoso"}})).await;
        assert_eq!(
            result.unwrap(),
            Outcome::Done(json!({"status": 201, "body": {"id": "a"}}))
        );
        let head = server.await.unwrap();
        assert!(head.starts_with("post /accounts?token=x "), "{head}");
        assert!(head.contains("idempotency-key: r1:hook:3\r\n"), "{head}");
        assert!(head.contains("x-tenant: contoso\r\n"), "{head}");
        assert_eq!(summaries.len(), 1);
        assert_eq!(
            (summaries[0].method.as_str(), summaries[0].path.as_str()),
            ("POST", "/accounts")
        );
        assert_eq!(summaries[0].status, Some(201));
    }

    #[tokio::test]
    async fn throttling_is_transient_with_its_retry_after() {
        let (url, _server) = one_shot(
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 99999999999999999999999\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await;
        let (result, _) = call(json!({"url": url})).await;
        let e = result.unwrap_err();
        assert!(e.retryable);
        assert_eq!(e.code, "http_429");
        assert_eq!(
            e.retry_after,
            Some(std::time::Duration::from_secs(u64::MAX))
        );
    }

    #[tokio::test]
    async fn other_statuses_are_permanent_unless_expected() {
        let not_found =
            "HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\ngone";
        let (url, _server) = one_shot(not_found).await;
        let e = call(json!({"url": url})).await.0.unwrap_err();
        assert!(!e.retryable);
        assert_eq!(e.code, "http_404");
        let (url, server) = one_shot(not_found).await;
        let params = json!({"url": url, "expect_status": [200, 404], "headers": {"idempotency-key": "mine"}});
        let done = call(params).await.0;
        assert_eq!(
            done.unwrap(),
            Outcome::Done(json!({"status": 404, "body": "gone"}))
        );
        let head = server.await.unwrap();
        assert_eq!(head.matches("idempotency-key:").count(), 1, "{head}");
        assert!(head.contains("idempotency-key: mine\r\n"), "{head}");
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient_and_a_bad_url_permanent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        drop(listener);
        let (result, summaries) = call(json!({"url": url})).await;
        let e = result.unwrap_err();
        assert!(e.retryable, "{e}");
        assert_eq!(e.code, "connection");
        assert_eq!(summaries[0].status, None);
        let e = call(json!({"url": "file:///etc/passwd"}))
            .await
            .0
            .unwrap_err();
        assert_eq!((e.code.as_str(), e.retryable), ("invalid_url", false));
    }
}
