//! The stock runbooks end to end, as an MSP would run them: `tenure run` against the sandbox in
//! its own process, a `tenure worker`, the approvals decided from the terminal with `tenure
//! approve`. Each case of `tests/e2e/reports/` (a JSON file: runbook, inputs, approvals, the
//! final status) has its run report as a snapshot beside it (`CASE.md`, ids and times
//! normalised; `UPDATE_EXPECT=1` rewrites them). Then what the sandbox received is checked: the
//! users, licences, groups, PSA contacts, the password link in the manager's email and in
//! Teams, and the report on the ticket.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sandbox::{state, user};
use crate::{root, stderr, stdout};

/// A `tenure worker` process, killed when dropped.
pub(crate) struct Worker(pub(crate) crate::Proc);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tenure --config CFG --db DB ARGS`.
pub(crate) fn tenure(cfg: &Path, db: &str, args: &[&str]) -> std::process::Output {
    crate::Tenure::new()
        .arg("--config")
        .arg(cfg)
        .args(["--db", db])
        .args(args)
        .current_dir(root())
        .env_remove("TENURE_SANDBOX")
        .output()
}

/// Every run, as `tenure runs --json` lists them.
pub(crate) fn runs(cfg: &Path, db: &str) -> Vec<Value> {
    serde_json::from_slice(&tenure(cfg, db, &["runs", "--json"]).stdout).unwrap()
}

/// The status of the run `id` (empty when it is not listed).
pub(crate) fn status_of(cfg: &Path, db: &str, id: &str) -> String {
    runs(cfg, db)
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Writes `dir/tenure.toml` for the sandbox at `url` (email sent from a mailbox of the
/// customer's: the sandbox has no MSP tenant), followed by `more`; returns its path.
pub(crate) fn config(dir: &Path, url: &str, more: &str) -> std::path::PathBuf {
    let cfg = dir.join("tenure.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sandbox]\nurl = \"{url}\"\n\n[email]\nfrom = \"megan.bowen@contoso.example\"\n{more}"
        ),
    )
    .unwrap();
    cfg
}

/// A `tenure worker --concurrency 2` of `cfg` and `db`.
pub(crate) fn worker(cfg: &Path, db: &str) -> Worker {
    Worker(
        crate::Tenure::new()
            .arg("--config")
            .arg(cfg)
            .args(["--db", db, "worker", "--concurrency", "2"])
            .current_dir(root())
            .spawn(),
    )
}

/// Ids, times and the sandbox's port made stable.
fn normalise(report: &str) -> String {
    let uuid =
        regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC").unwrap();
    let tap = regex::Regex::new(r"valid until \S+").unwrap();
    let text = uuid.replace_all(report, "<id>");
    let text = time.replace_all(&text, "<time>");
    tap.replace_all(&text, "valid until <time>").into_owned()
}

/// The `tests/e2e/reports` corpus, in file order (the cases share one sandbox, one after the
/// other, so the ids the PSA hands out are stable).
#[test]
fn stock_runbooks_run_end_to_end_and_report_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::sandbox::serve(&dir.path().join("state.json"));
    let cfg = config(dir.path(), &url, "");
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let _worker = worker(&cfg, &db);
    let corpus = root().join("tests/e2e/reports");
    let mut cases: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 6, "the corpus is there");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut runs = std::collections::BTreeMap::new();
    let mut mismatches = Vec::new();
    for case in &cases {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        let spec: Value = serde_json::from_str(&std::fs::read_to_string(case).unwrap()).unwrap();
        let mut args = vec!["run".to_string(), spec["runbook"].as_str().unwrap().into()];
        for (k, v) in spec["inputs"].as_object().unwrap() {
            args.push("-i".into());
            args.push(format!("{k}={}", v.as_str().unwrap()));
        }
        args.push("--detach".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = tenure(&cfg, &db, &args);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stderr(&o));
        let id = stdout(&o).trim().to_string();
        for a in spec["approve"].as_array().unwrap() {
            let (step, who, comment) = (
                a[0].as_str().unwrap(),
                a[1].as_str().unwrap(),
                a[2].as_str().unwrap(),
            );
            let target = format!("{id}:{step}");
            let mut args = vec!["approve", &target, "--as", who];
            if !comment.is_empty() {
                args.extend(["--comment", comment]);
            }
            // The gate opens once the worker reaches the step.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let o = tenure(&cfg, &db, &args);
                if o.status.success() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: cannot approve: {}",
                    stderr(&o)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let finals = ["succeeded", "failed", "denied", "cancelled", "rolled_back"];
        // A case may end parked on a long wait (`"waits_at": STEP`): waiting there is its end.
        let parked = spec["waits_at"]
            .as_str()
            .map(|step| format!("{step}[0] waits until"));
        let status = loop {
            let s = status_of(&cfg, &db, &id);
            if finals.contains(&s.as_str()) {
                break s;
            }
            if let Some(line) = &parked {
                if s == "waiting"
                    && stdout(&tenure(&cfg, &db, &["log", &id])).contains(line.as_str())
                {
                    break s;
                }
            }
            assert!(Instant::now() < deadline, "{name}: run {id} is still {s}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = stdout(&tenure(&cfg, &db, &["log", &id]));
        assert_eq!(status, spec["status"].as_str().unwrap(), "{name}: {log}");
        let o = tenure(&cfg, &db, &["log", &id, "--report"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let report = stdout(&o);
        assert!(!report.contains("sealed:"), "{report}");
        let got = normalise(&report);
        let snap = corpus.join(format!("{name}.md"));
        if update {
            std::fs::write(&snap, &got).unwrap();
        } else if std::fs::read_to_string(&snap).unwrap_or_default() != got {
            mismatches.push(format!("--- {name}.md\n{got}"));
        }
        let html = stdout(&tenure(&cfg, &db, &["log", &id, "--report", "--html"]));
        assert!(html.contains("<h2>Run report: "), "{html}");
        runs.insert(name, (id, report));
    }
    assert!(
        mismatches.is_empty(),
        "reports differ from their snapshots (UPDATE_EXPECT=1 rewrites them):\n{}",
        mismatches.join("\n")
    );

    let s = state(&url);
    let pushes = s["pushes"].as_array().unwrap();
    let emails = s["inbox"]["email"].as_array().unwrap();
    let posts = s["inbox"]["teams"].as_array().unwrap();
    let notes = s["halo"]["notes"].as_array().unwrap();
    let link_of = |run: &str| -> String {
        let push = pushes
            .iter()
            .find(|p| p["note"].as_str().unwrap_or_default().contains(run))
            .unwrap_or_else(|| panic!("no push for run {run}: {pushes:?}"));
        format!(
            "{url}/pwpush.com/p/{}/r",
            push["url_token"].as_str().unwrap()
        )
    };
    // A run's own email to `to` (not the approval requests its approvers were sent).
    let email_to = |to: &str, run: &str| -> &Value {
        emails
            .iter()
            .find(|m| {
                let instance = m["message"]["internetMessageHeaders"][0]["value"]
                    .as_str()
                    .unwrap_or_default();
                m["message"]["toRecipients"][0]["emailAddress"]["address"] == to
                    && instance.starts_with(run)
                    && !instance.contains("#notify:")
            })
            .unwrap_or_else(|| panic!("no email to {to} from run {run}: {emails:#?}"))
    };
    let post_of = |title: &str| -> String {
        posts
            .iter()
            .map(|p| p["body"].to_string())
            .find(|b| b.contains(title))
            .unwrap_or_else(|| panic!("no Teams post {title}: {posts:#?}"))
    };
    let note_of = |run: &str| -> &str {
        notes
            .iter()
            .filter_map(|n| n["text"].as_str())
            .find(|t| t.contains(&format!("[tenure {run}:ticket_note:0]")))
            .unwrap_or_else(|| panic!("no ticket note of run {run}"))
    };
    let adele = user(&s, "adele.vance@contoso.example")["id"].clone();

    // The new hire: account, manager, licence, groups, PSA contact.
    let (onboard, _) = &runs["1-onboard"];
    let jane = user(&s, "jane.doe@contoso.example");
    assert_eq!(jane["managerId"], adele);
    assert_eq!(jane["jobTitle"], "Analyst");
    assert_eq!(
        jane["assignedLicenses"].as_array().map(Vec::len),
        Some(1),
        "{jane}"
    );
    let contacts = s["halo"]["contacts"].as_array().unwrap();
    assert!(contacts
        .iter()
        .any(|c| c["email"] == "jane.doe@contoso.example" && c["active"] == true));
    // The one-view password link went to the manager by email, and nowhere else: not to the
    // Teams channel (whoever opened it first there would burn it).
    let link = link_of(onboard);
    let mail = email_to("adele.vance@contoso.example", onboard);
    let body = mail["message"]["body"]["content"].as_str().unwrap();
    assert!(body.contains(&link), "{body}");
    assert!(body.contains("jane.doe@contoso.example") && body.contains("https://www.office.com"));
    // The new hire's own address is welcomed, without the password link.
    let own = email_to("jane.doe@personal.example", onboard);
    let own = own["message"]["body"]["content"].as_str().unwrap();
    assert!(
        !own.contains(&link)
            && own.contains("jane.doe@contoso.example")
            && own.contains("adele.vance@contoso.example"),
        "{own}"
    );
    let post = post_of("New starter ready: Jane Doe");
    assert!(
        !post.contains(&link) && post.contains("jane.doe@contoso.example"),
        "{post}"
    );
    let note = note_of(onboard);
    assert!(note.contains("Run report: onboard-user"), "{note}");
    assert!(
        note.contains("Created user jane.doe@contoso.example"),
        "{note}"
    );
    assert!(
        !note.contains(&link),
        "the link is only where it is delivered"
    );
    let journal = stdout(&tenure(&cfg, &db, &["log", onboard, "--json"]));
    assert!(
        !journal.contains(&link),
        "the link never reaches the journal"
    );

    // Only a name: nothing sent (but the approval request), no note; the name folded to ASCII.
    let (minimal, _) = &runs["2-onboard-minimal"];
    assert!(user(&s, "jose.nunez@contoso.example")["managerId"].is_null());
    assert!(!emails.iter().any(|m| {
        let instance = m["message"]["internetMessageHeaders"][0]["value"]
            .as_str()
            .unwrap_or_default();
        instance.starts_with(minimal.as_str()) && !instance.contains("#notify:")
    }));

    // The contractor: sponsor as manager, the pass link to the sponsor by email and Teams.
    let (contractor, _) = &runs["3-contractor"];
    let sam = user(&s, "ext.sam.lee@contoso.example");
    assert_eq!(sam["managerId"], adele);
    assert_eq!(sam["companyName"], "Northwind");
    let link = link_of(contractor);
    let body = email_to("adele.vance@contoso.example", contractor)["message"]["body"]["content"]
        .as_str()
        .unwrap();
    assert!(body.contains(&link), "{body}");
    let post = post_of("Contractor ready: Sam Lee");
    assert!(!post.contains(&link), "{post}");
    assert!(note_of(contractor).contains("Created a Temporary Access Pass"));

    // The mover: the PSA contact's title, and the note.
    let (transfer, _) = &runs["4-transfer"];
    assert!(contacts
        .iter()
        .any(|c| c["email"] == "isaiah.langer@contoso.example" && c["title"] == "Controller"));
    let isaiah = user(&s, "isaiah.langer@contoso.example");
    assert_eq!(isaiah["department"], "Finance");
    assert_eq!(
        isaiah["managerId"],
        user(&s, "lidia.holloway@contoso.example")["id"]
    );
    let note = note_of(transfer);
    assert!(
        note.contains(
            "Set the manager of isaiah.langer@contoso.example to lidia.holloway@contoso.example"
        ),
        "{note}"
    );

    // The leaver: PSA contact deactivated for real, and the report on the ticket.
    let (offboard, _) = &runs["5-offboard"];
    assert!(contacts
        .iter()
        .any(|c| c["email"] == "alex.wilber@contoso.example" && c["active"] == false));
    let note = note_of(offboard);
    assert!(
        note.contains("Blocked sign-in for alex.wilber@contoso.example"),
        "{note}"
    );
    assert!(note.contains("Deactivated the PSA contact"), "{note}");

    // The failure: Teams hears of it, with the vendor's message and the report.
    let (_, report) = &runs["6-onboard-failed"];
    let alert = post_of("Onboarding failed");
    assert!(
        alert.contains("no user `nobody.here@contoso.example`"),
        "{alert}"
    );
    assert!(alert.contains("Run report: onboard-user"), "{alert}");
    assert!(report.contains("### Failures"), "{report}");
}
