//! `tenure people status UPN`: where a person stands in their tenant as HR platforms show it
//! (Active / Deactivated / No access, read from the tenant through Graph: the live account,
//! else the deleted items), the people sync links of their account, and the runs that touched
//! them (runs whose id, person, ticket or inputs mention the UPN). `tenure people link PERSON
//! UPN` and `unlink PERSON` make and remove a sync source's link by hand, through the engine.

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
    /// Active / Deactivated / No access in the tenant, the person's links, and the runs that
    /// touched them.
    Status(StatusArgs),
    /// Link a person of a sync source to an account (by hand: `via = manual`).
    Link(LinkArgs),
    /// Remove a person's link.
    Unlink(UnlinkArgs),
}

/// Arguments of `tenure people link`.
#[derive(clap::Args, Debug)]
struct LinkArgs {
    /// The person's key in the source (an employee number).
    person: String,
    /// The account's user principal name.
    upn: String,
    /// The `[[sync]]` source (default: the only one configured).
    #[arg(long)]
    source: Option<String>,
    /// The managed tenant (default: the source's).
    #[arg(long)]
    tenant: Option<String>,
}

/// Arguments of `tenure people unlink`.
#[derive(clap::Args, Debug)]
struct UnlinkArgs {
    /// The person's key in the source.
    person: String,
    /// The `[[sync]]` source (default: the only one configured).
    #[arg(long)]
    source: Option<String>,
    /// The managed tenant (default: the source's).
    #[arg(long)]
    tenant: Option<String>,
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
        PeopleCommand::Link(a) => link(db, a),
        PeopleCommand::Unlink(a) => unlink(db, a),
    }
}

/// The source (`--source`, else the only `[[sync]]` entry) and the tenant (`--tenant`, else
/// the source's).
fn source_and_tenant(
    source: Option<&str>,
    tenant: Option<&str>,
) -> Result<(String, tenants::Tenant)> {
    let sources = &crate::config::get().sync;
    let id = match source {
        Some(s) => super::sync::find_source(s)?.id.clone(),
        None => match sources.as_slice() {
            [only] => only.id.clone(),
            [] => anyhow::bail!("the configuration has no [[sync]] source; name one with --source"),
            _ => anyhow::bail!(
                "several [[sync]] sources ({}); name one with --source",
                sources
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    let tenant_id = match tenant {
        Some(t) => t.to_string(),
        None => sources
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.tenant.clone())
            .with_context(|| format!("no tenant for source `{id}`; name one with --tenant"))?,
    };
    let t = tenants::find(&tenant_id).with_context(|| {
        format!(
            "no managed tenant `{tenant_id}`; known: {}",
            tenants::known()
        )
    })?;
    Ok((id, t))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn link(db: &str, args: LinkArgs) -> Result<ExitCode> {
    let (source, tenant) = source_and_tenant(args.source.as_deref(), args.tenant.as_deref())?;
    let upn = args.upn.trim().to_string();
    let person = args.person.trim().to_string();
    if person.chars().any(char::is_control) {
        anyhow::bail!(
            "the person key {person:?} holds a control character; no source record can have \
             it (the sync skips such a record); nothing was linked"
        );
    }
    let vendors = crate::config::get().vendors()?;
    runtime()?.block_on(async move {
        // A link to a person the source does not list would be `source_missing` at the next
        // sync, and the account deactivated: a mistyped key must not get that far.
        listed(&source, &person).await?;
        let standing = tenure_kinds::people::standing(&vendors, &tenant.to_json(), &upn)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))
            .with_context(|| format!("cannot read {upn} in {}", tenant.name))?;
        let Some(id) = standing
            .account
            .as_ref()
            .and_then(|a| a["id"].as_str())
            .map(str::to_string)
        else {
            eprintln!(
                "error: {upn} has no live account in {} ({}); nothing was linked",
                tenant.name, tenant.id
            );
            return Ok(ExitCode::from(1));
        };
        let engine = open(db).await?;
        let link = tenure_engine::people::PersonLink {
            tenant: tenant.id.clone(),
            source: source.clone(),
            person_key: person.clone(),
            account_id: Some(id.clone()),
            user_principal_name: Some(upn.clone()),
            via: "manual".into(),
            run_id: None,
            created_ms: now_ms(),
            updated_ms: now_ms(),
        };
        match engine.link_person(link).await {
            Ok(()) => {
                println!(
                    "linked {source} person {person} to {upn} ({id}) in {}",
                    tenant.id
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(ExitCode::from(1))
            }
        }
    })
}

/// Whether the source `source` lists the person `key` (read and mapped as a sync does).
async fn listed(source: &str, key: &str) -> Result<()> {
    let src = super::sync::find_source(source)?;
    let base = &crate::config::get().dir;
    let not_checked = |e: String| {
        anyhow::anyhow!(
            "cannot check that source `{source}` lists person `{key}`: {e}; nothing was linked"
        )
    };
    let records = tenure_people::source::read(&src.source, base)
        .await
        .map_err(|e| not_checked(e.to_string()))?;
    let mapped = src
        .mapping()
        .and_then(|m| m.map_records(&records))
        .map_err(|e| not_checked(e.to_string()))?;
    if mapped.people.iter().any(|p| p.key == key) {
        return Ok(());
    }
    anyhow::bail!(
        "source `{source}` lists no person `{key}` ({} people); a link to a person the \
         source does not list would be deactivated by the next sync (source_missing); \
         nothing was linked",
        mapped.people.len()
    )
}

fn unlink(db: &str, args: UnlinkArgs) -> Result<ExitCode> {
    let (source, tenant) = source_and_tenant(args.source.as_deref(), args.tenant.as_deref())?;
    let person = args.person.trim().to_string();
    runtime()?.block_on(async move {
        let engine = open(db).await?;
        let shown = person.escape_debug();
        if engine.unlink_person(&tenant.id, &source, &person).await? {
            println!("unlinked {source} person {shown} in {}", tenant.id);
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!(
                "error: {source} person {shown} has no link in {}",
                tenant.id
            );
            Ok(ExitCode::from(1))
        }
    })
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
        let links = match standing.account.as_ref().and_then(|a| a["id"].as_str()) {
            Some(id) => engine.links_of_account(&tenant.id, id).await?,
            None => Vec::new(),
        };
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
            v["links"] = Value::Array(
                links
                    .iter()
                    .map(|l| {
                        json!({"source": l.source, "person": l.person_key, "via": l.via,
                        "run": l.run_id, "created_ms": l.created_ms})
                    })
                    .collect(),
            );
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
        // What the tenant holds is shown as text, never as terminal control sequences.
        let safe = |v: &Value| tenure_people::render::terminal_safe(v.as_str().unwrap_or("?"));
        if let Some(a) = &standing.account {
            let licences = a["assignedLicenses"].as_array().map_or(0, Vec::len);
            println!(
                "  account {} ({}), sign-in {}, {licences} licence{}, {}",
                safe(&a["displayName"]),
                safe(&a["id"]),
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
                safe(&d["id"])
            );
        }
        for l in &links {
            println!(
                "  linked to {} person {} ({}, since {})",
                l.source,
                tenure_people::render::terminal_safe(&l.person_key),
                l.via,
                chrono::DateTime::from_timestamp_millis(l.created_ms)
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default()
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
