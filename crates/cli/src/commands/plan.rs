//! `tenure plan RUNBOOK --input k=v...`: what a run would do, rendered without running it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use serde_json::{Map, Value};
use tenure_runbook::preview::{self, Preview};
use tenure_runbook::{Renderer, SourceFile};

use crate::{load, tenants};

/// Arguments of `tenure plan`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A runbook file, or the id of a runbook in `runbooks/`.
    runbook: String,
    /// An input as `name=value` (repeatable; lists as `a,b` or JSON).
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// Inputs from a JSON or YAML file (`--input` wins on conflicts).
    #[arg(long)]
    input_file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Parses `--input-file` and `--input` into one map. The file's values are typed by the
/// inputs `plan` declares (a text input takes a scalar as written: `0012` stays `"0012"`).
pub fn gather_inputs(
    plan: &tenure_runbook::Plan,
    file: Option<&PathBuf>,
    pairs: &[String],
) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    if let Some(path) = file {
        let text = load::read_yaml_file(path)?;
        let source = SourceFile::new(path.display().to_string(), text);
        let (node, diags) = tenure_runbook::yaml::parse(&source);
        if let Some(d) = diags.first() {
            bail!("{}", d.render(&source));
        }
        match node.and_then(|n| tenure_runbook::inputs::given_from_yaml(&plan.inputs, &n)) {
            Some(m) => out.extend(m),
            None => bail!(
                "{}: expected a mapping of input names to values",
                path.display()
            ),
        }
    }
    let mut given = std::collections::BTreeSet::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--input `{pair}`: expected NAME=VALUE");
        };
        let name = k.trim().to_string();
        if !given.insert(name.clone()) {
            bail!("--input `{name}` is given twice; give it once (a list as `a,b` or JSON)");
        }
        out.insert(name, Value::String(v.to_string()));
    }
    Ok(out)
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
    let given = gather_inputs(plan, args.input_file.as_ref(), &args.inputs)?;
    let renderer = Renderer::new();
    let catalogue = tenure_steps::catalogue();
    let resolved = match tenure_runbook::inputs::resolve(&plan.inputs, &given) {
        Ok(r) => r,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let tenant_id = preview::tenant_id(plan, &resolved, &renderer)?;
    let Some(tenant) = tenants::find(&tenant_id) else {
        bail!(
            "unknown tenant `{tenant_id}` (configured: {})",
            tenants::known()
        );
    };
    let p = preview::preview(plan, &given, tenant.to_json(), &catalogue, &renderer)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print_preview(&p, &tenant);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_preview(p: &Preview, tenant: &tenants::Tenant) {
    println!(
        "Plan: {} v{} (plan {})",
        p.runbook,
        p.version,
        &p.hash[..12]
    );
    println!("Tenant: {} ({}, {})", tenant.id, tenant.name, tenant.domain);
    if let Some(key) = &p.concurrency {
        println!("Concurrency key: {key}");
    }
    println!("\nInputs:");
    for (k, v) in &p.inputs {
        println!("  {k} = {v}");
    }
    if !p.vars.is_empty() {
        println!("\nVars:");
        for (k, v) in &p.vars {
            println!("  {k} = {v}");
        }
    }
    let print_steps = |steps: &[preview::StepPreview]| {
        for (n, s) in steps.iter().enumerate() {
            let needs = if s.needs.is_empty() {
                String::new()
            } else {
                format!("  after {}", s.needs.join(", "))
            };
            println!(
                "  {:>2}. [{}] {}  {}  -> {}{needs}",
                n + 1,
                s.level,
                s.id,
                s.uses,
                s.decision
            );
            for (i, w) in s.with.iter().enumerate() {
                let prefix = if s.with.len() > 1 {
                    format!("[{i}] ")
                } else {
                    String::new()
                };
                println!("        {prefix}with {w}");
            }
            if let Some(note) = &s.note {
                println!("        note: {note}");
            }
        }
    };
    println!("\nSteps (in order; [n] is the DAG level, steps on one level may run in parallel):");
    print_steps(&p.steps);
    if !p.on_failure.is_empty() {
        println!("\nIf the run fails:");
        print_steps(&p.on_failure);
    }
    println!("\nNothing was changed. Live reads of the tenant come with the engine.");
}
