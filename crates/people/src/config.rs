//! `[[sync]]` in `tenure.toml`: one HR source kept in step with one tenant. The source
//! (`[sync.source]`: a CSV or JSON file, or an HTTP JSON endpoint), the mapping of its fields
//! to a person (`[sync.map]`), the policy (`[sync.policy]`), the runbook each action starts
//! (`[sync.runbooks]`) and an optional schedule. Secrets are never written in the file: an
//! HTTP source names the environment variable holding its bearer token (`token_env`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tenure_runbook::duration::HumanDuration;

use crate::mapping::Mapping;
use crate::policy::Policy;

/// Why a `[[sync]]` entry is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[[sync]] `{id}`: {message}")]
pub struct ConfigError {
    /// The entry's id (or `?` when it has none).
    pub id: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// One `[[sync]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSource {
    /// The source's id (`hr`), used by `tenure sync ID` and in links: letters, digits, `-`, `_`.
    pub id: String,
    /// The managed tenant it keeps in step (a `[[tenants]]` id).
    pub tenant: String,
    /// `[sync.source]`: where the people come from.
    pub source: SourceSpec,
    /// `[sync.map]`: target → template (`key`, `active`, Entra attributes, anything else).
    pub map: BTreeMap<String, String>,
    /// `[sync.policy]`.
    #[serde(default)]
    pub policy: Policy,
    /// `[sync.runbooks]`: the runbook each action starts.
    #[serde(default)]
    pub runbooks: Runbooks,
    /// A cron expression with seconds (`0 0 6 * * *`): `tenure serve` syncs on it.
    pub schedule: Option<String>,
    /// The IANA zone the schedule is read in (default UTC).
    pub timezone: Option<String>,
    /// How often a scheduled sync reads the whole tenant instead of its changes (`24h`).
    pub full_every: Option<HumanDuration>,
}

/// The kind of a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A CSV file with a header row.
    Csv,
    /// A JSON file: a list of records (at `records`).
    Json,
    /// An HTTP endpoint answering JSON (GET, optionally paged by `next`).
    Http,
}

/// `[sync.source]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// `csv`, `json` or `http`.
    pub kind: SourceKind,
    /// The file (csv, json); relative paths are read from the configuration's directory.
    pub path: Option<PathBuf>,
    /// The endpoint (http).
    pub url: Option<String>,
    /// The environment variable holding the endpoint's bearer token (http; optional).
    pub token_env: Option<String>,
    /// JSON pointer (RFC 6901) to the list of records in each document (json, http; default:
    /// the document itself).
    pub records: Option<String>,
    /// JSON pointer to the next page's URL in each answer (http; absent or null: last page).
    pub next: Option<String>,
    /// The CSV field separator (default `,`).
    pub delimiter: Option<char>,
    /// The most bytes read from a file or one HTTP answer (default 64 MiB).
    pub max_bytes: Option<u64>,
    /// Seconds one HTTP request may take (default 60).
    pub timeout_secs: Option<u64>,
}

/// The default of [`SourceSpec::max_bytes`].
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The default of [`SourceSpec::timeout_secs`].
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// `[sync.runbooks]`: the runbook each action starts, with its inputs as templates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runbooks {
    /// Create (default `onboard-user`).
    pub create: RunbookChoice,
    /// Update (default `update-profile`).
    pub update: RunbookChoice,
    /// Activate (default `rehire`).
    pub activate: RunbookChoice,
    /// Deactivate (default `offboard-user`).
    pub deactivate: RunbookChoice,
}

/// One action's runbook. Its input templates see `person.<attribute>`, `person.extra.<x>`,
/// `person.key`, `account.user_principal_name`, `account.id`, `changes`, `cleared` and `tenant`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunbookChoice {
    /// The runbook id.
    pub runbook: String,
    /// Input name → template.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
}

fn choice(runbook: &str, inputs: &[(&str, &str)]) -> RunbookChoice {
    RunbookChoice {
        runbook: runbook.to_string(),
        inputs: inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// The inputs of `update-profile` and `rehire`: the account and the changed attributes.
fn with_changes() -> Vec<(&'static str, &'static str)> {
    vec![
        ("tenant", "{{tenant}}"),
        ("user", "{{account.user_principal_name}}"),
        ("display_name", "{{changes.displayName}}"),
        ("given_name", "{{changes.givenName}}"),
        ("surname", "{{changes.surname}}"),
        ("department", "{{changes.department}}"),
        ("job_title", "{{changes.jobTitle}}"),
        ("usage_location", "{{changes.usageLocation}}"),
        ("employee_id", "{{changes.employeeId}}"),
        ("manager", "{{changes.manager}}"),
    ]
}

impl Default for Runbooks {
    fn default() -> Self {
        Runbooks {
            create: choice(
                "onboard-user",
                &[
                    ("tenant", "{{tenant}}"),
                    ("first_name", "{{person.givenName}}"),
                    ("last_name", "{{person.surname}}"),
                    ("department", "{{person.department}}"),
                    ("job_title", "{{person.jobTitle}}"),
                    ("manager", "{{person.manager}}"),
                    ("personal_email", "{{person.extra.personalEmail}}"),
                    ("employee_id", "{{person.employeeId}}"),
                    ("usage_location", "{{person.usageLocation}}"),
                    ("start_date", "{{person.extra.startDate}}"),
                ],
            ),
            // Only what changes: `changes.<attribute>` is null for the others, and an input
            // that renders null is left out (update-profile and rehire then leave it alone).
            // An attribute the source empties is cleared (`cleared`: its update-profile name).
            update: choice(
                "update-profile",
                &[with_changes(), vec![("clear", "{{cleared}}")]].concat(),
            ),
            activate: choice("rehire", &with_changes()),
            deactivate: choice(
                "offboard-user",
                &[
                    ("tenant", "{{tenant}}"),
                    ("user", "{{account.user_principal_name}}"),
                    ("last_day", "{{person.extra.endDate}}"),
                ],
            ),
        }
    }
}

impl Runbooks {
    /// The runbook chosen for `action` (None and Report start nothing).
    pub fn for_action(&self, action: crate::Action) -> Option<&RunbookChoice> {
        use crate::Action;
        match action {
            Action::Create => Some(&self.create),
            Action::Update => Some(&self.update),
            Action::Activate => Some(&self.activate),
            Action::Deactivate => Some(&self.deactivate),
            Action::None | Action::Report => None,
        }
    }
}

impl SyncSource {
    /// Checks what serde cannot: the id, the source's fields for its kind, the mapping's
    /// templates (a `key` target is required), the policy and the schedule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |message: String| ConfigError {
            id: if self.id.is_empty() {
                "?".into()
            } else {
                self.id.clone()
            },
            message,
        };
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(
                "id must be letters, digits, `-` or `_` (it names the source in links and \
                 in `tenure sync ID`)"
                    .into(),
            ));
        }
        if self.tenant.trim().is_empty() {
            return Err(err("tenant is empty: name a [[tenants]] id".into()));
        }
        self.source.validate().map_err(err)?;
        self.mapping().map_err(|e| err(e.to_string()))?;
        self.policy
            .validate()
            .map_err(|m| err(format!("[sync.policy] {m}")))?;
        for (name, c) in [
            ("create", &self.runbooks.create),
            ("update", &self.runbooks.update),
            ("activate", &self.runbooks.activate),
            ("deactivate", &self.runbooks.deactivate),
        ] {
            if c.runbook.trim().is_empty() {
                return Err(err(format!("[sync.runbooks.{name}] runbook is empty")));
            }
            for (input, t) in &c.inputs {
                let analysis = tenure_runbook::template::analyze(t).map_err(|e| {
                    err(format!(
                        "[sync.runbooks.{name}] input `{input}`: `{t}` is not a template: {}",
                        e.message
                    ))
                })?;
                for p in analysis.paths.iter().filter(|p| !p.scoped) {
                    self.check_input_path(&p.segments).map_err(|why| {
                        err(format!(
                            "[sync.runbooks.{name}] input `{input}`: `{t}` names `{}`, {why}",
                            p.raw
                        ))
                    })?;
                }
            }
        }
        match (&self.schedule, &self.full_every) {
            (Some(cron), _) => {
                let tz = self.timezone.as_deref().unwrap_or("UTC");
                tenure_engine::machine::schedule::Schedule::new(
                    cron,
                    tz,
                    tenure_runbook::plan::Missed::RunOnce,
                )
                .map_err(|m| err(format!("schedule: {m}")))?;
            }
            (None, Some(_)) => {
                return Err(err(
                    "full_every is set without a schedule: it says how often a scheduled \
                     sync reads the whole tenant"
                        .into(),
                ))
            }
            (None, None) if self.timezone.is_some() => {
                return Err(err("timezone is set without a schedule".into()))
            }
            (None, None) => {}
        }
        Ok(())
    }

    /// The `person.extra.<name>` a runbook input may read: the stock extras and every
    /// mapping target that is not an Entra attribute (`key` and `active` aside).
    pub fn extra_names(&self) -> Vec<String> {
        let mut names: Vec<String> = crate::apply::EXTRAS.iter().map(|e| e.to_string()).collect();
        for target in self.map.keys().map(|t| t.trim()) {
            if target != "key"
                && target != "active"
                && crate::mapping::entra_name(target).is_none()
                && !names.iter().any(|n| n == target)
            {
                names.push(target.to_string());
            }
        }
        names
    }

    /// Whether a variable path of a `[sync.runbooks]` input template names something the
    /// template context has (see [`crate::apply::context`]); a misspelled path would render
    /// null and the input would silently be left out. `Err` says what may be named.
    fn check_input_path(&self, segments: &[String]) -> Result<(), String> {
        use crate::apply::ATTRIBUTES;
        let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
        let person_fields = || {
            let mut all = vec!["key", "active", "origin"];
            all.extend(ATTRIBUTES);
            format!("person.extra.<name> or person.<{}>", all.join("|"))
        };
        let text_value = |path: &str| {
            Err(format!(
                "but `{path}` is a single value with no fields inside it"
            ))
        };
        match seg.as_slice() {
            // `@root`, `this`, data variables (`@index`): not the context's names.
            [] => Ok(()),
            [first, ..] if first.starts_with('@') => Ok(()),
            [one] if tenure_runbook::template::HELPERS.contains(one) => Ok(()),
            ["tenant"]
            | ["person"]
            | ["account"]
            | ["changes"]
            | ["cleared"]
            | ["person", "extra"] => Ok(()),
            ["tenant", ..] => text_value("tenant"),
            ["person", "extra", name] => {
                let extras = self.extra_names();
                if extras.iter().any(|e| e == name) {
                    Ok(())
                } else {
                    Err(format!(
                        "which [sync.map] does not set; person.extra has: {}",
                        extras.join(", ")
                    ))
                }
            }
            ["person", "extra", name, ..] => text_value(&format!("person.extra.{name}")),
            ["person", name] => {
                if ["key", "active", "origin"].contains(name) || ATTRIBUTES.contains(name) {
                    Ok(())
                } else {
                    Err(format!(
                        "which is not a person's field; use {}",
                        person_fields()
                    ))
                }
            }
            ["person", name, ..] => {
                if ["key", "active", "origin"].contains(name) || ATTRIBUTES.contains(name) {
                    text_value(&format!("person.{name}"))
                } else {
                    Err(format!(
                        "which is not a person's field; use {}",
                        person_fields()
                    ))
                }
            }
            ["account", "id" | "user_principal_name"] => Ok(()),
            ["account", name, ..] if ["id", "user_principal_name"].contains(name) => {
                text_value(&format!("account.{name}"))
            }
            ["account", ..] => Err("which the account does not have; use account.id or \
                     account.user_principal_name"
                .into()),
            ["changes", name] if ATTRIBUTES.contains(name) => Ok(()),
            ["changes", name, ..] if ATTRIBUTES.contains(name) => {
                text_value(&format!("changes.{name}"))
            }
            ["changes", ..] => Err(format!(
                "which is not an attribute a change is made to; use changes.<{}>",
                ATTRIBUTES.join("|")
            )),
            _ => Err(
                "which a runbook input cannot read; it may name person.<attribute>, \
                 person.extra.<name>, person.key, account.id, account.user_principal_name, \
                 changes.<attribute>, cleared and tenant"
                    .into(),
            ),
        }
    }

    /// The compiled mapping.
    pub fn mapping(&self) -> Result<Mapping, crate::mapping::MappingError> {
        Mapping::new(&self.map)
    }

    /// The policy with `compare` filled in when the configuration leaves it out: every Entra
    /// attribute the mapping sets except `userPrincipalName` (a sign-in name is chosen once,
    /// at creation; renaming is a decision for a person).
    pub fn effective_policy(&self) -> Policy {
        let mut p = self.policy.clone();
        if p.compare.is_none() {
            let mut attrs: Vec<String> = self
                .map
                .keys()
                .filter_map(|t| crate::mapping::entra_name(t))
                .filter(|a| *a != "userPrincipalName")
                .map(str::to_string)
                .collect();
            attrs.sort();
            attrs.dedup();
            p.compare = Some(attrs);
        }
        p
    }
}

impl SourceSpec {
    fn validate(&self) -> Result<(), String> {
        let no = |field: &str, kind: &str| {
            Err(format!(
                "[sync.source] `{field}` does not apply to a {kind} source"
            ))
        };
        match self.kind {
            SourceKind::Csv | SourceKind::Json => {
                let kind = if self.kind == SourceKind::Csv {
                    "csv"
                } else {
                    "json"
                };
                if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                    return Err(format!("[sync.source] a {kind} source needs `path`"));
                }
                if self.url.is_some() {
                    return no("url", kind);
                }
                if self.token_env.is_some() {
                    return no("token_env", kind);
                }
                if self.next.is_some() {
                    return no("next", kind);
                }
                if self.timeout_secs.is_some() {
                    return no("timeout_secs", kind);
                }
                if self.kind == SourceKind::Csv && self.records.is_some() {
                    return no("records", kind);
                }
                if self.kind == SourceKind::Json && self.delimiter.is_some() {
                    return no("delimiter", kind);
                }
            }
            SourceKind::Http => {
                let Some(url) = &self.url else {
                    return Err("[sync.source] an http source needs `url`".into());
                };
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| format!("[sync.source] url is not a URL: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err("[sync.source] url must be http:// or https://".into());
                }
                if self.path.is_some() {
                    return no("path", "http");
                }
                if self.delimiter.is_some() {
                    return no("delimiter", "http");
                }
                if let Some(env) = &self.token_env {
                    if env.trim().is_empty() {
                        return Err("[sync.source] token_env is empty: name the environment \
                                    variable holding the bearer token"
                            .into());
                    }
                }
            }
        }
        for (name, p) in [("records", &self.records), ("next", &self.next)] {
            if let Some(p) = p {
                if !p.is_empty() && !p.starts_with('/') {
                    return Err(format!(
                        "[sync.source] {name} = \"{p}\" is not a JSON pointer: it starts with \
                         `/` (`/value`, `/data/people`) or is empty for the whole document"
                    ));
                }
            }
        }
        if let Some(d) = self.delimiter {
            if !d.is_ascii() || d == '"' || d == '\n' || d == '\r' {
                return Err(format!(
                    "[sync.source] delimiter `{d}` must be one ASCII character other than a \
                     quote or a line break"
                ));
            }
        }
        if self.max_bytes == Some(0) || self.timeout_secs == Some(0) {
            return Err("[sync.source] max_bytes and timeout_secs must be above 0".into());
        }
        Ok(())
    }
}

/// Checks every entry and that ids are unique.
pub fn validate_all(sources: &[SyncSource]) -> Result<(), ConfigError> {
    let mut seen = std::collections::BTreeSet::new();
    for s in sources {
        s.validate()?;
        if !seen.insert(s.id.as_str()) {
            return Err(ConfigError {
                id: s.id.clone(),
                message: "two [[sync]] entries have this id".into(),
            });
        }
    }
    Ok(())
}
