//! The mapping from records to people: templates and constants, `active` words, Entra
//! attributes versus extras, empty values, duplicate keys, control characters, and
//! configuration errors (no key, a field no record has, a broken template).

use std::collections::BTreeMap;

use serde_json::json;
use tenure_people::mapping::{Mapping, MappingError};
use tenure_people::source::{parse_csv, parse_json};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn standard() -> Mapping {
    Mapping::new(&map(&[
        ("key", "{{employee_number}}"),
        ("active", "{{status}}"),
        ("displayName", "{{this.first}} {{last}}"),
        ("givenName", "{{this.first}}"),
        ("surname", "{{last}}"),
        ("Department", "{{[Dept Name]}}"),
        ("usageLocation", "AU"),
        ("personalEmail", "{{home_email}}"),
    ]))
    .unwrap()
}

#[test]
fn templates_constants_and_targets() {
    let csv = "employee_number,status,first,last,Dept Name,home_email\n\
               E1,Active, Ada ,Lovelace,Sales,ada@example.org\n\
               E2,terminated,Bob,Ray,,\n";
    let records = parse_csv("people.csv", csv.as_bytes(), b',').unwrap();
    let m = standard().map_records(&records).unwrap();
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    let ada = &m.people[0];
    assert_eq!(ada.key, "E1");
    assert!(ada.active);
    assert_eq!(ada.origin, "people.csv:2");
    assert_eq!(ada.attributes["displayName"], "Ada  Lovelace");
    assert_eq!(ada.attributes["givenName"], "Ada");
    assert_eq!(ada.attributes["department"], "Sales");
    assert_eq!(ada.attributes["usageLocation"], "AU");
    assert_eq!(ada.extra["personalEmail"], "ada@example.org");
    let bob = &m.people[1];
    assert!(!bob.active);
    assert!(
        !bob.attributes.contains_key("department"),
        "empty values are absent"
    );
    assert!(!bob.extra.contains_key("personalEmail"));
    assert_eq!(
        standard().attributes(),
        [
            "department",
            "displayName",
            "givenName",
            "surname",
            "usageLocation"
        ]
    );
}

#[test]
fn bad_records_are_skipped_with_warnings() {
    let csv = "employee_number,status,first,last,Dept Name,home_email\n\
               E1,yes,Ada,Lovelace,Sales,\n\
               ,yes,No,Key,,\n\
               E3,on leave,Cy,Back,,\n\
               E1,no,Ada,Again,,\n\
               E5,,Dee,Empty,,\n\
               E6,1,\"Tab\tbed\",X,,\n\
               E7,employed,Eve,Ok,,\n";
    let records = parse_csv("people.csv", csv.as_bytes(), b',').unwrap();
    let m = standard().map_records(&records).unwrap();
    let keys: Vec<(&str, bool)> = m
        .people
        .iter()
        .map(|p| (p.key.as_str(), p.held.is_some()))
        .collect();
    // Unreadable rows with a key are held (the source still lists them); no key: skipped.
    assert_eq!(
        keys,
        [
            ("E1", true),
            ("E3", true),
            ("E5", true),
            ("E6", true),
            ("E7", false)
        ]
    );
    assert_eq!(
        m.people[0].held.as_deref(),
        Some("the key is at people.csv:2 and people.csv:5")
    );
    assert_eq!(
        m.warnings,
        [
            "people.csv:3: no key (it rendered empty); skipped",
            "people.csv:4: active is `on leave`, neither active (true/yes/y/1/active/current/employed) nor inactive (false/no/n/0/inactive/terminated/left); `E3` is held (nothing is done to their account)",
            "people.csv:5: the key `E1` is also at people.csv:2; both held (nothing is done to their account)",
            "people.csv:6: active is empty: the source does not say whether they work here; `E5` is held (nothing is done to their account)",
            "people.csv:7: displayName holds a control character (U+0009); `E6` is held (nothing is done to their account)",
        ]
    );
    assert_eq!(m.keyless, 1, "the row without a key is counted");
}

#[test]
fn json_records_missing_a_field_render_it_empty() {
    let doc = json!([
        {"id": 7, "name": {"first": "Ada"}, "active": true, "dept": "Sales"},
        {"id": 8, "name": {"first": "Bob"}, "active": false}
    ]);
    let records = parse_json("p.json", doc.to_string().as_bytes(), "").unwrap();
    let m = Mapping::new(&map(&[
        ("key", "{{id}}"),
        ("active", "{{active}}"),
        ("givenName", "{{name.first}}"),
        ("department", "{{dept}}"),
    ]))
    .unwrap()
    .map_records(&records)
    .unwrap();
    assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    assert_eq!(m.people[0].key, "7");
    assert_eq!(m.people[0].attributes["givenName"], "Ada");
    assert!(!m.people[1].active);
    assert!(!m.people[1].attributes.contains_key("department"));
}

#[test]
fn configuration_errors() {
    assert_eq!(
        Mapping::new(&map(&[("displayName", "{{name}}")])).unwrap_err(),
        MappingError::NoKey
    );
    let err = Mapping::new(&map(&[("key", "{{id")])).unwrap_err();
    assert!(matches!(err, MappingError::Syntax { .. }), "{err}");
    let err = Mapping::new(&map(&[
        ("key", "{{id}}"),
        ("surname", "{{x}}"),
        ("Surname", "{{y}}"),
    ]))
    .unwrap_err();
    assert!(matches!(err, MappingError::Target(_)), "{err}");
    let err = Mapping::new(&map(&[("key", "{{id}}"), ("givenName", "{{first}}")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[sync.map] givenName: `{{first}}` calls the template helper `first`; for the field of \
         that name write `{{this.first}}`"
    );
    let records = parse_csv("p.csv", b"id,last\n1,x\n", b',').unwrap();
    let err = Mapping::new(&map(&[("key", "{{id}}"), ("surname", "{{lastname}}")]))
        .unwrap()
        .map_records(&records)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "[sync.map] surname names the field `lastname`, which no record of the source has (fields: id, last)"
    );
}
