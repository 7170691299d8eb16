//! The journal: every state change of a run is an [`Event`] appended in order, each carrying
//! a keyed hash (HMAC-SHA256 with the installation's [`ChainKey`]) of the one before it and
//! itself, so an edited, reordered, deleted or truncated journal is detectable ([`verify`],
//! which also checks the head stored on the run row). What is journaled is derived from the
//! machine's events and actions by one pure function ([`entries`]). Events never hold secrets:
//! sealed values and values the runbook marks secret are `***` before they get here.

mod derive;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

pub use derive::{entries, redact};

/// The key of a journal's hash chain.
#[derive(Clone)]
pub struct ChainKey([u8; 32]);

impl std::fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainKey(***)")
    }
}

impl ChainKey {
    /// The chain key derived from an installation's secret key.
    pub fn derive(secret_key: &[u8; 32]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret_key).expect("any key length");
        mac.update(b"tenure journal chain v1");
        ChainKey(mac.finalize().into_bytes().into())
    }
}

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
    /// The kind said "not yet": the instance looks again later without holding a worker.
    AttemptDeferred {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// Attempt.
        attempt: u32,
        /// What is not ready.
        reason: String,
    },
    /// The machine gave up on an instance: no further attempt.
    GaveUp {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// Why (retry budget used up, deadline passed...).
        reason: String,
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
        /// Who requested the run (they may not decide).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requested_by: Option<String>,
        /// Who was sent the request and how (`APPROVER via teams`, `APPROVER via email
        /// failed: WHY`); never a link.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notified: Vec<String>,
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
        /// The browser or client they decided with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_agent: Option<String>,
    },
    /// An approval gate resolved.
    ApprovalResolved {
        /// Step id.
        step: String,
        /// `approved`, `denied` or `expired`.
        decision: String,
        /// Who decided.
        decided_by: Vec<String>,
    },
    /// A `runbook.call` instance started (or, after a retry, resumed) the run it calls.
    ChildRunStarted {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// The called runbook.
        runbook: String,
        /// The called run's id.
        run: String,
    },
    /// The run a `runbook.call` instance called ended.
    ChildRunEnded {
        /// Step id.
        step: String,
        /// Item index.
        item: Option<u32>,
        /// The called run's id.
        run: String,
        /// Its final status.
        status: String,
        /// The step's outputs when it succeeded (secrets as `***`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        /// What went wrong, when it did not succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A timer was set (wait, retry, approval expiry).
    TimerSet {
        /// Step id.
        step: String,
        /// When (RFC 3339).
        at: String,
        /// Item index.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Option<u32>,
        /// What it is for: `wait`, `approval expiry`, `retry after an error`, `throttled`,
        /// `not ready`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
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
    /// HMAC-SHA256 (keyed with the [`ChainKey`]) over the previous hash and this event's
    /// content.
    pub hash: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    run_id: &'a str,
    seq: u64,
    at: &'a str,
    kind: &'a EventKind,
}

/// The keyed hash of an event with content `(run_id, seq, at, kind)` following `prev_hash`.
pub fn hash_of(
    key: &ChainKey,
    prev_hash: &str,
    run_id: &str,
    seq: u64,
    at: &str,
    kind: &EventKind,
) -> String {
    let mut h = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("any key length");
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    // Serializing these plain types cannot fail.
    h.update(
        &serde_json::to_vec(&Hashed {
            run_id,
            seq,
            at,
            kind,
        })
        .unwrap_or_default(),
    );
    hex::encode(h.finalize().into_bytes())
}

impl Event {
    /// The event that follows `prev` (or starts the journal when `prev` is `None`).
    pub fn next(
        key: &ChainKey,
        run_id: &str,
        prev: Option<&Event>,
        at: String,
        kind: EventKind,
    ) -> Event {
        Self::after(
            key,
            run_id,
            prev.map(|p| (p.seq, p.hash.as_str())),
            at,
            kind,
        )
    }

    /// The event after the one with sequence number and hash `prev` (`None`: the first).
    pub fn after(
        key: &ChainKey,
        run_id: &str,
        prev: Option<(u64, &str)>,
        at: String,
        kind: EventKind,
    ) -> Event {
        let (seq, prev_hash) = match prev {
            Some((seq, hash)) => (seq + 1, hash.to_string()),
            None => (1, GENESIS.to_string()),
        };
        let hash = hash_of(key, &prev_hash, run_id, seq, &at, &kind);
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
    /// The journal ends before the head stored on the run row: its last events were deleted.
    #[error("the journal ends at event {found} but the run recorded {expected} events: the last events were deleted")]
    Truncated {
        /// The last event the run row recorded.
        expected: u64,
        /// The last event found.
        found: u64,
    },
    /// The last event is not the one the run row recorded (the journal was rewritten).
    #[error(
        "event {seq} is not the event the run recorded as its last: the journal was rewritten"
    )]
    HeadMismatch {
        /// The event.
        seq: u64,
    },
    /// The run has ended but its journal does not end with that ending (its last events
    /// were deleted and the stored head moved back with them).
    #[error("the run ended `{status}` but its journal does not end with the run finishing that way: the last events were deleted")]
    UnfinishedJournal {
        /// The run's final status.
        status: String,
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

/// Checks a run's whole journal, in order, against the chain key and the head (last sequence
/// number and hash) stored on the run row.
///
/// `finished`: the run's final status, if it has ended; its journal must then end with the
/// run finishing that way.
pub fn verify(
    key: &ChainKey,
    run_id: &str,
    events: &[Event],
    head: (u64, &str),
    finished: Option<&str>,
) -> Result<(), VerifyError> {
    verify_chain(key, run_id, events)?;
    let (last_seq, last_hash) = events.last().map_or((0, ""), |e| (e.seq, e.hash.as_str()));
    if last_seq < head.0 {
        return Err(VerifyError::Truncated {
            expected: head.0,
            found: last_seq,
        });
    }
    if last_seq > head.0 || last_hash != head.1 {
        return Err(VerifyError::HeadMismatch { seq: last_seq });
    }
    if let Some(status) = finished {
        let ends_so = matches!(
            events.last().map(|e| &e.kind),
            Some(EventKind::RunFinished { status: last, .. }) if last == status
        );
        if !ends_so {
            return Err(VerifyError::UnfinishedJournal {
                status: status.to_string(),
            });
        }
    }
    Ok(())
}

/// Checks that a journal's events link and hash correctly, without the stored head.
pub fn verify_chain(key: &ChainKey, run_id: &str, events: &[Event]) -> Result<(), VerifyError> {
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
        if hash_of(key, &e.prev_hash, &e.run_id, e.seq, &e.at, &e.kind) != e.hash {
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

    fn key() -> ChainKey {
        ChainKey::derive(&[7; 32])
    }

    fn head(events: &[Event]) -> (u64, &str) {
        events.last().map_or((0, ""), |e| (e.seq, e.hash.as_str()))
    }

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
            let e = Event::next(
                &key(),
                "r1",
                out.last(),
                format!("2026-11-22T10:00:0{i}.000Z"),
                k,
            );
            out.push(e);
        }
        out
    }

    #[test]
    fn an_untouched_journal_verifies() {
        let j = journal();
        assert_eq!(verify(&key(), "r1", &j, head(&j), None), Ok(()));
        assert_eq!(
            verify(&key(), "r1", &j, head(&j), Some("succeeded")),
            Ok(())
        );
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
        assert_eq!(
            verify_chain(&key(), "r1", &edited),
            Err(VerifyError::Tampered { seq: 4 })
        );

        let mut deleted = journal();
        deleted.remove(2);
        assert_eq!(
            verify_chain(&key(), "r1", &deleted),
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
            verify_chain(&key(), "r1", &renumbered),
            Err(VerifyError::BrokenLink { seq: 2 })
        );

        let mut rehashed = journal();
        rehashed[1].at = "2026-11-22T11:00:00.000Z".into();
        rehashed[1].hash = hash_of(
            &key(),
            &rehashed[1].prev_hash,
            "r1",
            2,
            &rehashed[1].at,
            &rehashed[1].kind,
        );
        assert_eq!(
            verify_chain(&key(), "r1", &rehashed),
            Err(VerifyError::BrokenLink { seq: 3 }),
            "re-hashing one event breaks the next link"
        );
    }

    #[test]
    fn truncation_and_rewrites_are_detected_against_the_stored_head() {
        let full = journal();
        let stored = (full.last().unwrap().seq, full.last().unwrap().hash.clone());
        let mut cut = full.clone();
        cut.truncate(3);
        assert_eq!(
            verify(&key(), "r1", &cut, (stored.0, &stored.1), None),
            Err(VerifyError::Truncated {
                expected: 5,
                found: 3
            })
        );
        assert_eq!(
            verify(&key(), "r1", &[], (stored.0, &stored.1), None),
            Err(VerifyError::Truncated {
                expected: 5,
                found: 0
            }),
            "an emptied journal"
        );
        // The tail deleted and the stored head moved back with it: the chain and head agree,
        // but the run ended and its journal does not say so.
        let moved = (cut[2].seq, cut[2].hash.clone());
        assert_eq!(
            verify(&key(), "r1", &cut, (moved.0, &moved.1), Some("succeeded")),
            Err(VerifyError::UnfinishedJournal {
                status: "succeeded".into()
            })
        );
        assert_eq!(
            verify(&key(), "r1", &full, (stored.0, &stored.1), Some("failed")),
            Err(VerifyError::UnfinishedJournal {
                status: "failed".into()
            }),
            "a status changed on the run row"
        );
        // An edit followed by re-hashing everything after it, with a guessed key: the chain is
        // keyed, so the forger's hashes do not verify.
        let forger = ChainKey::derive(&[9; 32]);
        let mut forged: Vec<Event> = Vec::new();
        for (i, e) in full.iter().enumerate() {
            let mut kind = e.kind.clone();
            if i == 3 {
                kind = EventKind::AttemptSucceeded {
                    step: "create_user".into(),
                    item: None,
                    attempt: 1,
                    output: json!({"id": "attacker"}),
                };
            }
            forged.push(Event::next(
                &forger,
                "r1",
                forged.last(),
                e.at.clone(),
                kind,
            ));
        }
        assert_eq!(
            verify_chain(&key(), "r1", &forged),
            Err(VerifyError::Tampered { seq: 1 })
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
