//! `runbook.call` from the terminal: two runbook files side by side, the caller run detached,
//! a `tenure worker` executing both runs, the called run's approval decided from the terminal,
//! and both journals linking the runs; `tenure validate` reports unknown runbooks and cycles.

use serde_json::Value;

use crate::{stderr, stdout};

use crate::tenure_db as tenure;

const CHILD: &str = "runbook: mailbox\nversion: 3\ntenant: contoso\ninputs:\n  user: { type: email, required: true }\n  who: { type: email, required: true }\nsteps:\n  approve:\n    uses: approval\n    with: { approvers: [\"{{inputs.who}}\"], message: \"Convert {{inputs.user}}?\" }\n  nap:\n    needs: [approve]\n    uses: wait\n    with: { for: 50ms }\n";

const PARENT: &str = "runbook: leaver\nversion: 1\ntenant: contoso\ninputs:\n  user: { type: email, required: true }\nsteps:\n  mailbox:\n    uses: runbook.call\n    with:\n      runbook: mailbox\n      version: 3\n      inputs: { user: \"{{inputs.user}}\", who: lead@msp.example }\n  after:\n    needs: [mailbox]\n    uses: wait\n    with: { for: 10ms }\n";

fn runs(db: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["runs", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_slice(&tenure(db, &args).stdout).unwrap()
}

#[test]
fn a_runbook_calls_another_and_a_worker_runs_both() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    std::fs::write(dir.path().join("mailbox.yaml"), CHILD).unwrap();
    let parent = dir.path().join("leaver.yaml");
    std::fs::write(&parent, PARENT).unwrap();
    let o = tenure(
        &db,
        &[
            "run",
            parent.to_str().unwrap(),
            "-i",
            "user=ada@contoso.example",
            "--detach",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let mut worker = crate::Tenure::new()
        .args(["--db", &db, "worker", "--concurrency", "2"])
        .spawn();
    let mut child = None;
    for _ in 0..200 {
        let kids = runs(&db, &["--parent", &id]);
        if let Some(k) = kids.iter().find(|k| k["status"] == "waiting") {
            assert_eq!(k["parent"]["run"], id.as_str());
            assert_eq!(k["parent"]["step"], "mailbox");
            child = k["id"].as_str().map(str::to_string);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let child = child.expect("the called run starts and waits for its approval");
    let listed = stdout(&tenure(&db, &["runs"]));
    assert!(
        listed.contains(&format!("mailbox v3  (called by {id} step mailbox)")),
        "{listed}"
    );
    let o = tenure(
        &db,
        &[
            "approve",
            &format!("{child}:approve"),
            "--as",
            "lead@msp.example",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut done = false;
    for _ in 0..200 {
        if runs(&db, &[])
            .iter()
            .any(|r| r["id"] == id.as_str() && r["status"] == "succeeded")
        {
            done = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    worker.kill().unwrap();
    worker.wait().unwrap();
    let log = stdout(&tenure(&db, &["log", &id]));
    assert!(done, "the caller never finished: {log}");
    assert!(
        log.contains(&format!("mailbox[0] called runbook mailbox: run {child}")),
        "{log}"
    );
    assert!(
        log.contains(&format!("mailbox[0]: called run {child} ended succeeded")),
        "{log}"
    );
    let child_log = stdout(&tenure(&db, &["log", &child]));
    assert!(
        child_log.contains(&format!(
            "run created from mailbox v3 (call by run {id} (step mailbox))"
        )),
        "{child_log}"
    );
    for run in [&id, &child] {
        assert_eq!(tenure(&db, &["log", "verify", run]).status.code(), Some(0));
    }
    assert_eq!(runs(&db, &[]).len(), 2, "one caller, one called run");
}

#[test]
fn validate_reports_unknown_runbooks_and_call_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let call = |from: &str, to: &str| {
        format!("runbook: {from}\nversion: 1\ntenant: contoso\nsteps:\n  next:\n    uses: runbook.call\n    with: {{ runbook: {to} }}\n")
    };
    std::fs::write(dir.path().join("a.yaml"), call("a", "b")).unwrap();
    std::fs::write(dir.path().join("b.yaml"), call("b", "a")).unwrap();
    std::fs::write(dir.path().join("c.yaml"), call("c", "mailbx")).unwrap();
    std::fs::write(dir.path().join("mailbox.yaml"), CHILD).unwrap();
    let o = crate::Tenure::new()
        .arg("validate")
        .arg(dir.path())
        .output();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("error[RB0047]: runbooks call each other in a cycle: a → b → a"),
        "{err}"
    );
    assert!(
        err.contains("error[RB0046]: no runbook `mailbx` to call"),
        "{err}"
    );
    assert!(err.contains("did you mean `mailbox`?"), "{err}");
}

/// A chain of calls deeper than a run allows is refused when compiled, on the runbook at its
/// top only (each one below it can still run on its own).
#[test]
fn validate_refuses_a_chain_of_calls_deeper_than_a_run_allows() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..9 {
        std::fs::write(
            dir.path().join(format!("r{i}.yaml")),
            format!("runbook: r{i}\nversion: 1\ntenant: contoso\nsteps:\n  next:\n    uses: runbook.call\n    with: {{ runbook: r{} }}\n", i + 1),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("r9.yaml"),
        "runbook: r9\nversion: 1\ntenant: contoso\nsteps:\n  nap:\n    uses: wait\n    with: { for: 1ms }\n",
    )
    .unwrap();
    let o = crate::Tenure::new()
        .arg("validate")
        .arg(dir.path())
        .output();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("r0.yaml:7:22: error[RB0047]: calls through runbook `r1` nest 9 runs deep, more than the 8 a run allows"),
        "{err}"
    );
    assert_eq!(
        err.matches("error[").count(),
        1,
        "only r0 is too deep: {err}"
    );
    let one_less = crate::Tenure::new()
        .arg("validate")
        .arg(dir.path().join("r1.yaml"))
        .output();
    assert_eq!(one_less.status.code(), Some(0), "{}", stderr(&one_less));
}

#[test]
fn a_call_to_an_id_two_files_declare_is_an_error_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = "runbook: leaf\nversion: 1\ntenant: contoso\nsteps:\n  nap:\n    uses: wait\n    with: { for: 1ms }\n";
    std::fs::write(dir.path().join("leaf.yaml"), leaf).unwrap();
    std::fs::write(
        dir.path().join("leaf-copy.yaml"),
        leaf.replace("1ms", "2ms"),
    )
    .unwrap();
    let top = dir.path().join("top.yaml");
    std::fs::write(
        &top,
        "runbook: top\nversion: 1\ntenant: contoso\nsteps:\n  next:\n    uses: runbook.call\n    with: { runbook: leaf }\n",
    )
    .unwrap();
    let o = crate::Tenure::new().arg("validate").arg(&top).output();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("runbook id `leaf` is declared by more than one file"),
        "{err}"
    );
    assert!(
        err.contains("leaf-copy.yaml") && err.contains("leaf.yaml"),
        "{err}"
    );
}
