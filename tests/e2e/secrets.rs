//! Secrets never leak: secret inputs (one, and a list), and a vendor answer that echoes them,
//! go through every surface (`run` output and stderr, `log`, `log --json`, `runs --json`,
//! `plan`, the database and its WAL, debug tracing) and none shows them in clear.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Output, Stdio};

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

/// Every request a recording vendor received, whole (request line, headers, body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A vendor that records each request and answers with all of it echoed back: 200 under
/// `/ok`, 400 elsewhere.
fn recorder() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received: Received = Default::default();
    let log = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let log = log.clone();
            // One thread per connection: an idle connection must not hold up the others.
            std::thread::spawn(move || {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                // Read the head, then as much body as it announces.
                loop {
                    let n = s.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if data.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let request = String::from_utf8_lossy(&data).to_string();
                let ok = request
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .starts_with("/ok");
                log.lock().unwrap().push(request.clone());
                let body = serde_json::json!({ "echo": request }).to_string();
                let status = if ok { "200 OK" } else { "400 Bad Request" };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, received)
}

/// Reads a process's standard output and error to their end, in the background.
fn drain(child: &mut crate::Proc) -> std::thread::JoinHandle<String> {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text + &out.join().unwrap()
    })
}

/// The JSON body of a recorded request.
fn body_of(request: &str) -> serde_json::Value {
    let body = request.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Fails if any of `secrets` shows in `text`.
fn assert_none_shown(secrets: &[String], surface: &str, text: &str) {
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "{surface} shows the secret `{s}`:\n{text}"
        );
    }
}

/// The database file and its WAL and shared memory, as text.
fn database_files(path: &std::path::Path) -> Vec<(String, String)> {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let mut p = path.to_path_buf().into_os_string();
            p.push(suffix);
            let bytes = std::fs::read(&p).ok()?;
            Some((
                format!("database file {}", p.to_string_lossy()),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .collect()
}

const PWPUSH_TOKEN: &str = "PwPushT0ken-9f8e7d";
const INLINE_SECRET: &str = "InlineCl1entS3cret";
const PG_WRONG: &str = "Wr0ngPgPassw0rd";

/// The secrets sweep: each class of secret (generated password, Temporary Access Pass, reset
/// password, secret input, list of secret inputs, a vendor answer echoing them, a client
/// secret named by the configuration, a secret written into the configuration by mistake, a
/// database password) through every surface (`run` output and its stderr with trace logs, the
/// stderr of a failing run, `plan`, `log`, `log --json`, `runs --json`, `worker --log-format
/// json` with trace logs, the database with its WAL). None may show in clear.
#[test]
fn every_secret_class_on_every_surface() {
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, sandbox) = crate::sandbox::serve(&dir.path().join("state.json"));
    let (echo, received) = recorder();
    let db_path = dir.path().join("sweep.db");
    let db = format!("sqlite:{}", db_path.display());
    let rb = dir.path().join("sweep.yaml");
    let fields = "password: \"{{steps.u.outputs.password}}\", tap: \"{{steps.tap.outputs.pass}}\", reset: \"{{steps.reset.outputs.password}}\", key: \"{{inputs.api_key}}\", keys: \"{{inputs.keys}}\"";
    std::fs::write(&rb, format!(
        "runbook: sweep\nversion: 1\ntenant: contoso\ninputs:\n  upn: {{ type: email, required: true }}\n  api_key: {{ type: secret, required: true }}\n  keys: {{ type: list, items: secret, required: true }}\nsteps:\n  u:\n    uses: entra.create_user\n    with: {{ user_principal_name: \"{{{{inputs.upn}}}}\", display_name: Sweep User, usage_location: US }}\n  tap:\n    uses: entra.create_tap\n    needs: [u]\n    with: {{ user: \"{{{{steps.u.outputs.id}}}}\" }}\n  reset:\n    uses: entra.reset_password\n    needs: [tap]\n    with: {{ user: \"{{{{steps.u.outputs.id}}}}\" }}\n  vault:\n    uses: http.request\n    needs: [reset]\n    with: {{ method: POST, url: \"{echo}/ok?key={{{{inputs.api_key}}}}\", json: {{ {fields} }} }}\n  refused:\n    uses: http.request\n    needs: [vault]\n    retry: {{ attempts: 1 }}\n    with: {{ method: POST, url: \"{echo}/refuse\", json: {{ {fields} }} }}\n"
    )).unwrap();
    let rb = rb.to_str().unwrap();
    let sandboxed = |args: &[&str]| {
        crate::Tenure::new()
            .args(["--db", &db])
            .args(args)
            .env("TENURE_SANDBOX", &sandbox)
            .env("RUST_LOG", "trace")
            .env_remove("TENURE_CONFIG")
            .current_dir(dir.path())
            .output()
    };
    let inputs = |upn: &str, key: &str| {
        vec![
            "-i".to_string(),
            format!("upn={upn}"),
            "-i".to_string(),
            format!("api_key={key}"),
            "-i".to_string(),
            format!("keys={}", LIST.join(",")),
        ]
    };
    let mut surfaces: Vec<(String, String)> = Vec::new();

    // A foreground run: its output, and (it fails at the end) its stderr with trace logs.
    let first = inputs("sweep.one@contoso.example", KEY);
    let o = sandboxed(
        &[
            &["run", rb],
            &first.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("refused[0] attempt 1 failed"),
        "{}",
        stdout(&o)
    );
    surfaces.push(("run stdout".into(), stdout(&o)));
    surfaces.push((
        "stderr of a failing run (RUST_LOG=trace)".into(),
        stderr(&o),
    ));
    let plan = sandboxed(
        &[
            &["plan", rb],
            &first.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ]
        .concat(),
    );
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    surfaces.push(("plan".into(), stdout(&plan) + &stderr(&plan)));

    // The same runbook through a worker logging JSON at trace level.
    let second_key = "Sec0ndRunKey-5150";
    let detach = inputs("sweep.two@contoso.example", second_key);
    let o = sandboxed(
        &[
            &["run", rb, "--detach"],
            &detach.iter().map(String::as_str).collect::<Vec<_>>()[..],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut worker = crate::Tenure::new()
        .args(["--db", &db, "worker", "--log-format", "json"])
        .env("TENURE_SANDBOX", &sandbox)
        .env("RUST_LOG", "trace")
        .env_remove("TENURE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    // Drained as it comes: a full pipe would block the worker's logging, and the worker.
    let logs = drain(&mut worker);
    let mut ended = false;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(60) {
        let runs = sandboxed(&["runs", "--json"]);
        let list: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
        if list.len() == 2 && list.iter().all(|r| r["status"] == "failed") {
            ended = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let pid = worker.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status();
    let o = worker.wait_with_output().unwrap();
    let worker_logs = logs.join().unwrap();
    if !ended {
        let list: Vec<serde_json::Value> =
            serde_json::from_slice(&sandboxed(&["runs", "--json"]).stdout).unwrap();
        let runs: Vec<String> = list
            .iter()
            .map(|r| stdout(&sandboxed(&["log", r["id"].as_str().unwrap()])))
            .collect();
        let runs = runs.join("\n");
        let tail: String = worker_logs
            .chars()
            .rev()
            .take(3000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        panic!("the worker's run did not end: {runs}\nWORKER:{tail}");
    }
    assert_eq!(o.status.code(), Some(0), "{worker_logs}");
    assert!(
        worker_logs.contains("\"level\":\"DEBUG\""),
        "debug and trace logs were on"
    );
    surfaces.push((
        "worker --log-format json (RUST_LOG=trace)".into(),
        worker_logs,
    ));

    let runs = sandboxed(&["runs", "--json"]);
    surfaces.push(("runs --json".into(), stdout(&runs)));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    for r in &list {
        let id = r["id"].as_str().unwrap();
        for args in [vec!["log", id], vec!["log", id, "--json"]] {
            let o = sandboxed(&args);
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            surfaces.push((args.join(" "), stdout(&o) + &stderr(&o)));
        }
    }

    // The secrets as the vault received them (that is where they are meant to go).
    let mut secrets: Vec<String> = vec![KEY.into(), second_key.into()];
    secrets.extend(LIST.iter().map(|s| s.to_string()));
    let requests = received.lock().unwrap().clone();
    let stored: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("POST /ok"))
        .collect();
    assert_eq!(stored.len(), 2, "{requests:?}");
    for r in &stored {
        let body = body_of(r);
        for field in ["password", "tap", "reset"] {
            let s = body[field].as_str().unwrap_or_default().to_string();
            assert!(s.len() >= 8, "`{field}` delivered as `{s}`");
            secrets.push(s);
        }
    }
    // The vendor's echo (refused and accepted) holds all of them.
    assert!(requests.iter().any(|r| r.starts_with("POST /refuse")));

    // The database and its WAL, with every run in it.
    surfaces.extend(database_files(&db_path));
    for (surface, text) in &surfaces {
        assert_none_shown(&secrets, surface, text);
    }
    let log = &surfaces
        .iter()
        .find(|(s, _)| s.starts_with("log "))
        .unwrap()
        .1;
    assert!(
        log.contains("POST /ok -> 200") && log.contains("POST /refuse -> 400"),
        "{log}"
    );

    config_secrets(dir.path(), &echo, &received);
    database_password();
}

/// A client secret the configuration names (Password Pusher's API token, sent to the vendor
/// and echoed back by it), and secrets written into the configuration by mistake.
fn config_secrets(dir: &std::path::Path, echo: &str, received: &Received) {
    let db_path = dir.join("config.db");
    let db = format!("sqlite:{}", db_path.display());
    let config = dir.join("tenure.toml");
    std::fs::write(
        &config,
        format!("[password_pusher]\nurl = \"{echo}\"\ntoken_env = \"SWEEP_PWPUSH_TOKEN\"\n"),
    )
    .unwrap();
    let rb = dir.join("share.yaml");
    std::fs::write(&rb, "runbook: share\nversion: 1\ntenant: contoso\ninputs:\n  api_key: { type: secret, required: true }\nsteps:\n  share:\n    uses: password.share\n    retry: { attempts: 1 }\n    with: { secret: \"{{inputs.api_key}}\" }\n").unwrap();
    let with_config = |args: &[&str]| {
        crate::Tenure::new()
            .args(["--config", config.to_str().unwrap(), "--db", &db])
            .args(args)
            .env("SWEEP_PWPUSH_TOKEN", PWPUSH_TOKEN)
            .env("RUST_LOG", "trace")
            .env_remove("TENURE_SANDBOX")
            .env_remove("TENURE_DB")
            .output()
    };
    let o = with_config(&["run", rb.to_str().unwrap(), "-i", &format!("api_key={KEY}")]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    // The token reached the vendor, and came back in its answer.
    assert!(
        received
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains(&format!("Bearer {PWPUSH_TOKEN}"))),
        "the configured token was not sent"
    );
    let secrets = vec![PWPUSH_TOKEN.to_string(), KEY.to_string()];
    let mut surfaces = vec![(
        "run with a configured token".to_string(),
        stdout(&o) + &stderr(&o),
    )];
    let runs = with_config(&["runs", "--json"]);
    surfaces.push(("runs --json".into(), stdout(&runs)));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&runs.stdout).unwrap();
    let id = list[0]["id"].as_str().unwrap();
    for args in [vec!["log", id], vec!["log", id, "--json"]] {
        surfaces.push((args.join(" "), stdout(&with_config(&args))));
    }
    surfaces.extend(database_files(&db_path));
    for (surface, text) in &surfaces {
        assert_none_shown(&secrets, surface, text);
    }

    // Written into the file: refused (exit 2) without showing it, however it is spelled.
    for text in [
        format!("[microsoft]\nclient_id = \"x\"\nclient_secret = \"{INLINE_SECRET}\"\n"),
        format!("[microsoft]\nclient_id = \"x\"\n\"client_secret\" = \"{INLINE_SECRET}\"\n"),
        format!("[microsoft]\nclient_id = \"x\"\nclient_secret\t= \"{INLINE_SECRET}\"\n"),
        format!("microsoft = {{ client_id = \"x\", client_secret = \"{INLINE_SECRET}\" }}\n"),
        format!("[microsoft]\nclient_id = \"x\"\nclient_secret = \"{INLINE_SECRET}\n"),
    ] {
        std::fs::write(&config, &text).unwrap();
        let o = with_config(&["runs"]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        assert_none_shown(
            &[INLINE_SECRET.to_string()],
            &format!("config error for {text:?}"),
            &(stdout(&o) + &stderr(&o)),
        );
    }
}

/// A database password (PostgreSQL, when `TENURE_TEST_PG` is set): never in an error, nor
/// in a worker's logs.
fn database_password() {
    let Ok(url) = std::env::var("TENURE_TEST_PG") else {
        return;
    };
    let (head, tail) = url.split_once("://").unwrap();
    let (auth, host) = tail.split_once('@').unwrap();
    let user = auth.split(':').next().unwrap();
    let wrong = format!("{head}://{user}:{PG_WRONG}@{host}");
    let key = "22".repeat(32);
    let pg = |db: &str, args: &[&str]| {
        crate::Tenure::new()
            .args(["--db", db])
            .args(args)
            .env("TENURE_SECRET_KEY", &key)
            .env("RUST_LOG", "trace")
            .env_remove("TENURE_CONFIG")
            .output()
    };
    for args in [vec!["runs"], vec!["runs", "--json"]] {
        let o = pg(&wrong, &args);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains(&format!("{user}:***@")),
            "{}",
            stderr(&o)
        );
        assert_none_shown(
            &[PG_WRONG.to_string()],
            "a database error",
            &(stdout(&o) + &stderr(&o)),
        );
    }
    if let Some((_, password)) = auth.split_once(':') {
        let mut worker = crate::Tenure::new()
            .args(["--db", &url, "worker", "--log-format", "json"])
            .env("TENURE_SECRET_KEY", &key)
            .env("RUST_LOG", "trace")
            .env_remove("TENURE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let logs = drain(&mut worker);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let _ = std::process::Command::new("kill")
            .args(["-INT", &worker.id().to_string()])
            .status();
        let o = worker.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0));
        let text = logs.join().unwrap();
        assert!(text.contains("worker started"), "{text}");
        assert!(
            !text.contains(&format!(":{password}@")),
            "the worker logs the database password:\n{text}"
        );
    }
}
