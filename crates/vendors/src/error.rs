//! Vendor failures, classified for the engine's retry policy.

use std::time::Duration;

use serde_json::Value;

/// A vendor request that did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct VendorError {
    /// Worth retrying: throttling, 5xx, timeouts, dropped connections.
    pub transient: bool,
    /// The HTTP status, if a response came.
    pub status: Option<u16>,
    /// The vendor's error code (`Request_ResourceNotFound`, `AADSTS7000215`...), or
    /// `http_STATUS` / `connection` when the vendor gave none.
    pub code: String,
    /// The vendor's message, with what Tenure was doing.
    pub message: String,
    /// How long the vendor asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl VendorError {
    /// A failure before any response (refused, reset, timed out).
    pub fn connection(what: &str, e: &reqwest::Error) -> Self {
        // reqwest's Display includes the URL; keep only the kind of failure.
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "could not connect"
        } else {
            "the connection failed"
        };
        VendorError {
            transient: true,
            status: None,
            code: "connection".into(),
            message: format!("{what}: {kind}"),
            retry_after: None,
        }
    }

    /// A permanent failure Tenure detects itself (bad parameters, a refused safety rule).
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        VendorError {
            transient: false,
            status: None,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// Classifies an error response: 408, 429 and 5xx are transient; other statuses permanent.
    /// The code and message come from the vendor's error body (Graph / Exchange
    /// `{"error":{"code","message"}}`, Entra `{"error","error_description"}`, Pax8
    /// `{"type","message"}`, Partner Center `{"code","description"}`, ConnectWise
    /// `{"code","message"}`, Autotask `{"errors":[...]}`), else `http_STATUS`.
    pub fn from_response(
        what: &str,
        status: u16,
        retry_after: Option<Duration>,
        body: &str,
    ) -> Self {
        let transient = status == 408 || status == 429 || status >= 500;
        let json: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().map(str::to_string);
        let (code, message) = if let Some(e) = json.get("error").filter(|e| e.is_object()) {
            (text(&e["code"]), text(&e["message"]))
        } else if let Some(desc) = text(&json["error_description"]) {
            // "AADSTS7000215: Invalid client secret ..."
            let code = desc.split(':').next().map(str::to_string);
            (code, Some(desc))
        } else if let Some(d) = text(&json["description"]) {
            (
                json["code"]
                    .as_i64()
                    .map(|c| c.to_string())
                    .or(text(&json["code"])),
                Some(d),
            )
        } else if let Some(m) = text(&json["message"]) {
            (text(&json["code"]).or(text(&json["type"])), Some(m))
        } else if let Some(errors) = json["errors"].as_array() {
            (
                None,
                Some(
                    errors
                        .iter()
                        .filter_map(|e| {
                            e.as_str()
                                .map(str::to_string)
                                .or_else(|| text(&e["message"]))
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            )
        } else {
            (None, None)
        };
        let code = code.unwrap_or_else(|| format!("http_{status}"));
        let detail = message
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| body.chars().take(200).collect::<String>());
        VendorError {
            transient,
            status: Some(status),
            message: format!("{what}: {status} {code}: {detail}"),
            code,
            retry_after,
        }
    }

    /// Whether the vendor said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_errors_keep_the_vendor_code_and_message() {
        let e = VendorError::from_response(
            "create user",
            400,
            None,
            r#"{"error":{"code":"Request_BadRequest","message":"Another object with the same value for property userPrincipalName already exists."}}"#,
        );
        assert!(!e.transient);
        assert_eq!(e.code, "Request_BadRequest");
        assert!(e.message.contains("already exists"));
    }

    #[test]
    fn throttling_is_transient_and_keeps_retry_after() {
        let e = VendorError::from_response("list users", 429, Some(Duration::from_secs(3)), "");
        assert!(e.transient);
        assert_eq!(e.code, "http_429");
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn entra_token_errors_name_the_aadsts_code() {
        let e = VendorError::from_response(
            "token",
            401,
            None,
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
        );
        assert_eq!(e.code, "AADSTS7000215");
        assert!(!e.transient);
    }
}
