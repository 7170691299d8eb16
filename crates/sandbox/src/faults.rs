//! Fault injection: per-endpoint rules that answer 429 (with `Retry-After`), 500 or 503, add
//! latency, or drop the connection, each at a rate, from a seeded random source so a test run
//! is repeatable. Rules whose path starts with `/smtp` apply to the SMTP listener instead
//! (`method` is the SMTP command: `MAIL`, `RCPT` or `DATA`) and answer 421, 450, 451, 452,
//! 550, 552, 553 or 554.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::shared::Shared;

/// One rule, as posted to `/_sandbox/faults`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultRule {
    /// Path prefix the rule applies to, e.g. `/graph.microsoft.com/v1.0/users`.
    pub path: String,
    /// Only this method (for `/smtp`: `MAIL`, `RCPT` or `DATA`), if set.
    pub method: Option<String>,
    /// 429, 500 or 503 (for `/smtp`: an SMTP reply code); none means latency or drop only.
    pub status: Option<u16>,
    /// Seconds for `Retry-After` on a 429 (or 503).
    pub retry_after: Option<u64>,
    /// Probability from 0 to 1 that a matching request is hit.
    pub rate: f64,
    /// Added delay for a hit.
    pub latency_ms: u64,
    /// Close the connection instead of answering.
    pub drop: bool,
}

/// The SMTP replies a `/smtp` rule may give.
const SMTP_STATUSES: &[u16] = &[421, 450, 451, 452, 550, 552, 553, 554];

/// The active rules and their random source.
pub struct Faults {
    rules: Vec<FaultRule>,
    rng: StdRng,
    hits: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Vec::new(),
            rng: StdRng::seed_from_u64(0),
            hits: 0,
        }
    }
}

/// The body of `POST /_sandbox/faults`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Seed for the random source.
    pub seed: u64,
    /// Rules; empty clears all.
    pub rules: Vec<FaultRule>,
}

impl Faults {
    /// Replaces the rules, checking them.
    pub fn set(&mut self, config: FaultConfig) -> Result<(), String> {
        for r in &config.rules {
            if let Some(s) = r.status {
                if r.path.starts_with("/smtp") {
                    if !SMTP_STATUSES.contains(&s) {
                        return Err(format!(
                            "SMTP status {s} is not one of 421, 450, 451, 452, 550, 552, 553, 554"
                        ));
                    }
                } else if ![429, 500, 503].contains(&s) {
                    return Err(format!("status {s} is not one of 429, 500, 503"));
                }
            }
            if !(0.0..=1.0).contains(&r.rate) {
                return Err(format!("rate {} is not between 0 and 1", r.rate));
            }
            if !r.path.starts_with('/') {
                return Err(format!("path `{}` must start with /", r.path));
            }
        }
        self.rules = config.rules;
        self.rng = StdRng::seed_from_u64(config.seed);
        self.hits = 0;
        Ok(())
    }

    /// How many requests a rule hit since the rules were last set.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// The current rules.
    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// The rule that hits SMTP command `verb` (`MAIL`, `RCPT`, `DATA`), if any.
    pub fn hit_smtp(&mut self, verb: &str) -> Option<FaultRule> {
        let rule = self
            .rules
            .iter()
            .find(|r| {
                r.path.starts_with("/smtp")
                    && r.method
                        .as_deref()
                        .is_none_or(|m| m.eq_ignore_ascii_case(verb))
            })?
            .clone();
        self.roll(rule)
    }

    fn roll(&mut self, rule: FaultRule) -> Option<FaultRule> {
        let hit = self.rng.random::<f64>() < rule.rate;
        self.hits += u64::from(hit);
        hit.then_some(rule)
    }

    fn hit(&mut self, path: &str, method: &str) -> Option<FaultRule> {
        let rule = self.rules.iter().find(|r| {
            !r.path.starts_with("/smtp")
                && path.starts_with(&r.path)
                && r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        let rule = rule.clone();
        self.roll(rule)
    }
}

/// Middleware: applies the first matching rule to vendor requests.
pub async fn inject(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let hit = {
        let mut f = s.faults.lock().unwrap_or_else(|p| p.into_inner());
        if f.rules.is_empty() {
            None
        } else {
            f.hit(req.uri().path(), req.method().as_str())
        }
    };
    let Some(rule) = hit else {
        return next.run(req).await;
    };
    if rule.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(rule.latency_ms)).await;
    }
    if rule.drop {
        // Headers go out, then the body fails: the client sees the connection close mid-response.
        let stream = futures_util::stream::once(async {
            Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "sandbox fault: dropped",
            ))
        });
        return Response::builder()
            .status(StatusCode::OK)
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let Some(status) = rule.status.and_then(|s| StatusCode::from_u16(s).ok()) else {
        return next.run(req).await;
    };
    let path = req.uri().path().to_string();
    let body = if path.starts_with("/api.pax8.com") {
        json!({"type": "Error", "message": status.canonical_reason(), "instance": path, "status": status.as_u16(), "details": []})
    } else if path.starts_with("/api.partnercenter.microsoft.com") {
        json!({"statusCode": status.as_u16(), "message": format!("Rate limit is exceeded. Try again in {} seconds.", rule.retry_after.unwrap_or(1))})
    } else {
        let code = match status.as_u16() {
            429 => "TooManyRequests",
            503 => "ServiceNotAvailable",
            _ => "InternalServerError",
        };
        json!({"error": {"code": code, "message": format!("Sandbox fault: {}", status.canonical_reason().unwrap_or(""))}})
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(secs) = rule.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    resp
}
