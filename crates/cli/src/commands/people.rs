//! `tenure people status UPN`: where a person stands in their tenant as HR platforms show it
//! (Active / Deactivated / No access, read from the tenant through Graph: the live account,
//! else the deleted items), with the runs that touched them (runs whose id, person, ticket or
//! inputs mention the UPN).

use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tenure_engine::machine::status_name;
use tenure_engine::store::RunFilter;

use super::runs::{open, runtime};
use crate::tenants;

/// Arguments of `tenure people`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: PeopleCommand,
}

#[derive(clap::Subcommand, Debug)]
enum PeopleCommand {
    /// Active / Deactivated / No access in the tenant, and the runs that touched the person.
    Status(StatusArgs),
}

/// Arguments of `tenure people status`.
#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// The person's user principal name.
    upn: String,
    /// The managed tenant (default: the one whose domain the UPN is in).
    #[arg(long)]
    tenant: Option<String>,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `tenure people ...`.
pub fn run(db: &str, args: Args) -> Result<ExitCode> {
    match args.command {
        PeopleCommand::Status(a) => status(db, a),
    }
}

fn status(db: &str, args: StatusArgs) -> Result<ExitCode> {
    let upn = args.upn.trim().to_string();
    let plain = !upn.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '/' | '\\' | '?' | '#' | '%' | '"')
    });
    let Some((_, domain)) = upn
        .split_once('@')
        .filter(|(l, d)| plain && !l.is_empty() && !d.is_empty() && !d.contains('@'))
    else {
        eprintln!(
            "error: `{}` is not a user principal name (name@domain)",
            upn.escape_debug()
        );
        return Ok(ExitCode::from(2));
    };
    let tenant = match args.tenant.as_deref() {
        Some(id) => tenants::find(id),
        None => tenants::all()
            .into_iter()
            .find(|t| t.domain.eq_ignore_ascii_case(domain)),
    };
    let Some(tenant) = tenant else {
        eprintln!(
            "error: no managed tenant {}; known: {} (name one with --tenant)",
            args.tenant
                .map(|t| format!("`{t}`"))
                .unwrap_or_else(|| format!("has the domain `{domain}`")),
            tenants::known()
        );
        return Ok(ExitCode::from(2));
    };
    let vendors = crate::config::get().vendors()?;
    runtime()?.block_on(async move {
        let standing = tenure_kinds::people::standing(&vendors, &tenant.to_json(), &upn)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))
            .with_context(|| format!("cannot read {upn} in {}", tenant.name))?;
        let engine = open(db).await?;
        let runs = engine
            .runs(&RunFilter {
                text: Some(upn.clone()),
                limit: 200,
                ..RunFilter::default()
            })
            .await?;
        if args.json {
            let mut v = standing.to_json();
            v["upn"] = json!(upn);
            v["tenant"] = tenant.to_json();
            v["runs"] = Value::Array(
                runs.iter()
                    .map(|r| {
                        json!({"id": r.id, "runbook": r.plan.runbook, "version": r.plan.version,
                            "status": r.status, "created_at": r.created_at})
                    })
                    .collect(),
            );
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{upn} in {} ({}): {}",
            tenant.name,
            tenant.id,
            standing.access.label()
        );
        if let Some(a) = &standing.account {
            let licences = a["assignedLicenses"].as_array().map_or(0, Vec::len);
            println!(
                "  account {} ({}), sign-in {}, {licences} licence{}, {}",
                a["displayName"].as_str().unwrap_or("?"),
                a["id"].as_str().unwrap_or("?"),
                if a["accountEnabled"] == false {
                    "blocked"
                } else {
                    "enabled"
                },
                if licences == 1 { "" } else { "s" },
                if a["onPremisesSyncEnabled"] == true {
                    "synced from on-premises"
                } else {
                    "cloud-only"
                }
            );
        }
        if let Some(d) = &standing.deleted {
            println!(
                "  deleted {} (id {}): restorable for 30 days after deletion",
                d["deletedDateTime"]
                    .as_str()
                    .unwrap_or("at an unknown time"),
                d["id"].as_str().unwrap_or("?")
            );
        }
        if runs.is_empty() {
            println!("No run has touched {upn}.");
        } else {
            println!("Runs that touched {upn}:");
            for r in &runs {
                let at = chrono::DateTime::from_timestamp_millis(r.created_at)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default();
                println!(
                    "  {at}  {:<10} {} v{}  {}",
                    status_name(r.status),
                    r.plan.runbook,
                    r.plan.version,
                    r.id
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
