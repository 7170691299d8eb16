//! The `Retry-After` header (RFC 9110 §10.2.3): delta-seconds or an HTTP-date, read without
//! ever panicking or wrapping. A vendor's value is untrusted input: a huge number saturates to
//! `Duration::from_secs(u64::MAX)` (the engine caps how long it actually waits), a date in the
//! past means "now", and anything unreadable is ignored.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// How long a `Retry-After` value asks to wait, measured from `now` for an HTTP-date.
///
/// - delta-seconds (`"120"`): that many seconds; more digits than a `u64` holds saturate to
///   `u64::MAX` seconds;
/// - an HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`, or the obsolete RFC 850 and asctime
///   forms): the time until then, zero when it has passed;
/// - anything else (empty, negative, fractional, garbage): `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: the one way `parse` fails is overflow, which saturates.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// [`parse_retry_after`] of one header value, from the current time.
pub(crate) fn retry_after_value(value: &str) -> Option<Duration> {
    parse_retry_after(value, SystemTime::now())
}

/// The `Retry-After` of a response, if it has a readable one.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_value(headers.get("retry-after")?.to_str().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wed, 21 Oct 2015 07:28:00 GMT.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(" 120 ", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("99999999", now()),
            Some(Duration::from_secs(99_999_999))
        );
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        let max = Some(Duration::from_secs(u64::MAX));
        assert_eq!(parse_retry_after("18446744073709551615", now()), max);
        assert_eq!(parse_retry_after("18446744073709551616", now()), max);
        assert_eq!(parse_retry_after(&"9".repeat(400), now()), max);
        // Whoever turns it into a deadline must saturate too; the value itself is intact.
        let d = parse_retry_after("18446744073709551615", now()).unwrap();
        assert!(now().checked_add(d).is_none());
        assert_eq!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX), u64::MAX);
    }

    #[test]
    fn http_dates_count_from_now_and_the_past_is_now() {
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now()),
            Some(Duration::from_secs(120))
        );
        // The obsolete RFC 850 and asctime forms are accepted, as RFC 9110 asks.
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:29:00 GMT", now()),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:28:30 2015", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 20 Oct 2015 07:28:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now()),
            Some(
                Duration::from_secs(253_402_300_799)
                    - now().duration_since(SystemTime::UNIX_EPOCH).unwrap()
            )
        );
    }

    #[test]
    fn unreadable_values_are_ignored() {
        for v in [
            "",
            " ",
            "-1",
            "1.5",
            "+3",
            "soon",
            "0x10",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "\u{661}\u{662}",
        ] {
            assert_eq!(parse_retry_after(v, now()), None, "{v:?}");
        }
    }

    #[test]
    fn headers_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("Retry-After", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    }
}
