//! The step kinds the engine runs itself, because they park the run instead of calling a
//! vendor: `approval` (until approvers decide or the request expires), `wait` (until a time)
//! and `runbook.call` (until the run it starts ends: the driver prepares that run and the
//! store starts it in the transaction that parks the step).
//! They implement the execution interface of `tenure-steps` like every other kind; the vendor
//! kinds (and `http.request`) come from `tenure-kinds`, which a front end registers beside these.
//! Their declared outputs (`decision`, `decided_by`, `comment`; `resumed_at`) are produced
//! when the run is woken, not by the attempt that parks it.

use std::time::Duration;

use serde_json::{json, Value};
use tenure_steps::{BoxFuture, Call, Executor, Outcome, Registry, StepError};

/// Registers the engine's own kinds, `approval`, `wait` and `runbook.call`, in `registry`.
pub fn register(registry: &mut Registry) {
    registry.insert("approval", Approval);
    registry.insert("wait", Wait);
    registry.insert("runbook.call", CallRunbook);
}

/// A registry holding only the engine's own kinds (see [`register`]).
pub fn registry() -> Registry {
    let mut r = Registry::new();
    register(&mut r);
    r
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `now + d` in unix ms, saturating instead of wrapping.
fn after(d: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
            // Blank approvers (an optional input not given) are left out, and one person named
            // twice counts once: a gate no one could decide fails now, not at its expiry.
            let mut approvers: Vec<String> = Vec::new();
            for a in call.params["approvers"].as_array().into_iter().flatten() {
                let a = a.as_str().unwrap_or_default().trim();
                if !a.is_empty() && !approvers.iter().any(|b| b.eq_ignore_ascii_case(a)) {
                    approvers.push(a.to_string());
                }
            }
            if approvers.is_empty() {
                return Err(StepError::permanent(
                    "no_approvers",
                    "the approval has no approvers (each rendered empty)",
                ));
            }
            let quorum = call.params["quorum"].as_u64().unwrap_or(1);
            if quorum > approvers.len() as u64 {
                return Err(StepError::permanent(
                    "no_approvers",
                    format!(
                        "the approval needs {quorum} approvals but names {} approver(s): {}",
                        approvers.len(),
                        approvers.join(", ")
                    ),
                ));
            }
            // Who requested the run (the ticket's requester, the API token's name, the
            // operator): the machine refuses their decision.
            let requested_by = call.context["trigger"]["by"].as_str();
            Ok(Outcome::Park {
                wake_at_ms: after(expires),
                detail: json!({"approvers": approvers, "quorum": call.params["quorum"], "on_expiry": call.params["on_expiry"], "message": call.params["message"], "requested_by": requested_by}),
            })
        })
    }
}

struct Wait;

impl Executor for Wait {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let wake_at_ms = if let Some(d) = duration_param(call.params, "for")? {
                after(d)
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

/// `runbook.call`: checks its parameters and parks; the driver turns the park into the run
/// it calls (see `driver.rs`), and the step's outputs come when that run ends.
struct CallRunbook;

impl Executor for CallRunbook {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(async move {
            let Some(runbook) = call.params["runbook"].as_str().filter(|r| !r.is_empty()) else {
                return Err(StepError::permanent(
                    "invalid_call",
                    "`runbook` must name the runbook to call",
                ));
            };
            let inputs = match &call.params["inputs"] {
                Value::Null => json!({}),
                Value::Object(map) => Value::Object(map.clone()),
                other => {
                    return Err(StepError::permanent(
                        "invalid_call",
                        format!("`inputs` must be a mapping, not {other}"),
                    ))
                }
            };
            Ok(Outcome::Park {
                wake_at_ms: 0,
                detail: json!({"runbook": runbook, "inputs": inputs}),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_steps::Requests;

    async fn run(kind: &str, params: Value) -> Result<Outcome, StepError> {
        let (ctx, requests) = (Value::Null, Requests::new());
        registry()
            .get(kind)
            .unwrap()
            .execute(Call {
                run_id: "r",
                step: "s",
                item: 0,
                attempt: 1,
                params: &params,
                context: &ctx,
                requests: &requests,
            })
            .await
    }

    #[tokio::test]
    async fn wait_parks_until_its_time() {
        let before = now_ms();
        let Ok(Outcome::Park { wake_at_ms, .. }) = run("wait", json!({"for": "2s"})).await else {
            panic!("wait parks");
        };
        assert!((before + 2_000..before + 3_000).contains(&wake_at_ms));
        let until = run("wait", json!({"until": "2030-01-01T00:00:00Z"})).await;
        assert!(
            matches!(
                until,
                Ok(Outcome::Park {
                    wake_at_ms: 1_893_456_000_000,
                    ..
                })
            ),
            "{until:?}"
        );
        let e = run("wait", json!({})).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.retryable), ("invalid_wait", false));
    }

    #[tokio::test]
    async fn approval_parks_until_expiry_and_needs_approvers() {
        let before = now_ms();
        let parked = run(
            "approval",
            json!({"approvers": ["a@x.example"], "expires": "1h", "message": "ok?"}),
        )
        .await;
        let Ok(Outcome::Park { wake_at_ms, detail }) = parked else {
            panic!("approval parks: {parked:?}");
        };
        assert!((before + 3_600_000..before + 3_601_000).contains(&wake_at_ms));
        assert_eq!(detail["approvers"], json!(["a@x.example"]));
        let e = run("approval", json!({"approvers": [], "message": "ok?"}))
            .await
            .unwrap_err();
        assert_eq!(e.code, "no_approvers");
        let e = run(
            "approval",
            json!({"approvers": ["", "  "], "message": "ok?"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "no_approvers");
        let e = run(
            "approval",
            json!({"approvers": ["a@x.example", "A@x.example", ""], "quorum": 2, "message": "ok?"}),
        )
        .await
        .unwrap_err();
        assert!(e.message.contains("needs 2 approvals but names 1"), "{e:?}");
        let Ok(Outcome::Park { detail, .. }) = run(
            "approval",
            json!({"approvers": [" a@x.example ", ""], "message": "ok?"}),
        )
        .await
        else {
            panic!("approval parks");
        };
        assert_eq!(detail["approvers"], json!(["a@x.example"]));
    }

    #[tokio::test]
    async fn a_call_parks_with_its_runbook_and_inputs() {
        let parked = run(
            "runbook.call",
            json!({"runbook": "child", "inputs": {"a": 1}}),
        )
        .await;
        let Ok(Outcome::Park { detail, .. }) = parked else {
            panic!("a call parks: {parked:?}");
        };
        assert_eq!(detail, json!({"runbook": "child", "inputs": {"a": 1}}));
        let e = run("runbook.call", json!({"runbook": "c", "inputs": [1]}))
            .await
            .unwrap_err();
        assert_eq!((e.code.as_str(), e.retryable), ("invalid_call", false));
        let e = run("runbook.call", json!({})).await.unwrap_err();
        assert_eq!(e.code, "invalid_call");
    }

    #[test]
    fn deadlines_saturate_instead_of_wrapping() {
        assert_eq!(after(Duration::from_secs(u64::MAX)), u64::MAX);
        assert!(after(Duration::ZERO) >= now_ms().saturating_sub(1_000));
    }
}
