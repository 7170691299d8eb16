//! `tenure`: the command-line entry point. Parses arguments, wires the crates together and
//! maps outcomes to exit codes (0 success, 1 a user-facing failure, 2 bad usage).

mod commands;
mod load;
mod tenants;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tenure: Microsoft 365 joiner / mover / leaver runbooks.
#[derive(Parser, Debug)]
#[command(name = "tenure", version, about, long_about = None)]
struct Cli {
    /// Database URL (`sqlite:PATH` or `postgres://...`).
    #[arg(
        long,
        global = true,
        env = "TENURE_DB",
        default_value = "sqlite:tenure.db"
    )]
    db: String,
    /// Configuration file (default: `tenure.toml` if present, else built-in sandbox defaults).
    #[arg(long, global = true, env = "TENURE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile runbook files or directories and print every diagnostic.
    Validate(commands::validate::Args),
    /// Draw a runbook's DAG as SVG, DOT or Mermaid.
    Graph(commands::graph::Args),
    /// Print the JSON Schema of the runbook language, including every step kind's `with`.
    Schema(commands::schema::Args),
    /// Show what a run would do with the given inputs, without changing anything.
    Plan(commands::plan::Args),
    /// The vendor simulator (Graph, Exchange, Intune, Pax8, Partner Center, PSAs, ...).
    Sandbox(commands::sandbox::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = (&cli.db, &cli.config);
    let result = match cli.command {
        Command::Validate(a) => commands::validate::run(a),
        Command::Graph(a) => commands::graph::run(a),
        Command::Schema(a) => commands::schema::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Sandbox(a) => commands::sandbox::run(a),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
