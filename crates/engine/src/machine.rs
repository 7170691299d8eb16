//! The pure run state machine: `apply(event) -> actions`. It owns what a run's steps and their
//! instances are doing and decides what happens next; it performs nothing. The driver renders
//! templates (answering [`Action::Prepare`] with [`Event::Prepared`]), runs attempts, sets
//! timers and writes every event to the journal.
//!
//! Instance states: `pending` (over `max_parallel`), `ready`, `running(attempt)`,
//! `retry_wait(attempt, at)`, `parked` (waiting on approval or sleeping), `succeeded`,
//! `failed`, `skipped`, `cancelled`. Run statuses: `queued running waiting succeeded failed
//! denied cancelled`.

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
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Denied | RunStatus::Cancelled
        )
    }
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
    fn is_terminal(self) -> bool {
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
}

/// The state of one run's steps (main steps or `on_failure` steps).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMachine {
    status: RunStatus,
    steps: IndexMap<String, StepNode>,
    failed_step: Option<String>,
}

impl RunMachine {
    /// A machine for the plan's main steps.
    pub fn new(plan: &Plan) -> Self {
        Self::of(&plan.steps)
    }

    /// A machine for the plan's `on_failure` steps.
    pub fn for_failure(plan: &Plan) -> Self {
        Self::of(&plan.on_failure)
    }

    fn of(steps: &[tenure_runbook::Step]) -> Self {
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        let steps = steps
            .iter()
            .map(|s| {
                let node = StepNode {
                    deps: s
                        .needs
                        .iter()
                        .map(|d| d.step.clone())
                        .filter(|d| ids.contains(&d.as_str()))
                        .collect(),
                    continue_on_error: s.continue_on_error,
                    max_parallel: s.max_parallel,
                    phase: StepPhase::Blocked,
                    instances: Vec::new(),
                    attempts: Vec::new(),
                    fixed: match (&s.condition, &s.for_each) {
                        (None, None) => Some(None),
                        (None, Some(serde_json::Value::Array(items))) => {
                            Some(Some(items.len() as u32))
                        }
                        _ => None,
                    },
                };
                (s.id.clone(), node)
            })
            .collect();
        RunMachine {
            status: RunStatus::Queued,
            steps,
            failed_step: None,
        }
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
        if self.status.is_final() {
            return Err(Error::Invalid(format!(
                "the run has ended ({:?})",
                self.status
            )));
        }
        let mut actions = Vec::new();
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
                let failing = self.failed_step.is_some();
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
                let failing = self.failed_step.is_some();
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
            let limit = node.max_parallel.unwrap_or(u32::MAX).max(1);
            node.instances = (0..n)
                .map(|i| {
                    if i < limit {
                        InstanceState::Ready
                    } else {
                        InstanceState::Pending
                    }
                })
                .collect();
            node.attempts = vec![0; n as usize];
            node.phase = StepPhase::Active;
            actions.extend((0..n.min(limit)).map(|item| Action::Enqueue {
                step: step.clone(),
                item,
            }));
        }
        Ok(())
    }

    fn instance_done(&mut self, step: &str, actions: &mut Vec<Action>) {
        let failing = self.failed_step.is_some();
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
        for node in self.steps.values_mut() {
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
        if self.failed_step.is_some() {
            let in_flight = self.steps.values().any(|n| {
                n.phase == StepPhase::Preparing
                    || n.instances.iter().any(|s| {
                        matches!(
                            s,
                            InstanceState::Running { .. } | InstanceState::Parked { .. }
                        )
                    })
            });
            if !in_flight {
                self.cancel_all();
                self.status = RunStatus::Failed;
                actions.push(Action::Finish {
                    status: RunStatus::Failed,
                    failed_step: self.failed_step.clone(),
                });
            }
            return;
        }
        loop {
            let ready: Vec<String> = self
                .steps
                .iter()
                .filter(|(_, n)| n.phase == StepPhase::Blocked)
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
        if self.steps.values().all(|n| n.phase.is_done()) {
            self.status = RunStatus::Succeeded;
            actions.push(Action::Finish {
                status: RunStatus::Succeeded,
                failed_step: None,
            });
            return;
        }
        let active = self.steps.values().any(|n| {
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
