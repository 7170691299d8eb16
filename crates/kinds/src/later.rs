//! "Not yet, look again at T": how a kind waits for a vendor that is still working (a new
//! mailbox provisioning, a bought seat on its way to the tenant) without holding a worker. An
//! attempt re-checks briefly ([`Patience::recheck`]); if the vendor is still not ready it returns
//! [`Outcome::Later`] and the engine parks the instance on a timer. Intervals double from
//! [`Patience::first`] up to [`Patience::max_interval`]; once the looks of earlier attempts add
//! up to the kind's limit it gives up with a transient error (the step's retry policy decides
//! what follows). The next attempt looks before it acts, so nothing is done twice.
//!
//! Replication lag is the same wait: a user created moments ago is not found by Graph, and
//! later still by Exchange. [`Lagged`] wraps the Microsoft kinds so that such a "not found" for
//! a user this run created looks again later instead of failing.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tenure_steps::{BoxFuture, Call, Executor, Outcome, StepError};

use crate::vendors::Vendors;

/// How long kinds wait for a vendor that is not ready yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patience {
    /// How long one attempt re-checks (every 250 ms, doubling up to 2 s) before it hands the
    /// wait to the engine.
    pub recheck: Duration,
    /// The interval before the first look again; it doubles with each attempt.
    pub first: Duration,
    /// The longest interval between two looks.
    pub max_interval: Duration,
}

impl Default for Patience {
    /// Re-check for 5 s, then look again after 15 s, 30 s, 60 s... at most every 5 minutes.
    fn default() -> Self {
        Patience {
            recheck: Duration::from_secs(5),
            first: Duration::from_secs(15),
            max_interval: Duration::from_secs(300),
        }
    }
}

impl Patience {
    /// The interval after attempt `attempt` (1-based) found the vendor not ready.
    pub fn interval(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        self.first
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_interval)
    }

    /// How long the looks before attempt `attempt` have waited in all (about: failed attempts
    /// count as looks too).
    pub fn waited(&self, attempt: u32) -> Duration {
        (1..attempt)
            .map(|a| self.interval(a))
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// Calls `look` until it finds something, for at most [`Patience::recheck`]; `None` if the
    /// vendor is still not ready then.
    pub(crate) async fn recheck<T, F, Fut>(&self, mut look: F) -> Result<Option<T>, StepError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, StepError>>,
    {
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            if let Some(found) = look().await? {
                return Ok(Some(found));
            }
            if started.elapsed() + delay > self.recheck {
                return Ok(None);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// What attempt `attempt` returns when the vendor is still not ready: look again later,
    /// or, once earlier looks have waited `limit` in all, a transient error with `code`.
    pub(crate) fn later(
        &self,
        attempt: u32,
        limit: Duration,
        code: &str,
        reason: String,
    ) -> Result<Outcome, StepError> {
        let waited = self.waited(attempt);
        if waited >= limit {
            return Err(StepError::transient(
                code,
                format!("{reason} (looked for {}s)", waited.as_secs()),
            ));
        }
        Ok(Outcome::Later {
            at_ms: after(self.interval(attempt)),
            reason,
        })
    }
}

/// Now plus `d`, in unix ms, saturating.
pub(crate) fn after(d: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|n| u64::try_from(n.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long a kind looks again for a user this run created that Microsoft Graph does not show
/// yet (replication lag), before the "not found" stands.
pub(crate) const GRAPH_LAG: Duration = Duration::from_secs(600);
/// The same for Exchange Online, which sees a new user later than Graph (and its mailbox later
/// still).
pub(crate) const EXCHANGE_LAG: Duration = Duration::from_secs(1800);
/// A user Graph shows as created less than this long ago may still be unknown to Exchange.
const NEW_USER_SECS: i64 = 3600;
/// The parameters through which kinds name users.
const USER_PARAMS: &[&str] = &["user", "manager", "from", "trustee"];

/// Wraps a kind so that a "not found" caused by replication lag becomes "look again later".
///
/// The rule (see `docs/vendors.md`): a failure is lag only when it is a not-found (Tenure's
/// `user_not_found` / `mailbox_not_found`, Graph's `Request_ResourceNotFound`, Exchange's
/// "couldn't be found") that names a user the step was given (`user`, `manager`, `from`,
/// `trustee`) and that user is new:
///
/// - it is the `id` or `user_principal_name` output of an `entra.create_user` step of this run
///   (read from the run's context), or
/// - for Exchange only, Graph shows it with a `createdDateTime` less than an hour ago.
///
/// Such an attempt is repeated for [`Patience::recheck`], then answers [`Outcome::Later`] at
/// the usual escalating intervals, for at most [`GRAPH_LAG`] (Graph) or [`EXCHANGE_LAG`]
/// (Exchange) in all; then the original error stands, with how long it looked. Any other
/// not-found (a user this run did not create and Graph does not show) fails as before, at once.
/// Kinds look before they act, so repeating an attempt does nothing twice.
pub(crate) struct Lagged<E> {
    inner: E,
    vendors: Arc<Vendors>,
}

/// `inner`, tolerating replication lag (see [`Lagged`]).
pub(crate) fn lagged<E: Executor>(vendors: &Arc<Vendors>, inner: E) -> Lagged<E> {
    Lagged {
        inner,
        vendors: vendors.clone(),
    }
}

impl<E: Executor> Executor for Lagged<E> {
    fn execute<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<Outcome, StepError>> {
        Box::pin(self.run(call))
    }
}

/// A not-found that is replication lag: who, where, and for how long to look in all.
struct Lag {
    user: String,
    service: &'static str,
    limit: Duration,
}

impl<E: Executor> Lagged<E> {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let patience = self.vendors.patience();
        let started = std::time::Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            let mut err = match self.inner.execute(again(&call)).await {
                Err(e) => e,
                done => return done,
            };
            let Some(lag) = self.lag(&call, &err).await else {
                return Err(err);
            };
            if started.elapsed() + delay <= patience.recheck {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                continue;
            }
            let waited = patience.waited(call.attempt);
            if waited >= lag.limit {
                err.message = format!(
                    "{} (looked again for {}s in case {} had not replicated to {} yet)",
                    err.message,
                    waited.as_secs(),
                    lag.user,
                    lag.service
                );
                return Err(err);
            }
            return Ok(Outcome::Later {
                at_ms: after(patience.interval(call.attempt)),
                reason: format!(
                    "{} was created moments ago and {} does not show it yet (replication)",
                    lag.user, lag.service
                ),
            });
        }
    }

    /// Whether `err` is replication lag (see [`Lagged`]).
    async fn lag(&self, call: &Call<'_>, err: &StepError) -> Option<Lag> {
        let graph = matches!(
            err.code.as_str(),
            "user_not_found" | "Request_ResourceNotFound" | "ResourceNotFound"
        );
        let no_mailbox = err.code == "mailbox_not_found";
        let exchange = no_mailbox || err.message.contains("couldn't be found");
        if !graph && !exchange {
            return None;
        }
        let (service, limit) = if graph {
            ("Microsoft Graph", GRAPH_LAG)
        } else {
            ("Exchange Online", EXCHANGE_LAG)
        };
        let message = err.message.to_lowercase();
        let names = |param: &str, aliases: &[&str]| {
            (no_mailbox && param == "user")
                || aliases.iter().any(|a| {
                    let a = a.to_lowercase();
                    message.contains(&format!("'{a}'")) || message.contains(&format!("`{a}`"))
                })
        };
        for param in USER_PARAMS {
            let Some(name) = call.params[*param].as_str().filter(|n| !n.is_empty()) else {
                continue;
            };
            if let Some((id, upn)) = created_by_this_run(call, name) {
                if names(param, &[name, &id, &upn]) {
                    return Some(Lag {
                        user: upn,
                        service,
                        limit,
                    });
                }
            } else if exchange && names(param, &[name]) {
                if let Some(user) = self.new_in_graph(call, name).await {
                    return Some(Lag {
                        user,
                        service,
                        limit,
                    });
                }
            }
        }
        None
    }

    /// Graph may know a user Exchange does not know yet: its UPN if Graph shows it created less
    /// than an hour ago.
    async fn new_in_graph(&self, call: &Call<'_>, name: &str) -> Option<String> {
        let client = self.vendors.client(call).ok()?;
        let u = crate::entra::find_user(&client, name).await.ok()??;
        let created = u["createdDateTime"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())?;
        let age = chrono::Utc::now().signed_duration_since(created);
        (age < chrono::Duration::seconds(NEW_USER_SECS))
            .then(|| u["userPrincipalName"].as_str().unwrap_or(name).to_string())
    }
}

/// The same call again (a repeat of the attempt within it).
fn again<'a>(c: &Call<'a>) -> Call<'a> {
    Call {
        run_id: c.run_id,
        step: c.step,
        item: c.item,
        attempt: c.attempt,
        params: c.params,
        context: c.context,
        requests: c.requests,
    }
}

/// The `(id, user_principal_name)` of the user named `name` (by either) if an
/// `entra.create_user` step of this run created or adopted it (its outputs in the run's
/// context).
pub(crate) fn created_by_this_run(call: &Call<'_>, name: &str) -> Option<(String, String)> {
    let steps = call.context["steps"].as_object()?;
    steps
        .values()
        .flat_map(|s| match &s["outputs"] {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            one => vec![one],
        })
        .find_map(|o| {
            let (id, upn) = (o["id"].as_str()?, o["user_principal_name"].as_str()?);
            (o["created"].is_boolean()
                && (id.eq_ignore_ascii_case(name) || upn.eq_ignore_ascii_case(name)))
            .then(|| (id.to_string(), upn.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_double_up_to_the_cap_and_never_overflow() {
        let p = Patience::default();
        let secs: Vec<u64> = (1..=7).map(|a| p.interval(a).as_secs()).collect();
        assert_eq!(secs, [15, 30, 60, 120, 240, 300, 300]);
        assert_eq!(p.interval(u32::MAX), Duration::from_secs(300));
        assert_eq!(p.waited(1), Duration::ZERO);
        assert_eq!(p.waited(4), Duration::from_secs(15 + 30 + 60));
    }

    #[test]
    fn later_until_the_limit_then_a_transient_error() {
        let p = Patience::default();
        let limit = Duration::from_secs(600);
        let before = after(Duration::ZERO);
        match p.later(2, limit, "seat_pending", "not yet".into()) {
            Ok(Outcome::Later { at_ms, reason }) => {
                assert!(at_ms >= before + 30_000 && at_ms < before + 31_000 + 1_000);
                assert_eq!(reason, "not yet");
            }
            other => panic!("{other:?}"),
        }
        // 15+30+60+120+240+300 = 765 s >= 600 s before attempt 7.
        let e = p
            .later(7, limit, "seat_pending", "not yet".into())
            .unwrap_err();
        assert!(e.retryable);
        assert_eq!(e.code, "seat_pending");
        assert_eq!(e.message, "not yet (looked for 765s)");
        assert!(
            p.later(6, limit, "x", String::new()).is_ok(),
            "465 s < 600 s"
        );
    }

    #[test]
    fn users_created_by_this_run_are_found_by_id_or_upn_in_any_create_output() {
        let ctx = serde_json::json!({"steps": {
            "create": {"outputs": {"id": "u-1", "user_principal_name": "Ada@contoso.example", "password": "***", "created": true}},
            "many": {"outputs": [{"id": "u-2", "user_principal_name": "b@contoso.example", "password": "***", "created": false}]},
            "pending": {"outputs": {"id": null, "user_principal_name": null, "password": null, "created": null}},
            "other": {"outputs": {"id": "g-1", "added": true}}
        }});
        let (params, log) = (Value::Null, tenure_steps::Requests::new());
        let call = Call {
            run_id: "r",
            step: "s",
            item: 0,
            attempt: 1,
            params: &params,
            context: &ctx,
            requests: &log,
        };
        let ada = Some(("u-1".to_string(), "Ada@contoso.example".to_string()));
        assert_eq!(created_by_this_run(&call, "ada@CONTOSO.example"), ada);
        assert_eq!(created_by_this_run(&call, "u-1"), ada);
        assert_eq!(created_by_this_run(&call, "u-2").unwrap().0, "u-2");
        assert_eq!(created_by_this_run(&call, "g-1"), None);
        assert_eq!(created_by_this_run(&call, "nobody@contoso.example"), None);
    }

    #[tokio::test]
    async fn recheck_finds_what_appears_within_the_window_only() {
        // Looks at about 0, 250 and 750 ms; the next would come after the 1 s window.
        let p = Patience {
            recheck: Duration::from_secs(1),
            ..Patience::default()
        };
        let mut looks = 0;
        let found = p
            .recheck(|| {
                looks += 1;
                let n = looks;
                async move { Ok((n == 3).then_some(n)) }
            })
            .await
            .unwrap();
        assert_eq!(found, Some(3));
        let mut looks = 0;
        let never: Option<()> = p
            .recheck(|| {
                looks += 1;
                async { Ok(None) }
            })
            .await
            .unwrap();
        assert_eq!((never, looks), (None, 3));
    }
}
