//! `tenure demo`: the main job end to end on embedded defaults. Starts the sandbox in this
//! process, creates a fresh SQLite database, runs the offboarding runbook for a sandbox user
//! (its approval gate approved by the demo), and shows what changed in the tenant.

use std::process::ExitCode;

use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use tenure_engine::{StartRun, Trigger};

use crate::load;

/// Arguments of `tenure demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The leaver (a user of the sandbox tenant `contoso`).
    #[arg(long, default_value = "megan.bowen@contoso.example")]
    user: String,
}

/// `tenure demo`.
pub fn run(args: Args) -> Result<ExitCode> {
    let compiled = load::resolve("offboard-user")?;
    let plan = compiled
        .output
        .plan
        .clone()
        .context("runbooks/offboard-user.yaml does not compile")?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    rt.block_on(async move {
        let sandbox = tenure_sandbox::Sandbox::new();
        let (addr, _server) = sandbox
            .serve("127.0.0.1:0".parse()?)
            .await
            .context("cannot start the sandbox")?;
        let url = format!("http://{addr}");
        let dir = std::env::temp_dir().join(format!("tenure-demo-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let db = format!("sqlite:{}", dir.join("demo.db").display());
        let mut registry = tenure_engine::builtin::registry();
        let mut vendors = tenure_kinds::Vendors::sandbox(&url);
        if let Some(smtp) = sandbox.smtp_addr() {
            vendors = vendors.with_smtp(
                tenure_kinds::SmtpConfig::sandbox(smtp),
                crate::config::SANDBOX_FROM,
            );
        }
        tenure_kinds::register(&mut registry, vendors);
        let engine = super::runs::open_with(&db, registry).await?;
        println!("Tenure demo: sandbox at {url}, database {db}");
        println!(
            "Offboarding {} from Contoso with runbooks/offboard-user.yaml\n",
            args.user
        );

        let mut given = Map::new();
        given.insert("tenant".into(), json!("contoso"));
        given.insert("user".into(), json!(args.user));
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
        println!("\nThe full log: tenure --db {db} log {id}");
        Ok(code)
    })
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
