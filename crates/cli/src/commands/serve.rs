//! `tenure serve`: the HTTP server (ticket webhooks, approval links, the REST API, metrics)
//! with workers in the same process (`--no-workers` for separate worker nodes). It prints
//! `listening on http://ADDR` on stderr once it accepts connections and stops cleanly on
//! Ctrl-C or SIGTERM, letting in-flight requests and attempts finish.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tenure_server::{AppState, Library, LibrarySource, RunbookEntry};

use super::runs::{open_linked, redact_url, runtime};
use crate::load;

/// Arguments of `tenure serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on (default: `[server] listen`, else `127.0.0.1:8080`; port 0 picks
    /// a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Do not run workers here (they run as `tenure worker` on other nodes).
    #[arg(long)]
    no_workers: bool,
    /// Tasks the in-process workers work on at once.
    #[arg(long, default_value_t = tenure_engine::driver::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// The directory of runbooks the server serves.
    #[arg(long, default_value = load::RUNBOOKS_DIR)]
    runbooks: PathBuf,
    /// Log format on stderr: `text`, or `json` (one object per line); filter with `RUST_LOG`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// `tenure serve`.
pub fn run(db: &str, args: Args) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let config = crate::config::get().server_config();
        tenure_server::check_config(&config)?;
        let listen = args
            .listen
            .clone()
            .or_else(|| config.server.listen.clone())
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        // Links point at `public_url`, else at the address actually bound.
        let mut linked = config.server.clone();
        linked.listen = Some(addr.to_string());
        let (engine, links) = open_linked(db, &linked).await?;
        let links = links?;
        let source = Arc::new(RunbookDir::new(&args.runbooks));
        let state = AppState::try_new(engine.clone(), config, source)?.with_links(links);
        let stop = Arc::new(AtomicBool::new(false));
        let scheduler = spawn_scheduler(state.clone());
        let syncs = super::sync_schedule::spawn(engine.clone(), &args.runbooks)?;
        let workers = if args.no_workers {
            None
        } else {
            let worker = engine.worker(0).with_concurrency(args.concurrency);
            tracing::info!(worker = %worker.owner(), "workers started");
            let stop = stop.clone();
            Some(tokio::spawn(async move {
                worker.work_until(|| stop.load(Ordering::Relaxed)).await
            }))
        };
        tracing::info!(%addr, db = %redact_url(db), "listening");
        eprintln!("listening on http://{addr} (database {})", redact_url(db));
        tenure_server::serve(state, listener, shutdown_signal())
            .await
            .context("server")?;
        stop.store(true, Ordering::Relaxed);
        scheduler.stop().await;
        if let Some(syncs) = syncs {
            syncs.stop().await;
        }
        if let Some(task) = workers {
            task.await.context("worker task")??;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A scheduler running in this process (`schedule` triggers of the served runbooks).
pub struct RunningScheduler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningScheduler {
    /// Stops it (a pass under way finishes first).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the scheduler of the runbooks of `state`.
pub fn spawn_scheduler(state: AppState) -> RunningScheduler {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let scheduler = tenure_server::schedule::Scheduler::new(state);
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    RunningScheduler { stop, task }
}

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The runbooks under a directory, as the server reads them.
pub struct RunbookDir {
    root: PathBuf,
}

impl RunbookDir {
    /// Runbooks under `root` (a missing directory holds none).
    pub fn new(root: &Path) -> Self {
        RunbookDir {
            root: root.to_path_buf(),
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        if !self.root.is_dir() {
            return Vec::new();
        }
        load::expand(std::slice::from_ref(&self.root)).unwrap_or_default()
    }
}

fn rendered(c: &load::Compiled) -> Vec<String> {
    c.output
        .diagnostics
        .iter()
        .map(|d| d.render(&c.source))
        .collect()
}

impl LibrarySource for RunbookDir {
    fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for f in self.files() {
            f.hash(&mut h);
            if let Ok(m) = std::fs::metadata(&f) {
                m.len().hash(&mut h);
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .unwrap_or(Duration::ZERO)
                    .hash(&mut h);
            }
        }
        h.finish()
    }

    fn load(&self) -> Library {
        let mut entries = Vec::new();
        for path in self.files() {
            let fallback = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let id = load::id_of(&path).unwrap_or(fallback);
            let entry = match load::compile_file(&path) {
                Ok(c) => RunbookEntry {
                    id,
                    path: path.display().to_string(),
                    plan: c.output.plan.clone().map(Arc::new),
                    diagnostics: rendered(&c),
                    source: c.source.text().to_string(),
                },
                Err(e) => RunbookEntry {
                    id,
                    path: path.display().to_string(),
                    plan: None,
                    diagnostics: vec![format!("{e:#}")],
                    source: String::new(),
                },
            };
            entries.push(entry);
        }
        Library { entries }
    }

    fn compile(&self, name: &str, text: &str) -> (Option<tenure_runbook::Plan>, Vec<String>) {
        let c = load::compile_text_in(name, text.to_string(), &self.root);
        let diagnostics = rendered(&c);
        (c.output.plan, diagnostics)
    }
}
