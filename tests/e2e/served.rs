//! `tenure serve` started for a test: the base URL it says it listens on, its stderr kept
//! for a failing assertion to show, and the process stopped when the test drops it.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A running `tenure serve`.
pub struct Served {
    /// The process (killed on drop).
    pub proc: crate::Proc,
    /// `http://127.0.0.1:PORT`, as it printed it.
    pub base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Spawns `command` (a `tenure … serve --listen 127.0.0.1:0 …` invocation) and waits up to
    /// a minute for its `listening on http://ADDR` line.
    pub fn start(command: &mut crate::Tenure) -> Served {
        let mut proc = command.stderr(Stdio::piped()).spawn();
        let stderr = proc.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "tenure serve never said where it listens:\n{}",
                    log.lock().unwrap().join("\n")
                )
            });
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Served { proc, base, log }
    }

    /// What it wrote on stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.proc.try_wait() {
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
    }
}
