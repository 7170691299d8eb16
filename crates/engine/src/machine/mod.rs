//! The pure run state machine: `apply(event, now) -> actions`. It owns what a run's steps and
//! their instances are doing and makes every decision: what is ready, whether a failed attempt
//! is retried and when (the retry budget is its own, apart from the attempt number), how long
//! throttling is waited out, whether an approval's quorum is reached, denied or expired, when
//! a wait ends, what each step outputs, and which queued run starts next. It performs nothing:
//! the store carries out its [`Action`]s and the journal is derived from (event, actions) by
//! [`crate::journal::entries`].
//!
//! Instance states: `pending` (over `max_parallel`), `ready`, `running(attempt)`,
//! `retry_wait(attempt, at)` (after an error, throttling, or a kind's "not yet"), `parked`
//! (waiting on approval or sleeping), `succeeded`, `failed`, `skipped`, `cancelled`. Run
//! statuses: `queued running waiting succeeded failed denied cancelled rolled_back`.
//!
//! A run moves through [`Stage`]s: its main steps; then, if it fails, its `on_failure` steps
//! (once; the run still ends failed); and, when an operator asks for a rollback of a failed or
//! cancelled run, the `compensate` of every step that succeeded, in reverse dependency order.
//! [`Event::Retry`] resumes a failed run from its failed steps.

mod apply;
mod event;
mod gate;
mod policy;
pub mod schedule;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tenure_runbook::plan::RetryPolicy;
use tenure_runbook::Plan;

pub use event::{Action, Again, Error, Event, Failure, FailureClass, OnExpiry, Park, Request};
pub use gate::{Decision, Gate};
pub use policy::{default_policy, DEFAULT_DEADLINE, MAX_WAIT};

/// A run's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, not started.
    Queued,
    /// Steps are ready or running.
    Running,
    /// Only parked steps remain (approval, wait): the run costs nothing until woken.
    Waiting,
    /// Every step succeeded, was skipped, or failed with `continue_on_error`.
    Succeeded,
    /// A step failed.
    Failed,
    /// An approver denied (or an approval expired as a denial).
    Denied,
    /// An operator cancelled it.
    Cancelled,
    /// An operator rolled it back: every compensation ran.
    RolledBack,
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded
                | RunStatus::Failed
                | RunStatus::Denied
                | RunStatus::Cancelled
                | RunStatus::RolledBack
        )
    }
}

/// A unix time in milliseconds as RFC 3339 UTC with milliseconds (what outputs and the
/// journal show).
pub(crate) fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms.min(i64::MAX as u64) as i64)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A status as written in the journal and the CLI (`rolled_back`).
pub fn status_name(status: RunStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Which of a run's step groups is in play.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The runbook's `steps`.
    #[default]
    Main,
    /// The `on_failure` steps, after a main step failed.
    OnFailure,
    /// The compensations (`undo:STEP`), after an operator asked for a rollback.
    Rollback,
}

/// The id of the compensation node of `step`.
pub fn undo_id(step: &str) -> String {
    format!("undo:{step}")
}

/// The step a compensation node id undoes, if it is one.
pub fn undone_step(id: &str) -> Option<&str> {
    id.strip_prefix("undo:")
}

/// One instance of a step (a `for_each` step has one per item).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum InstanceState {
    /// Held back by `max_parallel`.
    Pending,
    /// Claimable by a worker.
    Ready,
    /// A worker holds it; `attempt` is the fencing token.
    Running {
        /// 1-based attempt.
        attempt: u32,
    },
    /// Waiting to go again: after a transient error, throttling, or a kind's "not yet".
    RetryWait {
        /// The attempt that ended.
        attempt: u32,
        /// When it becomes ready (unix ms).
        at_ms: u64,
    },
    /// Waiting on an approval or a timer.
    Parked {
        /// The attempt that parked it.
        attempt: u32,
    },
    /// Done.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Not run (`if` false, or no items).
    Skipped,
    /// Stopped by cancel, denial or the run failing.
    Cancelled,
}

impl InstanceState {
    /// Whether the instance is done (succeeded, failed, skipped or cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            InstanceState::Succeeded
                | InstanceState::Failed
                | InstanceState::Skipped
                | InstanceState::Cancelled
        )
    }

    /// Whether a worker or a timer still owes this instance something.
    fn in_flight(self) -> bool {
        matches!(
            self,
            InstanceState::Ready
                | InstanceState::Running { .. }
                | InstanceState::RetryWait { .. }
                | InstanceState::Parked { .. }
        )
    }
}

/// Where a whole step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    /// Waiting for its dependencies.
    Blocked,
    /// Its `if` and `for_each` are being rendered.
    Preparing,
    /// Its instances exist.
    Active,
    /// Every instance succeeded (or was skipped).
    Succeeded,
    /// An instance failed.
    Failed,
    /// Not run.
    Skipped,
    /// Stopped.
    Cancelled,
}

impl StepPhase {
    fn is_done(self) -> bool {
        matches!(
            self,
            StepPhase::Succeeded | StepPhase::Failed | StepPhase::Skipped | StepPhase::Cancelled
        )
    }
}

/// The instances of a step known without rendering anything. (Not `Option<Option<u32>>`,
/// whose `Some(None)` would come back from JSON as `None`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Fixed {
    /// One instance.
    Single,
    /// A `for_each` over a literal list of this many items.
    Items(u32),
}

impl Fixed {
    fn of(items: Option<u32>) -> Self {
        items.map_or(Fixed::Single, Fixed::Items)
    }

    pub(crate) fn items(self) -> Option<u32> {
        match self {
            Fixed::Single => None,
            Fixed::Items(n) => Some(n),
        }
    }
}

/// What the machine knows of one instance besides its state.
///
/// Its JSON leaves out fields that hold their default (zero, none); a missing field reads as
/// the default, so snapshots written with every field read the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Tally {
    /// The highest attempt number claimed: a claim must be higher (fencing).
    #[serde(skip_serializing_if = "is_zero")]
    attempt: u32,
    /// Transient errors counted against the retry budget (throttling, "not yet" and lost
    /// leases are not counted). An operator retry starts it again.
    #[serde(skip_serializing_if = "is_zero")]
    errors: u32,
    /// When the first attempt started (unix ms): the step's deadline counts from here.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_started_ms: Option<u64>,
    /// Throttled answers so far (they raise the floor of the next throttling wait).
    #[serde(skip_serializing_if = "is_zero")]
    throttles: u32,
    /// A `runbook.call` instance: bumped when its called run ended in a way a retry cannot
    /// resume (cancelled, denied, rolled back, timed out), so the next attempt calls afresh.
    #[serde(skip_serializing_if = "is_zero")]
    generation: u32,
}

// The snapshot is written on every transition of a run, so its JSON leaves out fields that
// hold their usual value (about a third of the text for a finished 8-step run); each such
// field has a `default` that gives the same value back, and snapshots written before, with
// every field present, read the same (`tests/data/machine_v1.txt`).

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_main(stage: &Stage) -> bool {
    *stage == Stage::Main
}

/// Most steps need no rendering: `fixed` is written only when it is something else.
fn single() -> Option<Fixed> {
    Some(Fixed::Single)
}

fn is_single(fixed: &Option<Fixed>) -> bool {
    *fixed == Some(Fixed::Single)
}

fn is_default_policy(policy: &RetryPolicy) -> bool {
    *policy == default_policy()
}

fn default_deadline_ms() -> u64 {
    DEFAULT_DEADLINE.as_millis() as u64
}

fn is_default_deadline(ms: &u64) -> bool {
    *ms == default_deadline_ms()
}

/// One step of a run. Its JSON leaves out fields that hold their usual value (see
/// [`Tally`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StepNode {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deps: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    continue_on_error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_parallel: Option<u32>,
    phase: StepPhase,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    instances: Vec<InstanceState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tallies: Vec<Tally>,
    /// Set when the step has no `if` and no templated `for_each`: it needs no rendering, so
    /// it is prepared inline instead of through a [`Action::Prepare`] round trip. Left out
    /// when `single` (most steps); `None` is written as `null`.
    #[serde(default = "single", skip_serializing_if = "is_single")]
    fixed: Option<Fixed>,
    /// The group the node belongs to.
    #[serde(default, skip_serializing_if = "is_main")]
    group: Stage,
    /// Compensation nodes: which items to undo (the original's succeeded instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    only: Option<Vec<bool>>,
    /// A `for_each` step.
    #[serde(default, skip_serializing_if = "is_false")]
    each: bool,
    /// The step's retry policy (the default when it sets none).
    #[serde(default = "default_policy", skip_serializing_if = "is_default_policy")]
    policy: RetryPolicy,
    /// How long (ms) from the first attempt the step may keep waiting out throttling, "not
    /// yet" answers and retries.
    #[serde(
        default = "default_deadline_ms",
        skip_serializing_if = "is_default_deadline"
    )]
    deadline_ms: u64,
    /// An approval step's gate, once requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gate: Option<Gate>,
    /// A `runbook.call` step: its parked instances wait for a called run.
    #[serde(default, skip_serializing_if = "is_false")]
    calls: bool,
    /// The step sets `timeout` (a call waits for its run that long at most; without one it
    /// waits as long as the run takes).
    #[serde(default, skip_serializing_if = "is_false")]
    timed: bool,
}

/// The state of one run: its steps and instances, its stage, its status.
///
/// Its JSON (the run's snapshot, written on every transition) leaves out fields that hold
/// their usual value; snapshots written with every field present read the same.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMachine {
    pub(crate) status: RunStatus,
    pub(crate) steps: IndexMap<String, StepNode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) failed_step: Option<String>,
    #[serde(default, skip_serializing_if = "is_main")]
    pub(crate) stage: Stage,
    /// Failed steps an operator's retry left alone: they fail the run again once nothing else
    /// can run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) held: Vec<String>,
    /// The run's concurrency key: when it ends, the oldest run queued behind it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) concurrency_key: Option<String>,
    /// Spreads retry jitter across runs (derived from the run, so replays are exact).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) seed: u64,
    /// The run's `Created` event was applied (a second one is refused).
    #[serde(default, skip_serializing_if = "is_false")]
    pub(crate) created: bool,
}

impl StepNode {
    fn new(s: &tenure_runbook::Step, deps: Vec<String>, group: Stage) -> Self {
        StepNode {
            deps,
            continue_on_error: s.continue_on_error,
            max_parallel: s.max_parallel,
            phase: StepPhase::Blocked,
            instances: Vec::new(),
            tallies: Vec::new(),
            fixed: match (&s.condition, &s.for_each) {
                (None, None) => Some(Fixed::Single),
                (None, Some(serde_json::Value::Array(items))) => {
                    Some(Fixed::of(Some(items.len() as u32)))
                }
                _ => None,
            },
            group,
            only: None,
            each: s.for_each.is_some(),
            policy: s.retry.clone().unwrap_or_else(default_policy),
            deadline_ms: s
                .timeout
                .map_or(DEFAULT_DEADLINE, |t| t.0)
                .as_millis()
                .min(u128::from(u64::MAX)) as u64,
            gate: None,
            calls: s.uses == "runbook.call",
            timed: s.timeout.is_some(),
        }
    }
}

/// Every step that depends on `step`, directly or through others.
fn downstream(plan: &Plan, step: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut frontier = vec![step.to_string()];
    while let Some(current) = frontier.pop() {
        for s in &plan.steps {
            if s.needs.iter().any(|d| d.step == current) && !found.contains(&s.id) {
                found.push(s.id.clone());
                frontier.push(s.id.clone());
            }
        }
    }
    found
}

impl RunMachine {
    /// A machine for the plan: its steps, its `on_failure` steps, and a compensation node
    /// (`undo:STEP`) for every step with `compensate`.
    pub fn new(plan: &Plan) -> Self {
        let mut steps = IndexMap::new();
        for (group, list) in [
            (Stage::Main, &plan.steps),
            (Stage::OnFailure, &plan.on_failure),
        ] {
            let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
            for s in list {
                let deps = s
                    .needs
                    .iter()
                    .map(|d| d.step.clone())
                    .filter(|d| ids.contains(&d.as_str()))
                    .collect();
                steps.insert(s.id.clone(), StepNode::new(s, deps, group));
            }
        }
        // A compensation waits for the compensations of every step downstream of its step.
        for s in plan.steps.iter().filter(|s| s.compensate.is_some()) {
            let deps = downstream(plan, &s.id)
                .into_iter()
                .filter(|d| plan.step(d).is_some_and(|d| d.compensate.is_some()))
                .map(|d| undo_id(&d))
                .collect();
            let mut node = StepNode::new(s, deps, Stage::Rollback);
            node.continue_on_error = false;
            node.fixed = None;
            steps.insert(undo_id(&s.id), node);
        }
        RunMachine {
            status: RunStatus::Queued,
            steps,
            failed_step: None,
            stage: Stage::Main,
            held: Vec::new(),
            concurrency_key: None,
            seed: 0,
            created: false,
        }
    }

    /// The stage the run is in.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Step ids of a group, in plan order.
    pub fn steps_of(&self, group: Stage) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|(_, n)| n.group == group)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// Instance states of a step.
    pub fn instances(&self, step: &str) -> &[InstanceState] {
        self.steps.get(step).map_or(&[], |n| n.instances.as_slice())
    }

    /// The run's status.
    pub fn status(&self) -> RunStatus {
        self.status
    }

    /// A step's phase.
    pub fn phase(&self, step: &str) -> Option<StepPhase> {
        self.steps.get(step).map(|s| s.phase)
    }

    /// An instance's state.
    pub fn instance(&self, step: &str, item: u32) -> Option<InstanceState> {
        self.steps.get(step)?.instances.get(item as usize).copied()
    }

    /// The attempt number the next claim of an instance must use.
    pub fn next_attempt(&self, step: &str, item: u32) -> u32 {
        self.steps
            .get(step)
            .and_then(|s| s.tallies.get(item as usize))
            .map_or(1, |t| t.attempt + 1)
    }

    /// How many attempts an instance has had.
    pub fn attempts(&self, step: &str, item: u32) -> u32 {
        self.next_attempt(step, item) - 1
    }

    /// Transient errors of an instance counted against its retry budget.
    pub fn errors(&self, step: &str, item: u32) -> u32 {
        self.steps
            .get(step)
            .and_then(|s| s.tallies.get(item as usize))
            .map_or(0, |t| t.errors)
    }

    /// The step whose failure failed the run, if any.
    pub fn failed_step(&self) -> Option<&str> {
        self.failed_step.as_deref()
    }

    /// The approval gate of a step, once requested (approvers, quorum, decisions so far).
    pub fn gate(&self, step: &str) -> Option<&Gate> {
        self.steps.get(step)?.gate.as_ref()
    }

    /// Every approval step currently waiting for decisions.
    pub fn open_gates(&self) -> Vec<(&str, &Gate)> {
        self.steps
            .iter()
            .filter(|(_, n)| matches!(n.instances.first(), Some(InstanceState::Parked { .. })))
            .filter_map(|(id, n)| Some((id.as_str(), n.gate.as_ref()?)))
            .collect()
    }

    /// Which call of a `runbook.call` instance the next attempt makes (0 first; higher after
    /// a called run ended in a way a retry cannot resume).
    pub fn call_generation(&self, step: &str, item: u32) -> u32 {
        self.steps
            .get(step)
            .and_then(|s| s.tallies.get(item as usize))
            .map_or(0, |t| t.generation)
    }

    /// The run's concurrency key.
    pub fn concurrency_key(&self) -> Option<&str> {
        self.concurrency_key.as_deref()
    }
}
