//! Operator commands, each through the engine's API: `worker` (execute queued runs),
//! `approve` (decide a gate from the terminal), `cancel`, `retry`, `rollback`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tenure_engine::machine::status_name;
use tenure_engine::Decide;

use super::runs::{follow, open, operator, redact_url, refused, runtime};

/// Arguments of `tenure worker`.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// Tasks worked on at once (steps mostly wait on vendor APIs; each costs a few KiB).
    #[arg(long, default_value_t = tenure_engine::driver::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// How long a claim lasts without a heartbeat; a crashed worker's work is taken over after it.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lease: Duration,
    /// Also start the runs of the `schedule` triggers of the runbooks in this directory (once
    /// per tick however many `tenure serve` and `tenure worker --runbooks` run).
    #[arg(long, value_name = "DIR")]
    runbooks: Option<std::path::PathBuf>,
    /// Serve `/healthz` and `/metrics` (this worker's attempts, the queue depth) on this
    /// address, for a worker node that runs without `tenure serve`.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
    /// Log format on stderr: `text`, or `json` (one object per line); filter with `RUST_LOG`.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tenure_runbook::duration::parse(s).map_err(|e| e.to_string())
}

/// `tenure worker`: executes queued runs until interrupted (Ctrl-C or SIGTERM).
pub fn worker(db: &str, args: WorkerArgs) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        let metrics_listener = match &args.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let worker = engine
            .worker(0)
            .with_lease(args.lease)
            .with_concurrency(args.concurrency);
        let name = worker.owner().to_string();
        let concurrency = worker.concurrency();
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move { worker.work_until(|| stop.load(Ordering::Relaxed)).await })
        };
        let dir = args
            .runbooks
            .clone()
            .unwrap_or_else(|| crate::load::RUNBOOKS_DIR.into());
        let state = tenure_server::AppState::new(
            engine.clone(),
            crate::config::get().server_config(),
            Arc::new(super::serve::RunbookDir::new(&dir)),
        );
        let scheduler = args.runbooks.as_ref().map(|dir| {
            tracing::info!(runbooks = %dir.display(), "scheduler started");
            super::serve::spawn_scheduler(state.clone())
        });
        // Scheduled people syncs run wherever schedules do (one node per tick, by the mark).
        let syncs = match &args.runbooks {
            Some(dir) => super::sync_schedule::spawn(engine.clone(), dir)?,
            None => None,
        };
        let (ops_stop, ops_stopped) = tokio::sync::oneshot::channel::<()>();
        let ops = match metrics_listener {
            Some(listener) => {
                let addr = listener.local_addr()?;
                eprintln!("metrics on http://{addr}/metrics");
                let shutdown = async {
                    let _ = ops_stopped.await;
                };
                Some(tokio::spawn(tenure_server::serve_ops(
                    state, listener, shutdown,
                )))
            }
            None => None,
        };
        tracing::info!(worker = %name, concurrency, db = %redact_url(db), "worker started");
        eprintln!(
            "worker {} running up to {concurrency} task(s) at once against {}",
            name.trim_end_matches("-0"),
            redact_url(db)
        );
        super::serve::shutdown_signal().await;
        stop.store(true, Ordering::Relaxed);
        if let Some(scheduler) = scheduler {
            scheduler.stop().await;
        }
        if let Some(syncs) = syncs {
            syncs.stop().await;
        }
        let _ = ops_stop.send(());
        if let Some(ops) = ops {
            ops.await.context("metrics server")??;
        }
        task.await.context("worker task")??;
        Ok(ExitCode::SUCCESS)
    })
}

/// Arguments of `tenure approve`.
#[derive(clap::Args, Debug)]
pub struct ApproveArgs {
    /// The approval: `RUN:STEP`.
    approval: String,
    /// Who decides (must be one of the gate's approvers).
    #[arg(long = "as", value_name = "EMAIL")]
    approver: String,
    /// Deny instead of approve.
    #[arg(long)]
    deny: bool,
    /// A comment for the journal.
    #[arg(long)]
    comment: Option<String>,
}

/// `tenure approve`.
pub fn approve(db: &str, args: ApproveArgs) -> Result<ExitCode> {
    let Some((run_id, step)) = args.approval.rsplit_once(':') else {
        eprintln!(
            "error: `{}` is not an approval id (RUN:STEP, as `tenure run` prints it)",
            args.approval
        );
        return Ok(ExitCode::from(2));
    };
    let decision = Decide {
        run_id: run_id.to_string(),
        step: step.to_string(),
        approver: args.approver,
        approve: !args.deny,
        comment: args.comment,
        source: "cli".into(),
        user_agent: None,
    };
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        match engine.decide(decision).await {
            Ok(status) => {
                println!("recorded; run is {}", status_name(status));
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(refused("cannot record the decision", &e)),
        }
    })
}

/// Arguments of `tenure cancel`.
#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// The run.
    run: String,
}

/// `tenure cancel`.
pub fn cancel(db: &str, args: CancelArgs) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        match engine.cancel(&args.run, &operator()).await {
            Ok(_) => {
                println!("cancelled {}", args.run);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Ok(refused(&format!("cannot cancel {}", args.run), &e)),
        }
    })
}

/// Arguments of `tenure retry`.
#[derive(clap::Args, Debug)]
pub struct RetryArgs {
    /// The failed run.
    run: String,
    /// Only this failed step (repeatable); default: every failed step.
    #[arg(long = "step", value_name = "STEP")]
    steps: Vec<String>,
    /// Only resume it; `tenure worker` executes it.
    #[arg(long)]
    detach: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `tenure retry RUN [--step S]`: resumes a failed run from its failed steps.
pub fn retry(db: &str, args: RetryArgs) -> Result<ExitCode> {
    let action = Operator::Retry(args.steps.clone());
    operator_action(db, &args.run, action, args.detach, args.json)
}

/// Arguments of `tenure rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The failed or cancelled run.
    run: String,
    /// Only start the rollback; `tenure worker` executes it.
    #[arg(long)]
    detach: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `tenure rollback RUN`: runs the `compensate` of every step that succeeded, in reverse order.
pub fn rollback(db: &str, args: RollbackArgs) -> Result<ExitCode> {
    operator_action(db, &args.run, Operator::Rollback, args.detach, args.json)
}

enum Operator {
    Retry(Vec<String>),
    Rollback,
}

fn operator_action(
    db: &str,
    run: &str,
    action: Operator,
    detach: bool,
    json: bool,
) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        let shown = match engine.events(run, 0).await {
            Ok(events) => events.last().map_or(0, |e| e.seq),
            Err(e) => return Ok(refused("cannot read the run", &e)),
        };
        let (verb, result) = match action {
            Operator::Retry(steps) => ("retry", engine.retry(run, steps, &operator()).await),
            Operator::Rollback => ("roll back", engine.rollback(run, &operator()).await),
        };
        let status = match result {
            Ok(status) => status,
            Err(e) => return Ok(refused(&format!("cannot {verb} {run}"), &e)),
        };
        if detach {
            if json {
                println!("{}", json!({"id": run, "status": status}));
            } else {
                println!("{run}: {}", status_name(status));
            }
            return Ok(ExitCode::SUCCESS);
        }
        follow(&engine, run, shown, json).await
    })
}
