//! The journal: every state change of a run is an [`Event`] appended in order, each carrying
//! the hash of the one before it, so an edited, reordered or deleted event is detectable
//! ([`verify`]). Events never hold secrets: values the runbook marks secret are `***` before
//! they get here.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash a run's first event links to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum EventKind {
    /// A run was created from a pinned plan.
    RunCreated {
        /// Runbook id.
        runbook: String,
        /// Runbook version.
        version: u32,
        /// The pinned plan's hash.
        plan_hash: String,
        /// How it started: `cli`, `api`, `webhook:<source>`, `schedule`.
        trigger: String,
    },
    /// The inputs passed validation (secret values as `***`).
    InputsValidated {
        /// The resolved inputs.
        inputs: Value,
    },
    /// A step instance can be claimed.
    StepReady {
        /// Step id.
        step: String,
        /// `for_each` item index.
        item: Option<u32>,
    },
    /// A worker claimed an instance.
    AttemptStarted {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// 1-based attempt number (the fencing token).
        attempt: u32,
        /// The worker holding the lease.
        owner: String,
    },
    /// One HTTP exchange of an attempt, without secrets or bodies.
    RequestSummary {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// Attempt.
        attempt: u32,
        /// HTTP method.
        method: String,
        /// Path without query secrets.
        path: String,
        /// Status code, if a response came.
        status: Option<u16>,
        /// Milliseconds.
        duration_ms: u64,
    },
    /// An attempt succeeded.
    AttemptSucceeded {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// Attempt.
        attempt: u32,
        /// The step's outputs (secrets as `***`).
        output: Value,
    },
    /// An attempt failed.
    AttemptFailed {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// Attempt.
        attempt: u32,
        /// `transient` or `permanent`.
        class: String,
        /// The vendor's or Tenure's error code.
        code: String,
        /// What went wrong.
        message: String,
        /// A vendor's Retry-After, in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// A step or instance was skipped.
    StepSkipped {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// Why (`if` was false, no items, run cancelled...).
        reason: String,
    },
    /// An approval was requested.
    ApprovalRequested {
        /// Step id.
        step: String,
        /// Who may decide.
        approvers: Vec<String>,
        /// When the request expires (RFC 3339).
        expires_at: String,
    },
    /// Someone decided.
    ApprovalDecided {
        /// Step id.
        step: String,
        /// Who.
        approver: String,
        /// `approve` or `deny`.
        decision: String,
        /// `link`, `cli` or `api`, with the source address for links.
        source: String,
        /// Their comment.
        comment: Option<String>,
    },
    /// A timer was set (wait, retry, approval expiry).
    TimerSet {
        /// Step id.
        step: String,
        /// When (RFC 3339).
        at: String,
    },
    /// A timer fired.
    TimerFired {
        /// Step id.
        step: String,
    },
    /// A step failed the run: its `on_failure` steps start.
    OnFailureStarted {
        /// The step that failed the run.
        failed_step: String,
    },
    /// An operator cancelled the run.
    RunCancelled {
        /// Who.
        by: String,
    },
    /// An operator resumed a failed run.
    RunRetried {
        /// The failed steps that run again (empty: all).
        steps: Vec<String>,
        /// Who.
        by: String,
    },
    /// An operator started a rollback: compensations run in reverse order.
    RollbackStarted {
        /// Who.
        by: String,
    },
    /// The run ended.
    RunFinished {
        /// Final status.
        status: String,
        /// The error, for failed runs.
        error: Option<String>,
    },
}

/// One journal entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The run.
    pub run_id: String,
    /// 1-based position in the run's journal.
    pub seq: u64,
    /// When (RFC 3339, milliseconds).
    pub at: String,
    /// What happened.
    pub kind: EventKind,
    /// The previous event's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 over the previous hash and this event's content.
    pub hash: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    run_id: &'a str,
    seq: u64,
    at: &'a str,
    kind: &'a EventKind,
}

/// The hash of an event with content `(run_id, seq, at, kind)` following `prev_hash`.
pub fn hash_of(prev_hash: &str, run_id: &str, seq: u64, at: &str, kind: &EventKind) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    // Serializing these plain types cannot fail.
    h.update(
        serde_json::to_vec(&Hashed {
            run_id,
            seq,
            at,
            kind,
        })
        .unwrap_or_default(),
    );
    hex::encode(h.finalize())
}

impl Event {
    /// The event that follows `prev` (or starts the journal when `prev` is `None`).
    pub fn next(run_id: &str, prev: Option<&Event>, at: String, kind: EventKind) -> Event {
        Self::after(run_id, prev.map(|p| (p.seq, p.hash.as_str())), at, kind)
    }

    /// The event after the one with sequence number and hash `prev` (`None`: the first).
    pub fn after(run_id: &str, prev: Option<(u64, &str)>, at: String, kind: EventKind) -> Event {
        let (seq, prev_hash) = match prev {
            Some((seq, hash)) => (seq + 1, hash.to_string()),
            None => (1, GENESIS.to_string()),
        };
        let hash = hash_of(&prev_hash, run_id, seq, &at, &kind);
        Event {
            run_id: run_id.to_string(),
            seq,
            at,
            kind,
            prev_hash,
            hash,
        }
    }
}

/// Why a journal does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A sequence number is missing or out of order (an event was deleted or moved).
    #[error("event {found} follows event {expected_after}: an event is missing or out of order")]
    Gap {
        /// The sequence number before the gap.
        expected_after: u64,
        /// The sequence number found.
        found: u64,
    },
    /// An event does not link to the one before it.
    #[error("event {seq} does not link to the event before it")]
    BrokenLink {
        /// The event.
        seq: u64,
    },
    /// An event's content does not match its hash (it was edited).
    #[error("event {seq} was changed after it was written")]
    Tampered {
        /// The event.
        seq: u64,
    },
    /// An event belongs to another run.
    #[error("event {seq} belongs to run {other}")]
    WrongRun {
        /// The event.
        seq: u64,
        /// The run it names.
        other: String,
    },
}

/// Checks a run's whole journal, in order.
pub fn verify(run_id: &str, events: &[Event]) -> Result<(), VerifyError> {
    let mut prev_hash = GENESIS.to_string();
    for (i, e) in events.iter().enumerate() {
        let expected = i as u64 + 1;
        if e.seq != expected {
            return Err(VerifyError::Gap {
                expected_after: expected - 1,
                found: e.seq,
            });
        }
        if e.run_id != run_id {
            return Err(VerifyError::WrongRun {
                seq: e.seq,
                other: e.run_id.clone(),
            });
        }
        if e.prev_hash != prev_hash {
            return Err(VerifyError::BrokenLink { seq: e.seq });
        }
        if hash_of(&e.prev_hash, &e.run_id, e.seq, &e.at, &e.kind) != e.hash {
            return Err(VerifyError::Tampered { seq: e.seq });
        }
        prev_hash = e.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn journal() -> Vec<Event> {
        let kinds = vec![
            EventKind::RunCreated {
                runbook: "onboard-user".into(),
                version: 3,
                plan_hash: "ab".into(),
                trigger: "cli".into(),
            },
            EventKind::StepReady {
                step: "create_user".into(),
                item: None,
            },
            EventKind::AttemptStarted {
                step: "create_user".into(),
                item: None,
                attempt: 1,
                owner: "w1".into(),
            },
            EventKind::AttemptSucceeded {
                step: "create_user".into(),
                item: None,
                attempt: 1,
                output: json!({"id": "u1", "password": "***"}),
            },
            EventKind::RunFinished {
                status: "succeeded".into(),
                error: None,
            },
        ];
        let mut out: Vec<Event> = Vec::new();
        for (i, k) in kinds.into_iter().enumerate() {
            let e = Event::next("r1", out.last(), format!("2026-11-22T10:00:0{i}.000Z"), k);
            out.push(e);
        }
        out
    }

    #[test]
    fn an_untouched_journal_verifies() {
        assert_eq!(verify("r1", &journal()), Ok(()));
        assert_eq!(journal()[0].prev_hash, GENESIS);
    }

    #[test]
    fn edits_deletions_and_reorders_are_detected() {
        let mut edited = journal();
        edited[3].kind = EventKind::AttemptSucceeded {
            step: "create_user".into(),
            item: None,
            attempt: 1,
            output: json!({"id": "u2"}),
        };
        assert_eq!(verify("r1", &edited), Err(VerifyError::Tampered { seq: 4 }));

        let mut deleted = journal();
        deleted.remove(2);
        assert_eq!(
            verify("r1", &deleted),
            Err(VerifyError::Gap {
                expected_after: 2,
                found: 4
            })
        );

        // Deleting the last event and renumbering nothing still verifies the prefix; deleting a
        // middle event and renumbering breaks the links.
        let mut renumbered = journal();
        renumbered.remove(1);
        for (i, e) in renumbered.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        assert_eq!(
            verify("r1", &renumbered),
            Err(VerifyError::BrokenLink { seq: 2 })
        );

        let mut rehashed = journal();
        rehashed[1].at = "2026-11-22T11:00:00.000Z".into();
        rehashed[1].hash = hash_of(
            &rehashed[1].prev_hash,
            "r1",
            2,
            &rehashed[1].at,
            &rehashed[1].kind,
        );
        assert_eq!(
            verify("r1", &rehashed),
            Err(VerifyError::BrokenLink { seq: 3 }),
            "re-hashing one event breaks the next link"
        );
    }

    #[test]
    fn events_round_trip_through_json() {
        for e in journal() {
            let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
            assert_eq!(back, e);
        }
    }
}
