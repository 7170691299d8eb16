//! Hostile and careless input: each case ends with the exact message expected, quickly, and
//! never with a panic (exit 101).

use std::io::Read;
use std::process::Stdio;

use crate::{stderr, tenure};

#[test]
fn nested_aliases_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (i, c) in ('b'..='i').enumerate() {
        let p = char::from(b'a' + i as u8);
        text.push_str(&format!(
            "{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        ));
    }
    let file = dir.path().join("lol.yaml");
    std::fs::write(&file, &text).unwrap();
    let started = std::time::Instant::now();
    let o = tenure(&["validate", file.to_str().unwrap()]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = format!("{}{}", crate::stdout(&o), stderr(&o));
    assert!(
        out.contains("RB0001") && out.contains("aliases expand to more than 10000 nodes"),
        "{out}"
    );
    // The same through --input-file.
    let o = tenure(&[
        "plan",
        "runbooks/onboard-user.yaml",
        "--input-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("aliases expand to more than 10000 nodes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_unknown_status_is_a_usage_error() {
    let o = tenure(&["runs", "--status", "bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid value 'bogus' for '--status <STATUS>'")
            && stderr(&o).contains("[possible values: queued, running, waiting, succeeded, failed, denied, cancelled, rolled_back]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_input_given_twice_is_refused_not_overwritten() {
    let o = tenure(&[
        "plan",
        "runbooks/offboard-user.yaml",
        "-i",
        "tenant=contoso",
        "-i",
        "user=a@contoso.example",
        "-i",
        "user=b@contoso.example",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--input `user` is given twice"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = crate::Tenure::new()
        .arg("schema")
        .current_dir(crate::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let o = child.wait_with_output().unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{:?} {}",
        o.status,
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn a_corrupt_database_says_so_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zero.db");
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    let db = format!("sqlite:{}", path.display());
    let started = std::time::Instant::now();
    let o = tenure(&["--db", &db, "runs"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!("error: cannot open the database {db}: error returned from database: (code: 26) file is not a database")
    );
    let o = tenure(&["--db", "postgres://tenure:hunter2@127.0.0.1:1/x", "runs"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("hunter2"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("postgres://tenure:***@127.0.0.1:1/x"),
        "{}",
        stderr(&o)
    );
}

/// A few hundred bytes of nested aliases (the "billion laughs").
fn alias_bomb(id: &str) -> String {
    let mut text = format!("runbook: {id}\na: &a [x, x, x, x, x, x, x, x, x]\n");
    for (i, c) in ('b'..='i').enumerate() {
        let p = char::from(b'a' + i as u8);
        text.push_str(&format!(
            "{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        ));
    }
    text
}

const GOOD: &str = "runbook: good\nversion: 1\ntenant: contoso\nsteps:\n  nap: { uses: wait, with: { for: 1s } }\n";

/// Looking a runbook up by id compiles only its file: an alias bomb, NUL bytes, broken YAML,
/// a file too large or not UTF-8 beside it cost nothing; two files with the id are an error
/// naming both.
#[test]
fn a_lookup_by_id_reads_only_the_ids_of_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("runbooks");
    std::fs::create_dir(&rb).unwrap();
    std::fs::write(rb.join("good.yaml"), GOOD).unwrap();
    std::fs::write(rb.join("bomb.yaml"), alias_bomb("bomb")).unwrap();
    std::fs::write(rb.join("nul.yaml"), [0u8; 4096]).unwrap();
    std::fs::write(rb.join("broken.yaml"), "runbook: [unclosed\n").unwrap();
    std::fs::write(rb.join("latin1.yaml"), b"runbook: caf\xe9\n").unwrap();
    std::fs::write(
        rb.join("huge.yaml"),
        format!("runbook: huge\n#{}\n", "x".repeat(5 << 20)),
    )
    .unwrap();
    let run = |args: &[&str]| {
        crate::Tenure::new()
            .args(args)
            .current_dir(dir.path())
            .env_remove("TENURE_CONFIG")
            .env_remove("TENURE_DB")
            .output()
    };
    let started = std::time::Instant::now();
    let o = run(&["plan", "good"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        crate::stdout(&o).starts_with("Plan: good v1"),
        "{}",
        crate::stdout(&o)
    );

    // The bomb itself, asked for by id, is compiled and refused.
    let o = run(&["plan", "bomb"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("aliases expand to more than 10000 nodes"),
        "{}",
        stderr(&o)
    );

    let o = run(&["plan", "nothing"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: no runbook file or id `nothing` (runbooks in runbooks/: bomb, good)"
    );

    std::fs::write(rb.join("copy.yaml"), GOOD).unwrap();
    let o = run(&["plan", "good"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: runbook id `good` is declared by two files, runbooks/copy.yaml and runbooks/good.yaml; each id must be unique in runbooks/"
    );
}

#[test]
fn a_file_of_nul_bytes_is_called_binary() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nul.yaml");
    std::fs::write(&file, [0u8; 64]).unwrap();
    let o = tenure(&["validate", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = format!("{}{}", crate::stdout(&o), stderr(&o));
    assert!(
        out.contains("error[RB0001]: the file holds a NUL byte: it is binary data, not YAML text"),
        "{out}"
    );
    assert!(!out.contains("empty"), "{out}");
    let o = tenure(&[
        "plan",
        "runbooks/onboard-user.yaml",
        "--input-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the file holds a NUL byte: it is binary data, not YAML text"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_alias_bomb_in_an_input_file_stops_a_run_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inputs.yaml");
    std::fs::write(&file, alias_bomb("x")).unwrap();
    let rb = dir.path().join("good.yaml");
    std::fs::write(&rb, GOOD).unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let started = std::time::Instant::now();
    let o = tenure(&[
        "--db",
        &db,
        "run",
        rb.to_str().unwrap(),
        "--input-file",
        file.to_str().unwrap(),
    ]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("error[RB0001]: aliases expand to more than 10000 nodes"),
        "{}",
        stderr(&o)
    );
    assert!(
        !dir.path().join("t.db").exists(),
        "nothing was started, not even a database"
    );
}

#[test]
fn a_corrupt_sqlite_file_is_named_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let db = format!("sqlite:{}", path.display());
    assert_eq!(tenure(&["--db", &db, "runs"]).status.code(), Some(0));
    // Keep the header and the key file, garble every page after it.
    let mut bytes = std::fs::read(&path).unwrap();
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i * 7919 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let started = std::time::Instant::now();
    let o = tenure(&["--db", &db, "runs"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!("error: cannot open the database {db}: error returned from database: (code: 11) database disk image is malformed")
    );
}

#[test]
fn an_unreachable_postgres_fails_fast_with_the_cause() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let db = format!("postgres://tenure:hunter2@127.0.0.1:{port}/tenure");
    let started = std::time::Instant::now();
    let o = crate::Tenure::new()
        .args(["--db", &db, "runs"])
        .env("TENURE_SECRET_KEY", "11".repeat(32))
        .env_remove("TENURE_CONFIG")
        .output();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!("error: cannot open the database postgres://tenure:***@127.0.0.1:{port}/tenure: error communicating with database: Connection refused (os error 111)")
    );
}

#[test]
fn approving_twice_says_who_decided() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let rb = dir.path().join("gate.yaml");
    std::fs::write(&rb, "runbook: gate\nversion: 1\ntenant: contoso\nsteps:\n  approve:\n    uses: approval\n    with: { approvers: [lead@msp.example], message: go? }\n  nap:\n    needs: [approve]\n    uses: wait\n    with: { for: 1h }\n").unwrap();
    let id = crate::stdout(&crate::tenure_db(
        &db,
        &["run", rb.to_str().unwrap(), "--detach"],
    ))
    .trim()
    .to_string();
    let mut worker = crate::Tenure::new()
        .args(["--db", &db, "worker", "--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let approve = || {
        crate::tenure_db(
            &db,
            &[
                "approve",
                &format!("{id}:approve"),
                "--as",
                "lead@msp.example",
            ],
        )
    };
    let mut first = approve();
    for _ in 0..200 {
        if first.status.code() == Some(0) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        first = approve();
    }
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let again = approve();
    worker.kill().unwrap();
    let _ = worker.wait();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again).trim(),
        "error: cannot record the decision: the approval `approve` was already decided: approved by lead@msp.example"
    );
}

/// A local server whose every answer is `size` bytes of JSON.
fn big_answer(size: usize) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::Write;
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = format!("{{\"pad\": \"{}\"}}", "x".repeat(size - 11));
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{body}"
            );
        }
    });
    url
}

#[test]
fn an_oversized_answer_names_the_limit_and_how_to_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("t.db").display());
    let url = big_answer(64 * 1024);
    let rb = dir.path().join("big.yaml");
    std::fs::write(&rb, format!("runbook: big\nversion: 1\ntenant: contoso\nsteps:\n  get:\n    uses: http.request\n    retry: {{ attempts: 1 }}\n    with: {{ url: \"{url}/big\" }}\n")).unwrap();
    let o = crate::Tenure::new()
        .args(["--db", &db, "run", rb.to_str().unwrap()])
        .env("TENURE_MAX_RESPONSE_BYTES", "10000")
        .env_remove("TENURE_CONFIG")
        .output();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = crate::stdout(&o);
    assert!(
        out.contains(&format!("attempt 1 failed (permanent response_too_large): GET {url}/big: the answer is larger than 10000 bytes, the most Tenure reads; if it is expected, set TENURE_MAX_RESPONSE_BYTES to a larger number of bytes")),
        "{out}"
    );
    // Under the limit (here the default, 4 MiB) the same answer is read.
    let o = crate::Tenure::new()
        .args(["--db", &db, "run", rb.to_str().unwrap()])
        .env_remove("TENURE_MAX_RESPONSE_BYTES")
        .env_remove("TENURE_CONFIG")
        .output();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
