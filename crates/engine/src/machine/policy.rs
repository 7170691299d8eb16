//! The machine's retry decisions: a transient error is retried within the step's budget after
//! a backoff with jitter; throttling (a Retry-After) and a kind's "not yet" are waited out
//! without using the budget, each wait capped at [`MAX_WAIT`]; nothing waits past the step's
//! deadline. Jitter comes from the run's seed, so the machine stays pure and replays exactly.

use std::time::Duration;

use tenure_runbook::duration::HumanDuration;
use tenure_runbook::plan::{Backoff, RetryPolicy};

use super::event::{Again, Failure};

/// The longest single wait for throttling or "not yet", whatever the vendor asks.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// How long a step may keep waiting out throttling, "not yet" answers and retries, from its
/// first attempt, when it sets no `timeout`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(6 * 3600);

/// The policy when a step gives none: 5 attempts, exponential from 5 s to 5 min, with jitter;
/// it survives a flaky vendor for several minutes.
pub fn default_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 5,
        backoff: Backoff::Exponential,
        delay: HumanDuration(Duration::from_secs(5)),
        max_delay: HumanDuration(Duration::from_secs(300)),
    }
}

/// A number in `[0, 1)` from the run's seed and the instance's position (splitmix64).
pub(crate) fn jitter(seed: u64, step: &str, item: u32, n: u32) -> f64 {
    let mut x = seed ^ (u64::from(item) << 32) ^ u64::from(n);
    for b in step.bytes() {
        x = x.rotate_left(5) ^ u64::from(b);
    }
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// The backoff before the retry after the `errors`-th transient error (1-based), scaled by
/// jitter into `[50%, 100%]` of itself.
pub(crate) fn backoff(policy: &RetryPolicy, errors: u32, jitter: f64) -> Duration {
    let base = policy.delay.0;
    let n = errors.max(1);
    let raw = match policy.backoff {
        Backoff::Exponential => base.saturating_mul(1u32.checked_shl(n - 1).unwrap_or(u32::MAX)),
        Backoff::Linear => base.saturating_mul(n),
        Backoff::Fixed => base,
    };
    raw.min(policy.max_delay.0)
        .mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// What to do after a failed attempt: `Ok((when, why))` to go again, `Err(reason)` to give
/// up. `errors` is the budget used so far and is counted up for an error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn after_failure(
    policy: &RetryPolicy,
    failure: &Failure,
    errors: &mut u32,
    now_ms: u64,
    deadline_at_ms: u64,
    seed: u64,
    step: &str,
    item: u32,
) -> Result<(u64, Again), String> {
    let (wait, why) =
        if let Some(after) = failure.retry_after_ms.filter(|_| failure.is_throttling()) {
            (after.min(ms(MAX_WAIT)), Again::Throttled)
        } else {
            *errors += 1;
            if *errors >= policy.attempts {
                return Err(format!(
                    "gave up after {} attempt{} with errors (retry policy: {} attempts)",
                    errors,
                    if *errors == 1 { "" } else { "s" },
                    policy.attempts
                ));
            }
            let d = backoff(policy, *errors, jitter(seed, step, item, *errors));
            (ms(d), Again::Error)
        };
    let at = now_ms.saturating_add(wait);
    if at > deadline_at_ms {
        return Err(format!(
            "the step's deadline passes before the next attempt could start ({})",
            match why {
                Again::Throttled => "the vendor kept throttling",
                _ => "errors kept coming",
            }
        ));
    }
    Ok((at, why))
}

/// When to look again after a kind's "not yet" at `at_ms`: no sooner than now, no later than
/// [`MAX_WAIT`] from now; `Err` past the deadline.
pub(crate) fn after_not_ready(at_ms: u64, now_ms: u64, deadline_at_ms: u64) -> Result<u64, String> {
    let at = at_ms.clamp(now_ms, now_ms.saturating_add(ms(MAX_WAIT)));
    if at > deadline_at_ms {
        return Err("the step's deadline passed while the vendor was not ready".into());
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            backoff,
            delay: HumanDuration(Duration::from_secs(10)),
            max_delay: HumanDuration(Duration::from_secs(60)),
        }
    }

    #[test]
    fn backoff_shapes_cap_and_jitter() {
        let p = policy(Backoff::Exponential);
        let d: Vec<u64> = (1..6).map(|n| backoff(&p, n, 1.0).as_secs()).collect();
        assert_eq!(d, [10, 20, 40, 60, 60]);
        assert_eq!(backoff(&policy(Backoff::Linear), 3, 1.0).as_secs(), 30);
        assert_eq!(backoff(&policy(Backoff::Fixed), 4, 1.0).as_secs(), 10);
        assert_eq!(backoff(&policy(Backoff::Fixed), 1, 0.0).as_secs(), 5);
        assert_eq!(backoff(&p, u32::MAX, 1.0).as_secs(), 60, "no overflow");
    }

    #[test]
    fn jitter_is_spread_and_repeatable() {
        let a = jitter(1, "s", 0, 1);
        assert_eq!(a, jitter(1, "s", 0, 1));
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, jitter(2, "s", 0, 1));
    }

    #[test]
    fn throttling_is_capped_and_does_not_use_the_budget() {
        let p = policy(Backoff::Exponential);
        let mut f = Failure::transient("429", "slow down");
        f.retry_after_ms = Some(u64::MAX);
        let mut errors = 0;
        let (at, why) = after_failure(&p, &f, &mut errors, 1_000, u64::MAX, 0, "s", 0).unwrap();
        assert_eq!((at, why, errors), (1_000 + 900_000, Again::Throttled, 0));
        assert!(
            after_failure(&p, &f, &mut errors, 1_000, 500_000, 0, "s", 0).is_err(),
            "not past the deadline"
        );
    }

    #[test]
    fn errors_use_the_budget() {
        let p = policy(Backoff::Exponential);
        let f = Failure::transient("500", "oops");
        let mut errors = 0;
        for _ in 0..4 {
            assert!(after_failure(&p, &f, &mut errors, 0, u64::MAX, 0, "s", 0).is_ok());
        }
        assert!(after_failure(&p, &f, &mut errors, 0, u64::MAX, 0, "s", 0).is_err());
        assert_eq!(errors, 5);
    }
}
