//! `tenure sync` end to end against the sandbox in its own process, with a worker: an HR
//! export (CSV) with a new person, a changed one, a returning one, a leaver, an ambiguous one
//! and a hybrid one gives exactly the expected situations and lists; `--apply` (each run's
//! approval given from the terminal) brings the tenant to the export's state; a second sync
//! finds nothing to do; an empty export is stopped by the guard and changes nothing; a link
//! survives a rename of the account's sign-in name.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::sandbox::{patch_user, state, user, users};
use crate::stock::{config, runs, tenure, worker, Worker};
use crate::{root, stderr, stdout};

/// The sync's JSON (`tenure sync hr --json [more]`), with its exit code.
fn sync(cfg: &Path, db: &str, more: &[&str]) -> (i32, Value) {
    let mut args = vec!["sync", "hr", "--json"];
    args.extend_from_slice(more);
    let o = tenure(cfg, db, &args);
    let out = stdout(&o);
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}{}", stderr(&o)));
    (o.status.code().unwrap_or(-1), v)
}

/// (person key, situation, action, blocked?) of each item that names a person.
fn situations(v: &Value) -> Vec<(String, String, String, bool)> {
    v["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["person"].is_object())
        .map(|i| {
            (
                i["person"]["key"].as_str().unwrap().to_string(),
                i["situation"].as_str().unwrap().to_string(),
                i["action"].as_str().unwrap().to_string(),
                !i["blocked"].is_null(),
            )
        })
        .collect()
}

/// Approves every waiting gate of the runs `ids` and waits until they all end.
fn approve_and_finish(cfg: &Path, db: &str, ids: &[String]) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = runs(cfg, db);
        let mine: Vec<&Value> = runs
            .iter()
            .filter(|r| ids.iter().any(|i| r["id"] == i.as_str()))
            .collect();
        let finals = ["succeeded", "failed", "denied", "cancelled", "rolled_back"];
        if mine.len() == ids.len()
            && mine
                .iter()
                .all(|r| finals.contains(&r["status"].as_str().unwrap_or_default()))
        {
            return mine
                .iter()
                .map(|r| {
                    (
                        r["runbook"].as_str().unwrap().to_string(),
                        r["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
        }
        for r in &mine {
            if r["status"] == "waiting" {
                let target = format!("{}:approve", r["id"].as_str().unwrap());
                let _ = tenure(
                    cfg,
                    db,
                    &["approve", &target, "--as", "it-lead@msp.example"],
                );
            }
        }
        assert!(Instant::now() < deadline, "runs still going: {mine:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `tenure serve --runbooks` and, beside it, a `tenure worker --runbooks` (each logging to
/// `serve.log` and `worker.log` in `dir`); both killed when dropped.
fn serve_and_worker(cfg: &Path, db: &str, dir: &Path) -> (Worker, Worker) {
    let runbooks = root().join("runbooks");
    let spawn = |args: &[&str], log: &str| {
        Worker(
            crate::Tenure::new()
                .arg("--config")
                .arg(cfg)
                .args(["--db", db])
                .args(args)
                .arg(&runbooks)
                .current_dir(root())
                .env_remove("TENURE_SANDBOX")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(dir.join(log)).unwrap())
                .spawn(),
        )
    };
    (
        spawn(
            &["serve", "--listen", "127.0.0.1:0", "--runbooks"],
            "serve.log",
        ),
        spawn(&["worker", "--runbooks"], "worker.log"),
    )
}

/// Waits (30 s at most) until at least three scheduled syncs are listed and more than `after`
/// has passed; returns the list (`tenure sync --list --json`) and the time waited.
fn scheduled_syncs(cfg: &Path, db: &str, dir: &Path, after: Duration) -> (Vec<Value>, Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    loop {
        let o = tenure(cfg, db, &["sync", "--list", "--json"]);
        let list: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
        let elapsed = started.elapsed();
        if list.len() >= 3 && elapsed > after {
            return (list, elapsed);
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled syncs: {list:#?}\n{}",
            std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The `[[sync]]` of the first test: an HR export's columns mapped to Entra attributes.
const SYNC_HR: &str = r#"
[[sync]]
id = "hr"
tenant = "contoso"

[sync.source]
kind = "csv"
path = "people.csv"

[sync.map]
key = "{{employee_number}}"
active = "{{status}}"
displayName = "{{first_name}} {{last_name}}"
givenName = "{{first_name}}"
surname = "{{last_name}}"
department = "{{department}}"
jobTitle = "{{title}}"
employeeId = "{{employee_number}}"
usageLocation = "AU"
manager = "{{manager_email}}"
userPrincipalName = "{{upn}}"
"#;

const HEADER: &str =
    "employee_number,first_name,last_name,department,title,manager_email,status,upn\n";

#[test]
fn a_sync_plans_applies_settles_guards_and_follows_renames() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::sandbox::serve(&dir.path().join("state.json"));
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let cfg = config(dir.path(), &url, SYNC_HR);
    let _worker = worker(&cfg, &db);

    // The tenant before: Megan already carries her employee id; Lidia left and was disabled;
    // a botched migration gave Lynne and Nestor the same employee id.
    patch_user(
        &url,
        "megan.bowen@contoso.example",
        json!({"employeeId": "E100"}),
    );
    patch_user(
        &url,
        "lidia.holloway@contoso.example",
        json!({"accountEnabled": false}),
    );
    patch_user(
        &url,
        "lynne.robbins@contoso.example",
        json!({"employeeId": "E106"}),
    );
    patch_user(
        &url,
        "nestor.wilke@contoso.example",
        json!({"employeeId": "E106"}),
    );
    let before = state(&url);
    let manager_of = |upn: &str| -> String {
        let id = user(&before, upn)["managerId"].clone();
        users(&before)
            .iter()
            .find(|u| u["id"] == id)
            .map(|u| u["userPrincipalName"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let row = |key: &str, upn: &str, dept: &str, title: &str, status: &str| -> String {
        let u = user(&before, upn);
        format!(
            "{key},{},{},{dept},{title},{},{status},{upn}\n",
            u["givenName"].as_str().unwrap(),
            u["surname"].as_str().unwrap(),
            manager_of(upn)
        )
    };
    let csv = [
        HEADER.to_string(),
        // found by employee id, nothing differs: linked only
        row(
            "E100",
            "megan.bowen@contoso.example",
            "Sales",
            "Director",
            "active",
        ),
        // found by sign-in name, moved to Finance: update
        row(
            "E101",
            "isaiah.langer@contoso.example",
            "Finance",
            "Specialist",
            "active",
        ),
        // new
        "E102,Jane,Doe,Sales,Analyst,adele.vance@contoso.example,active,jane.doe@contoso.example\n"
            .into(),
        // terminated: deactivate
        row(
            "E103",
            "alex.wilber@contoso.example",
            "Finance",
            "Director",
            "terminated",
        ),
        // back: activate
        row(
            "E104",
            "lidia.holloway@contoso.example",
            "Sales",
            "Specialist",
            "active",
        ),
        // hybrid, promoted: the update is blocked
        row(
            "E105",
            "pradeep.gupta@contoso.example",
            "Engineering",
            "Lead",
            "active",
        ),
        // two accounts carry E106: ambiguous
        "E106,Sam,Two,Sales,Specialist,,active,sam.two@contoso.example\n".into(),
    ]
    .concat();
    std::fs::write(dir.path().join("people.csv"), &csv).unwrap();

    // The plan.
    let (code, plan) = sync(&cfg, &db, &[]);
    assert_eq!(code, 0, "{plan:#}");
    let s = |k: &str, sit: &str, act: &str, blocked: bool| {
        (k.to_string(), sit.to_string(), act.to_string(), blocked)
    };
    assert_eq!(
        situations(&plan),
        [
            s("E100", "found", "none", false),
            s("E101", "found", "update", false),
            s("E102", "absent", "create", false),
            s("E103", "found", "deactivate", false),
            s("E104", "found", "activate", false),
            s("E105", "found", "update", true),
            s("E106", "ambiguous", "report", false),
        ],
        "{plan:#}"
    );
    assert_eq!(plan["status"], "planned");
    assert!(
        plan["summary"]
            .as_str()
            .unwrap()
            .starts_with("1 new, 1 update, 1 activate, 1 deactivate"),
        "{}",
        plan["summary"]
    );
    assert!(plan["requests"].as_i64().unwrap() > 0);
    assert_eq!(
        state(&url)["tenants"][0]["users"],
        before["tenants"][0]["users"],
        "a plan changes nothing"
    );

    // Apply: four runs; their approvals given; the tenant follows the export.
    let (code, applied) = sync(&cfg, &db, &["--apply"]);
    assert_eq!(code, 0, "{applied:#}");
    assert_eq!(applied["status"], "applied", "{applied:#}");
    let ids: Vec<String> = applied["outcome"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    let mut ended = approve_and_finish(&cfg, &db, &ids);
    ended.sort();
    let ok = |rb: &str| (rb.to_string(), "succeeded".to_string());
    assert_eq!(
        ended,
        [
            ok("offboard-user"),
            ok("onboard-user"),
            ok("rehire"),
            ok("update-profile")
        ]
    );
    let after = state(&url);
    let jane = user(&after, "jane.doe@contoso.example");
    assert_eq!(jane["employeeId"], "E102");
    assert_eq!(jane["department"], "Sales");
    assert_eq!(jane["jobTitle"], "Analyst");
    assert_eq!(
        jane["managerId"],
        user(&after, "adele.vance@contoso.example")["id"]
    );
    let isaiah = user(&after, "isaiah.langer@contoso.example");
    assert_eq!(isaiah["department"], "Finance");
    assert_eq!(isaiah["employeeId"], "E101");
    assert_eq!(
        user(&after, "alex.wilber@contoso.example")["accountEnabled"],
        false
    );
    let lidia = user(&after, "lidia.holloway@contoso.example");
    assert_eq!(lidia["accountEnabled"], true);
    assert_eq!(lidia["employeeId"], "E104");
    assert_eq!(
        user(&after, "pradeep.gupta@contoso.example"),
        user(&before, "pradeep.gupta@contoso.example"),
        "hybrid: untouched"
    );
    assert_eq!(
        user(&after, "lynne.robbins@contoso.example")["accountEnabled"],
        true
    );

    // Again: nothing to do (Jane's link settled from her run; the rest confirmed).
    let (code, again) = sync(&cfg, &db, &["--apply"]);
    assert_eq!(code, 0, "{again:#}");
    assert_eq!(again["status"], "nothing_to_do", "{again:#}");
    assert_eq!(again["outcome"], json!({}), "{again:#}");
    let confirmed: Vec<_> = situations(&again)
        .into_iter()
        .filter(|(_, sit, _, _)| sit == "confirmed")
        .map(|(k, ..)| k)
        .collect();
    assert_eq!(confirmed, ["E100", "E101", "E102", "E103", "E104", "E105"]);

    // An empty export: the guard stops it, nothing changes.
    std::fs::write(dir.path().join("people.csv"), HEADER).unwrap();
    let (code, guarded) = sync(&cfg, &db, &["--apply", "--force"]);
    assert_eq!(code, 3, "{guarded:#}");
    assert_eq!(guarded["status"], "guarded");
    assert!(
        guarded["plan"]["guard"]
            .as_str()
            .unwrap()
            .contains("no person"),
        "{guarded:#}"
    );
    assert_eq!(
        state(&url)["tenants"][0]["users"],
        after["tenants"][0]["users"]
    );

    // A rename: the link follows the account; no create.
    std::fs::write(dir.path().join("people.csv"), &csv).unwrap();
    patch_user(
        &url,
        "isaiah.langer@contoso.example",
        json!({"userPrincipalName": "isaiah.l@contoso.example"}),
    );
    let (code, renamed) = sync(&cfg, &db, &[]);
    assert_eq!(code, 0, "{renamed:#}");
    let isaiah = renamed["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["person"]["key"] == "E101")
        .unwrap();
    assert_eq!(isaiah["situation"], "confirmed", "{isaiah:#}");
    assert_eq!(isaiah["action"], "none", "{isaiah:#}");
    assert_eq!(
        isaiah["account"]["user_principal_name"],
        "isaiah.l@contoso.example"
    );
    assert_eq!(renamed["status"], "nothing_to_do", "{renamed:#}");
    let o = tenure(&cfg, &db, &["people", "status", "isaiah.l@contoso.example"]);
    let out = stdout(&o);
    assert!(
        out.contains("linked to hr person E101"),
        "{out}{}",
        stderr(&o)
    );

    // HR empties Isaiah's title and manager: the update clears them (Graph null, the manager
    // reference deleted), and the next sync finds nothing to do.
    let isaiah = user(&before, "isaiah.langer@contoso.example");
    let emptied = format!(
        "E101,{},{},Finance,,,active,isaiah.langer@contoso.example\n",
        isaiah["givenName"].as_str().unwrap(),
        isaiah["surname"].as_str().unwrap()
    );
    let cleared_csv: String = csv
        .lines()
        .map(|l| {
            if l.starts_with("E101,") {
                emptied.clone()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("people.csv"), &cleared_csv).unwrap();
    let (code, clearing) = sync(&cfg, &db, &["--apply"]);
    assert_eq!(code, 0, "{clearing:#}");
    let item = clearing["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["person"]["key"] == "E101")
        .unwrap()
        .clone();
    assert_eq!(item["action"], "update", "{item:#}");
    let cleared: Vec<&str> = item["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["to"].is_null())
        .map(|c| c["attribute"].as_str().unwrap())
        .collect();
    assert!(
        cleared.contains(&"jobTitle") && cleared.contains(&"manager"),
        "{item:#}"
    );
    let ids: Vec<String> = clearing["outcome"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(approve_and_finish(&cfg, &db, &ids), [ok("update-profile")]);
    let isaiah = user(&state(&url), "isaiah.l@contoso.example").clone();
    assert!(isaiah["jobTitle"].is_null(), "{isaiah:#}");
    assert!(isaiah["managerId"].is_null(), "{isaiah:#}");
    assert_eq!(isaiah["department"], "Finance");
    let (code, settled) = sync(&cfg, &db, &["--apply"]);
    assert_eq!(code, 0, "{settled:#}");
    assert_eq!(settled["status"], "nothing_to_do", "{settled:#}");

    // The history.
    let o = tenure(&cfg, &db, &["sync", "--list", "--json"]);
    let list: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let statuses: Vec<&str> = list.iter().map(|s| s["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        [
            "nothing_to_do",
            "applied",
            "nothing_to_do",
            "guarded",
            "nothing_to_do",
            "applied",
            "planned"
        ]
    );
}

/// `tenure serve` (and a `tenure worker --runbooks` beside it) syncs a `[[sync]]` with a
/// `schedule` at its ticks, one node per tick (mode `scheduled`, applied): the new person's joiner run is started once however many ticks see them (the
/// pending link blocks a second create, and its dedup key would refuse one).
#[test]
fn serve_syncs_a_scheduled_source_and_never_starts_a_joiner_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::sandbox::serve(&dir.path().join("state.json"));
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let cfg = dir.path().join("tenure.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sandbox]\nurl = \"{url}\"\n\n[[sync]]\nid = \"hr\"\ntenant = \"contoso\"\nschedule = \"* * * * * *\"\n\n\
             [sync.source]\nkind = \"csv\"\npath = \"people.csv\"\n\n[sync.map]\nkey = \"{{{{id}}}}\"\n\
             givenName = \"{{{{given}}}}\"\nsurname = \"{{{{family}}}}\"\ndisplayName = \"{{{{given}}}} {{{{family}}}}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("people.csv"),
        "id,given,family\nE900,Tick,Tock\n",
    )
    .unwrap();
    // A second node runs the schedules too: each tick is synced by one of them.
    let nodes = serve_and_worker(&cfg, &db, dir.path());
    let (list, elapsed) = scheduled_syncs(&cfg, &db, dir.path(), Duration::from_secs(5));
    // One sync a second at most (the first tick only marks the schedule as seen).
    let seconds = elapsed.as_secs() as usize + 1;
    assert!(
        list.len() <= seconds,
        "{} syncs in {seconds} s: {list:#?}",
        list.len()
    );
    drop(nodes);
    assert!(list.iter().all(|s| s["mode"] == "scheduled"), "{list:#?}");
    // The oldest applied the plan; the later ones found the joiner under way.
    assert_eq!(list.last().unwrap()["status"], "applied", "{list:#?}");
    assert!(list.last().unwrap()["requests"].as_i64().unwrap() > 0);
    let runs = runs(&cfg, &db);
    let joiners = runs
        .iter()
        .filter(|r| r["runbook"] == "onboard-user")
        .count();
    assert_eq!(joiners, 1, "{runs:#?}");
}

/// Clear errors: an unknown source (naming the configured ones), an unreadable export, a
/// broken `[[sync]]` entry; none of them records or changes anything.
#[test]
fn sync_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let cfg = dir.path().join("tenure.toml");
    let good = "[[sync]]\nid = \"hr\"\ntenant = \"contoso\"\n\n[sync.source]\nkind = \"csv\"\npath = \"missing.csv\"\n\n[sync.map]\nkey = \"{{id}}\"\n";
    std::fs::write(&cfg, good).unwrap();

    let o = tenure(&cfg, &db, &["sync", "payroll"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no sync source `payroll`; configured: hr"),
        "{}",
        stderr(&o)
    );

    let o = tenure(&cfg, &db, &["sync", "hr"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("source `hr`") && err.contains("missing.csv"),
        "{err}"
    );

    let o = tenure(&cfg, &db, &["sync", "--list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "No sync yet.");

    std::fs::write(
        &cfg,
        good.replace("key = \"{{id}}\"\n", "name = \"{{id}}\"\n"),
    )
    .unwrap();
    let o = tenure(&cfg, &db, &["sync", "hr"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("[[sync]] `hr`"), "{}", stderr(&o));

    // A [sync.runbooks] input that would render null (a misspelled nested path) or that the
    // runbook does not declare is refused when the configuration loads, naming the file.
    let runbooks = "\n[sync.runbooks.update]\nrunbook = \"update-profile\"\n";
    std::fs::write(
        &cfg,
        format!("{good}{runbooks}inputs = {{ user = \"{{{{account.user_principal_name}}}}\", department = \"{{{{person.department.name}}}}\" }}\n"),
    )
    .unwrap();
    let o = tenure(&cfg, &db, &["sync", "hr"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&cfg.display().to_string())
            && err.contains("[sync.runbooks.update] input `department`")
            && err.contains("`person.department` is a single value"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        format!("{good}{runbooks}inputs = {{ user = \"{{{{account.user_principal_name}}}}\", dept = \"{{{{changes.department}}}}\" }}\n"),
    )
    .unwrap();
    let o = tenure(&cfg, &db, &["sync", "hr"]);
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{}:14: [[sync]] `hr`", cfg.display()))
            && err.contains("input `dept` is not an input of the runbook `update-profile`"),
        "{err}"
    );
}

/// `--approve-by`: the whole sync is one `people-sync-batch` run with one approval; its called
/// runs ask none; the next sync links the new account by correlation, the one after finds
/// nothing to do. Then links by hand: unlink, link again, and a second person refused the
/// same account.
#[test]
fn one_approval_for_a_whole_sync_and_links_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::sandbox::serve(&dir.path().join("state.json"));
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let cfg = config(
        dir.path(),
        &url,
        "\n[[sync]]\nid = \"hr\"\ntenant = \"contoso\"\n\n\
         [sync.source]\nkind = \"csv\"\npath = \"people.csv\"\n\n[sync.map]\nkey = \"{{id}}\"\nactive = \"{{status}}\"\n\
         givenName = \"{{given}}\"\nsurname = \"{{family}}\"\ndepartment = \"{{dept}}\"\nemployeeId = \"{{id}}\"\n\
         userPrincipalName = \"{{upn}}\"\n",
    );
    std::fs::write(
        dir.path().join("people.csv"),
        "id,given,family,dept,status,upn\n\
         E201,Isaiah,Langer,Finance,active,isaiah.langer@contoso.example\n\
         E202,Jane,Doe,Sales,active,jane.doe@contoso.example\n\
         E203,Alex,Wilber,Finance,terminated,alex.wilber@contoso.example\n",
    )
    .unwrap();
    let _worker = worker(&cfg, &db);
    // Only the approvers the batch runbook lists may be named: a batch's approval stands in
    // for its runs' own gates.
    let o = tenure(
        &cfg,
        &db,
        &[
            "sync",
            "hr",
            "--apply",
            "--approve-by",
            "me@elsewhere.example",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("`me@elsewhere.example` is not one of `it-lead@msp.example`"),
        "{}",
        stderr(&o)
    );
    let none = runs(&cfg, &db);
    assert!(none.is_empty(), "{none:#?}");
    let (code, applied) = sync(
        &cfg,
        &db,
        &["--apply", "--approve-by", "it-lead@msp.example"],
    );
    assert_eq!(code, 0, "{applied:#}");
    let started = applied["outcome"]["runs"].as_array().unwrap();
    assert_eq!(started.len(), 1, "{applied:#}");
    assert_eq!(started[0]["runbook"], "people-sync-batch");
    let batch = started[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        approve_and_finish(&cfg, &db, std::slice::from_ref(&batch)),
        [("people-sync-batch".to_string(), "succeeded".to_string())]
    );
    let all = runs(&cfg, &db);
    let mut children: Vec<(&str, &str)> = all
        .iter()
        .filter(|r| r["parent"]["run"] == batch.as_str())
        .map(|r| {
            (
                r["runbook"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    children.sort();
    assert_eq!(
        children,
        [
            ("offboard-user", "succeeded"),
            ("onboard-user", "succeeded"),
            ("update-profile", "succeeded")
        ]
    );
    let s = state(&url);
    assert_eq!(user(&s, "jane.doe@contoso.example")["employeeId"], "E202");
    assert_eq!(
        user(&s, "isaiah.langer@contoso.example")["department"],
        "Finance"
    );
    assert_eq!(
        user(&s, "alex.wilber@contoso.example")["accountEnabled"],
        false
    );

    let (_, linked) = sync(&cfg, &db, &["--apply"]);
    assert_eq!(
        linked["status"], "applied",
        "the new account linked: {linked:#}"
    );
    assert_eq!(linked["outcome"]["runs"], json!([]), "{linked:#}");
    let (_, idle) = sync(&cfg, &db, &["--apply"]);
    assert_eq!(idle["status"], "nothing_to_do", "{idle:#}");
    let o = tenure(&cfg, &db, &["sync", "hr"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.contains("of `hr` for contoso: nothing to do") && table.contains("delta read"),
        "{table}"
    );

    let o = tenure(&cfg, &db, &["people", "unlink", "E203"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tenure(&cfg, &db, &["people", "unlink", "E203"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("has no link"), "{}", stderr(&o));
    let o = tenure(
        &cfg,
        &db,
        &["people", "link", "E203", "alex.wilber@contoso.example"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("linked hr person E203 to alex.wilber@contoso.example"));
    let o = tenure(
        &cfg,
        &db,
        &["people", "link", "E202", "alex.wilber@contoso.example"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("already linked to person `E203`"),
        "{}",
        stderr(&o)
    );
    // A key the source does not list (a typo) would be source_missing at the next sync and
    // its account deactivated: refused, nothing linked. A key with a control character too.
    let o = tenure(
        &cfg,
        &db,
        &["people", "link", "E2O1", "patti.fernandez@contoso.example"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("source `hr` lists no person `E2O1` (3 people)")
            && stderr(&o).contains("nothing was linked"),
        "{}",
        stderr(&o)
    );
    let o = tenure(
        &cfg,
        &db,
        &[
            "people",
            "link",
            "E201\u{1b}[2J",
            "patti.fernandez@contoso.example",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("holds a control character") && !stderr(&o).contains('\u{1b}'),
        "{}",
        stderr(&o)
    );
    let o = tenure(
        &cfg,
        &db,
        &["people", "status", "alex.wilber@contoso.example"],
    );
    assert!(
        stdout(&o).contains("linked to hr person E203 (manual"),
        "{}",
        stdout(&o)
    );
    // A display name holding terminal escapes is shown as text, not sent to the terminal.
    patch_user(
        &url,
        "alex.wilber@contoso.example",
        json!({"displayName": "Alex \u{1b}]0;pwned\u{7}\u{1b}[2JWilber"}),
    );
    let o = tenure(
        &cfg,
        &db,
        &["people", "status", "alex.wilber@contoso.example"],
    );
    assert!(
        stdout(&o).contains("account Alex \u{fffd}]0;pwned\u{fffd}\u{fffd}[2JWilber (")
            && !stdout(&o).contains('\u{1b}'),
        "{}",
        stdout(&o)
    );
}

/// `[sync.policy] approval`: a scheduled sync puts its whole batch behind one approval. Ticks
/// every second start exactly one `people-sync-batch` run, waiting on its gate, and nothing
/// else; once approved from the terminal, the called joiner runs without asking again and the
/// account exists. Approvers the batch runbook does not allow are refused when the
/// configuration is loaded.
#[test]
fn a_scheduled_sync_with_approval_starts_one_batch_behind_one_gate() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = crate::sandbox::serve(&dir.path().join("state.json"));
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let cfg = dir.path().join("tenure.toml");
    let config = |approver: &str| {
        format!(
            "[sandbox]\nurl = \"{url}\"\n\n[[sync]]\nid = \"hr\"\ntenant = \"contoso\"\nschedule = \"* * * * * *\"\n\n\
             [sync.source]\nkind = \"csv\"\npath = \"people.csv\"\n\n[sync.map]\nkey = \"{{{{id}}}}\"\n\
             givenName = \"{{{{given}}}}\"\nsurname = \"{{{{family}}}}\"\ndisplayName = \"{{{{given}}}} {{{{family}}}}\"\n\
             employeeId = \"{{{{id}}}}\"\n\n[sync.policy]\napproval = [\"{approver}\"]\n"
        )
    };
    std::fs::write(
        dir.path().join("people.csv"),
        "id,given,family\nE900,Tick,Tock\n",
    )
    .unwrap();

    // Someone the batch runbook does not list: refused at load, before anything starts.
    std::fs::write(&cfg, config("mallory@contoso.example")).unwrap();
    let o = tenure(&cfg, &db, &["sync", "hr"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("[sync.policy] approval")
            && err.contains("`mallory@contoso.example` may not approve")
            && err.contains("it-lead@msp.example"),
        "{err}"
    );

    std::fs::write(&cfg, config("it-lead@msp.example")).unwrap();
    let nodes = serve_and_worker(&cfg, &db, dir.path());
    let runs = || -> Vec<Value> {
        serde_json::from_slice(&tenure(&cfg, &db, &["runs", "--json"]).stdout).unwrap_or_default()
    };
    let (list, _) = scheduled_syncs(&cfg, &db, dir.path(), Duration::from_secs(4));
    assert!(list.iter().all(|s| s["mode"] == "scheduled"), "{list:#?}");
    // Several ticks, one run: the batch, waiting on its one gate.
    let all = runs();
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["runbook"], "people-sync-batch", "{all:#?}");
    assert_eq!(all[0]["status"], "waiting", "{all:#?}");
    let batch = all[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        users(&state(&url))
            .iter()
            .filter(|u| u["employeeId"] == "E900")
            .count(),
        0,
        "nothing is done before the approval"
    );

    // Approved: the called joiner runs without a gate of its own and the account exists.
    let o = tenure(
        &cfg,
        &db,
        &[
            "approve",
            &format!("{batch}:approve"),
            "--as",
            "it-lead@msp.example",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        let all = runs();
        let finished = |r: &Value| r["status"] == "succeeded";
        if all.iter().any(|r| r["id"] == batch.as_str() && finished(r)) {
            break all;
        }
        assert!(
            all.iter().all(|r| r["status"] != "failed"),
            "{all:#?}\n{}",
            std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "the batch did not finish: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    drop(nodes);
    let mut names: Vec<(&str, &str)> = done
        .iter()
        .map(|r| {
            (
                r["runbook"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("onboard-user", "succeeded"),
            ("people-sync-batch", "succeeded")
        ],
        "{done:#?}"
    );
    assert_eq!(
        users(&state(&url))
            .iter()
            .filter(|u| u["employeeId"] == "E900")
            .count(),
        1
    );
}
