//! `[sync.policy] approval`: the approvers a source puts every applied batch behind must be
//! among those the stock `people-sync-batch` runbook allows (its `approvers` input's `enum`),
//! since the batch's approval stands in for its runs' own gates. Checked where the runbooks
//! are known: when the configuration is loaded (against `runbooks/`, what `tenure sync` and
//! a default `tenure serve` use) and when a scheduler starts (against its `--runbooks`).

use std::path::Path;

use anyhow::{bail, Result};
use tenure_people::apply::{check_batch_approvers, BATCH_RUNBOOK};
use tenure_people::config::SyncSource;

/// Refuses a source whose `approval` names someone the batch runbook under `runbooks` does not
/// allow, or whose batch runbook cannot be found or compiled. Sources without approvers are
/// not checked (nor is anything read then).
pub fn check(sources: &[SyncSource], runbooks: &Path) -> Result<()> {
    let mut batch = None;
    for src in sources.iter().filter(|s| !s.policy.approval.is_empty()) {
        if batch.is_none() {
            batch = Some(
                super::sync::resolve_in(runbooks, BATCH_RUNBOOK).map_err(|e| {
                    anyhow::anyhow!(
                    "[[sync]] `{}`: [sync.policy] approval needs the runbook `{BATCH_RUNBOOK}` \
                     in {}: {e}",
                    src.id,
                    runbooks.display()
                )
                })?,
            );
        }
        if let Some(plan) = &batch {
            if let Err(e) = check_batch_approvers(plan, &src.policy.approval) {
                bail!("[[sync]] `{}`: [sync.policy] approval: {e}", src.id);
            }
        }
    }
    Ok(())
}
