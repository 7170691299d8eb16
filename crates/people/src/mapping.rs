//! `[sync.map]`: from a source's record to a [`Person`]. Each target is a template over the
//! record's fields (`{{employee_number}}`, `{{first}} {{last}}`, `{{[First Name]}}` for a
//! column with a space) or a constant (`AU`), rendered with the runbook language's template
//! engine ([`tenure_runbook::template::Renderer`], Handlebars in strict mode; a field a given
//! record lacks renders empty, a field no record has is a configuration error).
//!
//! Targets: `key` (required: the person's stable key), `active` (true/yes/1/active/current/
//! employed or false/no/0/inactive/terminated/left; unmapped: everyone listed is active), the
//! Entra attributes in [`ENTRA_ATTRIBUTES`] (any letter case) go to [`Person::attributes`],
//! anything else to [`Person::extra`]. Values are trimmed and empty values are absent. A record
//! that cannot be mapped (an unreadable `active`, a control character, a key seen twice) gets
//! a warning naming its origin and, when its key renders, is kept *held* ([`Person::held`]):
//! nothing is done to that person's account, and it is never taken for a leaver. A record
//! without a key is skipped. None of this stops the sync.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Map, Value};
use tenure_runbook::template::{analyze, Renderer, Template, HELPERS};

use crate::source::Record;
use crate::Person;

/// The Entra attributes a mapping may set, by their Graph names.
pub const ENTRA_ATTRIBUTES: &[&str] = &[
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "department",
    "usageLocation",
    "employeeId",
    "mail",
    "userPrincipalName",
    "manager",
];

/// The Graph name of an Entra attribute target written in any letter case.
pub fn entra_name(target: &str) -> Option<&'static str> {
    ENTRA_ATTRIBUTES
        .iter()
        .find(|a| a.eq_ignore_ascii_case(target))
        .copied()
}

/// Why a mapping cannot be used (a configuration problem, not a record's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// No `key` target.
    #[error("[sync.map] has no `key`: map the source's stable person key, e.g. key = \"{{{{employee_number}}}}\"")]
    NoKey,
    /// A template does not parse.
    #[error("[sync.map] {target} = \"{template}\" is not a template: {message}")]
    Syntax {
        /// The target.
        target: String,
        /// The template text.
        template: String,
        /// The parser's message.
        message: String,
    },
    /// A target name is empty or appears twice in different letter cases.
    #[error("[sync.map] target `{0}` is empty or given twice")]
    Target(String),
    /// A template names a field the way a helper is called (`{{first}}`).
    #[error(
        "[sync.map] {target}: `{{{{{field}}}}}` calls the template helper `{field}`; for the \
         field of that name write `{{{{this.{field}}}}}`"
    )]
    HelperNamesField {
        /// The target.
        target: String,
        /// The helper and field name.
        field: String,
    },
    /// A template names a field that no record has.
    #[error(
        "[sync.map] {target} names the field `{field}`, which no record of the source has \
         (fields: {known})"
    )]
    UnknownField {
        /// The target.
        target: String,
        /// The field named.
        field: String,
        /// The fields the records have.
        known: String,
    },
}

/// What a target sets.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Key,
    Active,
    Attribute(&'static str),
    Extra(String),
}

/// A compiled `[sync.map]`.
#[derive(Clone, Debug)]
pub struct Mapping {
    targets: Vec<(Target, String, Template)>,
    /// Top-level record fields the templates name → the first target naming each.
    fields: BTreeMap<String, String>,
}

/// People mapped from records, and the records skipped. A record that cannot be mapped but
/// whose key renders is kept as a *held* person ([`Person::held`]), so reconciliation never
/// mistakes an unreadable row for a leaver; only a record without a usable key is dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    /// The people, in source order, keys unique; held ones among them.
    pub people: Vec<Person>,
    /// One line per skipped record or oddity, each with its origin.
    pub warnings: Vec<String>,
    /// How many records were dropped because their key rendered empty (reconciliation then
    /// deactivates no account whose person the export no longer lists: see
    /// [`crate::plan::Options::keyless`]).
    pub keyless: usize,
}

/// The attributes whose values are sign-in names or email addresses (`manager` is the
/// manager's): a display name there would be compared, and written, as an address.
const ADDRESSES: &[&str] = &["manager", "mail", "userPrincipalName"];

/// Whether `v` reads as `local@domain` (no spaces, one `@` with text on both sides).
fn is_address(v: &str) -> bool {
    match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !v.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// How many field names a configuration error lists (a source may have a million columns).
const KNOWN_SHOWN: usize = 50;

/// Whether `c` is invisible formatting a copy from a web page or a spreadsheet leaves in a
/// value: zero-width spaces and joiners, the word joiner, a byte-order mark, bidirectional
/// marks and embeddings. `E1001` and `E1001` with a zero-width space look the same to
/// everyone, so they must be the same key.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}')
}

/// `s` without [`is_invisible`] characters.
pub fn invisible_out(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(is_invisible) {
        s.chars()
            .filter(|c| !is_invisible(*c))
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// Words that mean active / inactive in `active` (compared case-insensitively).
pub const ACTIVE_WORDS: &[&str] = &["true", "yes", "y", "1", "active", "current", "employed"];
/// See [`ACTIVE_WORDS`].
pub const INACTIVE_WORDS: &[&str] = &["false", "no", "n", "0", "inactive", "terminated", "left"];

impl Mapping {
    /// Compiles `target → template`.
    pub fn new(map: &BTreeMap<String, String>) -> Result<Mapping, MappingError> {
        let mut targets = Vec::new();
        let mut fields = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for (name, text) in map {
            let trimmed = name.trim();
            let target = match trimmed {
                "key" => Target::Key,
                "active" => Target::Active,
                t => match entra_name(t) {
                    Some(a) => Target::Attribute(a),
                    None => Target::Extra(t.to_string()),
                },
            };
            let canonical = match &target {
                Target::Key => "key".to_string(),
                Target::Active => "active".to_string(),
                Target::Attribute(a) => a.to_string(),
                Target::Extra(e) => e.clone(),
            };
            if trimmed.is_empty() || !seen.insert(canonical) {
                return Err(MappingError::Target(name.clone()));
            }
            let analysis = analyze(text).map_err(|e| MappingError::Syntax {
                target: name.clone(),
                template: text.clone(),
                message: e.message,
            })?;
            for p in analysis.paths.iter().filter(|p| !p.scoped) {
                if p.segments.len() == 1
                    && p.raw == p.segments[0]
                    && HELPERS.contains(&p.raw.as_str())
                {
                    return Err(MappingError::HelperNamesField {
                        target: name.clone(),
                        field: p.raw.clone(),
                    });
                }
                if let Some(first) = p.segments.first() {
                    fields.entry(first.clone()).or_insert_with(|| name.clone());
                }
            }
            targets.push((target, name.clone(), Template::new(text.clone())));
        }
        if !targets.iter().any(|(t, _, _)| *t == Target::Key) {
            return Err(MappingError::NoKey);
        }
        Ok(Mapping { targets, fields })
    }

    /// The Entra attributes this mapping sets.
    pub fn attributes(&self) -> Vec<&'static str> {
        self.targets
            .iter()
            .filter_map(|(t, _, _)| match t {
                Target::Attribute(a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    /// Maps every record; a field the templates name that no record holds is an error (a
    /// typo in the configuration), and so is nothing else: bad records are warnings.
    pub fn map_records(&self, records: &[Record]) -> Result<Mapped, MappingError> {
        if !records.is_empty() {
            for (field, target) in &self.fields {
                if !records.iter().any(|r| r.fields.contains_key(field)) {
                    let mut known: BTreeSet<&str> = BTreeSet::new();
                    for r in records.iter().take(1000) {
                        known.extend(r.fields.keys().map(String::as_str));
                    }
                    return Err(MappingError::UnknownField {
                        target: target.clone(),
                        field: field.clone(),
                        known: {
                            let n = known.len();
                            let mut shown: Vec<&str> =
                                known.into_iter().take(KNOWN_SHOWN).collect();
                            let more = n.saturating_sub(KNOWN_SHOWN);
                            let more = format!("and {more} more");
                            if n > KNOWN_SHOWN {
                                shown.push(&more);
                            }
                            shown.join(", ")
                        },
                    });
                }
            }
        }
        let renderer = Renderer::new();
        let mut out = Mapped::default();
        let mut people: Vec<Person> = Vec::with_capacity(records.len());
        let mut by_key: HashMap<String, usize> = HashMap::new();
        for record in records {
            let person = match self.map_one(&renderer, record) {
                Ok(person) => person,
                Err(w) => {
                    // The source still lists this person: held, never taken for a leaver.
                    let Some(key) = self.key_of(&renderer, record) else {
                        out.warnings
                            .push(format!("{}: {w}; skipped", record.origin));
                        out.keyless += 1;
                        continue;
                    };
                    out.warnings.push(format!(
                        "{}: {w}; `{key}` is held (nothing is done to their account)",
                        record.origin
                    ));
                    Person {
                        key,
                        active: true,
                        origin: record.origin.clone(),
                        held: Some(w),
                        ..Person::default()
                    }
                }
            };
            if let Some(&first) = by_key.get(&person.key.to_lowercase()) {
                let held = &mut people[first];
                out.warnings.push(format!(
                    "{}: the key `{}` is also at {}; both held (nothing is done to their account)",
                    person.origin, person.key, held.origin
                ));
                if held.held.is_none() {
                    *held = Person {
                        key: person.key.clone(),
                        active: true,
                        held: Some(format!(
                            "the key is at {} and {}",
                            held.origin, person.origin
                        )),
                        origin: held.origin.clone(),
                        ..Person::default()
                    };
                }
            } else {
                by_key.insert(person.key.to_lowercase(), people.len());
                people.push(person);
            }
        }
        out.people = people;
        Ok(out)
    }

    /// The key of a record that could not be mapped, when it renders to a usable key.
    fn key_of(&self, renderer: &Renderer, record: &Record) -> Option<String> {
        let (_, _, template) = self.targets.iter().find(|(t, _, _)| *t == Target::Key)?;
        let mut ctx: Map<String, Value> = record.fields.clone();
        for field in self.fields.keys() {
            ctx.entry(field.clone())
                .or_insert_with(|| Value::String(String::new()));
        }
        let raw = renderer.render_text(template, &Value::Object(ctx)).ok()?;
        let raw = invisible_out(&raw);
        let key = raw.trim();
        (!key.is_empty() && !key.chars().any(char::is_control)).then(|| key.to_string())
    }

    fn map_one(&self, renderer: &Renderer, record: &Record) -> Result<Person, String> {
        let mut ctx: Map<String, Value> = record.fields.clone();
        for field in self.fields.keys() {
            ctx.entry(field.clone())
                .or_insert_with(|| Value::String(String::new()));
        }
        let ctx = Value::Object(ctx);
        let mut person = Person {
            active: true,
            origin: record.origin.clone(),
            ..Person::default()
        };
        let mut has_key = false;
        for (target, name, template) in &self.targets {
            let raw = renderer
                .render_text(template, &ctx)
                .map_err(|e| format!("{name}: {}", e.message))?;
            let raw = invisible_out(&raw);
            let value = raw.trim();
            if let Some(c) = value.chars().find(|c| c.is_control()) {
                return Err(format!(
                    "{name} holds a control character (U+{:04X})",
                    c as u32
                ));
            }
            if value.is_empty() {
                if *target == Target::Active {
                    return Err(
                        "active is empty: the source does not say whether they work here".into(),
                    );
                }
                continue;
            }
            match target {
                Target::Key => {
                    person.key = value.to_string();
                    has_key = true;
                }
                Target::Active => {
                    let v = value.to_ascii_lowercase();
                    person.active = if ACTIVE_WORDS.contains(&v.as_str()) {
                        true
                    } else if INACTIVE_WORDS.contains(&v.as_str()) {
                        false
                    } else {
                        return Err(format!(
                            "active is `{value}`, neither active ({}) nor inactive ({})",
                            ACTIVE_WORDS.join("/"),
                            INACTIVE_WORDS.join("/")
                        ));
                    };
                }
                Target::Attribute(a) => {
                    if ADDRESSES.contains(a) && !is_address(value) {
                        return Err(format!(
                            "{name} is `{value}`, not a sign-in name or email address"
                        ));
                    }
                    person.attributes.insert(a.to_string(), value.to_string());
                }
                Target::Extra(e) => {
                    person.extra.insert(e.clone(), value.to_string());
                }
            }
        }
        if !has_key {
            return Err("no key (it rendered empty)".into());
        }
        Ok(person)
    }
}
