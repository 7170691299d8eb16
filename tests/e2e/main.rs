//! End-to-end tests of the real `tenure` binary: exit codes, output formats and the files it
//! writes, run from the repository root as an author would.
//!
//! Every test starts the binary through [`Tenure`] (no other file names the binary, which
//! [`every_invocation_is_checked_for_panics`] enforces), and every process it starts is checked
//! when it ends: a panic (exit code 101) anywhere fails the test that caused it.

mod graph;
mod hostile;
mod lsp;
mod plan;
mod validate;

use std::ffi::OsStr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tenure ARGS` in the repository root.
pub fn tenure(args: &[&str]) -> Output {
    Tenure::new()
        .args(args)
        .current_dir(root())
        .env_remove("TENURE_CONFIG")
        .output()
}

/// Runs `tenure --db DB ARGS` (from the current directory).
pub fn tenure_db(db: &str, args: &[&str]) -> Output {
    Tenure::new().arg("--db").arg(db).args(args).output()
}

/// The exit code of a panic in Rust.
const PANIC: i32 = 101;

/// Fails the calling test if a `tenure` process ended in a panic.
fn assert_no_panic(status: ExitStatus, stderr: &[u8]) {
    assert_ne!(
        status.code(),
        Some(PANIC),
        "tenure panicked (exit 101):\n{}",
        String::from_utf8_lossy(stderr)
    );
}

/// A `tenure` command being built: the only way the tests start the binary. Its processes
/// are checked for a panic when they end (see [`Tenure::output`] and [`Proc`]).
pub struct Tenure(Command);

impl Tenure {
    /// The binary, with no arguments yet.
    pub fn new() -> Self {
        Tenure(Command::new(env!("CARGO_BIN_EXE_tenure")))
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.0.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.0.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.0.env(key, value);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.0.env_remove(key);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.0.current_dir(dir);
        self
    }

    /// Sets standard input.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.0.stdin(cfg);
        self
    }

    /// Sets standard output.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.0.stdout(cfg);
        self
    }

    /// Sets standard error.
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.0.stderr(cfg);
        self
    }

    /// Runs to the end and returns what it wrote; fails the test on a panic.
    pub fn output(&mut self) -> Output {
        let o = self.0.output().expect("the tenure binary runs");
        assert_no_panic(o.status, &o.stderr);
        o
    }

    /// Starts it in the background.
    pub fn spawn(&mut self) -> Proc {
        Proc(Some(self.0.spawn().expect("the tenure binary starts")))
    }
}

impl Default for Tenure {
    fn default() -> Self {
        Self::new()
    }
}

/// A running `tenure` process. Waiting for it checks for a panic, and so does dropping it if
/// it has ended by then (a process killed by the test is not a panic).
pub struct Proc(Option<Child>);

impl Proc {
    /// Waits for the end; fails the test on a panic.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child().wait()?;
        assert_no_panic(status, b"(stderr not captured)");
        Ok(status)
    }

    /// Waits for the end and collects what is left of its output; fails the test on a panic.
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        let child = self.0.take().expect("a process");
        let o = child.wait_with_output()?;
        assert_no_panic(o.status, &o.stderr);
        Ok(o)
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("a process")
    }
}

impl Deref for Proc {
    type Target = Child;

    fn deref(&self) -> &Child {
        self.0.as_ref().expect("a process")
    }
}

impl DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        self.child()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(child) = self.0.as_mut() else {
            return;
        };
        if let Ok(Some(status)) = child.try_wait() {
            if !std::thread::panicking() {
                assert_no_panic(status, b"(stderr not captured)");
            }
        }
    }
}

/// No test starts the binary any other way than through [`Tenure`], so none escapes the check
/// for a panic.
#[test]
fn every_invocation_is_checked_for_panics() {
    let needle = concat!("CARGO_BIN", "_EXE_");
    let dir = root().join("tests/e2e");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(OsStr::to_str) != Some("rs") || path.ends_with("main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(needle) && !text.contains("Command::new(env!"),
            "{} starts tenure without the panic check: use crate::Tenure",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} test files found");
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

mod browser;
mod calls;
mod crash;
mod people;
mod people_batch;
mod people_sync;
mod runs;
mod same_identity;
mod sandbox;
mod secrets;
mod serve_api;
mod serve_approvals;
mod serve_hooks;
mod serve_schedule;
mod served;
mod stock;
mod stock_served;
mod ui_browser;
mod workers;
