//! `tenure plan`: inputs resolved, vars rendered, steps in order, secrets masked.

use crate::{stderr, stdout, tenure};

#[test]
fn plan_renders_vars_and_instances() {
    let o = tenure(&[
        "plan",
        "onboard-user",
        "--json",
        "--input",
        "tenant=contoso",
        "--input",
        "first_name=José",
        "--input",
        "last_name=Núñez",
        "--input",
        "groups=All Staff,Sales",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["vars"]["upn"], "jose.nunez@contoso.example");
    assert_eq!(p["concurrency"], "jose.nunez@contoso.example");
    let steps = p["steps"].as_array().unwrap();
    assert_eq!(steps[0]["id"], "approve");
    let groups = steps.iter().find(|s| s["id"] == "groups").unwrap();
    assert_eq!(groups["with"].as_array().unwrap().len(), 2);
    assert_eq!(groups["with"][1]["group"], "Sales");
    // No manager and no personal address: nobody to welcome.
    let welcome = steps.iter().find(|s| s["id"] == "welcome_email").unwrap();
    assert_eq!(welcome["decision"], "skip");
}

#[test]
fn plan_masks_a_secret_output_wherever_a_template_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vault.yaml");
    std::fs::write(
        &file,
        "runbook: vault\nversion: 1\ntenant: contoso\nsteps:\n  u:\n    uses: entra.create_user\n    with: { user_principal_name: ada@contoso.example, display_name: Ada }\n  keep:\n    uses: http.request\n    with: { method: POST, url: \"https://vault.example/items\", json: { password: \"{{steps.u.outputs.password}}\", user: \"{{steps.u.outputs.id}}\" } }\n",
    )
    .unwrap();
    let o = tenure(&["plan", file.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let keep = p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "keep")
        .unwrap();
    assert_eq!(keep["with"][0]["json"]["password"], "***", "{keep}");
    assert_eq!(keep["with"][0]["json"]["user"], "<steps.u.outputs.id>");
}

#[test]
fn plan_refuses_bad_inputs_with_every_reason() {
    let o = tenure(&[
        "plan",
        "onboard-user",
        "--input",
        "tenant=contoso",
        "--input",
        "start_date=soon",
        "--input",
        "frist_name=x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(
            "input `frist_name`: the runbook declares no such input (did you mean `first_name`?)"
        ),
        "{err}"
    );
    assert!(err.contains("input `first_name`: is required"), "{err}");
    assert!(
        err.contains("input `start_date`: `soon` is not a date"),
        "{err}"
    );
}

#[test]
fn plan_names_unknown_tenants() {
    let o = tenure(&[
        "plan",
        "offboard-user",
        "-i",
        "tenant=nowhere",
        "-i",
        "user=a@nowhere.example",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown tenant `nowhere` (configured: contoso, fabrikam)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn plan_text_lists_steps_in_order() {
    let o = tenure(&[
        "plan",
        "offboard-user",
        "-i",
        "tenant=fabrikam",
        "-i",
        "user=leaver@fabrikam.example",
        "-i",
        "wipe_devices=false",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let pos = |needle: &str| {
        out.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing in {out}"))
    };
    assert!(pos("] convert_mailbox ") < pos("] licences "));
    assert!(
        out.contains("] wipe  intune.wipe_devices  -> skip"),
        "{out}"
    );
}

/// Text inputs take what was written: `0012` stays `0012` and `1e3` stays `1e3`, whether the
/// value comes from `-i`, a YAML input file or a JSON one; an `int` input still gets a number.
#[test]
fn text_inputs_are_taken_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("ticket.yaml");
    std::fs::write(
        &rb,
        "runbook: ticket\nversion: 1\ntenant: contoso\ninputs:\n  ticket_id: { type: string, required: true }\n  ratio: { type: string, required: true }\n  tags: { type: list, items: string, required: true }\n  count: { type: int, required: true }\nsteps:\n  note:\n    uses: wait\n    with: { for: 1s }\n",
    )
    .unwrap();
    let yaml = dir.path().join("in.yaml");
    std::fs::write(
        &yaml,
        "ticket_id: 0012\nratio: 1e3\ntags: [007, 2.50]\ncount: 0012\n",
    )
    .unwrap();
    let json = dir.path().join("in.json");
    std::fs::write(
        &json,
        r#"{"ticket_id": 12e0, "ratio": 1e3, "tags": [7, 2.50], "count": 12}"#,
    )
    .unwrap();
    let rb = rb.to_str().unwrap();
    let plan = |extra: &[&str]| {
        let o = tenure(&[&["plan", rb, "--json"], extra].concat());
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        p["inputs"].clone()
    };
    assert_eq!(
        plan(&["--input-file", yaml.to_str().unwrap()]),
        serde_json::json!({"ticket_id": "0012", "ratio": "1e3", "tags": ["007", "2.50"], "count": 12})
    );
    assert_eq!(
        plan(&["--input-file", json.to_str().unwrap()]),
        serde_json::json!({"ticket_id": "12e0", "ratio": "1e3", "tags": ["7", "2.50"], "count": 12})
    );
    assert_eq!(
        plan(&[
            "-i",
            "ticket_id=0012",
            "-i",
            "ratio=1e3",
            "-i",
            "tags=007,2.50",
            "-i",
            "count=0012"
        ]),
        serde_json::json!({"ticket_id": "0012", "ratio": "1e3", "tags": ["007", "2.50"], "count": 12})
    );
}

/// Every stock runbook has an input file in `examples/inputs/` (its first line names the
/// runbook: `# tenure run ID --input-file ...`), and each plans without an error.
#[test]
fn every_stock_runbook_has_example_inputs_that_plan() {
    let root = crate::root();
    let mut planned = Vec::new();
    for entry in std::fs::read_dir(root.join("examples/inputs")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let id = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# tenure run "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{}: first line names the runbook", path.display()))
            .to_string();
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite:{}", dir.path().join("p.db").display());
        let o = crate::Tenure::new()
            .args(["--db", &db, "plan", &id, "--input-file"])
            .arg(&path)
            .current_dir(&root)
            .env_remove("TENURE_CONFIG")
            .output();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{id}: {}{}",
            crate::stdout(&o),
            crate::stderr(&o)
        );
        planned.push(id);
    }
    planned.sort();
    let mut stock: Vec<String> = std::fs::read_dir(root.join("runbooks"))
        .unwrap()
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.ok()?.path()).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("runbook: ").map(|s| s.trim().to_string()))
        })
        .collect();
    stock.sort();
    assert_eq!(planned, stock, "one example input file per stock runbook");
}
