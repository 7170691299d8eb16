//! `tenure graph RUNBOOK --format svg|dot|mermaid`: the DAG as a picture or text.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tenure_graph::Format;

use crate::load;

/// Arguments of `tenure graph`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A runbook file, or the id of a runbook in `runbooks/`.
    runbook: String,
    /// Output format.
    #[arg(long, default_value = "svg", value_parser = ["svg", "dot", "mermaid"])]
    format: String,
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let compiled = load::resolve(&args.runbook)?;
    let Some(plan) = &compiled.output.plan else {
        load::print_diagnostics(&compiled);
        eprintln!(
            "{}: does not compile; fix the errors above first",
            compiled.source.name()
        );
        return Ok(ExitCode::from(1));
    };
    let format: Format = args.format.parse().map_err(anyhow::Error::msg)?;
    let text = tenure_graph::render(plan, format);
    match args.output {
        Some(path) => std::fs::write(&path, text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
