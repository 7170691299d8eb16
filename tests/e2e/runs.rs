//! `tenure run`, `approve`, `runs`, `log` and `cancel` against a SQLite database.

use std::process::Command;

use serde_json::Value;

use crate::{stderr, stdout};

fn tenure(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

const GATE: &str = "runbook: gate\nversion: 1\ntenant: contoso\ninputs:\n  who: { type: email, required: true }\nsteps:\n  approve:\n    uses: approval\n    with: { approvers: [\"{{inputs.who}}\"], message: go? }\n  nap:\n    needs: [approve]\n    uses: wait\n    with: { for: 100ms }\n";

#[test]
fn run_in_process_exits_0_on_success_and_1_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let ok = dir.path().join("ok.yaml");
    std::fs::write(&ok, "runbook: ok\nversion: 1\ntenant: contoso\nsteps:\n  nap: { uses: wait, with: { for: 50ms } }\n").unwrap();
    let o = tenure(&db, &["run", ok.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("nap woke"), "{}", stdout(&o));
    assert!(stdout(&o).contains("run succeeded"));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "runbook: bad\nversion: 1\ntenant: contoso\nsteps:\n  block: { uses: entra.disable_sign_in, with: { user: x@contoso.example } }\n").unwrap();
    let o = tenure(&db, &["run", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("cannot run yet"), "{}", stdout(&o));
    let o = tenure(&db, &["run", ok.to_str().unwrap(), "-i", "nope=1"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "unknown inputs are refused before anything is created"
    );
    let runs: Vec<Value> =
        serde_json::from_slice(&tenure(&db, &["runs", "--json"]).stdout).unwrap();
    assert_eq!(runs.len(), 2);
}

#[test]
fn approve_deny_and_cancel_from_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let gate = dir.path().join("gate.yaml");
    std::fs::write(&gate, GATE).unwrap();
    let path = gate.to_str().unwrap();
    let id = stdout(&tenure(
        &db,
        &["run", path, "-i", "who=lead@msp.example", "--detach"],
    ))
    .trim()
    .to_string();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(["--db", &db, "worker", "--concurrency", "1"])
        .spawn()
        .unwrap();
    let wait_for = |status: &str| {
        for _ in 0..100 {
            let runs: Vec<Value> =
                serde_json::from_slice(&tenure(&db, &["runs", "--json"]).stdout).unwrap();
            if runs
                .iter()
                .any(|r| r["id"] == id.as_str() && r["status"] == status)
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("run {id} never became {status}");
    };
    wait_for("waiting");
    let o = tenure(
        &db,
        &[
            "approve",
            &format!("{id}:approve"),
            "--as",
            "someone@else.example",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not an approver"), "{}", stderr(&o));
    let o = tenure(
        &db,
        &[
            "approve",
            &format!("{id}:approve"),
            "--as",
            "lead@msp.example",
            "--deny",
            "--comment",
            "not today",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    wait_for("denied");
    let log = stdout(&tenure(&db, &["log", &id]));
    assert!(log.contains("lead@msp.example chose deny (cli)"), "{log}");
    assert!(
        !log.contains("nap[0] attempt"),
        "nothing runs after a denial: {log}"
    );
    assert_eq!(tenure(&db, &["log", "verify", &id]).status.code(), Some(0));

    let second = stdout(&tenure(
        &db,
        &["run", path, "-i", "who=lead@msp.example", "--detach"],
    ))
    .trim()
    .to_string();
    let o = tenure(&db, &["cancel", &second]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tenure(&db, &["cancel", &second]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an ended run cannot be cancelled again"
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
}
