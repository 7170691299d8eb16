//! Run commands over the durable store: `run`, `worker`, `runs`, `log`, `approve`, `cancel`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tenure_engine::driver::{decide, start_context, Worker};
use tenure_engine::journal::{verify, Event, EventKind};
use tenure_engine::machine::RunStatus;
use tenure_engine::store::{Change, Store};
use tenure_runbook::Renderer;
use tenure_steps::Registry;

use crate::{load, tenants};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

async fn open(db: &str) -> Result<Store> {
    Store::open(db)
        .await
        .with_context(|| format!("cannot open the database {db}"))
}

/// Arguments of `tenure run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// A runbook file, or the id of a runbook in `runbooks/`.
    runbook: String,
    /// An input as `name=value` (repeatable).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// Inputs from a JSON or YAML file.
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// Only enqueue the run and print its id; `tenure worker` executes it.
    #[arg(long)]
    detach: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `tenure run`.
pub fn run(db: &str, args: RunArgs) -> Result<ExitCode> {
    let compiled = load::resolve(&args.runbook)?;
    let Some(plan) = compiled.output.plan.clone() else {
        load::print_diagnostics(&compiled);
        eprintln!(
            "{}: does not compile; fix the errors above first",
            compiled.source.name()
        );
        return Ok(ExitCode::from(1));
    };
    let given = super::plan::gather_inputs(args.input_file.as_ref(), &args.inputs)?;
    let inputs = match tenure_runbook::inputs::resolve(&plan.inputs, &given) {
        Ok(i) => i,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let renderer = Renderer::new();
    let tenant_id = tenure_runbook::preview::tenant_id(&plan, &inputs, &renderer)?;
    let Some(tenant) = tenants::find(&tenant_id) else {
        bail!(
            "unknown tenant `{tenant_id}` (configured: {})",
            tenants::known()
        );
    };
    let ctx = start_context(
        &plan,
        inputs,
        tenant.to_json(),
        json!({"source": "cli", "received_at": chrono_now(), "payload": {}}),
        &renderer,
    )
    .map_err(anyhow::Error::msg)?;
    let key = plan
        .concurrency
        .as_ref()
        .and_then(|t| renderer.render_text(t, &ctx).ok());
    let rt = runtime()?;
    rt.block_on(async move {
        let store = open(db).await?;
        let id = store.create_run(&plan, ctx, "cli", key).await?;
        if args.detach {
            if args.json {
                println!("{}", json!({"id": id}));
            } else {
                println!("{id}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("run {id} ({} v{})", plan.runbook, plan.version);
        follow(&store, &id, 0, args.json).await
    })
}

/// Executes a run in this process with live progress (journal lines, and a progress bar per
/// `for_each` step), from journal event `shown` on. Exit code 0 only if it succeeded (or,
/// after a rollback, was rolled back).
async fn follow(store: &Store, id: &str, shown: usize, json: bool) -> Result<ExitCode> {
    follow_with(store, id, shown, json, registry(), false).await
}

/// [`follow`] with a given registry; with `approve`, every approval gate is approved at once
/// by its first approver (journaled with the source `demo`).
pub async fn follow_with(
    store: &Store,
    id: &str,
    mut shown: usize,
    json: bool,
    registry: Registry,
    approve: bool,
) -> Result<ExitCode> {
    let worker = Worker::new(
        store.clone(),
        registry,
        format!("cli-{}", std::process::id()),
    );
    let mut announced = false;
    let mut bars: HashMap<String, (usize, usize)> = HashMap::new();
    let status = loop {
        let record = store.run(id).await?;
        let events = store.events(id).await?;
        if !json {
            for e in &events[shown..] {
                println!("{}", line(e));
            }
            for step in record.plan.steps.iter().filter(|s| s.for_each.is_some()) {
                let instances = record.machine.instances(&step.id);
                let done = instances.iter().filter(|s| s.is_terminal()).count();
                let progress = (done, instances.len());
                if !instances.is_empty() && bars.get(&step.id) != Some(&progress) {
                    println!("{}", progress_bar(&step.id, done, instances.len()));
                    bars.insert(step.id.clone(), progress);
                }
            }
        }
        shown = events.len();
        if record.status.is_final() {
            break record.status;
        }
        if record.status == RunStatus::Waiting && !announced {
            announced = true;
            for e in &events {
                if let EventKind::ApprovalRequested {
                    step, approvers, ..
                } = &e.kind
                {
                    let approver = approvers.first().map_or("EMAIL", String::as_str);
                    let parked = matches!(
                        record.machine.instance(step, 0),
                        Some(tenure_engine::machine::InstanceState::Parked { .. })
                    );
                    if approve && parked {
                        println!("             (demo) {approver} approves {step}");
                        decide(
                            store,
                            &format!("{id}:{step}"),
                            approver,
                            true,
                            Some("approved by tenure demo".into()),
                            "demo",
                        )
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                        announced = false;
                    } else if !approve {
                        eprintln!("waiting for approval; decide with: tenure approve {id}:{step} --as {approver} [--deny]");
                    }
                }
            }
        }
        if !worker.tick().await? {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if json {
        println!("{}", json!({"id": id, "status": status}));
    } else {
        eprintln!("run {id}: {}", status_name(status));
    }
    Ok(
        if matches!(status, RunStatus::Succeeded | RunStatus::RolledBack) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// `step [#########...........] 9/20 items`
fn progress_bar(step: &str, done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!(
        "             {step} [{}{}] {done}/{total} items",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    )
}

fn chrono_now() -> String {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis().to_string())
        .unwrap_or_default()
}

use tenure_engine::machine::status_name;

/// One journal event as a line for people.
fn line(e: &Event) -> String {
    let at = e.at.get(11..23).unwrap_or(&e.at);
    let item = |i: &Option<u32>| i.map(|i| format!("[{i}]")).unwrap_or_default();
    let what = match &e.kind {
        EventKind::RunCreated {
            runbook,
            version,
            trigger,
            ..
        } => format!("run created from {runbook} v{version} ({trigger})"),
        EventKind::InputsValidated { .. } => "inputs validated".into(),
        EventKind::StepReady { step, item: i } => format!("{step}{} ready", item(i)),
        EventKind::AttemptStarted {
            step,
            item: i,
            attempt,
            owner,
        } => format!("{step}{} attempt {attempt} started by {owner}", item(i)),
        EventKind::RequestSummary {
            step,
            method,
            path,
            status,
            duration_ms,
            ..
        } => format!(
            "{step} {method} {path} -> {} in {duration_ms} ms",
            status.map_or("no answer".into(), |s| s.to_string())
        ),
        EventKind::AttemptSucceeded {
            step,
            item: i,
            attempt,
            ..
        } => format!("{step}{} attempt {attempt} succeeded", item(i)),
        EventKind::AttemptFailed {
            step,
            item: i,
            attempt,
            class,
            code,
            message,
            ..
        } => format!(
            "{step}{} attempt {attempt} failed ({class} {code}): {message}",
            item(i)
        ),
        EventKind::StepSkipped { step, reason, .. } => format!("{step} skipped: {reason}"),
        EventKind::ApprovalRequested {
            step,
            approvers,
            expires_at,
        } => format!(
            "{step} asks {} (expires {expires_at})",
            approvers.join(", ")
        ),
        EventKind::ApprovalDecided {
            step,
            approver,
            decision,
            source,
            ..
        } => format!("{step}: {approver} chose {decision} ({source})"),
        EventKind::TimerSet { step, at } => format!("{step} sleeps until {at}"),
        EventKind::TimerFired { step } => format!("{step} woke"),
        EventKind::OnFailureStarted { failed_step } => {
            format!("{failed_step} failed the run: on_failure steps start")
        }
        EventKind::RunCancelled { by } => format!("cancelled by {by}"),
        EventKind::RunRetried { steps, by } => {
            if steps.is_empty() {
                format!("retried by {by}: every failed step runs again")
            } else {
                format!("retried by {by}: {} run again", steps.join(", "))
            }
        }
        EventKind::RollbackStarted { by } => {
            format!("rollback started by {by}: compensations run in reverse order")
        }
        EventKind::RunFinished { status, error } => format!(
            "run {status}{}",
            error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
    };
    format!("{at}  {what}")
}

/// Arguments of `tenure worker`.
#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    /// Tasks worked on at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long a claim lasts without a heartbeat; a crashed worker's work is taken over after it.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    lease: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tenure_runbook::duration::parse(s).map_err(|e| e.to_string())
}

/// `tenure worker`: executes queued runs until interrupted.
pub fn worker(db: &str, args: WorkerArgs) -> Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async move {
        let store = open(db).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for n in 0..args.concurrency.max(1) {
            let worker = Worker::new(
                store.clone(),
                registry(),
                format!("worker-{}-{n}", std::process::id()),
            )
            .with_lease(args.lease);
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                worker.work_until(|| stop.load(Ordering::Relaxed)).await
            }));
        }
        eprintln!(
            "worker {} running {} task(s) against {db}",
            std::process::id(),
            args.concurrency.max(1)
        );
        let _ = tokio::signal::ctrl_c().await;
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.context("worker task")??;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Arguments of `tenure runs`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only runs with this status.
    #[arg(long)]
    status: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `tenure runs`.
pub fn list(db: &str, args: ListArgs) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = open(db).await?;
        let runs = store.runs(args.status.as_deref()).await?;
        if args.json {
            let v: Vec<Value> = runs.iter().map(|r| json!({"id": r.id, "runbook": r.plan.runbook, "version": r.plan.version, "status": r.status, "created_at": r.created_at})).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for r in &runs {
                println!("{}  {:<10} {} v{}", r.id, status_name(r.status), r.plan.runbook, r.plan.version);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Arguments of `tenure log`.
#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// `RUN`, or `verify RUN`.
    #[arg(required = true, num_args = 1..=2)]
    target: Vec<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `tenure log RUN` / `tenure log verify RUN`.
pub fn log(db: &str, args: LogArgs) -> Result<ExitCode> {
    let (verify_only, run_id) = match args.target.as_slice() {
        [v, id] if v == "verify" => (true, id.clone()),
        [id] => (false, id.clone()),
        _ => bail!("usage: tenure log RUN | tenure log verify RUN"),
    };
    runtime()?.block_on(async move {
        let store = open(db).await?;
        store.run(&run_id).await?;
        let events = store.events(&run_id).await?;
        if verify_only {
            return Ok(match verify(&run_id, &events) {
                Ok(()) => {
                    println!("ok: {} events, hash chain intact", events.len());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: the journal of run {run_id} was tampered with: {e}");
                    ExitCode::from(1)
                }
            });
        }
        if args.json {
            println!("{}", serde_json::to_string_pretty(&events)?);
        } else {
            for e in &events {
                println!("{}", line(e));
            }
        }
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
    runtime()?.block_on(async move {
        let store = open(db).await?;
        match decide(
            &store,
            &args.approval,
            &args.approver,
            !args.deny,
            args.comment,
            "cli",
        )
        .await
        {
            Ok(status) => {
                println!("recorded; run is {}", status_name(status));
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(1))
            }
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
        let store = open(db).await?;
        let change = Change {
            events: vec![tenure_engine::machine::Event::Cancel],
            journal: vec![EventKind::RunCancelled { by: operator() }],
            ..Change::default()
        };
        match store.transition(&args.run, None, change).await {
            Ok(_) => {
                println!("cancelled {}", args.run);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: cannot cancel {}: {e}", args.run);
                Ok(ExitCode::from(1))
            }
        }
    })
}

/// The engine's kinds plus the vendor kinds, configured from the environment.
fn registry() -> Registry {
    let mut r = tenure_engine::builtin::registry();
    let vendors = crate::config::get().vendors().unwrap_or_else(|e| {
        eprintln!("warning: {e:#}; vendor steps will fail until it is fixed");
        tenure_kinds::Vendors::unconfigured()
    });
    tenure_kinds::register(&mut r, vendors);
    r
}

/// Who is at the terminal, for the journal.
fn operator() -> String {
    std::env::var("TENURE_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "operator".into())
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
    let event = tenure_engine::machine::Event::Retry {
        steps: args.steps.clone(),
    };
    let journal = EventKind::RunRetried {
        steps: args.steps.clone(),
        by: operator(),
    };
    operator_action(
        db,
        &args.run,
        event,
        journal,
        "retry",
        args.detach,
        args.json,
    )
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
    let event = tenure_engine::machine::Event::Rollback;
    let journal = EventKind::RollbackStarted { by: operator() };
    operator_action(
        db,
        &args.run,
        event,
        journal,
        "roll back",
        args.detach,
        args.json,
    )
}

fn operator_action(
    db: &str,
    run: &str,
    event: tenure_engine::machine::Event,
    journal: EventKind,
    verb: &str,
    detach: bool,
    json: bool,
) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let store = open(db).await?;
        let shown = store.events(run).await?.len();
        let change = Change {
            events: vec![event],
            journal: vec![journal],
            ..Change::default()
        };
        if let Err(e) = store.transition(run, None, change).await {
            eprintln!("error: cannot {verb} {run}: {e}");
            return Ok(ExitCode::from(1));
        }
        if detach {
            let status = store.run(run).await?.status;
            if json {
                println!("{}", json!({"id": run, "status": status}));
            } else {
                println!("{run}: {}", status_name(status));
            }
            return Ok(ExitCode::SUCCESS);
        }
        follow(&store, run, shown, json).await
    })
}
