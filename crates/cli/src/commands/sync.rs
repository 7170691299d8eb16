//! `tenure sync SOURCE`: one people sync of a `[[sync]]` source (see `docs/people.md`):
//! the plan as the four lists (or `--json`), recorded; `--apply` starts the runs (workers
//! carry them out), `--approve-by` puts the whole batch behind one approval. `tenure sync
//! --list` shows past syncs. Everything goes through the `Engine` API.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};
use serde_json::json;
use tenure_people::config::SyncSource;
use tenure_people::sync::{SyncOptions, Synced};

use super::runs::{open, operator, runtime};
use crate::{load, tenants};

/// Exit code of a sync the guard stopped.
pub const GUARDED: u8 = 3;

/// Arguments of `tenure sync`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `[[sync]]` source's id.
    #[arg(required_unless_present = "list")]
    source: Option<String>,
    /// Start the runs (otherwise only the plan is shown and recorded).
    #[arg(long)]
    apply: bool,
    /// JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Apply although the deactivations exceed `max_deactivate_percent` (never for an empty
    /// source).
    #[arg(long)]
    force: bool,
    /// Read the whole tenant, not only its changes since the last sync.
    #[arg(long)]
    full: bool,
    /// One approval for the whole batch, asked of these people (repeatable).
    #[arg(long = "approve-by", value_name = "EMAIL")]
    approve_by: Vec<String>,
    /// Past syncs, newest first (of SOURCE, if given).
    #[arg(long, conflicts_with_all = ["apply", "force", "full", "approve_by"])]
    list: bool,
}

/// The `[[sync]]` source `id`, or a clear error naming the configured ones.
pub fn find_source(id: &str) -> Result<&'static SyncSource> {
    let sources = &crate::config::get().sync;
    sources.iter().find(|s| s.id == id).ok_or_else(|| {
        let known: Vec<&str> = sources.iter().map(|s| s.id.as_str()).collect();
        if known.is_empty() {
            anyhow::anyhow!("no sync source `{id}`: the configuration has no [[sync]] entry")
        } else {
            anyhow::anyhow!("no sync source `{id}`; configured: {}", known.join(", "))
        }
    })
}

/// Finds a runbook by id in `runbooks/`, compiled.
pub fn resolve(id: &str) -> Result<Arc<tenure_runbook::Plan>, String> {
    resolve_in(std::path::Path::new(load::RUNBOOKS_DIR), id)
}

/// Finds a runbook by id among the files under `dir`, compiled.
pub fn resolve_in(dir: &std::path::Path, id: &str) -> Result<Arc<tenure_runbook::Plan>, String> {
    let compiled = load::resolve_id_in(dir, id).map_err(|e| format!("{e:#}"))?;
    compiled.output.plan.map(Arc::new).ok_or_else(|| {
        format!(
            "{} does not compile (tenure validate shows why)",
            compiled.source.name()
        )
    })
}

/// `tenure sync`.
pub fn run(db: &str, args: Args) -> Result<ExitCode> {
    if args.list {
        return list(db, args.source.as_deref(), args.json);
    }
    let id = args.source.clone().unwrap_or_default();
    let src = find_source(&id)?;
    let Some(tenant) = tenants::find(&src.tenant) else {
        bail!(
            "sync source `{id}`: no managed tenant `{}`; known: {}",
            src.tenant,
            tenants::known()
        );
    };
    let vendors = crate::config::get().vendors()?;
    let options = SyncOptions {
        apply: args.apply,
        force: args.force,
        full: args.full,
        approve_by: args.approve_by.clone(),
        mode: if args.apply { "apply" } else { "plan" }.into(),
        trigger: "cli".into(),
        by: Some(operator()),
        full_every_ms: Some(
            src.full_every
                .as_ref()
                .map_or(super::sync_schedule::FULL_EVERY, |d| d.0)
                .as_millis() as i64,
        ),
    };
    let base = crate::config::get().dir.clone();
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        let resolver = |id: &str| resolve(id);
        let synced = tenure_people::sync::sync(
            &engine,
            &vendors,
            src,
            &base,
            &tenant.to_json(),
            &resolver,
            &options,
        )
        .await;
        match synced {
            Ok(s) => Ok(show(&s, args.json, args.apply)),
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(1))
            }
        }
    })
}

fn show(s: &Synced, json: bool, asked_to_apply: bool) -> ExitCode {
    let guarded = s.plan.guard.is_some();
    if json {
        let v = json!({
            "sync": s.record.id,
            "source": s.record.source,
            "tenant": s.record.tenant,
            "status": s.record.status,
            "summary": s.record.summary,
            "requests": s.record.requests,
            "full": s.full,
            "plan": tenure_people::render::to_json(&s.plan),
            "outcome": s.record.outcome,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", tenure_people::render::table(&s.plan));
        println!(
            "Sync {} of `{}` for {}: {} ({} Graph request{}, {} read).",
            s.record.id,
            s.record.source,
            s.record.tenant,
            s.record.status.replace('_', " "),
            s.record.requests,
            if s.record.requests == 1 { "" } else { "s" },
            if s.full { "full" } else { "delta" }
        );
        if let Some(o) = &s.outcome {
            for r in &o.runs {
                println!(
                    "  {} {} {}: run {}{}",
                    r.action,
                    if r.person.is_empty() {
                        "batch"
                    } else {
                        &r.person
                    },
                    r.runbook,
                    r.run_id,
                    if r.existing { " (already started)" } else { "" }
                );
            }
            for e in &o.errors {
                println!("  not started: {e}");
            }
            if !o.runs.is_empty() {
                println!("Workers carry the runs out (`tenure worker`, or `tenure serve`); `tenure runs` follows them.");
            }
        } else if guarded && asked_to_apply {
            eprintln!("Nothing was applied: the guard stopped the sync.");
        } else if !asked_to_apply && s.record.status == "planned" {
            println!("Nothing was started: `--apply` starts the runs.");
        }
    }
    if guarded {
        ExitCode::from(GUARDED)
    } else if s.record.status == "failed" {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn list(db: &str, source: Option<&str>, json: bool) -> Result<ExitCode> {
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        let syncs = engine.sync_summaries(source, 50).await?;
        if json {
            let v: Vec<_> = syncs
                .iter()
                .map(|s| {
                    json!({"id": s.id, "source": s.source, "tenant": s.tenant, "started_ms": s.started_ms,
                        "finished_ms": s.finished_ms, "mode": s.mode, "status": s.status,
                        "summary": s.summary, "requests": s.requests})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        if syncs.is_empty() {
            println!("No sync yet.");
        }
        for s in &syncs {
            let at = chrono::DateTime::from_timestamp_millis(s.started_ms)
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default();
            println!(
                "{at}  {:<10} {:<10} {:<9} {:<13} {}  ({} requests)  {}",
                s.source, s.tenant, s.mode, s.status, s.summary, s.requests, s.id
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
