//! Hostile source data: rows an HR export gets wrong must never make a sync act on a person
//! it cannot read, above all never deactivate them as if they had left.

use std::collections::BTreeMap;

use tenure_people::mapping::Mapping;
use tenure_people::plan::{reconcile, LinkRef};
use tenure_people::policy::Policy;
use tenure_people::source::parse_csv;
use tenure_people::{Account, Action, Situation};

fn mapping() -> Mapping {
    let map: BTreeMap<String, String> = [
        ("key", "{{id}}"),
        ("active", "{{status}}"),
        ("jobTitle", "{{title}}"),
        ("manager", "{{boss}}"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Mapping::new(&map).unwrap()
}

fn account(id: &str, upn: &str) -> Account {
    Account {
        id: id.into(),
        user_principal_name: upn.into(),
        enabled: true,
        attributes: [("jobTitle".to_string(), "Clerk".to_string())].into(),
        ..Account::default()
    }
}

fn link(key: &str, id: &str) -> LinkRef {
    LinkRef {
        person_key: key.into(),
        account_id: Some(id.into()),
        user_principal_name: None,
    }
}

/// Twenty linked people; rows 2..=5 are unreadable in four ways. None of them is deactivated,
/// updated or reported as having left; the readable ones plan as usual.
#[test]
fn unreadable_rows_hold_their_people_and_never_deactivate_them() {
    let mut csv = String::from("id,status,title,boss\n");
    let mut accounts = Vec::new();
    let mut links = Vec::new();
    for i in 0..20 {
        let row = match i {
            2 => format!("E{i},On leave,Clerk,\n"),
            3 => format!("E{i},active,Cl\u{7}erk,\n"),
            4 => format!("E{i},active,Clerk,\nE{i},active,Boss,\n"),
            5 => format!("E{i},active,Clerk,Jane Smith\n"),
            _ => format!("E{i},active,Clerk,\n"),
        };
        csv.push_str(&row);
        accounts.push(account(&format!("a{i}"), &format!("u{i}@x.example")));
        links.push(link(&format!("E{i}"), &format!("a{i}")));
    }
    let records = parse_csv("hr.csv", csv.as_bytes(), b',').unwrap();
    let mapped = mapping().map_records(&records).unwrap();
    assert_eq!(mapped.people.len(), 20, "{:?}", mapped.warnings);
    let policy = Policy {
        max_deactivate_percent: 100,
        ..Policy::default()
    };
    let plan = reconcile("hr", "t", &mapped.people, &accounts, &links, &policy);
    assert!(plan.guard.is_none(), "{:?}", plan.guard);
    for item in &plan.items {
        let key = item.person.as_ref().map(|p| p.key.as_str());
        assert_ne!(item.situation, Situation::SourceMissing, "{item:?}");
        assert_ne!(item.action, Action::Deactivate, "{item:?}");
        if matches!(key, Some("E2" | "E3" | "E4" | "E5")) {
            assert_eq!(item.action, Action::Report, "{item:?}");
            let why = item.blocked.as_deref().unwrap_or_default();
            assert!(why.starts_with("held: "), "{why}");
        } else {
            assert_eq!(item.action, Action::None, "{item:?}");
        }
    }
    assert_eq!(plan.items.len(), 20);
    assert!(mapped
        .warnings
        .iter()
        .any(|w| w.contains("hr.csv:6") && w.contains("hr.csv:7")));
}

/// An unbalanced quote made the csv crate read the rest of the file as one field: every row
/// after it vanished (and their people would have read as leavers). It is an error now,
/// naming the line the quote opens on; quoted separators, quoted newlines and `""` still read.
#[test]
fn csv_unbalanced_quote_is_an_error_not_lost_rows() {
    let e = parse_csv("hr.csv", b"id,name\nE1,\"Ada\nE2,Bob\nE3,Cy\n", b',').unwrap_err();
    assert_eq!(e.place, "hr.csv:2");
    assert!(e.message.contains("never closed"), "{e}");
    let ok = parse_csv(
        "hr.csv",
        b"id,name\nE1,\"Ada, \"\"the\"\"\nCountess\"\nE2,O\"Brien\n",
        b',',
    )
    .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[0].fields["name"], "Ada, \"the\"\nCountess");
    assert_eq!(ok[1].fields["name"], "O\"Brien");
    assert_eq!(ok[1].origin, "hr.csv:4");
}

/// Old Mac exports end lines with a lone `\r`: every record was placed on line 1.
#[test]
fn csv_cr_only_line_ends_number_the_lines() {
    let r = parse_csv("hr.csv", b"id,name\rE1,Ada\rE2,Bob\r", b',').unwrap();
    let origins: Vec<&str> = r.iter().map(|r| r.origin.as_str()).collect();
    assert_eq!(origins, ["hr.csv:2", "hr.csv:3"]);
}

/// A token with a line break (a header injection attempt, or a pasted secret) fails the read
/// with a message that does not show it, and neither does the source's Debug form.
#[tokio::test]
async fn http_token_with_crlf_never_shows() {
    use std::time::Duration;
    use tenure_people::source::{read_http, HttpSource};
    let token = "s3cret\r\nX-Injected: yes";
    let src = HttpSource {
        url: "http://127.0.0.1:9/people?key=k".into(),
        token: Some(token.into()),
        records: String::new(),
        next: None,
        max_bytes: 1024,
        timeout: Duration::from_secs(2),
    };
    let e = read_http(&src).await.unwrap_err();
    let shown = format!("{e} {e:?} {src:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("key=k"),
        "{shown}"
    );
}

/// A source naming managers by email (the documented form) against a tenant whose manager
/// signs in with another name: the same manager, so no update is planned again and again.
#[test]
fn a_manager_named_by_email_is_not_a_change() {
    let mut a = account("a1", "ada@contoso.onmicrosoft.com");
    a.attributes
        .insert("manager".into(), "grace@contoso.onmicrosoft.com".into());
    a.attributes
        .insert("managerMail".into(), "Grace.Hopper@contoso.com".into());
    let person = tenure_people::Person {
        key: "E1".into(),
        active: true,
        attributes: [
            ("jobTitle".to_string(), "Clerk".to_string()),
            (
                "manager".to_string(),
                "grace.hopper@contoso.com".to_string(),
            ),
        ]
        .into(),
        ..Default::default()
    };
    let plan = reconcile(
        "hr",
        "t",
        std::slice::from_ref(&person),
        &[a.clone()],
        &[link("E1", "a1")],
        &Policy::default(),
    );
    assert_eq!(plan.items[0].action, Action::None, "{:?}", plan.items[0]);
    // Another manager still is a change.
    let mut other = person;
    other
        .attributes
        .insert("manager".into(), "someone@contoso.com".into());
    let plan = reconcile(
        "hr",
        "t",
        &[other],
        &[a],
        &[link("E1", "a1")],
        &Policy::default(),
    );
    assert_eq!(plan.items[0].action, Action::Update);
}

/// Tenant values are not checked like source values: an escape sequence in an account's job
/// title or a line break in its sign-in name must not reach the operator's terminal raw.
#[test]
fn the_table_shows_control_characters_escaped() {
    let mut a = account("a1", "ada@x.example\n(fake line)");
    a.attributes
        .insert("jobTitle".into(), "\u{1b}[2J\u{1b}]0;owned\u{7}".into());
    let person = tenure_people::Person {
        key: "E1".into(),
        active: true,
        attributes: [("jobTitle".to_string(), "Clerk".to_string())].into(),
        ..Default::default()
    };
    let plan = reconcile(
        "hr",
        "t",
        &[person],
        &[a],
        &[link("E1", "a1")],
        &Policy::default(),
    );
    let table = tenure_people::render::table(&plan);
    assert!(
        !table.contains('\u{1b}') && !table.contains('\u{7}'),
        "{table}"
    );
    assert!(table.contains("\\u{1b}[2J"), "{table}");
    assert!(!table.contains("\n(fake line)"), "{table}");
}

/// A new person whose wanted sign-in name is an account another person is linked to: the
/// create would fail (or worse, be retried each sync); it is blocked with why.
#[test]
fn a_create_with_a_taken_sign_in_name_is_blocked() {
    let taken = account("a1", "Ada@x.example");
    let newcomer = tenure_people::Person {
        key: "E2".into(),
        active: true,
        attributes: [("userPrincipalName".to_string(), "ada@x.example".to_string())].into(),
        ..Default::default()
    };
    let holder = tenure_people::Person {
        key: "E1".into(),
        active: true,
        attributes: [("jobTitle".to_string(), "Clerk".to_string())].into(),
        ..Default::default()
    };
    let plan = reconcile(
        "hr",
        "t",
        &[holder, newcomer],
        &[taken],
        &[link("E1", "a1")],
        &Policy::default(),
    );
    let item = &plan.items[1];
    assert_eq!(item.action, Action::Create);
    let why = item.blocked.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("taken: the sign-in name ada@x.example is account Ada@x.example (a1)"),
        "{why}"
    );
}

/// Invisible characters (a zero-width space pasted into a key, a byte-order mark in a
/// header from concatenated exports, bidi marks) are removed: a linked person whose key
/// gained one is still that person, never a leaver plus a newcomer.
#[test]
fn invisible_characters_do_not_make_another_person() {
    let csv = "\u{200B}id,status,title,\u{FEFF}boss\nE1\u{200B},active,\u{200E}Clerk,\nE\u{2060}2,active,Clerk,\n";
    let records = parse_csv("hr.csv", csv.as_bytes(), b',').unwrap();
    let mapped = mapping().map_records(&records).unwrap();
    let keys: Vec<&str> = mapped.people.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["E1", "E2"], "{:?}", mapped.warnings);
    let accounts = [account("a1", "u1@x.example"), account("a2", "u2@x.example")];
    let plan = reconcile(
        "hr",
        "t",
        &mapped.people,
        &accounts,
        &[link("E1", "a1"), link("E2", "a2")],
        &Policy::default(),
    );
    assert!(
        plan.items.iter().all(|i| i.action == Action::None),
        "{plan:?}"
    );
}

/// A source with 100,000 columns and a mapping naming a field it lacks: the error lists a
/// few names, not all of them.
#[test]
fn a_million_columns_do_not_make_a_million_character_error() {
    let header: Vec<String> = (0..100_000).map(|i| format!("c{i}")).collect();
    let row: Vec<&str> = (0..100_000).map(|_| "x").collect();
    let csv = format!("{}\n{}\n", header.join(","), row.join(","));
    let records = parse_csv("wide.csv", csv.as_bytes(), b',').unwrap();
    let e = mapping().map_records(&records).unwrap_err().to_string();
    assert!(e.len() < 2_000 && e.contains("more"), "{} chars", e.len());
}

/// A next page URL with user information of its own (`http://user:pw@same-host/...`) made
/// the reader send `Authorization: Basic` beside the bearer token; it is refused, and the
/// credentials are not shown.
#[tokio::test]
async fn http_next_with_credentials_is_refused() {
    use axum::{routing::get, Json, Router};
    use serde_json::json;
    use std::time::Duration;
    use tenure_people::source::{read_http, HttpSource};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route(
        "/p",
        get(move || async move {
            Json(json!({"value": [{"id": "x"}], "next": format!("http://mallory:pw@{addr}/p?n=2")}))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let src = HttpSource {
        url: format!("http://{addr}/p"),
        token: Some("tok".into()),
        records: "/value".into(),
        next: Some("/next".into()),
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(5),
    };
    let e = read_http(&src).await.unwrap_err().to_string();
    assert!(
        e.contains("carries credentials") && !e.contains("mallory") && !e.contains("pw@"),
        "{e}"
    );
}

/// An export that changes the letter case of its keys (`e1001` → `E1001`) still names the
/// same people: before, every linked person read as a leaver (deactivated) and a newcomer
/// (created). Keys that differ only in case within one export are one key given twice.
#[test]
fn a_key_in_another_letter_case_is_the_same_person() {
    let csv =
        "id,status,title,boss\nE1001,active,Clerk,\nE1002,active,Clerk,\ne1002,active,Clerk,\n";
    let records = parse_csv("hr.csv", csv.as_bytes(), b',').unwrap();
    let mapped = mapping().map_records(&records).unwrap();
    let accounts = [account("a1", "u1@x.example"), account("a2", "u2@x.example")];
    let links = [link("e1001", "a1"), link("E1002", "a2")];
    let plan = reconcile(
        "hr",
        "t",
        &mapped.people,
        &accounts,
        &links,
        &Policy::default(),
    );
    assert_eq!(plan.items.len(), 2, "{plan:?}");
    assert_eq!(plan.items[0].situation, Situation::Confirmed);
    assert_eq!(plan.items[0].action, Action::None);
    assert!(plan.items[1]
        .blocked
        .as_deref()
        .unwrap_or_default()
        .starts_with("held: "));
}
