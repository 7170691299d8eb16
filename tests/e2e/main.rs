//! End-to-end tests of the real `tenure` binary: exit codes, output formats and the files it
//! writes, run from the repository root as an author would.

mod graph;
mod hostile;
mod plan;
mod validate;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tenure ARGS` in the repository root.
pub fn tenure(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args(args)
        .current_dir(root())
        .env_remove("TENURE_CONFIG")
        .output()
        .expect("the tenure binary runs")
}

/// Runs `tenure --db DB ARGS` (from the current directory).
pub fn tenure_db(db: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("the tenure binary runs")
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

mod calls;
mod crash;
mod runs;
mod same_identity;
mod sandbox;
mod secrets;
mod stock;
mod workers;
