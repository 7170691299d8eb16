//! The data-driven corpus of reconciliations: every `tests/data/plans/*.json` holds people,
//! accounts, links and a policy (fields left out take their defaults); the plan
//! `plan::reconcile_with` makes of them is rendered as the table and the JSON and compared
//! with the `.snap` beside it. A missing snapshot is written on first run (except in CI),
//! `UPDATE_EXPECT=1` rewrites them all, and a mismatch fails with both texts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tenure_people::plan::{reconcile_with, LinkRef, Options};
use tenure_people::policy::Policy;
use tenure_people::{render, Account, Person};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    about: String,
    #[serde(default)]
    people: Vec<PersonIn>,
    #[serde(default)]
    accounts: Vec<AccountIn>,
    #[serde(default)]
    links: Vec<LinkIn>,
    #[serde(default)]
    policy: Policy,
    #[serde(default)]
    force: bool,
    /// Records of the export dropped for want of a key.
    #[serde(default)]
    keyless: usize,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonIn {
    key: String,
    #[serde(default = "yes")]
    active: bool,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    extra: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountIn {
    id: String,
    upn: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    hybrid: bool,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    protected: bool,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkIn {
    person: String,
    account: Option<String>,
    upn: Option<String>,
}

fn run(case: Case) -> String {
    let people: Vec<Person> = case
        .people
        .into_iter()
        .enumerate()
        .map(|(i, p)| Person {
            key: p.key,
            active: p.active,
            attributes: p.attributes,
            extra: p.extra,
            origin: format!("people.csv:{}", i + 2),
            held: None,
        })
        .collect();
    let accounts: Vec<Account> = case
        .accounts
        .into_iter()
        .map(|a| Account {
            id: a.id,
            user_principal_name: a.upn,
            enabled: a.enabled,
            hybrid: a.hybrid,
            admin: a.admin,
            protected: a.protected,
            attributes: a.attributes,
        })
        .collect();
    let links: Vec<LinkRef> = case
        .links
        .into_iter()
        .map(|l| LinkRef {
            person_key: l.person,
            account_id: l.account,
            user_principal_name: l.upn,
        })
        .collect();
    let plan = reconcile_with(
        "hr",
        "contoso",
        &people,
        &accounts,
        &links,
        &case.policy,
        Options {
            force: case.force,
            keyless: case.keyless,
        },
    );
    let mut out = render::table(&plan);
    let _ = writeln!(out, "\n--- json ---");
    out.push_str(&serde_json::to_string_pretty(&render::to_json(&plan)).unwrap());
    out.push('\n');
    out
}

/// Checks `actual` against the file at `path`; returns a failure message on mismatch.
fn check(path: &Path, actual: &str) -> Result<(), String> {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => Ok(()),
        Ok(_) if update => write(path, actual),
        Ok(expected) => Err(format!(
            "snapshot {} differs (UPDATE_EXPECT=1 to accept):\n{}",
            path.display(),
            diff(&expected, actual)
        )),
        Err(_) if std::env::var_os("CI").is_some() && !update => Err(format!(
            "snapshot {} is missing; run the tests locally and commit it",
            path.display()
        )),
        Err(_) => write(path, actual),
    }
}

fn write(path: &Path, actual: &str) -> Result<(), String> {
    std::fs::write(path, actual).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let same = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let mut out = format!("(the first {same} lines agree)\n");
    for line in &e[same..] {
        let _ = writeln!(out, "- {line}");
    }
    for line in &a[same..] {
        let _ = writeln!(out, "+ {line}");
    }
    out
}

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/plans");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus() {
    let files = cases();
    assert!(files.len() >= 15, "the corpus has {} cases", files.len());
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let case: Case = match serde_json::from_str(&text) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if let Err(e) = check(&path.with_extension("snap"), &run(case)) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
