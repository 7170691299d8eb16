//! `tenure validate` and `tenure schema`.

use crate::{stderr, stdout, tenure};

#[test]
fn the_shipped_runbooks_validate() {
    let o = tenure(&["validate", "runbooks/"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("7 files checked: 7 ok, 0 errors"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn the_shipped_runbooks_pass_strict_and_a_warning_fails_it() {
    let o = tenure(&["validate", "--strict", "runbooks/"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("0 warnings"), "{}", stdout(&o));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wipe.yaml");
    let text = "runbook: wipe\nversion: 1\ntenant: contoso\ninputs:\n  user: { type: email, required: true }\nsteps:\n  wipe:\n    uses: intune.wipe_devices\n    with: { user: \"{{inputs.user}}\" }\n";
    std::fs::write(&file, text).unwrap();
    let path = file.to_str().unwrap();
    let o = tenure(&["validate", path]);
    assert_eq!(o.status.code(), Some(0), "a warning alone passes");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{path}:8:11: warning[RB0071]")),
        "{err}"
    );
    assert!(err.contains("8 |     uses: intune.wipe_devices"), "{err}");
    let o = tenure(&["validate", "--strict", path]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    // Accepted with a reason, it passes `--strict`; without one, it is an error.
    let allowed = format!("{text}    allow: [{{code: RB0071, reason: \"stolen device\"}}]\n");
    std::fs::write(&file, allowed).unwrap();
    let o = tenure(&["validate", "--strict", path]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(&file, format!("{text}    allow: [RB0071]\n")).unwrap();
    let o = tenure(&["validate", path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("error[RB0079]"), "{}", stderr(&o));
}

#[test]
fn errors_print_file_line_col_code_and_snippet_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "runbook: bad\nversion: 1\ntenant: contoso\nsteps:\n  a:\n    uses: licence.assign\n    needs: [crate_user]\n    with: { user: x@y.example, sku: SPB, source: pax9 }\n",
    )
    .unwrap();
    let o = tenure(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let name = file.display().to_string();
    assert!(
        err.contains(&format!(
            "{name}:7:13: error[RB0030]: step `a` needs unknown step `crate_user`"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{name}:8:50: error[RB0044]")),
        "{err}"
    );
    assert!(
        err.contains("8 |     with: { user: x@y.example, sku: SPB, source: pax9 }"),
        "{err}"
    );
    assert!(err.contains("help: did you mean `pax8`?"), "{err}");
    assert!(stdout(&o).contains("2 errors"), "{}", stdout(&o));
}

#[test]
fn json_output_lists_diagnostics_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "runbook: bad\nversion: 1\ntenant: x\nsteps:\n  a: { uses: wait }\n",
    )
    .unwrap();
    let o = tenure(&["validate", "--json", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let d = &v[0]["diagnostics"][0];
    assert_eq!(d["code"], "RB0062");
    assert_eq!((d["line"].as_u64(), d["col"].as_u64()), (Some(5), Some(6)));
}

#[test]
fn usage_errors_exit_2_and_missing_files_exit_1() {
    assert_eq!(tenure(&["validate"]).status.code(), Some(2));
    assert_eq!(tenure(&["frobnicate"]).status.code(), Some(2));
    let o = tenure(&["validate", "no/such/dir"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no/such/dir: no such file or directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn binary_input_is_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob.yaml");
    std::fs::write(&file, [0xff_u8, 0xfe, 0x00, 0x41]).unwrap();
    let o = tenure(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not UTF-8"), "{}", stderr(&o));
}

#[test]
fn schema_is_json_schema_covering_every_kind() {
    let o = tenure(&["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["$schema"], "http://json-schema.org/draft-07/schema#");
    let kinds = v["definitions"]["step"]["properties"]["uses"]["enum"]
        .as_array()
        .unwrap();
    // 39 kinds are declared (the language's 37, `entra.restore_user` and
    // `exchange.convert_to_regular`), and every one can run.
    assert_eq!(kinds.len(), 39);
    assert!(kinds.contains(&serde_json::json!("psa.add_ticket_note")));
    assert!(kinds.contains(&serde_json::json!("runbook.call")));
    let clauses = v["definitions"]["step"]["allOf"].as_array().unwrap();
    let assign = clauses
        .iter()
        .find(|c| c["if"]["properties"]["uses"]["const"] == "licence.assign")
        .unwrap();
    let source = &assign["then"]["properties"]["with"]["properties"]["source"];
    assert_eq!(
        source["anyOf"][0]["enum"],
        serde_json::json!(["direct", "pax8", "partner_center"])
    );
}
