//! `tenure demo`: the main job end to end on embedded defaults. Starts the sandbox in this
//! process, runs the offboarding runbook for a sandbox user (its approval gate approved by the
//! demo), and shows what changed in the tenant. The run is recorded in the database given with
//! `--db`, else in a fresh SQLite database in a temporary directory that is removed when the
//! demo ends, however it ends (success, error or Ctrl-C).

use std::process::ExitCode;

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use tenure_engine::{StartRun, Trigger};

use crate::load;

/// The runbook the demo runs when there is no `runbooks/offboard-user.yaml` here (the demo
/// works from any directory).
const OFFBOARD: &str = include_str!("../../../../runbooks/offboard-user.yaml");

/// Arguments of `tenure demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The leaver (a user of the sandbox tenant `contoso`).
    #[arg(long, default_value = "megan.bowen@contoso.example")]
    user: String,
}

/// The offboarding runbook: `runbooks/offboard-user.yaml` if there is one here, else the
/// embedded copy.
fn offboarding() -> Result<(String, tenure_runbook::Plan)> {
    let (name, output) = match load::resolve("offboard-user") {
        Ok(c) => (c.source.name().to_string(), c.output),
        Err(_) => {
            let source = tenure_runbook::SourceFile::new("offboard-user.yaml (built in)", OFFBOARD);
            let output = tenure_runbook::compile(&source, &tenure_steps::catalogue());
            (source.name().to_string(), output)
        }
    };
    let plan = output
        .plan
        .with_context(|| format!("{name} does not compile; `tenure validate {name}` says why"))?;
    Ok((name, plan))
}

/// `tenure demo`, recording into `db` if given (`--db`), else into a temporary database.
pub fn run(db: Option<&str>, args: Args) -> Result<ExitCode> {
    let (name, plan) = offboarding()?;
    // Removed when dropped: on return, on error, and on Ctrl-C (caught below).
    let (temp, db) = match db {
        Some(db) => (None, db.to_string()),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("tenure-demo-")
                .tempdir()
                .context("cannot create a temporary directory for the demo database")?;
            let db = format!("sqlite:{}", dir.path().join("demo.db").display());
            (Some(dir), db)
        }
    };
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let code = rt.block_on(async {
        tokio::select! {
            code = demo(&db, temp.is_some(), &name, plan, &args) => code,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ninterrupted");
                Ok(ExitCode::from(130))
            }
        }
    });
    // The runtime first (its tasks hold the database open), then the directory.
    drop(rt);
    drop(temp);
    code
}

async fn demo(
    db: &str,
    temporary: bool,
    name: &str,
    plan: tenure_runbook::Plan,
    args: &Args,
) -> Result<ExitCode> {
    let sandbox = tenure_sandbox::Sandbox::new();
    let (addr, _server) = sandbox
        .serve("127.0.0.1:0".parse()?)
        .await
        .context("cannot start the sandbox")?;
    let url = format!("http://{addr}");
    let mut registry = tenure_engine::builtin::registry();
    let mut vendors = tenure_kinds::Vendors::sandbox(&url);
    if let Some(smtp) = sandbox.smtp_addr() {
        vendors = vendors.with_smtp(
            tenure_kinds::SmtpConfig::sandbox(smtp),
            crate::config::SANDBOX_FROM,
        );
    }
    tenure_kinds::register(&mut registry, vendors);
    let engine = super::runs::open_with(db, registry).await?;
    let shown = super::runs::redact_url(db);
    if temporary {
        println!("Tenure demo: sandbox at {url}, temporary database {shown}");
    } else {
        println!("Tenure demo: sandbox at {url}, database {shown}");
    }
    println!("Offboarding {} from Contoso with {name}\n", args.user);

    let mut given = Map::new();
    given.insert("tenant".into(), json!("contoso"));
    given.insert("user".into(), json!(&args.user));
    given.insert("forward_to".into(), json!("alex.wilber@contoso.example"));
    given.insert(
        "mailbox_access".into(),
        json!("alex.wilber@contoso.example"),
    );
    let start = StartRun {
        plan: Arc::new(plan),
        inputs: given,
        trigger: Trigger::new("demo", None),
        dedup_key: None,
    };
    let id = engine
        .start_run(start)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .id;
    let code = super::runs::follow_with(&engine, &id, 0, false, true).await?;

    let state: Value = reqwest::get(format!("{url}/_sandbox/state"))
        .await?
        .json()
        .await?;
    summarize(&state, &args.user);
    if temporary {
        println!(
            "\nThe demo's database was temporary and is removed now; to keep the run and \
             read its log, give one: tenure --db sqlite:demo.db demo"
        );
    } else {
        println!("\nThe full log: tenure --db {shown} log {id}");
    }
    Ok(code)
}

fn summarize(state: &Value, upn: &str) {
    let tenant = &state["tenants"][0];
    let Some(user) = tenant["users"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|u| u["userPrincipalName"] == upn)
    else {
        return;
    };
    let uid = user["id"].as_str().unwrap_or_default();
    let mailbox = tenant["mailboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m.to_string().to_lowercase().contains(&upn.to_lowercase()));
    let groups: Vec<&str> = tenant["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| {
            g["members"]
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x == uid))
        })
        .filter_map(|g| g["displayName"].as_str())
        .collect();
    let wipes = state["counters"]
        .as_object()
        .map_or(0, |c| c.keys().filter(|k| k.ends_with("/wipe")).count());
    println!("\nWhat the sandbox tenant now says about {upn}:");
    println!("  sign-in blocked:   {}", user["accountEnabled"] == false);
    println!(
        "  sessions revoked:  {}",
        user["signInSessionsValidFrom"].is_string()
    );
    println!(
        "  licences:          {}",
        user["assignedLicenses"].as_array().map_or(0, Vec::len)
    );
    println!(
        "  mailbox:           {}",
        mailbox.map_or("none".to_string(), |m| m["recipientTypeDetails"]
            .as_str()
            .or(m["recipient_type_details"].as_str())
            .unwrap_or("?")
            .to_string())
    );
    println!(
        "  groups left:       {} (dynamic or synced: not Tenure's to change)",
        groups.join(", ")
    );
    println!("  device wipes sent: {wipes}");
}
