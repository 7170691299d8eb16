//! `tenure schema`: the JSON Schema of the runbook language for editors.

use std::process::ExitCode;

use anyhow::Result;

/// Arguments of `tenure schema`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs the command.
pub fn run(_: Args) -> Result<ExitCode> {
    let schema = tenure_runbook::json_schema::runbook_schema(&tenure_steps::catalogue());
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}
