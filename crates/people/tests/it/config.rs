//! `[[sync]]` entries read from TOML: the documented example, defaults, unknown fields and
//! the checks serde cannot make.

use tenure_people::config::{validate_all, SourceKind, SyncSource};
use tenure_people::policy::SourceMissing;

#[derive(serde::Deserialize)]
struct File {
    sync: Vec<SyncSource>,
}

fn parse(text: &str) -> Result<Vec<SyncSource>, String> {
    toml::from_str::<File>(text)
        .map(|f| f.sync)
        .map_err(|e| e.to_string())
}

/// The example in docs/people.md, verbatim between its markers.
fn documented_example() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/people.md"))
        .unwrap();
    let start = doc
        .find("<!-- sync-example -->")
        .expect("marker in docs/people.md");
    let rest = &doc[start..];
    let body = rest.split("```toml\n").nth(1).unwrap();
    body.split("```").next().unwrap().to_string()
}

#[test]
fn the_documented_example_is_valid() {
    let sources = parse(&documented_example()).unwrap();
    validate_all(&sources).unwrap();
    let s = &sources[0];
    assert_eq!(s.id, "hr");
    assert_eq!(s.source.kind, SourceKind::Csv);
    assert_eq!(s.policy.source_missing, SourceMissing::Deactivate);
    assert_eq!(s.policy.protected_groups, ["Finance"]);
    assert_eq!(s.runbooks.create.runbook, "onboard-user");
    assert_eq!(s.runbooks.deactivate.runbook, "offboard-user");
    let compare = s.effective_policy().compare.unwrap();
    assert!(compare.contains(&"department".to_string()));
    assert!(!compare.contains(&"userPrincipalName".to_string()));
}

const MINIMAL: &str = r#"
[[sync]]
id = "hr"
tenant = "contoso"
source = { kind = "csv", path = "people.csv" }
map = { key = "{{id}}" }
"#;

#[test]
fn defaults() {
    let s = &parse(MINIMAL).unwrap()[0];
    s.validate().unwrap();
    assert!(s.policy.create && s.policy.update && s.policy.activate && s.policy.deactivate);
    assert!(s.policy.protect_admins);
    assert_eq!(s.policy.max_deactivate_percent, 10);
    assert_eq!(
        s.policy.correlate,
        ["employeeId", "userPrincipalName", "mail"]
    );
    assert_eq!(s.runbooks.update.runbook, "update-profile");
    assert_eq!(s.runbooks.activate.runbook, "rehire");
    assert_eq!(s.effective_policy().compare.unwrap(), Vec::<String>::new());
}

fn invalid(text: &str) -> String {
    match parse(text) {
        Err(e) => e,
        Ok(s) => validate_all(&s).unwrap_err().to_string(),
    }
}

#[test]
fn errors_are_clear() {
    let e = invalid(&MINIMAL.replace("map = ", "mapp = "));
    assert!(e.contains("unknown field `mapp`"), "{e}");
    let e = invalid(&MINIMAL.replace("kind = \"csv\"", "kind = \"xls\""));
    assert!(e.contains("unknown variant `xls`"), "{e}");
    let e = invalid(&MINIMAL.replace("path = \"people.csv\"", "url = \"https://hr/x\""));
    assert_eq!(e, "[[sync]] `hr`: [sync.source] a csv source needs `path`");
    let e = invalid(&MINIMAL.replace(
        "kind = \"csv\", path = \"people.csv\"",
        "kind = \"http\", url = \"https://hr.example/people\", records = \"value\"",
    ));
    assert!(
        e.contains("records = \"value\" is not a JSON pointer"),
        "{e}"
    );
    let e = invalid(&MINIMAL.replace("{{id}}", "{{id"));
    assert!(
        e.starts_with("[[sync]] `hr`: [sync.map] key = \"{{id\" is not a template"),
        "{e}"
    );
    let e = invalid(&MINIMAL.replace("key = ", "surname = "));
    assert!(e.contains("has no `key`"), "{e}");
    let e = invalid(&format!("{MINIMAL}schedule = \"every day\"\n"));
    assert!(e.contains("schedule: invalid cron expression"), "{e}");
    let e = invalid(&format!("{MINIMAL}full_every = \"24h\"\n"));
    assert!(e.contains("full_every is set without a schedule"), "{e}");
    let e = invalid(&format!(
        "{MINIMAL}[sync.policy]\nmax_deactivate_percent = 150\n"
    ));
    assert!(e.contains("it is a percentage"), "{e}");
    let e = invalid(&format!(
        "{MINIMAL}[sync.policy]\ncorrelate = [\"displayName\"]\n"
    ));
    assert!(e.contains("correlate names `displayName`"), "{e}");
    let e = invalid(&format!(
        "{MINIMAL}[sync.policy]\napproval = [\"it-lead\"]\n"
    ));
    assert!(
        e.contains("approval names `it-lead`, which is not an email address"),
        "{e}"
    );
    let e = invalid(&format!("{MINIMAL}[sync.policy]\ncreat = false\n"));
    assert!(e.contains("unknown field `creat`"), "{e}");
    let e = invalid(&MINIMAL.replace("id = \"hr\"", "id = \"h r\""));
    assert!(e.contains("id must be letters"), "{e}");
    let e = invalid(&format!("{MINIMAL}{MINIMAL}"));
    assert_eq!(e, "[[sync]] `hr`: two [[sync]] entries have this id");
    let ok = format!("{MINIMAL}schedule = \"0 0 6 * * *\"\ntimezone = \"Australia/Sydney\"\nfull_every = \"7d\"\n");
    validate_all(&parse(&ok).unwrap()).unwrap();
}

#[tokio::test]
async fn the_documented_example_maps_the_example_export() {
    use tenure_people::plan::{reconcile, LinkRef};
    use tenure_people::{render, Account};
    let mut s = parse(&documented_example()).unwrap().remove(0);
    s.source.path = Some("examples/people/people.csv".into());
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let records = tenure_people::source::read(&s.source, root).await.unwrap();
    let mapped = s.mapping().unwrap().map_records(&records).unwrap();
    assert_eq!(
        mapped.warnings,
        ["examples/people/people.csv:6: active is `on leave`, neither active (true/yes/y/1/active/current/employed) nor inactive (false/no/n/0/inactive/terminated/left); `E1005` is held (nothing is done to their account)"]
    );
    let ada = &mapped.people[0];
    assert_eq!(ada.attributes["jobTitle"], "Engineer, Analytical");
    assert_eq!(ada.attributes["department"], "Research");
    assert_eq!(ada.attributes["usageLocation"], "AU");
    assert_eq!(ada.extra["personalEmail"], "ada@example.org");
    let account = |id: &str, upn: &str, eid: &str, dept: &str| Account {
        id: id.into(),
        user_principal_name: upn.into(),
        enabled: true,
        attributes: [("employeeId", eid), ("department", dept)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Account::default()
    };
    let accounts = vec![
        account("a1", "ada@contoso.com", "E1001", "Sales"),
        account("a2", "bob@contoso.com", "E1002", "Operations"),
        account("a3", "grace.hopper@contoso.com", "E1003", "Research"),
    ];
    let links = vec![LinkRef {
        person_key: "E1003".into(),
        account_id: Some("a3".into()),
        user_principal_name: None,
    }];
    let plan = reconcile(
        &s.id,
        &s.tenant,
        &mapped.people,
        &accounts,
        &links,
        &s.effective_policy(),
    );
    // Ada: found, update (department and the attributes the account lacks); Bob: found,
    // deactivate (1 of 3 enabled is above 10%, but one deactivation never trips the guard:
    // `guard_allows`); Grace: confirmed, attributes to
    // fill; Cy: new; Dee (`on leave`): held, blocked.
    assert_eq!(
        render::summary(&plan),
        "1 new, 2 update, 0 activate, 1 deactivate; 1 blocked, 2 to link"
    );
}

/// A `[sync.runbooks]` input naming something the template context lacks (a typo, a
/// nested path into a text value) is refused when the configuration is read: rendered, it
/// would be null and the input silently left out.
#[test]
fn runbook_input_templates_name_only_what_the_context_has() {
    let with = |inputs: &str| {
        format!(
            "{}[sync.runbooks.update]\nrunbook = \"update-profile\"\ninputs = {{ {inputs} }}\n",
            MINIMAL.replace("{{id}}\" }", "{{id}}\", personalEmail = \"{{home}}\" }")
        )
    };
    let ok = with(
        "tenant = \"{{tenant}}\", user = \"{{account.user_principal_name}}\", \
         id = \"{{account.id}}\", d = \"{{changes.department}}\", k = \"{{person.key}}\", \
         m = \"{{lower person.manager}}\", e = \"{{person.extra.personalEmail}}\", \
         l = \"{{person.extra.endDate}}\", n = \"{{person.givenName}} {{person.surname}}\"",
    );
    validate_all(&parse(&ok).unwrap()).unwrap();
    for (inputs, expect) in [
        (
            "job = \"{{person.jobTitle.x}}\"",
            "input `job`: `{{person.jobTitle.x}}` names `person.jobTitle.x`, but `person.jobTitle` is a single value",
        ),
        (
            "job = \"{{person.x.y}}\"",
            "names `person.x.y`, which is not a person's field",
        ),
        ("job = \"{{person.jobtitle}}\"", "which is not a person's field"),
        (
            "e = \"{{person.extra.homeEmail}}\"",
            "which [sync.map] does not set; person.extra has: personalEmail, startDate, endDate",
        ),
        ("u = \"{{account.upn}}\"", "use account.id or account.user_principal_name"),
        ("d = \"{{changes.dept}}\"", "not an attribute a change is made to"),
        ("t = \"{{tenants}}\"", "which a runbook input cannot read"),
        ("t = \"{{tenant.id}}\"", "`tenant` is a single value"),
    ] {
        let e = invalid(&with(inputs));
        assert!(
            e.starts_with("[[sync]] `hr`: [sync.runbooks.update] input `"),
            "{e}"
        );
        assert!(e.contains(expect), "{inputs}: {e}");
    }
}
