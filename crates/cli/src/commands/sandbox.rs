//! `tenure sandbox serve`: the vendor simulator as its own process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tenure_sandbox::{Sandbox, DEFAULT_SEED};

/// Arguments of `tenure sandbox`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Serve every simulated vendor API until interrupted.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: SocketAddr,
        /// Seed file (JSON; see docs/sandbox.md). Default: the built-in seed.
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Keep the state in this file: written after every change, and read back on start.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Address of the SMTP listener (port 0, the default, picks a free port; the address
        /// is printed and served at /_sandbox/health).
        #[arg(long, default_value = "127.0.0.1:0")]
        smtp_listen: SocketAddr,
    },
}

/// Runs the command.
pub fn run(args: Args) -> Result<ExitCode> {
    let Command::Serve {
        listen,
        seed,
        state,
        smtp_listen,
    } = args.command;
    let seed_text = match &seed {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read seed {}", path.display()))?,
        None => DEFAULT_SEED.to_string(),
    };
    let sandbox = match state {
        Some(path) => Sandbox::persisted(&seed_text, path)?,
        None => Sandbox::from_seed(&seed_text)?,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (addr, server) = sandbox.serve_with_smtp(listen, smtp_listen).await.with_context(|| format!("cannot listen on {listen} and {smtp_listen}"))?;
        let smtp = sandbox.smtp_addr().map(|a| a.to_string()).unwrap_or_default();
        // A closed stderr (a supervisor that stopped reading) must not stop the server, so
        // write errors are ignored rather than panicking as `eprintln!` would.
        use std::io::Write as _;
        let _ = write!(
            std::io::stderr(),
            "sandbox listening on http://{addr}\n  SMTP on {smtp}\n  point Tenure at it with TENURE_SANDBOX=http://{addr} (and TENURE_SANDBOX_SMTP={smtp} to send email over SMTP)\n  state: GET http://{addr}/_sandbox/state   faults: POST http://{addr}/_sandbox/faults\n"
        );
        tokio::select! {
            _ = server => {}
            _ = tokio::signal::ctrl_c() => {
                let _ = writeln!(std::io::stderr(), "stopping");
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
