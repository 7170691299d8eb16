//! Durations as authors write them: `500ms`, `30s`, `10m`, `48h`, `7d`, or combined (`1h30m`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration parsed from the runbook's text form; serializes back to that form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nothing was written.
    #[error("empty duration")]
    Empty,
    /// A number was not followed by a unit.
    #[error("`{0}` has no unit (use ms, s, m, h or d)")]
    MissingUnit(String),
    /// An unknown unit.
    #[error("unknown unit `{unit}` in `{text}` (use ms, s, m, h or d)")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole duration text.
        text: String,
    },
    /// Not a number where one was expected.
    #[error("`{0}` is not a duration such as `30s`, `10m` or `48h`")]
    Malformed(String),
    /// Larger than the engine can represent.
    #[error("`{0}` is too long")]
    Overflow(String),
}

/// Parses a duration such as `48h` or `1h30m`.
pub fn parse(text: &str) -> Result<Duration, Error> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Error::Empty);
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(Error::Malformed(t.to_string()));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| Error::Overflow(t.to_string()))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        if unit_len == 0 {
            return Err(Error::MissingUnit(t.to_string()));
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(Error::UnknownUnit {
                    unit: unit.to_string(),
                    text: t.to_string(),
                })
            }
        };
        total = n
            .checked_mul(millis_per)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| Error::Overflow(t.to_string()))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration in the largest units that divide it exactly (`48h`, `1h30m`, `500ms`).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{}", ms / size, unit));
            ms %= size;
        }
    }
    out
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_units() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("48h").unwrap(), Duration::from_secs(48 * 3600));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
    }

    #[test]
    fn rejects_malformed_text() {
        assert_eq!(parse(""), Err(Error::Empty));
        assert!(matches!(parse("48"), Err(Error::MissingUnit(_))));
        assert!(matches!(parse("4w"), Err(Error::UnknownUnit { .. })));
        assert!(matches!(parse("h"), Err(Error::Malformed(_))));
        assert!(matches!(
            parse("99999999999999999999d"),
            Err(Error::Overflow(_))
        ));
    }

    #[test]
    fn formats_round_trip() {
        for t in ["500ms", "30s", "10m", "7d", "1h30m"] {
            assert_eq!(format(parse(t).unwrap()), t);
        }
        assert_eq!(format(parse("48h").unwrap()), "2d");
    }
}
