//! When to retry a failed attempt: transient failures only, within the policy's attempts, after
//! an exponential, linear or fixed delay with jitter; a vendor's `Retry-After` wins.

use std::time::Duration;

use tenure_runbook::duration::HumanDuration;
use tenure_runbook::plan::{Backoff, RetryPolicy};

/// The policy when a step gives none: 3 attempts, exponential from 1 s, capped at 5 min.
pub fn default_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        backoff: Backoff::Exponential,
        delay: HumanDuration(Duration::from_secs(1)),
        max_delay: HumanDuration(Duration::from_secs(300)),
    }
}

/// How long to wait before the attempt after `failed_attempt` (1-based), or `None` when the
/// policy's attempts are used up. `jitter` is a number in `[0, 1)` from the caller's random
/// source (injected so tests are exact): the computed delay is scaled into `[50%, 100%]` of
/// itself, so many failing runs do not retry in lockstep. A `retry_after` from the vendor is
/// used as given, never shortened.
pub fn next_delay(
    policy: &RetryPolicy,
    failed_attempt: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Option<Duration> {
    if failed_attempt >= policy.attempts {
        return None;
    }
    if let Some(after) = retry_after {
        return Some(after);
    }
    let base = policy.delay.0;
    let n = failed_attempt.max(1);
    let raw = match policy.backoff {
        Backoff::Exponential => base.saturating_mul(1u32.checked_shl(n - 1).unwrap_or(u32::MAX)),
        Backoff::Linear => base.saturating_mul(n),
        Backoff::Fixed => base,
    };
    let capped = raw.min(policy.max_delay.0);
    let factor = 0.5 + 0.5 * jitter.clamp(0.0, 1.0);
    Some(capped.mul_f64(factor))
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
    fn exponential_doubles_and_caps() {
        let p = policy(Backoff::Exponential);
        let d: Vec<u64> = (1..5)
            .map(|a| next_delay(&p, a, None, 1.0).unwrap().as_secs())
            .collect();
        assert_eq!(d, [10, 20, 40, 60]);
        assert_eq!(next_delay(&p, 5, None, 1.0), None, "five attempts in all");
    }

    #[test]
    fn linear_fixed_and_jitter() {
        assert_eq!(
            next_delay(&policy(Backoff::Linear), 3, None, 1.0),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            next_delay(&policy(Backoff::Fixed), 4, None, 1.0),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            next_delay(&policy(Backoff::Fixed), 1, None, 0.0),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn retry_after_wins_even_past_the_cap() {
        let p = policy(Backoff::Exponential);
        assert_eq!(
            next_delay(&p, 1, Some(Duration::from_secs(120)), 0.3),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            next_delay(&p, 5, Some(Duration::from_secs(1)), 0.3),
            None,
            "but not past the attempts"
        );
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy {
            attempts: 1000,
            ..policy(Backoff::Exponential)
        };
        assert_eq!(
            next_delay(&p, 999, None, 1.0),
            Some(Duration::from_secs(60))
        );
    }
}
