//! `tenure`: the command-line entry point. Parses arguments, wires the crates together and
//! maps outcomes to exit codes (0 success, 1 a user-facing failure, 2 bad usage).

mod commands;
mod config;
mod load;
mod tenants;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tenure: Microsoft 365 joiner / mover / leaver runbooks.
#[derive(Parser, Debug)]
#[command(name = "tenure", version, about, long_about = None)]
struct Cli {
    /// Database URL (`sqlite:PATH` or `postgres://...`; default: the configuration's, else
    /// `sqlite:tenure.db`).
    #[arg(long, global = true, env = "TENURE_DB")]
    db: Option<String>,
    /// Configuration file (default: `tenure.toml` if present, else built-in sandbox defaults).
    #[arg(long, global = true, env = "TENURE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The whole product end to end on a built-in sandbox (no accounts needed): a ticket
    /// webhook, an approval link, a new hire and a leaver.
    Demo(commands::demo::Args),
    /// Compile runbook files or directories and print every diagnostic.
    Validate(commands::validate::Args),
    /// Draw a runbook's DAG as SVG, DOT or Mermaid.
    Graph(commands::graph::Args),
    /// Print the JSON Schema of the runbook language, including every step kind's `with`.
    Schema(commands::schema::Args),
    /// Show what a run would do with the given inputs, without changing anything.
    Plan(commands::plan::Args),
    /// Start a run; without --detach, execute it here with live progress.
    Run(commands::runs::RunArgs),
    /// Execute queued runs until stopped.
    Worker(commands::operate::WorkerArgs),
    /// List runs.
    Runs(commands::runs::ListArgs),
    /// A run's execution log, or `log verify RUN` to check its hash chain.
    Log(commands::runs::LogArgs),
    /// People in the tenants: `status UPN` (Active / Deactivated / No access, their links and
    /// runs), `link PERSON UPN`, `unlink PERSON`.
    People(commands::people::Args),
    /// Reconcile a `[[sync]]` HR source with its tenant: the plan, `--apply` to start the runs,
    /// `--list` for past syncs.
    Sync(commands::sync::Args),
    /// Approve (or --deny) a waiting approval gate from the terminal.
    Approve(commands::operate::ApproveArgs),
    /// Cancel a run.
    Cancel(commands::operate::CancelArgs),
    /// Resume a failed run from its failed steps.
    Retry(commands::operate::RetryArgs),
    /// Undo a failed or cancelled run: each step's `compensate`, in reverse order.
    Rollback(commands::operate::RollbackArgs),
    /// The vendor simulator (Graph, Exchange, Intune, Pax8, Partner Center, PSAs, ...).
    Sandbox(commands::sandbox::Args),
    /// The HTTP server: ticket webhooks, approval links, the REST API and metrics, plus workers.
    Serve(commands::serve::Args),
    /// The language server for editors (LSP over stdin/stdout): diagnostics, hover,
    /// completion and go-to-definition for runbooks.
    Lsp,
}

/// Logs (tracing) on stderr, filtered by `RUST_LOG`: `info` for the worker, warnings only for
/// the other commands (their output is for people); `json` for one object per line.
fn init_logging(default: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A reader that stops early (`tenure schema | head -1`) closes the pipe; the next write to
/// standard output then fails, which `println!` turns into a panic. That is not an error of
/// the command: end quietly (exit 0) instead of exit 101 and a panic message. A foreground
/// `tenure run` never ends here: its output goes through `commands::out`, which falls silent
/// and lets the run go on to its end.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    match &cli.command {
        Command::Worker(a) => init_logging("info", a.log_format == "json"),
        Command::Serve(a) => init_logging("info", a.log_format == "json"),
        _ => init_logging("warn", false),
    }
    if let Command::Lsp = cli.command {
        // Needs no configuration or database: stdout belongs to the protocol.
        return match tenure_lsp::run_stdio() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::from(1)
            }
        };
    }
    let config = match config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let db_url = config.database_url(cli.db.as_deref());
    let db = db_url.as_str();
    let result = match cli.command {
        Command::Demo(a) => commands::demo::run(cli.db.as_deref(), a),
        Command::Validate(a) => commands::validate::run(a),
        Command::Graph(a) => commands::graph::run(a),
        Command::Schema(a) => commands::schema::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Run(a) => commands::runs::run(db, a),
        Command::Worker(a) => commands::operate::worker(db, a),
        Command::Runs(a) => commands::runs::list(db, a),
        Command::Log(a) => commands::runs::log(db, a),
        Command::People(a) => commands::people::run(db, a),
        Command::Sync(a) => commands::sync::run(db, a),
        Command::Approve(a) => commands::operate::approve(db, a),
        Command::Cancel(a) => commands::operate::cancel(db, a),
        Command::Retry(a) => commands::operate::retry(db, a),
        Command::Rollback(a) => commands::operate::rollback(db, a),
        Command::Sandbox(a) => commands::sandbox::run(a),
        Command::Serve(a) => commands::serve::run(db, a),
        Command::Lsp => Ok(ExitCode::SUCCESS), // served above
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
