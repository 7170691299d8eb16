//! `tenure validate PATH...`: compile and report every diagnostic; `--strict` fails on
//! warnings (the domain lints) too.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use crate::load;

/// Arguments of `tenure validate`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Runbook files or directories (searched for .yaml / .yml).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Fail (exit 1) on any warning too, not only on errors.
    #[arg(long)]
    strict: bool,
}

/// Runs the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let files = load::expand(&args.paths)?;
    let (mut errors, mut warnings, mut ok) = (0, 0, 0);
    let mut report = Vec::new();
    for file in &files {
        let c = load::compile_file(file)?;
        let e = c.output.diagnostics.iter().filter(|d| d.is_error()).count();
        errors += e;
        warnings += c.output.diagnostics.len() - e;
        if args.json {
            report.push(json!({
                "file": c.source.name(),
                "ok": e == 0,
                "runbook": c.output.plan.as_ref().map(|p| &p.runbook),
                "version": c.output.plan.as_ref().map(|p| p.version),
                "hash": c.output.plan.as_ref().map(|p| &p.hash),
                "diagnostics": c.output.diagnostics.iter().map(|d| {
                    let loc = c.source.location(d.span.start);
                    json!({"code": d.code.as_str(), "severity": d.severity.as_str(), "message": d.message,
                           "line": loc.line, "col": loc.col, "help": d.help})
                }).collect::<Vec<_>>(),
            }));
            continue;
        }
        load::print_diagnostics(&c);
        if let Some(plan) = &c.output.plan {
            ok += 1;
            println!(
                "ok   {} ({} v{}, {} steps, {} on_failure)",
                c.source.name(),
                plan.runbook,
                plan.version,
                plan.steps.len(),
                plan.on_failure.len()
            );
        } else {
            println!(
                "FAIL {} ({e} error{})",
                c.source.name(),
                if e == 1 { "" } else { "s" }
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} file{} checked: {ok} ok, {errors} error{}, {warnings} warning{}",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    Ok(if errors > 0 || (args.strict && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
