//! "Not yet, look again at T": how a kind waits for a vendor that is still working (a new
//! mailbox provisioning, a bought seat on its way to the tenant) without holding a worker. An
//! attempt re-checks briefly ([`Patience::recheck`]); if the vendor is still not ready it returns
//! [`Outcome::Later`] and the engine parks the instance on a timer. Intervals double from
//! [`Patience::first`] up to [`Patience::max_interval`]; once the looks of earlier attempts add
//! up to the kind's limit it gives up with a transient error (the step's retry policy decides
//! what follows). The next attempt looks before it acts, so nothing is done twice.

use std::future::Future;
use std::time::{Duration, SystemTime};

use tenure_steps::{Outcome, StepError};

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
fn after(d: Duration) -> u64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|n| u64::try_from(n.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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
