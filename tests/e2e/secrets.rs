//! Secrets never leak: secret inputs (one, and a list), and a vendor answer that echoes them,
//! go through every surface (`run` output and stderr, `log`, `log --json`, `runs --json`,
//! `plan`, the database and its WAL, debug tracing) and none shows them in clear.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;

use crate::{stderr, stdout};

const KEY: &str = "Sup3rSecretKey";
const LIST: [&str; 2] = ["Alpha-1234", "Beta-5678"];

fn tenure(db: &str, args: &[&str]) -> Output {
    crate::Tenure::new()
        .arg("--db")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("TENURE_CONFIG")
        .output()
}

/// A server that answers every request with `status` and a body echoing the request line.
fn echo(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or_default().replace('"', "'");
            let body = format!("{{\"echo\": \"{line}\", \"{KEY}\": 1}}");
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn runbook(url: &str) -> String {
    format!(
        "runbook: leak\nversion: 1\ntenant: contoso\ninputs:\n  api_key: {{ type: secret, required: true }}\n  keys: {{ type: list, items: secret, required: true }}\nvars:\n  auth: \"Bearer {{{{inputs.api_key}}}}\"\nsteps:\n  call:\n    uses: http.request\n    retry: {{ attempts: 1 }}\n    with:\n      url: \"{url}/x?key={{{{inputs.api_key}}}}&k={{{{inputs.keys.[1]}}}}\"\n      headers: {{ Authorization: \"{{{{vars.auth}}}}\", X-Keys: \"{{{{inputs.keys}}}}\" }}\n"
    )
}

fn assert_clean(surface: &str, text: &str) {
    for s in [KEY].iter().chain(LIST.iter()) {
        assert!(!text.contains(s), "{surface} shows `{s}`:\n{text}");
    }
}

#[test]
fn secret_inputs_and_echoed_secrets_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("t.db");
    let db = format!("sqlite:{}", db_path.display());
    let inputs = [
        "-i".to_string(),
        format!("api_key={KEY}"),
        "-i".to_string(),
        format!("keys={}", LIST.join(",")),
    ];
    let mut ids = Vec::new();
    for (status, code) in [("200 OK", 0), ("400 Bad Request", 1)] {
        let file = dir.path().join(format!("rb{code}.yaml"));
        std::fs::write(&file, runbook(&echo(status))).unwrap();
        let mut args = vec!["run", file.to_str().unwrap()];
        args.extend(inputs.iter().map(String::as_str));
        let o = tenure(&db, &args);
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        assert_clean("run output", &stdout(&o));
        assert_clean("run stderr (debug tracing)", &stderr(&o));
        let plan = tenure(
            &db,
            &[&["plan", file.to_str().unwrap()], &args[2..]].concat(),
        );
        assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
        assert!(
            stdout(&plan).contains("keys = \"***\""),
            "{}",
            stdout(&plan)
        );
        assert_clean("plan", &stdout(&plan));
        let runs = tenure(&db, &["runs", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
        ids.push(list[0]["id"].as_str().unwrap().to_string());
        assert_clean("runs --json", &stdout(&runs));
    }
    for id in &ids {
        for args in [vec!["log", id], vec!["log", id, "--json"]] {
            let o = tenure(&db, &args);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            assert_clean("log", &stdout(&o));
            assert_clean("log stderr", &stderr(&o));
        }
    }
    // The echo was scrubbed, not dropped.
    let log = stdout(&tenure(&db, &["log", &ids[1]]));
    assert!(log.contains("GET /x -> 400"), "{log}");
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db_path.clone().into_os_string();
        path.push(suffix);
        if let Ok(bytes) = std::fs::read(&path) {
            assert_clean(&format!("t.db{suffix}"), &String::from_utf8_lossy(&bytes));
        }
    }
    // A rejected secret is not echoed.
    let file = dir.path().join("rb0.yaml");
    let o = tenure(
        &db,
        &[
            "run",
            file.to_str().unwrap(),
            "-i",
            "api_key=x",
            "-i",
            "keys=[\"Alpha-1234",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_clean("input error", &stderr(&o));
    assert!(
        stderr(&o)
            .contains("input `keys`: expected list of secret, and the value given is not one"),
        "{}",
        stderr(&o)
    );
}
