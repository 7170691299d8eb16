//! Output of a command that keeps working when nobody reads it any more: a foreground
//! `tenure run` piped into `head -2`, or whose terminal went away. Writing to a closed pipe
//! fails (Rust ignores SIGPIPE); `println!` would turn that into a panic and stop the run half
//! way. Here the first failed write closes that stream for the rest of the command, quietly,
//! and the run goes on to its end.

use std::fmt::Display;
use std::io::Write;

/// Standard output and standard error, each silenced after its first failed write.
#[derive(Debug, Default)]
pub struct Out {
    stdout_closed: bool,
    stderr_closed: bool,
}

impl Out {
    /// Both streams open.
    pub fn new() -> Self {
        Self::default()
    }

    /// One line on standard output (nothing once its reader has gone).
    pub fn line(&mut self, text: impl Display) {
        if !self.stdout_closed && writeln!(std::io::stdout().lock(), "{text}").is_err() {
            self.stdout_closed = true;
            tracing::debug!("standard output is closed; the run goes on without it");
        }
    }

    /// One line on standard error (nothing once it is closed).
    pub fn note(&mut self, text: impl Display) {
        if !self.stderr_closed && writeln!(std::io::stderr().lock(), "{text}").is_err() {
            self.stderr_closed = true;
        }
    }
}

/// `println!` for output nobody may read any more (`tenure demo | head -1`): a failed write is
/// ignored instead of panicking, so the command goes on to its end and cleans up after itself
/// (the demo's temporary database and its key).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use say;
