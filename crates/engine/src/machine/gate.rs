//! An approval gate as the machine keeps it: who may decide, how many approvals open it, what
//! expiry means, and every decision so far. Because decisions live in the run's state and each
//! one is an event applied under the run's row lock, two approvers deciding at the same
//! instant are serialized: neither decision is lost and the quorum is counted once.

use serde::{Deserialize, Serialize};

use super::event::OnExpiry;

/// One approver's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Who (as the gate names them).
    pub approver: String,
    /// Approve or deny.
    pub approve: bool,
    /// Their comment.
    pub comment: Option<String>,
    /// Where from.
    pub source: String,
    /// When (unix ms).
    pub at_ms: u64,
    /// The browser or client that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// A requested approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    /// Who may decide.
    pub approvers: Vec<String>,
    /// Approvals needed.
    pub quorum: u32,
    /// What expiry resolves as.
    pub on_expiry: OnExpiry,
    /// When it expires (unix ms).
    pub expires_at_ms: u64,
    /// What is asked.
    pub message: Option<String>,
    /// Decisions so far, in order.
    pub decisions: Vec<Decision>,
    /// Who requested the run: they may not decide.
    #[serde(default)]
    pub requested_by: Option<String>,
    /// The attempt that requested it (a retried approval is a new request).
    #[serde(default)]
    pub attempt: u32,
}

/// What a decision did to the gate.
pub(crate) enum Verdict {
    /// Still waiting for more approvals.
    Open,
    /// The quorum approved.
    Approved,
    /// Someone denied.
    Denied,
}

impl Gate {
    /// The gate's spelling of `who`, if they are one of its approvers (case-insensitive).
    pub fn approver(&self, who: &str) -> Option<&str> {
        self.approvers
            .iter()
            .find(|a| a.trim().eq_ignore_ascii_case(who.trim()))
            .map(String::as_str)
    }

    /// Whether `who` requested the run (case-insensitive).
    pub fn is_requester(&self, who: &str) -> bool {
        self.requested_by
            .as_deref()
            .is_some_and(|r| r.trim().eq_ignore_ascii_case(who.trim()))
    }

    /// The approvers who may decide: everyone named except the requester.
    pub fn eligible(&self) -> Vec<&str> {
        self.approvers
            .iter()
            .filter(|a| !self.is_requester(a))
            .map(String::as_str)
            .collect()
    }

    /// Whether `who` has decided already.
    pub fn has_decided(&self, who: &str) -> bool {
        self.decisions
            .iter()
            .any(|d| d.approver.eq_ignore_ascii_case(who.trim()))
    }

    /// Approvals so far.
    pub fn approvals(&self) -> u32 {
        self.decisions.iter().filter(|d| d.approve).count() as u32
    }

    /// Records a decision and says what it did: any deny decides; the quorum-th approval opens.
    pub(crate) fn record(&mut self, decision: Decision) -> Verdict {
        let approve = decision.approve;
        self.decisions.push(decision);
        if !approve {
            Verdict::Denied
        } else if self.approvals() >= self.quorum.max(1) {
            Verdict::Approved
        } else {
            Verdict::Open
        }
    }

    /// Who approved, in order.
    pub fn approved_by(&self) -> Vec<String> {
        self.decisions
            .iter()
            .filter(|d| d.approve)
            .map(|d| d.approver.clone())
            .collect()
    }

    /// Who decided, in order.
    pub fn decided_by(&self) -> Vec<String> {
        self.decisions.iter().map(|d| d.approver.clone()).collect()
    }

    /// The comment of the deciding (last) decision.
    pub fn last_comment(&self) -> Option<String> {
        self.decisions.last().and_then(|d| d.comment.clone())
    }
}
