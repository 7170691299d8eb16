//! What the engine runs for a step: the [`Executor`] trait, the [`Registry`] that maps kind
//! names to executors, and the kinds the engine itself provides: `approval` and `wait` (which
//! park the run) and `http.request`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// A boxed future, so executors can be stored as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an attempt failed, with what the retry policy needs to know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StepError {
    /// A stable code (the vendor's when it gave one).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// Whether retrying can help (timeouts, 429, 5xx, connection errors).
    pub retryable: bool,
    /// How long the vendor asked us to wait.
    pub retry_after: Option<Duration>,
}

impl StepError {
    /// A failure worth retrying.
    pub fn transient(code: &str, message: impl Into<String>) -> Self {
        StepError {
            code: code.into(),
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure retrying cannot fix.
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        StepError {
            code: code.into(),
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }
}

/// What an attempt produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Finished with these outputs.
    Done(Value),
    /// Not yet: the vendor is not ready (mailbox not provisioned, purchased seat not
    /// visible); the engine looks again at `at_ms` without holding a worker or using the
    /// step's retry budget.
    Later {
        /// When to look again (unix ms).
        at_ms: u64,
        /// What is not ready, for the journal.
        reason: String,
    },
    /// Parked until a decision or a timer; `wake_at_ms` is the timer (approval expiry or wait end).
    Park {
        /// When the timer fires (unix ms).
        wake_at_ms: u64,
        /// What to journal about it (approvers, expiry).
        detail: Value,
    },
}

/// One attempt's inputs.
pub struct Call<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The step.
    pub step: &'a str,
    /// The instance.
    pub item: u32,
    /// The attempt number (for idempotency keys: run + step + item is stable across attempts).
    pub attempt: u32,
    /// The rendered `with`.
    pub params: &'a Value,
    /// The run's template context (`tenant`, `run`, `inputs`, `vars`...).
    pub context: &'a Value,
    /// Where vendor clients record a summary of each request; the driver journals them with
    /// the attempt.
    pub requests: &'a tenure_vendors::Requests,
}

impl Call<'_> {
    /// The idempotency key of this instance: the same for every attempt.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.run_id, self.step, self.item)
    }
}

/// Runs one step kind.
pub trait Executor: Send + Sync {
    /// Performs one attempt.
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>>;
}

/// Kind name → executor.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<String, Arc<dyn Executor>>,
}

impl Registry {
    /// The engine's own kinds: `approval`, `wait`, `http.request`.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        r.insert("approval", Approval);
        r.insert("wait", Wait);
        r.insert(
            "http.request",
            HttpRequest {
                client: reqwest::Client::new(),
            },
        );
        r
    }

    /// Adds or replaces a kind.
    pub fn insert(&mut self, kind: &str, executor: impl Executor + 'static) {
        self.kinds.insert(kind.to_string(), Arc::new(executor));
    }

    /// The executor of a kind.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Executor>> {
        self.kinds.get(kind).cloned()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn duration_param(params: &Value, key: &str) -> Result<Option<Duration>, StepError> {
    match params.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(t) => tenure_runbook::duration::parse(t)
            .map(Some)
            .map_err(|e| StepError::permanent("invalid_duration", format!("`{key}`: {e}"))),
    }
}

struct Approval;

impl Executor for Approval {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let expires =
                duration_param(call.params, "expires")?.unwrap_or(Duration::from_secs(48 * 3600));
            let approvers: Vec<Value> = call.params["approvers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if approvers.is_empty() {
                return Err(StepError::permanent(
                    "no_approvers",
                    "the approval has no approvers",
                ));
            }
            Ok(Outcome::Park {
                wake_at_ms: now_ms() + expires.as_millis() as u64,
                detail: json!({"approvers": approvers, "quorum": call.params["quorum"], "on_expiry": call.params["on_expiry"], "message": call.params["message"]}),
            })
        })
    }
}

struct Wait;

impl Executor for Wait {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let wake_at_ms = if let Some(d) = duration_param(call.params, "for")? {
                now_ms() + d.as_millis() as u64
            } else if let Some(until) = call.params.get("until").and_then(Value::as_str) {
                chrono::DateTime::parse_from_rfc3339(until)
                    .map_err(|e| StepError::permanent("invalid_datetime", format!("`until`: {e}")))?
                    .timestamp_millis()
                    .max(0) as u64
            } else {
                return Err(StepError::permanent(
                    "invalid_wait",
                    "`wait` needs `until` or `for`",
                ));
            };
            Ok(Outcome::Park {
                wake_at_ms,
                detail: json!({"until_ms": wake_at_ms}),
            })
        })
    }
}

struct HttpRequest {
    client: reqwest::Client,
}

impl Executor for HttpRequest {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let p = call.params;
            let method = p["method"].as_str().unwrap_or("GET");
            let method = reqwest::Method::from_bytes(method.as_bytes())
                .map_err(|_| StepError::permanent("invalid_method", method.to_string()))?;
            let url = p["url"]
                .as_str()
                .ok_or_else(|| StepError::permanent("invalid_url", "`url` is required"))?;
            let mut req = self
                .client
                .request(method, url)
                .header("Idempotency-Key", call.idempotency_key());
            if let Some(headers) = p["headers"].as_object() {
                for (k, v) in headers {
                    if let Some(v) = v.as_str() {
                        req = req.header(k, v);
                    }
                }
            }
            if !p["json"].is_null() {
                req = req.json(&p["json"]);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| StepError::transient("connection", e.to_string()))?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|h| h.to_str().ok())
                .and_then(|s| s.parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp
                .text()
                .await
                .map_err(|e| StepError::transient("connection", e.to_string()))?;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            let expected: Option<Vec<u64>> = p["expect_status"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect());
            let ok = match &expected {
                Some(list) => list.contains(&u64::from(status)),
                None => (200..300).contains(&status),
            };
            if ok {
                return Ok(Outcome::Done(json!({"status": status, "body": body})));
            }
            let mut err = if status == 429 || status >= 500 || status == 408 {
                StepError::transient(
                    &format!("http_{status}"),
                    format!("{url} answered {status}"),
                )
            } else {
                StepError::permanent(
                    &format!("http_{status}"),
                    format!("{url} answered {status}"),
                )
            };
            err.retry_after = retry_after;
            Err(err)
        })
    }
}
