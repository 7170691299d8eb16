//! Run commands, each through the engine's API: `run` (start, and follow in this process),
//! `runs` (list with filters) and `log` (read, follow or verify a run's journal).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tenure_engine::machine::{status_name, RunStatus};
use tenure_engine::store::RunFilter;
use tenure_engine::{Engine, StartRun, TenantLookup, Trigger};
use tenure_steps::Registry;

use super::log_line::{line, progress_bar};
use super::out::Out;
use crate::{load, tenants};

/// A runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

/// The managed tenants, as the engine looks them up.
pub fn tenant_lookup() -> TenantLookup {
    Arc::new(|id: &str| {
        tenants::find(id)
            .map(|t| t.to_json())
            .ok_or_else(|| format!("unknown tenant `{id}` (configured: {})", tenants::known()))
    })
}

/// The engine over the database `db`, running `registry`'s kinds.
pub async fn open_with(db: &str, registry: Registry) -> Result<Engine> {
    Engine::open(db, registry, tenant_lookup())
        .await
        .map_err(|e| match e {
            // Already names the database (without its password) and the cause.
            tenure_engine::api::Error::Store(tenure_engine::store::Error::Connect { .. }) => {
                anyhow::Error::new(e)
            }
            e => anyhow::Error::new(e)
                .context(format!("cannot open the database {}", redact_url(db))),
        })
}

/// The engine over `db` with every kind, vendors configured from the configuration. Its
/// `approval` kind sends each approver their signed link (Teams card, email) wherever the
/// approval's attempt runs; a bad `[server] key_env` is only a warning here (`tenure serve`
/// refuses to start with one) and leaves the approvers un-notified, as the journal says.
pub async fn open(db: &str) -> Result<Engine> {
    Ok(open_linked(db, &crate::config::get().server).await?.0)
}

/// [`open`] with links configured by `server`; also returns the links, or why there are none.
pub async fn open_linked(
    db: &str,
    server: &tenure_server::config::ServerSection,
) -> Result<(Engine, Result<tenure_server::approvals::Links>)> {
    let slot = tenure_server::approvals::notify::LinkSlot::default();
    let mut r = registry();
    tenure_server::approvals::notify::wrap(&mut r, slot.clone());
    let engine = open_with(db, r).await?;
    let links =
        tenure_server::approvals::Links::from_config(server, engine.derive_key("approval-links"))
            .map_err(anyhow::Error::new);
    match &links {
        Ok(links) => {
            let _ = slot.set(links.clone());
        }
        Err(e) => tracing::warn!("{e:#}; approvers will not be sent links"),
    }
    Ok((engine, links))
}

/// The engine's kinds plus the vendor kinds, configured from the environment.
pub fn registry() -> Registry {
    let mut r = tenure_engine::builtin::registry();
    let vendors = crate::config::get().vendors().unwrap_or_else(|e| {
        tracing::warn!("{e:#}; vendor steps will fail until it is fixed");
        tenure_kinds::Vendors::unconfigured()
    });
    tenure_kinds::register(&mut r, vendors);
    r
}

/// Who is at the terminal, for the journal.
pub fn operator() -> String {
    std::env::var("TENURE_OPERATOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "operator".into())
}

/// A database URL without its password.
pub fn redact_url(url: &str) -> String {
    tenure_engine::store::redact_url(url)
}

/// Prints an engine refusal the way the CLI reports user-facing failures (exit 1).
pub fn refused(what: &str, e: &tenure_engine::api::Error) -> ExitCode {
    match e {
        tenure_engine::api::Error::Inputs(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
        }
        other => eprintln!("error: {what}: {other}"),
    }
    ExitCode::from(1)
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
    /// A dedup key: a second run with the same key is not started, the first one is shown.
    #[arg(long)]
    dedup_key: Option<String>,
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
    let given = super::plan::gather_inputs(&plan, args.input_file.as_ref(), &args.inputs)?;
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        let start = StartRun {
            plan: Arc::new(plan.clone()),
            inputs: given,
            trigger: Trigger::new("cli", Some(operator())),
            dedup_key: args.dedup_key.clone(),
        };
        let started = match engine.start_run(start).await {
            Ok(s) => s,
            Err(e) => return Ok(refused("cannot start the run", &e)),
        };
        let id = started.id;
        if started.duplicate && !args.json {
            eprintln!("a run with this dedup key exists already: {id} (nothing new was started)");
        }
        if args.detach {
            if args.json {
                println!("{}", json!({"id": id, "duplicate": started.duplicate}));
            } else {
                println!("{id}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if !started.duplicate {
            eprintln!("run {id} ({} v{})", plan.runbook, plan.version);
        }
        follow(&engine, &id, 0, args.json).await
    })
}

/// Executes a run in this process with live progress (journal lines, and a progress bar per
/// `for_each` step), from after journal event `shown` on. Exit code 0 only if it succeeded
/// (or, after a rollback, was rolled back). If the reader of the output goes away (`| head`),
/// the run still goes on to its end, quietly; if this process is killed, the run stays in the
/// database and a `tenure worker` finishes it (at once for a step not yet started, after the
/// lease for one that was in progress).
pub async fn follow(engine: &Engine, id: &str, shown: u64, json: bool) -> Result<ExitCode> {
    follow_with(engine, id, shown, json, true).await
}

/// [`follow`]; with `hint`, a run waiting on an approval prints how to decide it from the
/// terminal (`tenure demo` shows the approval link instead).
pub async fn follow_with(
    engine: &Engine,
    id: &str,
    mut shown: u64,
    json: bool,
    hint: bool,
) -> Result<ExitCode> {
    // The run's tasks (and any other due work) run in the background, many at once; this
    // loop shows what they journal.
    let worker = engine.worker(0);
    let stop = Arc::new(AtomicBool::new(false));
    let mut working = {
        let stop = stop.clone();
        tokio::spawn(async move { worker.work_until(|| stop.load(Ordering::Relaxed)).await })
    };
    let mut changes = engine.subscribe();
    let mut out = Out::new();
    let mut announced = false;
    let mut bars: HashMap<String, (usize, usize)> = HashMap::new();
    let status = loop {
        let record = engine.run(id).await?;
        let events = engine.events(id, shown).await?;
        if !json {
            for e in &events {
                out.line(line(e));
            }
            for step in record.plan.steps.iter().filter(|s| s.for_each.is_some()) {
                let instances = record.machine.instances(&step.id);
                let done = instances.iter().filter(|s| s.is_terminal()).count();
                let progress = (done, instances.len());
                if !instances.is_empty() && bars.get(&step.id) != Some(&progress) {
                    out.line(progress_bar(&step.id, done, instances.len()));
                    bars.insert(step.id.clone(), progress);
                }
            }
        }
        shown = events.last().map_or(shown, |e| e.seq);
        if record.status.is_final() {
            break record.status;
        }
        if record.status == RunStatus::Waiting && !announced && hint {
            announced = true;
            for (step, gate) in record.machine.open_gates() {
                let Some(approver) = gate.approvers.iter().find(|a| !gate.has_decided(a)) else {
                    continue;
                };
                out.note(format_args!("waiting for approval; decide with: tenure approve {id}:{step} --as {approver} [--deny]"));
            }
        }
        if working.is_finished() {
            // The worker stopped on an error it cannot work past.
            (&mut working).await.context("worker task")??;
            anyhow::bail!("the worker stopped");
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), changes.recv()).await;
    };
    stop.store(true, Ordering::Relaxed);
    working.await.context("worker task")??;
    if json {
        out.line(json!({"id": id, "status": status}));
    } else {
        out.note(format_args!("run {id}: {}", status_name(status)));
    }
    Ok(
        if matches!(status, RunStatus::Succeeded | RunStatus::RolledBack) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// Arguments of `tenure runs`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only runs with this status.
    #[arg(long, value_parser = ["queued", "running", "waiting", "succeeded", "failed", "denied", "cancelled", "rolled_back"])]
    status: Option<String>,
    /// Only runs of this runbook.
    #[arg(long)]
    runbook: Option<String>,
    /// Only runs on this tenant id.
    #[arg(long)]
    tenant: Option<String>,
    /// Only runs whose id, person, ticket number or runbook contain this text, in any case
    /// (a UPN, a ticket number).
    #[arg(long)]
    search: Option<String>,
    /// Only runs started by a `runbook.call` of this run.
    #[arg(long)]
    parent: Option<String>,
    /// At most this many runs (default: all, read a page at a time).
    #[arg(long)]
    limit: Option<usize>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `tenure runs`.
pub fn list(db: &str, args: ListArgs) -> Result<ExitCode> {
    if args.limit == Some(0) {
        eprintln!("error: --limit must be at least 1");
        return Ok(ExitCode::from(2));
    }
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        let mut filter = RunFilter {
            status: args.status,
            runbook: args.runbook,
            tenant: args.tenant,
            text: args.search,
            parent: args.parent,
            before: None,
            limit: args.limit.unwrap_or(1000).min(1000),
        };
        let mut runs = Vec::new();
        loop {
            let page = engine.run_rows(&filter).await?;
            let full = page.len() == filter.limit;
            filter.before = page.last().map(|r| (r.created_at, r.id.clone()));
            runs.extend(page);
            let wanted = args.limit.is_none_or(|n| runs.len() < n);
            if !full || !wanted {
                break;
            }
            if let Some(n) = args.limit {
                filter.limit = (n - runs.len()).min(1000);
            }
        }
        if args.json {
            let v: Vec<Value> = runs.iter().map(|r| json!({"id": r.id, "runbook": r.runbook, "version": r.version, "status": r.status, "created_at": r.created_at,
                "person": r.labels.person, "tenant": r.labels.tenant, "ticket": r.labels.ticket,
                "parent": r.parent.as_ref().map(|(run, step, item)| json!({"run": run, "step": step, "item": item}))})).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for r in &runs {
                // A called run names the run and step that called it.
                let called = r.parent.as_ref().map(|(run, step, _)| format!("  (called by {run} step {step})")).unwrap_or_default();
                let person = r.labels.person.as_deref().map(|p| format!("  {p}")).unwrap_or_default();
                println!("{}  {:<10} {} v{}{called}{person}", r.id, status_name(r.status), r.runbook, r.version);
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
    /// Machine-readable output (with --follow, one JSON object per line).
    #[arg(long)]
    json: bool,
    /// Keep printing new events until the run ends.
    #[arg(long)]
    follow: bool,
    /// Print the run's report instead of its events: what it did, step by step (Markdown).
    #[arg(long, conflicts_with_all = ["json", "follow"])]
    report: bool,
    /// With --report: the report as HTML (as email carries it).
    #[arg(long, requires = "report")]
    html: bool,
}

/// `tenure log RUN` / `tenure log RUN --report` / `tenure log verify RUN`.
pub fn log(db: &str, args: LogArgs) -> Result<ExitCode> {
    let (verify_only, run_id) = match args.target.as_slice() {
        [v, id] if v == "verify" => (true, id.clone()),
        [id] => (false, id.clone()),
        _ => {
            eprintln!("usage: tenure log RUN | tenure log verify RUN");
            return Ok(ExitCode::from(2));
        }
    };
    if run_id == "verify" && !verify_only {
        eprintln!("usage: tenure log verify RUN (the run id is missing)");
        return Ok(ExitCode::from(2));
    }
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        if let Err(e) = engine.run(&run_id).await {
            return Ok(refused("cannot read the log", &e));
        }
        if verify_only {
            return Ok(match engine.verify(&run_id).await? {
                Ok(n) => {
                    println!("ok: {n} events, hash chain intact and complete");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: the journal of run {run_id} was tampered with: {e}");
                    ExitCode::from(1)
                }
            });
        }
        if args.report {
            let report = engine.report(&run_id).await?;
            if args.html {
                print!("{}", report.html());
            } else {
                print!("{}", report.markdown);
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut shown = 0;
        loop {
            let events = engine.events(&run_id, shown).await?;
            if args.json && !args.follow {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                for e in &events {
                    if args.json {
                        println!("{}", serde_json::to_string(e)?);
                    } else {
                        println!("{}", line(e));
                    }
                }
            }
            shown = events.last().map_or(shown, |e| e.seq);
            if !args.follow || engine.run(&run_id).await?.status.is_final() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(ExitCode::SUCCESS)
    })
}
