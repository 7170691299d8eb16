//! `runbooks/people-sync-batch.yaml` end to end: one approval for a whole people sync, then
//! one called run per person (onboard-user, update-profile, offboard-user), none of which asks
//! its own approval; the sandbox ends as the batch said. And the other side of the rule: the
//! joiner started from the terminal with `batch_approved=true` still waits for its approval,
//! since only a `runbook.call` can vouch for a batch.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sandbox::{state, user};
use crate::stock::{config, runs, status_of, tenure, worker};
use crate::{stderr, stdout};

#[test]
fn one_approval_for_a_batch_and_no_gate_skipped_outside_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::sandbox::serve(&dir.path().join("state.json"));
    let cfg = config(dir.path(), &url, "");
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let _worker = worker(&cfg, &db);

    let o = tenure(
        &cfg,
        &db,
        &[
            "run",
            "people-sync-batch",
            "--input-file",
            "examples/inputs/people-sync-batch.yaml",
            "--detach",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let batch = stdout(&o).trim().to_string();
    let target = format!("{batch}:approve");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = tenure(
            &cfg,
            &db,
            &["approve", &target, "--as", "it-lead@msp.example"],
        );
        if o.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "cannot approve: {}", stderr(&o));
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = status_of(&cfg, &db, &batch);
        if s == "succeeded" {
            break;
        }
        assert!(
            !["failed", "denied", "cancelled"].contains(&s.as_str()),
            "the batch ended {s}: {}",
            stdout(&tenure(&cfg, &db, &["log", &batch]))
        );
        assert!(
            Instant::now() < deadline,
            "the batch is still {s}: {}",
            stdout(&tenure(&cfg, &db, &["log", &batch]))
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // One called run per person, each succeeded, none with an approval of its own.
    let all = runs(&cfg, &db);
    let children: Vec<&Value> = all
        .iter()
        .filter(|r| r["parent"]["run"] == batch.as_str())
        .collect();
    let mut names: Vec<&str> = children
        .iter()
        .map(|r| r["runbook"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["offboard-user", "onboard-user", "update-profile"],
        "{all:#?}"
    );
    for child in &children {
        let id = child["id"].as_str().unwrap();
        assert_eq!(child["status"], "succeeded", "{child}");
        let report = stdout(&tenure(&cfg, &db, &["log", id, "--report"]));
        assert!(!report.contains("Approved by"), "{report}");
    }

    let s = state(&url);
    let jane = user(&s, "jane.doe@contoso.example");
    assert_eq!(jane["employeeId"], "E1042", "{jane}");
    assert_eq!(jane["usageLocation"], "AU", "{jane}");
    let isaiah = user(&s, "isaiah.langer@contoso.example");
    assert_eq!(isaiah["jobTitle"], "Senior Controller", "{isaiah}");
    assert_eq!(
        isaiah["managerId"],
        user(&s, "lidia.holloway@contoso.example")["id"]
    );
    assert_eq!(
        user(&s, "alex.wilber@contoso.example")["accountEnabled"],
        false
    );

    // From the terminal, `batch_approved` vouches for nothing: the gate is asked.
    let o = tenure(
        &cfg,
        &db,
        &[
            "run",
            "onboard-user",
            "-i",
            "tenant=contoso",
            "-i",
            "first_name=Sneaky",
            "-i",
            "last_name=Pete",
            "-i",
            "batch_approved=true",
            "--detach",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sneaky = stdout(&o).trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = stdout(&tenure(&cfg, &db, &["log", &sneaky]));
        if status_of(&cfg, &db, &sneaky) == "waiting" && log.contains("approve") {
            break;
        }
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = state(&url);
    assert!(
        !s["tenants"][0]["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["userPrincipalName"] == "sneaky.pete@contoso.example"),
        "nothing is created before the approval"
    );
}
