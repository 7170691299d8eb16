//! The pure run state machine: `apply(event) -> actions`. It owns what a run's steps and their
//! instances are doing and decides what happens next; it performs nothing. The driver renders
//! templates (answering [`Action::Prepare`] with [`Event::Prepared`]), runs attempts, sets
//! timers and writes every event to the journal.
//!
//! Instance states: `pending` (over `max_parallel`), `ready`, `running(attempt)`,
//! `retry_wait(attempt, at)`, `parked` (waiting on approval or sleeping), `succeeded`,
//! `failed`, `skipped`, `cancelled`. Run statuses: `queued running waiting succeeded failed
//! denied cancelled rolled_back`.
//!
//! A run moves through [`Stage`]s: its main steps; then, if it fails, its `on_failure` steps
//! (once; the run still ends failed); and, when an operator asks for a rollback of a failed or
//! cancelled run, the `compensate` of every step that succeeded, in reverse dependency order.
//! [`Event::Retry`] resumes a failed run from its failed steps.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use tenure_runbook::Plan;

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
    /// Waiting to retry after a transient failure.
    RetryWait {
        /// The attempt that failed.
        attempt: u32,
        /// When to retry (unix ms).
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

/// The attempt of a running instance (the fencing token), for [`RunMachine::fenced`].
fn running_attempt(s: InstanceState) -> Option<u32> {
    match s {
        InstanceState::Running { attempt } => Some(attempt),
        _ => None,
    }
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

/// Something that happened to the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
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
    },
    /// A worker claimed an instance.
    AttemptStarted {
        /// Step id.
        step: String,
        /// Item index (0 for a single instance).
        item: u32,
        /// The new attempt number.
        attempt: u32,
    },
    /// An attempt succeeded.
    AttemptSucceeded {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt that succeeded.
        attempt: u32,
    },
    /// An attempt failed.
    AttemptFailed {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt that failed.
        attempt: u32,
        /// `Some(when)`: transient, retry then (unix ms); `None`: failed for good.
        retry_at_ms: Option<u64>,
    },
    /// A retry's time has come.
    RetryDue {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// An attempt parked its instance (approval requested, wait started).
    Parked {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt.
        attempt: u32,
    },
    /// The approval gate resolved.
    ApprovalResolved {
        /// Step id.
        step: String,
        /// Approved (quorum reached, or expired with `on_expiry: approve`).
        approved: bool,
    },
    /// A wait's timer fired.
    TimerFired {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// A worker's lease ran out during an attempt.
    LeaseExpired {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// The attempt whose lease expired.
        attempt: u32,
    },
    /// An operator cancels the run.
    Cancel,
    /// An operator resumes a failed run: its failed steps (all, or those named) and everything
    /// that had not run yet go again; succeeded instances are kept.
    Retry {
        /// Only these failed steps (empty: every failed step).
        steps: Vec<String>,
    },
    /// An operator rolls back a failed or cancelled run: compensations run in reverse.
    Rollback,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Render the step's `if` and `for_each`, then apply [`Event::Prepared`].
    Prepare {
        /// Step id.
        step: String,
    },
    /// Make an instance claimable.
    Enqueue {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
    },
    /// Wake the instance at `at_ms` with [`Event::RetryDue`].
    ScheduleRetry {
        /// Step id.
        step: String,
        /// Item index.
        item: u32,
        /// When (unix ms).
        at_ms: u64,
    },
    /// Journal that a step was skipped.
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
    /// The event does not apply in the step's or run's current state.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StepNode {
    deps: Vec<String>,
    continue_on_error: bool,
    max_parallel: Option<u32>,
    phase: StepPhase,
    instances: Vec<InstanceState>,
    /// The highest attempt number claimed per instance: a claim must be higher (fencing).
    attempts: Vec<u32>,
    /// `Some(items)` when the step has no `if` and no templated `for_each`: it needs no
    /// rendering, so it is prepared inline instead of through a [`Action::Prepare`] round trip.
    #[serde(default)]
    fixed: Option<Option<u32>>,
    /// The group the node belongs to.
    #[serde(default)]
    group: Stage,
    /// Compensation nodes: which items to undo (the original's succeeded instances).
    #[serde(default)]
    only: Option<Vec<bool>>,
    /// A `for_each` step.
    #[serde(default)]
    each: bool,
}

/// The state of one run's steps (main steps or `on_failure` steps).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMachine {
    status: RunStatus,
    steps: IndexMap<String, StepNode>,
    failed_step: Option<String>,
    #[serde(default)]
    stage: Stage,
}

impl StepNode {
    fn new(s: &tenure_runbook::Step, deps: Vec<String>, group: Stage) -> Self {
        StepNode {
            deps,
            continue_on_error: s.continue_on_error,
            max_parallel: s.max_parallel,
            phase: StepPhase::Blocked,
            instances: Vec::new(),
            attempts: Vec::new(),
            fixed: match (&s.condition, &s.for_each) {
                (None, None) => Some(None),
                (None, Some(serde_json::Value::Array(items))) => Some(Some(items.len() as u32)),
                _ => None,
            },
            group,
            only: None,
            each: s.for_each.is_some(),
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
            .and_then(|s| s.attempts.get(item as usize))
            .map_or(1, |a| a + 1)
    }

    /// The step that failed the run.
    pub fn failed_step(&self) -> Option<&str> {
        self.failed_step.as_deref()
    }

    fn slot(&mut self, step: &str, item: u32) -> Result<&mut InstanceState, Error> {
        self.steps
            .get_mut(step)
            .and_then(|s| s.instances.get_mut(item as usize))
            .ok_or_else(|| Error::Unknown {
                step: step.to_string(),
                item,
            })
    }

    fn fenced(
        &mut self,
        step: &str,
        item: u32,
        attempt: u32,
        want: fn(InstanceState) -> Option<u32>,
    ) -> Result<&mut InstanceState, Error> {
        let slot = self.slot(step, item)?;
        match want(*slot) {
            Some(current) if current == attempt => Ok(slot),
            _ => Err(Error::Stale {
                step: step.to_string(),
                item,
                attempt,
                state: *slot,
            }),
        }
    }

    /// Applies one event and returns what the driver must do.
    pub fn apply(&mut self, event: Event) -> Result<Vec<Action>, Error> {
        let mut actions = Vec::new();
        match event {
            Event::Retry { steps } => {
                self.retry(&steps, &mut actions)?;
                self.advance(&mut actions);
                return Ok(actions);
            }
            Event::Rollback => {
                self.rollback(&mut actions)?;
                self.advance(&mut actions);
                return Ok(actions);
            }
            _ => {}
        }
        if self.status.is_final() {
            return Err(Error::Invalid(format!(
                "the run has ended ({:?})",
                self.status
            )));
        }
        match event {
            Event::Start => {
                if self.status != RunStatus::Queued {
                    return Err(Error::Invalid("the run has already started".into()));
                }
                self.status = RunStatus::Running;
            }
            Event::Prepared { step, items, skip } => {
                self.prepared(step, items, skip, &mut actions)?;
            }
            Event::PrepareFailed { step } => {
                let node = self.steps.get_mut(&step).ok_or_else(|| Error::Unknown {
                    step: step.clone(),
                    item: 0,
                })?;
                if node.phase != StepPhase::Preparing {
                    return Err(Error::Invalid(format!("step {step} is not being prepared")));
                }
                node.phase = StepPhase::Failed;
                if !node.continue_on_error && self.failed_step.is_none() {
                    self.failed_step = Some(step);
                }
            }
            Event::AttemptStarted {
                step,
                item,
                attempt,
            } => {
                let state = *self.slot(&step, item)?;
                let node = self.steps.get_mut(&step).expect("slot exists");
                let last = node.attempts[item as usize];
                if state != InstanceState::Ready || attempt <= last {
                    return Err(Error::Stale {
                        step,
                        item,
                        attempt,
                        state,
                    });
                }
                node.attempts[item as usize] = attempt;
                node.instances[item as usize] = InstanceState::Running { attempt };
            }
            Event::AttemptSucceeded {
                step,
                item,
                attempt,
            } => {
                let slot = self.fenced(&step, item, attempt, |s| match s {
                    InstanceState::Running { attempt } | InstanceState::Parked { attempt } => {
                        Some(attempt)
                    }
                    _ => None,
                })?;
                *slot = InstanceState::Succeeded;
                self.instance_done(&step, &mut actions);
            }
            Event::AttemptFailed {
                step,
                item,
                attempt,
                retry_at_ms,
            } => {
                let failing = self.failing();
                let slot = self.fenced(&step, item, attempt, running_attempt)?;
                match retry_at_ms {
                    Some(at_ms) if !failing => {
                        *slot = InstanceState::RetryWait { attempt, at_ms };
                        actions.push(Action::ScheduleRetry { step, item, at_ms });
                    }
                    _ => {
                        *slot = InstanceState::Failed;
                        let node = &self.steps[&step];
                        if !node.continue_on_error && self.failed_step.is_none() {
                            self.failed_step = Some(step.clone());
                        }
                        self.instance_done(&step, &mut actions);
                    }
                }
            }
            Event::RetryDue { step, item } => {
                let failing = self.failing();
                let slot = self.slot(&step, item)?;
                if !matches!(*slot, InstanceState::RetryWait { .. }) {
                    return Err(Error::Stale {
                        step,
                        item,
                        attempt: 0,
                        state: *slot,
                    });
                }
                if failing {
                    *slot = InstanceState::Cancelled;
                    self.instance_done(&step, &mut actions);
                } else {
                    *slot = InstanceState::Ready;
                    actions.push(Action::Enqueue { step, item });
                }
            }
            Event::Parked {
                step,
                item,
                attempt,
            } => {
                let slot = self.fenced(&step, item, attempt, running_attempt)?;
                *slot = InstanceState::Parked { attempt };
            }
            Event::ApprovalResolved { step, approved } => {
                let slot = self.slot(&step, 0)?;
                if !matches!(*slot, InstanceState::Parked { .. }) {
                    return Err(Error::Invalid(format!(
                        "step {step} is not waiting for approval"
                    )));
                }
                if approved {
                    *slot = InstanceState::Succeeded;
                    self.instance_done(&step, &mut actions);
                } else {
                    *slot = InstanceState::Cancelled;
                    self.cancel_all();
                    self.status = RunStatus::Denied;
                    actions.push(Action::Finish {
                        status: RunStatus::Denied,
                        failed_step: None,
                    });
                    return Ok(actions);
                }
            }
            Event::TimerFired { step, item } => {
                let slot = self.slot(&step, item)?;
                if !matches!(*slot, InstanceState::Parked { .. }) {
                    return Err(Error::Stale {
                        step,
                        item,
                        attempt: 0,
                        state: *slot,
                    });
                }
                *slot = InstanceState::Succeeded;
                self.instance_done(&step, &mut actions);
            }
            Event::LeaseExpired {
                step,
                item,
                attempt,
            } => {
                let slot = self.fenced(&step, item, attempt, running_attempt)?;
                // The attempt may have reached the vendor: the next one goes through the kind's
                // look-before-you-act path, with a higher attempt number.
                *slot = InstanceState::Ready;
                actions.push(Action::Enqueue { step, item });
            }
            Event::Cancel => {
                self.cancel_all();
                self.status = RunStatus::Cancelled;
                actions.push(Action::Finish {
                    status: RunStatus::Cancelled,
                    failed_step: None,
                });
                return Ok(actions);
            }
            Event::Retry { .. } | Event::Rollback => unreachable!("handled above"),
        }
        self.advance(&mut actions);
        Ok(actions)
    }

    fn prepared(
        &mut self,
        step: String,
        items: Option<u32>,
        skip: bool,
        actions: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let node = self.steps.get_mut(&step).ok_or_else(|| Error::Unknown {
            step: step.clone(),
            item: 0,
        })?;
        if node.phase != StepPhase::Preparing {
            return Err(Error::Invalid(format!("step {step} is not being prepared")));
        }
        let n = items.unwrap_or(1);
        if skip || n == 0 {
            node.phase = StepPhase::Skipped;
            actions.push(Action::Skipped {
                step,
                reason: if skip {
                    "condition is false"
                } else {
                    "no items"
                },
            });
        } else {
            // Compensations undo only the items whose original succeeded.
            let only = node.only.clone();
            node.instances = (0..n)
                .map(|i| {
                    let wanted = only
                        .as_ref()
                        .is_none_or(|m| m.get(i as usize).copied().unwrap_or(true));
                    if wanted {
                        InstanceState::Pending
                    } else {
                        InstanceState::Skipped
                    }
                })
                .collect();
            node.attempts = vec![0; n as usize];
            node.phase = StepPhase::Active;
            self.fill(&step, actions);
        }
        Ok(())
    }

    /// Makes pending instances ready, up to `max_parallel` in flight.
    fn fill(&mut self, step: &str, actions: &mut Vec<Action>) {
        let Some(node) = self.steps.get_mut(step) else {
            return;
        };
        let limit = node.max_parallel.unwrap_or(u32::MAX).max(1) as usize;
        let mut in_flight = node
            .instances
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    InstanceState::Ready
                        | InstanceState::Running { .. }
                        | InstanceState::RetryWait { .. }
                        | InstanceState::Parked { .. }
                )
            })
            .count();
        for (i, s) in node.instances.iter_mut().enumerate() {
            if in_flight >= limit {
                break;
            }
            if *s == InstanceState::Pending {
                *s = InstanceState::Ready;
                in_flight += 1;
                actions.push(Action::Enqueue {
                    step: step.to_string(),
                    item: i as u32,
                });
            }
        }
        if node.instances.iter().all(|s| s.is_terminal()) {
            node.phase = StepPhase::Succeeded;
        }
    }

    /// Whether a failure stops the current stage: a failed main step or compensation does; a
    /// failing `on_failure` step does not stop the others.
    fn failing(&self) -> bool {
        self.failed_step.is_some() && self.stage != Stage::OnFailure
    }

    fn retry(&mut self, steps: &[String], actions: &mut Vec<Action>) -> Result<(), Error> {
        if self.status != RunStatus::Failed {
            return Err(Error::Invalid(format!(
                "only a failed run can be retried (this one is {})",
                status_name(self.status)
            )));
        }
        let group = if self.stage == Stage::Rollback {
            Stage::Rollback
        } else {
            Stage::Main
        };
        for id in steps {
            let failed = self
                .steps
                .get(id)
                .is_some_and(|n| n.group == group && n.phase == StepPhase::Failed);
            if !failed {
                return Err(Error::Invalid(format!("step `{id}` has not failed")));
            }
        }
        // The on_failure steps run again if the run fails again.
        for node in self.steps.values_mut() {
            if node.group == Stage::OnFailure {
                node.phase = StepPhase::Blocked;
                node.instances.clear();
                node.attempts.clear();
            }
        }
        self.stage = group;
        self.failed_step = None;
        self.status = RunStatus::Running;
        let ids: Vec<String> = self.steps_of(group).into_iter().map(String::from).collect();
        for id in ids {
            let node = &mut self.steps[&id];
            match node.phase {
                StepPhase::Succeeded | StepPhase::Skipped | StepPhase::Blocked => continue,
                StepPhase::Failed if !steps.is_empty() && !steps.contains(&id) => {
                    if !node.continue_on_error && self.failed_step.is_none() {
                        self.failed_step = Some(id.clone());
                    }
                    continue;
                }
                _ => {}
            }
            if node.instances.is_empty() {
                node.phase = StepPhase::Blocked;
                continue;
            }
            for s in &mut node.instances {
                if matches!(s, InstanceState::Failed | InstanceState::Cancelled) {
                    *s = InstanceState::Pending;
                }
            }
            node.phase = StepPhase::Active;
            self.fill(&id, actions);
        }
        Ok(())
    }

    fn rollback(&mut self, actions: &mut Vec<Action>) -> Result<(), Error> {
        if !matches!(self.status, RunStatus::Failed | RunStatus::Cancelled) {
            return Err(Error::Invalid(format!(
                "only a failed or cancelled run can be rolled back (this one is {})",
                status_name(self.status)
            )));
        }
        let undo: Vec<String> = self
            .steps_of(Stage::Rollback)
            .into_iter()
            .map(String::from)
            .collect();
        if undo.is_empty() {
            return Err(Error::Invalid(
                "no step of this runbook has a `compensate`".into(),
            ));
        }
        self.stage = Stage::Rollback;
        self.failed_step = None;
        self.status = RunStatus::Running;
        for id in undo {
            let Some(original) = undone_step(&id).and_then(|o| self.steps.get(o)) else {
                continue;
            };
            let done: Vec<bool> = original
                .instances
                .iter()
                .map(|s| *s == InstanceState::Succeeded)
                .collect();
            let each = original.each;
            let node = &mut self.steps[&id];
            if node.phase == StepPhase::Succeeded {
                // Undone by an earlier rollback: never undo twice.
                continue;
            }
            node.instances.clear();
            node.attempts.clear();
            if done.contains(&true) {
                node.phase = StepPhase::Blocked;
                node.fixed = Some(each.then_some(done.len() as u32));
                node.only = Some(done);
            } else {
                node.phase = StepPhase::Skipped;
                actions.push(Action::Skipped {
                    step: id,
                    reason: "nothing to undo",
                });
            }
        }
        Ok(())
    }

    fn instance_done(&mut self, step: &str, actions: &mut Vec<Action>) {
        let failing = self.failing();
        let node = self.steps.get_mut(step).expect("checked by the caller");
        if !failing {
            if let Some(i) = node
                .instances
                .iter()
                .position(|s| *s == InstanceState::Pending)
            {
                node.instances[i] = InstanceState::Ready;
                actions.push(Action::Enqueue {
                    step: step.to_string(),
                    item: i as u32,
                });
            }
        }
        if node.instances.iter().all(|s| s.is_terminal()) {
            node.phase = if node.instances.contains(&InstanceState::Failed) {
                StepPhase::Failed
            } else if node
                .instances
                .iter()
                .all(|s| *s == InstanceState::Cancelled)
            {
                StepPhase::Cancelled
            } else {
                StepPhase::Succeeded
            };
        }
    }

    fn cancel_all(&mut self) {
        for stage in [Stage::Main, Stage::OnFailure, Stage::Rollback] {
            self.cancel_group(stage);
        }
    }

    fn cancel_group(&mut self, stage: Stage) {
        for node in self.steps.values_mut().filter(|n| n.group == stage) {
            for s in &mut node.instances {
                if !s.is_terminal() {
                    *s = InstanceState::Cancelled;
                }
            }
            if !node.phase.is_done() {
                node.phase = StepPhase::Cancelled;
            }
        }
    }

    fn advance(&mut self, actions: &mut Vec<Action>) {
        if self.failing() {
            let stage = self.stage;
            let in_flight = self.steps.values().filter(|n| n.group == stage).any(|n| {
                n.phase == StepPhase::Preparing
                    || n.instances.iter().any(|s| {
                        matches!(
                            s,
                            InstanceState::Running { .. } | InstanceState::Parked { .. }
                        )
                    })
            });
            if in_flight {
                return;
            }
            self.cancel_group(stage);
            let has_on_failure = self.steps.values().any(|n| n.group == Stage::OnFailure);
            if stage == Stage::Main && has_on_failure {
                self.stage = Stage::OnFailure;
                actions.push(Action::OnFailure {
                    failed_step: self.failed_step.clone().unwrap_or_default(),
                });
            } else {
                self.status = RunStatus::Failed;
                actions.push(Action::Finish {
                    status: RunStatus::Failed,
                    failed_step: self.failed_step.clone(),
                });
                return;
            }
        }
        let stage = self.stage;
        loop {
            let ready: Vec<String> = self
                .steps
                .iter()
                .filter(|(_, n)| n.group == stage && n.phase == StepPhase::Blocked)
                .filter(|(_, n)| {
                    n.deps
                        .iter()
                        .all(|d| self.steps.get(d).is_none_or(|dn| dn.phase.is_done()))
                })
                .map(|(id, _)| id.clone())
                .collect();
            if ready.is_empty() {
                break;
            }
            for id in ready {
                self.steps[&id].phase = StepPhase::Preparing;
                match self.steps[&id].fixed {
                    Some(items) => {
                        // Cannot fail: the step was just set to Preparing.
                        let _ = self.prepared(id, items, false, actions);
                    }
                    None => actions.push(Action::Prepare { step: id }),
                }
            }
        }
        let group = || self.steps.values().filter(|n| n.group == stage);
        if group().all(|n| n.phase.is_done()) {
            let (status, failed_step) = match stage {
                Stage::Main => (RunStatus::Succeeded, None),
                Stage::OnFailure => (RunStatus::Failed, self.failed_step.clone()),
                Stage::Rollback => (RunStatus::RolledBack, None),
            };
            self.status = status;
            actions.push(Action::Finish {
                status,
                failed_step,
            });
            return;
        }
        let active = group().any(|n| {
            n.phase == StepPhase::Preparing
                || n.instances.iter().any(|s| {
                    matches!(
                        s,
                        InstanceState::Ready
                            | InstanceState::Running { .. }
                            | InstanceState::RetryWait { .. }
                            | InstanceState::Pending
                    )
                })
        });
        self.status = if active {
            RunStatus::Running
        } else {
            RunStatus::Waiting
        };
    }
}

/// A status as written in the journal and the CLI (`rolled_back`).
pub fn status_name(status: RunStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
