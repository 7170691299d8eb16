//! The execution interface between the engine and the step kinds: what one attempt receives
//! ([`Call`]), what it returns ([`Outcome`] or a [`StepError`]), the [`Executor`] trait every
//! kind implements, the [`Registry`] of executors by kind name, and the per-attempt request log
//! ([`Requests`] of [`RequestSummary`]) that the engine journals with the attempt.
//!
//! It lives here, beside the kinds' schemas, so that the engine (which calls executors) and the
//! kinds (which implement them over the vendors' HTTP layer) share it without depending on each
//! other. Like the rest of this crate it does no I/O: no runtime, no HTTP client.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

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
    /// Finished with these outputs: exactly the kind's declared output names.
    Done(Value),
    /// Parked until a decision or a timer; `wake_at_ms` is the timer (approval expiry or wait end).
    /// Only the engine's own kinds (`approval`, `wait`) park.
    Park {
        /// When the timer fires (unix ms).
        wake_at_ms: u64,
        /// What to journal about it (approvers, expiry).
        detail: Value,
    },
    /// The vendor is not ready yet (a mailbox still provisioning, a bought seat not visible):
    /// look again at `at_ms`. The engine frees the worker and parks the instance on a timer,
    /// without spending the step's retries meant for errors; the next attempt must find what
    /// this one did (look before you act).
    Later {
        /// When to look again (unix ms).
        at_ms: u64,
        /// What is not ready, for the journal.
        reason: String,
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
    /// Where vendor clients record a summary of each request; the engine journals them with
    /// the attempt.
    pub requests: &'a Requests,
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

/// Kind name → executor. The engine registers its own kinds (`approval`, `wait`), the vendor
/// kinds crate registers the rest; a front end assembles both.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<String, Arc<dyn Executor>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a kind.
    pub fn insert(&mut self, kind: &str, executor: impl Executor + 'static) {
        self.kinds.insert(kind.to_string(), Arc::new(executor));
    }

    /// The executor of a kind.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Executor>> {
        self.kinds.get(kind).cloned()
    }

    /// Whether `kind` has an executor.
    pub fn contains(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    /// Every kind with an executor, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

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
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
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

    /// Appends a summary (and logs it at `debug`, inside the attempt's span).
    pub fn record(&self, summary: RequestSummary) {
        tracing::debug!(
            method = %summary.method,
            path = %summary.path,
            status = ?summary.status,
            duration_ms = summary.duration_ms,
            "vendor request"
        );
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_log_hands_over_each_summary_once_in_order() {
        let log = Requests::new();
        let shared = log.clone();
        for path in ["/a", "/b"] {
            shared.record(RequestSummary::new("GET", path, Some(200), Instant::now()));
        }
        let taken: Vec<String> = log.take().into_iter().map(|s| s.path).collect();
        assert_eq!(taken, ["/a", "/b"]);
        assert!(log.take().is_empty());
    }

    #[test]
    fn the_idempotency_key_ignores_the_attempt() {
        let (params, ctx, log) = (Value::Null, Value::Null, Requests::new());
        let call = |attempt| Call {
            run_id: "r1",
            step: "buy",
            item: 2,
            attempt,
            params: &params,
            context: &ctx,
            requests: &log,
        };
        assert_eq!(call(1).idempotency_key(), "r1:buy:2");
        assert_eq!(call(7).idempotency_key(), call(1).idempotency_key());
    }
}
