//! The exported JSON Schema accepts every valid runbook and rejects what the compiler rejects
//! structurally, so editors flag mistakes as the author types.

use std::path::Path;

use tenure_runbook::json_schema::runbook_schema;
use tenure_runbook::{yaml, SourceFile};

fn as_json(text: &str) -> serde_json::Value {
    let (node, diags) = yaml::parse(&SourceFile::new("t.yaml", text));
    assert!(diags.is_empty(), "{diags:?}");
    node.unwrap().to_json()
}

#[test]
fn schema_accepts_the_runbooks_and_rejects_bad_with() {
    let schema = runbook_schema(&tenure_steps::catalogue());
    let validator = jsonschema::draft7::new(&schema).expect("the schema is valid draft-07");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../runbooks");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let doc = as_json(&std::fs::read_to_string(&path).unwrap());
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    }
    let bad = as_json(
        "runbook: t\nversion: 1\ntenant: x\nsteps:\n  a:\n    uses: licence.assign\n    with: { user: u, sku: SPB, source: pax9 }\n",
    );
    assert!(!validator.is_valid(&bad), "source: pax9 must be rejected");
    let unknown = as_json("runbook: t\nversion: 1\ntenant: x\nsteps:\n  a:\n    uses: entra.create_user\n    with: { display_name: A }\n");
    assert!(
        !validator.is_valid(&unknown),
        "a missing user_principal_name must be rejected"
    );
    let call = as_json("runbook: t\nversion: 1\ntenant: x\nsteps:\n  a:\n    uses: runbook.call\n    with: { runbook: other, inputs: { a: 1 } }\n");
    assert!(validator.is_valid(&call), "runbook.call runs");
    // Every kind of the language runs now; one declared but unavailable is still left out.
    let mut catalogue = tenure_steps::catalogue();
    catalogue.insert(
        tenure_runbook::KindSchema::action("example.unavailable", "test only")
            .unavailable("it exists only in this test"),
    );
    let schema = runbook_schema(&catalogue);
    let validator = jsonschema::draft7::new(&schema).expect("the schema is valid draft-07");
    let unavailable =
        as_json("runbook: t\nversion: 1\ntenant: x\nsteps:\n  a:\n    uses: example.unavailable\n");
    assert!(
        !validator.is_valid(&unavailable),
        "a kind that cannot run yet must be rejected"
    );
}
