//! `tenure people status` against a sandbox process: Active, Deactivated after a run blocked
//! the sign-in, No access (with the deleted account) after a run deleted it, each with the
//! runs that touched the person; `--json`; a UPN of no managed tenant is a clear error.

use serde_json::Value;

/// `tenure --db DB ARGS` against the sandbox at `url`.
fn tenure(url: &str, db: &str, args: &[&str]) -> std::process::Output {
    crate::Tenure::new()
        .args(["--db", db])
        .args(args)
        .env("TENURE_SANDBOX", url)
        .env_remove("TENURE_CONFIG")
        .output()
}

/// Runs a runbook of one step of `kind` on the input `user`.
fn run_kind(url: &str, db: &str, dir: &std::path::Path, name: &str, kind: &str, upn: &str) {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, format!(
        "runbook: {name}\nversion: 1\ntenant: contoso\ninputs:\n  user: {{ type: email, required: true }}\nsteps:\n  act: {{ uses: {kind}, with: {{ user: \"{{{{inputs.user}}}}\" }} }}\n"
    )).unwrap();
    let input = format!("user={upn}");
    let o = tenure(url, db, &["run", file.to_str().unwrap(), "-i", &input]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        crate::stdout(&o),
        crate::stderr(&o)
    );
}

#[test]
fn people_status_follows_a_person_from_active_to_no_access() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::sandbox::serve(&dir.path().join("state.json"));
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let upn = "adele.vance@contoso.example";

    let o = tenure(&url, &db, &["people", "status", upn]);
    let out = crate::stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", crate::stderr(&o));
    assert!(
        out.starts_with(&format!("{upn} in Contoso (contoso): Active\n")),
        "{out}"
    );
    assert!(out.contains("sign-in enabled"), "{out}");
    assert!(out.contains(&format!("No run has touched {upn}.")), "{out}");

    run_kind(&url, &db, dir.path(), "block", "entra.disable_sign_in", upn);
    let o = tenure(&url, &db, &["people", "status", upn]);
    let out = crate::stdout(&o);
    assert!(
        out.starts_with(&format!("{upn} in Contoso (contoso): Deactivated\n")),
        "{out}"
    );
    assert!(out.contains("sign-in blocked"), "{out}");
    assert!(out.contains("succeeded  block v1"), "{out}");

    run_kind(&url, &db, dir.path(), "remove", "entra.delete_user", upn);
    let o = tenure(&url, &db, &["people", "status", upn, "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", crate::stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["access"], "no_access", "{v}");
    assert!(
        v["deleted"]["id"].is_string(),
        "the deleted account is named: {v}"
    );
    let runbooks: Vec<&str> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runbook"].as_str().unwrap())
        .collect();
    assert_eq!(runbooks, ["remove", "block"], "{v}");

    let o = tenure(
        &url,
        &db,
        &["people", "status", "someone@elsewhere.example"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        crate::stderr(&o).contains(
            "no managed tenant has the domain `elsewhere.example`; known: contoso, fabrikam"
        ),
        "{}",
        crate::stderr(&o)
    );
    for bad in [
        "not-an-upn",
        "a b@contoso.example",
        "x?y@contoso.example",
        "x#@contoso.example",
        "a\n@contoso.example",
        "a@b@contoso.example",
    ] {
        let o = tenure(&url, &db, &["people", "status", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(
            crate::stderr(&o).contains("is not a user principal name"),
            "{bad:?}"
        );
    }
}
