//! The data-driven corpus of machine traces: every `tests/data/traces/*.trace` holds a small
//! runbook (what follows `runbook:`/`version:`/`tenant:`, up to a `---` line) and a list of
//! timed events, one a line: `NOW_MS {json event}` (`#` starts a comment). Each event is
//! applied to a fresh [`RunMachine`]; what it answered (its actions and the journal entries
//! derived from them, or why it was refused) and the final status are written to the `.snap`
//! beside it. A missing snapshot is written on first run (except in CI), `UPDATE_EXPECT=1`
//! rewrites them all, and a mismatch fails with both texts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use tenure_engine::journal::entries;
use tenure_engine::machine::{Event, RunMachine};

use super::plan_of;

/// Checks `actual` against the file at `path`; returns a failure message on mismatch.
pub(super) fn check(path: &Path, actual: &str) -> Result<(), String> {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => Ok(()),
        Ok(_) if update => write(path, actual),
        Ok(expected) => Err(format!(
            "snapshot {} differs (UPDATE_EXPECT=1 to accept):\n{}",
            path.display(),
            diff(&expected, actual)
        )),
        Err(_) if std::env::var_os("CI").is_some() && !update => Err(format!(
            "snapshot {} is missing; run the tests locally and commit it",
            path.display()
        )),
        Err(_) => write(path, actual),
    }
}

fn write(path: &Path, actual: &str) -> Result<(), String> {
    std::fs::write(path, actual).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The lines that differ, `-` expected and `+` actual, from the first difference on.
fn diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let same = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let mut out = format!("(the first {same} lines agree)\n");
    for line in &e[same..] {
        let _ = writeln!(out, "- {line}");
    }
    for line in &a[same..] {
        let _ = writeln!(out, "+ {line}");
    }
    out
}

fn traces() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "trace"))
        .collect();
    files.sort();
    files
}

/// The machine as the store keeps it between events: written as JSON and read back. Reading
/// its own JSON must give the same machine (fields left out hold their defaults).
fn stored(m: RunMachine) -> Result<RunMachine, String> {
    let text = serde_json::to_string(&m).unwrap();
    let back: RunMachine = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    if serde_json::to_value(&back).unwrap() != serde_json::to_value(&m).unwrap() {
        return Err(format!("the snapshot does not read back the same: {text}"));
    }
    Ok(back)
}

/// Runs one trace and renders what the machine answered; also returns the final machine.
fn run(path: &Path) -> Result<(String, RunMachine), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (runbook, events) = text
        .split_once("\n---\n")
        .ok_or("no `---` line between the runbook and the events")?;
    let plan = plan_of(runbook);
    let mut m = RunMachine::new(&plan);
    let mut accepted: Vec<(Event, u64)> = Vec::new();
    let mut out = String::new();
    for (n, line) in events.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (now, json) = line
            .split_once(' ')
            .ok_or_else(|| format!("event line {}: `NOW_MS {{json}}`", n + 1))?;
        let now: u64 = now
            .parse()
            .map_err(|e| format!("event line {}: {now}: {e}", n + 1))?;
        let event: Event =
            serde_json::from_str(json).map_err(|e| format!("event line {}: {e}", n + 1))?;
        let _ = writeln!(out, "{now} {}", serde_json::to_string(&event).unwrap());
        let before = serde_json::to_value(&m).unwrap();
        match m.apply(event.clone(), now) {
            Ok(actions) => {
                for a in &actions {
                    let _ = writeln!(out, "  -> {}", serde_json::to_string(a).unwrap());
                }
                for j in entries(&event, &actions) {
                    let _ = writeln!(out, "  == {}", serde_json::to_string(&j).unwrap());
                }
                accepted.push((event, now));
                m = stored(m).map_err(|e| format!("event line {}: {e}", n + 1))?;
            }
            Err(e) => {
                let _ = writeln!(out, "  !! refused: {e}");
                if before != serde_json::to_value(&m).unwrap() {
                    return Err(format!(
                        "event line {}: a refused event changed the run",
                        n + 1
                    ));
                }
            }
        }
        let _ = writeln!(
            out,
            "  status {}",
            tenure_engine::machine::status_name(m.status())
        );
    }
    // The accepted events replay to the same state.
    let mut replay = RunMachine::new(&plan);
    for (event, now) in accepted {
        replay
            .apply(event, now)
            .map_err(|e| format!("replay refused an accepted event: {e}"))?;
    }
    if serde_json::to_value(&replay).unwrap() != serde_json::to_value(&m).unwrap() {
        return Err("the accepted events do not replay to the same state".into());
    }
    let _ = writeln!(
        out,
        "final {}",
        tenure_engine::machine::status_name(m.status())
    );
    Ok((out, m))
}

#[test]
fn machine_traces_match_their_snapshots() {
    let files = traces();
    assert!(files.len() >= 12, "only {} traces", files.len());
    let mut failures = Vec::new();
    for path in &files {
        match run(path) {
            Ok((out, _)) => {
                if let Err(e) = check(&path.with_extension("snap"), &out) {
                    failures.push(e);
                }
            }
            Err(e) => failures.push(format!("{}: {e}", path.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Snapshots written before default-valued fields were left out (every field present, in
/// `tests/data/machine_v1.txt`: the final machine of each trace) read as the machine the
/// trace ends with today, and today's JSON of it is shorter.
#[test]
fn full_snapshots_written_before_read_the_same() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/machine_v1.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = path.with_file_name("traces");
    let mut seen = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, json) = line.split_once(' ').expect("TRACE {json}");
        let (_, now) = run(&dir.join(format!("{name}.trace"))).unwrap();
        let old: RunMachine = serde_json::from_str(json).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            serde_json::to_value(&old).unwrap(),
            serde_json::to_value(&now).unwrap(),
            "{name}"
        );
        let compact = serde_json::to_string(&now).unwrap();
        assert!(compact.len() < json.len(), "{name}: {compact}");
        seen += 1;
    }
    assert_eq!(seen, traces().len(), "a line for every trace");
}
