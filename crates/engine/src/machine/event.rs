//! What the machine is told ([`Event`]) and what it asks for ([`Action`]). Events carry every
//! fact a decision needs (the vendor's error class and Retry-After, who decided, the kind's
//! outputs), so the machine stays pure and a journal replays to the same state.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{InstanceState, RunStatus};

/// One HTTP exchange of an attempt, without secrets or bodies (journaled with its attempt).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Status code, if a response came.
    pub status: Option<u16>,
    /// Milliseconds.
    pub duration_ms: u64,
}

/// How an attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Worth retrying (timeouts, 5xx, connection errors); with a Retry-After it is
    /// throttling, waited out without using the retry budget.
    Transient,
    /// Retrying cannot fix it.
    Permanent,
}

/// Why an attempt failed, as the kind reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Transient or permanent.
    pub class: FailureClass,
    /// A stable code (the vendor's when it gave one).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// How long the vendor asked us to wait (ms), as it said it; the machine caps it.
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    /// A transient failure.
    pub fn transient(code: &str, message: impl Into<String>) -> Self {
        Failure {
            class: FailureClass::Transient,
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Failure {
            class: FailureClass::Permanent,
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// Throttling: transient with a Retry-After.
    pub fn is_throttling(&self) -> bool {
        self.class == FailureClass::Transient && self.retry_after_ms.is_some()
    }
}

/// What an expired approval resolves as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnExpiry {
    /// The run is denied.
    #[default]
    Deny,
    /// The gate opens.
    Approve,
    /// The step fails (the run's `on_failure` steps run).
    Fail,
}

/// Why an attempt parked its instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "park")]
pub enum Park {
    /// An approval gate was requested.
    Approval {
        /// Who may decide (emails).
        approvers: Vec<String>,
        /// Approvals needed; any deny decides.
        quorum: u32,
        /// What an expired request resolves as.
        on_expiry: OnExpiry,
        /// When it expires (unix ms).
        expires_at_ms: u64,
        /// What is asked.
        message: Option<String>,
        /// Who requested the run (`Trigger.by`): they may not decide their own request.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requested_by: Option<String>,
        /// Who was sent the request, and how: `APPROVER via teams`, or `APPROVER via email
        /// failed: WHY` (never a link).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notified: Vec<String>,
    },
    /// A wait until a time.
    Wait {
        /// When it ends (unix ms).
        until_ms: u64,
    },
    /// A `runbook.call`: the called run is started (or, after a retry, resumed) and the
    /// instance waits for it to end.
    Call {
        /// The called runbook's id.
        runbook: String,
        /// The called run's id (derived from `key`, so a repeat names the same run).
        run: String,
        /// Its dedup key: `call:PARENT:STEP:ITEM:GENERATION`.
        key: String,
    },
}

/// Something that happened to the run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// The run was created from a pinned plan (journaled with its validated inputs).
    Created {
        /// Runbook id.
        runbook: String,
        /// Runbook version.
        version: u32,
        /// The pinned plan's hash.
        plan_hash: String,
        /// How it started: `cli`, `api`, `webhook:<source>`, `schedule`, with who.
        trigger: String,
        /// The resolved inputs, secrets as `***`.
        inputs: Value,
        /// Its concurrency key, if the runbook sets one.
        concurrency_key: Option<String>,
        /// Spreads retry jitter (derived from the run id).
        seed: u64,
    },
    /// The run starts.
    Start,
    /// The driver rendered a step's `if` and `for_each`.
    Prepared {
        /// Step id.
        step: String,
        /// `Some(n)`: a `for_each` step with `n` items; `None`: one instance.
        items: Option<u32>,
        /// `if` rendered false.
        skip: bool,
    },
    /// The step's `if` or `for_each` could not be rendered: the step fails.
    PrepareFailed {
        /// Step id.
        step: String,
        /// Why.
        message: String,
    },
    /// A worker claimed an instance.
    AttemptStarted {
        /// Step id.
        step: String,
        /// Item index (0 for a single instance).
        item: u32,
        /// The new attempt number.
        attempt: u32,
        /// The worker's claim (journaled).
        owner: String,
    },
    /// An attempt succeeded.
    AttemptSucceeded {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt that succeeded.
        attempt: u32,
        /// Its outputs as stored (secret values sealed).
        output: Value,
        /// The requests it made.
        #[serde(default)]
        requests: Vec<Request>,
    },
    /// An attempt failed.
    AttemptFailed {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        failure: Failure,
        /// The requests it made.
        #[serde(default)]
        requests: Vec<Request>,
    },
    /// The kind said "not yet, look again at `at_ms`" (mailbox not provisioned, purchased
    /// seat not visible): the instance waits on a timer without holding a worker.
    AttemptDeferred {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt.
        attempt: u32,
        /// When to look again (unix ms).
        at_ms: u64,
        /// What is not ready.
        reason: String,
        /// The requests it made.
        #[serde(default)]
        requests: Vec<Request>,
    },
    /// An attempt parked its instance (approval requested, wait started).
    Parked {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt.
        attempt: u32,
        /// What it waits for.
        park: Park,
        /// The requests it made.
        #[serde(default)]
        requests: Vec<Request>,
    },
    /// An approver decided.
    ApprovalDecided {
        /// The approval step.
        step: String,
        /// Who (one of the gate's approvers).
        approver: String,
        /// Approve or deny.
        approve: bool,
        /// Their comment.
        comment: Option<String>,
        /// Where from (`cli`, `link from 10.0.0.5`, `api`...).
        source: String,
        /// The browser or client that sent it (bounded, control characters removed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_agent: Option<String>,
    },
    /// An instance's timer is due: a retry or "not yet" wait ended, a wait ended, or an
    /// approval expired. The machine knows which from the instance's state.
    TimerDue {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// A worker's lease ran out during an attempt (it crashed, or its report never
    /// committed): the next attempt finds the work done. Not counted against the budget.
    LeaseExpired {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt whose lease expired.
        attempt: u32,
    },
    /// The run a parked `runbook.call` instance called has ended (delivered in the
    /// transaction that ended it).
    ChildEnded {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The called run.
        run: String,
        /// How it ended.
        status: RunStatus,
        /// The step's outputs when it succeeded (`run_id`, `status`, `outputs`; secret values
        /// sealed).
        output: Value,
        /// What went wrong, when it did not succeed (its failed step and error).
        message: Option<String>,
    },
    /// An operator cancels the run.
    Cancel {
        /// Who.
        by: String,
    },
    /// An operator resumes a failed run: its failed steps (all, or those named) and everything
    /// that had not run yet go again, with a fresh retry budget; succeeded instances are kept.
    Retry {
        /// Only these failed steps (empty: every failed step).
        steps: Vec<String>,
        /// Who.
        by: String,
    },
    /// An operator rolls back a failed or cancelled run: compensations run in reverse.
    Rollback {
        /// Who.
        by: String,
    },
}

/// Why an instance goes back to ready later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Again {
    /// A transient error: the retry budget paid for it.
    Error,
    /// The vendor throttled (Retry-After): waited out, budget untouched.
    Throttled,
    /// The kind said "not yet".
    NotReady,
}

/// What the store must do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Render the step's `if` and `for_each`, then apply [`Event::Prepared`].
    Prepare {
        /// Step id.
        step: String,
    },
    /// Make an instance claimable now.
    Enqueue {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// Make an instance claimable at `at_ms` (a retry, a throttling wait, a "not yet").
    EnqueueAt {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// When (unix ms).
        at_ms: u64,
        /// Why it waits.
        why: Again,
    },
    /// Wake a parked instance at `at_ms` with [`Event::TimerDue`] (wait end, approval expiry).
    SetTimer {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// When (unix ms).
        at_ms: u64,
    },
    /// The parked instance's timer is no longer needed.
    CancelTimer {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// The instance was stopped while queued: drop its attempt task.
    Dequeue {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// Store an instance's outputs (templates of later steps read them).
    StoreOutput {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The outputs (secret values sealed).
        output: Value,
    },
    /// An approval gate resolved.
    ApprovalResolved {
        /// Step id.
        step: String,
        /// `approved`, `denied` or `expired`.
        decision: String,
        /// Who decided (empty when it expired).
        decided_by: Vec<String>,
    },
    /// An instance failed for good.
    GaveUp {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// Why no further attempt is made.
        reason: String,
    },
    /// A step was skipped.
    Skipped {
        /// Step id.
        step: String,
        /// Why.
        reason: &'static str,
    },
    /// A main step failed: the `on_failure` steps start.
    OnFailure {
        /// The step that failed the run.
        failed_step: String,
    },
    /// The run ended.
    Finish {
        /// Final status.
        status: RunStatus,
        /// The step that failed it, if any.
        failed_step: Option<String>,
    },
    /// Start the run a `runbook.call` instance calls (with the prepared child the report
    /// carries); if that run exists already, resume it if it failed, or report its end if it
    /// ended otherwise.
    StartChild {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The called runbook.
        runbook: String,
        /// The called run's id.
        run: String,
        /// Its dedup key.
        key: String,
    },
    /// The run a parked `runbook.call` instance called is no longer wanted: cancel it.
    CancelChild {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// The run held a concurrency key and ended: start the oldest run queued behind it.
    StartQueued {
        /// The key.
        key: String,
    },
}

/// Events that do not fit the state (a stale worker, a duplicate delivery) are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No such step or item.
    #[error("run has no step instance {step}[{item}]")]
    Unknown {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// The event belongs to an attempt that is no longer current (fencing).
    #[error("{step}[{item}]: attempt {attempt} is stale ({state:?})")]
    Stale {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt named by the event.
        attempt: u32,
        /// The instance's current state.
        state: InstanceState,
    },
    /// No approval of that step is waiting for a decision.
    #[error("no approval `{0}` is waiting for a decision")]
    NotWaiting(String),
    /// The person is not one of the gate's approvers.
    #[error("{0} is not an approver of this request")]
    NotApprover(String),
    /// The approver already decided this gate.
    #[error("{0} has already decided this request")]
    AlreadyDecided(String),
    /// The approver requested the run: nobody approves their own request.
    #[error("{0} requested this run and cannot decide its approval")]
    SelfApproval(String),
    /// The event does not apply in the step's or run's current state.
    #[error("{0}")]
    Invalid(String),
}
