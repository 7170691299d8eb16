//! Sending an approval request to its approvers, wherever the approval's attempt runs
//! (`tenure serve`'s workers, `tenure worker`, a foreground `tenure run`): [`wrap`] replaces
//! the registry's `approval` executor with one that, once the request is made (the attempt
//! parks), sends each approver their own signed link through the registered `notify.teams`
//! and `notify.email` executors, as the step's `notify:` says.
//!
//! - Teams: an Adaptive Card per approver (the message; facts: runbook, person, tenant, run, for,
//!   expires; `Approve` / `Deny` buttons as `Action.OpenUrl` to the approver's page).
//! - Email: one message per approver with the two links.
//!
//! A message the vendor answers with a transient error (throttling, 5xx) is tried again, up
//! to 5 tries, after its `Retry-After` (each pause at most 5 s). A failed notification does
//! not fail the approval and does not stop the others: the request still parks, every other
//! approver is still sent theirs, and the failure is journaled with the request (`APPROVER
//! via email failed: WHY`, shown by `tenure log`) and logged as a warning, so an operator sees
//! who was not reached (the approver can still decide from the API or `tenure approve`). The
//! requester is not sent a link (they may not decide). Links are bearer credentials: they
//! appear only in the messages themselves; the journal keeps who was notified through what
//! and the requests' method, path and status.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};

use super::links::{Claim, Links};

/// Where the notifier finds its links once the database is open (the key is derived from the
/// database's secret key, which the registry is built before).
pub type LinkSlot = Arc<OnceLock<Links>>;

/// Wraps the `approval` executor of `registry` (it must be registered) so that approvers are
/// notified through the registry's `notify.*` executors with links from `links`.
pub fn wrap(registry: &mut Registry, links: LinkSlot) {
    let Some(inner) = registry.get("approval") else {
        return;
    };
    let notifier = Notifier {
        inner,
        teams: registry.get("notify.teams"),
        email: registry.get("notify.email"),
        links,
    };
    registry.insert("approval", notifier);
}

struct Notifier {
    inner: Arc<dyn Executor>,
    teams: Option<Arc<dyn Executor>>,
    email: Option<Arc<dyn Executor>>,
    links: LinkSlot,
}

impl Executor for Notifier {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let (run_id, step, attempt, params, context, requests) = (
                call.run_id,
                call.step,
                call.attempt,
                call.params,
                call.context,
                call.requests,
            );
            let outcome = self.inner.execute(call).await?;
            let Outcome::Park {
                wake_at_ms,
                mut detail,
            } = outcome
            else {
                return Ok(outcome);
            };
            let request = Request {
                run_id,
                step,
                attempt,
                params,
                context,
                requests,
                expires_at_ms: wake_at_ms,
                detail: &detail,
            };
            let notified = self.notify(&request).await;
            detail["notified"] = json!(notified);
            Ok(Outcome::Park { wake_at_ms, detail })
        })
    }
}

/// How many times in all one message is tried while the vendor answers with a transient
/// error (throttling, 5xx, a dropped connection).
const SEND_TRIES: u32 = 5;

/// The longest pause between two tries, whatever `Retry-After` the vendor asks for: a message
/// is sent while the approval's attempt runs, so the pauses stay short.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// Sends one message through `executor`, trying again (up to [`SEND_TRIES`] in all) after a
/// transient error: the vendor's `Retry-After`, else 250 ms doubling, each pause at most
/// [`MAX_PAUSE`]. The message is the same instance each time (same idempotency key). Without
/// this, a vendor's throttling (weather, to the engine) would leave an approver without the
/// link for good.
async fn send(executor: &dyn Executor, call: Call<'_>) -> Result<Outcome, StepError> {
    let mut tried = 0;
    loop {
        let again = Call { ..call };
        tried += 1;
        match executor.execute(again).await {
            Err(e) if e.retryable && tried < SEND_TRIES => {
                let pause = pause(&e, tried);
                tracing::debug!(
                    step = call.step,
                    tried,
                    ?pause,
                    "notification failed, trying again: {e}"
                );
                tokio::time::sleep(pause).await;
            }
            result => return result,
        }
    }
}

/// The pause after the `tried`-th failed try (from 1).
fn pause(error: &StepError, tried: u32) -> Duration {
    error
        .retry_after
        .unwrap_or(Duration::from_millis(250u64 << tried.min(16)))
        .min(MAX_PAUSE)
}

/// One approval request being sent.
struct Request<'a> {
    run_id: &'a str,
    step: &'a str,
    attempt: u32,
    params: &'a Value,
    context: &'a Value,
    requests: &'a tenure_steps::Requests,
    expires_at_ms: u64,
    detail: &'a Value,
}

/// The channels a step's `notify:` names (default: email).
fn channels(params: &Value) -> Vec<String> {
    match &params["notify"] {
        Value::Null => vec!["email".into()],
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The person a run is about: the first of its `user`, `upn`, `person`, `employee`, `email`
/// inputs that is text.
pub fn person(inputs: &Value) -> Option<String> {
    ["user", "upn", "person", "employee", "email"]
        .iter()
        .find_map(|k| inputs.get(*k).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

/// A unix time (ms) as `YYYY-MM-DD HH:MM UTC`.
pub fn when(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms.min(i64::MAX as u64) as i64)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

impl Notifier {
    async fn notify(&self, r: &Request<'_>) -> Vec<String> {
        let channels = channels(r.params);
        let mut notified = Vec::new();
        if channels.is_empty() {
            return notified;
        }
        let Some(links) = self.links.get() else {
            tracing::warn!(
                run = r.run_id,
                step = r.step,
                "approval links are not configured: nobody was notified"
            );
            notified.push("nobody: approval links are not configured".to_string());
            return notified;
        };
        let requester = r.detail["requested_by"].as_str().unwrap_or_default();
        let approvers: Vec<&str> = r.detail["approvers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for approver in approvers {
            if approver.trim().eq_ignore_ascii_case(requester.trim()) {
                notified.push(format!("{approver}: not sent (they requested the run)"));
                continue;
            }
            if approver.chars().any(char::is_control) {
                notified.push(format!(
                    "{}: not sent (not an address)",
                    approver.escape_debug()
                ));
                continue;
            }
            let claim = Claim {
                run: r.run_id.to_string(),
                step: r.step.to_string(),
                attempt: r.attempt,
                approver: approver.to_string(),
                expires_at_ms: r.expires_at_ms,
            };
            let url = links.url(&claim);
            for channel in &channels {
                let (executor, params) = match channel.as_str() {
                    "teams" => (&self.teams, self.card(r, approver, &url)),
                    "email" => (&self.email, self.email(r, approver, &url)),
                    other => {
                        notified.push(format!("{approver} via {other} failed: unknown channel"));
                        continue;
                    }
                };
                let result = match executor {
                    None => Err(StepError::permanent(
                        "not_registered",
                        format!("no notify.{channel} kind is registered"),
                    )),
                    Some(e) => {
                        // Each approver's message is its own instance (own idempotency key).
                        let step = format!("{}#notify:{channel}:{approver}", r.step);
                        send(
                            e.as_ref(),
                            Call {
                                run_id: r.run_id,
                                step: &step,
                                item: 0,
                                attempt: r.attempt,
                                params: &params,
                                context: r.context,
                                requests: r.requests,
                            },
                        )
                        .await
                    }
                };
                match result {
                    Ok(_) => notified.push(format!("{approver} via {channel}")),
                    Err(e) => {
                        // The error names the channel or mailbox, never the link.
                        let why = scrub(&e.to_string(), &url);
                        tracing::warn!(run = r.run_id, step = r.step, %approver, %channel, "could not notify an approver: {why}");
                        notified.push(format!("{approver} via {channel} failed: {why}"));
                    }
                }
            }
        }
        notified
    }

    fn facts(r: &Request<'_>, approver: &str) -> Map<String, Value> {
        let mut facts = Map::new();
        let run = &r.context["run"];
        facts.insert(
            "Runbook".into(),
            json!(run["runbook"].as_str().unwrap_or_default()),
        );
        if let Some(p) = person(&r.context["inputs"]) {
            facts.insert("Person".into(), json!(p));
        }
        let tenant = &r.context["tenant"];
        let tenant = tenant["name"]
            .as_str()
            .or(tenant["id"].as_str())
            .unwrap_or_default();
        facts.insert("Tenant".into(), json!(tenant));
        if let Some(by) = r.detail["requested_by"].as_str() {
            facts.insert("Requested by".into(), json!(by));
        }
        facts.insert("Run".into(), json!(r.run_id));
        facts.insert("For".into(), json!(approver));
        facts.insert("Expires".into(), json!(when(r.expires_at_ms)));
        facts
    }

    fn message<'a>(r: &Request<'a>) -> &'a str {
        r.params["message"].as_str().unwrap_or_default()
    }

    fn card(&self, r: &Request<'_>, approver: &str, url: &str) -> Value {
        json!({
            "title": format!("Approval needed: {}", r.context["run"]["runbook"].as_str().unwrap_or_default()),
            "message": Self::message(r),
            "facts": Self::facts(r, approver),
            "links": {"Approve": format!("{url}?decision=approve"), "Deny": format!("{url}?decision=deny")},
        })
    }

    fn email(&self, r: &Request<'_>, approver: &str, url: &str) -> Value {
        let facts: String = Self::facts(r, approver)
            .iter()
            .map(|(k, v)| format!("- **{k}**: {}\n", md_escape(v.as_str().unwrap_or_default())))
            .collect();
        let runbook = r.context["run"]["runbook"].as_str().unwrap_or_default();
        let subject = match person(&r.context["inputs"]) {
            Some(p) => format!("Approval needed: {runbook} for {p}"),
            None => format!("Approval needed: {runbook}"),
        };
        let body = format!(
            "{}\n\n{facts}\n[Approve]({url}?decision=approve) · [Deny]({url}?decision=deny)\n\nThe links open a page that shows what will happen; nothing is decided until you press a button there. They are yours alone: do not forward this message.\n",
            Self::message(r)
        );
        json!({"to": [approver], "subject": subject, "body": body})
    }
}

/// Escapes Markdown's active characters in a fact's value.
fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\`*_{}[]()#+-.!<>|~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` without the link (or its token) in it.
fn scrub(text: &str, url: &str) -> String {
    let token = url.rsplit('/').next().unwrap_or(url);
    text.replace(url, "<link>").replace(token, "***")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails with `error` the first `fails` times, then sends.
    struct Flaky {
        fails: u32,
        error: StepError,
        calls: AtomicU32,
    }

    impl Executor for Flaky {
        fn execute<'a>(&'a self, _: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
            Box::pin(async move {
                if self.calls.fetch_add(1, Ordering::SeqCst) < self.fails {
                    Err(self.error.clone())
                } else {
                    Ok(Outcome::Done(json!({})))
                }
            })
        }
    }

    async fn sent(fails: u32, error: StepError) -> (Result<Outcome, StepError>, u32) {
        let flaky = Flaky {
            fails,
            error,
            calls: AtomicU32::new(0),
        };
        let (params, context, requests) = (json!({}), json!({}), tenure_steps::Requests::new());
        let call = Call {
            run_id: "r",
            step: "approve#notify:email:a@b.example",
            item: 0,
            attempt: 1,
            params: &params,
            context: &context,
            requests: &requests,
        };
        let result = send(&flaky, call).await;
        (result, flaky.calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_throttled_message_is_sent_again_and_a_refused_one_is_not() {
        let mut throttled = StepError::transient("TooManyRequests", "slow down");
        throttled.retry_after = Some(Duration::ZERO);
        let (result, calls) = sent(2, throttled.clone()).await;
        assert!(result.is_ok());
        assert_eq!(calls, 3);
        // A vendor that keeps throttling is given up on after SEND_TRIES.
        let (result, calls) = sent(u32::MAX, throttled.clone()).await;
        assert_eq!(result.unwrap_err().code, "TooManyRequests");
        assert_eq!(calls, SEND_TRIES);
        // Pauses: the vendor's Retry-After, else a short backoff; capped either way.
        throttled.retry_after = Some(Duration::from_secs(3600));
        assert_eq!(pause(&throttled, 1), MAX_PAUSE);
        throttled.retry_after = Some(Duration::from_secs(1));
        assert_eq!(pause(&throttled, 1), Duration::from_secs(1));
        let unavailable = StepError::transient("ServiceNotAvailable", "x");
        assert_eq!(pause(&unavailable, 1), Duration::from_millis(500));
        assert_eq!(pause(&unavailable, 4), Duration::from_secs(4));
        assert_eq!(pause(&unavailable, 40), MAX_PAUSE);
        // A 5xx without Retry-After waits a short backoff; a permanent error is not repeated.
        let (result, calls) = sent(1, StepError::transient("ServiceNotAvailable", "x")).await;
        assert!(result.is_ok());
        assert_eq!(calls, 2);
        let (result, calls) = sent(1, StepError::permanent("Request_ResourceNotFound", "x")).await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn channels_default_to_email_and_people_come_from_usual_inputs() {
        assert_eq!(channels(&json!({})), ["email"]);
        assert_eq!(
            channels(&json!({"notify": ["teams", "email"]})),
            ["teams", "email"]
        );
        assert_eq!(channels(&json!({"notify": []})), Vec::<String>::new());
        assert_eq!(
            person(&json!({"x": "a", "upn": "m@c.example"})).as_deref(),
            Some("m@c.example")
        );
        assert_eq!(person(&json!({"x": "a"})), None);
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            scrub(
                "x http://h/approvals/abc.def y abc.def",
                "http://h/approvals/abc.def"
            ),
            "x <link> y ***"
        );
    }
}
