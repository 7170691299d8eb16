//! Applying a plan: the runs that bring a tenant to the source's state, started through the
//! `Engine` API (the engine's machine decides everything that follows: approvals, retries,
//! failures). Each actionable item (create, update, activate, deactivate, not blocked) becomes
//! one run of the runbook configured for its action (`[sync.runbooks]`), its inputs rendered
//! from templates over `person`, `account`, `changes`, `cleared` and `tenant`, with a dedup key
//! `sync:{source}:{person}:{action}:{hash of the changes}` so applying the same plan twice
//! starts nothing twice. With approvers, the whole batch is one run of the stock
//! `people-sync-batch` runbook instead: one approval, then one called run per person.
//!
//! What is to be recorded about links ([`NewLink`]) is returned, not written: the sync records
//! it through the engine's link store.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tenure_engine::{Engine, StartRun, Trigger};
use tenure_runbook::{Plan, Renderer, Template};

use crate::config::{RunbookChoice, Runbooks};
use crate::model::{Action, Item, SyncPlan};

/// The stock runbook that puts a batch behind one approval.
pub const BATCH_RUNBOOK: &str = "people-sync-batch";

/// The Graph attribute names a template may read as `person.<name>` and `changes.<name>`
/// (null when the source or the diff has no value).
pub const ATTRIBUTES: &[&str] = crate::mapping::ENTRA_ATTRIBUTES;

/// The attributes a change may clear and their names in `entra.update_user`'s and
/// `update-profile`'s `clear` (`manager`: the manager is removed).
pub const CLEARABLE: &[(&str, &str)] = &[
    ("givenName", "given_name"),
    ("surname", "surname"),
    ("department", "department"),
    ("jobTitle", "job_title"),
    ("usageLocation", "usage_location"),
    ("employeeId", "employee_id"),
    ("manager", "manager"),
];

/// The extra (non-Entra) fields a template may read as `person.extra.<name>` even when the
/// source has none (null then).
pub const EXTRAS: &[&str] = &["personalEmail", "startDate", "endDate"];

/// How a plan is applied.
#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Approvers of the whole batch: when given, one `people-sync-batch` run asks them once.
    pub approve_by: Vec<String>,
    /// The trigger source of the runs (`cli`, `schedule`).
    pub source: String,
    /// Who applies (the operator, `schedule`).
    pub by: Option<String>,
    /// The plan's one-line summary (the batch approval shows it).
    pub summary: String,
}

/// A run the apply started (or found already started by the same dedup key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedRun {
    /// The plan item's index (`None`: the batch run).
    pub item: Option<usize>,
    /// The person's key, or `account:{id}` for an account whose person left the source.
    pub person: String,
    /// The action's code (`create`, ..., or `batch`).
    pub action: String,
    /// The runbook started.
    pub runbook: String,
    /// The run id.
    pub run_id: String,
    /// The dedup key used.
    pub dedup_key: String,
    /// The key had been used: this is the run an earlier apply started.
    pub existing: bool,
}

/// A link the sync records once the runs are started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLink {
    /// The person's key in the source.
    pub person_key: String,
    /// The account (`None`: pending, the run `run_id` creates it).
    pub account_id: Option<String>,
    /// The account's sign-in name, when known.
    pub user_principal_name: Option<String>,
    /// `correlation` (a found person) or `run` (a create).
    pub via: String,
    /// The creating run.
    pub run_id: Option<String>,
}

/// What applying a plan did: stored as the sync's outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The runs started, in plan order (the batch run alone in batch mode).
    pub runs: Vec<StartedRun>,
    /// The links to record.
    pub links: Vec<NewLink>,
    /// Items that could not be started (a template that does not render, inputs the runbook
    /// refuses), each naming the person; the others were started.
    pub errors: Vec<String>,
}

/// Why a plan was not applied at all.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The mass-deactivation guard stopped the plan.
    #[error("the sync is stopped by its guard, nothing was applied: {0}")]
    Guarded(String),
    /// A runbook the plan needs cannot be found or compiled.
    #[error("runbook `{runbook}`: {message}")]
    Runbook {
        /// The runbook id.
        runbook: String,
        /// Why.
        message: String,
    },
    /// The engine refused the batch run.
    #[error(transparent)]
    Engine(#[from] tenure_engine::api::Error),
}

/// Finds a compiled runbook by id (the CLI compiles from `runbooks/`).
pub type Resolve<'a> = &'a (dyn Fn(&str) -> Result<Arc<Plan>, String> + Sync);

/// The person's key an item is recorded under: the person's, or `account:{id}` for an
/// account nobody in the source claims any more.
pub fn person_key(item: &Item) -> String {
    match (&item.person, &item.account) {
        (Some(p), _) => p.key.clone(),
        (None, Some(a)) => format!("account:{}", a.id),
        (None, None) => String::new(),
    }
}

/// The dedup key of an item's run: the same change of the same person by the same source
/// never starts a second run, a different change does.
pub fn dedup_key(source: &str, item: &Item) -> String {
    let changes = serde_json::to_string(&item.changes).unwrap_or_default();
    let digest = Sha256::digest(changes.as_bytes());
    format!(
        "sync:{source}:{}:{}:{}",
        person_key(item),
        item.action.code(),
        &hex::encode(digest)[..16]
    )
}

/// The template context of an item: `person` (`key`, `active`, `origin`, every attribute of
/// [`ATTRIBUTES`] and extra of [`EXTRAS`] present, null when unknown), `account` (`id`,
/// `user_principal_name`), `changes` (attribute → new value, null for attributes that do not
/// change), `cleared` (the `update-profile` names of the attributes the change empties, in
/// [`CLEARABLE`]'s order: `["job_title", "manager"]`) and `tenant` (the tenant's id).
pub fn context(item: &Item, tenant: &str) -> Value {
    let mut person = Map::new();
    for a in ATTRIBUTES {
        person.insert(a.to_string(), Value::Null);
    }
    let mut extra = Map::new();
    for e in EXTRAS {
        extra.insert(e.to_string(), Value::Null);
    }
    if let Some(p) = &item.person {
        person.insert("key".into(), json!(p.key));
        person.insert("active".into(), json!(p.active));
        person.insert("origin".into(), json!(p.origin));
        for (k, v) in &p.attributes {
            person.insert(k.clone(), json!(v));
        }
        for (k, v) in &p.extra {
            extra.insert(k.clone(), json!(v));
        }
    }
    person.insert("extra".into(), Value::Object(extra));
    let mut changes = Map::new();
    for a in ATTRIBUTES {
        changes.insert(a.to_string(), Value::Null);
    }
    for c in &item.changes {
        changes.insert(c.attribute.clone(), json!(c.to));
    }
    let account = match &item.account {
        Some(a) => json!({"id": a.id, "user_principal_name": a.user_principal_name}),
        None => json!({"id": null, "user_principal_name": null}),
    };
    let cleared: Vec<&str> = CLEARABLE
        .iter()
        .filter(|(a, _)| {
            item.changes
                .iter()
                .any(|c| c.attribute == *a && c.to.is_none())
        })
        .map(|(_, name)| *name)
        .collect();
    json!({"person": person, "account": account, "changes": changes, "cleared": cleared, "tenant": tenant})
}

/// Renders a choice's inputs for one item; inputs that render null or blank are left out.
pub fn render_inputs(
    renderer: &Renderer,
    choice: &RunbookChoice,
    ctx: &Value,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, template) in &choice.inputs {
        let rendered = renderer
            .render_value(&Template::new(template.clone()), ctx)
            .map_err(|e| format!("input `{name}` ({template}): {e}"))?;
        let blank = match &rendered {
            Value::Null => true,
            Value::String(s) => s.trim().is_empty(),
            _ => false,
        };
        if !blank {
            out.insert(name.clone(), rendered);
        }
    }
    Ok(out)
}

/// The items a plan starts runs for: an action with a runbook, not blocked.
pub fn actionable(plan: &SyncPlan) -> impl Iterator<Item = (usize, &Item)> {
    plan.items
        .iter()
        .enumerate()
        .filter(|(_, i)| i.blocked.is_none() && i.action.list().is_some())
}

/// The links a plan records however it is applied: each found person with their account.
pub fn correlation_links(plan: &SyncPlan) -> Vec<NewLink> {
    plan.items
        .iter()
        .filter(|i| i.link)
        .filter_map(|i| {
            let (p, a) = (i.person.as_ref()?, i.account.as_ref()?);
            Some(NewLink {
                person_key: p.key.clone(),
                account_id: Some(a.id.clone()),
                user_principal_name: Some(a.user_principal_name.clone()),
                via: "correlation".into(),
                run_id: None,
            })
        })
        .collect()
}

/// Starts the runs of `plan` (refused when its guard is set); `resolve` finds compiled
/// runbooks.
pub async fn apply(
    engine: &Engine,
    plan: &SyncPlan,
    runbooks: &Runbooks,
    resolve: Resolve<'_>,
    options: &ApplyOptions,
) -> Result<Outcome, ApplyError> {
    if let Some(guard) = &plan.guard {
        return Err(ApplyError::Guarded(guard.clone()));
    }
    let renderer = Renderer::new();
    let mut outcome = Outcome {
        links: correlation_links(plan),
        ..Outcome::default()
    };
    let trigger = || Trigger::new(&options.source, options.by.clone());
    if !options.approve_by.is_empty() {
        return apply_batch(engine, plan, runbooks, resolve, options, outcome).await;
    }
    let mut plans: BTreeMap<String, Arc<Plan>> = BTreeMap::new();
    for (index, item) in actionable(plan) {
        let Some(choice) = runbooks.for_action(item.action) else {
            continue;
        };
        let who = person_key(item);
        let compiled = match plans.get(&choice.runbook) {
            Some(p) => p.clone(),
            None => {
                let p = resolve(&choice.runbook).map_err(|message| ApplyError::Runbook {
                    runbook: choice.runbook.clone(),
                    message,
                })?;
                plans.insert(choice.runbook.clone(), p.clone());
                p
            }
        };
        let inputs = match render_inputs(&renderer, choice, &context(item, &plan.tenant)) {
            Ok(i) => i,
            Err(e) => {
                outcome.errors.push(format!(
                    "{who} ({}): {}: {e}",
                    item.action.code(),
                    choice.runbook
                ));
                continue;
            }
        };
        let key = dedup_key(&plan.source, item);
        match engine
            .start_run(StartRun {
                plan: compiled,
                inputs,
                trigger: trigger(),
                dedup_key: Some(key.clone()),
            })
            .await
        {
            Ok(started) => {
                if item.action == Action::Create {
                    if let Some(p) = &item.person {
                        outcome.links.push(NewLink {
                            person_key: p.key.clone(),
                            account_id: None,
                            user_principal_name: None,
                            via: "run".into(),
                            run_id: Some(started.id.clone()),
                        });
                    }
                }
                outcome.runs.push(StartedRun {
                    item: Some(index),
                    person: who,
                    action: item.action.code().into(),
                    runbook: choice.runbook.clone(),
                    run_id: started.id,
                    dedup_key: key,
                    existing: started.duplicate,
                });
            }
            Err(e) => outcome.errors.push(format!(
                "{who} ({}): {}: {e}",
                item.action.code(),
                choice.runbook
            )),
        }
    }
    Ok(outcome)
}

/// The inputs `people-sync-batch` reads from each object of a list, by action.
fn batch_keys(action: Action) -> &'static [&'static str] {
    match action {
        Action::Create => &[
            "first_name",
            "last_name",
            "department",
            "job_title",
            "manager",
            "personal_email",
            "employee_id",
            "usage_location",
            "start_date",
        ],
        Action::Update => &[
            "user",
            "display_name",
            "given_name",
            "surname",
            "department",
            "job_title",
            "usage_location",
            "employee_id",
            "manager",
            "clear",
        ],
        Action::Activate => &[
            "user",
            "display_name",
            "given_name",
            "surname",
            "department",
            "job_title",
            "usage_location",
            "employee_id",
            "manager",
        ],
        Action::Deactivate => &["user", "last_day"],
        Action::None | Action::Report => &[],
    }
}

/// One `people-sync-batch` run for the whole plan: the items' rendered inputs as the four
/// lists (every key the batch reads present, null when absent). Each create gets a link
/// pending on the batch run: while the batch goes on, later syncs (a schedule's next ticks,
/// whose smaller plans make another batch) never start that person's create again; once it
/// has ended the link is dropped (the batch's own outputs name no account) and the sync after
/// finds the new account by correlation.
async fn apply_batch(
    engine: &Engine,
    plan: &SyncPlan,
    runbooks: &Runbooks,
    resolve: Resolve<'_>,
    options: &ApplyOptions,
    mut outcome: Outcome,
) -> Result<Outcome, ApplyError> {
    let renderer = Renderer::new();
    let mut lists: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut keys = Vec::new();
    let mut creates = Vec::new();
    for (_, item) in actionable(plan) {
        let Some(choice) = runbooks.for_action(item.action) else {
            continue;
        };
        let who = person_key(item);
        let inputs = match render_inputs(&renderer, choice, &context(item, &plan.tenant)) {
            Ok(i) => i,
            Err(e) => {
                outcome
                    .errors
                    .push(format!("{who} ({}): {e}", item.action.code()));
                continue;
            }
        };
        let mut object = Map::new();
        for k in batch_keys(item.action) {
            // `clear` is a list: absent is an empty one (null is not a list).
            let absent = if *k == "clear" {
                json!([])
            } else {
                Value::Null
            };
            object.insert(k.to_string(), inputs.get(*k).cloned().unwrap_or(absent));
        }
        let list = match item.action {
            Action::Create => "creates",
            Action::Update => "updates",
            Action::Activate => "activates",
            _ => "deactivates",
        };
        lists.entry(list).or_default().push(Value::Object(object));
        keys.push(dedup_key(&plan.source, item));
        if item.action == Action::Create {
            if let Some(p) = &item.person {
                creates.push(p.key.clone());
            }
        }
    }
    if lists.is_empty() {
        return Ok(outcome);
    }
    let compiled = resolve(BATCH_RUNBOOK).map_err(|message| ApplyError::Runbook {
        runbook: BATCH_RUNBOOK.into(),
        message,
    })?;
    let mut inputs = Map::new();
    inputs.insert("tenant".into(), json!(plan.tenant));
    inputs.insert("source".into(), json!(plan.source));
    inputs.insert("summary".into(), json!(options.summary));
    inputs.insert("approvers".into(), json!(options.approve_by));
    for (list, objects) in lists {
        inputs.insert(list.into(), Value::Array(objects));
    }
    let digest = Sha256::digest(keys.join("\n").as_bytes());
    let key = format!("sync:{}:batch:{}", plan.source, &hex::encode(digest)[..16]);
    let started = engine
        .start_run(StartRun {
            plan: compiled,
            inputs,
            trigger: Trigger::new(&options.source, options.by.clone()),
            dedup_key: Some(key.clone()),
        })
        .await?;
    for person_key in creates {
        outcome.links.push(NewLink {
            person_key,
            account_id: None,
            user_principal_name: None,
            via: "run".into(),
            run_id: Some(started.id.clone()),
        });
    }
    outcome.runs.push(StartedRun {
        item: None,
        person: String::new(),
        action: "batch".into(),
        runbook: BATCH_RUNBOOK.into(),
        run_id: started.id,
        dedup_key: key,
        existing: started.duplicate,
    });
    Ok(outcome)
}

/// Checks that the batch runbook `batch` (the compiled `people-sync-batch`) lets `approvers`
/// approve: its `approvers` input's `enum` lists each of them. The batch's approval stands in
/// for its runs' own gates, so nobody else may give it.
pub fn check_batch_approvers(batch: &Plan, approvers: &[String]) -> Result<(), String> {
    let Some(spec) = batch.inputs.get("approvers") else {
        return Err(format!(
            "runbook `{}` has no `approvers` input to ask",
            batch.runbook
        ));
    };
    let allowed: Vec<&str> = spec
        .allowed
        .iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for a in approvers {
        if !allowed.iter().any(|x| x.eq_ignore_ascii_case(a)) {
            return Err(format!(
                "`{a}` may not approve a sync's batch: runbook `{}` allows {} (its `approvers` \
                 input's enum; edit it to add someone)",
                batch.runbook,
                if allowed.is_empty() {
                    "nobody".to_string()
                } else {
                    allowed.join(", ")
                }
            ));
        }
    }
    Ok(())
}

/// The account a finished create run made: the `id` and `user_principal_name` of its
/// `create_user` step (or, for a custom runbook, of the first step that output both).
pub fn created_account(outputs: &[(String, u32, Value)]) -> Option<(String, String)> {
    let pick = |v: &Value| {
        Some((
            v["id"].as_str()?.to_string(),
            v["user_principal_name"].as_str()?.to_string(),
        ))
    };
    outputs
        .iter()
        .filter(|(step, _, _)| step == "create_user")
        .find_map(|(_, _, v)| pick(v))
        .or_else(|| outputs.iter().find_map(|(_, _, v)| pick(v)))
}
