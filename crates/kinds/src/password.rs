//! `password.generate`: a random password from the classes asked for (at least one character
//! of each). The engine journals it as `***`.

use serde_json::{json, Value};
use tenure_steps::{Call, Outcome, Registry, StepError};

/// Registers `password.generate`.
pub fn register(registry: &mut Registry) {
    registry.insert("password.generate", Generate);
}

const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const DIGITS: &str = "0123456789";
const SYMBOLS: &str = "!@#$%&*+-=?";
/// Characters people confuse when they read a password aloud or type it.
const AMBIGUOUS: &str = "0O1lI";

/// A random password of `length` with at least one character of each class given.
pub fn generate(length: usize, classes: &[&str], exclude_ambiguous: bool) -> String {
    let sets: Vec<Vec<char>> = classes
        .iter()
        .map(|c| {
            c.chars()
                .filter(|ch| !exclude_ambiguous || !AMBIGUOUS.contains(*ch))
                .collect::<Vec<char>>()
        })
        .filter(|s| !s.is_empty())
        .collect();
    if sets.is_empty() {
        return String::new();
    }
    let length = length.max(sets.len());
    let pick = |set: &[char]| set[rand::random::<u32>() as usize % set.len()];
    let mut chars: Vec<char> = sets.iter().map(|s| pick(s)).collect();
    let all: Vec<char> = sets.concat();
    while chars.len() < length {
        chars.push(pick(&all));
    }
    // Shuffle so the class order does not leak.
    for i in (1..chars.len()).rev() {
        let j = rand::random::<u32>() as usize % (i + 1);
        chars.swap(i, j);
    }
    chars.into_iter().collect()
}

/// The default password of the account kinds: every class, no ambiguous characters.
pub fn generate_default(length: usize) -> String {
    generate(length, &[UPPER, LOWER, DIGITS, SYMBOLS], true)
}

struct Generate;

impl Generate {
    async fn run(&self, call: Call<'_>) -> Result<Outcome, StepError> {
        let p = call.params;
        let flag = |name: &str| p[name].as_bool().unwrap_or(true);
        let length = p["length"].as_u64().unwrap_or(16);
        if !(8..=256).contains(&length) {
            return Err(StepError::permanent(
                "invalid_params",
                format!("`length` must be 8 to 256, not {length}"),
            ));
        }
        let classes: Vec<&str> = [
            ("uppercase", UPPER),
            ("lowercase", LOWER),
            ("digits", DIGITS),
            ("symbols", SYMBOLS),
        ]
        .into_iter()
        .filter(|(name, _)| flag(name))
        .map(|(_, set)| set)
        .collect();
        if classes.is_empty() {
            return Err(StepError::permanent(
                "invalid_params",
                "at least one of uppercase, lowercase, digits and symbols must be true",
            ));
        }
        let password = generate(length as usize, &classes, flag("exclude_ambiguous"));
        Ok(Outcome::Done(json!({"password": Value::String(password)})))
    }
}

crate::executor!(Generate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_asked_for_is_present_and_ambiguous_characters_are_not() {
        for _ in 0..200 {
            let p = generate(10, &[UPPER, DIGITS], true);
            assert_eq!(p.chars().count(), 10);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(!p
                .chars()
                .any(|c| c.is_ascii_lowercase() || AMBIGUOUS.contains(c)));
        }
    }
}
