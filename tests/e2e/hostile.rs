//! Hostile and careless input: each case ends with the exact message expected, quickly, and
//! never with a panic (exit 101).

use std::io::Read;
use std::process::{Command, Stdio};

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
fn a_closed_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("schema")
        .current_dir(crate::root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
