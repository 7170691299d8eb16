//! One people sync, start to end: read the source and map it to people; settle the links the
//! last apply left pending (a create's run finished: linked to the account it made; failed
//! or cancelled: dropped); read the tenant (in full, or its changes since the last read
//! through the stored delta cursor); reconcile into a plan; keep each link's sign-in name
//! current (renames); save the sync's record; and, when asked and the guard allows, apply the
//! plan and record its links and outcome. Everything durable goes through the `Engine` API.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tenure_engine::people::{PersonLink, SyncRecord};
use tenure_engine::Engine;
use tenure_kinds::Vendors;

use crate::apply::{self, ApplyOptions, Outcome, Resolve};
use crate::config::SyncSource;
use crate::mapping::Mapping;
use crate::plan;
use crate::tenant::{self, ReadOptions, Snapshot};
use crate::SyncPlan;

/// How a sync runs.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Start the runs (otherwise only the plan is made and recorded).
    pub apply: bool,
    /// Override the percentage guard (never the empty-source guard).
    pub force: bool,
    /// Read the whole tenant even if a delta cursor is stored.
    pub full: bool,
    /// Approvers of the whole batch (one `people-sync-batch` run); empty: the source's
    /// `[sync.policy] approval`, and when that is empty too, one run per item.
    pub approve_by: Vec<String>,
    /// `plan`, `apply` or `scheduled` (the record's mode).
    pub mode: String,
    /// The trigger source of started runs (`cli`, `schedule`).
    pub trigger: String,
    /// Who syncs (the operator; `schedule`).
    pub by: Option<String>,
    /// When a scheduled sync reads the tenant in full although a cursor is stored: the last
    /// full read is older than this many milliseconds.
    pub full_every_ms: Option<i64>,
}

/// What a sync did.
#[derive(Clone, Debug)]
pub struct Synced {
    /// The record saved (status, summary, plan and outcome as JSON).
    pub record: SyncRecord,
    /// The plan.
    pub plan: SyncPlan,
    /// The apply's outcome, when applied.
    pub outcome: Option<Outcome>,
    /// Whether the tenant was read in full (not through its changes).
    pub full: bool,
}

/// Why a sync could not be made at all (nothing is recorded then, but for the guard).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The source cannot be read.
    #[error("source `{id}`: {message}")]
    Source {
        /// The source's id.
        id: String,
        /// Why.
        message: String,
    },
    /// The mapping does not compile or does not map.
    #[error("source `{id}`: mapping: {message}")]
    Mapping {
        /// The source's id.
        id: String,
        /// Why.
        message: String,
    },
    /// The tenant cannot be read.
    #[error("tenant `{tenant}`: {message}")]
    Tenant {
        /// The tenant id.
        tenant: String,
        /// Why.
        message: String,
    },
    /// The engine (store) failed.
    #[error(transparent)]
    Engine(#[from] tenure_engine::api::Error),
    /// Applying failed before any run started (a runbook that does not compile).
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Settles the pending links of `source` in `tenant`: a create run that succeeded links its
/// account; one that ended otherwise (failed, denied, cancelled, rolled back) drops the link;
/// one still going keeps it pending. Returns the links as they now stand.
pub async fn settle_pending(
    engine: &Engine,
    tenant: &str,
    source: &str,
) -> Result<Vec<PersonLink>, tenure_engine::api::Error> {
    let links = engine.person_links(tenant, Some(source)).await?;
    let mut out = Vec::with_capacity(links.len());
    for mut link in links {
        let (None, Some(run_id)) = (&link.account_id, link.run_id.clone()) else {
            out.push(link);
            continue;
        };
        let status = match engine.run(&run_id).await {
            Ok(r) => tenure_engine::machine::status_name(r.status).to_string(),
            Err(tenure_engine::api::Error::NoRun(_)) => "gone".into(),
            Err(e) => return Err(e),
        };
        match status.as_str() {
            "succeeded" => {
                let outputs = engine.outputs(&run_id).await?;
                match apply::created_account(&outputs) {
                    Some((id, upn)) => {
                        link.account_id = Some(id);
                        link.user_principal_name = Some(upn);
                        engine.link_person(link.clone()).await?;
                        out.push(link);
                    }
                    None => {
                        engine
                            .unlink_person(tenant, source, &link.person_key)
                            .await?;
                    }
                }
            }
            "failed" | "denied" | "cancelled" | "rolled_back" | "gone" => {
                engine
                    .unlink_person(tenant, source, &link.person_key)
                    .await?;
            }
            _ => out.push(link),
        }
    }
    Ok(out)
}

/// Reads the tenant: in full when asked, when no cursor is stored, or when the last full read
/// is older than `full_every_ms`; otherwise its changes since the stored cursor. The snapshot
/// is stored as the next cursor.
async fn read_tenant(
    engine: &Engine,
    vendors: &Vendors,
    src: &SyncSource,
    tenant_ctx: &Value,
    options: &SyncOptions,
) -> Result<Snapshot, SyncError> {
    let failed = |message: String| SyncError::Tenant {
        tenant: src.tenant.clone(),
        message,
    };
    let read = ReadOptions {
        protected_groups: src.policy.protected_groups.clone(),
        skip_roles: !src.policy.protect_admins,
    };
    let cursor = engine.people_cursor(&src.id, &src.tenant).await?;
    let previous: Option<(Snapshot, i64)> = cursor.and_then(|c| {
        let snapshot = serde_json::from_value(c["snapshot"].clone()).ok()?;
        Some((snapshot, c["full_ms"].as_i64()?))
    });
    let now = now_ms();
    let (snapshot, full_ms) = match previous {
        Some((prev, full_ms))
            if !options.full
                && options
                    .full_every_ms
                    .is_none_or(|every| now - full_ms < every) =>
        {
            let s = tenant::read_delta(vendors, tenant_ctx, &read, prev)
                .await
                .map_err(|e| failed(e.to_string()))?;
            (s, full_ms)
        }
        _ => {
            let s = tenant::read_full(vendors, tenant_ctx, &read)
                .await
                .map_err(|e| failed(e.to_string()))?;
            (s, now)
        }
    };
    engine
        .set_people_cursor(
            &src.id,
            &src.tenant,
            &json!({"snapshot": snapshot, "full_ms": full_ms}),
        )
        .await?;
    Ok(snapshot)
}

/// The record's status for a plan and how it went.
fn status(plan: &SyncPlan, applied: Option<&Outcome>) -> &'static str {
    if plan.guard.is_some() {
        return "guarded";
    }
    let work = apply::actionable(plan).next().is_some() || plan.items.iter().any(|i| i.link);
    match applied {
        _ if !work => "nothing_to_do",
        None => "planned",
        Some(o) if !o.errors.is_empty() && o.runs.is_empty() => "failed",
        Some(_) => "applied",
    }
}

/// One sync of `src` (see the module documentation). `base_dir` is where relative source
/// paths are read from; `tenant_ctx` the tenant's context (`id`, `domain`, ...) for the Graph
/// client; `resolve` finds compiled runbooks for the apply.
pub async fn sync(
    engine: &Engine,
    vendors: &Vendors,
    src: &SyncSource,
    base_dir: &Path,
    tenant_ctx: &Value,
    resolve: Resolve<'_>,
    options: &SyncOptions,
) -> Result<Synced, SyncError> {
    let started_ms = now_ms();
    let records = crate::source::read(&src.source, base_dir)
        .await
        .map_err(|e| SyncError::Source {
            id: src.id.clone(),
            message: e.to_string(),
        })?;
    let mapping_err = |message: String| SyncError::Mapping {
        id: src.id.clone(),
        message,
    };
    let mapping = Mapping::new(&src.map).map_err(|e| mapping_err(e.to_string()))?;
    let mapped = mapping
        .map_records(&records)
        .map_err(|e| mapping_err(e.to_string()))?;
    let links = settle_pending(engine, &src.tenant, &src.id).await?;
    let snapshot = read_tenant(engine, vendors, src, tenant_ctx, options).await?;
    let mut plan = plan::reconcile_with(
        &src.id,
        &src.tenant,
        &mapped.people,
        &snapshot.accounts,
        &links,
        &src.effective_policy(),
        plan::Options {
            force: options.force,
            keyless: mapped.keyless,
        },
    );
    let mut warnings = mapped.warnings.clone();
    warnings.append(&mut plan.warnings);
    plan.warnings = warnings;

    // A link follows its account's renames: the sign-in name is refreshed from the tenant.
    for link in &links {
        let Some(id) = &link.account_id else { continue };
        if let Some(a) = snapshot.accounts.iter().find(|a| &a.id == id) {
            if link.user_principal_name.as_deref() != Some(a.user_principal_name.as_str()) {
                let mut renamed = link.clone();
                renamed.user_principal_name = Some(a.user_principal_name.clone());
                engine.link_person(renamed).await?;
            }
        }
    }

    let mut record = SyncRecord {
        id: uuid::Uuid::new_v4().to_string(),
        source: src.id.clone(),
        tenant: src.tenant.clone(),
        started_ms,
        finished_ms: None,
        mode: options.mode.clone(),
        status: status(&plan, None).into(),
        summary: crate::render::summary(&plan),
        plan: serde_json::to_value(&plan).unwrap_or_default(),
        outcome: json!({}),
        requests: snapshot.requests as i64,
    };
    let apply_now = options.apply && plan.guard.is_none() && record.status != "nothing_to_do";
    if !apply_now {
        record.finished_ms = Some(now_ms());
        engine.save_sync(&record).await?;
        return Ok(Synced {
            record,
            plan,
            outcome: None,
            full: snapshot.full,
        });
    }
    engine.save_sync(&record).await?;
    let apply_options = ApplyOptions {
        // `--approve-by` overrides the policy's approvers; either puts the batch behind one
        // approval.
        approve_by: if options.approve_by.is_empty() {
            src.policy.approval.clone()
        } else {
            options.approve_by.clone()
        },
        source: options.trigger.clone(),
        by: options.by.clone(),
        summary: record.summary.clone(),
    };
    let outcome = match apply::apply(engine, &plan, &src.runbooks, resolve, &apply_options).await {
        Ok(o) => o,
        Err(e) => {
            record.status = "failed".into();
            record.outcome = json!({"runs": [], "links": [], "errors": [e.to_string()]});
            record.finished_ms = Some(now_ms());
            engine.save_sync(&record).await?;
            return Err(e.into());
        }
    };
    let mut outcome = outcome;
    for l in &outcome.links {
        let now = now_ms();
        let link = PersonLink {
            tenant: src.tenant.clone(),
            source: src.id.clone(),
            person_key: l.person_key.clone(),
            account_id: l.account_id.clone(),
            user_principal_name: l.user_principal_name.clone(),
            via: l.via.clone(),
            run_id: l.run_id.clone(),
            created_ms: now,
            updated_ms: now,
        };
        if let Err(e) = engine.link_person(link).await {
            outcome
                .errors
                .push(format!("{}: not linked: {e}", l.person_key));
        }
    }
    record.status = status(&plan, Some(&outcome)).into();
    record.outcome = serde_json::to_value(&outcome).unwrap_or_default();
    record.finished_ms = Some(now_ms());
    engine.save_sync(&record).await?;
    Ok(Synced {
        record,
        plan,
        outcome: Some(outcome),
        full: snapshot.full,
    })
}
