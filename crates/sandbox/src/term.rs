//! New-commerce terms (api-facts §5 "Seat release on leave"): a subscription renews every term
//! (one month or one year) from its start; a seat decrease is allowed only in the first
//! 168 hours (7 days) after the purchase or the last renewal, and otherwise can be scheduled for
//! the renewal.

use chrono::{DateTime, Duration, Months, Utc};

/// The start date a subscription without one has.
pub const DEFAULT_START: &str = "2024-01-01T00:00:00Z";

/// The cancellation window after a purchase or renewal.
pub const WINDOW: Duration = Duration::hours(168);

/// The current term of a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    /// When the current term began (the purchase or the last renewal).
    pub start: DateTime<Utc>,
    /// When it renews.
    pub renewal: DateTime<Utc>,
}

impl Term {
    /// The term running at `now` of a subscription that started at `start` (RFC 3339 or a
    /// date; unparsable means [`DEFAULT_START`]) with terms of `months` months.
    pub fn at(start: Option<&str>, months: u32, now: DateTime<Utc>) -> Term {
        let first = start
            .and_then(parse)
            .unwrap_or_else(|| parse(DEFAULT_START).unwrap_or(now));
        let months = months.max(1);
        let mut begin = first;
        loop {
            let Some(next) = begin.checked_add_months(Months::new(months)) else {
                return Term {
                    start: begin,
                    renewal: begin,
                };
            };
            if next > now {
                return Term {
                    start: begin,
                    renewal: next,
                };
            }
            begin = next;
        }
    }

    /// Whether `now` is inside the cancellation window.
    pub fn in_window(&self, now: DateTime<Utc>) -> bool {
        now < self.start + WINDOW
    }
}

fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc())
        })
}

/// Months per term of `P1M`/`P1Y`, `Monthly`/`Annual`/`2-Year`/`3-Year` (default one month).
pub fn months(term: &str) -> u32 {
    match term.to_ascii_lowercase().as_str() {
        "p1y" | "annual" | "yearly" => 12,
        "p2y" | "2-year" => 24,
        "p3y" | "3-year" => 36,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_follow_each_other_from_the_start() {
        let now = parse("2026-11-30T10:00:00Z").unwrap();
        let t = Term::at(Some("2024-01-15"), 1, now);
        assert_eq!(t.start, parse("2026-11-15").unwrap());
        assert_eq!(t.renewal, parse("2026-12-15").unwrap());
        assert!(!t.in_window(now));
        let t = Term::at(Some("2026-11-28T00:00:00Z"), 12, now);
        assert!(t.in_window(now));
        assert_eq!(t.renewal, parse("2027-11-28").unwrap());
        let t = Term::at(None, 1, now);
        assert_eq!(t.start, parse("2026-11-01").unwrap());
    }
}
